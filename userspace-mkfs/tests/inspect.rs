//! aegisfs-inspect: each view on images whose contents the test knows (the superblock,
//! groups and free space against the image's counts, a sparse file's extents and holes
//! into the double indirect range, a fast symlink, an indexed directory, a journal with
//! committed and damaged transactions), corrupt images, the progress bar, the command
//! line, and that nothing is ever written.

mod common;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use aegisfs_format::disk::{BLOCK_SIZE, BLOCK_SIZE_U64};
use aegisfs_tools::inspect::{run, Env};
use aegisfs_tools::mounts::MountSources;
use common::dirindex::{make_indexed, use_test_key, Head, Indexed, Shape};
use common::fsck::{edit_inode, edit_sb, make_fs_from, read_block, write_block, Fs};
use common::journal::{fill, Log};
use common::{mkfs_ok, run_tool, text, Image, Scratch};

const INSPECT: &str = env!("CARGO_BIN_EXE_aegisfs-inspect");

/// Logical blocks of `sparse` that hold data: direct, single indirect and double
/// indirect range (which starts at 523).
const SPARSE_DATA: [u64; 5] = [0, 1, 100, 600, 601];
/// Logical blocks in `sparse`.
const SPARSE_BLOCKS: u64 = 2000;
/// Entries of `big`, made an indexed directory.
const BIG_ENTRIES: usize = 300;
const BIG_SHAPE: Shape = Shape {
    head: Head::First(3),
    root_level: 0,
    nodes: 0,
    leaves: 3,
    unreferenced: false,
};

/// Runs the binary: (exit status, stdout, stderr).
fn inspect(img: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![img.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    let (code, out, err) = run_tool(INSPECT, &all);
    assert_ne!(code, 101, "panicked: {err}");
    (code, out, err)
}

/// [`inspect`] that must succeed; its stdout.
fn inspect_ok(img: &Path, args: &[&str]) -> String {
    let (code, out, err) = inspect(img, args);
    assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
    assert!(err.is_empty(), "{err}");
    out
}

/// Runs the library's `run` (stdout a terminal or not, an injected mount table):
/// (exit status, stdout, stderr).
fn run_lib(args: &[&str], mounts: &Path, stdout_tty: bool) -> (i32, String, String) {
    let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = Cursor::new(Vec::new());
    let mut env = Env {
        stdout: &mut out,
        stderr: &mut err,
        stdin: &mut input,
        stdin_is_tty: false,
        stdout_is_tty: stdout_tty,
        mounts: MountSources {
            mounts: mounts.to_path_buf(),
            sys_block: mounts.with_file_name("no-sys-block"),
        },
    };
    let code = run(&args, &mut env);
    (code, text(&out), text(&err))
}

/// The image of every test: a small file, a sparse file, a fast symlink, and `big`,
/// an indexed directory.
fn make_image(name: &str) -> Fs {
    make_image_with_index(name).0
}

/// [`make_image`], and `big` as built.
fn make_image_with_index(name: &str) -> (Fs, Indexed) {
    let fs = make_fs_from(&format!("inspect-{name}"), |src| {
        fs::write(src.join("a"), b"hello\n").unwrap();
        let f = fs::File::create(src.join("sparse")).unwrap();
        f.set_len(SPARSE_BLOCKS * BLOCK_SIZE_U64).unwrap();
        for l in SPARSE_DATA {
            f.write_all_at(&[l as u8 + 1; BLOCK_SIZE], l * BLOCK_SIZE_U64)
                .unwrap();
        }
        std::os::unix::fs::symlink("a", src.join("ln")).unwrap();
        let big = src.join("big");
        fs::create_dir(&big).unwrap();
        for i in 0..BIG_ENTRIES {
            fs::write(big.join(format!("entry-{i:04}")), b"").unwrap();
        }
    });
    use_test_key(&fs.img);
    let big = make_indexed(&fs.img, "big", BIG_SHAPE);
    (fs, big)
}

/// The numbers in `line` after `key` (`key 12` -> 12).
fn number_after(line: &str, key: &str) -> u64 {
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("number after {key} in {line}"))
}

fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in\n{out}"))
        .trim()
}

#[test]
fn superblock_fields() {
    let fs = make_image("super");
    edit_sb(&fs.img, |sb| {
        sb.label[..4].copy_from_slice(b"demo");
        sb.uuid = core::array::from_fn(|i| i as u8 * 17);
    });
    let im = Image::open(&fs.img);
    let sb = im.sb();
    let out = inspect_ok(&fs.img, &[]);
    assert_eq!(out, inspect_ok(&fs.img, &["super"]));
    assert!(field(&out, "Blocks count:").starts_with(&format!("{} (64.0 MiB", 16384)));
    assert_eq!(
        field(&out, "Free blocks:"),
        format!("{} (data blocks not in use)", sb.free_blocks.get())
    );
    assert_eq!(
        field(&out, "Free inodes:"),
        sb.free_inodes.get().to_string()
    );
    assert_eq!(field(&out, "Label:"), "\"demo\"");
    assert_eq!(field(&out, "UUID:"), "00112233-4455-6677-8899-aabbccddeeff");
    assert_eq!(field(&out, "Features compat:"), "0x3 has_journal xattr");
    assert_eq!(field(&out, "Features incompat:"), "0x2 dir_index");
    assert!(field(&out, "Checksum:").ends_with(" ok"), "{out}");
    assert_eq!(field(&out, "Validation:"), "ok");
    assert_eq!(field(&out, "Last mount:"), "never");

    // Unknown feature bits are shown in hex, a bad checksum is marked and fails.
    let mut blk = read_block(&fs.img, 0);
    blk[1024 + 0x10] |= 0x80;
    write_block(&fs.img, 0, &blk);
    let (code, out, err) = inspect(&fs.img, &["super"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        field(&out, "Features compat:"),
        "0x83 has_journal xattr unknown 0x80"
    );
    assert!(
        field(&out, "Checksum:").contains(" BAD (computed 0x"),
        "{out}"
    );
    assert!(field(&out, "Validation:").starts_with("BAD: "), "{out}");
    assert!(
        err.starts_with("aegisfs-inspect: ") && err.contains("marked BAD"),
        "{err}"
    );
}

#[test]
fn groups_add_up_to_the_superblock() {
    // Three groups, the last one short.
    let scratch = Scratch::new("inspect-groups");
    let img = scratch.join("img");
    mkfs_ok(&["-q".as_ref(), img.as_os_str(), "300M".as_ref()]);
    let im = Image::open(&img);
    assert_eq!(im.geo.group_count(), 3);
    let out = inspect_ok(&img, &["groups"]);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("  free blocks "))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    let free: u64 = lines.iter().map(|l| number_after(l, "free blocks")).sum();
    let inodes: u64 = lines.iter().map(|l| number_after(l, "free inodes")).sum();
    assert_eq!(free, im.sb().free_blocks.get());
    assert_eq!(inodes, u64::from(im.sb().free_inodes.get()));
    for g in 0..3 {
        let start = im.geo.group_start(g).unwrap();
        let end = start + im.geo.group_len(g).unwrap() - 1;
        assert!(
            out.contains(&format!("Group {g}: blocks {start}..{end} (")),
            "{out}"
        );
    }
    assert!(out.contains(&format!(
        "Total free blocks: {free} (bitmaps: {free}, superblock: {free}) ok"
    )));
    assert_eq!(
        out.matches("descriptor ok, block bitmap checksum ok, inode bitmap checksum ok")
            .count(),
        3
    );
}

/// The histogram rows: (extents, blocks).
fn histogram(out: &str) -> Vec<(u64, u64)> {
    out.lines()
        .filter(|l| l.contains(" .. ") && l.ends_with('%'))
        .map(|l| {
            let n: Vec<u64> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (n[0], n[1])
        })
        .collect()
}

