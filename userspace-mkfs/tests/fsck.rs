//! fsck.aegisfs end to end: images made by mkfs from a source tree, damaged in exactly one
//! way, then `-n` must report it (exit 4), `-fy` must repair it (exit 1) and a second `-n`
//! must find the filesystem clean (exit 0).

mod common;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aegisfs_format::checksum::{
    journal_data_checksum, set_inode_checksum, set_journal_block_checksum,
};
use aegisfs_format::dir::{add_entry, iter_dir_block, remove_entry, set_dir_block_checksum};
use aegisfs_format::disk::{
    GroupDesc, IndirectBlock, Inode, SuperBlock, BLOCK_SIZE, BLOCK_SIZE_U64,
    FEATURE_INCOMPAT_RECOVER, FT_DIR, FT_REG, LOST_FOUND_INO, ROOT_INO,
};
use aegisfs_format::journal::{
    escape, JournalCommit, JournalDescriptor, JournalRevoke, JournalSuperBlock, JOURNAL_MAGIC,
    TAG_FLAG_ESCAPED,
};
use aegisfs_tools::fsck::{run, Env};
use aegisfs_tools::mounts::MountSources;
use common::{mkfs_ok, text, Image, Scratch};

const FSCK: &str = env!("CARGO_BIN_EXE_fsck-aegisfs");

type Block = [u8; BLOCK_SIZE];

/// A fresh image with a small tree: files with direct and indirect blocks, directories,
/// a symlink.
struct Fs {
    _scratch: Scratch,
    img: PathBuf,
}

fn make_fs(name: &str) -> Fs {
    let scratch = Scratch::new(&format!("fsck-{name}"));
    let src = scratch.join("src");
    fs::create_dir_all(src.join("d1/sub")).unwrap();
    fs::create_dir_all(src.join("d2")).unwrap();
    fs::write(src.join("a"), b"hello\n").unwrap();
    fs::write(src.join("b"), vec![0xB5u8; 2 * BLOCK_SIZE]).unwrap();
    let big: Vec<u8> = (0..20 * BLOCK_SIZE).map(|i| (i / 7) as u8).collect();
    fs::write(src.join("big"), big).unwrap();
    fs::write(src.join("d1/f"), b"in d1\n").unwrap();
    std::os::unix::fs::symlink("a", src.join("ln")).unwrap();
    std::os::unix::fs::symlink("t".repeat(300), src.join("longln")).unwrap();
    let img = scratch.join("img");
    mkfs_ok(&[
        "-q".as_ref(),
        "-d".as_ref(),
        src.as_os_str(),
        img.as_os_str(),
        "64M".as_ref(),
    ]);
    Fs {
        _scratch: scratch,
        img,
    }
}

fn fsck(img: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(FSCK)
        .args(args)
        .arg(img)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("fsck killed by a signal: {:?}", out.status));
    (code, format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// `-n` reports `msg` with exit 4, `-fy` repairs with exit 1, `-n` is then clean.
fn detect_repair(img: &Path, msg: &str) -> String {
    let (code, out) = fsck(img, &["-n"]);
    assert_eq!(code, 4, "-n exit status\n{out}");
    assert!(out.contains(msg), "-n output lacks {msg:?}:\n{out}");
    assert!(out.contains("Fix? no"), "{out}");
    let (code, fixed) = fsck(img, &["-f", "-y"]);
    assert_eq!(code, 1, "-fy exit status\n{fixed}");
    assert!(fixed.contains(msg), "-fy output lacks {msg:?}:\n{fixed}");
    assert!(fixed.contains("FILE SYSTEM WAS MODIFIED"), "{fixed}");
    let (code, out) = fsck(img, &["-n"]);
    assert_eq!(code, 0, "second -n after the repair\n{fixed}\n---\n{out}");
    fixed
}

fn read_block(img: &Path, b: u64) -> Box<Block> {
    let f = fs::File::open(img).unwrap();
    let mut buf = Box::new([0u8; BLOCK_SIZE]);
    f.read_exact_at(&mut buf[..], b * BLOCK_SIZE_U64).unwrap();
    buf
}

fn write_block(img: &Path, b: u64, buf: &Block) {
    let f = fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(buf, b * BLOCK_SIZE_U64).unwrap();
}

fn ino_of(img: &Path, path: &str) -> u32 {
    Image::open(img).lookup(path).ino
}

/// Applies `f` to inode `ino` in place; with `csum` its checksum is recomputed so only
/// the change itself is wrong.
fn edit_inode(img: &Path, ino: u32, csum: bool, f: impl FnOnce(&mut Inode)) {
    let im = Image::open(img);
    let loc = im.geo.inode_location(ino).unwrap();
    let isz = usize::from(im.geo.inode_size());
    let mut blk = read_block(img, loc.block);
    let raw = &mut blk[loc.offset..loc.offset + isz];
    f(Inode::from_slot_mut(raw).unwrap());
    if csum {
        set_inode_checksum(im.seed(), ino, raw).unwrap();
    }
    write_block(img, loc.block, &blk);
}

/// Applies `f` to block `lblk` of directory `path`, then recomputes its checksum.
fn edit_dir_block(
    img: &Path,
    path: &str,
    lblk: u64,
    f: impl FnOnce(&mut Block, &[(usize, u32, Vec<u8>)]),
) {
    let im = Image::open(img);
    let dir = im.lookup(path);
    let b = im.block_map(&dir).data[&lblk];
    let gen = dir.i().generation.get();
    let mut blk = read_block(img, b);
    let entries: Vec<(usize, u32, Vec<u8>)> = iter_dir_block(&blk, &im.geo, dir.ino, gen)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.offset, e.ino, e.name.to_vec()))
        .collect();
    f(&mut blk, &entries);
    set_dir_block_checksum(&mut blk, im.seed(), dir.ino, gen);
    write_block(img, b, &blk);
}

fn offset_of(entries: &[(usize, u32, Vec<u8>)], name: &str) -> usize {
    entries.iter().find(|e| e.2 == name.as_bytes()).unwrap().0
}

