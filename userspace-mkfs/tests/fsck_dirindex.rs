//! fsck.aegisfs on hash-indexed directories (docs/format.md, "Indexed directories"),
//! built by hand in images made by mkfs: valid indexes are clean; each way an index can be
//! wrong is reported by `-n` and repaired by `-fy` by making the directory linear, with
//! every entry kept; entries fsck adds go where the index finds them.

mod common;

use std::fs;
use std::path::Path;

use aegisfs_format::dir::{add_entry, find_entry, remove_entry, retain_entries};
use aegisfs_format::disk::{FEATURE_INCOMPAT_DIR_INDEX, FT_REG, INODE_FLAG_INDEX, LOST_FOUND_INO};
use common::dirindex::{
    dir_entries, drop_last_block, edit_block, has_index_flag, index_entry, make_indexed, names_in,
    set_index_entry, use_test_key, Head, Indexed, Shape,
};
use common::fsck::{
    detect_repair, edit_dir_block, edit_inode, edit_sb, fsck, ino_of, make_fs, make_fs_from,
    populate_small_tree, read_block, write_block, Fs,
};
use common::Image;

/// Entries of the directory `big` the indexed tests rebuild.
const BIG_ENTRIES: usize = 600;

/// Root of level 1 over 3 nodes over 12 leaves (17 blocks, so an indirect block too),
/// 5 entries in the first block.
const TWO_LEVEL: Shape = Shape {
    head: Head::First(5),
    root_level: 1,
    nodes: 3,
    leaves: 12,
    unreferenced: false,
};

/// Root of level 0 over 4 leaves, nothing in the first block but `.` and `..`.
const ONE_LEVEL: Shape = Shape {
    head: Head::First(0),
    root_level: 0,
    nodes: 0,
    leaves: 4,
    unreferenced: false,
};

/// The small tree plus `big`, 600 empty files, rebuilt as an indexed directory of `shape`.
fn indexed_fs(name: &str, shape: Shape) -> (Fs, Indexed) {
    let fs = make_fs_from(name, |src| {
        populate_small_tree(src);
        let big = src.join("big-dir");
        fs::create_dir(&big).unwrap();
        for i in 0..BIG_ENTRIES {
            fs::write(big.join(format!("entry-{i:04}")), b"").unwrap();
        }
    });
    use_test_key(&fs.img);
    let d = make_indexed(&fs.img, "big-dir", shape);
    assert_eq!(d.entries.len(), BIG_ENTRIES);
    assert!(has_index_flag(&fs.img, d.ino));
    assert_eq!(dir_entries(&fs.img, d.ino), d.entries);
    (fs, d)
}

fn index_msg(d: &Indexed, why: &str) -> String {
    format!(
        "Directory inode {}: invalid index ({why}); make the directory linear",
        d.ino
    )
}

/// After the repair: the directory is linear, each of its blocks a valid directory block,
/// and it holds every entry it had.
fn assert_linear_with_every_entry(img: &Path, d: &Indexed) {
    assert!(!has_index_flag(img, d.ino));
    assert_eq!(dir_entries(img, d.ino), d.entries);
    let im = Image::open(img);
    let listed = im.read_dir(&im.inode(d.ino));
    assert_eq!(listed.len(), d.entries.len() + 2);
}

/// `-n` reports the bad index, `-fy` makes the directory linear keeping every entry and
/// finds nothing else.
fn repaired_linear(fs: &Fs, d: &Indexed, why: &str) -> String {
    // Left as it is, the index costs pass 2 nothing either: its blocks are skipped, the
    // other blocks' entries counted.
    let (_, checked) = fsck(&fs.img, &["-n"]);
    assert_eq!(checked.matches("Fix? no").count(), 1, "{checked}");
    let out = detect_repair(&fs.img, &index_msg(d, why));
    // Nothing else: pass 2 did not take the index blocks for damaged directory blocks.
    assert_eq!(out.matches("Fix? yes").count(), 1, "{out}");
    assert_linear_with_every_entry(&fs.img, d);
    out
}

