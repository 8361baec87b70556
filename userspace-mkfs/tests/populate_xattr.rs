//! `mkfs.aegisfs -d DIR` and extended attributes: the host's `user.`, `trusted.`,
//! `security.` attributes and POSIX ACLs are copied to the image, inline while they fit and
//! then in one xattr block, as the kernel module stores them. The image is checked by
//! fsck and read back through the format crate, attribute by attribute, against the host.

mod common;

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use aegisfs_format::disk::{FEATURE_COMPAT_XATTR, ROOT_INO};
use aegisfs_format::xattr::{
    acl_entries, check_disjoint, entries, entry_size, index_prefix, inline_area, inline_used,
    is_acl_index, validate_inline, AclEntry, XattrBlock, ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK,
    ACL_OTHER, ACL_USER, ACL_USER_OBJ, XATTR_BLOCK_AREA_SIZE, XATTR_INLINE_OFFSET,
};
use common::fsck::fsck;
use common::{mkfs, mkfs_ok, text, Image, RInode, Scratch};

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `lsetxattr` (a symlink itself, not its target).
fn set(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let n = CString::new(name).unwrap();
    // SAFETY: C strings and a buffer of `value.len()` bytes.
    let r = unsafe {
        libc::lsetxattr(
            cpath(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn must_set(p: &Path, name: &str, value: &[u8]) {
    set(p, name, value).unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
}

/// The host attributes of `p` (not following a symlink), in `llistxattr` order.
fn host_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let c = cpath(p);
    let mut list = vec![0u8; 65536];
    // SAFETY: a C string and a buffer of its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    assert!(n >= 0, "llistxattr {}", p.display());
    list.truncate(n as usize);
    list.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let cn = CString::new(name).unwrap();
            let mut v = vec![0u8; 65536];
            // SAFETY: C strings and a buffer of its length.
            let n =
                unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
            assert!(n >= 0, "lgetxattr {}", p.display());
            v.truncate(n as usize);
            (String::from_utf8(name.to_vec()).unwrap(), v)
        })
        .collect()
}

/// The entries of an ACL in the VFS xattr format (version 2), with the ids of unnamed
/// entries as AegisFS stores them (0).
fn vfs_acl_entries(v: &[u8]) -> Vec<AclEntry> {
    assert_eq!(v[..4], 2u32.to_le_bytes());
    v[4..]
        .chunks_exact(8)
        .map(|e| {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            AclEntry {
                tag,
                perm: u16::from_le_bytes([e[2], e[3]]),
                id: if matches!(tag, ACL_USER | ACL_GROUP) {
                    id
                } else {
                    0
                },
            }
        })
        .collect()
}

/// A VFS xattr ACL value (`ACL_UNDEFINED_ID` for unnamed entries).
fn vfs_acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        let id = if matches!(tag, ACL_USER | ACL_GROUP) {
            id
        } else {
            u32::MAX
        };
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// One attribute as read from the image: full name, value, and whether it is inline.
#[derive(Debug)]
struct Stored {
    name: String,
    value: Vec<u8>,
    inline: bool,
}

/// Every attribute of `node`: the inline area, then the xattr block, each checked by the
/// format crate (area rules, block checksum and header, no name in both).
fn image_xattrs(im: &Image, node: &RInode) -> Vec<Stored> {
    validate_inline(&node.raw).unwrap();
    let (area, used) = (inline_area(&node.raw), inline_used(&node.raw));
    let full = |index: u8, name: &[u8]| {
        format!("{}{}", index_prefix(index), String::from_utf8_lossy(name))
    };
    let mut out: Vec<Stored> = entries(area, used)
        .map(|e| {
            let e = e.unwrap();
            Stored {
                name: full(e.index, e.name),
                value: e.value.to_vec(),
                inline: true,
            }
        })
        .collect();
    let b = node.i().xattr_block.get();
    if b != 0 {
        let raw = im.block(b);
        let x = XattrBlock::from_block(&raw);
        x.validate(im.seed(), b).unwrap();
        assert_ne!(x.used(), 0, "inode {}: empty xattr block", node.ino);
        check_disjoint(area, used, &x.area, x.used()).unwrap();
        for e in entries(&x.area, x.used()) {
            let e = e.unwrap();
            if is_acl_index(e.index) {
                acl_entries(e.value).unwrap().for_each(drop);
            }
            out.push(Stored {
                name: full(e.index, e.name),
                value: e.value.to_vec(),
                inline: false,
            });
        }
    }
    out
}

/// Where the kernel module's `setxattr`, called for each host attribute in turn, puts each
/// one: inline while its entry fits after those already inline, else in the block.
fn expected_inline(host: &[(String, Vec<u8>)], inline_len: usize) -> Vec<bool> {
    let mut used = 0;
    host.iter()
        .map(|(name, value)| {
            let suffix = ["user.", "trusted.", "security."]
                .iter()
                .find_map(|p| name.strip_prefix(p))
                .unwrap_or("");
            // An on-disk ACL is as long as the VFS one: a 4-byte header, 8-byte entries.
            let size = entry_size(suffix.len(), value.len());
            if used + size <= inline_len {
                used += size;
                true
            } else {
                false
            }
        })
        .collect()
}

/// Compares the attributes of image inode `node` with host file `host`: the same names in
/// the same order, byte-identical values (ACLs: the same entries), each inline or in the
/// block where the kernel would have put it, and the inode's counts.
fn compare(im: &Image, host: &Path, node: &RInode) -> Vec<Stored> {
    let want = host_xattrs(host);
    let got = image_xattrs(im, node);
    let what = host.display();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(got.iter().map(|s| s.name.clone()).collect()),
        sorted(want.iter().map(|(n, _)| n.clone()).collect()),
        "{what}: names"
    );
    let inline_len = usize::from(im.geo.inode_size()) - XATTR_INLINE_OFFSET;
    for ((name, value), inline) in want.iter().zip(expected_inline(&want, inline_len)) {
        let s = got.iter().find(|s| s.name == *name).unwrap();
        if name.starts_with("system.posix_acl_") {
            let disk: Vec<AclEntry> = acl_entries(&s.value).unwrap().collect();
            assert_eq!(disk, vfs_acl_entries(value), "{what}: {name}");
        } else {
            assert!(s.value == *value, "{what}: value of {name}");
        }
        assert_eq!(s.inline, inline, "{what}: {name} inline");
    }
    let i = node.i();
    let used: usize = got
        .iter()
        .filter(|s| s.inline)
        .map(|s| {
            let suffix = s.name.split_once('.').map_or("", |(_, r)| r);
            let suffix = if s.name.starts_with("system.") {
                ""
            } else {
                suffix
            };
            entry_size(suffix.len(), s.value.len())
        })
        .sum();
    assert_eq!(usize::from(i.extra_size.get()), used, "{what}: extra_size");
    assert_eq!(
        i.xattr_block.get() != 0,
        got.iter().any(|s| !s.inline),
        "{what}: xattr block"
    );
    got
}

