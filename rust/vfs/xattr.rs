// SPDX-License-Identifier: GPL-2.0

//! Extended attributes and POSIX ACLs at the VFS boundary: the functions the xattr handlers
//! of `helpers.c` call, `listxattr`, `get_inode_acl` and `set_acl`, and `struct posix_acl`
//! as Rust types. The logic is in `crate::fs::xattr` and `crate::fs::acl`.

use super::ffi;
use super::inode::Inode;
use super::ops::errno;
use crate::disk::{S_IFDIR, S_IFMT};
use crate::fs;
use crate::xattr::AclEntry;
use core::ops::Deref;
use core::ptr::{null_mut, NonNull};
use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_long, c_void};
use kernel::prelude::*;
use kernel::types::Opaque;

/// `ACL_TYPE_ACCESS` and `ACL_TYPE_DEFAULT` (include/uapi/linux/posix_acl.h).
const ACL_TYPE_ACCESS: c_int = 0x8000;
const ACL_TYPE_DEFAULT: c_int = 0x4000;

/// Which of an inode's two ACLs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AclType {
    /// The access ACL (`system.posix_acl_access`).
    Access,
    /// The default ACL of a directory (`system.posix_acl_default`).
    Default,
}

impl AclType {
    fn from_raw(ty: c_int) -> Option<Self> {
        match ty {
            ACL_TYPE_ACCESS => Some(Self::Access),
            ACL_TYPE_DEFAULT => Some(Self::Default),
            _ => None,
        }
    }

    fn raw(self) -> c_int {
        match self {
            Self::Access => ACL_TYPE_ACCESS,
            Self::Default => ACL_TYPE_DEFAULT,
        }
    }
}

/// An ACL entry as `helpers.c` reads and writes it (`struct aegisfs_acl_entry`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct AclEntryRaw {
    tag: u16,
    perm: u16,
    id: u32,
}

impl From<AclEntry> for AclEntryRaw {
    fn from(e: AclEntry) -> Self {
        Self {
            tag: e.tag,
            perm: e.perm,
            id: e.id,
        }
    }
}

impl From<AclEntryRaw> for AclEntry {
    fn from(e: AclEntryRaw) -> Self {
        Self {
            tag: e.tag,
            perm: e.perm,
            id: e.id,
        }
    }
}

/// A `struct posix_acl`, borrowed.
///
/// # Invariants
///
/// The wrapped ACL is live (someone holds a reference) and never changed: the VFS shares
/// ACLs read-only once they are built.
#[repr(transparent)]
pub(crate) struct Acl(Opaque<bindings::posix_acl>);

impl Acl {
    /// Wraps an ACL someone holds a reference to.
    ///
    /// # Safety
    ///
    /// `acl` must be a live ACL for `'a`.
    unsafe fn from_raw<'a>(acl: *mut bindings::posix_acl) -> &'a Self {
        // SAFETY: `Acl` is a transparent wrapper; the caller guarantees validity.
        unsafe { &*acl.cast::<Self>() }
    }

    fn as_ptr(&self) -> *mut bindings::posix_acl {
        self.0.get()
    }

    /// The entries, ids as the initial user namespace sees them.
    pub(crate) fn entries(&self) -> Result<KVec<AclEntry>> {
        // SAFETY: By the type invariants the ACL is live.
        let count = unsafe { ffi::aegisfs_vfs_acl_count(self.as_ptr()) };
        let mut raw = KVec::from_elem(AclEntryRaw::default(), count as usize, GFP_KERNEL)?;
        // SAFETY: The ACL is live and unchanging with `count` entries; `raw` holds `count`.
        unsafe { ffi::aegisfs_vfs_acl_to_entries(self.as_ptr(), raw.as_mut_ptr()) };
        let mut entries = KVec::with_capacity(raw.len(), GFP_KERNEL)?;
        for e in raw.iter() {
            entries.push(AclEntry::from(*e), GFP_KERNEL)?;
        }
        Ok(entries)
    }
}

/// A counted reference to a `struct posix_acl`, released when dropped.
///
/// # Invariants
///
/// `acl` is a live ACL on which this object owns one reference.
pub(crate) struct AclRef {
    acl: NonNull<bindings::posix_acl>,
}

