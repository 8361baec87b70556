//! mkfs.aegisfs end to end: images made by the binary, read back and checked through the
//! format crate; every option and every refusal.

mod common;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use aegisfs_format::checksum::checksum_seed;
use aegisfs_format::disk::{
    BLOCK_SIZE, FEATURE_COMPAT_HAS_JOURNAL, FEATURE_COMPAT_XATTR, FEATURE_INCOMPAT_DIR_INDEX,
    FT_DIR, LOST_FOUND_INO, ROOT_INO, STATE_CLEAN,
};
use aegisfs_format::journal::{JournalSuperBlock, JOURNAL_FEATURE_TXN_CHECKSUM};
use aegisfs_tools::mkfs::{run, Env};
use aegisfs_tools::mounts::MountSources;
use common::{mkfs, mkfs_ok, text, Image, Scratch};

const MIB: u64 = 1 << 20;

fn now_sec() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs mkfs in-process with an injected mount table and stdin.
fn run_lib(args: &[&str], mounts: &Path, stdin: &[u8], tty: bool) -> (i32, String, String) {
    run_lib_on(args, mounts, stdin, tty, false)
}

/// [`run_lib`], with stdout a terminal or not.
fn run_lib_on(
    args: &[&str],
    mounts: &Path,
    stdin: &[u8],
    tty: bool,
    stdout_tty: bool,
) -> (i32, String, String) {
    let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut input = Cursor::new(stdin.to_vec());
    let mut env = Env {
        stdout: &mut out,
        stderr: &mut err,
        stdin: &mut input,
        stdin_is_tty: tty,
        stdout_is_tty: stdout_tty,
        mounts: MountSources {
            mounts: mounts.to_path_buf(),
            sys_block: PathBuf::from("/sys/block"),
        },
    };
    let code = run(&args, &mut env);
    (code, text(&out), text(&err))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn fresh_image_round_trip() {
    let t = Scratch::new("fresh");
    let img = t.join("img");
    let before = now_sec();
    let out = mkfs_ok(&[s(&img), "65536"]);
    let after = now_sec();
    assert_eq!(fs::metadata(&img).unwrap().len(), 64 * MIB);

    let im = Image::open(&img);
    im.check();
    let sb = im.sb();
    let geo = &im.geo;
    assert_eq!(sb.blocks_count.get(), 16384);
    assert_eq!(sb.state.get(), STATE_CLEAN);
    assert_eq!(sb.mount_count.get(), 0);
    assert_eq!(sb.max_mount_count.get(), 0);
    assert_eq!(sb.last_orphan.get(), 0);
    assert_eq!(sb.error_count.get(), 0);
    let mkfs_time = sb.mkfs_time.get();
    assert!((before..=after).contains(&mkfs_time));
    assert_eq!(sb.write_time.get(), mkfs_time);
    assert_eq!(sb.checksum_seed.get(), checksum_seed(&sb.uuid));
    assert_eq!(sb.uuid[6] >> 4, 4, "random UUIDs are version 4");
    assert_eq!(sb.label_bytes(), b"");
    assert_eq!(sb.reserved_blocks.get(), geo.data_blocks() * 5 / 100);
    assert_eq!(sb.free_inodes.get(), geo.inodes_count() - 11);
    // Root and lost+found directory blocks are the only data blocks in use.
    assert_eq!(sb.free_blocks.get(), geo.data_blocks() - 5);

    // Default journal for a 64 MiB filesystem: 4 MiB, empty.
    assert_eq!(
        sb.feature_compat.get(),
        FEATURE_COMPAT_HAS_JOURNAL | FEATURE_COMPAT_XATTR
    );
    assert_eq!(geo.journal_blocks(), 1024);
    let jblock = im.block(geo.journal_start());
    let jsb = JournalSuperBlock::validate(&jblock, im.seed(), 1024).unwrap();
    assert!(jsb.is_empty());
    assert_eq!(jsb.sequence.get(), 1);
    assert_eq!(jsb.features.get(), JOURNAL_FEATURE_TXN_CHECKSUM);
    assert_eq!(jsb.head.get(), 0);

    let root = im.inode(ROOT_INO);
    let r = root.i();
    assert_eq!(r.mode.get(), 0o040755);
    // SAFETY: getuid cannot fail.
    assert_eq!(r.uid.get(), unsafe { libc::getuid() });
    assert_eq!(r.links_count.get(), 3);
    assert_eq!(r.size.get(), 4096);
    assert_eq!(r.crtime().sec, mkfs_time);
    assert_eq!(r.mtime().sec, mkfs_time);
    assert_eq!(
        im.read_dir(&root),
        vec![
            (b".".to_vec(), ROOT_INO, FT_DIR),
            (b"..".to_vec(), ROOT_INO, FT_DIR),
            (b"lost+found".to_vec(), LOST_FOUND_INO, FT_DIR),
        ]
    );
    let lf = im.inode(LOST_FOUND_INO);
    let l = lf.i();
    assert_eq!(l.mode.get(), 0o040700);
    assert_eq!(l.links_count.get(), 2);
    assert_eq!(l.size.get(), 16384);
    assert_eq!(l.blocks.get(), 4);
    assert_eq!(
        im.read_dir(&lf),
        vec![
            (b".".to_vec(), LOST_FOUND_INO, FT_DIR),
            (b"..".to_vec(), ROOT_INO, FT_DIR),
        ]
    );
    assert_ne!(r.generation.get(), l.generation.get());

    let o = text(&out.stdout);
    assert!(o.contains("64.0 MiB"), "{o}");
    assert!(o.contains("groups:      1"), "{o}");
    assert!(
        o.contains(&format!("inodes:      {}", geo.inodes_count())),
        "{o}"
    );
    assert!(o.contains("journal:     4.0 MiB"), "{o}");
    assert!(
        o.contains(&aegisfs_tools::cli::format_uuid(&sb.uuid)),
        "{o}"
    );
    assert!(o.contains("label:       (none)"), "{o}");
    assert!(out.stderr.is_empty());
}

#[test]
fn size_argument_and_file_length() {
    let t = Scratch::new("sizes");
    let a = t.join("a");
    mkfs_ok(&["-q", s(&a), "64M"]);
    assert_eq!(fs::metadata(&a).unwrap().len(), 64 * MIB);
    assert_eq!(Image::open(&a).sb().blocks_count.get(), 16384);

    // Without SIZE an existing file's length is used.
    let b = t.join("b");
    fs::File::create(&b).unwrap().set_len(300 * MIB).unwrap();
    mkfs_ok(&["-f", "-q", s(&b)]);
    let im = Image::open(&b);
    im.check();
    assert_eq!(im.geo.group_count(), 3);
    assert!(im.sb().blocks_count.get() <= 300 * 256);

    // A SIZE beyond the file's end grows it; a smaller SIZE leaves the file alone.
    mkfs_ok(&["-f", "-q", s(&b), "1G"]);
    assert_eq!(fs::metadata(&b).unwrap().len(), 1 << 30);
    mkfs_ok(&["-f", "-q", s(&b), "131072"]);
    assert_eq!(fs::metadata(&b).unwrap().len(), 1 << 30);
    assert_eq!(Image::open(&b).sb().blocks_count.get(), 32768);

    // An empty file without SIZE, or a missing one, is an error.
    let c = t.join("c");
    fs::File::create(&c).unwrap();
    let out = mkfs(&["-q", s(&c)]);
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out.stderr).contains("give a SIZE"));
    let out = mkfs(&["-q", s(&t.join("missing"))]);
    assert_eq!(out.status.code(), Some(8));
    assert!(!t.join("missing").exists());
    // A directory is not a valid target.
    let out = mkfs(&["-q", s(&t.path), "64M"]);
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out.stderr).contains("not a block device or regular file"));
}