/// Whether the host refuses `trusted.` attributes (not root): the tests then leave them out.
fn trusted_ok(probe: &Path) -> bool {
    match set(probe, "trusted.probe", b"") {
        Ok(()) => {
            // SAFETY: C strings.
            let n = CString::new("trusted.probe").unwrap();
            unsafe { libc::lremovexattr(cpath(probe).as_ptr(), n.as_ptr()) };
            true
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("SKIP trusted. attributes: not permitted here ({e})");
            false
        }
        Err(e) => panic!("trusted. xattr on {}: {e}", probe.display()),
    }
}

/// Whether the source's filesystem takes user. attributes and ACLs; a clear skip otherwise.
fn host_supports(probe: &Path) -> (bool, bool) {
    let user = match set(probe, "user.probe", b"") {
        Ok(()) => {
            let n = CString::new("user.probe").unwrap();
            // SAFETY: C strings.
            unsafe { libc::lremovexattr(cpath(probe).as_ptr(), n.as_ptr()) };
            true
        }
        Err(e) => {
            eprintln!(
                "SKIP: the filesystem of {} refuses user. xattrs ({e}); set TMPDIR to one \
                 that takes them",
                probe.display()
            );
            false
        }
    };
    let acl = vfs_acl(&[
        (ACL_USER_OBJ, 6, 0),
        (ACL_GROUP_OBJ, 4, 0),
        (ACL_OTHER, 4, 0),
    ]);
    let acl = match set(probe, "system.posix_acl_access", &acl) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "SKIP ACLs: the filesystem of {} refuses system.posix_acl_access ({e})",
                probe.display()
            );
            false
        }
    };
    (user, acl)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Paths (relative to the source) that carry `user.` attributes in [`make_tree`].
const WITH_USER: &[&str] = &["", "small", "big", "many", "mixed", "link-a", "empty-value"];