/// Applies `f` to group 0's descriptor and recomputes its checksum.
fn edit_desc0(img: &Path, f: impl FnOnce(&mut GroupDesc)) {
    let seed = Image::open(img).seed();
    let mut blk = read_block(img, 1);
    let d = GroupDesc::in_block_mut(&mut blk, 0);
    f(d);
    d.update_checksum(seed, 0);
    write_block(img, 1, &blk);
}

/// Applies `f` to the superblock and recomputes its checksum.
fn edit_sb(img: &Path, f: impl FnOnce(&mut SuperBlock)) {
    let mut blk = read_block(img, 0);
    let sb = SuperBlock::in_block_mut(&mut blk);
    f(sb);
    sb.update_checksum();
    write_block(img, 0, &blk);
}

/// Sets or clears a bit of group 0's block or inode bitmap, keeping its checksum valid.
fn flip_bitmap_bit(img: &Path, inode_bitmap: bool, bit: u32, value: bool) {
    let im = Image::open(img);
    let seed = im.seed();
    let b = if inode_bitmap {
        im.geo.inode_bitmap_block(0).unwrap()
    } else {
        im.geo.block_bitmap_block(0).unwrap()
    };
    let mut bm = read_block(img, b);
    aegisfs_format::disk::bitmap_set(&mut bm[..], bit, value);
    write_block(img, b, &bm);
    edit_desc0(img, |d| {
        if inode_bitmap {
            d.set_inode_bitmap_checksum(seed, 0, &bm);
        } else {
            d.set_block_bitmap_checksum(seed, 0, &bm);
        }
    });
}

fn first_free_data_block(img: &Path) -> u64 {
    let im = Image::open(img);
    let bm = read_block(img, im.geo.block_bitmap_block(0).unwrap());
    let i = aegisfs_format::disk::bitmap_find_clear(&bm[..], 0, 32768).unwrap();
    im.geo.first_group_block() + u64::from(i)
}

#[test]
fn fresh_image_is_clean() {
    let fs = make_fs("fresh");
    let before = fs::read(&fs.img).unwrap();
    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 0, "{out}");
    for pass in 1..=5 {
        assert!(out.contains(&format!("Pass {pass}: ")), "{out}");
    }
    let name = fs.img.display();
    assert!(
        out.contains(&format!("{name}: 20/4096 files (")),
        "summary line: {out}"
    );
    assert!(out.contains(" blocks, 5 directories"), "{out}");
    // Without -f a clean filesystem is only reported, with -f it is checked.
    let (code, out) = fsck(&fs.img, &["-p"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{name}: clean, 20/4096 files, ")),
        "{out}"
    );
    assert!(!out.contains("Pass 1"), "{out}");
    let (code, out) = fsck(&fs.img, &["-fp"]);
    assert_eq!((code, out.contains("Pass 1")), (0, false), "{out}");
    assert!(out.contains("non-contiguous"), "{out}");
    // A check that found nothing only records the check time.
    let after = fs::read(&fs.img).unwrap();
    assert_eq!(before[BLOCK_SIZE..], after[BLOCK_SIZE..]);
}

#[test]
fn read_only_check_never_writes() {
    let fs = make_fs("ro");
    let a = ino_of(&fs.img, "a");
    edit_inode(&fs.img, a, false, |i| i.links_count.set(9));
    flip_bitmap_bit(&fs.img, false, 20000, true);
    edit_sb(&fs.img, |sb| {
        sb.feature_incompat.set(FEATURE_INCOMPAT_RECOVER);
        sb.free_inodes.set(7);
    });
    let before = fs::read(&fs.img).unwrap();
    let mtime = fs::metadata(&fs.img).unwrap().mtime_nsec();
    let mtime_s = fs::metadata(&fs.img).unwrap().mtime();
    // inotify tells a close of a descriptor opened for writing from a read-only one.
    let cpath = std::ffi::CString::new(fs.img.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: plain syscalls on a descriptor this test owns; the buffer outlives the read.
    let events = unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK);
        assert!(fd >= 0);
        let mask = libc::IN_CLOSE_WRITE | libc::IN_CLOSE_NOWRITE | libc::IN_MODIFY;
        assert!(libc::inotify_add_watch(fd, cpath.as_ptr(), mask) >= 0);
        let (code, out) = fsck(&fs.img, &["-n"]);
        assert_eq!(code, 4, "{out}");
        assert!(!out.contains("Fix? yes"), "{out}");
        let mut buf = [0u8; 4096];
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        let mut masks = Vec::new();
        let mut at = 0;
        while at + 16 <= n.max(0) as usize {
            let ev = &buf[at..];
            masks.push(u32::from_ne_bytes([ev[4], ev[5], ev[6], ev[7]]));
            at += 16 + u32::from_ne_bytes([ev[12], ev[13], ev[14], ev[15]]) as usize;
        }
        masks
    };
    assert!(events.contains(&libc::IN_CLOSE_NOWRITE), "{events:x?}");
    assert!(
        events.iter().all(|&m| m == libc::IN_CLOSE_NOWRITE),
        "opened for writing or modified: {events:x?}"
    );
    assert_eq!(fs::read(&fs.img).unwrap(), before);
    let m = fs::metadata(&fs.img).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (mtime_s, mtime));
}

#[test]
fn superblock_checksum() {
    let fs = make_fs("sbcsum");
    let mut blk = read_block(&fs.img, 0);
    blk[1024 + 0x3FC] ^= 0x5A;
    write_block(&fs.img, 0, &blk);
    detect_repair(&fs.img, "Superblock checksum does not match");
}

#[test]
fn superblock_free_counts() {
    let fs = make_fs("sbfree");
    let free = Image::open(&fs.img).sb().free_blocks.get();
    edit_sb(&fs.img, |sb| sb.free_blocks.set(free + 3));
    detect_repair(
        &fs.img,
        &format!("Free blocks count wrong ({}, counted={free})", free + 3),
    );
}

