//! Each corruption is applied to a small image built here with the format crate, then the
//! image is parsed back: the targeted check must fail with the expected error, every other
//! check must still pass, and only the expected bytes may differ.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use aegisfs_format::blockmap::{BlockPtr, DIND_START, IND_START, PTR_UNWRITTEN, TIND_START};
use aegisfs_format::checksum::{
    journal_data_checksum, set_inode_checksum, set_journal_block_checksum, verify_inode_checksum,
    verify_journal_block_checksum,
};
use aegisfs_format::dir::{iter_dir_block, verify_dir_block_checksum, DirBlockBuilder};
use aegisfs_format::disk::{
    bitmap_find_clear, bitmap_set, GroupDesc, IndirectBlock, Inode, SuperBlock, BLOCK_SIZE,
    BLOCK_SIZE_U64, FT_DIR, FT_REG, INODE_CHECKSUM_OFFSET, LOST_FOUND_INO, ROOT_INO,
};
use aegisfs_format::error::FormatError;
use aegisfs_format::geometry::{Geometry, InodeSpec};
use aegisfs_format::journal::{
    init_journal_superblock, JournalCommit, JournalDescriptor, JournalSuperBlock,
    TransactionChecksum,
};
use aegisfs_format::xattr::{
    inline_area_mut, insert, validate_inline, XattrBlock, XATTR_INDEX_TRUSTED, XATTR_INDEX_USER,
};

use crate::corrupt::{apply, Kind, RecLen};
use crate::fill;
use crate::fuzz;
use crate::image::{Block, Image};

const DEVICE_BLOCKS: u64 = 16384;
const UUID: [u8; 16] = *b"aegisfs-testimg!";
const SMALL: u32 = 12;
const BIG: u32 = 13;
const DIR: u32 = 14;
const GENERATION: u32 = 0x5eed;

/// Logical blocks of the file "big": one in each mapping level.
const BIG_BLOCKS: [u64; 4] = [0, IND_START, DIND_START, TIND_START];

/// A directory of the fixture: inode, parent, entries (name, inode, file type).
type DirSpec<'a> = (u32, u32, Vec<(&'a [u8], u32, u8)>);

