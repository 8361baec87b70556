//! `mkfs.aegisfs -d DIR`: a host tree copied into the image and read back through the
//! format crate, compared entry by entry with the host.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use aegisfs_format::blockmap::{DIND_START, TIND_START};
use aegisfs_format::disk::{
    FT_BLKDEV, FT_CHRDEV, FT_DIR, FT_FIFO, FT_REG, FT_SOCK, FT_SYMLINK, LOST_FOUND_INO, ROOT_INO,
};
use common::{mkfs, mkfs_ok, text, Image, RInode, Scratch};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Deterministic, non-repeating-looking bytes.
fn pattern(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn set_times(p: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: valid path and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

fn chown(p: &Path, uid: u32, gid: u32) {
    // SAFETY: valid path.
    let r = unsafe { libc::lchown(cpath(p).as_ptr(), uid, gid) };
    assert_eq!(r, 0, "lchown {}", p.display());
}

fn mknod(p: &Path, mode: libc::mode_t, dev: libc::dev_t) {
    // SAFETY: valid path.
    let r = unsafe { libc::mknod(cpath(p).as_ptr(), mode, dev) };
    assert_eq!(r, 0, "mknod {}", p.display());
}

/// Linux `new_encode_dev`, written out independently of mkfs.
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Indirect blocks of a dense file of `n` blocks.
fn indirect_blocks(n: u64) -> u64 {
    let p = 511;
    if n <= 12 {
        0
    } else if n <= DIND_START {
        1
    } else if n <= TIND_START {
        2 + (n - DIND_START).div_ceil(p)
    } else {
        let t = n - TIND_START;
        2 + p + 1 + t.div_ceil(p * p) + t.div_ceil(p)
    }
}

/// The host tree's metadata as mkfs will see it. Listing a directory may update its atime
/// (relatime), so everything is listed first and stat'ed afterwards; mkfs stats each entry
/// before reading it.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, fs::Metadata> {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        paths.push(p);
    }
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            (rel, fs::symlink_metadata(&p).unwrap())
        })
        .collect()
}

struct Compare<'a> {
    im: &'a Image,
    host: &'a Path,
    meta: &'a BTreeMap<Vec<u8>, fs::Metadata>,
    mkfs_time: i64,
    /// Host (dev, ino) -> image inode, to check hard links map to one inode.
    links: BTreeMap<(u64, u64), u32>,
    checked: usize,
}