#[test]
fn freefrag_counts_every_free_block() {
    let fs = make_image("freefrag");
    // Split the free space: three allocated blocks make more extents.
    let im = Image::open(&fs.img);
    let first = im.geo.first_data_block(0).unwrap();
    let free_before = im.sb().free_blocks.get();
    drop(im);
    for _ in 0..3 {
        common::fsck::take_block(&fs.img);
    }
    let bit = u32::try_from(first + 3000 - Image::open(&fs.img).geo.first_group_block()).unwrap();
    common::fsck::flip_bitmap_bit(&fs.img, false, bit, true);
    common::fsck::edit_desc0(&fs.img, |d| d.free_blocks.set(d.free_blocks.get() - 1));
    edit_sb(&fs.img, |sb| sb.free_blocks.set(sb.free_blocks.get() - 1));
    let free = Image::open(&fs.img).sb().free_blocks.get();
    assert_eq!(free, free_before - 4);

    let out = inspect_ok(&fs.img, &["freefrag"]);
    assert!(
        field(&out, "Free blocks:").starts_with(&format!("{free} (")),
        "{out}"
    );
    assert!(field(&out, "Free blocks:").ends_with(&format!("superblock: {free}) ok")));
    let rows = histogram(&out);
    assert!(rows.len() >= 2, "{out}");
    assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), free, "{out}");
    let extents = number_after(&out, "Free extents:");
    assert_eq!(rows.iter().map(|r| r.0).sum::<u64>(), extents);
    let largest = number_after(&out, "Largest free extent:");
    assert!(largest < free && largest > free / 2, "{out}");
}

/// The `data` and `hole` lines of an inode view.
fn map_lines(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("data ") || l.starts_with("hole "))
        .map(String::from)
        .collect()
}

#[test]
fn sparse_file_extents_and_holes() {
    let fs = make_image("sparse");
    let im = Image::open(&fs.img);
    let node = im.lookup("sparse");
    let map = im.block_map(&node);
    assert_eq!(map.data.keys().copied().collect::<Vec<_>>(), SPARSE_DATA);
    let p = |l: u64| map.data[&l];
    // mkfs writes a file's blocks in order, so 0-1 and 600-601 are contiguous.
    assert_eq!((p(1), p(601)), (p(0) + 1, p(600) + 1));
    let want = vec![
        format!("data 0..1 -> {}..{} (2 blocks)", p(0), p(1)),
        "hole 2..99 (98 blocks)".to_string(),
        format!("data 100..100 -> {0}..{0} (1 blocks)", p(100)),
        "hole 101..599 (499 blocks)".to_string(),
        format!("data 600..601 -> {}..{} (2 blocks)", p(600), p(601)),
        "hole 602..1999 (1398 blocks, to the end of the file)".to_string(),
    ];
    let by_path = inspect_ok(&fs.img, &["inode", "/sparse"]);
    assert_eq!(map_lines(&by_path), want, "{by_path}");
    let by_ino = inspect_ok(&fs.img, &["inode", &node.ino.to_string()]);
    assert_eq!(by_path, by_ino);
    // The tree: the indirect block, the double indirect block and its one child.
    assert_eq!(map.indirect.len(), 3);
    let i = node.i();
    for (what, b) in [
        ("indirect", i.indirect.get()),
        ("double indirect", i.double_indirect.get()),
    ] {
        assert!(
            by_path.contains(&format!("tree {what} block {b} covers ")),
            "{what} {b}: {by_path}"
        );
    }
    assert_eq!(by_path.matches("checksum ok\n").count(), 3, "{by_path}");
    assert!(by_path.contains(&format!("Inode: {} (group 0, ", node.ino)));
    assert!(by_path.contains("Type: regular file   Mode: 0100644"));
    assert!(by_path.contains(&format!("Size: {} bytes", SPARSE_BLOCKS * BLOCK_SIZE_U64)));
    assert!(by_path.contains("Checksum: 0x"), "{by_path}");
    assert!(by_path.contains("Validation: ok"));
    let t = i.mtime();
    assert!(by_path.contains(&format!("Modify time: {}.{:09} (", t.sec, t.nsec)));
}