struct TestImage {
    path: PathBuf,
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes the fixed parts of a new inode and its checksum.
fn make_inode(
    geo: &Geometry,
    ino: u32,
    mode: u16,
    size: u64,
    edit: impl FnOnce(&mut Inode),
) -> Vec<u8> {
    let mut raw = vec![0u8; usize::from(geo.inode_size())];
    let inode = Inode::from_slot_mut(&mut raw).unwrap();
    inode.mode.set(mode);
    inode
        .links_count
        .set(if mode & 0o040000 != 0 { 2 } else { 1 });
    inode.size.set(size);
    inode.generation.set(GENERATION);
    inode.mtime.set(1_700_000_000);
    edit(inode);
    set_inode_checksum(geo.checksum_seed(), ino, &mut raw).unwrap();
    raw
}

/// A 64 MiB image without journal: root with "small" (2 direct blocks), "big" (one data
/// block in each mapping level) and "dir" (entries "a", "b", "c"), plus lost+found.
fn build(name: &str) -> TestImage {
    build_sized(name, 256)
}

/// [`build`] with inodes of `inode_size` bytes.
fn build_sized(name: &str, inode_size: u16) -> TestImage {
    build_layout(name, inode_size, 0)
}

/// [`build_sized`] with a journal of `journal_blocks` blocks (0: none).
fn build_layout(name: &str, inode_size: u16, journal_blocks: u64) -> TestImage {
    let path = std::env::temp_dir().join(format!(
        "aegisfs-testimage-{}-{name}.img",
        std::process::id()
    ));
    let file = fs::File::create(&path).unwrap();
    file.set_len(DEVICE_BLOCKS * BLOCK_SIZE_U64).unwrap();
    let plan = Geometry::plan(
        DEVICE_BLOCKS,
        InodeSpec::Count(64),
        inode_size,
        Some(journal_blocks),
    )
    .unwrap();
    let mut block0 = [0u8; BLOCK_SIZE];
    plan.fill_superblock(
        SuperBlock::in_block_mut(&mut block0),
        &UUID,
        b"test",
        1_700_000_000,
    )
    .unwrap();
    let geo = SuperBlock::in_block(&block0)
        .validate(DEVICE_BLOCKS)
        .unwrap();
    let seed = geo.checksum_seed();
    let write = |b: u64, data: &Block| file.write_all_at(data, b * BLOCK_SIZE_U64).unwrap();

    let mut next = geo.first_data_block(0).unwrap();
    let mut used = Vec::new();
    let mut alloc = || {
        next += 1;
        used.push(next - 1);
        next - 1
    };

    let mut inodes: Vec<(u32, Vec<u8>)> = Vec::new();
    let dir_block = |dir: u32, parent: u32, entries: &[(&[u8], u32, u8)]| {
        let mut block = [0u8; BLOCK_SIZE];
        let mut builder = DirBlockBuilder::new_first(&mut block, dir, parent).unwrap();
        for &(name, ino, ft) in entries {
            assert!(builder.try_add(ino, name, ft).unwrap());
        }
        builder.finalize(seed, dir, GENERATION);
        block
    };
    let dirs: [DirSpec; 3] = [
        (
            ROOT_INO,
            ROOT_INO,
            vec![
                (b"lost+found", LOST_FOUND_INO, FT_DIR),
                (b"small", SMALL, FT_REG),
                (b"big", BIG, FT_REG),
                (b"dir", DIR, FT_DIR),
            ],
        ),
        (LOST_FOUND_INO, ROOT_INO, vec![]),
        (
            DIR,
            ROOT_INO,
            vec![
                (b"a", SMALL, FT_REG),
                (b"b", BIG, FT_REG),
                (b"c", SMALL, FT_REG),
            ],
        ),
    ];
    for (ino, parent, entries) in &dirs {
        let b = alloc();
        write(b, &dir_block(*ino, *parent, entries));
        inodes.push((
            *ino,
            make_inode(&geo, *ino, 0o040755, 4096, |i| {
                i.set_direct_ptr(0, b);
                i.blocks.set(1);
            }),
        ));
    }

    let small = [alloc(), alloc()];
    for (k, &b) in small.iter().enumerate() {
        write(b, &[k as u8 + 1; BLOCK_SIZE]);
    }
    inodes.push((
        SMALL,
        make_inode(&geo, SMALL, 0o100644, 8000, |i| {
            i.set_direct_ptr(0, small[0]);
            i.set_direct_ptr(1, small[1]);
            i.blocks.set(2);
        }),
    ));

    // "big": the indirect chain of each level ends in one data block; entry 0 everywhere.
    let mut roots = [0u64; 4];
    let mut data = [0u64; 4];
    let mut blocks = 0;
    for level in 0..4usize {
        data[level] = alloc();
        write(data[level], &[0xA0 + level as u8; BLOCK_SIZE]);
        blocks += 1;
        let mut child = data[level];
        for _ in 0..level {
            let b = alloc();
            let mut block = [0u8; BLOCK_SIZE];
            let ind = IndirectBlock::from_block_mut(&mut block);
            ind.set_ptr(0, child);
            ind.update_checksum(seed, BIG, GENERATION);
            write(b, &block);
            blocks += 1;
            child = b;
        }
        roots[level] = child;
    }
    inodes.push((
        BIG,
        make_inode(
            &geo,
            BIG,
            0o100600,
            (TIND_START + 1) * BLOCK_SIZE_U64,
            |i| {
                i.set_direct_ptr(0, roots[0]);
                for level in 1..4u8 {
                    i.set_tree_root(level, roots[usize::from(level)]);
                }
                i.blocks.set(blocks);
            },
        ),
    ));

    for (ino, raw) in &inodes {
        let loc = geo.inode_location(*ino).unwrap();
        file.write_all_at(raw, loc.block * BLOCK_SIZE_U64 + loc.offset as u64)
            .unwrap();
    }

    let mut bbitmap = [0u8; BLOCK_SIZE];
    geo.init_block_bitmap(0, &mut bbitmap).unwrap();
    let start = geo.group_start(0).unwrap();
    for &b in &used {
        assert!(!bitmap_set(&mut bbitmap, (b - start) as u32, true));
    }
    let mut ibitmap = [0u8; BLOCK_SIZE];
    geo.init_inode_bitmap(0, &mut ibitmap).unwrap();
    for ino in LOST_FOUND_INO..=DIR {
        bitmap_set(&mut ibitmap, ino - 1, true);
    }
    write(geo.block_bitmap_block(0).unwrap(), &bbitmap);
    write(geo.inode_bitmap_block(0).unwrap(), &ibitmap);

    let mut gdt = [0u8; BLOCK_SIZE];
    let free_blocks = geo.group_data_blocks(0).unwrap() - used.len() as u64;
    let free_inodes = geo.inodes_per_group() - DIR;
    {
        let d = GroupDesc::in_block_mut(&mut gdt, 0);
        *d = geo.new_group_desc(0).unwrap();
        d.free_blocks.set(free_blocks as u32);
        d.free_inodes.set(free_inodes);
        d.used_dirs.set(3);
        d.set_block_bitmap_checksum(seed, 0, &bbitmap);
        d.set_inode_bitmap_checksum(seed, 0, &ibitmap);
        d.update_checksum(seed, 0);
    }
    write(geo.gdt_start(), &gdt);

    let sb = SuperBlock::in_block_mut(&mut block0);
    sb.free_blocks.set(free_blocks);
    sb.free_inodes.set(free_inodes);
    sb.update_checksum();
    write(0, &block0);
    TestImage { path }
}

/// [`build`] with 512-byte inodes, then an inline xattr on "small" and an xattr block (the
/// first free block, counted everywhere) on "big"; returns the block.
fn build_with_xattrs(name: &str) -> (TestImage, u64) {
    let t = build_sized(name, 512);
    let img = Image::open(&t.path).unwrap();
    let seed = img.geo.checksum_seed();
    let mut raw = img.inode(SMALL).unwrap();
    let used = insert(
        inline_area_mut(&mut raw),
        0,
        XATTR_INDEX_USER,
        b"colour",
        b"blue",
    )
    .unwrap()
    .unwrap();
    Inode::from_slot_mut(&mut raw)
        .unwrap()
        .extra_size
        .set(used as u16);
    img.write_inode(SMALL, &mut raw, true).unwrap();

    let bb = img.geo.block_bitmap_block(0).unwrap();
    let mut bitmap = img.read_block(bb).unwrap();
    let index = bitmap_find_clear(&bitmap, 0, 32768).unwrap();
    bitmap_set(&mut bitmap, index, true);
    img.write_block(bb, &bitmap).unwrap();
    img.patch_group_desc(0, |d| {
        d.free_blocks.set(d.free_blocks.get() - 1);
        d.set_block_bitmap_checksum(seed, 0, &bitmap);
        d.update_checksum(seed, 0);
    })
    .unwrap();
    img.patch_superblock(|sb| {
        sb.free_blocks.set(sb.free_blocks.get() - 1);
        sb.update_checksum();
    })
    .unwrap();
    let b = img.geo.group_start(0).unwrap() + u64::from(index);
    let mut block = [0u8; BLOCK_SIZE];
    let x = XattrBlock::from_block_mut(&mut block);
    x.init();
    let used = insert(&mut x.area, 0, XATTR_INDEX_TRUSTED, b"t", &[7; 3000])
        .unwrap()
        .unwrap();
    x.set_used(used);
    x.update_checksum(seed, b);
    img.write_block(b, &block).unwrap();
    let mut raw = img.inode(BIG).unwrap();
    let inode = Inode::from_slot_mut(&mut raw).unwrap();
    inode.xattr_block.set(b);
    inode.blocks.set(inode.blocks.get() + 1);
    img.write_inode(BIG, &mut raw, true).unwrap();
    (t, b)
}

fn bytes(t: &TestImage) -> Vec<u8> {
    fs::read(&t.path).unwrap()
}

/// Byte offsets where two images differ.
fn diff(a: &[u8], b: &[u8]) -> Vec<usize> {
    assert_eq!(a.len(), b.len());
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

/// Asserts every changed byte lies in one of `ranges` (absolute byte ranges).
fn assert_only(changed: &[usize], ranges: &[(u64, u64)]) {
    assert!(!changed.is_empty(), "nothing changed");
    for &c in changed {
        let c = c as u64;
        assert!(
            ranges.iter().any(|&(s, len)| c >= s && c < s + len),
            "byte {c} changed outside {ranges:?}"
        );
    }
}

fn block0(t: &TestImage) -> Block {
    let mut b = [0u8; BLOCK_SIZE];
    b.copy_from_slice(&bytes(t)[..BLOCK_SIZE]);
    b
}

fn corrupt(t: &TestImage, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let kind = Kind::parse(&args).unwrap();
    apply(&Image::open(&t.path).unwrap(), &kind).unwrap()
}

fn corrupt_err(t: &TestImage, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let kind = Kind::parse(&args).unwrap();
    apply(&Image::open(&t.path).unwrap(), &kind).unwrap_err()
}

const SB: u64 = 1024;
const SB_CSUM: (u64, u64) = (SB + 0x3FC, 4);

#[test]
fn fixture_is_valid_and_walkable() {
    let t = build("valid");
    let img = Image::open(&t.path).unwrap();
    assert_eq!(img.lookup("small").unwrap(), SMALL);
    assert_eq!(img.lookup("dir/b").unwrap(), BIG);
    assert_eq!(img.lookup("/dir/c").unwrap(), SMALL);
    assert!(img.lookup("dir/missing").is_err());
    let raw = img.inode(BIG).unwrap();
    for (level, &l) in BIG_BLOCKS.iter().enumerate() {
        let m = img.map(BIG, &raw, l).unwrap();
        assert_eq!(m.indirect.len(), level);
        let block = img.read_block(m.data.unwrap()).unwrap();
        assert!(block.iter().all(|&b| b == 0xA0 + level as u8));
        // The next logical block is a hole at every level.
        assert_eq!(img.map(BIG, &raw, l + 1).unwrap().data, None);
    }
}

#[test]
fn statfs_figures() {
    let t = build("statfs");
    let img = Image::open(&t.path).unwrap();
    let geo = img.geo;
    let line = crate::statfs_line(&img).unwrap();
    // 3 directory blocks, 2 for "small", 4 data + 6 indirect for "big".
    let used = 15;
    // docs/format.md: blocks_count - (first_group_block + groups * (2 + inode table)).
    let itb = u64::from(geo.inodes_per_group()) * 256 / 4096;
    let data = geo.blocks_count() - (geo.first_group_block() + 2 + itb);
    assert_eq!(data, geo.blocks_count() - geo.overhead());
    let bfree = geo.group_data_blocks(0).unwrap() - used;
    let reserved = img.with_superblock(|sb| sb.reserved_blocks.get()).unwrap();
    assert!(reserved > 0);
    let w = |i: usize| u32::from_le_bytes(UUID[i..i + 4].try_into().unwrap());
    let fsid = u64::from(w(0) ^ w(8)) << 32 | u64::from(w(4) ^ w(12));
    // The tool's own arithmetic agrees with the format crate's.
    let (own, own_fsid) = img.statfs().unwrap();
    let free_inodes = u64::from(geo.inodes_count() - DIR);
    assert_eq!(own, geo.statfs(bfree, free_inodes, reserved));
    assert_eq!(own_fsid, aegisfs_format::geometry::fsid(&UUID));
    assert_eq!(
        line,
        format!(
            "4096 {data} {bfree} {} {} {} 255 {fsid:x}",
            bfree - reserved,
            geo.inodes_count(),
            geo.inodes_count() - DIR
        )
    );
}

#[test]
fn bad_magic() {
    let t = build("magic");
    let before = bytes(&t);
    corrupt(&t, &["bad-magic"]);
    assert_only(&diff(&before, &bytes(&t)), &[(SB, 1), SB_CSUM]);
    let mut b0 = block0(&t);
    let sb = SuperBlock::in_block_mut(&mut b0);
    assert_eq!(
        sb.validate(DEVICE_BLOCKS).unwrap_err(),
        FormatError::BadMagic
    );
    // Only the magic is wrong: the checksum matches the new contents.
    sb.verify_checksum().unwrap();
    // Nothing else is wrong: with the magic restored the superblock is valid again.
    sb.magic[0] ^= 0x20;
    sb.update_checksum();
    sb.validate(DEVICE_BLOCKS).unwrap();
}

#[test]
fn superblock_checksum() {
    let t = build("sbcsum");
    let before = bytes(&t);
    corrupt(&t, &["sb-checksum"]);
    let changed = diff(&before, &bytes(&t));
    assert_eq!(changed, vec![(SB + 0x3FC) as usize]);
    let sb_err = SuperBlock::in_block(&block0(&t)).validate(DEVICE_BLOCKS);
    assert_eq!(sb_err.unwrap_err(), FormatError::SuperBlockChecksum);
}

#[test]
fn blocks_count_past_device() {
    let t = build("blocks");
    let before = bytes(&t);
    corrupt(&t, &["blocks-count"]);
    assert_only(&diff(&before, &bytes(&t)), &[(SB + 0x28, 8), SB_CSUM]);
    let b0 = block0(&t);
    let sb = SuperBlock::in_block(&b0);
    assert_eq!(sb.blocks_count.get(), DEVICE_BLOCKS + 1);
    assert_eq!(
        sb.validate(DEVICE_BLOCKS).unwrap_err(),
        FormatError::DeviceTooSmall
    );
    // Everything else is consistent: a device one block larger would be accepted.
    assert_eq!(
        sb.validate(DEVICE_BLOCKS + 1).unwrap().blocks_count(),
        DEVICE_BLOCKS + 1
    );
}

#[test]
fn feature_bits() {
    for (kind, offset, bit) in [
        ("incompat-feature", 0x18, 40),
        ("incompat-feature", 0x18, 2),
        ("ro-compat-feature", 0x20, 5),
        ("compat-feature", 0x10, 33),
    ] {
        let t = build(&format!("{kind}-{bit}"));
        let before = bytes(&t);
        corrupt(&t, &[kind, &bit.to_string()]);
        assert_only(&diff(&before, &bytes(&t)), &[(SB + offset, 8), SB_CSUM]);
        let b0 = block0(&t);
        let sb = SuperBlock::in_block(&b0);
        let result = sb.validate(DEVICE_BLOCKS);
        match kind {
            "incompat-feature" => {
                assert_eq!(sb.feature_incompat.get(), 1 << bit);
                assert_eq!(result.unwrap_err(), FormatError::UnsupportedFeature);
            }
            "ro-compat-feature" => {
                assert_eq!(result.unwrap().unknown_ro_compat(), 1 << bit);
            }
            _ => {
                assert_ne!(sb.feature_compat.get() & 1 << bit, 0);
                result.unwrap();
            }
        }
    }
}

#[test]
fn group_desc_checksum() {
    let t = build("gd");
    let before = bytes(&t);
    corrupt(&t, &["gd-checksum", "0"]);
    let gdt = BLOCK_SIZE_U64;
    assert_eq!(diff(&before, &bytes(&t)), vec![(gdt + 0x3C) as usize]);
    let raw = bytes(&t);
    let mut block = [0u8; BLOCK_SIZE];
    block.copy_from_slice(&raw[BLOCK_SIZE..2 * BLOCK_SIZE]);
    let geo = SuperBlock::in_block(&block0(&t))
        .validate(DEVICE_BLOCKS)
        .unwrap();
    let d = GroupDesc::in_block(&block, 0);
    assert_eq!(
        d.validate(0, &geo).unwrap_err(),
        FormatError::GroupDescChecksum
    );
    assert!(Image::open(&t.path).is_err());
    assert!(Kind::parse(&["gd-checksum".to_string(), "1".to_string()]).is_ok());
    let img_err = {
        let t2 = build("gd-range");
        let img = Image::open(&t2.path).unwrap();
        apply(&img, &Kind::GroupDescChecksum(1)).unwrap_err()
    };
    assert_eq!(img_err, "no group 1");
}

fn inode_range(t: &TestImage, ino: u32) -> (u64, u64) {
    let img = Image::open(&t.path).unwrap();
    let loc = img.geo.inode_location(ino).unwrap();
    (
        loc.block * BLOCK_SIZE_U64 + loc.offset as u64,
        u64::from(img.geo.inode_size()),
    )
}

#[test]
fn block_pointer_outside_device() {
    let t = build("ptr");
    let (at, _) = inode_range(&t, SMALL);
    let before = bytes(&t);
    corrupt(&t, &["block-pointer", "dir/a"]);
    assert_only(
        &diff(&before, &bytes(&t)),
        &[(at + 0x60, 8), (at + 0xFC, 4)],
    );
    let img = Image::open(&t.path).unwrap();
    // The inode itself is valid (checksum recomputed); the pointer is not.
    let raw = img.inode(SMALL).unwrap();
    let inode = Inode::from_slot(&raw).unwrap();
    assert_eq!(inode.direct_ptr(0), Some(DEVICE_BLOCKS + 1000));
    assert_eq!(
        img.geo.check_data_block(DEVICE_BLOCKS + 1000).unwrap_err(),
        FormatError::BadBlockPointer
    );
    assert!(img.map(SMALL, &raw, 0).is_err());
    assert!(img.map(SMALL, &raw, 1).unwrap().data.is_some());
}

fn first_dir_block(img: &Image, dir: u32) -> (u64, Block) {
    let raw = img.inode(dir).unwrap();
    let b = img.map(dir, &raw, 0).unwrap().data.unwrap();
    (b, img.read_block(b).unwrap())
}

#[test]
fn dir_rec_len() {
    for (value, want) in [("0", 0u16), ("6", 6), ("past-tail", 4084 - 24 + 4)] {
        let t = build(&format!("reclen-{value}"));
        let (b, _) = first_dir_block(&Image::open(&t.path).unwrap(), DIR);
        let before = bytes(&t);
        corrupt(&t, &["dir-rec-len", "dir", value]);
        // "." and ".." take 12 bytes each, so the third entry is at 24.
        let at = b * BLOCK_SIZE_U64;
        assert_only(
            &diff(&before, &bytes(&t)),
            &[(at + 24 + 4, 2), (at + 4092, 4)],
        );
        let img = Image::open(&t.path).unwrap();
        let (_, block) = first_dir_block(&img, DIR);
        assert_eq!(u16::from_le_bytes([block[28], block[29]]), want);
        // The checksum is valid, the record is not.
        let entries: Vec<_> = iter_dir_block(&block, &img.geo, DIR, GENERATION)
            .unwrap()
            .collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].unwrap().name, b".");
        assert_eq!(entries[1].unwrap().name, b"..");
        assert_eq!(entries[2].unwrap_err(), FormatError::DirRecLen);
        assert!(img.lookup("dir/c").is_err());
        assert_eq!(img.lookup("small").unwrap(), SMALL);
    }
}

