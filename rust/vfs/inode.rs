// SPDX-License-Identifier: GPL-2.0

//! In-memory inodes: the VFS inode with AegisFS's private part embedded.

use super::ffi;
use super::ops;
use super::super_block::SuperBlock;
use crate::disk::Timestamp;
use crate::fs::inode::InodeInfo;
use core::ops::Deref;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

/// The object the inode cache allocates: AegisFS's inode data and the VFS inode.
#[repr(C)]
pub(crate) struct AegisInode {
    pub(super) info: InodeInfo,
    pub(super) vfs_inode: Opaque<bindings::inode>,
}

impl AegisInode {
    /// The `AegisInode` a VFS inode is embedded in.
    ///
    /// # Safety
    ///
    /// `inode` must point to the `vfs_inode` field of an `AegisInode`.
    pub(super) unsafe fn from_vfs(inode: *mut bindings::inode) -> *mut AegisInode {
        let field = Opaque::cast_from(inode);
        // SAFETY: The caller guarantees `inode` is the `vfs_inode` field of an `AegisInode`,
        // so both pointers are in the same allocation.
        unsafe { kernel::container_of!(field, AegisInode, vfs_inode) }.cast_mut()
    }
}

/// An AegisFS inode in the inode cache.
///
/// # Invariants
///
/// The wrapped inode is live, is the `vfs_inode` of an [`AegisInode`] whose `info` is
/// initialised, and belongs to a mounted AegisFS superblock (see [`SuperBlock`]).
#[repr(transparent)]
pub(crate) struct Inode(Opaque<bindings::inode>);

impl Inode {
    /// Wraps a VFS inode.
    ///
    /// # Safety
    ///
    /// `inode` must be a live AegisFS inode that is not `I_NEW`, of a mounted superblock, for
    /// `'a`.
    pub(crate) unsafe fn from_raw<'a>(inode: *mut bindings::inode) -> &'a Self {
        // SAFETY: `Inode` is a transparent wrapper of `inode`; the caller guarantees validity.
        unsafe { &*inode.cast::<Self>() }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::inode {
        self.0.get()
    }

    /// The inode number (AegisFS inode numbers are 32-bit; see `Iget`).
    pub(crate) fn ino(&self) -> u32 {
        // SAFETY: By the type invariants the inode is live; `i_ino` does not change.
        let ino = unsafe { (*self.as_ptr()).i_ino };
        u32::try_from(ino).unwrap_or(0)
    }

    /// The superblock the inode belongs to.
    pub(crate) fn sb(&self) -> &SuperBlock {
        // SAFETY: By the type invariants the inode belongs to a mounted AegisFS superblock,
        // which outlives its inodes.
        unsafe { SuperBlock::from_raw((*self.as_ptr()).i_sb) }
    }

    /// AegisFS's data about the inode.
    pub(crate) fn info(&self) -> &InodeInfo {
        // SAFETY: By the type invariants the inode is embedded in an `AegisInode` whose
        // `info` was initialised before the inode was unlocked and is not written again.
        unsafe { &(*AegisInode::from_vfs(self.as_ptr())).info }
    }

    /// The file type and permission bits.
    pub(crate) fn mode(&self) -> u16 {
        // SAFETY: By the type invariants the inode is live; the mode never changes on a
        // read-only filesystem.
        unsafe { (*self.as_ptr()).i_mode }
    }

    /// The file size in bytes.
    pub(crate) fn size(&self) -> u64 {
        // SAFETY: By the type invariants the inode is live. The filesystem is read-only, so
        // the size never changes after the inode is set up.
        let size = unsafe { (*self.as_ptr()).i_size };
        u64::try_from(size).unwrap_or(0)
    }
}

/// A counted reference to an [`Inode`], dropped with `iput`.
///
/// # Invariants
///
/// `inode` satisfies the invariants of [`Inode`] and this object owns one reference to it.
pub(crate) struct InodeRef {
    inode: NonNull<bindings::inode>,
}

impl InodeRef {
    /// Gives the reference to the caller (for the VFS to own).
    pub(crate) fn into_raw(self) -> *mut bindings::inode {
        let inode = self.inode.as_ptr();
        core::mem::forget(self);
        inode
    }
}

impl Deref for InodeRef {
    type Target = Inode;

    fn deref(&self) -> &Inode {
        // SAFETY: By the type invariants the inode is a live AegisFS inode kept alive by our
        // reference.
        unsafe { Inode::from_raw(self.inode.as_ptr()) }
    }
}

impl Drop for InodeRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we own one reference.
        unsafe { bindings::iput(self.inode.as_ptr()) }
    }
}

/// The VFS flags of an inode, from its on-disk flags.
#[derive(Clone, Copy, Default)]
pub(crate) struct InodeFlags {
    pub(crate) immutable: bool,
    pub(crate) append: bool,
    pub(crate) noatime: bool,
    pub(crate) sync: bool,
}

/// The attributes of a new inode, validated from disk.
pub(crate) struct InodeAttrs {
    pub(crate) mode: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) nlink: u32,
    pub(crate) size: u64,
    /// Allocated space in 512-byte units.
    pub(crate) blocks_512: u64,
    pub(crate) atime: Timestamp,
    pub(crate) mtime: Timestamp,
    pub(crate) ctime: Timestamp,
    pub(crate) generation: u32,
    pub(crate) flags: InodeFlags,
}

/// Which operations an inode gets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum InodeKind {
    Regular,
    Directory,
    /// A symlink whose NUL-terminated target is in [`InodeInfo::link`].
    FastSymlink,
    /// A symlink whose target is in its first data block.
    SlowSymlink,
    /// A device, FIFO or socket; `rdev` is in the `new_encode_dev` encoding.
    Special {
        rdev: u32,
    },
}