#[test]
fn group_free_counts() {
    let fs = make_fs("grpfree");
    let mut free = 0;
    edit_desc0(&fs.img, |d| {
        free = d.free_inodes.get();
        d.free_inodes.set(free - 2);
    });
    detect_repair(
        &fs.img,
        &format!(
            "Free inodes count wrong for group #0 ({}, counted={free})",
            free - 2
        ),
    );
}

#[test]
fn block_bitmap_bit_set_for_a_free_block() {
    let fs = make_fs("bbset");
    let b = first_free_data_block(&fs.img) + 100;
    let i = (b - Image::open(&fs.img).geo.first_group_block()) as u32;
    flip_bitmap_bit(&fs.img, false, i, true);
    detect_repair(&fs.img, &format!("Block bitmap differences: -{b}"));
}

#[test]
fn block_bitmap_bit_clear_for_a_used_block() {
    let fs = make_fs("bbclear");
    let im = Image::open(&fs.img);
    let b = im.block_map(&im.lookup("b")).data[&1];
    let i = (b - im.geo.first_group_block()) as u32;
    drop(im);
    flip_bitmap_bit(&fs.img, false, i, false);
    detect_repair(&fs.img, &format!("Block bitmap differences: +{b}"));
}

#[test]
fn inode_bitmap_bit_clear_for_a_used_inode() {
    let fs = make_fs("ibclear");
    let a = ino_of(&fs.img, "a");
    flip_bitmap_bit(&fs.img, true, a - 1, false);
    detect_repair(&fs.img, &format!("Inode bitmap differences: +{a}"));
    assert_eq!(
        Image::open(&fs.img).read_file(&Image::open(&fs.img).lookup("a")),
        b"hello\n"
    );
}

#[test]
fn bitmap_checksum() {
    let fs = make_fs("bmcsum");
    edit_desc0(&fs.img, |d| {
        let c = d.block_bitmap_checksum.get();
        d.block_bitmap_checksum.set(c ^ 1);
    });
    detect_repair(&fs.img, "Block bitmap checksum of group 0 is wrong");
}

#[test]
fn inode_checksum() {
    let fs = make_fs("icsum");
    let b = ino_of(&fs.img, "b");
    edit_inode(&fs.img, b, false, |i| i.uid.set(4242));
    detect_repair(&fs.img, &format!("Inode {b} checksum does not match"));
    assert_eq!(Image::open(&fs.img).inode(b).i().uid.get(), 4242);
}

#[test]
fn inode_mode_invalid() {
    let fs = make_fs("imode");
    let a = ino_of(&fs.img, "a");
    edit_inode(&fs.img, a, true, |i| i.mode.set(0o030644));
    let out = detect_repair(&fs.img, &format!("Inode {a} has an invalid mode 0o30644"));
    assert!(
        out.contains(&format!(
            "Entry 'a' in directory inode 2 refers to unused inode {a}"
        )),
        "{out}"
    );
    let im = Image::open(&fs.img);
    assert!(!im.read_dir(&im.inode(ROOT_INO)).iter().any(|e| e.0 == b"a"));
}

#[test]
fn inode_timestamp_invalid() {
    let fs = make_fs("itime");
    let a = ino_of(&fs.img, "a");
    edit_inode(&fs.img, a, true, |i| i.mtime_nsec.set(1_000_000_000));
    detect_repair(
        &fs.img,
        &format!("Inode {a} has an invalid timestamp (1000000000 nanoseconds)"),
    );
}

#[test]
fn blocks_count_wrong() {
    let fs = make_fs("iblocks");
    let b = ino_of(&fs.img, "b");
    edit_inode(&fs.img, b, true, |i| i.blocks.set(3));
    detect_repair(&fs.img, &format!("Inode {b} block count is 3, should be 2"));
}

#[test]
fn file_size_below_mapped_blocks() {
    let fs = make_fs("isize");
    let b = ino_of(&fs.img, "b");
    edit_inode(&fs.img, b, true, |i| i.size.set(100));
    detect_repair(&fs.img, &format!("Inode {b} size is 100, should be 8192"));
}

#[test]
fn directory_size_beyond_mapped_blocks() {
    let fs = make_fs("dsize");
    let d2 = ino_of(&fs.img, "d2");
    edit_inode(&fs.img, d2, true, |i| {
        i.size.set(3 * 4096);
        i.blocks.set(3);
    });
    let out = detect_repair(
        &fs.img,
        &format!("Inode {d2} size is 12288, should be 4096"),
    );
    assert!(
        out.contains(&format!("Inode {d2} block count is 3, should be 1")),
        "{out}"
    );
}

#[test]
fn pointer_outside_the_data_area() {
    let fs = make_fs("ptrout");
    let a = ino_of(&fs.img, "a");
    let past = Image::open(&fs.img).geo.blocks_count() + 5;
    edit_inode(&fs.img, a, true, |i| {
        i.set_direct_ptr(3, past);
    });
    detect_repair(
        &fs.img,
        &format!("Inode {a} has an illegal block pointer {past} at logical block 3 (outside the data area)"),
    );
}

#[test]
fn pointer_into_metadata() {
    let fs = make_fs("ptrmeta");
    let big = ino_of(&fs.img, "big");
    let table = Image::open(&fs.img).geo.inode_table_block(0).unwrap();
    edit_inode(&fs.img, big, true, |i| {
        i.set_direct_ptr(0, table);
    });
    let out = detect_repair(
        &fs.img,
        &format!("Inode {big} has an illegal block pointer {table} at logical block 0 (a group's bitmap or inode table)"),
    );
    // The block the pointer replaced is no longer used.
    assert!(out.contains("Block bitmap differences: -"), "{out}");
}

#[test]
fn duplicate_block_within_a_file() {
    let fs = make_fs("dupin");
    let b = ino_of(&fs.img, "b");
    let im = Image::open(&fs.img);
    let map = im.block_map(&im.lookup("b"));
    let (b0, b1) = (map.data[&0], map.data[&1]);
    drop(im);
    edit_inode(&fs.img, b, true, |i| {
        i.set_direct_ptr(1, b0);
    });
    let out = detect_repair(
        &fs.img,
        &format!("Inode {b} block {b0} (logical block 1) is claimed by more than one owner"),
    );
    // The copy takes the first free block: the one the damaged pointer lost.
    assert!(!out.contains("Block bitmap differences"), "{out}");
    let im = Image::open(&fs.img);
    let map = im.block_map(&im.lookup("b"));
    assert_eq!((map.data[&0], map.data[&1]), (b0, b1));
    assert_eq!(im.read_file(&im.lookup("b")), vec![0xB5u8; 2 * BLOCK_SIZE]);
}