#[test]
fn indirect_loop() {
    for level in 1..=3u8 {
        let t = build(&format!("loop-{level}"));
        let img = Image::open(&t.path).unwrap();
        let raw = img.inode(BIG).unwrap();
        let root = Inode::from_slot(&raw).unwrap().tree_root(level).unwrap();
        let before = bytes(&t);
        corrupt(&t, &["indirect-loop", "big", &level.to_string()]);
        let at = root * BLOCK_SIZE_U64;
        assert_only(&diff(&before, &bytes(&t)), &[(at, 8), (at + 0xFF8, 4)]);
        let block = img.read_block(root).unwrap();
        let ind = IndirectBlock::from_block(&block);
        ind.verify_checksum(img.geo.checksum_seed(), BIG, GENERATION)
            .unwrap();
        assert_eq!(ind.ptr(0), Some(root));
        // Walking the level's first block now passes through the root at every step and
        // ends on it as if it were data.
        let m = img.map(BIG, &raw, BIG_BLOCKS[usize::from(level)]).unwrap();
        assert_eq!(m.indirect, vec![root; usize::from(level)]);
        assert_eq!(m.data, Some(root));
    }
}

#[test]
fn unwritten_data_pointers() {
    let t = build("unwritten");
    let img = Image::open(&t.path).unwrap();
    let raw = img.inode(BIG).unwrap();
    let before_inode = Inode::from_slot(&raw).unwrap().direct_ptr(0).unwrap();
    let ind_root = Inode::from_slot(&raw).unwrap().tree_root(1).unwrap();
    let ind_before = IndirectBlock::from_block(&img.read_block(ind_root).unwrap()).ptr(0);
    let out = corrupt(&t, &["unwritten", "big"]);
    assert!(out.contains("2 data pointers marked unwritten"), "{out}");
    let raw = img.inode(BIG).unwrap();
    let inode = Inode::from_slot(&raw).unwrap();
    assert_eq!(inode.direct_ptr(0), Some(before_inode | PTR_UNWRITTEN));
    // The inode and the indirect block stay valid; the double indirect tree is untouched.
    Inode::validate(BIG, &raw, &img.geo).unwrap();
    let block = img.read_block(ind_root).unwrap();
    let ind = IndirectBlock::from_block(&block);
    ind.verify_checksum(img.geo.checksum_seed(), BIG, GENERATION)
        .unwrap();
    assert_eq!(ind.ptr(0), ind_before.map(|p| p | PTR_UNWRITTEN));
    assert_eq!(
        ind.checked_block_ptr(0, true, &img.geo).unwrap(),
        ind_before.map(|block| BlockPtr {
            block,
            unwritten: true
        })
    );
    assert!(img.map(BIG, &raw, BIG_BLOCKS[2]).unwrap().data.is_some());
    // Only regular files.
    assert!(corrupt_err(&t, &["unwritten", "dir"]).contains("not a regular file"));
}