#[test]
fn label_and_uuid() {
    let t = Scratch::new("label");
    let img = t.join("img");
    let label = "vol-ü".repeat(9);
    let label = &label[..label
        .char_indices()
        .take_while(|(i, _)| *i < 60)
        .last()
        .unwrap()
        .0];
    let uuid = "0123abcd-4567-89ef-0123-456789abcdef";
    let out = mkfs_ok(&["-L", label, "-U", uuid, s(&img), "64M"]);
    let im = Image::open(&img);
    im.check();
    assert_eq!(im.sb().label_bytes(), label.as_bytes());
    let want = [
        0x01, 0x23, 0xab, 0xcd, 0x45, 0x67, 0x89, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ];
    assert_eq!(im.sb().uuid, want);
    assert_eq!(im.seed(), checksum_seed(&want));
    assert!(text(&out.stdout).contains(uuid));
    assert!(text(&out.stdout).contains(label));

    let max = "x".repeat(63);
    mkfs_ok(&["-f", "-q", "-L", &max, "-U", "clear", s(&img)]);
    let im = Image::open(&img);
    im.check();
    assert_eq!(im.sb().label_bytes(), max.as_bytes());
    assert_eq!(im.sb().uuid, [0; 16]);

    mkfs_ok(&["-f", "-q", "-U", "random", s(&img)]);
    let first = Image::open(&img).sb().uuid;
    mkfs_ok(&["-f", "-q", s(&img)]);
    let second = Image::open(&img).sb().uuid;
    assert_ne!(first, second);
    assert_ne!(first, [0; 16]);
}