impl Compare<'_> {
    fn attrs(&self, rel: &[u8], node: &RInode) {
        let m = &self.meta[rel];
        let i = node.i();
        let name = String::from_utf8_lossy(rel);
        assert_eq!(u32::from(i.mode.get()), m.mode(), "{name}: mode");
        assert_eq!(i.uid.get(), m.uid(), "{name}: uid");
        assert_eq!(i.gid.get(), m.gid(), "{name}: gid");
        let t = |ts: aegisfs_format::disk::Timestamp| (ts.sec, i64::from(ts.nsec));
        assert_eq!(t(i.atime()), (m.atime(), m.atime_nsec()), "{name}: atime");
        assert_eq!(t(i.mtime()), (m.mtime(), m.mtime_nsec()), "{name}: mtime");
        assert_eq!(t(i.ctime()), (m.ctime(), m.ctime_nsec()), "{name}: ctime");
        assert_eq!(i.crtime().sec, self.mkfs_time, "{name}: crtime");
    }

    /// Compares directory `rel` of the host with image directory `node`, recursively.
    fn dir(&mut self, rel: &[u8], node: &RInode) {
        self.attrs(rel, node);
        let host_dir = self.host.join(std::ffi::OsStr::from_bytes(rel));
        let mut host_names: Vec<Vec<u8>> = fs::read_dir(&host_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        host_names.sort();
        let entries = self.im.read_dir(node);
        let mut names: Vec<Vec<u8>> = entries[2..].iter().map(|e| e.0.clone()).collect();
        if node.ino == ROOT_INO && !host_names.iter().any(|n| n == b"lost+found") {
            let pos = names.iter().position(|n| n == b"lost+found").unwrap();
            assert_eq!(entries[2 + pos].1, LOST_FOUND_INO);
            names.remove(pos);
        }
        assert_eq!(
            names,
            host_names,
            "entries of {}",
            String::from_utf8_lossy(rel)
        );
        let subdirs = entries[2..].iter().filter(|e| e.2 == FT_DIR).count() as u32;
        assert_eq!(node.i().links_count.get(), 2 + subdirs);
        for (name, ino, ft) in &entries[2..] {
            let mut child_rel = rel.to_vec();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(name);
            if !self.meta.contains_key(&child_rel) {
                continue;
            }
            let child = self.im.inode(*ino);
            self.entry(&child_rel, &child, *ft);
        }
    }

    fn entry(&mut self, rel: &[u8], node: &RInode, ft: u8) {
        self.checked += 1;
        let m = self.meta[rel].clone();
        let name = String::from_utf8_lossy(rel).into_owned();
        let fty = m.file_type();
        let want_ft = if fty.is_dir() {
            FT_DIR
        } else if fty.is_file() {
            FT_REG
        } else if fty.is_symlink() {
            FT_SYMLINK
        } else if fty.is_char_device() {
            FT_CHRDEV
        } else if fty.is_block_device() {
            FT_BLKDEV
        } else if fty.is_fifo() {
            FT_FIFO
        } else {
            FT_SOCK
        };
        assert_eq!(ft, want_ft, "{name}: entry type");
        assert_eq!(node.i().file_type(), Some(want_ft), "{name}: inode type");
        if want_ft == FT_DIR {
            return self.dir(rel, node);
        }
        self.attrs(rel, node);
        if let Some(&prev) = self.links.get(&(m.dev(), m.ino())) {
            assert_eq!(prev, node.ino, "{name}: hard link to another inode");
        }
        self.links.insert((m.dev(), m.ino()), node.ino);
        assert_eq!(
            u64::from(node.i().links_count.get()),
            m.nlink(),
            "{name}: links"
        );
        let i = node.i();
        let host = self.host.join(std::ffi::OsStr::from_bytes(rel));
        match want_ft {
            FT_REG => {
                assert_eq!(i.size.get(), m.len(), "{name}: size");
                if m.len() <= 8 * MIB {
                    let want = fs::read(&host).unwrap();
                    assert!(self.im.read_file(node) == want, "{name}: contents");
                    if rel.starts_with(b"files/") {
                        let n = m.len().div_ceil(4096);
                        assert_eq!(i.blocks.get(), n + indirect_blocks(n), "{name}: blocks");
                    }
                }
            }
            FT_SYMLINK => {
                let target = fs::read_link(&host).unwrap();
                let target = target.as_os_str().as_bytes();
                assert_eq!(i.size.get(), target.len() as u64);
                assert_eq!(i.has_inline_data(), target.len() <= 120, "{name}: inline");
                assert_eq!(i.blocks.get(), u64::from(target.len() > 120));
                assert_eq!(self.im.read_file(node), target, "{name}: target");
            }
            _ => {
                assert_eq!(i.size.get(), 0);
                assert_eq!(i.blocks.get(), 0);
                let rdev = if want_ft == FT_CHRDEV || want_ft == FT_BLKDEV {
                    encode_dev(libc::major(m.rdev()), libc::minor(m.rdev()))
                } else {
                    0
                };
                assert_eq!(i.rdev.get(), rdev, "{name}: rdev");
            }
        }
    }
}

