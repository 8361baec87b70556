//! Extended attributes for `-d`: read from the host (`llistxattr`/`lgetxattr`, symlinks not
//! followed), mapped to AegisFS name indexes (POSIX ACLs converted from the VFS xattr format
//! to the on-disk one, docs/format.md "POSIX ACL values") and placed in the inode's inline
//! area and one xattr block the way the kernel module's `setxattr` places them, one
//! attribute after the other: inline while the entry fits there, else in the block.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use aegisfs_format::disk::BLOCK_SIZE;
use aegisfs_format::xattr::{
    acl_encode, acl_value_len, insert, is_valid_name, AclEntry, XattrBlock, ACL_GROUP,
    ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_USER_OBJ, XATTR_BLOCK_AREA_SIZE,
    XATTR_INDEX_POSIX_ACL_ACCESS, XATTR_INDEX_POSIX_ACL_DEFAULT, XATTR_INDEX_SECURITY,
    XATTR_INDEX_TRUSTED, XATTR_INDEX_USER,
};

/// Version of the VFS's xattr representation of an ACL (`POSIX_ACL_XATTR_VERSION`).
const VFS_ACL_VERSION: u32 = 2;
/// Bytes of its header and of each entry (`u16 tag, u16 perm, u32 id`, little-endian).
const VFS_ACL_HEADER_SIZE: usize = 4;
const VFS_ACL_ENTRY_SIZE: usize = 8;

/// Host attributes: full names and values.
pub type HostList = Vec<(Vec<u8>, Vec<u8>)>;

/// One attribute to store: name index, name suffix, value (on-disk form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    pub index: u8,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// The attributes of one host file, ready to place, and the host names that have no
/// AegisFS namespace (not copied; the caller warns).
#[derive(Debug, Default)]
pub struct HostXattrs {
    pub attrs: Vec<Xattr>,
    pub skipped: Vec<Vec<u8>>,
}

/// Where attributes went: the inline area (`inline_len` bytes, `inline_used` of them
/// entries) and, when some did not fit there, the contents of an xattr block (checksum not
/// yet set: it depends on the block number).
pub struct Placement {
    pub inline: Vec<u8>,
    pub inline_used: usize,
    pub block: Option<Box<[u8; BLOCK_SIZE]>>,
}

fn cpath(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{}: path contains a NUL byte", path.display()))
}

fn display_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// Runs a size-query-then-fill xattr call (`f(buf, size)` with a null buffer and size 0
/// first), retrying when the list grew in between (ERANGE).
fn sized_call(
    mut f: impl FnMut(*mut libc::c_void, libc::size_t) -> libc::ssize_t,
) -> io::Result<Vec<u8>> {
    loop {
        let want = f(std::ptr::null_mut(), 0);
        if want < 0 {
            return Err(io::Error::last_os_error());
        }
        // One spare byte: a result that fills the buffer exactly is still complete.
        let mut buf = vec![0u8; want as usize + 1];
        let got = f(buf.as_mut_ptr().cast(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) {
            return Err(err);
        }
    }
}

/// The host's extended attributes of `path` (not following a symlink), full names and
/// values in `llistxattr` order. A filesystem without xattr support has none.
pub fn read_host(path: &Path) -> Result<HostList, String> {
    let c = cpath(path)?;
    let list = match sized_call(|buf, size| {
        // SAFETY: `c` is a C string; `buf` is null with size 0 or points to `size` bytes.
        unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), size) }
    }) {
        Ok(list) => list,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "{}: cannot list extended attributes: {e}",
                path.display()
            ))
        }
    };
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("split at NUL bytes");
        let value = match sized_call(|buf, size| {
            // SAFETY: as above, with `cname` a C string.
            unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf, size) }
        }) {
            Ok(v) => v,
            // Removed since it was listed.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
            Err(e) => {
                return Err(format!(
                    "{}: cannot read extended attribute {}: {e}",
                    path.display(),
                    display_name(name)
                ))
            }
        };
        out.push((name.to_vec(), value));
    }
    Ok(out)
}

