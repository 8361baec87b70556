// SPDX-License-Identifier: GPL-2.0

//! The ioctls of files and directories: the inode flags (`FS_IOC_GETFLAGS`/`SETFLAGS` and
//! `FS_IOC_FSGETXATTR`/`FSSETXATTR`, which the VFS turns into `fileattr_get` and
//! `fileattr_set`), and `unlocked_ioctl` for `FS_IOC_SHUTDOWN`, `FITRIM` and the label
//! ioctls.

use super::ffi;
use super::inode::Inode;
use super::ops::errno;
use super::super_block::SuperBlock;
use crate::fs;
use kernel::bindings;
use kernel::ffi::{c_int, c_long, c_uint};
use kernel::prelude::*;
use kernel::uaccess::{UserPtr, UserSlice};

/// `FS_IOC_GETFLAGS` and `FS_IOC_FSGETXATTR`: the inode flags.
///
/// # Safety
///
/// Called by the VFS with a positive dentry of an AegisFS file or directory and a valid
/// `file_kattr`.
pub(super) unsafe extern "C" fn fileattr_get(
    dentry: *mut bindings::dentry,
    fa: *mut bindings::file_kattr,
) -> c_int {
    // SAFETY: The caller guarantees the dentry is positive, with a live AegisFS inode.
    let inode = unsafe { Inode::from_raw((*dentry).d_inode) };
    let flags = inode
        .info()
        .user_flags
        .load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: The caller guarantees `fa` is valid for writes.
    unsafe { ffi::fileattr_fill_flags(fa, flags) };
    0
}

/// `FS_IOC_SETFLAGS` and `FS_IOC_FSSETXATTR`: sets the inode flags.
///
/// # Safety
///
/// Called by the VFS (`vfs_fileattr_set`, with the inode locked) with a positive dentry of
/// an AegisFS file or directory and a valid `file_kattr`.
pub(super) unsafe extern "C" fn fileattr_set(
    _idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    fa: *mut bindings::file_kattr,
) -> c_int {
    let mut flags = 0u32;
    // SAFETY: The caller guarantees `fa` is valid; `flags` is a local.
    let ret = unsafe { ffi::aegisfs_vfs_fileattr_flags(fa, &mut flags) };
    if ret != 0 {
        return ret;
    }
    // SAFETY: The caller guarantees the dentry is positive, with a live AegisFS inode.
    let inode = unsafe { Inode::from_raw((*dentry).d_inode) };
    errno(fs::inode::set_user_flags(inode, flags))
}

/// `FS_IOC_SHUTDOWN` (`_IOR('X', 125, __u32)`), as ext4 and XFS define it.
const FS_IOC_SHUTDOWN: c_uint = 0x8004_587d;
/// `FS_IOC_GETFSLABEL` (`_IOR(0x94, 49, char[FSLABEL_MAX])`).
const FS_IOC_GETFSLABEL: c_uint = 0x8100_9431;
/// `FS_IOC_SETFSLABEL` (`_IOW(0x94, 50, char[FSLABEL_MAX])`).
const FS_IOC_SETFSLABEL: c_uint = 0x4100_9432;
/// Bytes of a label the ioctls copy: the on-disk field, 63 bytes and a NUL at most.
const LABEL_BYTES: usize = 64;
/// `FITRIM` (`_IOWR('X', 121, struct fstrim_range)`).
const FITRIM: c_uint = 0xc018_5879;
/// Size of `struct fstrim_range`: `start`, `len` and `minlen`, each a `__u64`.
const FSTRIM_RANGE_BYTES: usize = 24;

/// `FITRIM`, with ext4's checks in ext4's order: EPERM without `CAP_SYS_ADMIN`, EOPNOTSUPP
/// when the device cannot discard, EROFS when mounted `norecovery` (the bitmaps may miss what
/// the journal holds), then the range is read, trimmed and written back with `len` set to
/// the bytes discarded.
fn fitrim(sb: &SuperBlock, user: impl Fn(usize) -> UserSlice) -> Result {
    // SAFETY: Reads the current task's credentials.
    if !unsafe { ffi::aegisfs_vfs_capable_admin() } {
        return Err(EPERM);
    }
    let granularity = sb.discard_granularity().ok_or(EOPNOTSUPP)?;
    if sb.info().norecovery() {
        return Err(EROFS);
    }
    let mut raw = [0u8; FSTRIM_RANGE_BYTES];
    user(FSTRIM_RANGE_BYTES).reader().read_slice(&mut raw)?;
    let field = |i: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(bytes)
    };
    let range = fs::trim::TrimRange {
        start: field(0),
        len: field(1),
        minlen: field(2),
    };
    let trimmed = fs::trim::trim_fs(sb, &range, granularity)?;
    raw[8..16].copy_from_slice(&trimmed.to_ne_bytes());
    user(FSTRIM_RANGE_BYTES).writer().write_slice(&raw)
}

/// `ioctl` of files and directories: `FS_IOC_SHUTDOWN`, `FITRIM` and the label ioctls (the
/// inode flag ioctls go through `fileattr_get`/`fileattr_set`, `FS_IOC_GETFSUUID` through the
/// VFS).
///
/// # Safety
///
/// Called by the VFS with an open AegisFS file; `arg` is the caller's argument.
pub(super) unsafe extern "C" fn ioctl(
    file: *mut bindings::file,
    cmd: c_uint,
    arg: kernel::ffi::c_ulong,
) -> c_long {
    // SAFETY: The file is open, so its inode and superblock are live.
    let sb = unsafe { SuperBlock::from_raw((*(*file).f_inode).i_sb) };
    let user = |len| UserSlice::new(UserPtr::from_addr(arg as usize), len);
    let result = match cmd {
        FS_IOC_SHUTDOWN => {
            // SAFETY: Reads the current task's credentials.
            if !unsafe { ffi::aegisfs_vfs_capable_admin() } {
                return EPERM.to_errno() as c_long;
            }
            let mut flags = [0u8; 4];
            user(flags.len())
                .reader()
                .read_slice(&mut flags)
                .and_then(|()| fs::superblock::shutdown(sb, u32::from_ne_bytes(flags)))
        }
        FITRIM => fitrim(sb, user),
        FS_IOC_GETFSLABEL => fs::superblock::label(sb)
            .and_then(|label| user(LABEL_BYTES).writer().write_slice(&label)),
        FS_IOC_SETFSLABEL => {
            // SAFETY: Reads the current task's credentials.
            if !unsafe { ffi::aegisfs_vfs_capable_admin() } {
                return EPERM.to_errno() as c_long;
            }
            let mut label = [0u8; LABEL_BYTES];
            if let Err(e) = user(LABEL_BYTES).reader().read_slice(&mut label) {
                return e.to_errno() as c_long;
            }
            // A label needs its NUL within the bytes copied; longer ones do not fit.
            let Some(len) = label.iter().position(|&b| b == 0) else {
                return EINVAL.to_errno() as c_long;
            };
            // SAFETY: The file is open.
            let ret = unsafe { bindings::mnt_want_write_file(file) };
            if ret != 0 {
                return ret as c_long;
            }
            let result = fs::superblock::set_label(sb, &label[..len]);
            // SAFETY: Pairs with the successful `mnt_want_write_file` above.
            unsafe { bindings::mnt_drop_write_file(file) };
            result
        }
        _ => Err(ENOTTY),
    };
    errno(result) as c_long
}