#[test]
fn inode_count_ratio_and_size() {
    let t = Scratch::new("inodes");
    let img = t.join("img");
    mkfs_ok(&["-q", "-N", "5000", s(&img), "256M"]);
    let im = Image::open(&img);
    im.check();
    let groups = im.geo.group_count();
    assert_eq!(groups, 2);
    let n = im.sb().inodes_count.get();
    assert!((5000..5000 + 16 * groups).contains(&n), "{n}");
    assert_eq!(n % (16 * groups), 0);

    mkfs_ok(&["-f", "-q", "-i", "65536", s(&img)]);
    let im = Image::open(&img);
    im.check();
    let n = im.sb().inodes_count.get();
    let want = im.sb().blocks_count.get() * 4096 / 65536;
    assert!(
        u64::from(n) >= want && u64::from(n) < want + 32,
        "{n} vs {want}"
    );

    // The default ratio is one inode per 16 KiB.
    mkfs_ok(&["-f", "-q", s(&img)]);
    let im = Image::open(&img);
    let want = im.sb().blocks_count.get() * 4096 / 16384;
    let n = u64::from(im.sb().inodes_count.get());
    assert!(n >= want && n < want + 32, "{n} vs {want}");
    assert_eq!(im.sb().inode_size.get(), 512);

    for size in ["256", "1024"] {
        mkfs_ok(&["-f", "-q", "-I", size, s(&img)]);
        let im = Image::open(&img);
        im.check();
        assert_eq!(im.sb().inode_size.get().to_string(), size);
        assert_eq!(
            im.geo.inode_table_blocks(),
            u64::from(im.geo.inodes_per_group()) * size.parse::<u64>().unwrap() / 4096
        );
    }
}