#[test]
fn unwritten_indirect_root() {
    let t = build("unwritten-ind");
    let img = Image::open(&t.path).unwrap();
    let (at, _) = inode_range(&t, BIG);
    let root = Inode::from_slot(&img.inode(BIG).unwrap())
        .unwrap()
        .tree_root(2)
        .unwrap();
    let before = bytes(&t);
    corrupt(&t, &["unwritten-indirect", "big", "2"]);
    assert_only(
        &diff(&before, &bytes(&t)),
        &[(at + 0xC8 + 7, 1), (at + 0xFC, 4)],
    );
    let raw = img.inode(BIG).unwrap();
    let inode = Inode::from_slot(&raw).unwrap();
    assert_eq!(inode.tree_root(2), Some(root | PTR_UNWRITTEN));
    assert_eq!(
        BlockPtr::check(root | PTR_UNWRITTEN, false, &img.geo),
        Err(FormatError::UnwrittenPointer)
    );
}

#[test]
fn inode_checksum() {
    let t = build("icsum");
    let (at, size) = inode_range(&t, BIG);
    let before = bytes(&t);
    corrupt(&t, &["inode-checksum", "dir/b"]);
    assert_eq!(diff(&before, &bytes(&t)), vec![(at + 0xFC) as usize]);
    let raw = &bytes(&t)[at as usize..(at + size) as usize];
    assert_eq!(
        verify_inode_checksum(Image::open(&t.path).unwrap().geo.checksum_seed(), BIG, raw)
            .unwrap_err(),
        FormatError::InodeChecksum
    );
    assert_eq!(raw[INODE_CHECKSUM_OFFSET] ^ before[(at + 0xFC) as usize], 1);
}