fn clean(img: &Path) {
    for args in [&["-fn"][..], &["-fy"][..]] {
        let (code, out) = fsck(img, args);
        assert_eq!(code, 0, "fsck {args:?}\n{out}");
        assert!(!out.contains("Fix"), "{out}");
    }
}

#[test]
fn valid_two_level_index_is_clean() {
    let (fs, d) = indexed_fs("dx-valid2", TWO_LEVEL);
    assert_eq!(d.blocks.len(), 17);
    assert!(Image::open(&fs.img).inode(d.ino).i().tree_root(1).unwrap() != 0);
    for &leaf in &d.leaves {
        assert!(!names_in(&fs.img, &d, leaf).is_empty(), "leaf {leaf} empty");
    }
    clean(&fs.img);
    assert!(has_index_flag(&fs.img, d.ino));
    assert_eq!(dir_entries(&fs.img, d.ino), d.entries);
}

#[test]
fn valid_index_with_entries_in_the_first_block_and_leaves() {
    let shape = Shape {
        head: Head::Fill,
        ..ONE_LEVEL
    };
    let (fs, d) = indexed_fs("dx-valid-head", shape);
    assert!(d.in_head.len() > 100, "{}", d.in_head.len());
    for &leaf in &d.leaves {
        assert!(!names_in(&fs.img, &d, leaf).is_empty(), "leaf {leaf} empty");
    }
    clean(&fs.img);
    assert!(has_index_flag(&fs.img, d.ino));
}

#[test]
fn leaf_entry_to_a_free_inode_is_cleared_and_the_index_kept() {
    let (fs, d) = indexed_fs("dx-leaf-free", ONE_LEVEL);
    let leaf = d.leaves[1];
    let name = names_in(&fs.img, &d, leaf)[0].clone();
    edit_block(&fs.img, &d, leaf, false, |blk| {
        let at = find_entry(blk, &name).unwrap().unwrap().offset;
        blk[at..at + 4].copy_from_slice(&3000u32.to_le_bytes());
    });
    let shown = String::from_utf8_lossy(&name);
    let out = detect_repair(
        &fs.img,
        &format!(
            "Entry '{shown}' in directory inode {} refers to unused inode 3000",
            d.ino
        ),
    );
    assert!(!out.contains("invalid index"), "{out}");
    assert!(has_index_flag(&fs.img, d.ino));
    assert!(!dir_entries(&fs.img, d.ino).iter().any(|e| e.0 == name));
}

#[test]
fn bad_index_block_checksum() {
    let (fs, d) = indexed_fs("dx-csum", TWO_LEVEL);
    let node = d.nodes[1];
    let b = d.blocks[node as usize];
    let mut blk = read_block(&fs.img, b);
    blk[0xFFC] ^= 0x01;
    write_block(&fs.img, b, &blk);
    repaired_linear(
        &fs,
        &d,
        &format!("index block {node}: directory index block checksum mismatch"),
    );
}

#[test]
fn bad_index_magic() {
    let (fs, d) = indexed_fs("dx-magic", TWO_LEVEL);
    edit_block(&fs.img, &d, 1, true, |blk| blk[0] = b'X');
    repaired_linear(&fs, &d, "index block 1: directory index block invalid");
}

#[test]
fn unsorted_index_hashes() {
    let (fs, d) = indexed_fs("dx-order", TWO_LEVEL);
    let node = d.nodes[0];
    edit_block(&fs.img, &d, node, true, |blk| {
        let (e1, e2) = (index_entry(blk, 1), index_entry(blk, 2));
        set_index_entry(blk, 1, e2.0, e2.1);
        set_index_entry(blk, 2, e1.0, e1.1);
    });
    repaired_linear(
        &fs,
        &d,
        &format!("index block {node}: directory index block invalid"),
    );
}

#[test]
fn index_child_past_the_directory_end() {
    let (fs, d) = indexed_fs("dx-range", ONE_LEVEL);
    edit_block(&fs.img, &d, 1, true, |blk| {
        let (hash, _) = index_entry(blk, 2);
        set_index_entry(blk, 2, hash, d.blocks.len() as u32);
    });
    repaired_linear(&fs, &d, "index block 1: directory index block invalid");
}

