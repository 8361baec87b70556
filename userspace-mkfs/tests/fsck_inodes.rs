//! fsck.aegisfs on damaged inodes and block maps (pass 1 and 1B), each damaged in exactly
//! one way: `-n` reports it, `-fy` repairs it, a second `-n` is clean.

mod common;

use aegisfs_format::disk::{IndirectBlock, BLOCK_SIZE, ROOT_INO};
use common::fsck::{
    detect_repair, edit_inode, first_free_data_block, ino_of, make_fs, read_block, write_block,
};
use common::Image;

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
