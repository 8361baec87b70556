// SPDX-License-Identifier: GPL-2.0

//! Directory entries of the dentry cache, as the VFS passes them to namespace operations.

use super::ffi;
use super::inode::Inode;
use kernel::bindings;
use kernel::types::Opaque;

/// A dentry of an AegisFS filesystem.
///
/// # Invariants
///
/// The wrapped dentry is live, and its name is stable (the VFS holds the parent directory's
/// lock during the operations that get one).
#[repr(transparent)]
pub(crate) struct Dentry(Opaque<bindings::dentry>);

impl Dentry {
    /// Wraps a dentry the VFS passed.
    ///
    /// # Safety
    ///
    /// `dentry` must be live for `'a` with a stable name, in an AegisFS filesystem.
    pub(crate) unsafe fn from_raw<'a>(dentry: *mut bindings::dentry) -> &'a Self {
        // SAFETY: `Dentry` is a transparent wrapper; the caller guarantees validity.
        unsafe { &*dentry.cast::<Self>() }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::dentry {
        self.0.get()
    }

    /// The name.
    pub(crate) fn name(&self) -> &[u8] {
        let mut len = 0u32;
        // SAFETY: By the type invariants the dentry is live with a stable name.
        let name = unsafe { ffi::aegisfs_vfs_dentry_name(self.as_ptr(), &mut len) };
        // SAFETY: `d_name.name` is valid for `d_name.len` bytes while the name is stable.
        unsafe { core::slice::from_raw_parts(name, len as usize) }
    }

    /// The inode of a positive dentry.
    pub(crate) fn inode(&self) -> Option<&Inode> {
        // SAFETY: By the type invariants the dentry is live; a positive dentry of AegisFS
        // holds a set-up AegisFS inode for as long as the dentry is used here.
        unsafe {
            let inode = (*self.as_ptr()).d_inode;
            (!inode.is_null()).then(|| Inode::from_raw(inode))
        }
    }
}

impl Dentry {
    /// Makes a negative dentry name `inode` (a new hard link), taking a reference on it.
    pub(crate) fn instantiate_link(&self, inode: &Inode) {
        // SAFETY: By the type invariants the dentry is live; `inode` is live; `ihold` takes
        // the reference `d_instantiate` hands to the dentry.
        unsafe {
            bindings::ihold(inode.as_ptr());
            bindings::d_instantiate(self.as_ptr(), inode.as_ptr());
        }
    }
}
