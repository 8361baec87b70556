//! Test helpers: scratch directories, running the binary, and a small independent reader
//! of AegisFS images built on the format crate that checks every structure it touches.

#![allow(dead_code)]

pub mod dirindex;
pub mod fsck;
pub mod journal;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use aegisfs_format::blockmap::{DIND_START, IND_START, TIND_START};
use aegisfs_format::dir::iter_dir_block;
use aegisfs_format::disk::{
    GroupDesc, IndirectBlock, Inode, SuperBlock, BLOCK_SIZE, BLOCK_SIZE_U64, FIRST_INO, FT_DIR,
    LOST_FOUND_INO, N_DIRECT, PTRS_PER_BLOCK, PTRS_PER_BLOCK_U64, ROOT_INO,
};
use aegisfs_format::geometry::Geometry;
use aegisfs_format::xattr::{validate_inline, XattrBlock};

pub const MKFS: &str = env!("CARGO_BIN_EXE_mkfs-aegisfs");

/// A scratch directory removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    /// A fresh directory under `$TMPDIR` if set, else in shared memory when available:
    /// the tests make large sparse images, and syncing and freeing their scattered blocks
    /// on a disk filesystem takes far longer than the test itself.
    pub fn new(name: &str) -> Scratch {
        let shm = Path::new("/dev/shm");
        let base = match std::env::var_os("TMPDIR") {
            Some(dir) => PathBuf::from(dir),
            None if shm.is_dir() => shm.to_path_buf(),
            None => std::env::temp_dir(),
        };
        let path = base.join(format!("aegisfs-mkfs-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs mkfs.aegisfs with `args` and stdin from /dev/null (not a terminal).
pub fn mkfs<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(MKFS)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs mkfs.aegisfs and asserts success.
pub fn mkfs_ok<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let out = mkfs(args);
    assert!(
        out.status.success(),
        "mkfs failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `bin` with `args` and stdin from /dev/null: (exit status, stdout, stderr); a
/// death by a signal fails the test.
pub fn run_tool<S: AsRef<OsStr>>(bin: &str, args: &[S]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("{bin} killed by a signal: {:?}", out.status));
    (code, text(&out.stdout), text(&out.stderr))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An inode as read back: its raw bytes validated by the format crate.
pub struct RInode {
    pub ino: u32,
    pub raw: Vec<u8>,
}

impl RInode {
    pub fn i(&self) -> &Inode {
        Inode::from_slot(&self.raw).unwrap()
    }
}

/// The block map of a file: data blocks by logical block, and its indirect blocks.
#[derive(Default, Debug)]
pub struct BlockMap {
    pub data: BTreeMap<u64, u64>,
    pub indirect: Vec<u64>,
}

impl BlockMap {
    /// Every block of the file (data and indirect), sorted.
    pub fn all_blocks(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .data
            .values()
            .copied()
            .chain(self.indirect.iter().copied())
            .collect();
        v.sort_unstable();
        v
    }
}

pub struct Image {
    pub path: PathBuf,
    file: File,
    pub geo: Geometry,
    block0: Box<[u8; BLOCK_SIZE]>,
}

impl Image {
    /// Opens an image and validates its superblock against the file size.
    pub fn open(path: &Path) -> Image {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len();
        let mut block0 = Box::new([0u8; BLOCK_SIZE]);
        file.read_exact_at(&mut block0[..], 0).unwrap();
        assert!(
            block0[..1024].iter().all(|&b| b == 0),
            "bytes 0..1024 not zero"
        );
        let geo = SuperBlock::in_block(&block0)
            .validate(len / BLOCK_SIZE_U64)
            .unwrap_or_else(|e| panic!("superblock invalid: {}", e.msg()));
        Image {
            path: path.to_path_buf(),
            file,
            geo,
            block0,
        }
    }

    pub fn sb(&self) -> &SuperBlock {
        SuperBlock::in_block(&self.block0)
    }

    pub fn seed(&self) -> u32 {
        self.sb().checksum_seed.get()
    }

    pub fn block(&self, b: u64) -> Box<[u8; BLOCK_SIZE]> {
        let mut buf = Box::new([0u8; BLOCK_SIZE]);
        self.file
            .read_exact_at(&mut buf[..], b * BLOCK_SIZE_U64)
            .unwrap();
        buf
    }

    /// The GDT block holding descriptor `g`, after validating that descriptor.
    pub fn desc_block(&self, g: u32) -> Box<[u8; BLOCK_SIZE]> {
        let (block, _) = self.geo.group_desc_location(g).unwrap();
        let raw = self.block(block);
        GroupDesc::in_block(&raw, g)
            .validate(g, &self.geo)
            .unwrap_or_else(|e| panic!("group {g} descriptor: {}", e.msg()));
        raw
    }

    /// Inode `ino`, validated by the format crate.
    pub fn inode(&self, ino: u32) -> RInode {
        let loc = self.geo.inode_location(ino).unwrap();
        let blk = self.block(loc.block);
        let isz = usize::from(self.geo.inode_size());
        let raw = blk[loc.offset..loc.offset + isz].to_vec();
        Inode::validate(ino, &raw, &self.geo)
            .unwrap_or_else(|e| panic!("inode {ino} invalid: {}", e.msg()));
        RInode { ino, raw }
    }

    /// Walks the block map of an inode, checking every indirect block's checksum and that
    /// every pointer is a data block.
    pub fn block_map(&self, ino: &RInode) -> BlockMap {
        let i = ino.i();
        let mut map = BlockMap::default();
        if i.has_inline_data() {
            return map;
        }
        for l in 0..N_DIRECT {
            let p = i.direct_ptr(l).unwrap();
            if p != 0 {
                self.geo.check_data_block(p).unwrap();
                map.data.insert(l as u64, p);
            }
        }
        let gen = i.generation.get();
        for (depth, first) in [(1u8, IND_START), (2, DIND_START), (3, TIND_START)] {
            let root = i.tree_root(depth).unwrap();
            if root != 0 {
                self.walk(ino.ino, gen, root, depth, first, &mut map);
            }
        }
        map
    }

    fn walk(&self, ino: u32, gen: u32, block: u64, height: u8, first: u64, map: &mut BlockMap) {
        self.geo.check_data_block(block).unwrap();
        map.indirect.push(block);
        let raw = self.block(block);
        let ib = IndirectBlock::from_block(&raw);
        ib.verify_checksum(self.seed(), ino, gen)
            .unwrap_or_else(|e| panic!("indirect block {block} of inode {ino}: {}", e.msg()));
        let span = PTRS_PER_BLOCK_U64.pow(u32::from(height) - 1);
        for k in 0..PTRS_PER_BLOCK {
            let Some(p) = ib.checked_ptr(k, &self.geo).unwrap() else {
                continue;
            };
            let l = first + k as u64 * span;
            if height == 1 {
                map.data.insert(l, p);
            } else {
                self.walk(ino, gen, p, height - 1, l, map);
            }
        }
    }

    /// `len` bytes of inode `ino` from `offset` (holes read as zeros).
    pub fn read_range(&self, ino: &RInode, offset: u64, len: u64) -> Vec<u8> {
        let map = self.block_map(ino);
        self.read_with_map(&map, offset, len)
    }

    pub fn read_with_map(&self, map: &BlockMap, offset: u64, len: u64) -> Vec<u8> {
        let mut out = vec![0u8; len as usize];
        let mut pos = offset;
        while pos < offset + len {
            let l = pos / BLOCK_SIZE_U64;
            let in_block = (pos % BLOCK_SIZE_U64) as usize;
            let n = (BLOCK_SIZE - in_block).min((offset + len - pos) as usize);
            if let Some(&p) = map.data.get(&l) {
                let blk = self.block(p);
                let at = (pos - offset) as usize;
                out[at..at + n].copy_from_slice(&blk[in_block..in_block + n]);
            }
            pos += n as u64;
        }
        out
    }

    /// The whole contents of a file or symlink.
    pub fn read_file(&self, ino: &RInode) -> Vec<u8> {
        if let Some(d) = ino.i().inline_data() {
            return d.to_vec();
        }
        self.read_range(ino, 0, ino.i().size.get())
    }

    /// Entries of directory `ino` (excluding unused records), every block validated.
    pub fn read_dir(&self, dir: &RInode) -> Vec<(Vec<u8>, u32, u8)> {
        let i = dir.i();
        assert!(i.is_dir(), "inode {} is not a directory", dir.ino);
        let map = self.block_map(dir);
        let nblocks = i.size.get() / BLOCK_SIZE_U64;
        assert_eq!(map.data.len() as u64, nblocks, "directory with holes");
        let mut out = Vec::new();
        for l in 0..nblocks {
            let blk = self.block(map.data[&l]);
            for e in iter_dir_block(&blk, &self.geo, dir.ino, i.generation.get())
                .unwrap_or_else(|e| panic!("dir {} block {l}: {}", dir.ino, e.msg()))
            {
                let e = e.unwrap_or_else(|err| panic!("dir {} block {l}: {}", dir.ino, err.msg()));
                if e.is_used() {
                    out.push((e.name.to_vec(), e.ino, e.file_type));
                }
            }
        }
        out
    }

    /// The inode at `path` (components separated by `/`, relative to the root).
    pub fn lookup(&self, path: &str) -> RInode {
        let mut cur = self.inode(ROOT_INO);
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            let entries = self.read_dir(&cur);
            let (_, ino, _) = entries
                .iter()
                .find(|(n, _, _)| n == comp.as_bytes())
                .unwrap_or_else(|| panic!("{path}: {comp} not found"));
            cur = self.inode(*ino);
        }
        cur
    }

    /// Records the blocks of `node` in `owned` (each at most once in the whole image) and
    /// checks its `blocks` count.
    fn own_blocks(&self, node: &RInode, owned: &mut HashSet<u64>) {
        let map = self.block_map(node);
        for b in map.all_blocks() {
            assert!(
                owned.insert(b),
                "block {b} owned twice (inode {})",
                node.ino
            );
        }
        let x = node.i().xattr_block.get();
        if x != 0 {
            self.geo.check_data_block(x).unwrap();
            XattrBlock::from_block(&self.block(x))
                .validate(self.seed(), x)
                .unwrap_or_else(|e| panic!("xattr block of inode {}: {}", node.ino, e.msg()));
            assert!(
                owned.insert(x),
                "block {x} owned twice (inode {})",
                node.ino
            );
        }
        validate_inline(&node.raw)
            .unwrap_or_else(|e| panic!("inline xattrs of inode {}: {}", node.ino, e.msg()));
        assert_eq!(
            node.i().blocks.get(),
            (map.data.len() + map.indirect.len()) as u64 + u64::from(x != 0),
            "inode {} blocks count",
            node.ino
        );
    }

    /// Checks the whole image like a small fsck: descriptors and bitmap checksums, the
    /// bitmaps against the descriptor counts, every inode reachable from the root against
    /// the inode bitmap, every block they own against the block bitmap (no block owned
    /// twice, no allocated block unowned), link counts, directory counts and the
    /// superblock totals.
    pub fn check(&self) {
        let geo = &self.geo;
        let seed = self.seed();
        let meta = geo.group_meta_blocks();

        // Walk the tree.
        let mut owned: HashSet<u64> = HashSet::new();
        let mut links: HashMap<u32, u32> = HashMap::new();
        let mut dirs_per_group: HashMap<u32, u32> = HashMap::new();
        let mut seen: HashSet<u32> = HashSet::new();
        let mut stack = vec![(ROOT_INO, ROOT_INO)];
        let mut inodes: HashMap<u32, RInode> = HashMap::new();
        while let Some((ino, parent)) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            let node = self.inode(ino);
            self.own_blocks(&node, &mut owned);
            if node.i().is_dir() {
                *dirs_per_group
                    .entry((ino - 1) / geo.inodes_per_group())
                    .or_default() += 1;
                let entries = self.read_dir(&node);
                assert!(entries.len() >= 2);
                assert_eq!((entries[0].0.as_slice(), entries[0].1), (&b"."[..], ino));
                assert_eq!(
                    (entries[1].0.as_slice(), entries[1].1),
                    (&b".."[..], parent)
                );
                *links.entry(ino).or_default() += 1;
                *links.entry(parent).or_default() += 1;
                let mut names = HashSet::new();
                for (name, child, ft) in &entries[2..] {
                    assert!(names.insert(name.clone()), "duplicate name in dir {ino}");
                    *links.entry(*child).or_default() += 1;
                    let c = self.inode(*child);
                    assert_eq!(c.i().file_type(), Some(*ft), "file type of {child}");
                    if *ft == FT_DIR {
                        stack.push((*child, ino));
                    } else if seen.insert(*child) {
                        self.own_blocks(&c, &mut owned);
                        inodes.insert(*child, c);
                    }
                }
            }
            inodes.insert(ino, node);
        }
        for (ino, n) in &links {
            let got = inodes[ino].i().links_count.get();
            assert_eq!(got, *n, "links_count of inode {ino}");
        }
        assert!(seen.contains(&LOST_FOUND_INO));

        // mkfs allocates first-fit in group order and never frees, so in every group the
        // owned data blocks and the used inodes are a prefix: build the bitmaps the spec
        // requires from that and compare them byte for byte.
        let mut owned_per_group: HashMap<u32, Vec<u64>> = HashMap::new();
        for &b in &owned {
            let (g, i) = geo.group_of_block(b).expect("owned block inside a group");
            owned_per_group.entry(g).or_default().push(u64::from(i));
        }
        let mut used_inodes_per_group: HashMap<u32, Vec<u32>> = HashMap::new();
        let reserved = (1..FIRST_INO).filter(|i| !seen.contains(i));
        for ino in reserved.chain(seen.iter().copied()) {
            let (g, i) = geo.inode_group(ino).unwrap();
            used_inodes_per_group.entry(g).or_default().push(i);
        }
        let (mut free_blocks, mut free_inodes) = (0u64, 0u64);
        for g in 0..geo.group_count() {
            let gdt = self.desc_block(g);
            let d = GroupDesc::in_block(&gdt, g);
            let bb = self.block(geo.block_bitmap_block(g).unwrap());
            let ib = self.block(geo.inode_bitmap_block(g).unwrap());
            d.verify_block_bitmap(seed, g, &bb).unwrap();
            d.verify_inode_bitmap(seed, g, &ib).unwrap();

            let len = geo.group_len(g).unwrap();
            let mut used = owned_per_group.remove(&g).unwrap_or_default();
            used.sort_unstable();
            let n = used.len() as u64;
            assert_eq!(
                used,
                (meta..meta + n).collect::<Vec<_>>(),
                "group {g} not a prefix"
            );
            let mut want = [0u8; BLOCK_SIZE];
            set_range(&mut want, 0, meta + n);
            set_range(&mut want, len, 32768);
            assert!(want[..] == bb[..], "group {g} block bitmap");
            let group_free = len - meta - n;
            assert_eq!(
                u64::from(d.free_blocks.get()),
                group_free,
                "group {g} free blocks"
            );

            let mut used = used_inodes_per_group.remove(&g).unwrap_or_default();
            used.sort_unstable();
            let n = used.len() as u32;
            assert_eq!(
                used,
                (0..n).collect::<Vec<_>>(),
                "group {g} inodes not a prefix"
            );
            let mut want = [0u8; BLOCK_SIZE];
            set_range(&mut want, 0, u64::from(n));
            set_range(&mut want, u64::from(geo.inodes_per_group()), 32768);
            assert!(want[..] == ib[..], "group {g} inode bitmap");
            let group_free_inodes = geo.inodes_per_group() - n;
            assert_eq!(
                d.free_inodes.get(),
                group_free_inodes,
                "group {g} free inodes"
            );
            assert_eq!(
                d.used_dirs.get(),
                dirs_per_group.get(&g).copied().unwrap_or(0),
                "group {g} used_dirs"
            );
            free_blocks += group_free;
            free_inodes += u64::from(group_free_inodes);
        }
        assert_eq!(self.sb().free_blocks.get(), free_blocks);
        assert_eq!(u64::from(self.sb().free_inodes.get()), free_inodes);
    }
}

/// Sets bits `a..b` of a bitmap.
pub fn set_range(bitmap: &mut [u8; BLOCK_SIZE], a: u64, b: u64) {
    let b = b.min(32768);
    let mut i = a;
    while i < b {
        if i.is_multiple_of(8) && i + 8 <= b {
            bitmap[(i / 8) as usize] = 0xFF;
            i += 8;
        } else {
            bitmap[(i / 8) as usize] |= 1 << (i % 8);
            i += 1;
        }
    }
}
