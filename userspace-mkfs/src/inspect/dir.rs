//! `dir`: a directory's entries block by block and, for an indexed directory, its index
//! (levels, index blocks, the leaves and the hash range each covers); and path lookup
//! from the root, through linear and indexed directories.

use aegisfs_format::dir::iter_dir_block;
use aegisfs_format::dirindex::{name_hash, IndexBlock, HASH_LIMIT, INDEX_ROOT_BLOCK};
use aegisfs_format::disk::{Inode, BLOCK_SIZE_U64, INODE_FLAG_INDEX, ROOT_INO};
use aegisfs_format::geometry::Geometry;
use std::collections::BTreeSet;

use super::inode::{block_map, read_raw, resolve, Mapping};
use super::{corrupt, escape_name, Inspector, Res, Target};
use crate::fsck::dev::Block;

/// A directory read for listing or lookup: its inode's identity and block map.
struct Dir {
    ino: u32,
    generation: u32,
    blocks: u64,
    indexed: bool,
    map: Mapping,
}

fn open_dir(ins: &Inspector, geo: &Geometry, ino: u32) -> Res<Dir> {
    let raw = read_raw(ins, geo, ino)?;
    let i = match Inode::validate(ino, &raw, geo) {
        Ok(i) => i,
        Err(e) => return corrupt(format_args!("inode {ino}: {}", e.msg())),
    };
    if !i.is_dir() {
        return corrupt(format_args!("inode {ino} is not a directory"));
    }
    let map = block_map(ins, geo, ino, i)?;
    if let Some(why) = map.problems().first() {
        return corrupt(format_args!("directory {ino}: {why}"));
    }
    Ok(Dir {
        ino,
        generation: i.generation.get(),
        // A valid directory's size is a multiple of the block size.
        blocks: i.size.get() / BLOCK_SIZE_U64,
        indexed: i.flags.get() & INODE_FLAG_INDEX != 0 && geo.dir_hash_key().is_some(),
        map,
    })
}

impl Dir {
    /// Logical block `lblk`; a directory has no holes.
    fn read(&self, ins: &Inspector, lblk: u64) -> Res<Box<Block>> {
        match self.map.phys(lblk) {
            Some(b) => ins.read(b),
            None => corrupt(format_args!(
                "directory {}: block {lblk} is a hole",
                self.ino
            )),
        }
    }
}

/// One index block of the tree: its logical block, level and entries (child, first
/// hash, end of its range).
struct IndexNode {
    lblk: u64,
    level: u8,
    children: Vec<(u64, u64, u64)>,
}

/// Reads the index tree from the root (block 1). Each index block must sit one level
/// below its parent and be met once, so a tree that loops is refused.
fn index_tree(ins: &Inspector, geo: &Geometry, d: &Dir) -> Res<Vec<IndexNode>> {
    let mut nodes = Vec::new();
    let mut seen = BTreeSet::new();
    // (logical block, expected level or None for the root, range start, range end)
    let mut todo = vec![(INDEX_ROOT_BLOCK, None, 0u64, HASH_LIMIT)];
    while let Some((lblk, want_level, lo, hi)) = todo.pop() {
        if !seen.insert(lblk) {
            return corrupt(format_args!(
                "directory {}: index block {lblk} is referenced twice",
                d.ino
            ));
        }
        let blk = d.read(ins, lblk)?;
        let ib = IndexBlock::validate(&blk, geo.checksum_seed(), d.ino, d.generation, d.blocks)
            .or_else(|e| {
                corrupt(format_args!(
                    "directory {}: index block {lblk}: {}",
                    d.ino,
                    e.msg()
                ))
            })?;
        let level = ib.level();
        let first = ib.entry(0).map(|e| e.hash);
        if want_level.is_some_and(|w| w != level) || first != Some(lo) {
            return corrupt(format_args!(
                "directory {}: index block {lblk} does not fit its place in the tree",
                d.ino
            ));
        }
        let mut children = Vec::new();
        for k in 0..ib.count() {
            let Some(e) = ib.entry(k) else { break };
            let end = ib.range_end(k, hi);
            children.push((u64::from(e.block), e.hash, end));
            if level > 0 {
                todo.push((u64::from(e.block), Some(level - 1), e.hash, end));
            }
        }
        nodes.push(IndexNode {
            lblk,
            level,
            children,
        });
    }
    Ok(nodes)
}

/// The used entries of one directory block: (inode, file type, rec_len, name).
type Entries = Vec<(u32, u8, usize, Vec<u8>)>;

fn entries_of(geo: &Geometry, d: &Dir, blk: &Block) -> Result<Entries, String> {
    let iter = iter_dir_block(blk, geo, d.ino, d.generation).map_err(|e| e.msg().to_string())?;
    let mut out = Vec::new();
    for e in iter {
        let e = e.map_err(|e| e.msg().to_string())?;
        if e.is_used() {
            out.push((e.ino, e.file_type, e.rec_len, e.name.to_vec()));
        }
    }
    Ok(out)
}

