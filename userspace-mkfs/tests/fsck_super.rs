//! fsck.aegisfs on damaged superblocks, group descriptors and bitmaps (passes 0 and 5):
//! each image is damaged in exactly one way, then `-n` must report it (exit 4), `-fy` must
//! repair it (exit 1) and a second `-n` must find the filesystem clean (exit 0).

mod common;

use std::fs;

use aegisfs_format::disk::STATE_CLEAN;
use common::fsck::{
    detect_repair, edit_desc0, edit_inode, edit_sb, first_free_data_block, flip_bitmap_bit, fsck,
    ino_of, make_fs, read_block, write_block,
};
use common::Image;

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
fn superblock_free_counts_of_a_filesystem_that_stopped_mounted() {
    // Not marked clean: the totals lag as a crash leaves them, and the next mount
    // recounts them. `-n` notes it without an error; `-y` still rewrites them.
    let fs = make_fs("sbfree-unclean");
    let free = Image::open(&fs.img).sb().free_blocks.get();
    edit_sb(&fs.img, |sb| {
        sb.free_blocks.set(free + 3);
        sb.state.set(sb.state.get() & !STATE_CLEAN);
    });
    let msg = format!("Free blocks count wrong ({}, counted={free})", free + 3);
    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "{msg}: not marked clean, the next mount recounts it"
        )),
        "{out}"
    );
    let (code, out) = fsck(&fs.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&msg), "{out}");
    assert_eq!(Image::open(&fs.img).sb().free_blocks.get(), free);
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