#[test]
fn duplicate_block_across_files() {
    let fs = make_fs("dupx");
    let im = Image::open(&fs.img);
    let a_block = im.block_map(&im.lookup("a")).data[&0];
    let b = im.lookup("b").ino;
    drop(im);
    edit_inode(&fs.img, b, true, |i| {
        i.set_direct_ptr(0, a_block);
    });
    detect_repair(
        &fs.img,
        &format!("Inode {b} block {a_block} (logical block 0) is claimed by more than one owner"),
    );
    // The later claimant got its own copy; the first keeps the block.
    let im = Image::open(&fs.img);
    assert_eq!(im.block_map(&im.lookup("a")).data[&0], a_block);
    let bmap = im.block_map(&im.lookup("b"));
    assert_ne!(bmap.data[&0], a_block);
    assert_eq!(&im.read_file(&im.lookup("b"))[..6], b"hello\n");
}

#[test]
fn indirect_block_checksum() {
    let fs = make_fs("indcsum");
    let im = Image::open(&fs.img);
    let node = im.lookup("big");
    let ind = node.i().indirect.get();
    drop(im);
    let mut blk = read_block(&fs.img, ind);
    blk[0xFF8] ^= 0x10;
    write_block(&fs.img, ind, &blk);
    detect_repair(
        &fs.img,
        &format!(
            "Indirect block {ind} of inode {} has a bad checksum",
            node.ino
        ),
    );
    let im = Image::open(&fs.img);
    let want: Vec<u8> = (0..20 * BLOCK_SIZE).map(|i| (i / 7) as u8).collect();
    assert_eq!(im.read_file(&im.lookup("big")), want);
}

#[test]
fn indirect_block_garbage_is_cleared() {
    let fs = make_fs("indgarbage");
    let im = Image::open(&fs.img);
    let node = im.lookup("big");
    let ind = node.i().indirect.get();
    drop(im);
    let mut blk = read_block(&fs.img, ind);
    IndirectBlock::from_block_mut(&mut blk).set_ptr(0, 3);
    write_block(&fs.img, ind, &blk);
    let out = detect_repair(
        &fs.img,
        &format!("Indirect block {ind} of inode {} is corrupt", node.ino),
    );
    assert!(
        out.contains(&format!(
            "Inode {} block count is 21, should be 12",
            node.ino
        )),
        "{out}"
    );
}

#[test]
fn directory_block_checksum() {
    let fs = make_fs("dircsum");
    let im = Image::open(&fs.img);
    let d1 = im.lookup("d1");
    let b = im.block_map(&d1).data[&0];
    drop(im);
    let mut blk = read_block(&fs.img, b);
    blk[4095] ^= 0xFF;
    write_block(&fs.img, b, &blk);
    detect_repair(
        &fs.img,
        &format!(
            "Directory inode {}, block {b} (logical block 0): checksum does not match",
            d1.ino
        ),
    );
}

#[test]
fn bad_rec_len() {
    let fs = make_fs("reclen");
    let f = ino_of(&fs.img, "d1/f");
    let mut at = 0;
    edit_dir_block(&fs.img, "d1", 0, |blk, entries| {
        at = offset_of(entries, "f");
        blk[at + 4..at + 6].copy_from_slice(&6u16.to_le_bytes());
    });
    let out = detect_repair(
        &fs.img,
        &format!("entry at offset {at} has a bad rec_len 6"),
    );
    // What followed the bad record is gone from d1 and reconnected to /lost+found.
    assert!(out.contains(&format!("Unattached inode {f}")), "{out}");
    let im = Image::open(&fs.img);
    assert_eq!(
        im.read_file(&im.lookup(&format!("lost+found/#{f}"))),
        b"in d1\n"
    );
}

#[test]
fn bad_name_len() {
    let fs = make_fs("namelen");
    let mut at = 0;
    edit_dir_block(&fs.img, "", 0, |blk, entries| {
        at = offset_of(entries, "a");
        blk[at + 6] = 200;
    });
    detect_repair(
        &fs.img,
        &format!("entry at offset {at} has a bad name_len 200"),
    );
}

