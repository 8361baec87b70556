//! fsck.aegisfs and the inode table blocks pass 1 does not read: those whose slots a
//! trusted inode bitmap (its checksum and the descriptor's right) marks all free. A live
//! inode hiding in such a block must still be found when an entry names it (the check
//! restarts and reads every block), and the blocks it holds must still be accounted for.

mod common;

use std::path::Path;

use aegisfs_format::checksum::set_inode_checksum;
use aegisfs_format::dir::remove_entry;
use common::fsck::{
    detect_repair, edit_desc0, edit_dir_block, edit_inode, edit_sb, flip_bitmap_bit, fsck, make_fs,
    offset_of, read_block, write_block,
};
use common::Image;

const RESTART: &str = "restarting from pass 1";

/// Moves file `name` of the root (one data block, no indirect or xattr block) to the
/// first slot of inode table block 20, alone in its block: the slot, both bitmap bits and
/// the entry, every checksum and count kept right. Returns the new inode number.
fn move_to_lonely_slot(img: &Path, name: &str) -> u32 {
    let im = Image::open(img);
    let (seed, geo) = (im.seed(), im.geo);
    let from = im.lookup(name).ino;
    let to = 20 * geo.inodes_per_block() + 1;
    assert!(to < geo.inodes_per_group(), "the image has too few inodes");
    drop(im);
    let isz = usize::from(geo.inode_size());
    let (src, dst) = (
        geo.inode_location(from).unwrap(),
        geo.inode_location(to).unwrap(),
    );
    let mut blk = read_block(img, src.block);
    let mut raw = blk[src.offset..src.offset + isz].to_vec();
    blk[src.offset..src.offset + isz].fill(0);
    write_block(img, src.block, &blk);
    set_inode_checksum(seed, to, &mut raw).unwrap();
    let mut blk = read_block(img, dst.block);
    assert!(
        blk.iter().all(|&b| b == 0),
        "block 20 of the table is in use"
    );
    blk[dst.offset..dst.offset + isz].copy_from_slice(&raw);
    write_block(img, dst.block, &blk);
    flip_bitmap_bit(img, true, from - 1, false);
    flip_bitmap_bit(img, true, to - 1, true);
    edit_dir_block(img, "", 0, |blk, entries| {
        let off = offset_of(entries, name);
        blk[off..off + 4].copy_from_slice(&to.to_le_bytes());
    });
    let (code, out) = fsck(img, &["-n"]);
    assert_eq!(code, 0, "after the move\n{out}");
    to
}

#[test]
fn entry_names_a_live_inode_in_a_skipped_block() {
    let fs = make_fs("skiplive");
    let x = move_to_lonely_slot(&fs.img, "a");
    // Its bit cleared with the bitmap checksum kept right: pass 1 skips its block.
    flip_bitmap_bit(&fs.img, true, x - 1, false);
    let fixed = detect_repair(&fs.img, &format!("Inode bitmap differences: +{x}"));
    assert!(fixed.contains(RESTART), "{fixed}");
    let im = Image::open(&fs.img);
    assert_eq!(im.lookup("a").ino, x);
    assert_eq!(im.read_file(&im.lookup("a")), b"hello\n");
}

#[test]
fn a_restart_reports_each_problem_once() {
    let fs = make_fs("skiponce");
    let x = move_to_lonely_slot(&fs.img, "a");
    flip_bitmap_bit(&fs.img, true, x - 1, false);
    // A problem pass 1 finds before the restart, and again after it.
    let b = Image::open(&fs.img).lookup("b").ino;
    edit_inode(&fs.img, b, true, |i| i.reserved[0] = 1);
    let msg = format!("Inode {b} reserved bytes are not zero");
    for args in [&["-n"][..], &["-f", "-y"]] {
        let (code, out) = fsck(&fs.img, args);
        assert_eq!(code, if args[0] == "-n" { 4 } else { 1 }, "{out}");
        assert_eq!(out.matches(RESTART).count(), 1, "{out}");
        assert_eq!(out.matches(&msg).count(), 1, "{out}");
        assert!(
            out.contains(&format!("Inode bitmap differences: +{x}")),
            "{out}"
        );
    }
    assert_eq!(fsck(&fs.img, &["-n"]).0, 0);
}

#[test]
fn bitmap_with_a_bad_checksum_is_not_trusted() {
    let fs = make_fs("skipbadsum");
    let x = move_to_lonely_slot(&fs.img, "a");
    let im = Image::open(&fs.img);
    let ib = im.geo.inode_bitmap_block(0).unwrap();
    drop(im);
    // The bit cleared, the checksum left as it was: the whole table is read and pass 1
    // finds the inode without a restart.
    let mut bm = read_block(&fs.img, ib);
    aegisfs_format::disk::bitmap_set(&mut bm[..], x - 1, false);
    write_block(&fs.img, ib, &bm);
    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(!out.contains(RESTART), "{out}");
    detect_repair(&fs.img, &format!("Inode bitmap differences: +{x}"));
}

/// An unnamed live inode in a slot a trusted bitmap marks free is free by docs/format.md
/// (the bytes of a free slot mean nothing); what it held is still found: its blocks are
/// marked in use without an owner.
#[test]
fn unnamed_live_inode_in_a_skipped_block_leaves_its_blocks() {
    let fs = make_fs("skipunnamed");
    let x = move_to_lonely_slot(&fs.img, "a");
    let data = {
        let im = Image::open(&fs.img);
        im.block_map(&im.inode(x)).data[&0]
    };
    edit_dir_block(&fs.img, "", 0, |blk, entries| {
        remove_entry(blk, offset_of(entries, "a")).unwrap();
    });
    flip_bitmap_bit(&fs.img, true, x - 1, false);
    edit_desc0(&fs.img, |d| d.free_inodes.set(d.free_inodes.get() + 1));
    edit_sb(&fs.img, |sb| sb.free_inodes.set(sb.free_inodes.get() + 1));
    let fixed = detect_repair(&fs.img, &format!("Block bitmap differences: -{data}"));
    assert!(!fixed.contains(&format!("node {x}")), "{fixed}");
    assert!(!fixed.contains(&format!("+{x}")), "{fixed}");
}
