//! Hash-indexed directories (docs/format.md, "Indexed directories") built by hand in an
//! image made by mkfs: a linear directory mkfs wrote is rebuilt as an indexed one with the
//! same entries, through the format crate (name hashes, directory and index blocks,
//! block map, counts and bitmaps), and read back.

use std::path::Path;

use aegisfs_format::dir::{iter_dir_block, set_dir_block_checksum, DirBlockBuilder};
use aegisfs_format::dirindex::{
    init_index_block, name_hash, set_index_checksum, IndexEntry, HASH_LIMIT, INDEX_MAGIC,
};
use aegisfs_format::disk::{
    bitmap_set, bitmap_test, GroupDesc, IndirectBlock, BLOCK_SIZE, BLOCK_SIZE_U64,
    FEATURE_INCOMPAT_DIR_INDEX, INODE_FLAG_INDEX, N_DIRECT,
};

use super::fsck::{edit_inode, edit_sb, read_block, write_block, Block};
use super::Image;

/// The key tests give the name hash, so that where names land does not change from one
/// run to the next (mkfs draws a random one).
pub const TEST_KEY: [u8; 16] = *b"aegisfs-test-key";

/// Makes the name hash of the image's directories use [`TEST_KEY`] (before any directory
/// is indexed).
pub fn use_test_key(img: &Path) {
    edit_sb(img, |sb| {
        assert_ne!(sb.feature_incompat.get() & FEATURE_INCOMPAT_DIR_INDEX, 0);
        sb.dir_hash_key = TEST_KEY;
    });
}

/// Which entries go to the first block.
#[derive(Clone, Copy)]
pub enum Head {
    /// The first `n` entries in name order.
    First(usize),
    /// Entries in name order as long as any of the rest fits, so that the block is left
    /// with no room for a name of 1 to 4 bytes if short names come last.
    Fill,
}

/// The shape of the index to build.
#[derive(Clone, Copy)]
pub struct Shape {
    pub head: Head,
    /// 0: the root points at the leaves; 1: at `nodes` nodes that point at the leaves.
    pub root_level: u8,
    pub nodes: usize,
    /// Leaf `j` covers hashes `[j * 2^62 / leaves, (j + 1) * 2^62 / leaves)`.
    pub leaves: usize,
    /// One more block after the leaves: an empty directory block the index does not
    /// reference.
    pub unreferenced: bool,
}

/// An indexed directory as built.
pub struct Indexed {
    pub ino: u32,
    pub generation: u32,
    /// Device block of each logical block.
    pub blocks: Vec<u64>,
    /// Logical blocks of the nodes (empty with a root of level 0) and of the leaves.
    pub nodes: Vec<u64>,
    pub leaves: Vec<u64>,
    /// Every entry but `.` and `..` (name, inode), sorted by name.
    pub entries: Vec<(Vec<u8>, u32)>,
    /// The names of those in the first block.
    pub in_head: Vec<Vec<u8>>,
}

