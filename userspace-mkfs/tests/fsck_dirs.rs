//! fsck.aegisfs on damaged directories, connectivity and link counts (passes 2 to 4), each
//! damaged in exactly one way: `-n` reports it, `-fy` repairs it, a second `-n` is clean.

mod common;

use aegisfs_format::dir::{add_entry, remove_entry};
use aegisfs_format::disk::{FT_DIR, FT_REG, LOST_FOUND_INO, ROOT_INO};
use common::fsck::{
    detect_repair, edit_dir_block, edit_inode, fsck, ino_of, make_fs, make_fs_from, offset_of,
    read_block, write_block,
};
use common::Image;

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

/// Found by the image fuzzer (issue 8): the old entry of a lost+found that is no
/// directory stayed beside the new one.
#[test]
fn lost_found_that_is_not_a_directory() {
    let fs = make_fs("lfblk");
    edit_inode(&fs.img, LOST_FOUND_INO, true, |i| i.mode.set(0o060600));
    detect_repair(
        &fs.img,
        "/lost+found (inode 11) is not a directory; clear it and create it",
    );
    let entries = common::dirindex::dir_entries(&fs.img, ROOT_INO);
    let lf: Vec<_> = entries.iter().filter(|(n, _)| n == b"lost+found").collect();
    assert_eq!(lf.len(), 1, "{entries:?}");
    assert_eq!(lf[0].1, LOST_FOUND_INO);
    assert!(Image::open(&fs.img).inode(LOST_FOUND_INO).i().is_dir());
}

/// Found by the image fuzzer (issue 8): a directory truncated at a hole gave back only
/// the blocks it did not map twice, so one stayed marked in use.
#[test]
fn duplicate_block_past_a_hole_in_a_directory() {
    let fs = make_fs_from("dirduphole", |src| {
        std::fs::create_dir(src.join("many")).unwrap();
        for i in 0..120 {
            std::fs::write(
                src.join("many").join(format!("{i:03}{}", "n".repeat(100))),
                b"",
            )
            .unwrap();
        }
    });
    let d = ino_of(&fs.img, "many");
    let im = Image::open(&fs.img);
    let map = im.block_map(&im.lookup("many"));
    assert!(map.data.len() >= 4, "{map:?}");
    let b2 = map.data[&2];
    drop(im);
    edit_inode(&fs.img, d, true, |i| {
        i.set_direct_ptr(1, 0);
        i.set_direct_ptr(3, b2);
    });
    let out = detect_repair(
        &fs.img,
        &format!("Directory inode {d} has a hole at logical block 1; truncate it there"),
    );
    assert!(
        out.contains(&format!(
            "Inode {d} block {b2} (logical block 3) is claimed by more than one owner"
        )),
        "{out}"
    );
}