/// The AegisFS name index and suffix of a host attribute name, `None` for a namespace
/// AegisFS cannot store.
pub fn map_name(full: &[u8]) -> Option<(u8, &[u8])> {
    match full {
        b"system.posix_acl_access" => return Some((XATTR_INDEX_POSIX_ACL_ACCESS, b"")),
        b"system.posix_acl_default" => return Some((XATTR_INDEX_POSIX_ACL_DEFAULT, b"")),
        _ => {}
    }
    [
        (&b"user."[..], XATTR_INDEX_USER),
        (b"trusted.", XATTR_INDEX_TRUSTED),
        (b"security.", XATTR_INDEX_SECURITY),
    ]
    .into_iter()
    .find_map(|(prefix, index)| full.strip_prefix(prefix).map(|suffix| (index, suffix)))
}

/// Converts an ACL from the VFS xattr format (u32 version 2, then `u16 tag, u16 perm,
/// u32 id` entries, little-endian; ids of unnamed entries are `ACL_UNDEFINED_ID`) to the
/// on-disk value.
pub fn acl_from_vfs(value: &[u8]) -> Result<Vec<u8>, String> {
    let (head, body) = value
        .split_at_checked(VFS_ACL_HEADER_SIZE)
        .ok_or("ACL value shorter than its header")?;
    let version = u32::from_le_bytes(head.try_into().expect("4 bytes"));
    if version != VFS_ACL_VERSION {
        return Err(format!("ACL value of version {version}, not 2"));
    }
    if !body.len().is_multiple_of(VFS_ACL_ENTRY_SIZE) {
        return Err(format!(
            "ACL value of {} bytes is not a whole number of entries",
            value.len()
        ));
    }
    let mut entries = Vec::with_capacity(body.len() / VFS_ACL_ENTRY_SIZE);
    for e in body.chunks_exact(VFS_ACL_ENTRY_SIZE) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let id = match tag {
            ACL_USER | ACL_GROUP => id,
            ACL_USER_OBJ | ACL_GROUP_OBJ | ACL_MASK | ACL_OTHER => 0,
            _ => return Err(format!("ACL entry with unknown tag {tag:#x}")),
        };
        entries.push(AclEntry { tag, perm, id });
    }
    let mut out = vec![0u8; acl_value_len(entries.len())];
    let len = acl_encode(entries.into_iter(), &mut out)
        .map_err(|e| format!("ACL value not storable: {}", e.msg()))?;
    out.truncate(len);
    Ok(out)
}

/// Maps host attributes of `path` (from [`read_host`]) to attributes to store.
pub fn map_host(path: &Path, host: HostList) -> Result<HostXattrs, String> {
    let mut out = HostXattrs::default();
    for (full, value) in host {
        let Some((index, suffix)) = map_name(&full) else {
            out.skipped.push(full);
            continue;
        };
        if !is_valid_name(index, suffix) {
            return Err(format!(
                "{}: extended attribute name {} is not valid on AegisFS",
                path.display(),
                display_name(&full)
            ));
        }
        let value = if suffix.is_empty() {
            acl_from_vfs(&value)
                .map_err(|e| format!("{}: {}: {e}", path.display(), display_name(&full)))?
        } else {
            value
        };
        out.attrs.push(Xattr {
            index,
            name: suffix.to_vec(),
            value,
        });
    }
    Ok(out)
}

/// The full name of a stored attribute, for messages.
fn full_name(x: &Xattr) -> String {
    format!(
        "{}{}",
        aegisfs_format::xattr::index_prefix(x.index),
        display_name(&x.name)
    )
}