#[test]
fn fast_symlink_target() {
    let fs = make_image("symlink");
    let out = inspect_ok(&fs.img, &["inode", "/ln"]);
    assert!(out.contains("Type: symbolic link"), "{out}");
    assert!(out.contains("Flags: 0x10000000 inline_data"), "{out}");
    assert!(
        out.contains("Fast symlink target (1 bytes inline): \"a\""),
        "{out}"
    );
    assert!(!out.contains("Block map"), "{out}");
}

#[test]
fn indexed_directory_entries_and_index() {
    let (fs, big) = make_image_with_index("dir");
    let root = Image::open(&fs.img).lookup("").ino;
    let mut want: Vec<(String, u32)> = big
        .entries
        .iter()
        .map(|(n, ino)| (String::from_utf8(n.clone()).unwrap(), *ino))
        .chain([(".".to_string(), big.ino), ("..".to_string(), root)])
        .collect();
    want.sort();
    assert_eq!(want.len(), BIG_ENTRIES + 2);
    let out = inspect_ok(&fs.img, &["dir", "/big"]);
    assert_eq!(out, inspect_ok(&fs.img, &["dir", &big.ino.to_string()]));
    assert!(
        out.contains(&format!("Directory {}: 5 block(s), indexed", big.ino)),
        "{out}"
    );
    assert!(
        out.contains("Index: 1 level(s) below the root, 1 index block(s), 3 leaves"),
        "{out}"
    );
    assert_eq!(out.matches("-> leaf block ").count(), 3, "{out}");
    let mut listed: Vec<(String, u32)> = out
        .lines()
        .filter(|l| l.contains("rec_len"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[4].to_string(), w[0].parse().unwrap())
        })
        .collect();
    listed.sort();
    assert_eq!(listed, want);
    assert!(out.contains(&format!("Total: {} entries", BIG_ENTRIES + 2)));

    // Lookups through the index: names in the head and in each leaf.
    for name in ["entry-0000", "entry-0002", "entry-0150", "entry-0299"] {
        let ino = want.iter().find(|w| w.0 == name).unwrap().1;
        let out = inspect_ok(&fs.img, &["inode", &format!("/big/{name}")]);
        assert!(out.starts_with(&format!("Inode: {ino} (")), "{name}: {out}");
    }
    let (code, _, err) = inspect(&fs.img, &["inode", "/big/entry-9999"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/big/entry-9999: 'entry-9999' not found"),
        "{err}"
    );
}

#[test]
fn journal_transactions() {
    let fs = make_image("journal");
    let im = Image::open(&fs.img);
    let a = im.block_map(&im.lookup("a")).data[&0];
    let b = im.geo.first_data_block(0).unwrap() + 2000;
    drop(im);
    let mut log = Log::open(&fs.img, 1);
    log.put(&log.txn(7).log(&[(a, fill(1)), (b, fill(2))]).commit());
    log.put(&log.txn(8).revoke(&[b]).log(&[(b, fill(3))]).commit());
    log.go_live(1, 7, |_| {});
    let out = inspect_ok(&fs.img, &["journal"]);
    assert!(out.contains("Start: 1\n"), "{out}");
    assert!(
        out.contains("Sequence: 7 (first expected transaction)"),
        "{out}"
    );
    assert!(out.contains(
        "Transaction 7: starts at log block 1, 1 descriptor, 2 data, 0 revoke block(s)\n  \
         logs blocks: "
    ));
    assert!(out.contains(&format!("  logs blocks: {a} {b}\n  commit: log block 4, checksum ok, transaction checksum ok\n  replayed: yes")), "{out}");
    assert!(out.contains(&format!("Transaction 8: starts at log block 5, 1 descriptor, 1 data, 1 revoke block(s)\n  logs blocks: {b}\n  revokes blocks: {b}\n  commit: log block 8, checksum ok")), "{out}");
    assert!(out.contains("Stop: end of log at log block 9"), "{out}");
    assert!(
        out.contains("Recovery would replay 2 transaction(s), 3 logged block(s)"),
        "{out}"
    );

    // A third transaction whose commit block is damaged is BAD and not replayed.
    log.put(&log.txn(9).log(&[(a, fill(4))]).commit());
    let commit = log.jstart + log.pos - 1;
    let mut blk = read_block(&fs.img, commit);
    blk[100] ^= 0xFF;
    write_block(&fs.img, commit, &blk);
    let (code, out, err) = inspect(&fs.img, &["journal"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "Transaction 9: starts at log block 9, 1 descriptor, 1 data, 0 revoke block(s)\n  \
         logs blocks: {a}\n  commit: log block 11, checksum BAD\n  replayed: no"
        )),
        "{out}"
    );
    assert!(
        out.contains("Stop: bad checksum or structure at log block 11: "),
        "{out}"
    );
    assert!(
        out.contains("Recovery would replay 2 transaction(s)"),
        "{out}"
    );
    assert!(err.contains("marked BAD"), "{err}");

    // A valid commit whose transaction checksum does not match stops the replay there.
    let mut blk = read_block(&fs.img, commit);
    blk[100] ^= 0xFF;
    blk[0x1C] ^= 1;
    aegisfs_format::checksum::set_journal_block_checksum(log.seed, &mut blk);
    write_block(&fs.img, commit, &blk);
    let (code, out, _) = inspect(&fs.img, &["journal"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("commit: log block 11, checksum ok, transaction checksum BAD\n  replayed: no"),
        "{out}"
    );
    assert!(out.contains("Stop: transaction 9 is damaged"), "{out}");
}