#[test]
fn journal_size() {
    let t = Scratch::new("journal");
    let img = t.join("img");
    for (arg, blocks) in [("size=8", 2048u64), ("16", 4096), ("0", 0), ("size=0", 0)] {
        mkfs_ok(&["-f", "-q", "-J", arg, s(&img), "256M"]);
        let im = Image::open(&img);
        im.check();
        assert_eq!(im.geo.journal_blocks(), blocks, "-J {arg}");
        if blocks == 0 {
            assert_eq!(im.sb().journal_start.get(), 0);
            assert_eq!(im.sb().feature_compat.get(), FEATURE_COMPAT_XATTR);
        } else {
            assert_eq!(im.sb().feature_compat.get() & FEATURE_COMPAT_HAS_JOURNAL, 1);
            let j = im.block(im.geo.journal_start());
            let jsb = JournalSuperBlock::validate(&j, im.seed(), blocks).unwrap();
            assert!(jsb.is_empty());
        }
    }
    // Default for 256 MiB: 16 MiB.
    mkfs_ok(&["-f", "-q", s(&img)]);
    assert_eq!(Image::open(&img).geo.journal_blocks(), 4096);
    let out = mkfs(&["-q", "-J", "2", s(&img)]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn reserved_percent() {
    let t = Scratch::new("reserved");
    let img = t.join("img");
    for (arg, hundredths) in [("0", 0u64), ("10", 1000), ("0.5", 50), ("50", 5000)] {
        mkfs_ok(&["-f", "-q", "-m", arg, s(&img), "256M"]);
        let im = Image::open(&img);
        im.check();
        assert_eq!(
            im.sb().reserved_blocks.get(),
            im.geo.data_blocks() * hundredths / 10000,
            "-m {arg}"
        );
    }
    let out = mkfs(&["-q", "-m", "51", s(&img)]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn dry_run_writes_nothing() {
    let t = Scratch::new("dryrun");
    let img = t.join("img");
    let out = mkfs_ok(&["-n", s(&img), "1T"]);
    assert!(!img.exists(), "dry run created the image");
    let o = text(&out.stdout);
    assert!(o.contains("Would create") && o.contains("1.0 TiB"), "{o}");
    assert!(o.contains("nothing was written"), "{o}");

    let pattern: Vec<u8> = (0..2 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&img, &pattern).unwrap();
    let mtime = fs::metadata(&img).unwrap().mtime_nsec();
    mkfs_ok(&["-n", "-f", s(&img), "64M"]);
    assert_eq!(fs::read(&img).unwrap(), pattern);
    assert_eq!(fs::metadata(&img).unwrap().mtime_nsec(), mtime);
    // -q silences the dry run too.
    let out = mkfs_ok(&["-n", "-q", s(&img), "64M"]);
    assert!(out.stdout.is_empty());
}

#[test]
fn quiet_version_help_verbose() {
    let t = Scratch::new("quiet");
    let img = t.join("img");
    let out = mkfs_ok(&["-q", s(&img), "64M"]);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    Image::open(&img).check();

    let out = mkfs_ok(&["-V"]);
    assert_eq!(
        text(&out.stdout),
        format!("mkfs.aegisfs {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = mkfs_ok(&["--version"]);
    assert!(text(&out.stdout).starts_with("mkfs.aegisfs "));

    let out = mkfs_ok(&["-h"]);
    assert!(text(&out.stdout).starts_with("Usage: mkfs.aegisfs"));
    assert!(out.stderr.is_empty());

    let out = mkfs_ok(&["-v", "-f", s(&img)]);
    let o = text(&out.stdout);
    assert!(o.contains("data writes:") && o.contains("free:"), "{o}");
}

#[test]
fn dir_index_by_default_and_without() {
    let t = Scratch::new("dirindex");
    let (a, b, c) = (t.join("a"), t.join("b"), t.join("c"));
    let out = mkfs_ok(&[s(&a), "64M"]);
    let o = text(&out.stdout);
    assert!(
        o.contains("features:    has_journal xattr dir_index\n"),
        "{o}"
    );
    mkfs_ok(&["-q", "-O", "dir_index", s(&b), "64M"]);
    let mut keys = Vec::new();
    for img in [&a, &b] {
        let im = Image::open(img);
        im.check();
        let sb = im.sb();
        assert_eq!(sb.feature_incompat.get(), FEATURE_INCOMPAT_DIR_INDEX);
        assert_ne!(sb.dir_hash_key, [0u8; 16]);
        assert_eq!(im.geo.dir_hash_key(), Some(&sb.dir_hash_key));
        keys.push(sb.dir_hash_key);
    }
    assert_ne!(keys[0], keys[1], "each filesystem draws its own key");

    let out = mkfs_ok(&["-O", "^dir_index", "-J", "0", s(&c), "64M"]);
    let o = text(&out.stdout);
    assert!(o.contains("features:    xattr\n"), "{o}");
    let im = Image::open(&c);
    im.check();
    assert_eq!(im.sb().feature_incompat.get(), 0);
    assert_eq!(im.sb().dir_hash_key, [0u8; 16]);
    assert_eq!(im.geo.dir_hash_key(), None);

    let d = t.join("d");
    let out = mkfs(&["-O", "^dir_index,extent", s(&d), "64M"]);
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(
        e.starts_with(
            "mkfs.aegisfs: invalid filesystem feature 'extent' in -O: the features are \
             dir_index\n"
        ),
        "{e}"
    );
    assert!(!d.exists());
}

#[test]
fn usage_errors_exit_1() {
    let t = Scratch::new("usage");
    let img = t.join("img");
    let long_label = "x".repeat(64);
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["-x", s(&img), "64M"],
        vec!["--nope", s(&img), "64M"],
        vec!["-L"],
        vec!["-L", &long_label, s(&img), "64M"],
        vec!["-U", "not-a-uuid", s(&img), "64M"],
        vec!["-N", "abc", s(&img), "64M"],
        vec!["-N", "5", s(&img), "64M"],
        vec!["-N", "100", "-i", "8192", s(&img), "64M"],
        vec!["-i", "512", s(&img), "64M"],
        vec!["-I", "128", s(&img), "64M"],
        vec!["-J", "size=", s(&img), "64M"],
        vec!["-J", "1", s(&img), "64M"],
        vec!["-m", "abc", s(&img), "64M"],
        vec!["-m", "-1", s(&img), "64M"],
        vec!["-b", "1024", s(&img), "64M"],
        vec!["-t", "ext4", s(&img), "64M"],
        vec!["-O", "dir_index,nope", s(&img), "64M"],
        vec!["-O"],
        vec![s(&img), "64Q"],
        vec![s(&img), "0"],
        vec![s(&img), "64M", "extra"],
    ];
    for args in cases {
        let out = mkfs(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let e = text(&out.stderr);
        assert!(e.starts_with("mkfs.aegisfs: "), "{args:?}: {e}");
        assert!(e.contains("Usage: mkfs.aegisfs"), "{args:?}: {e}");
        assert!(out.stdout.is_empty());
        assert!(!img.exists(), "{args:?} created the image");
    }
}

#[test]
fn too_small_names_the_minimum() {
    let t = Scratch::new("small");
    let img = t.join("img");
    for opts in [vec![], vec!["-J", "0"], vec!["-J", "64", "-I", "1024"]] {
        let mut args = opts.clone();
        args.extend(["-q", s(&img), "64K"]);
        let out = mkfs(&args);
        assert_eq!(out.status.code(), Some(8), "{opts:?}");
        let e = text(&out.stderr);
        assert!(e.contains("too small") && e.contains("at least"), "{e}");
        assert!(!img.exists(), "a refused mkfs created the image");
        // The message names the exact minimum: it works, one block less does not.
        let min: u64 = e
            .rsplit_once('(')
            .and_then(|(_, tail)| tail.split_once(" bytes)"))
            .map(|(n, _)| n.parse().unwrap())
            .unwrap_or_else(|| panic!("no minimum in {e}"));
        let mut args = opts.clone();
        let size = format!("{}K", min / 1024);
        args.extend(["-q", s(&img), &size]);
        mkfs_ok(&args);
        Image::open(&img).check();
        let mut args = opts.clone();
        let size = format!("{}K", min / 1024 - 4);
        args.extend(["-q", "-f", s(&img), &size]);
        assert_eq!(mkfs(&args).status.code(), Some(8), "{opts:?} below {min}");
        fs::remove_file(&img).unwrap();
    }
}

#[test]
fn refuses_mounted_by_path() {
    let t = Scratch::new("mounted-path");
    let img = t.join("img");
    mkfs_ok(&["-q", s(&img), "64M"]);
    let uuid = Image::open(&img).sb().uuid;
    let alias = t.join("alias");
    std::os::unix::fs::symlink(&img, &alias).unwrap();
    let mounts = t.join("mounts");
    fs::write(
        &mounts,
        format!(
            "proc /proc proc rw 0 0\n{} /mnt/x\\040y aegisfs rw 0 0\n",
            s(&alias)
        ),
    )
    .unwrap();
    let (code, out, err) = run_lib(&["-f", s(&img)], &mounts, b"", false);
    assert_eq!(code, 8, "{out}{err}");
    assert!(err.contains("is mounted on /mnt/x y"), "{err}");
    assert_eq!(
        Image::open(&img).sb().uuid,
        uuid,
        "a mounted image was written"
    );

    // Not mounted: the same call succeeds.
    fs::write(&mounts, "proc /proc proc rw 0 0\n").unwrap();
    let (code, _, err) = run_lib(&["-f", "-q", s(&img)], &mounts, b"", false);
    assert_eq!(code, 0, "{err}");
    assert_ne!(Image::open(&img).sb().uuid, uuid);
}

#[test]
fn refuses_mounted_by_device_number() {
    let t = Scratch::new("mounted-dev");
    let target = t.join("dev-a");
    let other = t.join("dev-b");
    // Two nodes of one (unused) block device number: the mount table names the other one.
    let dev = libc::makedev(7, 250);
    for p in [&target, &other] {
        let c = std::ffi::CString::new(s(p)).unwrap();
        // SAFETY: valid NUL-terminated path.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, dev) };
        if r != 0 {
            eprintln!("skipping: mknod needs CAP_MKNOD");
            return;
        }
    }
    let mounts = t.join("mounts");
    fs::write(&mounts, format!("{} /srv aegisfs rw 0 0\n", s(&other))).unwrap();
    let (code, _, err) = run_lib(&["-f", s(&target)], &mounts, b"", false);
    assert_eq!(code, 8);
    assert!(err.contains("is mounted on /srv"), "{err}");
}

/// Attaches `img` to a free loop device; `None` where loop devices are unavailable.
fn losetup(img: &Path) -> Option<String> {
    let out = Command::new("losetup")
        .args(["-f", "--show", s(img)])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| text(&out.stdout).trim().to_string())
}

fn lo_detach(dev: &str) {
    let _ = Command::new("losetup").args(["-d", dev]).status();
}

#[test]
fn block_device_size_and_exclusive_open() {
    let t = Scratch::new("loop");
    let img = t.join("img");
    fs::File::create(&img).unwrap().set_len(96 * MIB).unwrap();
    let Some(dev) = losetup(&img) else {
        eprintln!("skipping: no loop device");
        return;
    };
    // Held exclusively by someone else: refused.
    let holder = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&dev)
        .unwrap();
    let out = mkfs(&["-f", &dev]);
    drop(holder);
    let busy = text(&out.stderr);
    // The size comes from BLKGETSIZE64; SIZE may not exceed it.
    let out_ok = mkfs(&["-q", "-f", &dev]);
    let too_big = mkfs(&["-q", "-f", &dev, "200M"]);
    lo_detach(&dev);
    assert_eq!(out.status.code(), Some(8));
    assert!(busy.contains("in use"), "{busy}");
    assert!(out_ok.status.success(), "{}", text(&out_ok.stderr));
    assert_eq!(too_big.status.code(), Some(8));
    assert!(text(&too_big.stderr).contains("larger than the device"));
    let im = Image::open(&img);
    im.check();
    assert_eq!(im.sb().blocks_count.get(), 96 * 256);
}

#[test]
fn refuses_image_mounted_through_a_loop_device() {
    let t = Scratch::new("loopmount");
    let img = t.join("img");
    let mnt = t.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F", s(&img), "16M"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: mkfs.ext4 not available");
        return;
    }
    let mounted = Command::new("mount")
        .args(["-o", "loop", s(&img), s(&mnt)])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping: cannot loop-mount");
        return;
    }
    let out = mkfs(&["-f", s(&img)]);
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(out.status.code(), Some(8));
    let e = text(&out.stderr);
    assert!(e.contains("mounted on") && e.contains("/dev/loop"), "{e}");
    // Still ext4: nothing was written.
    let mut magic = [0u8; 2];
    fs::File::open(&img)
        .unwrap()
        .read_exact_at(&mut magic, 1024 + 0x38)
        .unwrap();
    assert_eq!(magic, [0x53, 0xEF]);
}

#[test]
fn wipes_foreign_signatures() {
    let t = Scratch::new("wipe");
    let img = t.join("img");
    let f = fs::File::create(&img).unwrap();
    f.set_len(128 * MIB).unwrap();
    f.write_all_at(b"XFSB", 0).unwrap();
    f.write_all_at(&[0x53, 0xEF], 1024 + 0x38).unwrap();
    f.write_all_at(b"_BHRfS_M", 64 * 1024 + 0x40).unwrap();
    f.write_all_at(b"_BHRfS_M", 64 * MIB + 0x40).unwrap();
    f.write_all_at(b"stale", 40 * 1024).unwrap();
    drop(f);
    mkfs_ok(&["-f", s(&img)]);
    let data = fs::read(&img).unwrap();
    assert_eq!(&data[..4], &[0; 4]);
    assert_ne!(&data[1024 + 0x38..1024 + 0x3A], &[0x53, 0xEF]);
    assert_eq!(&data[40 * 1024..40 * 1024 + 5], &[0; 5]);
    let btrfs = (64 * 1024 + 0x40) as usize;
    assert_eq!(&data[btrfs..btrfs + 8], &[0; 8]);
    let copy = (64 * MIB + 0x40) as usize;
    assert_eq!(&data[copy..copy + 8], &[0; 8]);
    Image::open(&img).check();
}

#[test]
fn blkid_no_longer_sees_ext4() {
    let t = Scratch::new("blkid");
    let img = t.join("img");
    let made = Command::new("mkfs.ext4")
        .args(["-q", "-F", s(&img), "64M"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("skipping: mkfs.ext4 not available");
        return;
    }
    let probe = || {
        Command::new("blkid")
            .args(["-p", "-o", "value", "-s", "TYPE", s(&img)])
            .output()
            .map(|o| text(&o.stdout).trim().to_string())
    };
    let Ok(before) = probe() else {
        eprintln!("skipping: blkid not available");
        return;
    };
    assert_eq!(before, "ext4");
    // No -f and stdin at its end (a script, xfstests' generic/740): no, nothing written.
    let out = mkfs(&["-q", s(&img)]);
    assert_eq!(out.status.code(), Some(8));
    let o = text(&out.stdout);
    assert!(
        o.contains("appears to contain existing data (ext4)") && o.contains("Proceed anyway?"),
        "{o}"
    );
    assert!(text(&out.stderr).contains("aborted"));
    assert_eq!(probe().unwrap(), "ext4");
    mkfs_ok(&["-f", "-q", s(&img)]);
    assert_eq!(probe().unwrap(), "");
    Image::open(&img).check();
}

#[test]
fn asks_before_overwriting_what_blkid_knows() {
    // Swap has no signature of mkfs's own: only libblkid's probe can see it.
    let t = Scratch::new("blkid-swap");
    let img = t.join("img");
    fs::File::create(&img).unwrap().set_len(64 * MIB).unwrap();
    let made = Command::new("mkswap")
        .arg(&img)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let probed = Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "TYPE", s(&img)])
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "swap");
    if !made || !probed {
        eprintln!("skipping: mkswap or blkid not available");
        return;
    }
    let out = mkfs(&[s(&img)]);
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out.stdout).contains("existing data (swap)"));
    let mut head = [0u8; 10];
    fs::File::open(&img)
        .unwrap()
        .read_exact_at(&mut head, 4096 - 10)
        .unwrap();
    assert_eq!(&head, b"SWAPSPACE2");
    mkfs_ok(&["-f", "-q", s(&img)]);
    Image::open(&img).check();
}