/// Places `attrs` (distinct names) as the kernel module's `setxattr` would, called once for
/// each in order: in the inline area of `inline_len` bytes when the entry fits after those
/// already there, else in the xattr block. Err names the first attribute that fits in
/// neither (the kernel's ENOSPC).
pub fn place(inline_len: usize, attrs: &[Xattr]) -> Result<Placement, String> {
    let mut inline = vec![0u8; inline_len];
    let mut inline_used = 0;
    let mut block: Option<Box<[u8; BLOCK_SIZE]>> = None;
    for x in attrs {
        let bad = |e: aegisfs_format::error::FormatError| format!("{}: {}", full_name(x), e.msg());
        if let Some(u) =
            insert(&mut inline, inline_used, x.index, &x.name, &x.value).map_err(bad)?
        {
            inline_used = u;
            continue;
        }
        let blk = block.get_or_insert_with(|| {
            let mut b = Box::new([0u8; BLOCK_SIZE]);
            XattrBlock::from_block_mut(&mut b).init();
            b
        });
        let xb = XattrBlock::from_block_mut(blk);
        let used = xb.used();
        match insert(&mut xb.area, used, x.index, &x.name, &x.value).map_err(bad)? {
            Some(u) => xb.set_used(u),
            None => {
                return Err(format!(
                    "no space for extended attribute {} ({} bytes of value): an inode holds \
                     {inline_len} bytes of entries inline and {XATTR_BLOCK_AREA_SIZE} in its one \
                     xattr block (No space left on device)",
                    full_name(x),
                    x.value.len()
                ))
            }
        }
    }
    Ok(Placement {
        inline,
        inline_used,
        block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegisfs_format::xattr::{acl_entries, entries, entry_size, validate_area};

    fn x(index: u8, name: &[u8], len: usize) -> Xattr {
        Xattr {
            index,
            name: name.to_vec(),
            value: vec![0x5A; len],
        }
    }

    fn vfs_acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = VFS_ACL_VERSION.to_le_bytes().to_vec();
        for &(t, p, i) in entries {
            v.extend_from_slice(&t.to_le_bytes());
            v.extend_from_slice(&p.to_le_bytes());
            v.extend_from_slice(&i.to_le_bytes());
        }
        v
    }

    #[test]
    fn names_map_to_indexes() {
        assert_eq!(map_name(b"user.a"), Some((XATTR_INDEX_USER, &b"a"[..])));
        assert_eq!(
            map_name(b"trusted.x.y"),
            Some((XATTR_INDEX_TRUSTED, &b"x.y"[..]))
        );
        assert_eq!(
            map_name(b"security.selinux"),
            Some((XATTR_INDEX_SECURITY, &b"selinux"[..]))
        );
        assert_eq!(
            map_name(b"system.posix_acl_access"),
            Some((XATTR_INDEX_POSIX_ACL_ACCESS, &b""[..]))
        );
        assert_eq!(
            map_name(b"system.posix_acl_default"),
            Some((XATTR_INDEX_POSIX_ACL_DEFAULT, &b""[..]))
        );
        for other in [
            &b"system.nfs4_acl"[..],
            b"system.posix_acl_accessx",
            b"btrfs.compression",
            b"users.x",
        ] {
            assert_eq!(map_name(other), None);
        }
    }

    #[test]
    fn acl_conversion() {
        const UNDEF: u32 = u32::MAX;
        let v = vfs_acl(&[
            (ACL_USER_OBJ, 6, UNDEF),
            (ACL_USER, 4, 1000),
            (ACL_GROUP_OBJ, 4, UNDEF),
            (ACL_GROUP, 7, 4_000_000_000),
            (ACL_MASK, 7, UNDEF),
            (ACL_OTHER, 0, UNDEF),
        ]);
        let disk = acl_from_vfs(&v).unwrap();
        assert_eq!(disk.len(), v.len());
        let got: Vec<_> = acl_entries(&disk).unwrap().collect();
        let e = |tag, perm, id| AclEntry { tag, perm, id };
        assert_eq!(
            got,
            [
                e(ACL_USER_OBJ, 6, 0),
                e(ACL_USER, 4, 1000),
                e(ACL_GROUP_OBJ, 4, 0),
                e(ACL_GROUP, 7, 4_000_000_000),
                e(ACL_MASK, 7, 0),
                e(ACL_OTHER, 0, 0),
            ]
        );
        assert!(acl_from_vfs(&v[..3]).is_err());
        assert!(acl_from_vfs(&v[..v.len() - 1]).is_err());
        let mut v1 = v.clone();
        v1[0] = 1;
        assert!(acl_from_vfs(&v1).is_err());
        assert!(acl_from_vfs(&vfs_acl(&[(0x40, 4, 0)])).is_err());
        assert!(acl_from_vfs(&vfs_acl(&[(ACL_OTHER, 8, 0)])).is_err());
    }

    #[test]
    fn host_names_mapped_or_skipped() {
        let acl = vfs_acl(&[
            (ACL_USER_OBJ, 6, u32::MAX),
            (ACL_GROUP_OBJ, 4, u32::MAX),
            (ACL_OTHER, 4, u32::MAX),
        ]);
        let host = vec![
            (b"system.nfs4_acl".to_vec(), b"x".to_vec()),
            (b"user.k".to_vec(), b"v".to_vec()),
            (b"system.posix_acl_access".to_vec(), acl),
            (b"weird.k".to_vec(), b"v".to_vec()),
        ];
        let m = map_host(Path::new("f"), host).unwrap();
        assert_eq!(
            m.skipped,
            [b"system.nfs4_acl".to_vec(), b"weird.k".to_vec()]
        );
        assert_eq!(m.attrs.len(), 2);
        assert_eq!(
            m.attrs[0],
            Xattr {
                index: XATTR_INDEX_USER,
                name: b"k".to_vec(),
                value: b"v".to_vec()
            }
        );
        assert_eq!(m.attrs[1].index, XATTR_INDEX_POSIX_ACL_ACCESS);
        assert_eq!(m.attrs[1].value[..4], [1, 0, 0, 0]);
        let bad_acl = vec![(b"system.posix_acl_default".to_vec(), b"xyz".to_vec())];
        let err = map_host(Path::new("dir/f"), bad_acl).unwrap_err();
        assert!(
            err.contains("dir/f") && err.contains("posix_acl_default"),
            "{err}"
        );
        let long = vec![([&b"user."[..], &[b'n'; 256]].concat(), b"v".to_vec())];
        assert!(map_host(Path::new("f"), long).is_err());
    }

    #[test]
    fn read_host_lists_a_file() {
        // Whatever the temporary directory's filesystem supports (none: no attributes), listing
        // works; a missing file is an error.
        let dir = std::env::temp_dir();
        let got = read_host(&dir).unwrap();
        assert!(got.iter().all(|(n, _)| !n.is_empty()));
        assert!(read_host(Path::new("/nonexistent/aegisfs")).is_err());
    }

    #[test]
    fn inline_first_then_the_block() {
        // Two small ones inline, a big one to the block, then a small one inline again:
        // each goes where the kernel's setxattr would put it.
        let attrs = [
            x(XATTR_INDEX_USER, b"a", 100),
            x(XATTR_INDEX_USER, b"b", 100),
            x(XATTR_INDEX_USER, b"big", 1000),
            x(XATTR_INDEX_TRUSTED, b"c", 20),
            x(XATTR_INDEX_USER, b"d", 40),
        ];
        let p = place(256, &attrs).unwrap();
        let names = |area: &[u8], used| -> Vec<Vec<u8>> {
            validate_area(area, used).unwrap();
            entries(area, used)
                .map(|e| e.unwrap().name.to_vec())
                .collect()
        };
        // 108 + 108 + 28 = 244; "d" (48 bytes) no longer fits.
        assert_eq!(p.inline_used, 244);
        assert_eq!(
            names(&p.inline, p.inline_used),
            [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        let blk = p.block.unwrap();
        let xb = XattrBlock::from_block(&blk);
        assert_eq!(names(&xb.area, xb.used()), [b"big".to_vec(), b"d".to_vec()]);
    }

    #[test]
    fn no_inline_area_puts_everything_in_the_block() {
        let attrs = [
            x(XATTR_INDEX_USER, b"a", 1),
            x(XATTR_INDEX_SECURITY, b"s", 3),
        ];
        let p = place(0, &attrs).unwrap();
        assert_eq!((p.inline.len(), p.inline_used), (0, 0));
        let blk = p.block.unwrap();
        assert_eq!(XattrBlock::from_block(&blk).used(), 2 * entry_size(1, 3));
        assert!(place(0, &[]).unwrap().block.is_none());
    }

    #[test]
    fn too_much_is_refused() {
        // The largest value for a one-byte name fills an empty block exactly.
        let max = XATTR_BLOCK_AREA_SIZE - 4 - 1;
        assert!(place(0, &[x(XATTR_INDEX_USER, b"a", max)]).is_ok());
        let err = place(0, &[x(XATTR_INDEX_USER, b"a", max + 1)])
            .err()
            .unwrap();
        assert!(err.contains("user.a") && err.contains("no space"), "{err}");
        let many: Vec<Xattr> = (0..100)
            .map(|i| x(XATTR_INDEX_USER, format!("n{i:03}").as_bytes(), 60))
            .collect();
        let err = place(256, &many).err().unwrap();
        assert!(err.contains("user.n"), "{err}");
        assert!(place(256, &[x(XATTR_INDEX_USER, b"v", 70_000)]).is_err());
    }
}