/// A freshly allocated inode, locked (`I_NEW`) until it is filled from disk.
///
/// # Invariants
///
/// `inode` is a live `I_NEW` AegisFS inode of a mounted superblock, referenced by this object
/// and invisible to others until unlocked.
pub(crate) struct NewInode {
    inode: NonNull<bindings::inode>,
}

/// The result of looking an inode number up in the inode cache.
pub(crate) enum Iget {
    /// The inode was in the cache, ready.
    Cached(InodeRef),
    /// The inode is new and must be read from disk.
    New(NewInode),
}

impl SuperBlock {
    /// Finds inode `ino` in the inode cache, or allocates a new locked one.
    pub(crate) fn iget(&self, ino: u32) -> Result<Iget> {
        // SAFETY: By the type invariants of `SuperBlock` the superblock is live.
        let inode = unsafe { bindings::iget_locked(self.as_ptr(), u64::from(ino)) };
        let inode = NonNull::new(inode).ok_or(ENOMEM)?;
        // SAFETY: `iget_locked` returned a referenced inode.
        if unsafe { ffi::aegisfs_vfs_inode_is_new(inode.as_ptr()) } {
            // INVARIANT: The inode is `I_NEW`, so other users wait until it is unlocked.
            Ok(Iget::New(NewInode { inode }))
        } else {
            // INVARIANT: A cached inode that is not new was fully set up by `NewInode::init`.
            Ok(Iget::Cached(InodeRef { inode }))
        }
    }
}

impl NewInode {
    pub(crate) fn ino(&self) -> u32 {
        // SAFETY: By the type invariants the inode is live; `iget` set `i_ino` from a u32.
        let ino = unsafe { (*self.inode.as_ptr()).i_ino };
        u32::try_from(ino).unwrap_or(0)
    }

    pub(crate) fn sb(&self) -> &SuperBlock {
        // SAFETY: By the type invariants the inode belongs to a mounted AegisFS superblock.
        unsafe { SuperBlock::from_raw((*self.inode.as_ptr()).i_sb) }
    }

    /// Fills the inode and unlocks it.
    pub(crate) fn init(self, attrs: &InodeAttrs, info: InodeInfo, kind: InodeKind) -> InodeRef {
        let inode = self.inode.as_ptr();
        let mut flags = 0;
        if attrs.flags.immutable {
            flags |= bindings::S_IMMUTABLE;
        }
        if attrs.flags.append {
            flags |= bindings::S_APPEND;
        }
        if attrs.flags.noatime {
            flags |= bindings::S_NOATIME;
        }
        if attrs.flags.sync {
            flags |= bindings::S_SYNC;
        }
        // SAFETY: By the type invariants the inode is live, `I_NEW` and only ours, so its
        // fields may be written; it is embedded in an `AegisInode`.
        unsafe {
            let aegis = AegisInode::from_vfs(inode);
            (&raw mut (*aegis).info).write(info);
            (*inode).i_mode = attrs.mode;
            ffi::aegisfs_vfs_set_owner(inode, attrs.uid, attrs.gid);
            bindings::set_nlink(inode, attrs.nlink);
            ffi::aegisfs_vfs_set_size(inode, i64::try_from(attrs.size).unwrap_or(i64::MAX));
            (*inode).i_blocks = attrs.blocks_512;
            ffi::aegisfs_vfs_set_times(
                inode,
                attrs.atime.sec,
                attrs.atime.nsec,
                attrs.mtime.sec,
                attrs.mtime.nsec,
                attrs.ctime.sec,
                attrs.ctime.nsec,
            );
            (*inode).i_generation = attrs.generation;
            (*inode).i_flags |= flags;
            match kind {
                InodeKind::Regular => {
                    (*inode).i_op = &ops::FILE_INODE_OPS.0;
                    (*inode).__bindgen_anon_3.i_fop = &ops::FILE_OPS.0;
                    (*(*inode).i_mapping).a_ops = &ops::ADDRESS_SPACE_OPS.0;
                }
                InodeKind::Directory => {
                    (*inode).i_op = &ops::DIR_INODE_OPS.0;
                    (*inode).__bindgen_anon_3.i_fop = &ops::DIR_OPS.0;
                }
                InodeKind::FastSymlink => {
                    (*inode).i_op = &ops::FAST_SYMLINK_INODE_OPS.0;
                    let link = (&raw mut (*aegis).info.link).cast::<kernel::ffi::c_char>();
                    ffi::aegisfs_vfs_set_link(inode, link);
                }
                InodeKind::SlowSymlink => {
                    (*inode).i_op = &ops::SLOW_SYMLINK_INODE_OPS.0;
                    (*(*inode).i_mapping).a_ops = &ops::ADDRESS_SPACE_OPS.0;
                    bindings::inode_nohighmem(inode);
                }
                InodeKind::Special { rdev } => {
                    (*inode).i_op = &ops::SPECIAL_INODE_OPS.0;
                    ffi::aegisfs_vfs_init_special(inode, attrs.mode, rdev);
                }
            }
            bindings::unlock_new_inode(inode);
        }
        let inode = self.inode;
        core::mem::forget(self);
        // INVARIANT: The inode is fully set up and unlocked; our reference moves over.
        InodeRef { inode }
    }
}

impl Drop for NewInode {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the inode is `I_NEW` and we hold a reference;
        // `iget_failed` marks it bad, unlocks it and drops the reference.
        unsafe { bindings::iget_failed(self.inode.as_ptr()) }
    }
}
