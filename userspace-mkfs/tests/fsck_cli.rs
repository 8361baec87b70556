//! fsck.aegisfs as a program: a clean image, read-only checks, options and usage,
//! progress, mounted and block devices, interactive answers, preen and cancellation.

mod common;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use aegisfs_format::disk::{BLOCK_SIZE, FEATURE_INCOMPAT_RECOVER};
use aegisfs_tools::fsck::{
    run, Env, EXIT_CANCELLED, EXIT_ERROR, EXIT_NONDESTRUCT, EXIT_OK, EXIT_UNCORRECTED, EXIT_USAGE,
};
use aegisfs_tools::mounts::MountSources;
use common::fsck::{
    edit_inode, edit_sb, flip_bitmap_bit, fsck, ino_of, make_fs, read_block, write_block, FSCK,
};
use common::{mkfs_ok, text, Image, Scratch};

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
        let f = sb.feature_incompat.get();
        sb.feature_incompat.set(f | FEATURE_INCOMPAT_RECOVER);
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
fn usage_and_operational_errors() {
    let fs = make_fs("usage");
    assert_eq!(fsck(Path::new("-n"), &[]).0, 16);
    assert_eq!(fsck(&fs.img, &["-n", "-y"]).0, 16);
    assert_eq!(fsck(&fs.img, &["-x"]).0, 16);
    assert_eq!(fsck(&fs.img, &["-t", "ext4", "-n"]).0, 16);
    // Without -n/-y/-p and without a terminal there is no one to ask.
    assert_eq!(fsck(&fs.img, &[]).0, 16);
    // --help names every exit status the program uses, with the values it uses.
    let (code, out) = fsck(&fs.img, &["-h"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("Usage: fsck.aegisfs "), "{out}");
    let status = out
        .split("Exit status")
        .nth(1)
        .unwrap_or("")
        .replace('\n', " ");
    for (value, meaning) in [
        (EXIT_OK, "no errors"),
        (EXIT_NONDESTRUCT, "errors corrected"),
        (EXIT_UNCORRECTED, "errors left uncorrected"),
        (EXIT_ERROR, "operational error"),
        (EXIT_USAGE, "usage error"),
        (EXIT_CANCELLED, "cancelled"),
    ] {
        assert!(status.contains(&format!(" {value} {meaning}")), "{out}");
    }
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

/// Runs the library's `run` with an injected mount table (and stdout a terminal or not).
fn run_lib(args: &[&str], mounts: &Path, answers: Option<&str>, stdout_tty: bool) -> (i32, String) {
    let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = Cursor::new(answers.unwrap_or("").as_bytes().to_vec());
    let mut env = Env {
        stdout: &mut out,
        stderr: &mut err,
        stdin: &mut input,
        stdin_is_tty: answers.is_some(),
        stdout_is_tty: stdout_tty,
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
    let (code, out) = run_lib(&["-fy", img], &table, None, false);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains("is mounted on /mnt/x: will not repair a mounted filesystem"),
        "{out}"
    );
    let (code, out) = run_lib(&["-n", img], &table, None, false);
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
    let (code, out) = run_lib(&["-f", img], &table, Some("n\nmaybe\n\n"), false);
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
fn progress_bar_on_a_terminal() {
    let fs = make_fs("bar");
    let table = fs.img.with_file_name("mounts");
    fs::write(&table, "").unwrap();
    let img = fs.img.to_str().unwrap();
    let (code, out) = run_lib(&["-fn", "-C", "0", img], &table, None, true);
    assert_eq!(code, 0, "{out}");
    for pass in 1..=5 {
        assert!(
            out.contains(&format!("% (pass {pass})")),
            "pass {pass} drawn: {out:?}"
        );
    }
    // The bar is erased (a line of spaces between two `\r`) before the summary.
    let (drawn, after) = out.rsplit_once('\r').unwrap();
    assert!(
        after.starts_with(img) && !after.contains('|'),
        "summary: {after:?}"
    );
    let erase = drawn.rsplit_once('\r').unwrap().1;
    assert!(
        !erase.is_empty() && erase.chars().all(|c| c == ' '),
        "erased: {erase:?}"
    );
    let (_, plain) = run_lib(&["-fn", "-C", "0", img], &table, None, false);
    assert!(!plain.contains('\r'), "no bar off a terminal: {plain:?}");
}