#[test]
fn asks_before_overwriting() {
    let t = Scratch::new("prompt");
    let img = t.join("img");
    let mounts = t.join("mounts");
    fs::write(&mounts, "").unwrap();
    mkfs_ok(&["-q", s(&img), "64M"]);
    let uuid = Image::open(&img).sb().uuid;

    for tty in [true, false] {
        let (code, out, err) = run_lib(&[s(&img)], &mounts, b"n\n", tty);
        assert_eq!(code, 8);
        assert!(
            out.contains("appears to contain existing data (aegisfs)")
                && out.contains("Proceed anyway?"),
            "{out}"
        );
        assert!(err.contains("aborted"), "{err}");
        assert_eq!(Image::open(&img).sb().uuid, uuid);

        let (code, _, err) = run_lib(&[s(&img)], &mounts, b"", tty);
        assert_eq!(code, 8, "end of input is not a yes");
        assert!(err.contains("aborted"));
        assert_eq!(Image::open(&img).sb().uuid, uuid);
    }

    let (code, out, _) = run_lib(&[s(&img)], &mounts, b"y\n", true);
    assert_eq!(code, 0);
    assert!(out.contains("Proceed anyway?"));
    let uuid2 = Image::open(&img).sb().uuid;
    assert_ne!(uuid2, uuid);

    // Not a terminal: the same question, answered by `yes` as xfstests pipes it; the
    // answer is echoed so that a log shows it.
    let (code, out, _) = run_lib(&[s(&img)], &mounts, b"y\ny\n", false);
    assert_eq!(code, 0);
    assert!(out.contains("Proceed anyway? (y,N) y\n"), "{out}");
    let uuid3 = Image::open(&img).sb().uuid;
    assert_ne!(uuid3, uuid2);

    // -f never asks.
    for tty in [true, false] {
        let (code, out, _) = run_lib(&["-f", s(&img)], &mounts, b"", tty);
        assert_eq!(code, 0);
        assert!(!out.contains("Proceed"));
    }
    assert_ne!(Image::open(&img).sb().uuid, uuid3);

    // Nothing there: nothing to ask.
    let fresh = t.join("fresh");
    let (code, out, _) = run_lib(&[s(&fresh), "64M"], &mounts, b"", false);
    assert_eq!(code, 0);
    assert!(!out.contains("Proceed"));
}