#[test]
fn entry_to_a_free_inode() {
    let fs = make_fs("freeino");
    let a = ino_of(&fs.img, "a");
    edit_dir_block(&fs.img, "", 0, |blk, entries| {
        let at = offset_of(entries, "a");
        blk[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
    });
    let out = detect_repair(
        &fs.img,
        "Entry 'a' in directory inode 2 refers to unused inode 100",
    );
    assert!(out.contains(&format!("Unattached inode {a}")), "{out}");
}

#[test]
fn entry_type_mismatch() {
    let fs = make_fs("ftype");
    let a = ino_of(&fs.img, "a");
    edit_dir_block(&fs.img, "", 0, |blk, entries| {
        let at = offset_of(entries, "a");
        blk[at + 7] = FT_DIR;
    });
    detect_repair(
        &fs.img,
        &format!("Entry 'a' in directory inode 2 has file type 2 (directory), but inode {a} is a regular file"),
    );
    let im = Image::open(&fs.img);
    let root = im.read_dir(&im.inode(ROOT_INO));
    assert!(root.iter().any(|e| e.0 == b"a" && e.2 == FT_REG));
}

#[test]
fn duplicate_name() {
    let fs = make_fs("dupname");
    let b = ino_of(&fs.img, "b");
    edit_dir_block(&fs.img, "", 0, |blk, _| {
        add_entry(blk, b, b"a", FT_REG).unwrap().unwrap();
    });
    detect_repair(
        &fs.img,
        "Entry 'a' in directory inode 2 has the same name as an earlier entry; clear it",
    );
    let im = Image::open(&fs.img);
    let root = im.read_dir(&im.inode(ROOT_INO));
    assert_eq!(root.iter().filter(|e| e.0 == b"a").count(), 1);
    assert_eq!(im.read_file(&im.lookup("a")), b"hello\n");
}

#[test]
fn missing_dot() {
    let fs = make_fs("dot");
    let d1 = ino_of(&fs.img, "d1");
    edit_dir_block(&fs.img, "d1", 0, |blk, _| blk[8] = b'x');
    detect_repair(&fs.img, &format!("Directory inode {d1}, block "));
    let im = Image::open(&fs.img);
    let e = im.read_dir(&im.lookup("d1"));
    assert_eq!((e[0].0.as_slice(), e[0].1), (&b"."[..], d1));
    assert!(e.iter().any(|x| x.0 == b"f"));
    assert!(e.iter().any(|x| x.0 == b"sub"));
}

#[test]
fn wrong_dotdot() {
    let fs = make_fs("dotdot");
    let d1 = ino_of(&fs.img, "d1");
    let sub = ino_of(&fs.img, "d1/sub");
    edit_dir_block(&fs.img, "d1/sub", 0, |blk, entries| {
        let at = offset_of(entries, "..");
        blk[at..at + 4].copy_from_slice(&ROOT_INO.to_le_bytes());
    });
    detect_repair(
        &fs.img,
        &format!("'..' in directory inode {sub} is 2, should be {d1}"),
    );
}

#[test]
fn directory_reachable_twice() {
    let fs = make_fs("dirtwice");
    let sub = ino_of(&fs.img, "d1/sub");
    let d1 = ino_of(&fs.img, "d1");
    let d2 = ino_of(&fs.img, "d2");
    edit_dir_block(&fs.img, "d2", 0, |blk, _| {
        add_entry(blk, sub, b"again", FT_DIR).unwrap().unwrap();
    });
    detect_repair(
        &fs.img,
        &format!("Entry 'again' in directory inode {d2} is a link to directory inode {sub}, which is already linked from directory inode {d1}"),
    );
}

#[test]
fn unreachable_directory() {
    let fs = make_fs("unreach");
    let d2 = ino_of(&fs.img, "d2");
    edit_dir_block(&fs.img, "", 0, |blk, entries| {
        remove_entry(blk, offset_of(entries, "d2")).unwrap();
    });
    let out = detect_repair(&fs.img, &format!("Unconnected directory inode {d2}"));
    assert!(
        out.contains(&format!(
            "'..' in directory inode {d2} is 2, should be {LOST_FOUND_INO}"
        )),
        "{out}"
    );
    let im = Image::open(&fs.img);
    assert_eq!(im.lookup(&format!("lost+found/#{d2}")).ino, d2);
}

#[test]
fn orphan_file_goes_to_lost_and_found() {
    let fs = make_fs("orphan");
    let a = ino_of(&fs.img, "a");
    edit_dir_block(&fs.img, "", 0, |blk, entries| {
        remove_entry(blk, offset_of(entries, "a")).unwrap();
    });
    detect_repair(
        &fs.img,
        &format!("Unattached inode {a} (regular file); connect it to /lost+found"),
    );
    let im = Image::open(&fs.img);
    assert_eq!(
        im.read_file(&im.lookup(&format!("lost+found/#{a}"))),
        b"hello\n"
    );
}

#[test]
fn link_count_wrong() {
    let fs = make_fs("links");
    let a = ino_of(&fs.img, "a");
    edit_inode(&fs.img, a, true, |i| i.links_count.set(5));
    detect_repair(&fs.img, &format!("Inode {a} ref count is 5, should be 1"));
}

#[test]
fn lost_and_found_recreated() {
    let fs = make_fs("lf");
    edit_dir_block(&fs.img, "", 0, |blk, entries| {
        remove_entry(blk, offset_of(entries, "lost+found")).unwrap();
    });
    edit_inode(&fs.img, LOST_FOUND_INO, true, |i| i.mode.set(0o030700));
    let out = detect_repair(
        &fs.img,
        "Inode 11 has an invalid mode 0o30700; clear the inode",
    );
    assert!(
        out.contains("/lost+found (inode 11) not found; create it"),
        "{out}"
    );
    let im = Image::open(&fs.img);
    assert_eq!(im.lookup("lost+found").ino, LOST_FOUND_INO);
}

/// Writes `blocks` into the log from log block `pos` (wrapping), returns the next position.
fn put_log(img: &Path, jstart: u64, jlen: u64, mut pos: u64, blocks: &[Box<Block>]) -> u64 {
    for b in blocks {
        write_block(img, jstart + pos, b);
        pos = if pos + 1 >= jlen { 1 } else { pos + 1 };
    }
    pos
}

fn set_journal_start(img: &Path, start: u64, sequence: u64) {
    let im = Image::open(img);
    let j = im.geo.journal_start();
    let mut jsb = read_block(img, j);
    let s = JournalSuperBlock::from_block_mut(&mut jsb);
    s.start.set(start);
    s.sequence.set(sequence);
    set_journal_block_checksum(im.seed(), &mut jsb);
    write_block(img, j, &jsb);
    edit_sb(img, |sb| sb.feature_incompat.set(FEATURE_INCOMPAT_RECOVER));
}

/// One transaction: descriptor, logged blocks (escaped as needed), optional revoke block
/// and commit block.
fn transaction(
    seed: u32,
    seq: u64,
    logged: &[(u64, Box<Block>)],
    revoked: &[u64],
    commit: bool,
) -> Vec<Box<Block>> {
    let mut out = Vec::new();
    if !revoked.is_empty() {
        let mut r = Box::new([0u8; BLOCK_SIZE]);
        let rv = JournalRevoke::init(&mut r, seq);
        for &b in revoked {
            assert!(rv.push(b));
        }
        set_journal_block_checksum(seed, &mut r);
        out.push(r);
    }
    if !logged.is_empty() {
        let mut d = Box::new([0u8; BLOCK_SIZE]);
        let mut data = Vec::new();
        {
            let desc = JournalDescriptor::init(&mut d, seq);
            for (target, content) in logged {
                let csum = journal_data_checksum(seed, seq, content);
                let mut copy = content.clone();
                let flags = if escape(&mut copy) {
                    TAG_FLAG_ESCAPED
                } else {
                    0
                };
                assert!(desc.push_tag(*target, flags, csum));
                data.push(copy);
            }
        }
        set_journal_block_checksum(seed, &mut d);
        out.push(d);
        out.extend(data);
    }
    if commit {
        let mut c = Box::new([0u8; BLOCK_SIZE]);
        JournalCommit::write(&mut c, seed, seq, 1_700_000_000, 0);
        out.push(c);
    }
    out
}

#[test]
fn journal_recovery_replays_a_committed_transaction() {
    let fs = make_fs("jrec");
    let im = Image::open(&fs.img);
    let (jstart, jlen, seed) = (im.geo.journal_start(), im.geo.journal_blocks(), im.seed());
    let a_block = im.block_map(&im.lookup("a")).data[&0];
    drop(im);
    let mut content = Box::new([0u8; BLOCK_SIZE]);
    content[..6].copy_from_slice(b"HELLO\n");
    let log = transaction(seed, 1, &[(a_block, content.clone())], &[], true);
    put_log(&fs.img, jstart, jlen, 1, &log);
    set_journal_start(&fs.img, 1, 1);

    let out = detect_repair(
        &fs.img,
        "Journal needs recovery: 1 committed transaction(s)",
    );
    assert!(
        out.contains("journal replayed: 1 transaction(s), 1 block(s) written"),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, a_block), content);
    let im = Image::open(&fs.img);
    assert!(!im.sb().needs_recovery());
    let jsb = read_block(&fs.img, jstart);
    let j = JournalSuperBlock::validate(&jsb, seed, jlen).unwrap();
    assert_eq!((j.start.get(), j.sequence.get()), (0, 2));
}