/// Rebuilds the linear directory at `path` as an indexed directory of shape `shape` with
/// the same entries: its old blocks are freed and new ones taken (first fit in group 0),
/// with an indirect block past 12 blocks.
pub fn make_indexed(img: &Path, path: &str, shape: Shape) -> Indexed {
    let im = Image::open(img);
    let seed = im.seed();
    let key = *im.geo.dir_hash_key().expect("a filesystem with DIR_INDEX");
    let dir = im.lookup(path);
    let ino = dir.ino;
    let generation = dir.i().generation.get();
    let listed = im.read_dir(&dir);
    let parent = listed[1].1;
    let mut rest: Vec<(Vec<u8>, u32, u8)> = listed[2..].to_vec();
    let mut entries: Vec<(Vec<u8>, u32)> = rest.iter().map(|e| (e.0.clone(), e.1)).collect();
    entries.sort();

    // The first block.
    let mut head = [0u8; BLOCK_SIZE];
    let mut in_head = Vec::new();
    {
        let mut b = DirBlockBuilder::new_first(&mut head, ino, parent).unwrap();
        let mut kept = Vec::new();
        for (k, (name, child, ft)) in rest.drain(..).enumerate() {
            let wanted = match shape.head {
                Head::First(n) => k < n,
                Head::Fill => true,
            };
            if wanted && b.try_add(child, &name, ft).unwrap() {
                in_head.push(name);
            } else {
                kept.push((name, child, ft));
            }
        }
        if let Head::First(n) = shape.head {
            assert_eq!(in_head.len(), n.min(entries.len()), "first block too small");
        }
        rest = kept;
        b.finalize(seed, ino, generation);
    }

    // Logical blocks: 0 first block, 1 root, then the nodes, the leaves and the spare.
    let nodes: Vec<u64> = (0..shape.nodes as u64).map(|k| 2 + k).collect();
    let leaves: Vec<u64> = (0..shape.leaves as u64)
        .map(|j| 2 + shape.nodes as u64 + j)
        .collect();
    let start = |j: usize| (HASH_LIMIT / shape.leaves as u64) * j as u64;
    let mut contents: Vec<Box<Block>> = vec![Box::new(head)];

    // Each leaf gets the names whose hash is in its range.
    let mut leaf_blocks = Vec::new();
    for j in 0..shape.leaves {
        let lo = start(j);
        let hi = if j + 1 == shape.leaves {
            HASH_LIMIT
        } else {
            start(j + 1)
        };
        let mut blk = Box::new([0u8; BLOCK_SIZE]);
        let mut b = DirBlockBuilder::new(&mut blk);
        for (name, child, ft) in &rest {
            if (lo..hi).contains(&name_hash(&key, name)) {
                assert!(b.try_add(*child, name, *ft).unwrap(), "leaf {j} full");
            }
        }
        b.finalize(seed, ino, generation);
        leaf_blocks.push(blk);
    }

    // The root and the nodes.
    let index_block = |level: u8, entries: &[IndexEntry]| {
        let mut blk = Box::new([0u8; BLOCK_SIZE]);
        init_index_block(&mut blk, level, entries).unwrap();
        set_index_checksum(&mut blk, seed, ino, generation);
        blk
    };
    let leaf_entry = |j: usize| IndexEntry {
        hash: start(j),
        block: leaves[j] as u32,
    };
    match shape.root_level {
        0 => {
            assert_eq!(shape.nodes, 0);
            let all: Vec<IndexEntry> = (0..shape.leaves).map(leaf_entry).collect();
            contents.push(index_block(0, &all));
        }
        1 => {
            assert!(shape.nodes >= 1 && shape.nodes <= shape.leaves);
            // Node k takes leaves [k * leaves / nodes, (k + 1) * leaves / nodes).
            let first_leaf = |k: usize| k * shape.leaves / shape.nodes;
            let root: Vec<IndexEntry> = (0..shape.nodes)
                .map(|k| IndexEntry {
                    hash: start(first_leaf(k)),
                    block: nodes[k] as u32,
                })
                .collect();
            contents.push(index_block(1, &root));
            for k in 0..shape.nodes {
                let mine: Vec<IndexEntry> =
                    (first_leaf(k)..first_leaf(k + 1)).map(leaf_entry).collect();
                contents.push(index_block(0, &mine));
            }
        }
        other => panic!("root level {other} not built"),
    }
    contents.extend(leaf_blocks);
    if shape.unreferenced {
        let mut blk = Box::new([0u8; BLOCK_SIZE]);
        DirBlockBuilder::new(&mut blk).finalize(seed, ino, generation);
        contents.push(blk);
    }

    let old = im.block_map(&dir).all_blocks();
    drop(im);
    let blocks = replace_blocks(img, ino, generation, &old, &contents);
    edit_inode(img, ino, true, |i| {
        i.flags.set(i.flags.get() | INODE_FLAG_INDEX)
    });
    Indexed {
        ino,
        generation,
        blocks,
        nodes,
        leaves,
        entries,
        in_head,
    }
}

/// Frees `old` (blocks of directory `ino`) and maps `contents` as its blocks instead:
/// new blocks taken first fit in group 0 (an indirect block past 12), written, the inode's
/// pointers, size and block count set, the bitmap and free counts updated. Returns the
/// device block of each logical block.
fn replace_blocks(
    img: &Path,
    ino: u32,
    generation: u32,
    old: &[u64],
    contents: &[Box<Block>],
) -> Vec<u64> {
    let im = Image::open(img);
    let seed = im.seed();
    let geo = im.geo;
    let bb = geo.block_bitmap_block(0).unwrap();
    let mut bitmap = read_block(img, bb);
    let bit = |b: u64| u32::try_from(b - geo.first_group_block()).unwrap();
    for &b in old {
        assert!(bitmap_test(&bitmap[..], bit(b)));
        bitmap_set(&mut bitmap[..], bit(b), false);
    }
    let n = contents.len();
    let indirect = usize::from(n > N_DIRECT);
    let mut taken = Vec::new();
    let mut b = geo.first_group_block();
    while taken.len() < n + indirect {
        if geo.is_data_block(b) && !bitmap_test(&bitmap[..], bit(b)) {
            bitmap_set(&mut bitmap[..], bit(b), true);
            taken.push(b);
        }
        b += 1;
    }
    write_block(img, bb, &bitmap);
    let (blocks, ind) = taken.split_at(n);
    for (blk, &b) in contents.iter().zip(blocks) {
        write_block(img, b, blk);
    }
    if let Some(&ib) = ind.first() {
        let mut raw = [0u8; BLOCK_SIZE];
        let table = IndirectBlock::from_block_mut(&mut raw);
        for (k, &b) in blocks[N_DIRECT..].iter().enumerate() {
            table.set_ptr(k, b);
        }
        table.update_checksum(seed, ino, generation);
        write_block(img, ib, &raw);
    }
    let delta = taken.len() as i64 - old.len() as i64;
    let gdt = geo.group_desc_location(0).unwrap().0;
    let mut desc = read_block(img, gdt);
    let d = GroupDesc::in_block_mut(&mut desc, 0);
    d.free_blocks
        .set(u32::try_from(i64::from(d.free_blocks.get()) - delta).unwrap());
    d.set_block_bitmap_checksum(seed, 0, &bitmap);
    d.update_checksum(seed, 0);
    write_block(img, gdt, &desc);
    edit_sb(img, |sb| {
        sb.free_blocks
            .set(u64::try_from(sb.free_blocks.get() as i64 - delta).unwrap())
    });
    edit_inode(img, ino, true, |i| {
        for k in 0..N_DIRECT {
            i.set_direct_ptr(k, blocks.get(k).copied().unwrap_or(0));
        }
        i.set_tree_root(1, ind.first().copied().unwrap_or(0));
        i.set_tree_root(2, 0);
        i.set_tree_root(3, 0);
        i.size.set(n as u64 * BLOCK_SIZE_U64);
        i.blocks.set(taken.len() as u64);
    });
    blocks.to_vec()
}