#[test]
fn util_linux_mkfs_front_end() {
    let t = Scratch::new("frontend");
    let Ok(mkfs_path) = which("mkfs") else {
        eprintln!("skipping: util-linux mkfs not found");
        return;
    };
    let bin = t.join("bin");
    fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(common::MKFS, bin.join("mkfs.aegisfs")).unwrap();
    let img = t.join("img");
    fs::File::create(&img).unwrap().set_len(4096).unwrap();
    let path = format!("{}:{}", s(&bin), std::env::var("PATH").unwrap_or_default());
    // The way xfstests calls it: options, device, size in 1 KiB blocks, `yes` on stdin.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "yes | {} -t aegisfs -L front -J size=4 \"$1\" 65536",
            s(&mkfs_path)
        ))
        .arg("sh")
        .arg(&img)
        .env("PATH", path)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let im = Image::open(&img);
    im.check();
    assert_eq!(im.sb().label_bytes(), b"front");
    assert_eq!(im.sb().blocks_count.get(), 16384);
    assert_eq!(im.geo.journal_blocks(), 1024);
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found.ok_or(())
}

#[test]
fn one_tib_sparse_image_stays_small() {
    let t = Scratch::new("tib");
    let img = t.join("img");
    mkfs_ok(&["-q", s(&img), "1T"]);
    let meta = fs::metadata(&img).unwrap();
    assert_eq!(meta.len(), 1 << 40);
    let allocated = meta.blocks() * 512;
    assert!(allocated < 200 * MIB, "{allocated} bytes allocated");
    let im = Image::open(&img);
    assert_eq!(im.geo.group_count(), 8191);
    im.check();
}