#[test]
fn journal_replay_wraps_escapes_revokes_and_stops_at_uncommitted() {
    let fs = make_fs("jwrap");
    let im = Image::open(&fs.img);
    let (jstart, jlen, seed) = (im.geo.journal_start(), im.geo.journal_blocks(), im.seed());
    let free = first_free_data_block(&fs.img) + 1000;
    drop(im);
    let (ba, bb, bc, bd) = (free, free + 1, free + 2, free + 3);
    let fill = |v: u8| Box::new([v; BLOCK_SIZE]);
    let mut magic = fill(0x11);
    magic[..4].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
    for b in [ba, bb, bc, bd] {
        write_block(&fs.img, b, &fill(0xEE));
    }
    // Transaction 7 logs A (escaped: it starts with the journal magic) and B; 8 revokes B
    // and logs C; 9 revokes C and logs D but never commits, so neither counts. The log starts 3 blocks before its end, so
    // it wraps to log block 1.
    let mut log = transaction(seed, 7, &[(ba, magic.clone()), (bb, fill(0x22))], &[], true);
    log.extend(transaction(seed, 8, &[(bc, fill(0x33))], &[bb], true));
    log.extend(transaction(seed, 9, &[(bd, fill(0x44))], &[bc], false));
    let start = jlen - 3;
    put_log(&fs.img, jstart, jlen, start, &log);
    set_journal_start(&fs.img, start, 7);

    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("Journal needs recovery: 2 committed transaction(s)"),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, ba), fill(0xEE));
    let (code, out) = fsck(&fs.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "journal replayed: 2 transaction(s), 2 block(s) written, 1 revoked, 0 skipped"
        ),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, ba), magic);
    assert_eq!(read_block(&fs.img, bb), fill(0xEE));
    assert_eq!(read_block(&fs.img, bc), fill(0x33));
    assert_eq!(read_block(&fs.img, bd), fill(0xEE));
    let jsb = read_block(&fs.img, jstart);
    let j = JournalSuperBlock::validate(&jsb, seed, jlen).unwrap();
    assert_eq!((j.start.get(), j.sequence.get()), (0, 9));
    assert_eq!(fsck(&fs.img, &["-n"]).0, 0);
}

#[test]
fn journal_block_with_a_bad_checksum_is_not_replayed() {
    let fs = make_fs("jbad");
    let im = Image::open(&fs.img);
    let (jstart, jlen, seed) = (im.geo.journal_start(), im.geo.journal_blocks(), im.seed());
    let target = first_free_data_block(&fs.img) + 500;
    drop(im);
    write_block(&fs.img, target, &[0xEE; BLOCK_SIZE]);
    let mut log = transaction(
        seed,
        1,
        &[(target, Box::new([0x55; BLOCK_SIZE]))],
        &[],
        true,
    );
    log[1][100] ^= 1;
    put_log(&fs.img, jstart, jlen, 1, &log);
    set_journal_start(&fs.img, 1, 1);
    let (code, out) = fsck(&fs.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "the logged copy of block {target} has a bad checksum; skip it"
        )),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, target)[..], [0xEE; BLOCK_SIZE][..]);
    assert_eq!(fsck(&fs.img, &["-n"]).0, 0);
}

#[test]
fn usage_and_operational_errors() {
    let fs = make_fs("usage");
    assert_eq!(fsck(Path::new("-n"), &[]).0, 16);
    assert_eq!(fsck(&fs.img, &["-n", "-y"]).0, 16);
    assert_eq!(fsck(&fs.img, &["-x"]).0, 16);
    assert_eq!(fsck(&fs.img, &["-t", "ext4", "-n"]).0, 16);
    // Without -n/-y/-p and without a terminal there is no one to ask.
    assert_eq!(fsck(&fs.img, &[]).0, 16);
    let (code, out) = fsck(&fs.img, &["-V"]);
    assert_eq!((code, out.starts_with("fsck.aegisfs ")), (0, true), "{out}");
    // fsck(8) passes -t-less options plus -C; -t aegisfs is accepted.
    let (code, out) = fsck(&fs.img, &["-t", "aegisfs", "-C", "0", "-n"]);
    assert_eq!(code, 0, "{out}");
    let missing = fs.img.with_file_name("missing");
    let (code, out) = fsck(&missing, &["-n"]);
    assert_eq!(code, 8, "{out}");
    assert!(out.contains("cannot stat"), "{out}");
    let mut blk = read_block(&fs.img, 0);
    blk[1024] = b'X';
    write_block(&fs.img, 0, &blk);
    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains("bad magic number (not an AegisFS filesystem)"),
        "{out}"
    );
}