#[test]
fn indirect_checksum() {
    for level in 1..=3u8 {
        let t = build(&format!("indcsum-{level}"));
        let img = Image::open(&t.path).unwrap();
        let raw = img.inode(BIG).unwrap();
        let root = Inode::from_slot(&raw).unwrap().tree_root(level).unwrap();
        let before = bytes(&t);
        corrupt(&t, &["indirect-checksum", "big", &level.to_string()]);
        let at = root * BLOCK_SIZE_U64 + 0xFF8;
        assert_eq!(diff(&before, &bytes(&t)), vec![at as usize]);
        let block = img.read_block(root).unwrap();
        assert_eq!(
            IndirectBlock::from_block(&block)
                .verify_checksum(img.geo.checksum_seed(), BIG, GENERATION)
                .unwrap_err(),
            FormatError::IndirectChecksum
        );
        let err = img
            .map(BIG, &raw, BIG_BLOCKS[usize::from(level)])
            .unwrap_err();
        assert!(err.contains("indirect block checksum mismatch"), "{err}");
        // The other levels are untouched.
        for (other, &l) in BIG_BLOCKS.iter().enumerate() {
            if other != usize::from(level) {
                img.map(BIG, &raw, l).unwrap();
            }
        }
    }
}

#[test]
fn dir_checksum() {
    let t = build("dircsum");
    let (b, _) = first_dir_block(&Image::open(&t.path).unwrap(), DIR);
    let before = bytes(&t);
    corrupt(&t, &["dir-checksum", "dir"]);
    assert_eq!(
        diff(&before, &bytes(&t)),
        vec![(b * BLOCK_SIZE_U64 + 4092) as usize]
    );
    let img = Image::open(&t.path).unwrap();
    let (_, block) = first_dir_block(&img, DIR);
    assert_eq!(
        iter_dir_block(&block, &img.geo, DIR, GENERATION).err(),
        Some(FormatError::DirChecksum)
    );
    assert!(img.lookup("dir/a").is_err());
    assert_eq!(img.lookup("big").unwrap(), BIG);
}

