// SPDX-License-Identifier: GPL-2.0

//! `FS_IOC_FIEMAP`: where a file's data (from the block map) or its extended attributes
//! (`FIEMAP_FLAG_XATTR`) are on the device.

use super::ffi;
use super::inode::Inode;
use super::ops::errno;
use crate::fs;
use kernel::bindings;
use kernel::ffi::c_int;
use kernel::prelude::*;

/// `FIEMAP` flags (include/uapi/linux/fiemap.h).
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_FLAG_XATTR: u32 = 0x2;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x200;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;

/// `FS_IOC_FIEMAP`: the extents of a regular file from the block map; with
/// `FIEMAP_FLAG_XATTR`, where its extended attributes are. `FIEMAP_FLAG_SYNC` has nothing
/// to write on a read-only filesystem; other flags are refused by `fiemap_prep`.
///
/// # Safety
///
/// Called by the VFS with a live AegisFS regular file inode and a valid `fieinfo`.
pub(super) unsafe extern "C" fn fiemap(
    vfs_inode: *mut bindings::inode,
    fieinfo: *mut bindings::fiemap_extent_info,
    start: u64,
    len: u64,
) -> c_int {
    let mut len = len;
    // SAFETY: The caller passes a live inode and a valid `fieinfo`; `len` is a local.
    let ret = unsafe {
        ffi::fiemap_prep(
            vfs_inode,
            fieinfo,
            start,
            &mut len,
            FIEMAP_FLAG_SYNC | FIEMAP_FLAG_XATTR,
        )
    };
    if ret != 0 {
        return ret;
    }
    // SAFETY: The caller guarantees `vfs_inode` is a live AegisFS inode.
    let inode = unsafe { Inode::from_raw(vfs_inode) };
    // SAFETY: The caller passes a valid `fieinfo`.
    if unsafe { ffi::aegisfs_vfs_fiemap_flags(fieinfo) } & FIEMAP_FLAG_XATTR != 0 {
        // SAFETY: The caller passes a valid `fieinfo` for this call.
        return errno(unsafe { xattr_fiemap(inode, fieinfo, start, len) });
    }
    let block = crate::disk::BLOCK_SIZE_U64;
    errno(fs::blockmap::fiemap(inode, start, len, |ext, last| {
        let mut flags = 0;
        if ext.unwritten {
            flags |= FIEMAP_EXTENT_UNWRITTEN;
        }
        if last {
            flags |= FIEMAP_EXTENT_LAST;
        }
        // SAFETY: `fieinfo` is valid for this call; the kernel copies the extent to user
        // space.
        let ret = unsafe {
            ffi::fiemap_fill_next_extent(
                fieinfo,
                ext.lblk.saturating_mul(block),
                ext.pblk.saturating_mul(block),
                ext.count.saturating_mul(block),
                flags,
            )
        };
        if ret < 0 {
            Err(Error::from_errno(ret))
        } else {
            Ok(ret == 1)
        }
    }))
}

/// `FIEMAP_FLAG_XATTR`: the extents of byte range `start..start + len` of the inode's
/// attribute storage seen as one stream: its inline area (flagged `DATA_INLINE`, at the
/// byte address of the area in the inode table), then its xattr block.
///
/// # Safety
///
/// `fieinfo` is the valid `fiemap_extent_info` of the running `fiemap` call.
unsafe fn xattr_fiemap(
    inode: &Inode,
    fieinfo: *mut bindings::fiemap_extent_info,
    start: u64,
    len: u64,
) -> Result {
    let storage = fs::xattr::storage(inode)?;
    let block = crate::disk::BLOCK_SIZE_U64;
    let inline_len = storage.inline.map_or(0, |(_, l)| l);
    let inline = storage
        .inline
        .map(|(phys, l)| (0, phys, l, FIEMAP_EXTENT_DATA_INLINE));
    let xattr_block = match storage.block {
        Some(b) => Some((inline_len, b.checked_mul(block).ok_or(EUCLEAN)?, block, 0)),
        None => None,
    };
    let extents = [inline, xattr_block];
    let count = extents.iter().flatten().count();
    let end = start.saturating_add(len);
    for (i, (logical, phys, l, mut flags)) in extents.into_iter().flatten().enumerate() {
        if logical >= end || logical.saturating_add(l) <= start {
            continue;
        }
        if i + 1 == count {
            flags |= FIEMAP_EXTENT_LAST;
        }
        // SAFETY: The caller guarantees `fieinfo`; the kernel copies the extent to user
        // space.
        let ret = unsafe { ffi::fiemap_fill_next_extent(fieinfo, logical, phys, l, flags) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        if ret == 1 {
            break;
        }
    }
    Ok(())
}