/// Builds the source tree of the main test.
fn make_tree(src: &Path) {
    let d = |p: &str| {
        fs::create_dir_all(src.join(p)).unwrap();
    };
    let w = |p: &str, data: &[u8]| fs::write(src.join(p), data).unwrap();
    d("files");
    for (name, len) in [
        ("empty", 0),
        ("one", 1),
        ("b4095", 4095),
        ("b4096", 4096),
        ("b48k", 48 * KIB),
        ("b48k1", 48 * KIB + 1),
        ("b2m1", 2 * MIB + 1),
    ] {
        w(&format!("files/{name}"), &pattern(len, len + 1));
    }
    // Zero bytes that were written are data, not holes.
    w("files/zeros", &vec![0u8; 64 * KIB as usize]);

    // Sparse: data in the direct, double and triple indirect ranges, a partial last block.
    d("sparse");
    let f = fs::File::create(src.join("sparse/holes")).unwrap();
    for (block, data) in sparse_layout() {
        f.write_all_at(&data, block * 4096).unwrap();
    }
    drop(f);

    // Hard links within the tree.
    d("links/sub");
    w("links/a", b"linked file contents");
    fs::hard_link(src.join("links/a"), src.join("links/sub/b")).unwrap();
    w("links/three", b"three names");
    fs::hard_link(src.join("links/three"), src.join("links/3b")).unwrap();
    fs::hard_link(src.join("links/three"), src.join("files/3c")).unwrap();

    // Symlinks: inline up to 120 bytes, one block above, up to 4095.
    d("symlinks");
    symlink("../files/one", src.join("symlinks/short")).unwrap();
    symlink("a".repeat(120), src.join("symlinks/s120")).unwrap();
    symlink("b".repeat(121), src.join("symlinks/s121")).unwrap();
    symlink("c/".repeat(2047) + "d", src.join("symlinks/s4095")).unwrap();

    // A directory of 10 000 entries: many blocks, through the indirect block.
    d("big");
    for i in 0..10_000 {
        fs::File::create(src.join(format!("big/entry-{i:05}-with-a-longer-name"))).unwrap();
    }

    // Modes, owners and times.
    d("modes/setgid");
    d("modes/sticky");
    w("modes/suid", b"#!/bin/sh\n");
    w("modes/private", b"secret");
    let perm =
        |p: &str, m: u32| fs::set_permissions(src.join(p), fs::Permissions::from_mode(m)).unwrap();
    perm("modes/suid", 0o4755);
    perm("modes/setgid", 0o2775);
    perm("modes/sticky", 0o1777);
    perm("modes/private", 0o600);
    chown(&src.join("modes/private"), 1234, 5678);
    chown(&src.join("symlinks/short"), 77, 88);
    set_times(
        &src.join("modes/private"),
        (1_000_000_000, 123_456_789),
        (1_500_000_000, 987_654_321),
    );
    set_times(
        &src.join("symlinks/short"),
        (-5, 1),
        (4_102_444_800, 999_999_999),
    );

    // Devices, FIFO, socket.
    d("special");
    mknod(
        &src.join("special/null"),
        libc::S_IFCHR | 0o666,
        libc::makedev(1, 3),
    );
    mknod(
        &src.join("special/blk"),
        libc::S_IFBLK | 0o660,
        libc::makedev(259, 300),
    );
    mknod(&src.join("special/fifo"), libc::S_IFIFO | 0o644, 0);
    let sock = std::os::unix::net::UnixListener::bind(src.join("special/sock")).unwrap();
    drop(sock);

    d("deep/d1/d2/d3/d4/d5");
    w("deep/d1/d2/d3/d4/d5/leaf", b"leaf");

    // The root takes the source directory's own attributes.
    fs::set_permissions(src, fs::Permissions::from_mode(0o751)).unwrap();
    chown(src, 4242, 4343);
    set_times(src, (1_111_111_111, 11), (1_222_222_222, 22));
}

/// `(logical block, bytes)` of the sparse file.
fn sparse_layout() -> Vec<(u64, Vec<u8>)> {
    let deep = TIND_START + 2 * 511 * 511 + 3 * 511 + 7;
    vec![
        (5, pattern(4096, 5)),
        (600, pattern(100, 600)),
        (TIND_START, pattern(4096, 7)),
        (deep, pattern(4000, 9)),
    ]
}