impl AclRef {
    /// Takes over a reference, `None` for a null pointer.
    ///
    /// # Safety
    ///
    /// `acl` must be null or a live ACL whose reference the caller hands over.
    pub(super) unsafe fn from_owned(acl: *mut bindings::posix_acl) -> Option<Self> {
        // INVARIANT: The caller hands over its reference.
        NonNull::new(acl).map(|acl| Self { acl })
    }

    /// A new ACL of `entries` (ids as the initial user namespace sees them).
    pub(crate) fn from_entries(entries: &[AclEntry]) -> Result<Self> {
        let mut raw = KVec::with_capacity(entries.len(), GFP_KERNEL)?;
        for e in entries {
            raw.push(AclEntryRaw::from(*e), GFP_KERNEL)?;
        }
        let count = u32::try_from(raw.len()).map_err(|_| EINVAL)?;
        // SAFETY: `raw` holds `count` entries.
        let acl = unsafe { ffi::aegisfs_vfs_acl_from_entries(raw.as_ptr(), count) };
        // SAFETY: `posix_acl_alloc` returned a new ACL with one reference, or null.
        unsafe { Self::from_owned(acl) }.ok_or(ENOMEM)
    }

    /// Gives the reference to the caller (for the VFS to own).
    fn into_raw(self) -> *mut bindings::posix_acl {
        let acl = self.acl.as_ptr();
        core::mem::forget(self);
        acl
    }
}

impl Deref for AclRef {
    type Target = Acl;

    fn deref(&self) -> &Acl {
        // SAFETY: By the type invariants our reference keeps the ACL alive.
        unsafe { Acl::from_raw(self.acl.as_ptr()) }
    }
}

impl Drop for AclRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we own one reference.
        unsafe { ffi::aegisfs_vfs_acl_release(self.acl.as_ptr()) }
    }
}

/// The ACLs a new inode gets from its directory's default ACL.
pub(crate) struct InheritedAcls {
    /// The directory's default ACL, for a new directory.
    pub(crate) default: Option<AclRef>,
    /// The access ACL, unless the default ACL reduced to the mode.
    pub(crate) access: Option<AclRef>,
}

impl Inode {
    /// Records in the VFS's ACL cache that the inode's ACL of `ty` is `acl` (`None`: it has
    /// none), so it is not read from disk again.
    pub(crate) fn cache_acl(&self, ty: AclType, acl: Option<&Acl>) {
        let acl = acl.map_or(null_mut(), Acl::as_ptr);
        // SAFETY: The inode is live; `set_cached_acl` takes its own reference on `acl`.
        unsafe { ffi::set_cached_acl(self.as_ptr(), ty.raw(), acl) }
    }
}

/// The inode, name index and name suffix of a call from an xattr handler of `helpers.c`;
/// `None` for an index that is not a name index.
///
/// # Safety
///
/// `inode` must be a live AegisFS inode and `name` valid for `name_len` bytes, both for `'a`.
unsafe fn handler_args<'a>(
    inode: *mut bindings::inode,
    index: c_int,
    name: *const u8,
    name_len: usize,
) -> Option<(&'a Inode, u8, &'a [u8])> {
    // SAFETY: The caller guarantees `inode` and `name`.
    let (inode, name) = unsafe {
        (
            Inode::from_raw(inode),
            core::slice::from_raw_parts(name, name_len),
        )
    };
    let index = u8::try_from(index).ok()?;
    Some((inode, index, name))
}