#[test]
fn block_referenced_twice() {
    let (fs, d) = indexed_fs("dx-twice", ONE_LEVEL);
    edit_block(&fs.img, &d, 1, true, |blk| {
        let (hash, _) = index_entry(blk, 1);
        set_index_entry(blk, 1, hash, d.leaves[0] as u32);
    });
    repaired_linear(
        &fs,
        &d,
        &format!("block {} is referenced twice", d.leaves[0]),
    );
}

#[test]
fn block_not_referenced() {
    let shape = Shape {
        unreferenced: true,
        ..ONE_LEVEL
    };
    let (fs, d) = indexed_fs("dx-unref", shape);
    let last = d.blocks.len() - 1;
    repaired_linear(
        &fs,
        &d,
        &format!("block {last} is not referenced by the index"),
    );
}

#[test]
fn leaf_entry_outside_its_hash_range() {
    let (fs, d) = indexed_fs("dx-leafrange", ONE_LEVEL);
    let (from, to) = (d.leaves[1], d.leaves[2]);
    let name = names_in(&fs.img, &d, from)[0].clone();
    let ino = d.entries.iter().find(|e| e.0 == name).unwrap().1;
    edit_block(&fs.img, &d, from, false, |blk| {
        let at = find_entry(blk, &name).unwrap().unwrap().offset;
        remove_entry(blk, at).unwrap();
    });
    edit_block(&fs.img, &d, to, false, |blk| {
        add_entry(blk, ino, &name, FT_REG).unwrap().unwrap();
    });
    let shown = String::from_utf8_lossy(&name);
    repaired_linear(
        &fs,
        &d,
        &format!("entry '{shown}' in leaf block {to} is outside the leaf's hash range"),
    );
}

#[test]
fn index_node_of_the_wrong_level() {
    let (fs, d) = indexed_fs("dx-level", TWO_LEVEL);
    let node = d.nodes[2];
    edit_block(&fs.img, &d, node, true, |blk| blk[4] = 1);
    repaired_linear(
        &fs,
        &d,
        &format!("index block {node} has level 1, its parent's level needs 0"),
    );
}

#[test]
fn index_node_first_hash_differs_from_its_parent_entry() {
    let (fs, d) = indexed_fs("dx-hash0", TWO_LEVEL);
    let node = d.nodes[1];
    let (hash, child) = index_entry(&read_block(&fs.img, d.blocks[node as usize]), 0);
    assert_ne!(hash, 0);
    edit_block(&fs.img, &d, node, true, |blk| {
        set_index_entry(blk, 0, hash + 1, child)
    });
    repaired_linear(
        &fs,
        &d,
        &format!(
            "index block {node} starts at hash {:#x}, not at {hash:#x}",
            hash + 1
        ),
    );
}

#[test]
fn index_flag_without_the_dir_index_feature() {
    let (fs, d) = indexed_fs("dx-nofeature", ONE_LEVEL);
    edit_sb(&fs.img, |sb| {
        let f = sb.feature_incompat.get();
        sb.feature_incompat.set(f & !FEATURE_INCOMPAT_DIR_INDEX);
    });
    repaired_linear(
        &fs,
        &d,
        "the INDEX flag is set, but the filesystem does not have the DIR_INDEX feature",
    );
}

#[test]
fn indexed_directory_shorter_than_three_blocks() {
    let fs = make_fs_from("dx-short", populate_small_tree);
    use_test_key(&fs.img);
    let shape = Shape {
        head: Head::First(2),
        leaves: 1,
        ..ONE_LEVEL
    };
    let mut d = make_indexed(&fs.img, "d1", shape);
    assert_eq!(d.blocks.len(), 3);
    clean(&fs.img);
    // The leaf is empty: the first block holds `f` and `sub`.
    drop_last_block(&fs.img, &mut d);
    repaired_linear(
        &fs,
        &d,
        "2 blocks, fewer than the 3 of an indexed directory",
    );
    let im = Image::open(&fs.img);
    assert_eq!(im.read_file(&im.lookup("d1/f")), b"in d1\n");
}