/// Paths (relative to the source) that may carry attributes in [`make_tree`].
const WITH_XATTRS: &[&str] = &[
    "",
    "small",
    "big",
    "many",
    "mixed",
    "acl-file",
    "acl-dir",
    "acl-dir/inherits",
    "link-a",
    "sym",
    "sub/fifo",
    "empty-value",
];

/// A source tree with attributes of every kind and size (`trusted.` ones and ACLs only when
/// the host takes them).
fn make_tree(src: &Path, trusted: bool, acl: bool) {
    fs::create_dir_all(src.join("sub")).unwrap();
    let file = |p: &str, data: &[u8]| {
        let path = src.join(p);
        fs::write(&path, data).unwrap();
        path
    };
    must_set(src, "user.root", b"the root directory");

    // One small attribute: inline.
    let p = file("small", b"small");
    must_set(&p, "user.colour", b"blue");
    if trusted {
        must_set(&p, "trusted.t", &[0, 1, 2, 0xFF]);
    }

    // A large value: does not fit inline, goes to the block.
    let p = file("big", &pattern(10_000, 1));
    must_set(&p, "user.small", b"x");
    must_set(&p, "user.large", &pattern(3000, 2));

    // Many small ones: the inline area fills, the rest spill into the block.
    let p = file("many", b"");
    for i in 0..40 {
        must_set(
            &p,
            &format!("user.attribute-{i:02}"),
            &pattern(10 + i, i as u8),
        );
    }

    // After a large one went to the block, a small one still goes inline (entries of 208
    // and 8 bytes: in this order and in the reverse one, whichever the host lists).
    let p = file("mixed", b"m");
    for (name, len) in [
        ("a", 200),
        ("b", 200),
        ("c", 3),
        ("d", 200),
        ("e", 200),
        ("f", 3),
    ] {
        must_set(&p, &format!("user.{name}"), &pattern(len, len as u8));
    }
    if trusted {
        must_set(&p, "trusted.binary\x01name", &pattern(255, 6));
    }

    let p = file("empty-value", b"");
    must_set(&p, "user.empty", b"");

    // A hard-linked file: one inode, its attributes once.
    let p = file("link-a", b"linked");
    must_set(&p, "user.linked", b"shared by both names");
    fs::hard_link(&p, src.join("sub/link-b")).unwrap();

    // A symlink and a FIFO take trusted. (user. is refused on them).
    symlink("small", src.join("sym")).unwrap();
    let fifo = src.join("sub/fifo");
    // SAFETY: a C string.
    let r = unsafe { libc::mkfifo(cpath(&fifo).as_ptr(), 0o640) };
    assert_eq!(r, 0);
    if trusted {
        must_set(&src.join("sym"), "trusted.on-the-link", b"not the target");
        must_set(&fifo, "trusted.fifo", b"f");
    }

    // ACLs: an access ACL with named entries on a file, a default ACL on a directory (and
    // the access ACL the directory needs alongside), inherited by a file created in it.
    let p = file("acl-file", b"acl");
    fs::create_dir(src.join("acl-dir")).unwrap();
    if acl {
        let access = vfs_acl(&[
            (ACL_USER_OBJ, 6, 0),
            (ACL_USER, 4, 1000),
            (ACL_USER, 6, 4_000_000_000),
            (ACL_GROUP_OBJ, 4, 0),
            (ACL_GROUP, 5, 100),
            (ACL_MASK, 6, 0),
            (ACL_OTHER, 0, 0),
        ]);
        must_set(&p, "system.posix_acl_access", &access);
        must_set(&p, "user.after-acl", b"1");
        let default = vfs_acl(&[
            (ACL_USER_OBJ, 7, 0),
            (ACL_USER, 7, 1234),
            (ACL_GROUP_OBJ, 5, 0),
            (ACL_MASK, 7, 0),
            (ACL_OTHER, 5, 0),
        ]);
        let d = src.join("acl-dir");
        must_set(&d, "system.posix_acl_default", &default);
        must_set(&d, "system.posix_acl_access", &default);
    }
    // Created after the default ACL: the host gives it an inherited access ACL.
    fs::write(src.join("acl-dir/inherits"), b"i").unwrap();
}