#[test]
fn inode_bitmap_checksum() {
    let t = build("ibcsum");
    let before = bytes(&t);
    corrupt(&t, &["inode-bitmap-checksum", "0"]);
    let gdt = BLOCK_SIZE_U64;
    assert_only(
        &diff(&before, &bytes(&t)),
        &[(gdt + 0x2C, 4), (gdt + 0x3C, 4)],
    );
    // The descriptor itself is valid; the bitmap no longer matches it.
    let img = Image::open(&t.path).unwrap();
    let ibitmap = img
        .read_block(img.geo.inode_bitmap_block(0).unwrap())
        .unwrap();
    let seed = img.geo.checksum_seed();
    let result = img
        .with_group_desc(0, |d| d.verify_inode_bitmap(seed, 0, &ibitmap))
        .unwrap();
    assert_eq!(result.unwrap_err(), FormatError::InodeBitmapChecksum);
    let bbitmap = img
        .read_block(img.geo.block_bitmap_block(0).unwrap())
        .unwrap();
    img.with_group_desc(0, |d| d.verify_block_bitmap(seed, 0, &bbitmap))
        .unwrap()
        .unwrap();
}

#[test]
fn xattr_block_checksum() {
    let (t, b) = build_with_xattrs("xcsum");
    let img = Image::open(&t.path).unwrap();
    let seed = img.geo.checksum_seed();
    XattrBlock::from_block(&img.read_block(b).unwrap())
        .validate(seed, b)
        .unwrap();
    let before = bytes(&t);
    corrupt(&t, &["xattr-checksum", "dir/b"]);
    assert_eq!(
        diff(&before, &bytes(&t)),
        vec![(b * BLOCK_SIZE_U64 + 0x1C) as usize]
    );
    assert_eq!(
        XattrBlock::from_block(&img.read_block(b).unwrap()).validate(seed, b),
        Err(FormatError::XattrBlockChecksum)
    );
    Inode::validate(BIG, &img.inode(BIG).unwrap(), &img.geo).unwrap();
    assert!(corrupt_err(&t, &["xattr-checksum", "small"]).contains("has no xattr block"));
}