#[test]
fn block_size_is_4096() {
    let t = Scratch::new("bs");
    let img = t.join("img");
    mkfs_ok(&["-q", "-b", "4096", "-t", "aegisfs", s(&img), "64M"]);
    assert_eq!(Image::open(&img).sb().block_size_log2.get(), 12);
    // Like mke2fs, -b makes a plain SIZE count blocks of that size.
    mkfs_ok(&["-f", "-q", "-b", "4096", s(&img), "32768"]);
    assert_eq!(fs::metadata(&img).unwrap().len(), 128 * MIB);
    assert_eq!(Image::open(&img).sb().blocks_count.get(), 32768);
    assert_eq!(BLOCK_SIZE, 4096);
}

#[test]
fn the_checker_notices_corruption() {
    let t = Scratch::new("corrupt");
    let img = t.join("img");
    mkfs_ok(&["-q", s(&img), "64M"]);
    Image::open(&img).check();
    let geo = Image::open(&img).geo;
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    let corrupt = |offset: u64| {
        let mut byte = [0u8; 1];
        fs::File::open(&img)
            .unwrap()
            .read_exact_at(&mut byte, offset)
            .unwrap();
        byte[0] ^= 0x10;
        f.write_all_at(&byte, offset).unwrap();
    };
    let fails = |what: &str| {
        let img = img.clone();
        let r = std::panic::catch_unwind(move || Image::open(&img).check());
        assert!(r.is_err(), "corrupt {what} not noticed");
    };
    // One bit in the block bitmap, in the root directory block, in the GDT: each is
    // caught, and undoing it makes the image valid again.
    let bitmap = geo.block_bitmap_block(0).unwrap() * 4096 + 200;
    let root_block = Image::open(&img)
        .block_map(&Image::open(&img).inode(ROOT_INO))
        .data[&0];
    for (what, offset) in [
        ("block bitmap", bitmap),
        ("root directory", root_block * 4096 + 20),
        ("group descriptor", geo.gdt_start() * 4096 + 0x18),
        ("superblock", 1024 + 0x44),
    ] {
        corrupt(offset);
        fails(what);
        corrupt(offset);
        Image::open(&img).check();
    }
}