#[test]
fn progress_lines_on_a_descriptor() {
    let fs = make_fs("progress");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{FSCK} -n -C 3 '{}' 3>&1 >/dev/null",
            fs.img.display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines = text(&out.stdout);
    let name = fs.img.display().to_string();
    assert!(
        lines.lines().any(|l| l == format!("1 0 1 {name}")),
        "{lines}"
    );
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("2 0 ") && l.ends_with(&name)),
        "{lines}"
    );
}

/// Runs the library's `run` with an injected mount table.
fn run_lib(args: &[&str], mounts: &Path, answers: Option<&str>) -> (i32, String) {
    let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = Cursor::new(answers.unwrap_or("").as_bytes().to_vec());
    let mut env = Env {
        stdout: &mut out,
        stderr: &mut err,
        stdin: &mut input,
        stdin_is_tty: answers.is_some(),
        stdout_is_tty: false,
        mounts: MountSources {
            mounts: mounts.to_path_buf(),
            sys_block: mounts.with_file_name("no-sys-block"),
        },
    };
    let code = run(&args, &mut env);
    (code, format!("{}{}", text(&out), text(&err)))
}

#[test]
fn mounted_filesystem_is_not_repaired() {
    let fs = make_fs("mounted");
    let table = fs.img.with_file_name("mounts");
    fs::write(
        &table,
        format!(
            "proc /proc proc rw 0 0\n{} /mnt/x aegisfs rw 0 0\n",
            fs.img.display()
        ),
    )
    .unwrap();
    let img = fs.img.to_str().unwrap();
    let before = fs::read(&fs.img).unwrap();
    let (code, out) = run_lib(&["-fy", img], &table, None);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains("is mounted on /mnt/x: will not repair a mounted filesystem"),
        "{out}"
    );
    let (code, out) = run_lib(&["-n", img], &table, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: "), "{out}");
    assert_eq!(fs::read(&fs.img).unwrap(), before);
}

#[test]
fn sigint_cancels_with_status_32() {
    let scratch = Scratch::new("fsck-sigint");
    let img = scratch.join("img");
    // Large enough (511 groups of inode tables) that pass 1 is still running when the
    // signal arrives.
    mkfs_ok(&["-q".as_ref(), img.as_os_str(), "64G".as_ref()]);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec {FSCK} -n -C 3 '{}' 3>&1 >/dev/null",
            img.display()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("1 0 511 "), "{first}");
    // SAFETY: kill(2) on the child's pid, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(32));
}

#[test]
fn superblock_checksum_with_a_damaged_seed() {
    let fs = make_fs("sbseed");
    let mut blk = read_block(&fs.img, 0);
    blk[1024 + 0x100] ^= 0x01;
    write_block(&fs.img, 0, &blk);
    let out = detect_repair(&fs.img, "Superblock checksum seed 0x");
    assert!(out.contains("Superblock checksum does not match"), "{out}");
    // Damage to both the seed and group 0's descriptor cannot be told apart from a
    // foreign filesystem: nothing is changed.
    let mut blk = read_block(&fs.img, 0);
    blk[1024 + 0x100] ^= 0x01;
    write_block(&fs.img, 0, &blk);
    let mut gdt = read_block(&fs.img, 1);
    gdt[0x3C] ^= 1;
    write_block(&fs.img, 1, &gdt);
    let before = fs::read(&fs.img).unwrap();
    let (code, out) = fsck(&fs.img, &["-fy"]);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains("neither its checksum seed nor its UUID's matches"),
        "{out}"
    );
    assert_eq!(fs::read(&fs.img).unwrap(), before);
}

#[test]
fn reserved_fields_not_zero() {
    let fs = make_fs("reserved");
    let a = ino_of(&fs.img, "a");
    edit_inode(&fs.img, a, true, |i| i.reserved[3] = 9);
    detect_repair(&fs.img, &format!("Inode {a} reserved bytes are not zero"));
    edit_sb(&fs.img, |sb| sb.reserved[100] = 1);
    detect_repair(&fs.img, "Superblock reserved bytes are not zero");
    let mut gdt = read_block(&fs.img, 1);
    gdt[64 * 5 + 8] = 1;
    write_block(&fs.img, 1, &gdt);
    detect_repair(&fs.img, "Unused group descriptor slot 5 is not zero");
}

#[test]
fn symlink_target_with_nul() {
    let fs = make_fs("symnul");
    let ln = ino_of(&fs.img, "ln");
    edit_inode(&fs.img, ln, true, |i| {
        let mut t = i.inline_data().unwrap().to_vec();
        t[0] = 0;
        i.set_inline_data(&t).unwrap();
    });
    let out = detect_repair(
        &fs.img,
        &format!("Symlink inode {ln} has a NUL byte in its target"),
    );
    assert!(
        out.contains(&format!(
            "Entry 'ln' in directory inode 2 refers to unused inode {ln}"
        )),
        "{out}"
    );
}

#[test]
fn removed_directory_still_allocated_is_released() {
    let fs = make_fs("rmdir");
    let d2 = ino_of(&fs.img, "d2");
    edit_dir_block(&fs.img, "", 0, |blk, entries| {
        remove_entry(blk, offset_of(entries, "d2")).unwrap();
    });
    edit_inode(&fs.img, d2, true, |i| i.links_count.set(0));
    let out = detect_repair(
        &fs.img,
        &format!("Directory inode {d2} has no links and no entry (a removed directory still allocated); release it"),
    );
    assert!(
        out.contains(&format!("Inode bitmap differences: -{d2}")),
        "{out}"
    );
    // Preen may do this alone.
    let (code, _) = fsck(&fs.img, &["-fp"]);
    assert_eq!(code, 0);
}