/// Removes the last block of indexed directory `d` (freed; size and block count one
/// less).
pub fn drop_last_block(img: &Path, d: &mut Indexed) {
    let contents: Vec<Box<Block>> = d.blocks[..d.blocks.len() - 1]
        .iter()
        .map(|&b| read_block(img, b))
        .collect();
    let im = Image::open(img);
    let old = im.block_map(&im.inode(d.ino)).all_blocks();
    drop(im);
    d.blocks = replace_blocks(img, d.ino, d.generation, &old, &contents);
}

/// Applies `f` to logical block `lblk` of indexed directory `d`, then seals it as an
/// index block (`index`) or as a directory block.
pub fn edit_block(img: &Path, d: &Indexed, lblk: u64, index: bool, f: impl FnOnce(&mut Block)) {
    let b = d.blocks[lblk as usize];
    let mut blk = read_block(img, b);
    f(&mut blk);
    let seed = Image::open(img).seed();
    if index {
        set_index_checksum(&mut blk, seed, d.ino, d.generation);
    } else {
        set_dir_block_checksum(&mut blk, seed, d.ino, d.generation);
    }
    write_block(img, b, &blk);
}

/// Entry `i` of index block `blk`: (hash, child block).
pub fn index_entry(blk: &Block, i: usize) -> (u64, u32) {
    let at = 16 + 12 * i;
    (
        u64::from_le_bytes(blk[at..at + 8].try_into().unwrap()),
        u32::from_le_bytes(blk[at + 8..at + 12].try_into().unwrap()),
    )
}

/// Sets entry `i` of index block `blk`.
pub fn set_index_entry(blk: &mut Block, i: usize, hash: u64, child: u32) {
    let at = 16 + 12 * i;
    blk[at..at + 8].copy_from_slice(&hash.to_le_bytes());
    blk[at + 8..at + 12].copy_from_slice(&child.to_le_bytes());
}

/// Whether directory `ino` has the `INDEX` flag.
pub fn has_index_flag(img: &Path, ino: u32) -> bool {
    Image::open(img).inode(ino).i().flags.get() & INODE_FLAG_INDEX != 0
}

/// The entries of directory `ino` but `.` and `..` (name, inode), sorted by name, read
/// from every block but index blocks; each of those blocks must be a valid directory
/// block, and block 0 must start with `.` and `..`.
pub fn dir_entries(img: &Path, ino: u32) -> Vec<(Vec<u8>, u32)> {
    let im = Image::open(img);
    let node = im.inode(ino);
    let indexed = node.i().flags.get() & INODE_FLAG_INDEX != 0;
    let map = im.block_map(&node);
    let mut out = Vec::new();
    for (&l, &b) in &map.data {
        let blk = im.block(b);
        if indexed && l > 0 && blk.starts_with(&INDEX_MAGIC) {
            continue;
        }
        let records = iter_dir_block(&blk, &im.geo, ino, node.i().generation.get())
            .unwrap_or_else(|e| panic!("dir {ino} block {l}: {}", e.msg()));
        for (k, e) in records.enumerate() {
            let e = e.unwrap_or_else(|e| panic!("dir {ino} block {l}: {}", e.msg()));
            if l == 0 && k < 2 {
                assert_eq!(e.name, if k == 0 { &b"."[..] } else { &b".."[..] });
            } else if e.is_used() {
                out.push((e.name.to_vec(), e.ino));
            }
        }
    }
    out.sort();
    out
}

/// The names of the used entries in logical block `lblk` of directory `d` (`.` and `..`
/// too in block 0).
pub fn names_in(img: &Path, d: &Indexed, lblk: u64) -> Vec<Vec<u8>> {
    let im = Image::open(img);
    let blk = read_block(img, d.blocks[lblk as usize]);
    iter_dir_block(&blk, &im.geo, d.ino, d.generation)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.is_used())
        .map(|e| e.name.to_vec())
        .collect()
}