fn check_image(src: &Path, img: &Path, acl: bool) -> Image {
    let (code, out) = fsck(img, &["-n"]);
    assert_eq!(code, 0, "fsck -n\n{out}");
    let (code, out) = fsck(img, &["-fn"]);
    assert_eq!(code, 0, "fsck -fn\n{out}");
    let im = Image::open(img);
    im.check();
    assert_ne!(im.sb().feature_compat.get() & FEATURE_COMPAT_XATTR, 0);
    for rel in WITH_XATTRS {
        let node = if rel.is_empty() {
            im.inode(ROOT_INO)
        } else {
            im.lookup(rel)
        };
        let got = compare(&im, &src.join(rel), &node);
        if WITH_USER.contains(rel) || (acl && rel.starts_with("acl-")) {
            assert!(!got.is_empty(), "{rel}: no attributes");
        }
    }
    // Files without attributes have neither an inline area nor a block.
    for rel in ["sub", "sub/link-b"] {
        let node = im.lookup(rel);
        compare(&im, &src.join(rel), &node);
    }
    assert_eq!(im.lookup("link-a").ino, im.lookup("sub/link-b").ino);
    im
}

/// The source tree of `make_tree` in `t`, whether it has ACLs and trusted xattrs; `None`
/// when the host filesystem has no user xattrs.
fn source_tree(t: &Scratch) -> Option<(PathBuf, bool, bool)> {
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    let (user, acl) = host_supports(&src);
    if !user {
        return None;
    }
    // The probe may have left an access ACL on the source root: start again.
    fs::remove_dir(&src).unwrap();
    fs::create_dir(&src).unwrap();
    let trusted = trusted_ok(&src);
    make_tree(&src, trusted, acl);
    Some((src, acl, trusted))
}

#[test]
fn xattrs_and_acls_are_copied() {
    let t = Scratch::new("xattr");
    let Some((src, acl, trusted)) = source_tree(&t) else {
        return;
    };

    let img = t.join("img");
    let out = mkfs_ok(&["-d", src.to_str().unwrap(), img.to_str().unwrap(), "64M"]);
    let o = text(&out.stdout);
    assert!(o.contains("extended attributes"), "{o}");
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    let im = check_image(&src, &img, acl);

    // The placements the tree was made for.
    let inline_of = |rel: &str| -> Vec<bool> {
        image_xattrs(&im, &im.lookup(rel))
            .iter()
            .map(|s| s.inline)
            .collect()
    };
    let small = im.lookup("small");
    assert!(inline_of("small").iter().all(|&i| i));
    assert_eq!(small.i().xattr_block.get(), 0);
    assert_eq!(small.i().blocks.get(), 1);
    let big = im.lookup("big");
    assert_ne!(big.i().xattr_block.get(), 0);
    // Three data blocks and the xattr block.
    assert_eq!(big.i().blocks.get(), 3 + 1);
    let many = inline_of("many");
    assert_eq!(many.len(), 40);
    let inline_count = many.iter().filter(|&&i| i).count();
    assert!(
        inline_count > 3 && inline_count < 40,
        "{inline_count} inline"
    );
    let many_node = im.lookup("many");
    assert_eq!(
        many_node.i().blocks.get(),
        1,
        "empty file with an xattr block"
    );
    assert!(
        usize::from(many_node.i().extra_size.get()) > 256 - 40,
        "inline area filled"
    );
    // `compare` checked every placement against the host's listing order; when that is the
    // order they were set in or its reverse (tmpfs), some attribute is inline after one
    // went to the block.
    let mixed = image_xattrs(&im, &im.lookup("mixed"));
    let host_order: Vec<String> = host_xattrs(&src.join("mixed"))
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("user."))
        .collect();
    let set_order: Vec<String> = "abcdef".chars().map(|c| format!("user.{c}")).collect();
    let reverse: Vec<String> = set_order.iter().rev().cloned().collect();
    if host_order == set_order || host_order == reverse {
        let inline: Vec<bool> = host_order
            .iter()
            .map(|n| mixed.iter().find(|s| s.name == *n).unwrap().inline)
            .collect();
        let first_in_block = inline.iter().position(|&i| !i).unwrap();
        assert!(inline[first_in_block..].iter().any(|&i| i), "{inline:?}");
    }
    if trusted {
        let sym = image_xattrs(&im, &im.lookup("sym"));
        assert_eq!(sym.len(), 1);
        assert_eq!(
            (sym[0].name.as_str(), &sym[0].value[..]),
            ("trusted.on-the-link", &b"not the target"[..])
        );
        // An inline symlink target and an inline attribute: no block at all.
        assert_eq!(im.lookup("sym").i().blocks.get(), 0);
    }
    if acl {
        let d = image_xattrs(&im, &im.lookup("acl-dir"));
        let names: Vec<&str> = d.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"system.posix_acl_default"), "{names:?}");
        let f = image_xattrs(&im, &im.lookup("acl-dir/inherits"));
        assert!(
            f.iter().any(|s| s.name == "system.posix_acl_access"),
            "inherited ACL not copied: {f:?}"
        );
    }
}

