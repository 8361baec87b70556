//! fsck.aegisfs on UNWRITTEN block pointers (bit 63, docs/format.md "Block mapping"):
//! allowed on data pointers of regular files, also past the size; anywhere else a problem
//! that the repair fixes by clearing the bit.

mod common;

use aegisfs_format::blockmap::PTR_UNWRITTEN;
use aegisfs_format::disk::{IndirectBlock, BLOCK_SIZE, BLOCK_SIZE_U64};
use common::fsck::{detect_repair, edit_inode, fsck, ino_of, make_fs, read_block, write_block};
use common::Image;

/// Sets the UNWRITTEN bit on entries `range` of the inode's single indirect block.
fn mark_indirect_leaves(img: &std::path::Path, file: &str, range: std::ops::Range<usize>) {
    let im = Image::open(img);
    let node = im.lookup(file);
    let ind = node.i().indirect.get();
    let generation = node.i().generation.get();
    let seed = im.seed();
    drop(im);
    let mut blk = read_block(img, ind);
    let ib = IndirectBlock::from_block_mut(&mut blk);
    for k in range {
        let p = ib.ptr(k).unwrap();
        assert_ne!(p, 0);
        ib.set_ptr(k, p | PTR_UNWRITTEN);
    }
    ib.update_checksum(seed, node.ino, generation);
    write_block(img, ind, &blk);
}

fn assert_clean(img: &std::path::Path) {
    let (code, out) = fsck(img, &["-f", "-n"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("Fix?"), "{out}");
}

#[test]
fn unwritten_blocks_inside_and_past_the_size_are_clean() {
    let fs = make_fs("unwritten-ok");
    // Inside the size: b's second block (direct) and big's first indirect leaves.
    let b = ino_of(&fs.img, "b");
    edit_inode(&fs.img, b, true, |i| {
        let p = i.direct_ptr(1).unwrap();
        i.set_direct_ptr(1, p | PTR_UNWRITTEN);
    });
    mark_indirect_leaves(&fs.img, "big", 0..3);
    assert_clean(&fs.img);
    // Past the size (KEEP_SIZE preallocation): b's size ends in block 0, big's in block 12
    // and every block of big is now unwritten; all stay counted in `blocks`.
    edit_inode(&fs.img, b, true, |i| i.size.set(100));
    let big = ino_of(&fs.img, "big");
    mark_indirect_leaves(&fs.img, "big", 3..8);
    edit_inode(&fs.img, big, true, |i| {
        i.size.set(12 * BLOCK_SIZE_U64 + 1);
        for d in 0..12 {
            let p = i.direct_ptr(d).unwrap();
            i.set_direct_ptr(d, p | PTR_UNWRITTEN);
        }
    });
    let im = Image::open(&fs.img);
    assert_eq!(im.inode(big).i().blocks.get(), 21);
    drop(im);
    assert_clean(&fs.img);
    let (code, out) = fsck(&fs.img, &["-f", "-y"]);
    assert_eq!(code, 0, "{out}");
    let im = Image::open(&fs.img);
    assert_eq!(
        im.inode(b).i().direct_ptr(1).unwrap() & PTR_UNWRITTEN,
        PTR_UNWRITTEN
    );
    assert_eq!(im.inode(b).i().blocks.get(), 2);
    assert_eq!(im.inode(b).i().size.get(), 100);
}

#[test]
fn written_block_past_the_size_is_still_an_error() {
    let fs = make_fs("unwritten-eof");
    let big = ino_of(&fs.img, "big");
    // Logical blocks 12..15 unwritten, 15..20 written: a size of one block leaves written
    // blocks past it.
    mark_indirect_leaves(&fs.img, "big", 0..3);
    edit_inode(&fs.img, big, true, |i| i.size.set(4096));
    detect_repair(
        &fs.img,
        &format!(
            "Inode {big} size is 4096, should be {}",
            20 * BLOCK_SIZE_U64
        ),
    );
    // An unwritten last block does not count towards the size either.
    let b = ino_of(&fs.img, "b");
    edit_inode(&fs.img, b, true, |i| {
        let p = i.direct_ptr(0).unwrap();
        i.set_direct_ptr(0, p | PTR_UNWRITTEN);
        i.size.set(0);
    });
    detect_repair(&fs.img, &format!("Inode {b} size is 0, should be 8192"));
}

#[test]
fn unwritten_flag_on_an_indirect_pointer_is_cleared() {
    let fs = make_fs("unwritten-ind");
    let im = Image::open(&fs.img);
    let node = im.lookup("big");
    let ind = node.i().indirect.get();
    drop(im);
    edit_inode(&fs.img, node.ino, true, |i| {
        i.set_tree_root(1, ind | PTR_UNWRITTEN);
    });
    detect_repair(
        &fs.img,
        &format!(
            "Inode {} indirect block pointer {ind} at logical block 12 has the unwritten flag",
            node.ino
        ),
    );
    let im = Image::open(&fs.img);
    assert_eq!(im.inode(node.ino).i().indirect.get(), ind);
    let want: Vec<u8> = (0..20 * BLOCK_SIZE).map(|i| (i / 7) as u8).collect();
    assert_eq!(im.read_file(&im.lookup("big")), want);
}

#[test]
fn unwritten_flag_on_directory_and_symlink_blocks_is_cleared() {
    for (name, what) in [("d2", "directory"), ("longln", "symlink")] {
        let fs = make_fs(&format!("unwritten-{name}"));
        let ino = ino_of(&fs.img, name);
        let mut block = 0;
        edit_inode(&fs.img, ino, true, |i| {
            block = i.direct_ptr(0).unwrap();
            i.set_direct_ptr(0, block | PTR_UNWRITTEN);
        });
        detect_repair(
            &fs.img,
            &format!("Inode {ino} block pointer {block} at logical block 0 has the unwritten flag"),
        );
        let im = Image::open(&fs.img);
        assert_eq!(im.inode(ino).i().direct_ptr(0), Some(block), "{what}");
        im.check();
    }
}

#[test]
fn unwritten_flag_on_an_entry_of_an_upper_indirect_level_is_found() {
    // An entry of a double indirect block points at an indirect block, not data: `big`'s
    // single indirect block is moved under a new double indirect block whose entry 0
    // carries the flag.
    let fs = make_fs("unwritten-mid");
    let big = ino_of(&fs.img, "big");
    let im = Image::open(&fs.img);
    let ind = im.inode(big).i().indirect.get();
    let seed = im.seed();
    let generation = im.inode(big).i().generation.get();
    drop(im);
    // Move the single indirect block under a new double indirect block: logical blocks
    // 523.. then map the data; the size follows.
    let dind = common::fsck::first_free_data_block(&fs.img);
    let mut blk = Box::new([0u8; BLOCK_SIZE]);
    {
        let ib = IndirectBlock::from_block_mut(&mut blk);
        ib.set_ptr(0, ind | PTR_UNWRITTEN);
        ib.update_checksum(seed, big, generation);
    }
    write_block(&fs.img, dind, &blk);
    edit_inode(&fs.img, big, true, |i| {
        i.set_tree_root(1, 0);
        i.set_tree_root(2, dind);
        i.blocks.set(22);
        i.size.set((523 + 8) * BLOCK_SIZE_U64);
    });
    let (code, out) = fsck(&fs.img, &["-f", "-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains(&format!(
            "Inode {big} indirect block pointer {ind} at logical block 523 has the unwritten flag"
        )),
        "{out}"
    );
}
