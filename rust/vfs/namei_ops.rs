// SPDX-License-Identifier: GPL-2.0

//! The namespace operations of directories (lookup, create, link, unlink, rename, ...):
//! each turns its raw arguments into the safe types of this layer and forwards to
//! `crate::fs::namei`.

use super::dentry::Dentry;
use super::ffi;
use super::inode::Inode;
use super::ops::errno;
use crate::fs;
use core::ptr::null_mut;
use kernel::bindings;
use kernel::ffi::{c_int, c_long, c_uint};
use kernel::prelude::*;
use kernel::str::CStrExt;

/// # Safety
///
/// `dir` must be a live AegisFS directory inode and `dentry` a valid negative dentry.
pub(super) unsafe extern "C" fn lookup(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    _flags: c_uint,
) -> *mut bindings::dentry {
    // SAFETY: The caller guarantees `dir` is a live AegisFS inode.
    let dir = unsafe { Inode::from_raw(dir) };
    let mut len = 0u32;
    // SAFETY: The caller guarantees `dentry` is valid; its name is stable during lookup.
    let name = unsafe { ffi::aegisfs_vfs_dentry_name(dentry, &mut len) };
    // SAFETY: `d_name.name` is valid for `d_name.len` bytes.
    let name = unsafe { core::slice::from_raw_parts(name, len as usize) };
    let inode = match fs::namei::lookup(dir, name) {
        Ok(Some(inode)) => inode.into_raw(),
        Ok(None) => null_mut(),
        // SAFETY: `ERR_PTR` only encodes the error number.
        Err(e) => return unsafe { bindings::ERR_PTR(e.to_errno() as c_long) }.cast(),
    };
    // SAFETY: `dentry` is valid; `d_splice_alias` takes over our reference on `inode`.
    unsafe { bindings::d_splice_alias(inode, dentry) }
}

/// The directory and dentry of a namespace operation.
///
/// # Safety
///
/// `dir` must be a live AegisFS directory and `dentry` a dentry in it with a stable name.
unsafe fn dir_dentry<'a>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> (&'a Inode, &'a Dentry) {
    // SAFETY: The caller guarantees both.
    unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) }
}

/// # Safety
///
/// Called by the VFS with an AegisFS directory (locked) and a negative dentry in it.
pub(super) unsafe extern "C" fn create(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> c_int {
    // SAFETY: The caller guarantees the arguments.
    let (dir, dentry) = unsafe { dir_dentry(dir, dentry) };
    errno(fs::namei::create(idmap, dir, dentry, mode, 0, None))
}

/// # Safety
///
/// As for [`create`].
pub(super) unsafe extern "C" fn mknod(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
    rdev: bindings::dev_t,
) -> c_int {
    // SAFETY: The caller guarantees the arguments.
    let (dir, dentry) = unsafe { dir_dentry(dir, dentry) };
    // `new_encode_dev` of the kernel's dev_t (12-bit major, 20-bit minor).
    let (major, minor) = (rdev >> 20, rdev & 0xf_ffff);
    let encoded = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
    errno(fs::namei::create(idmap, dir, dentry, mode, encoded, None))
}

/// # Safety
///
/// As for [`create`]; `target` is a NUL-terminated string.
pub(super) unsafe extern "C" fn symlink(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    target: *const kernel::ffi::c_char,
) -> c_int {
    // SAFETY: The caller guarantees the arguments.
    let (dir, dentry) = unsafe { dir_dentry(dir, dentry) };
    // SAFETY: The VFS passes a NUL-terminated target that lives during the call.
    let target = unsafe { CStr::from_char_ptr(target) };
    if let Err(e) = fs::namei::check_symlink(target.to_bytes()) {
        return e.to_errno();
    }
    let mode = crate::disk::S_IFLNK | 0o777;
    errno(fs::namei::create(idmap, dir, dentry, mode, 0, Some(target)))
}

/// # Safety
///
/// As for [`create`].
pub(super) unsafe extern "C" fn mkdir(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> *mut bindings::dentry {
    // SAFETY: The caller guarantees the arguments.
    let (dir, dentry) = unsafe { dir_dentry(dir, dentry) };
    match fs::namei::create(idmap, dir, dentry, mode | crate::disk::S_IFDIR, 0, None) {
        Ok(()) => null_mut(),
        // SAFETY: `ERR_PTR` only encodes the error number.
        Err(e) => unsafe { bindings::ERR_PTR(e.to_errno() as c_long) }.cast(),
    }
}

/// # Safety
///
/// Called by the VFS with an AegisFS file's dentry, a locked directory and a negative
/// dentry in it.
pub(super) unsafe extern "C" fn link(
    old: *mut bindings::dentry,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> c_int {
    // SAFETY: The caller guarantees the arguments.
    let (dir, dentry, old) = unsafe {
        let (dir, dentry) = dir_dentry(dir, dentry);
        (dir, dentry, Dentry::from_raw(old))
    };
    errno(fs::namei::link(old, dir, dentry))
}

/// # Safety
///
/// Called by the VFS with a locked AegisFS directory and a positive dentry in it.
pub(super) unsafe extern "C" fn unlink(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> c_int {
    // SAFETY: The caller guarantees the arguments.
    let (dir, dentry) = unsafe { dir_dentry(dir, dentry) };
    errno(fs::namei::unlink(dir, dentry))
}

/// # Safety
///
/// As for [`unlink`].
pub(super) unsafe extern "C" fn rmdir(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> c_int {
    // SAFETY: The caller guarantees the arguments.
    let (dir, dentry) = unsafe { dir_dentry(dir, dentry) };
    errno(fs::namei::rmdir(dir, dentry))
}

/// # Safety
///
/// Called by the VFS with both AegisFS directories locked and dentries in them.
pub(super) unsafe extern "C" fn rename(
    idmap: *mut bindings::mnt_idmap,
    old_dir: *mut bindings::inode,
    old: *mut bindings::dentry,
    new_dir: *mut bindings::inode,
    new: *mut bindings::dentry,
    flags: c_uint,
) -> c_int {
    // SAFETY: The caller guarantees the arguments.
    let ((old_dir, old), (new_dir, new)) =
        unsafe { (dir_dentry(old_dir, old), dir_dentry(new_dir, new)) };
    errno(fs::namei::rename(idmap, old_dir, old, new_dir, new, flags))
}

/// # Safety
///
/// Called by the VFS for `O_TMPFILE` in a locked AegisFS directory.
pub(super) unsafe extern "C" fn tmpfile(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    file: *mut bindings::file,
    mode: bindings::umode_t,
) -> c_int {
    // SAFETY: The caller guarantees `dir`.
    let dir = unsafe { Inode::from_raw(dir) };
    if let Err(e) = fs::namei::tmpfile(idmap, dir, file, mode) {
        return e.to_errno();
    }
    // SAFETY: `file` is the file being opened; its dentry now has the inode.
    unsafe { ffi::aegisfs_vfs_finish_open_simple(file) }
}