#[test]
fn small_inodes_keep_every_xattr_in_the_block() {
    let t = Scratch::new("xattr-i256");
    let Some((src, acl, _)) = source_tree(&t) else {
        return;
    };
    let img = t.join("img");
    mkfs_ok(&[
        "-q",
        "-I",
        "256",
        "-d",
        src.to_str().unwrap(),
        img.to_str().unwrap(),
        "64M",
    ]);
    let im = check_image(&src, &img, acl);
    assert_eq!(im.geo.inode_size(), 256);
    for rel in WITH_XATTRS {
        let node = if rel.is_empty() {
            im.inode(ROOT_INO)
        } else {
            im.lookup(rel)
        };
        assert_eq!(node.i().extra_size.get(), 0, "{rel}");
        let got = image_xattrs(&im, &node);
        assert!(got.iter().all(|s| !s.inline), "{rel}");
        assert_eq!(node.i().xattr_block.get() != 0, !got.is_empty(), "{rel}");
    }
    // The 40 entries of "many" (about 1.9 KiB) all fit in its block.
    assert_eq!(image_xattrs(&im, &im.lookup("many")).len(), 40);
}

/// `mkfs -q -d src img 64M`.
fn mkfs_from(src: &Path, img: &Path) -> std::process::Output {
    mkfs(&[
        "-q",
        "-d",
        src.to_str().unwrap(),
        img.to_str().unwrap(),
        "64M",
    ])
}

#[test]
fn too_many_xattrs_fail_with_the_file_named() {
    let t = Scratch::new("xattr-full");
    let src = t.join("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    let (user, _) = host_supports(&src);
    if !user {
        return;
    }
    let p = src.join("dir/crowded");
    fs::write(&p, b"").unwrap();
    // 256 bytes inline and 4064 in the block: five entries of 1008 bytes cannot fit. (A
    // host filesystem with less room, such as ext4 without ea_inode, refuses them too.)
    for i in 0..5 {
        if let Err(e) = set(&p, &format!("user.v{i}"), &pattern(1000, i)) {
            eprintln!("SKIP: the host filesystem has no room for 5 KiB of xattrs ({e})");
            return;
        }
    }
    let img = t.join("img");
    let out = mkfs_from(&src, &img);
    assert_eq!(out.status.code(), Some(8));
    let err = text(&out.stderr);
    assert!(
        err.contains("dir/crowded") && err.contains("user.v") && err.contains("no space"),
        "{err}"
    );
    assert!(!img.exists(), "a failed mkfs left the image it created");

    // One value too large for an empty block.
    fs::remove_file(&p).unwrap();
    let p = src.join("huge");
    fs::write(&p, b"").unwrap();
    if let Err(e) = set(&p, "user.h", &pattern(XATTR_BLOCK_AREA_SIZE - 4, 9)) {
        eprintln!("SKIP: the host filesystem refuses a 4060-byte xattr value ({e})");
        return;
    }
    let out = mkfs_from(&src, &img);
    assert_eq!(out.status.code(), Some(8));
    let err = text(&out.stderr);
    assert!(err.contains("huge") && err.contains("user.h"), "{err}");

    // The largest single value (4060 - name length) fits.
    fs::remove_file(&p).unwrap();
    let p = src.join("largest");
    fs::write(&p, b"").unwrap();
    if let Err(e) = set(&p, "user.h", &pattern(XATTR_BLOCK_AREA_SIZE - 4 - 1, 9)) {
        eprintln!("SKIP: the host filesystem refuses a 4059-byte xattr value ({e})");
        return;
    }
    mkfs_ok(&[
        "-q",
        "-d",
        src.to_str().unwrap(),
        img.to_str().unwrap(),
        "64M",
    ]);
    let (code, out) = fsck(&img, &["-n"]);
    assert_eq!(code, 0, "{out}");
    let im = Image::open(&img);
    im.check();
    compare(&im, &p, &im.lookup("largest"));
}