#[test]
fn populate_tree_round_trip() {
    let t = Scratch::new("tree");
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src);
    let meta = snapshot(&src);
    let img = t.join("img");
    let out = mkfs_ok(&["-d", src.to_str().unwrap(), img.to_str().unwrap(), "256M"]);
    let o = text(&out.stdout);
    assert!(o.contains("copied:"), "{o}");

    let im = Image::open(&img);
    im.check();
    let mkfs_time = im.sb().mkfs_time.get();
    let root = im.inode(ROOT_INO);
    let mut cmp = Compare {
        im: &im,
        host: &src,
        meta: &meta,
        mkfs_time,
        links: BTreeMap::new(),
        checked: 0,
    };
    cmp.dir(b"", &root);
    assert_eq!(cmp.checked + 1, meta.len(), "every host entry was compared");

    // lost+found is still made, with its 4 blocks.
    let lf = im.lookup("lost+found");
    assert_eq!(lf.ino, LOST_FOUND_INO);
    assert_eq!(lf.i().blocks.get(), 4);

    // Zero bytes that were written stay allocated.
    let zeros = im.lookup("files/zeros");
    assert_eq!(im.block_map(&zeros).data.len(), 16);

    // A file is laid out contiguously: 12 direct blocks, its indirect block, the rest.
    let f = im.lookup("files/b2m1");
    let map = im.block_map(&f);
    let all = map.all_blocks();
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "not contiguous");
    assert_eq!(map.indirect, vec![map.data[&11] + 1]);
    assert_eq!(map.data[&12], map.indirect[0] + 1);

    // The sparse file: only the written blocks are mapped; holes read as zeros.
    let sp = im.lookup("sparse/holes");
    let layout = sparse_layout();
    let (last_block, last_data) = layout.last().unwrap();
    let size = last_block * 4096 + last_data.len() as u64;
    assert_eq!(sp.i().size.get(), size);
    let map = im.block_map(&sp);
    let mapped: Vec<u64> = map.data.keys().copied().collect();
    assert_eq!(mapped, layout.iter().map(|(b, _)| *b).collect::<Vec<_>>());
    // Double: root + leaf; triple: root + double + leaf, then another double + leaf.
    assert_eq!(map.indirect.len(), 7);
    assert_eq!(sp.i().blocks.get(), 4 + 7);
    assert_ne!(sp.i().triple_indirect.get(), 0);
    for (block, data) in &layout {
        let got = im.read_with_map(&map, block * 4096, 4096.min(size - block * 4096));
        assert_eq!(&got[..data.len()], &data[..]);
        assert!(got[data.len()..].iter().all(|&b| b == 0));
    }
    for hole in [
        0u64,
        6 * 4096,
        599 * 4096,
        100 * MIB,
        TIND_START * 4096 + 4096,
    ] {
        assert!(im.read_with_map(&map, hole, 4096).iter().all(|&b| b == 0));
    }

    // The 10 000-entry directory spans many blocks, mapped through its indirect block.
    let big = im.lookup("big");
    assert!(big.i().size.get() / 4096 > 12);
    assert_ne!(big.i().indirect.get(), 0);
    assert_eq!(im.read_dir(&big).len(), 10_002);

    // Hard links share an inode.
    assert_eq!(im.lookup("links/a").ino, im.lookup("links/sub/b").ino);
    let three = im.lookup("files/3c");
    assert_eq!(three.ino, im.lookup("links/three").ino);
    assert_eq!(three.i().links_count.get(), 3);

    assert_eq!(root.i().mode.get(), 0o040751);
    assert_eq!((root.i().uid.get(), root.i().gid.get()), (4242, 4343));
    assert_eq!(root.i().mtime().nsec, 22);
}

#[test]
fn source_lost_and_found_is_merged() {
    let t = Scratch::new("lf");
    let src = t.join("src");
    fs::create_dir_all(src.join("lost+found/inner")).unwrap();
    fs::write(src.join("lost+found/orphan"), b"x").unwrap();
    fs::set_permissions(src.join("lost+found"), fs::Permissions::from_mode(0o750)).unwrap();
    let img = t.join("img");
    mkfs_ok(&[
        "-q",
        "-d",
        src.to_str().unwrap(),
        img.to_str().unwrap(),
        "64M",
    ]);
    let im = Image::open(&img);
    im.check();
    let lf = im.lookup("lost+found");
    assert_eq!(lf.ino, LOST_FOUND_INO);
    assert_eq!(lf.i().mode.get(), 0o040750);
    assert_eq!(lf.i().blocks.get(), 4);
    assert_eq!(lf.i().links_count.get(), 3);
    assert_eq!(im.read_file(&im.lookup("lost+found/orphan")), b"x");
    let names: Vec<Vec<u8>> = im
        .read_dir(&im.inode(ROOT_INO))
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        names,
        vec![b".".to_vec(), b"..".to_vec(), b"lost+found".to_vec()]
    );
}