/// `get` of the `user.`, `trusted.` and `security.` handlers (called by `helpers.c`):
/// the value of the attribute `name` of name index `index`, its length (when `size` is 0)
/// or ERANGE when it does not fit `size` bytes; ENODATA when there is none.
///
/// # Safety
///
/// `inode` must be a live AegisFS inode, `name` valid for `name_len` bytes and `buffer`
/// (unless null or `size` is 0) valid for `size` bytes of writes.
#[no_mangle]
unsafe extern "C" fn aegisfs_xattr_get(
    inode: *mut bindings::inode,
    index: c_int,
    name: *const u8,
    name_len: usize,
    buffer: *mut c_void,
    size: usize,
) -> c_int {
    // SAFETY: The caller guarantees `inode` and `name`.
    let Some((inode, index, name)) = (unsafe { handler_args(inode, index, name, name_len) }) else {
        return EINVAL.to_errno();
    };
    let out = if buffer.is_null() || size == 0 {
        None
    } else {
        // SAFETY: The caller guarantees `buffer` is valid for `size` bytes.
        Some(unsafe { core::slice::from_raw_parts_mut(buffer.cast::<u8>(), size) })
    };
    match fs::xattr::get(inode, index, name, out) {
        Ok(len) => c_int::try_from(len).unwrap_or(c_int::MAX),
        Err(e) => e.to_errno(),
    }
}

/// `set` of the `user.`, `trusted.` and `security.` handlers (called by `helpers.c`): sets
/// the attribute (`value` null: removes it) with `flags` `XATTR_CREATE` or `XATTR_REPLACE`.
///
/// # Safety
///
/// `inode` must be a live AegisFS inode locked by the caller, `name` valid for `name_len`
/// bytes and `value` null or valid for `size` bytes.
#[no_mangle]
unsafe extern "C" fn aegisfs_xattr_set(
    inode: *mut bindings::inode,
    index: c_int,
    name: *const u8,
    name_len: usize,
    value: *const c_void,
    size: usize,
    flags: c_int,
) -> c_int {
    // SAFETY: The caller guarantees `inode` and `name`.
    let Some((inode, index, name)) = (unsafe { handler_args(inode, index, name, name_len) }) else {
        return EINVAL.to_errno();
    };
    let value = if value.is_null() {
        None
    } else {
        // SAFETY: The caller guarantees `value` is valid for `size` bytes.
        Some(unsafe { core::slice::from_raw_parts(value.cast::<u8>(), size) })
    };
    let flags = u32::try_from(flags).unwrap_or(0);
    errno(fs::xattr::setxattr(inode, index, name, value, flags))
}

/// The names `listxattr` returns, written into the caller's buffer.
///
/// # Invariants
///
/// `buffer` is null or valid for `size` bytes of writes; `len <= size` when it is not null.
struct NameList {
    dentry: *mut bindings::dentry,
    buffer: *mut c_char,
    size: usize,
    len: usize,
}

impl NameList {
    /// Appends the full name of an attribute (prefix of `index`, then `suffix`, then NUL)
    /// if the caller may see it; ERANGE when the buffer is too small.
    fn push(&mut self, index: u8, suffix: &[u8]) -> Result {
        // SAFETY: `dentry` is the live dentry of the `listxattr` call.
        let prefix = unsafe { ffi::aegisfs_vfs_xattr_list_prefix(self.dentry, c_int::from(index)) };
        if prefix.is_null() {
            return Ok(());
        }
        // SAFETY: A non-null prefix is a static NUL-terminated string of `helpers.c` or the
        // VFS.
        let prefix = unsafe { CStr::from_char_ptr(prefix) }.to_bytes();
        let add = prefix.len() + suffix.len() + 1;
        let end = self.len.checked_add(add).ok_or(ERANGE)?;
        if !self.buffer.is_null() {
            if end > self.size {
                return Err(ERANGE);
            }
            // SAFETY: By the type invariants `buffer` is valid for `size >= end` bytes.
            let out = unsafe { core::slice::from_raw_parts_mut(self.buffer.cast::<u8>(), end) };
            let dst = out.get_mut(self.len..end).ok_or(ERANGE)?;
            let (p, rest) = dst.split_at_mut(prefix.len());
            p.copy_from_slice(prefix);
            let (s, nul) = rest.split_at_mut(suffix.len());
            s.copy_from_slice(suffix);
            nul.fill(0);
        }
        // INVARIANT: `end <= size` when the buffer is not null.
        self.len = end;
        Ok(())
    }
}