#[test]
fn xattr_inline_area() {
    let (t, _) = build_with_xattrs("xinline");
    let (at, size) = inode_range(&t, SMALL);
    assert_eq!(size, 512);
    let img = Image::open(&t.path).unwrap();
    validate_inline(&img.inode(SMALL).unwrap()).unwrap();
    let before = bytes(&t);
    corrupt(&t, &["xattr-inline", "small"]);
    // "colour" and "blue" take 16 bytes.
    assert_only(
        &diff(&before, &bytes(&t)),
        &[(at + 0x100 + 16, 1), (at + 0xFC, 4)],
    );
    let raw = img.inode(SMALL).unwrap();
    assert_eq!(validate_inline(&raw), Err(FormatError::XattrArea));
    Inode::validate(SMALL, &raw, &img.geo).unwrap();
    let t = build("xinline-256");
    assert!(corrupt_err(&t, &["xattr-inline", "small"]).contains("no free inline xattr byte"));
}

#[test]
fn errors_for_unusable_targets() {
    let t = build("targets");
    let img = Image::open(&t.path).unwrap();
    let err = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        apply(&img, &Kind::parse(&args).unwrap()).unwrap_err()
    };
    assert!(err(&["indirect-loop", "small", "1"]).contains("no level 1 indirect block"));
    assert!(err(&["block-pointer", "nope"]).contains("no entry nope"));
    assert!(err(&["dir-rec-len", "lost+found", "0"]).contains("fewer than three"));
    assert!(Kind::parse(&["incompat-feature".to_string(), "64".to_string()]).is_err());
    assert!(Kind::parse(&[
        "indirect-loop".to_string(),
        "big".to_string(),
        "4".to_string()
    ])
    .is_err());
    assert!(Kind::parse(&["bogus".to_string()]).is_err());
    assert_eq!(
        Kind::parse(&[
            "dir-rec-len".to_string(),
            "d".to_string(),
            "past-tail".to_string()
        ]),
        Ok(Kind::DirRecLen("d".to_string(), RecLen::PastTail))
    );
}

#[test]
fn fill_is_deterministic_and_keeps_holes() {
    let path = std::env::temp_dir().join(format!("aegisfs-testimage-{}-fill", std::process::id()));
    let _ = fs::remove_file(&path);
    fill::fill(&path, 10_000, 3_000_000, 7).unwrap();
    fill::fill(&path, 5, 3, 9).unwrap();
    let data = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    assert_eq!(data.len(), 3_010_000);
    assert!(data[..5].iter().all(|&b| b == 0));
    assert_eq!(
        &data[5..8],
        &[fill::byte(9, 0), fill::byte(9, 1), fill::byte(9, 2)]
    );
    assert!(data[8..10_000].iter().all(|&b| b == 0));
    for i in [0u64, 1, 7, 8, 1 << 20, (1 << 20) + 3, 2_999_999] {
        assert_eq!(data[10_000 + i as usize], fill::byte(7, i));
    }
    // Different seeds give different streams.
    assert_ne!(
        (0..64).map(|i| fill::byte(7, i)).collect::<Vec<_>>(),
        (0..64).map(|i| fill::byte(8, i)).collect::<Vec<_>>()
    );
}

/// A journal with one committed transaction at log block 1: a descriptor logging block 0
/// (the superblock, as it is) and a commit. Returns (descriptor, data, commit) blocks.
fn build_with_transaction(name: &str) -> (TestImage, [u64; 3]) {
    let t = build_layout(name, 256, 1024);
    let img = Image::open(&t.path).unwrap();
    let seed = img.geo.checksum_seed();
    let js = img.geo.journal_start();
    let mut jsb = [0u8; BLOCK_SIZE];
    init_journal_superblock(&mut jsb, seed, 1024).unwrap();
    JournalSuperBlock::from_block_mut(&mut jsb).start.set(1);
    set_journal_block_checksum(seed, &mut jsb);
    img.write_block(js, &jsb).unwrap();
    let data = img.read_block(0).unwrap();
    let mut desc = [0u8; BLOCK_SIZE];
    JournalDescriptor::init(&mut desc, 1).push_tag(0, 0, journal_data_checksum(seed, 1, &data));
    set_journal_block_checksum(seed, &mut desc);
    let mut txn = TransactionChecksum::new(seed);
    txn.add_metadata_block(&desc);
    let mut commit = [0u8; BLOCK_SIZE];
    JournalCommit::write(&mut commit, seed, 1, 1_700_000_000, 0, &txn);
    img.write_block(js + 1, &desc).unwrap();
    img.write_block(js + 2, &data).unwrap();
    img.write_block(js + 3, &commit).unwrap();
    (t, [js + 1, js + 2, js + 3])
}

#[test]
fn survey_finds_every_structure() {
    let (t, _) = build_with_xattrs("survey");
    let kinds: Vec<&str> = fuzz::survey(&Image::open(&t.path).unwrap())
        .unwrap()
        .iter()
        .map(fuzz::Target::kind)
        .collect();
    let count = |k: &str| kinds.iter().filter(|&&x| x == k).count();
    // root, lost+found, small, big, dir; one indirect chain per level of "big".
    assert_eq!(count("inode"), 5);
    assert_eq!(count("superblock"), 1);
    assert_eq!(count("group-desc"), 1);
    assert_eq!(count("block-bitmap"), 1);
    assert_eq!(count("inode-bitmap"), 1);
    assert_eq!(count("indirect-1"), 3);
    assert_eq!(count("indirect-2"), 2);
    assert_eq!(count("indirect-3"), 1);
    assert_eq!(count("dir-block"), 3);
    assert_eq!(count("xattr-block"), 1);
    assert_eq!(count("journal-super"), 0);

    let (t, _) = build_with_transaction("survey-journal");
    let targets = fuzz::survey(&Image::open(&t.path).unwrap()).unwrap();
    let kinds: Vec<&str> = targets.iter().map(fuzz::Target::kind).collect();
    for k in [
        "journal-super",
        "journal-descriptor",
        "journal-data",
        "journal-commit",
    ] {
        assert_eq!(kinds.iter().filter(|&&x| x == k).count(), 1, "{k}");
    }
}