#[test]
fn populate_errors() {
    let t = Scratch::new("perr");
    let img = t.join("img");
    let img_s = img.to_str().unwrap();

    // lost+found in the source must be a directory.
    let src = t.join("bad-lf");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("lost+found"), b"").unwrap();
    let out = mkfs(&["-q", "-d", src.to_str().unwrap(), img_s, "64M"]);
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out.stderr).contains("must be a directory"));

    // The source must be a directory.
    assert!(!img.exists(), "a failed mkfs left the image it created");
    let out = mkfs(&[
        "-q",
        "-d",
        src.join("lost+found").to_str().unwrap(),
        img_s,
        "64M",
    ]);
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out.stderr).contains("not a directory"));
    let out = mkfs(&["-q", "-d", t.join("nope").to_str().unwrap(), img_s, "64M"]);
    assert_eq!(out.status.code(), Some(8));
    // A bad source is found before an existing filesystem is touched.
    mkfs_ok(&["-q", img_s, "64M"]);
    let uuid = Image::open(&img).sb().uuid;
    let out = mkfs(&["-q", "-d", t.join("nope").to_str().unwrap(), img_s]);
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out.stderr).contains("cannot stat"));
    assert_eq!(Image::open(&img).sb().uuid, uuid);
    fs::remove_file(&img).unwrap();

    // Too many files for the inodes asked for.
    let many = t.join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..40 {
        fs::write(many.join(format!("f{i}")), b"").unwrap();
    }
    let out = mkfs(&["-q", "-N", "32", "-d", many.to_str().unwrap(), img_s, "64M"]);
    assert_eq!(out.status.code(), Some(8));
    assert!(
        text(&out.stderr).contains("inodes"),
        "{}",
        text(&out.stderr)
    );

    // The image inside the source tree.
    let inside = t.join("inside");
    fs::create_dir(&inside).unwrap();
    let own = inside.join("img");
    let out = mkfs(&[
        "-q",
        "-d",
        inside.to_str().unwrap(),
        own.to_str().unwrap(),
        "64M",
    ]);
    assert_eq!(out.status.code(), Some(8));
    assert!(
        text(&out.stderr).contains("contains the image"),
        "{}",
        text(&out.stderr)
    );

    // More data than space.
    let fat = t.join("fat");
    fs::create_dir(&fat).unwrap();
    fs::write(fat.join("big"), pattern(6 * MIB, 3)).unwrap();
    let out = mkfs(&[
        "-q",
        "-f",
        "-J",
        "0",
        "-d",
        fat.to_str().unwrap(),
        img_s,
        "4M",
    ]);
    assert_eq!(out.status.code(), Some(8));
    assert!(
        text(&out.stderr).contains("no space left"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn large_file_is_written_in_large_runs() {
    let t = Scratch::new("large");
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    let data = pattern(40 * MIB + 123, 11);
    fs::write(src.join("blob"), &data).unwrap();
    let img = t.join("img");
    let out = mkfs_ok(&[
        "-v",
        "-d",
        src.to_str().unwrap(),
        img.to_str().unwrap(),
        "128M",
    ]);
    let o = text(&out.stdout);
    let writes: u64 = o
        .lines()
        .find_map(|l| l.trim().strip_prefix("data writes:"))
        .and_then(|v| v.split_whitespace().next())
        .map(|n| n.parse().unwrap())
        .unwrap_or_else(|| panic!("no write count in {o}"));
    // 40 MiB in buffers of up to 8 MiB, plus the directories.
    assert!(writes <= 10, "{writes} writes");
    let im = Image::open(&img);
    im.check();
    let blob = im.lookup("blob");
    assert!(im.read_file(&blob) == data);
    let all = im.block_map(&blob).all_blocks();
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "not contiguous");
}