#[test]
fn index_flag_on_a_regular_file() {
    let fs = make_fs("dx-regflag");
    let a = ino_of(&fs.img, "a");
    edit_inode(&fs.img, a, true, |i| {
        i.flags.set(i.flags.get() | INODE_FLAG_INDEX)
    });
    detect_repair(
        &fs.img,
        &format!(
            "Inode {a} (regular file) has the INDEX flag, which only directories may have; \
             clear it"
        ),
    );
    let im = Image::open(&fs.img);
    let node = im.lookup("a");
    assert_eq!(node.i().flags.get() & INODE_FLAG_INDEX, 0);
    assert_eq!(im.read_file(&node), b"hello\n");
}

#[test]
fn preen_stops_at_an_invalid_index() {
    let (fs, d) = indexed_fs("dx-preen", ONE_LEVEL);
    edit_block(&fs.img, &d, 1, true, |blk| blk[0] = b'X');
    let (code, out) = fsck(&fs.img, &["-fp"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("UNEXPECTED INCONSISTENCY"), "{out}");
    assert!(has_index_flag(&fs.img, d.ino));
}

/// `lost+found` rebuilt as an indexed directory of `leaves` leaves whose first block has
/// no room left for a short name (`lf_long` names of 40 bytes, then 100 of 4 bytes), and
/// `orphans`, 300 files whose entries are then removed. Returns the orphans' inodes.
fn orphans_and_indexed_lost_found(
    name: &str,
    lf_long: usize,
    leaves: usize,
) -> (Fs, Indexed, Vec<u32>) {
    let fs = make_fs_from(name, |src| {
        let lf = src.join("lost+found");
        fs::create_dir(&lf).unwrap();
        for i in 0..lf_long {
            fs::write(lf.join(format!("long-name-{i:03}-{}", "x".repeat(26))), b"").unwrap();
        }
        for i in 0..100 {
            fs::write(lf.join(format!("s{i:03}")), b"").unwrap();
        }
        let orphans = src.join("orphans");
        fs::create_dir(&orphans).unwrap();
        for i in 0..300 {
            fs::write(orphans.join(format!("o{i:03}")), b"").unwrap();
        }
    });
    use_test_key(&fs.img);
    let shape = Shape {
        head: Head::Fill,
        leaves,
        ..ONE_LEVEL
    };
    let d = make_indexed(&fs.img, "lost+found", shape);
    assert_eq!(d.ino, LOST_FOUND_INO);
    let im = Image::open(&fs.img);
    let orphans = im.lookup("orphans");
    let inos: Vec<u32> = im.read_dir(&orphans)[2..].iter().map(|e| e.1).collect();
    let lblks: Vec<u64> = im.block_map(&orphans).data.keys().copied().collect();
    drop(im);
    assert_eq!(inos.len(), 300);
    for l in lblks {
        edit_dir_block(&fs.img, "orphans", l, |blk, _| {
            retain_entries(blk, |n| n == b"." || n == b"..").unwrap();
        });
    }
    (fs, d, inos)
}

/// The entries `lost+found` must hold after the orphans were reconnected.
fn with_orphans(d: &Indexed, orphans: &[u32]) -> Vec<(Vec<u8>, u32)> {
    let mut want = d.entries.clone();
    want.extend(orphans.iter().map(|&i| (format!("#{i}").into_bytes(), i)));
    want.sort();
    want
}

#[test]
fn orphans_reconnected_into_an_indexed_lost_found_keep_its_index() {
    let (fs, d, orphans) = orphans_and_indexed_lost_found("dx-orphans", 60, 4);
    let (code, out) = fsck(&fs.img, &["-fy"]);
    assert_eq!(code, 1, "{out}");
    for i in &orphans {
        let msg = format!("Unattached inode {i} (regular file); connect it to /lost+found");
        assert!(out.contains(&msg), "{out}");
    }
    assert!(!out.contains("made linear"), "{out}");
    let (code, again) = fsck(&fs.img, &["-fn"]);
    assert_eq!(code, 0, "{out}\n---\n{again}");
    assert!(has_index_flag(&fs.img, LOST_FOUND_INO));
    assert_eq!(
        dir_entries(&fs.img, LOST_FOUND_INO),
        with_orphans(&d, &orphans)
    );
    // The first block was full: every orphan is in a leaf, each leaf got some.
    assert_eq!(names_in(&fs.img, &d, 0).len(), d.in_head.len() + 2);
    for &leaf in &d.leaves {
        let names = names_in(&fs.img, &d, leaf);
        assert!(names.iter().any(|n| n.starts_with(b"#")), "leaf {leaf}");
    }
}

#[test]
fn a_full_indexed_lost_found_is_made_linear_to_take_orphans() {
    let (fs, d, orphans) = orphans_and_indexed_lost_found("dx-full", 170, 2);
    let (code, out) = fsck(&fs.img, &["-fy"]);
    assert_eq!(code, 1, "{out}");
    let made_linear = format!("Directory inode {LOST_FOUND_INO}: no room for '#");
    assert!(out.contains(&made_linear), "{out}");
    assert!(out.contains("directory made linear"), "{out}");
    let (code, again) = fsck(&fs.img, &["-fn"]);
    assert_eq!(code, 0, "{out}\n---\n{again}");
    assert!(!has_index_flag(&fs.img, LOST_FOUND_INO));
    assert_eq!(
        dir_entries(&fs.img, LOST_FOUND_INO),
        with_orphans(&d, &orphans)
    );
    let im = Image::open(&fs.img);
    assert_eq!(
        im.lookup(&format!("lost+found/#{}", orphans[299])).ino,
        orphans[299]
    );
}

#[test]
fn damaged_leaf_gives_up_the_index_then_pass_2_mends_the_block() {
    let (fs, d) = indexed_fs("dx-leafcsum", TWO_LEVEL);
    let leaf = d.leaves[5];
    let b = d.blocks[leaf as usize];
    let mut blk = read_block(&fs.img, b);
    blk[4095] ^= 0xFF;
    write_block(&fs.img, b, &blk);
    let why = format!(
        "leaf block {leaf} is not a valid directory block (directory block checksum mismatch)"
    );
    let out = detect_repair(&fs.img, &index_msg(&d, &why));
    let csum = format!(
        "Directory inode {}, block {b} (logical block {leaf}): checksum does not match",
        d.ino
    );
    assert!(out.contains(&csum), "{out}");
    assert_eq!(out.matches("Fix? yes").count(), 2, "{out}");
    assert_linear_with_every_entry(&fs.img, &d);
}

#[test]
fn index_flag_on_a_linear_directory_keeps_its_entries() {
    let fs = make_fs_from("dx-linearflag", |src| {
        let big = src.join("big-dir");
        fs::create_dir(&big).unwrap();
        for i in 0..BIG_ENTRIES {
            fs::write(big.join(format!("entry-{i:04}")), b"").unwrap();
        }
    });
    let im = Image::open(&fs.img);
    let dir = im.lookup("big-dir");
    let before = dir_entries(&fs.img, dir.ino);
    assert!(im.block_map(&dir).data.len() >= 3);
    drop(im);
    edit_inode(&fs.img, dir.ino, true, |i| {
        i.flags.set(i.flags.get() | INODE_FLAG_INDEX)
    });
    let msg = format!(
        "Directory inode {}: invalid index (index block 1: directory index block checksum \
         mismatch); make the directory linear",
        dir.ino
    );
    let out = detect_repair(&fs.img, &msg);
    assert_eq!(out.matches("Fix? yes").count(), 1, "{out}");
    assert!(!has_index_flag(&fs.img, dir.ino));
    assert_eq!(dir_entries(&fs.img, dir.ino), before);
}