#[test]
fn mutations_are_deterministic_and_never_fail() {
    let (a, _) = build_with_transaction("mutate-a");
    let (b, _) = build_with_transaction("mutate-b");
    let (c, _) = build_with_transaction("mutate-c");
    let pristine = Image::open(&c.path).unwrap();
    let mut changed = 0;
    for seed in 0..300u64 {
        let img_a = Image::open(&a.path).unwrap();
        let img_b = Image::open(&b.path).unwrap();
        let log_a = fuzz::mutate(&img_a, seed).unwrap();
        assert!((1..=4).contains(&log_a.len()));
        assert_eq!(log_a, fuzz::mutate(&img_b, seed).unwrap());
        assert_eq!(img_a.written(), img_b.written(), "seed {seed}");
        let mut differs = false;
        for blk in img_a.written() {
            let new = img_a.read_block(blk).unwrap();
            assert_eq!(
                new,
                img_b.read_block(blk).unwrap(),
                "seed {seed} block {blk}"
            );
            let old = pristine.read_block(blk).unwrap();
            differs |= new != old;
            img_a.write_block(blk, &old).unwrap();
            img_b.write_block(blk, &old).unwrap();
        }
        changed += usize::from(differs);
    }
    // A mutation may write a value equal to the old one (a boundary value that it was).
    assert!(changed >= 280, "only {changed} of 300 images changed");
}

#[test]
fn seal_recomputes_the_checksum_of_the_damaged_structure() {
    let (t, _) = build_with_xattrs("seal");
    let img = Image::open(&t.path).unwrap();
    let seed = img.geo.checksum_seed();
    for target in fuzz::survey(&img).unwrap() {
        let (b, off, _) = fuzz::extent(&img, target).unwrap();
        let mut block = img.read_block(b).unwrap();
        block[off + 40] ^= 0x10;
        img.write_block(b, &block).unwrap();
        fuzz::seal(&img, target).unwrap();
        let block = img.read_block(b).unwrap();
        let ok = match target {
            fuzz::Target::Super => SuperBlock::in_block(&block).verify_checksum().is_ok(),
            fuzz::Target::GroupDesc(g) => GroupDesc::in_block(&block, g)
                .verify_checksum(seed, g)
                .is_ok(),
            fuzz::Target::BlockBitmap(g) => img
                .with_group_desc(g, |d| d.verify_block_bitmap(seed, g, &block).is_ok())
                .unwrap(),
            fuzz::Target::InodeBitmap(g) => img
                .with_group_desc(g, |d| d.verify_inode_bitmap(seed, g, &block).is_ok())
                .unwrap(),
            fuzz::Target::Inode(ino) => {
                verify_inode_checksum(seed, ino, &img.raw_inode(ino).unwrap()).is_ok()
            }
            fuzz::Target::Indirect {
                ino, generation, ..
            } => IndirectBlock::from_block(&block)
                .verify_checksum(seed, ino, generation)
                .is_ok(),
            fuzz::Target::DirBlock {
                ino, generation, ..
            } => verify_dir_block_checksum(&block, seed, ino, generation).is_ok(),
            fuzz::Target::XattrBlock(b) => {
                let x = XattrBlock::from_block(&block);
                x.compute_checksum(seed, b) == x.header.checksum.get()
            }
            other => panic!("unexpected target {other:?}"),
        };
        assert!(ok, "{target:?}");
    }
}

#[test]
fn reseal_makes_a_changed_transaction_replayable() {
    let (t, [desc_b, data_b, commit_b]) = build_with_transaction("reseal");
    let img = Image::open(&t.path).unwrap();
    let seed = img.geo.checksum_seed();
    let targets = fuzz::survey(&img).unwrap();
    // A different logged block and another target: only the checksums are stale.
    let mut data = img.read_block(data_b).unwrap();
    data[100] ^= 0xFF;
    img.write_block(data_b, &data).unwrap();
    let mut desc = img.read_block(desc_b).unwrap();
    JournalDescriptor::from_block_mut(&mut desc).tags[0]
        .target
        .set(5);
    img.write_block(desc_b, &desc).unwrap();
    assert!(verify_journal_block_checksum(seed, &desc).is_err());

    fuzz::reseal_journal(&img, &targets).unwrap();
    let desc = img.read_block(desc_b).unwrap();
    verify_journal_block_checksum(seed, &desc).unwrap();
    let tag = &JournalDescriptor::from_block(&desc).tags[0];
    assert_eq!(tag.target.get(), 5);
    assert_eq!(tag.checksum.get(), journal_data_checksum(seed, 1, &data));
    let commit = img.read_block(commit_b).unwrap();
    verify_journal_block_checksum(seed, &commit).unwrap();
    let mut txn = TransactionChecksum::new(seed);
    txn.add_metadata_block(&desc);
    JournalCommit::from_block(&commit)
        .check_transaction(&txn)
        .unwrap();
}