/// `listxattr` of every file type: the names, each NUL terminated, that the caller may
/// see; with a null buffer (or size 0) only the length they need.
///
/// # Safety
///
/// Called by the VFS with a positive AegisFS dentry and `buffer` null or valid for `size`
/// bytes.
pub(super) unsafe extern "C" fn listxattr(
    dentry: *mut bindings::dentry,
    buffer: *mut c_char,
    size: usize,
) -> isize {
    // SAFETY: The caller passes a positive dentry of a mounted AegisFS filesystem.
    let inode = unsafe { Inode::from_raw((*dentry).d_inode) };
    // INVARIANT: The caller guarantees `buffer`; a zero size asks only for the length.
    let mut names = NameList {
        dentry,
        buffer: if size == 0 { null_mut() } else { buffer },
        size,
        len: 0,
    };
    match fs::xattr::list(inode, |index, suffix| names.push(index, suffix)) {
        Ok(()) => isize::try_from(names.len).unwrap_or(isize::MAX),
        Err(e) => e.to_errno() as isize,
    }
}

/// `get_inode_acl`: the inode's ACL of `type_` from disk (the VFS caches it), null when it
/// has none; ECHILD in RCU walk mode, which may not sleep.
///
/// # Safety
///
/// Called by the VFS with a live AegisFS inode.
pub(super) unsafe extern "C" fn get_inode_acl(
    inode: *mut bindings::inode,
    type_: c_int,
    rcu: bool,
) -> *mut bindings::posix_acl {
    let err = |e: Error| {
        // SAFETY: `ERR_PTR` only encodes the error number.
        unsafe { bindings::ERR_PTR(e.to_errno() as c_long) }.cast::<bindings::posix_acl>()
    };
    if rcu {
        return err(ECHILD);
    }
    let Some(ty) = AclType::from_raw(type_) else {
        return err(EINVAL);
    };
    // SAFETY: The caller passes a live AegisFS inode.
    let inode = unsafe { Inode::from_raw(inode) };
    match fs::acl::get(inode, ty) {
        Ok(Some(acl)) => acl.into_raw(),
        Ok(None) => null_mut(),
        Err(e) => err(e),
    }
}

/// `set_acl`: stores (or, with a null `acl`, removes) the inode's ACL of `type_`; an access
/// ACL also sets the permission bits it implies and is not stored when they say it all.
///
/// # Safety
///
/// Called by the VFS (`set_posix_acl`, with the inode locked and the ACL validated) with a
/// positive AegisFS dentry and `acl` null or a live ACL.
pub(super) unsafe extern "C" fn set_acl(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    acl: *mut bindings::posix_acl,
    type_: c_int,
) -> c_int {
    let Some(ty) = AclType::from_raw(type_) else {
        return EINVAL.to_errno();
    };
    // SAFETY: The caller passes a positive dentry of a mounted AegisFS filesystem.
    let inode = unsafe { Inode::from_raw((*dentry).d_inode) };
    if ty == AclType::Default && inode.mode() & S_IFMT != S_IFDIR {
        return if acl.is_null() { 0 } else { EACCES.to_errno() };
    }
    let mut acl = acl;
    let mut mode = None;
    if ty == AclType::Access && !acl.is_null() {
        let mut new_mode = 0u16;
        // SAFETY: The inode is live and locked; `acl` is live; the VFS keeps its reference,
        // and `posix_acl_update_mode` only replaces our pointer with null.
        let ret = unsafe {
            ffi::aegisfs_vfs_acl_update_mode(idmap, inode.as_ptr(), &mut new_mode, &mut acl)
        };
        if ret != 0 {
            return ret;
        }
        if new_mode != inode.mode() {
            mode = Some(new_mode);
        }
    }
    // SAFETY: A non-null `acl` is live for this call (the VFS holds a reference).
    let acl = (!acl.is_null()).then(|| unsafe { Acl::from_raw(acl) });
    errno(fs::acl::set(inode, ty, acl, mode))
}

/// After a mode change (`setattr`), the access ACL's entries follow the new permission bits
/// (`posix_acl_chmod`).
///
/// # Safety
///
/// `dentry` must be a positive AegisFS dentry whose inode the caller holds locked, and
/// `idmap` the idmap of the `setattr` call.
pub(super) unsafe fn chmod_acl(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
) -> c_int {
    // SAFETY: The caller guarantees the arguments.
    unsafe { ffi::aegisfs_vfs_acl_chmod(idmap, dentry) }
}