#[test]
fn progress_bar_on_a_terminal_only() {
    let t = Scratch::new("progress");
    let img = t.join("img");
    let mounts = t.join("mounts");
    fs::write(&mounts, "").unwrap();
    // 8 groups of 32768 blocks.
    let args = ["-f", s(&img), "1G"];
    let (code, out, err) = run_lib_on(&args, &mounts, b"", false, true);
    assert_eq!(code, 0, "{err}");
    let bar = format!("\rWriting groups: |{}| 100%", "=".repeat(50));
    let at = out.find(&bar).expect("a full bar on the terminal");
    assert!(
        out.contains("\rWriting groups: |======    "),
        "12 % after the first of 8 groups: {out:?}"
    );
    // Erased before the summary, which starts a clean line.
    let rest = &out[at + bar.len()..];
    let summary = rest
        .find("Created AegisFS")
        .expect("the summary after the bar");
    assert!(
        rest[..summary]
            .trim_matches(|c| c == '\r' || c == ' ')
            .is_empty(),
        "{rest:?}"
    );
    Image::open(&img).check();

    let (code, out, _) = run_lib_on(&args, &mounts, b"", false, false);
    assert_eq!(code, 0);
    assert!(
        !out.contains('\r') && out.contains("Created AegisFS"),
        "no bar off a terminal: {out:?}"
    );
    let quiet = ["-f", "-q", s(&img), "1G"];
    let (code, out, _) = run_lib_on(&quiet, &mounts, b"", false, true);
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "-q: nothing, not even the bar"
    );
}