#[test]
fn preen_stops_at_an_unexpected_inconsistency() {
    let fs = make_fs("preen");
    let free = Image::open(&fs.img).sb().free_blocks.get();
    // Not cleanly unmounted: preen checks without -f.
    edit_sb(&fs.img, |sb| {
        sb.free_blocks.set(free - 1);
        sb.state.set(0);
    });
    let (code, out) = fsck(&fs.img, &["-p"]);
    assert_eq!(code, 1, "{out}");
    let name = fs.img.display();
    assert!(
        out.contains(&format!(
            "{name}: Free blocks count wrong ({}, counted={free}).  FIXED.",
            free - 1
        )),
        "{out}"
    );
    let a = ino_of(&fs.img, "a");
    edit_inode(&fs.img, a, true, |i| i.links_count.set(3));
    let (code, out) = fsck(&fs.img, &["-fp"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains(&format!("{name}: Inode {a} ref count is 3, should be 1.\n\n{name}: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.")),
        "{out}"
    );
    assert_eq!(fsck(&fs.img, &["-n"]).0, 4);
    assert!(Image::open(&fs.img).sb().is_clean());
}

#[test]
fn interactive_answers() {
    let fs = make_fs("ask");
    let table = fs.img.with_file_name("mounts");
    fs::write(&table, "proc /proc proc rw 0 0\n").unwrap();
    let img = fs.img.to_str().unwrap();
    let a = ino_of(&fs.img, "a");
    let b = ino_of(&fs.img, "b");
    edit_inode(&fs.img, a, true, |i| i.links_count.set(3));
    edit_inode(&fs.img, b, true, |i| i.links_count.set(4));
    // "n" for the first question, an unclear answer then the default (yes) for the second.
    let (code, out) = run_lib(&["-f", img], &table, Some("n\nmaybe\n\n"));
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains(&format!("Inode {a} ref count is 3, should be 1.  Fix<y>? ")),
        "{out}"
    );
    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains(&format!("Inode {a} ref count is 3")), "{out}");
    assert!(!out.contains(&format!("Inode {b} ref count")), "{out}");
    // Errors were left: the superblock says so, and a preen run checks without -f.
    let sb_state = Image::open(&fs.img).sb().state.get();
    assert_eq!(sb_state, aegisfs_format::disk::STATE_ERRORS);
    let (code, out) = fsck(&fs.img, &["-p"]);
    assert_eq!(code, 4, "{out}");
}

#[test]
fn symlink_with_a_second_block() {
    let fs = make_fs("symlong");
    let ln = ino_of(&fs.img, "longln");
    let spare = first_free_data_block(&fs.img) + 10;
    edit_inode(&fs.img, ln, true, |i| {
        i.set_direct_ptr(1, spare);
        i.blocks.set(2);
    });
    let out = detect_repair(
        &fs.img,
        &format!("Symlink inode {ln} maps logical block 1, past its one block; clear it"),
    );
    assert!(
        out.contains(&format!("Inode {ln} block count is 2, should be 1")),
        "{out}"
    );
    let im = Image::open(&fs.img);
    assert_eq!(
        im.read_file(&im.lookup("longln")),
        "t".repeat(300).as_bytes()
    );
}

#[test]
fn block_device_checked_and_exclusive_for_repairs() {
    let fs = make_fs("loop");
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&fs.img)
        .output();
    let dev = match out {
        Ok(o) if o.status.success() => text(&o.stdout).trim().to_string(),
        _ => {
            eprintln!("skipping: no loop device");
            return;
        }
    };
    let a = ino_of(&fs.img, "a");
    edit_inode(&fs.img, a, true, |i| i.links_count.set(2));
    let holder = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&dev)
        .unwrap();
    let dev_path = Path::new(&dev);
    let busy = fsck(dev_path, &["-fy"]);
    // -n does not need the device to itself.
    let checked = fsck(dev_path, &["-n"]);
    drop(holder);
    let repaired = fsck(dev_path, &["-fy"]);
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    assert_eq!(busy.0, 8, "{}", busy.1);
    assert!(busy.1.contains("device is in use"), "{}", busy.1);
    assert_eq!(checked.0, 4, "{}", checked.1);
    assert!(
        checked
            .1
            .contains(&format!("Inode {a} ref count is 2, should be 1")),
        "{}",
        checked.1
    );
    assert_eq!(repaired.0, 1, "{}", repaired.1);
    assert_eq!(fsck(&fs.img, &["-n"]).0, 0);
}

#[test]
fn journal_transaction_ids_wrap() {
    let fs = make_fs("jseqwrap");
    let im = Image::open(&fs.img);
    let (jstart, jlen, seed) = (im.geo.journal_start(), im.geo.journal_blocks(), im.seed());
    let free = first_free_data_block(&fs.img) + 2000;
    drop(im);
    let fill = |v: u8| Box::new([v; BLOCK_SIZE]);
    for b in [free, free + 1] {
        write_block(&fs.img, b, &fill(0xEE));
    }
    // u64::MAX logs both blocks; the next id, 0, revokes the second.
    let mut log = transaction(
        seed,
        u64::MAX,
        &[(free, fill(1)), (free + 1, fill(2))],
        &[],
        true,
    );
    log.extend(transaction(seed, 0, &[], &[free + 1], true));
    put_log(&fs.img, jstart, jlen, 1, &log);
    set_journal_start(&fs.img, 1, u64::MAX);
    let (code, out) = fsck(&fs.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("journal replayed: 2 transaction(s), 1 block(s) written, 1 revoked"),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, free), fill(1));
    assert_eq!(read_block(&fs.img, free + 1), fill(0xEE));
    let j = read_block(&fs.img, jstart);
    assert_eq!(JournalSuperBlock::from_block(&j).sequence.get(), 1);
    assert_eq!(fsck(&fs.img, &["-n"]).0, 0);
}
