// SPDX-License-Identifier: GPL-2.0

//! POSIX ACLs, stored as the xattrs of name indexes 2 (access) and 3 (default) in the format
//! of docs/format.md "POSIX ACL values". The VFS does the rest: permission checks, the
//! cache, `posix_acl_create` for new inodes and `posix_acl_chmod` after a mode change.

use super::journal;
use super::superblock::inode_corruption;
use super::xattr;
use crate::vfs::inode::Inode;
use crate::vfs::xattr::{Acl, AclRef, AclType, InheritedAcls};
use crate::xattr::{
    acl_encode, acl_entries, acl_value_len, AclEntry, XATTR_BLOCK_AREA_SIZE,
    XATTR_INDEX_POSIX_ACL_ACCESS, XATTR_INDEX_POSIX_ACL_DEFAULT,
};
use kernel::prelude::*;

fn index(ty: AclType) -> u8 {
    match ty {
        AclType::Access => XATTR_INDEX_POSIX_ACL_ACCESS,
        AclType::Default => XATTR_INDEX_POSIX_ACL_DEFAULT,
    }
}

/// The inode's ACL of `ty` as stored, `None` when it has none.
pub(crate) fn get(inode: &Inode, ty: AclType) -> Result<Option<AclRef>> {
    // No value is longer than an xattr block's area.
    let mut value = KVec::from_elem(0u8, XATTR_BLOCK_AREA_SIZE, GFP_KERNEL)?;
    let len = match xattr::get(inode, index(ty), b"", Some(&mut value)) {
        Ok(len) => len,
        Err(e) if e == ENODATA => return Ok(None),
        Err(e) => return Err(e),
    };
    let value = value.get(..len).ok_or(EINVAL)?;
    let mut entries = KVec::new();
    for e in acl_entries(value).map_err(|e| inode_corruption(inode, e.msg()))? {
        entries.push(e, GFP_KERNEL)?;
    }
    if entries.is_empty() {
        return Ok(None);
    }
    AclRef::from_entries(&entries).map(Some)
}

/// Stores `acl` as the inode's ACL of `ty` (with `flags` of `xattr::set`), or removes it.
fn store(inode: &Inode, ty: AclType, acl: Option<&Acl>, flags: u32) -> Result {
    let Some(acl) = acl else {
        return xattr::set(inode, index(ty), b"", None, flags);
    };
    let entries: KVec<AclEntry> = acl.entries()?;
    let mut value = KVec::from_elem(0u8, acl_value_len(entries.len()), GFP_KERNEL)?;
    // The VFS validated the ACL (`posix_acl_valid`), so only an id that does not map to the
    // initial user namespace could fail here.
    let len = acl_encode(entries.iter().copied(), &mut value).map_err(|_| EINVAL)?;
    let value = value.get(..len).ok_or(EINVAL)?;
    xattr::set(inode, index(ty), b"", Some(value), flags)
}

/// `set_acl`: stores (or removes) the inode's ACL of `ty` and, for an access ACL that changes
/// the permission bits, the new `mode`, in one transaction; then caches the ACL.
pub(crate) fn set(inode: &Inode, ty: AclType, acl: Option<&Acl>, mode: Option<u16>) -> Result {
    journal::retry_after_commit(inode.sb(), || {
        let _handle = journal::start(inode.sb())?;
        store(inode, ty, acl, 0)?;
        if let Some(mode) = mode {
            inode.set_mode(mode);
            inode.touch(false);
            inode.mark_dirty();
        }
        Ok(())
    })?;
    inode.cache_acl(ty, acl);
    Ok(())
}

/// Stores the ACLs a new inode inherited from its directory (in the creating transaction)
/// and caches them, or caches that it has none.
pub(crate) fn init(inode: &Inode, acls: InheritedAcls) -> Result {
    for (ty, acl) in [
        (AclType::Default, acls.default),
        (AclType::Access, acls.access),
    ] {
        let acl = acl.as_deref();
        if acl.is_some() {
            store(inode, ty, acl, xattr::XATTR_CREATE)?;
        }
        inode.cache_acl(ty, acl);
    }
    Ok(())
}
