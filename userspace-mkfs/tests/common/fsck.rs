//! Helpers of the fsck tests: a small source tree made into an image by mkfs, running
//! fsck, and editing one structure of an image while keeping the others valid.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{mkfs_ok, run_tool, Image, Scratch};
use aegisfs_format::checksum::set_inode_checksum;
use aegisfs_format::dir::{iter_dir_block, set_dir_block_checksum};
use aegisfs_format::disk::{GroupDesc, Inode, SuperBlock, BLOCK_SIZE, BLOCK_SIZE_U64};

pub const FSCK: &str = env!("CARGO_BIN_EXE_fsck-aegisfs");

pub type Block = [u8; BLOCK_SIZE];

/// An image made by mkfs, in a scratch directory removed on drop.
pub struct Fs {
    _scratch: Scratch,
    pub img: PathBuf,
}

/// A fresh image with a small tree: files with direct and indirect blocks, directories,
/// a symlink.
pub fn make_fs(name: &str) -> Fs {
    make_fs_from(name, populate_small_tree)
}

/// The small tree of [`make_fs`].
pub fn populate_small_tree(src: &Path) {
    fs::create_dir_all(src.join("d1/sub")).unwrap();
    fs::create_dir_all(src.join("d2")).unwrap();
    fs::write(src.join("a"), b"hello\n").unwrap();
    fs::write(src.join("b"), vec![0xB5u8; 2 * BLOCK_SIZE]).unwrap();
    let big: Vec<u8> = (0..20 * BLOCK_SIZE).map(|i| (i / 7) as u8).collect();
    fs::write(src.join("big"), big).unwrap();
    fs::write(src.join("d1/f"), b"in d1\n").unwrap();
    std::os::unix::fs::symlink("a", src.join("ln")).unwrap();
    std::os::unix::fs::symlink("t".repeat(300), src.join("longln")).unwrap();
}

/// A fresh 64 MiB image made by mkfs from the tree `populate` writes in a source
/// directory.
pub fn make_fs_from(name: &str, populate: impl FnOnce(&Path)) -> Fs {
    let scratch = Scratch::new(&format!("fsck-{name}"));
    let src = scratch.join("src");
    fs::create_dir_all(&src).unwrap();
    populate(&src);
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

pub fn fsck(img: &Path, args: &[&str]) -> (i32, String) {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    all.push(img.as_os_str());
    let (code, out, err) = run_tool(FSCK, &all);
    (code, out + &err)
}

/// `-n` reports `msg` with exit 4, `-fy` repairs with exit 1, `-n` is then clean.
pub fn detect_repair(img: &Path, msg: &str) -> String {
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

pub fn read_block(img: &Path, b: u64) -> Box<Block> {
    let f = fs::File::open(img).unwrap();
    let mut buf = Box::new([0u8; BLOCK_SIZE]);
    f.read_exact_at(&mut buf[..], b * BLOCK_SIZE_U64).unwrap();
    buf
}

pub fn write_block(img: &Path, b: u64, buf: &Block) {
    let f = fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(buf, b * BLOCK_SIZE_U64).unwrap();
}

pub fn ino_of(img: &Path, path: &str) -> u32 {
    Image::open(img).lookup(path).ino
}

/// Applies `f` to inode `ino` in place; with `csum` its checksum is recomputed so only
/// the change itself is wrong.
pub fn edit_inode(img: &Path, ino: u32, csum: bool, f: impl FnOnce(&mut Inode)) {
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
pub fn edit_dir_block(
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

pub fn offset_of(entries: &[(usize, u32, Vec<u8>)], name: &str) -> usize {
    entries.iter().find(|e| e.2 == name.as_bytes()).unwrap().0
}

/// Applies `f` to group 0's descriptor and recomputes its checksum.
pub fn edit_desc0(img: &Path, f: impl FnOnce(&mut GroupDesc)) {
    let seed = Image::open(img).seed();
    let mut blk = read_block(img, 1);
    let d = GroupDesc::in_block_mut(&mut blk, 0);
    f(d);
    d.update_checksum(seed, 0);
    write_block(img, 1, &blk);
}

/// Applies `f` to the superblock and recomputes its checksum.
pub fn edit_sb(img: &Path, f: impl FnOnce(&mut SuperBlock)) {
    let mut blk = read_block(img, 0);
    let sb = SuperBlock::in_block_mut(&mut blk);
    f(sb);
    sb.update_checksum();
    write_block(img, 0, &blk);
}

/// Sets or clears a bit of group 0's block or inode bitmap, keeping its checksum valid.
pub fn flip_bitmap_bit(img: &Path, inode_bitmap: bool, bit: u32, value: bool) {
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

pub fn first_free_data_block(img: &Path) -> u64 {
    let im = Image::open(img);
    let bm = read_block(img, im.geo.block_bitmap_block(0).unwrap());
    let i = aegisfs_format::disk::bitmap_find_clear(&bm[..], 0, 32768).unwrap();
    im.geo.first_group_block() + u64::from(i)
}

/// Applies `f` to the `inode_size` bytes of inode `ino` in place, then recomputes its
/// checksum.
pub fn edit_inode_raw(img: &Path, ino: u32, f: impl FnOnce(&mut [u8])) {
    let im = Image::open(img);
    let loc = im.geo.inode_location(ino).unwrap();
    let isz = usize::from(im.geo.inode_size());
    let mut blk = read_block(img, loc.block);
    let raw = &mut blk[loc.offset..loc.offset + isz];
    f(raw);
    set_inode_checksum(im.seed(), ino, raw).unwrap();
    write_block(img, loc.block, &blk);
}

/// Takes the first free data block of group 0: its bitmap bit, the descriptor's and the
/// superblock's free counts.
pub fn take_block(img: &Path) -> u64 {
    let b = first_free_data_block(img);
    let bit = u32::try_from(b - Image::open(img).geo.first_group_block()).unwrap();
    flip_bitmap_bit(img, false, bit, true);
    edit_desc0(img, |d| d.free_blocks.set(d.free_blocks.get() - 1));
    edit_sb(img, |sb| sb.free_blocks.set(sb.free_blocks.get() - 1));
    b
}