#[test]
fn corrupt_images_are_reported_without_panicking() {
    let fs = make_image("corrupt");
    let im = Image::open(&fs.img);
    let a = im.lookup("a").ino;
    let root_block = im.block_map(&im.lookup("")).data[&0];
    let blocks = im.geo.blocks_count();
    drop(im);

    // A block pointer out of range.
    edit_inode(&fs.img, a, true, |i| i.direct[3].set(blocks + 5));
    let (code, out, err) = inspect(&fs.img, &["inode", "/a"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "BAD logical block 3: pointer 0x{:x}: block pointer outside the data area",
            blocks + 5
        )),
        "{out}"
    );
    assert!(err.contains("marked BAD"), "{err}");

    // A directory block of garbage: the listing marks it, a lookup through it fails.
    let mut garbage = [0x5Au8; BLOCK_SIZE];
    garbage[..8].copy_from_slice(&[1, 0, 0, 0, 3, 0, 9, 9]);
    write_block(&fs.img, root_block, &garbage);
    let (code, out, _) = inspect(&fs.img, &["dir", "2"]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!("Block 0 (block {root_block}): BAD: ")),
        "{out}"
    );
    let (code, out, err) = inspect(&fs.img, &["inode", "/a"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.starts_with("aegisfs-inspect: ") && err.contains("directory 2: block 0: "),
        "{err}"
    );

    // Every view of an image with a bad magic fails cleanly.
    let mut blk = read_block(&fs.img, 0);
    blk[1024] = b'X';
    write_block(&fs.img, 0, &blk);
    for view in [
        &["super"][..],
        &["groups"],
        &["freefrag"],
        &["inode", "2"],
        &["dir", "/"],
        &["journal"],
    ] {
        let (code, out, err) = inspect(&fs.img, view);
        assert_eq!(code, 1, "{view:?}: {out}{err}");
        assert!(err.starts_with("aegisfs-inspect: "), "{err}");
        assert!(err.contains("not an AegisFS filesystem"), "{view:?}: {err}");
    }

    // Random garbage everywhere: never a panic, never a hang.
    let scratch = Scratch::new("inspect-garbage");
    let img = scratch.join("img");
    fs::write(&img, vec![0xA5u8; 4 * BLOCK_SIZE]).unwrap();
    let (code, _, err) = inspect(&img, &["groups"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = inspect(&scratch.join("missing"), &[]);
    assert_eq!(code, 4);
    assert!(
        err.starts_with("aegisfs-inspect: ") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let fs = make_image("bar");
    let table = fs.img.with_file_name("mounts");
    fs::write(&table, "").unwrap();
    let mut log = Log::open(&fs.img, 1);
    log.put(&log.txn(1).log(&[(log.jstart - 1, fill(0))]).commit());
    log.go_live(1, 1, |_| {});
    let img = fs.img.to_str().unwrap();
    for view in ["freefrag", "journal"] {
        let (code, out, err) = run_lib(&[img, view], &table, true);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&format!("\r{img}: |")), "{view}: {out:?}");
        assert!(out.contains("| 100%"), "{view}: {out:?}");
        // Erased (a line of spaces between two `\r`) before the view.
        let (drawn, after) = out.rsplit_once('\r').unwrap();
        assert!(!after.contains('|'), "{view}: {after:?}");
        let erase = drawn.rsplit_once('\r').unwrap().1;
        assert!(
            !erase.is_empty() && erase.chars().all(|c| c == ' '),
            "{erase:?}"
        );
        let (_, plain, _) = run_lib(&[img, view], &table, false);
        assert!(!plain.contains('\r'), "no bar off a terminal: {plain:?}");
        let bar = format!("{img}: |");
        let without_bar: String = out
            .split('\r')
            .filter(|part| !part.starts_with(&bar) && !part.chars().all(|c| c == ' '))
            .collect();
        assert_eq!(plain, without_bar, "the same view");
        let (_, quiet, _) = run_lib(&["-q", img, view], &table, true);
        assert!(!quiet.contains('\r'), "no bar with -q: {quiet:?}");
    }
}

#[test]
fn mounted_device_gives_a_warning() {
    let fs = make_image("mounted");
    let table = fs.img.with_file_name("mounts");
    fs::write(
        &table,
        format!("{} /mnt/x aegisfs rw 0 0\n", fs.img.display()),
    )
    .unwrap();
    let (code, out, err) = run_lib(&[fs.img.to_str().unwrap(), "groups"], &table, false);
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("aegisfs-inspect: warning: "), "{err}");
    assert!(err.contains("may be stale"), "{err}");
    assert!(out.contains("Group 0: "), "{out}");
}