fn ft_name(ft: u8) -> &'static str {
    match ft {
        1 => "file",
        2 => "dir",
        3 => "chrdev",
        4 => "blkdev",
        5 => "fifo",
        6 => "socket",
        7 => "symlink",
        _ => "unknown",
    }
}

pub(super) fn show(ins: &mut Inspector, t: &Target) -> Res<()> {
    let geo = ins.geometry()?;
    let ino = resolve(ins, &geo, t)?;
    let d = open_dir(ins, &geo, ino)?;
    let mut index_blocks = BTreeSet::new();
    writeln!(
        ins.out,
        "Directory {ino}: {} block(s), {}",
        d.blocks,
        if d.indexed { "indexed" } else { "linear" }
    )?;
    if d.indexed {
        let tree = index_tree(ins, &geo, &d)?;
        let root_level = tree.first().map_or(0, |n| n.level);
        let leaves: usize = tree
            .iter()
            .filter(|n| n.level == 0)
            .map(|n| n.children.len())
            .sum();
        writeln!(
            ins.out,
            "Index: {} level(s) below the root, {} index block(s), {leaves} leaves",
            u32::from(root_level) + 1,
            tree.len()
        )?;
        for n in &tree {
            writeln!(
                ins.out,
                "  index block {} level {}: {} entries",
                n.lblk,
                n.level,
                n.children.len()
            )?;
            index_blocks.insert(n.lblk);
            for &(child, lo, hi) in &n.children {
                let kind = if n.level == 0 { "leaf" } else { "node" };
                writeln!(
                    ins.out,
                    "    hashes 0x{lo:016x}..0x{:016x} -> {kind} block {child}",
                    hi - 1
                )?;
            }
        }
    }
    let mut total = 0usize;
    for lblk in 0..d.blocks {
        if index_blocks.contains(&lblk) {
            continue;
        }
        let phys = d.map.phys(lblk).unwrap_or(0);
        let blk = d.read(ins, lblk)?;
        match entries_of(&geo, &d, &blk) {
            Ok(entries) => {
                writeln!(
                    ins.out,
                    "Block {lblk} (block {phys}): {} entries",
                    entries.len()
                )?;
                for (child, ft, rec_len, name) in &entries {
                    writeln!(
                        ins.out,
                        "  {child:>10}  {:<7}  rec_len {rec_len:>4}  {}",
                        ft_name(*ft),
                        escape_name(name)
                    )?;
                }
                total += entries.len();
            }
            Err(why) => {
                let bad = ins.bad();
                writeln!(ins.out, "Block {lblk} (block {phys}): {bad}: {why}")?;
            }
        }
    }
    writeln!(ins.out, "Total: {total} entries")?;
    Ok(())
}

/// The inode `name` names in directory `d`: an indexed directory is searched in its
/// head and in the leaf the name's hash selects, a linear one block by block.
fn lookup(ins: &Inspector, geo: &Geometry, d: &Dir, name: &[u8]) -> Res<Option<u32>> {
    let find = |lblk: u64| -> Res<Option<u32>> {
        let blk = d.read(ins, lblk)?;
        let entries = entries_of(geo, d, &blk)
            .or_else(|why| corrupt(format_args!("directory {}: block {lblk}: {why}", d.ino)))?;
        Ok(entries
            .into_iter()
            .find(|e| e.3 == name)
            .map(|(ino, ..)| ino))
    };
    let Some(key) = geo.dir_hash_key().filter(|_| d.indexed) else {
        for lblk in 0..d.blocks {
            if let Some(ino) = find(lblk)? {
                return Ok(Some(ino));
            }
        }
        return Ok(None);
    };
    if let Some(ino) = find(0)? {
        return Ok(Some(ino));
    }
    let hash = name_hash(key, name);
    let tree = index_tree(ins, geo, d)?;
    // Descend from the root: each level's node is the child whose range holds the hash.
    let mut at = INDEX_ROOT_BLOCK;
    while let Some(node) = tree.iter().find(|n| n.lblk == at) {
        let Some(&(child, ..)) = node
            .children
            .iter()
            .find(|&&(_, lo, hi)| (lo..hi).contains(&hash))
        else {
            return Ok(None);
        };
        if node.level == 0 {
            return find(child);
        }
        at = child;
    }
    Ok(None)
}

/// The inode an absolute path names, looked up from the root directory.
pub(super) fn lookup_path(ins: &Inspector, geo: &Geometry, path: &str) -> Res<u32> {
    let mut ino = ROOT_INO;
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let d = open_dir(ins, geo, ino)?;
        match lookup(ins, geo, &d, comp.as_bytes())? {
            Some(child) => ino = child,
            None => return corrupt(format_args!("{path}: '{comp}' not found")),
        }
    }
    Ok(ino)
}
