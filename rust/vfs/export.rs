// SPDX-License-Identifier: GPL-2.0

//! NFS export and `open_by_handle_at`: the two callbacks of the export operations
//! (`aegisfs_export_ops` in helpers.c), which forward to `crate::fs`.

use super::inode::Inode;
use super::super_block::SuperBlock;
use crate::fs;
use kernel::bindings;
use kernel::ffi::c_long;

/// `get_inode` of `generic_fh_to_dentry` / `generic_fh_to_parent`: the inode a file handle
/// names, or an `ERR_PTR` (ESTALE when it is gone or the handle is bogus).
///
/// # Safety
///
/// `sb` must be a mounted AegisFS superblock.
#[no_mangle]
unsafe extern "C" fn aegisfs_nfs_get_inode(
    sb: *mut bindings::super_block,
    ino: u64,
    generation: u32,
) -> *mut bindings::inode {
    // SAFETY: The caller guarantees `sb` is mounted, so its private data is set.
    let sb = unsafe { SuperBlock::from_raw(sb) };
    match fs::inode::iget_handle(sb, ino, generation) {
        Ok(inode) => inode.into_raw(),
        // SAFETY: `ERR_PTR` only encodes the error number.
        Err(e) => unsafe { bindings::ERR_PTR(e.to_errno() as c_long) }.cast(),
    }
}

/// `get_parent`: the dentry of the parent of directory `child`, or an `ERR_PTR`.
///
/// # Safety
///
/// `child` must be a positive dentry of a mounted AegisFS filesystem, referenced by the
/// caller.
#[no_mangle]
unsafe extern "C" fn aegisfs_get_parent(child: *mut bindings::dentry) -> *mut bindings::dentry {
    // SAFETY: The caller guarantees `child` is live and positive; its inode is an AegisFS
    // inode that is set up (it has a dentry) and stays live while the dentry is referenced.
    let dir = unsafe { Inode::from_raw((*child).d_inode) };
    match fs::namei::parent(dir) {
        // SAFETY: `d_obtain_alias` takes over our reference on the inode, also on failure.
        Ok(parent) => unsafe { bindings::d_obtain_alias(parent.into_raw()) },
        // SAFETY: `ERR_PTR` only encodes the error number.
        Err(e) => unsafe { bindings::ERR_PTR(e.to_errno() as c_long) }.cast(),
    }
}