#[test]
fn command_line() {
    let fs = make_image("cli");
    let (code, out, err) = inspect(Path::new("--help"), &[]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.starts_with("Usage: aegisfs-inspect"), "{out}");
    let (code, out, _) = inspect(Path::new("-V"), &[]);
    assert_eq!((code, out.as_str()), (0, "aegisfs-inspect 0.1.0\n"));
    let (code, out, _) = inspect(Path::new("--version"), &[]);
    assert_eq!((code, out.as_str()), (0, "aegisfs-inspect 0.1.0\n"));
    for bad in [
        &["frob"][..],
        &["inode"],
        &["dir", "relative"],
        &["super", "extra"],
        &["-x"],
    ] {
        let (code, out, err) = inspect(&fs.img, bad);
        assert_eq!(code, 2, "{bad:?}");
        assert!(out.is_empty());
        assert!(err.starts_with("aegisfs-inspect: "), "{err}");
        assert!(err.contains("Usage: aegisfs-inspect"), "{err}");
    }
    let out = Command::new(INSPECT).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no device given"));
}

#[test]
fn nothing_is_ever_written() {
    let fs = make_image("readonly");
    let mut log = Log::open(&fs.img, 1);
    log.put(&log.txn(1).log(&[(log.jstart - 1, fill(0))]).commit());
    log.go_live(1, 1, |_| {});
    let before = fs::read(&fs.img).unwrap();
    let modified = fs::metadata(&fs.img).unwrap().modified().unwrap();
    for view in [
        &["super"][..],
        &["groups"],
        &["freefrag"],
        &["inode", "/sparse"],
        &["dir", "/big"],
        &["journal"],
    ] {
        inspect_ok(&fs.img, view);
    }
    assert!(fs::read(&fs.img).unwrap() == before);
    assert_eq!(fs::metadata(&fs.img).unwrap().modified().unwrap(), modified);
}
