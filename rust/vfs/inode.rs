// SPDX-License-Identifier: GPL-2.0

//! In-memory inodes: the VFS inode with AegisFS's private part embedded.

use super::ffi;
use super::ops;
use super::super_block::SuperBlock;
use crate::disk::Timestamp;
use crate::fs::inode::{BlockPtrs, InodeInfo};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

/// The object the inode cache allocates: AegisFS's inode data and the VFS inode.
///
/// # Invariants
///
/// `map` is only accessed with `map_lock` held (shared for reads, exclusive for writes).
/// `map_lock`, `xattr_lock` and `vfs_inode` are initialised by the slab constructor, `map`,
/// `mmb` and `info` by `alloc_inode`.
#[repr(C)]
pub(crate) struct AegisInode {
    pub(super) map_lock: Opaque<bindings::rw_semaphore>,
    /// Held shared to read the inode's extended attributes, exclusive to change them.
    pub(super) xattr_lock: Opaque<bindings::rw_semaphore>,
    pub(super) map: UnsafeCell<BlockPtrs>,
    /// Dirty metadata buffers of the inode (indirect and directory blocks), for `fsync`.
    pub(super) mmb: Opaque<bindings::mapping_metadata_bhs>,
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
        // SAFETY: By the type invariants the inode is live; the VFS changes the mode under
        // the inode lock and a 16-bit load cannot tear.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).i_mode) }
    }

    /// The file size in bytes.
    pub(crate) fn size(&self) -> u64 {
        // SAFETY: By the type invariants the inode is live; on 64-bit machines `i_size` is
        // read in one load (what `i_size_read` does there).
        let size = unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).i_size) };
        u64::try_from(size).unwrap_or(0)
    }

    /// Sets the file size (callers hold the inode lock, as `i_size_write` requires).
    pub(crate) fn set_size(&self, size: u64) {
        // SAFETY: By the type invariants the inode is live.
        unsafe { ffi::aegisfs_vfs_set_size(self.as_ptr(), i64::try_from(size).unwrap_or(i64::MAX)) }
    }

    /// The hard link count.
    pub(crate) fn nlink(&self) -> u32 {
        // SAFETY: By the type invariants the inode is live; `i_nlink` is a 32-bit word
        // updated with single stores.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).__bindgen_anon_1.i_nlink) }
    }

    pub(crate) fn inc_nlink(&self) {
        // SAFETY: By the type invariants the inode is live; callers hold its lock.
        unsafe { bindings::inc_nlink(self.as_ptr()) }
    }

    pub(crate) fn drop_nlink(&self) {
        // SAFETY: By the type invariants the inode is live; callers hold its lock.
        unsafe { bindings::drop_nlink(self.as_ptr()) }
    }

    pub(crate) fn clear_nlink(&self) {
        // SAFETY: By the type invariants the inode is live; callers hold its lock.
        unsafe { bindings::clear_nlink(self.as_ptr()) }
    }

    /// Owner and group.
    pub(crate) fn owner(&self) -> (u32, u32) {
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: By the type invariants the inode is live.
        unsafe { ffi::aegisfs_vfs_get_owner(self.as_ptr(), &mut uid, &mut gid) };
        (uid, gid)
    }

    /// Access, modification and change times.
    pub(crate) fn times(&self) -> [Timestamp; 3] {
        let mut sec = [0i64; 3];
        let mut nsec = [0u32; 3];
        // SAFETY: By the type invariants the inode is live; both arrays hold 3 elements.
        unsafe { ffi::aegisfs_vfs_get_times(self.as_ptr(), sec.as_mut_ptr(), nsec.as_mut_ptr()) };
        [0, 1, 2].map(|i| Timestamp::new(sec[i], nsec[i]))
    }

    /// Sets ctime, and mtime too with `mtime`, to now.
    pub(crate) fn touch(&self, mtime: bool) {
        // SAFETY: By the type invariants the inode is live.
        unsafe { ffi::aegisfs_vfs_touch(self.as_ptr(), mtime) }
    }

    /// Allocated space in 512-byte units.
    pub(crate) fn blocks_512(&self) -> u64 {
        // SAFETY: By the type invariants the inode is live; `i_blocks` changes under
        // `i_lock` with single stores.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).i_blocks) }
    }

    /// Accounts `count` more (`add`) or fewer allocated 4096-byte blocks.
    pub(crate) fn account_blocks(&self, count: u64, add: bool) {
        let bytes = i64::try_from(count.saturating_mul(4096)).unwrap_or(i64::MAX);
        // SAFETY: By the type invariants the inode is live; these take `i_lock`.
        unsafe {
            if add {
                bindings::inode_add_bytes(self.as_ptr(), bytes)
            } else {
                bindings::inode_sub_bytes(self.as_ptr(), bytes)
            }
        }
    }

    /// The device number of a device inode, `new_encode_dev` encoded.
    pub(crate) fn rdev(&self) -> u32 {
        // SAFETY: By the type invariants the inode is live; `i_rdev` is set at creation.
        unsafe { ffi::aegisfs_vfs_encode_rdev(self.as_ptr()) }
    }

    /// Queues the inode for `write_inode`.
    pub(crate) fn mark_dirty(&self) {
        // SAFETY: By the type invariants the inode is live.
        unsafe { ffi::aegisfs_vfs_mark_inode_dirty(self.as_ptr()) }
    }

    /// Whether the inode was marked bad (a failed read).
    pub(crate) fn is_bad(&self) -> bool {
        // SAFETY: By the type invariants the inode is live.
        unsafe { bindings::is_bad_inode(self.as_ptr()) }
    }

    /// Tasks that have the file open for writing (negative while denied).
    pub(crate) fn writers(&self) -> i32 {
        // SAFETY: By the type invariants the inode is live.
        unsafe { ffi::aegisfs_vfs_writecount(self.as_ptr()) }
    }

    /// Takes the block map lock shared, to read the block pointers.
    pub(crate) fn map_read(&self) -> MapRead<'_> {
        // SAFETY: By the type invariants the inode is embedded in an `AegisInode` whose lock
        // was initialised by the slab constructor.
        unsafe { ffi::aegisfs_vfs_rwsem_lock(self.map_lock_ptr(), false) };
        // INVARIANT: The lock is held shared.
        MapRead { inode: self }
    }

    /// Takes the block map lock exclusive, to change the block pointers.
    pub(crate) fn map_write(&self) -> MapWrite<'_> {
        // SAFETY: As in `map_read`.
        unsafe { ffi::aegisfs_vfs_rwsem_lock(self.map_lock_ptr(), true) };
        // INVARIANT: The lock is held exclusive.
        MapWrite { inode: self }
    }

    fn aegis(&self) -> *mut AegisInode {
        // SAFETY: By the type invariants the inode is embedded in an `AegisInode`.
        unsafe { AegisInode::from_vfs(self.as_ptr()) }
    }

    fn map_lock_ptr(&self) -> *mut bindings::rw_semaphore {
        // SAFETY: `aegis` points to the live `AegisInode`.
        unsafe { (*self.aegis()).map_lock.get() }
    }

    fn xattr_lock_ptr(&self) -> *mut bindings::rw_semaphore {
        // SAFETY: `aegis` points to the live `AegisInode`.
        unsafe { (*self.aegis()).xattr_lock.get() }
    }

    /// Takes the xattr lock, shared (`write` false: reading the extended attributes) or
    /// exclusive (changing them).
    pub(crate) fn xattr_lock(&self, write: bool) -> XattrLock<'_> {
        // SAFETY: By the type invariants the inode is embedded in an `AegisInode` whose
        // xattr lock was initialised by the slab constructor.
        unsafe { ffi::aegisfs_vfs_rwsem_lock(self.xattr_lock_ptr(), write) };
        // INVARIANT: The lock is held as `write` says.
        XattrLock { inode: self, write }
    }

    /// Sets the file type and permission bits (callers hold the inode lock).
    pub(crate) fn set_mode(&self, mode: u16) {
        // SAFETY: By the type invariants the inode is live; the VFS writes `i_mode` the same
        // way under the inode lock, which our callers hold.
        unsafe { core::ptr::write_volatile(&raw mut (*self.as_ptr()).i_mode, mode) }
    }

    /// The list of the inode's dirty metadata buffers.
    pub(super) fn mmb_ptr(&self) -> *mut bindings::mapping_metadata_bhs {
        // SAFETY: `aegis` points to the live `AegisInode`, whose `mmb` was initialised by
        // `alloc_inode`.
        unsafe { (*self.aegis()).mmb.get() }
    }

    /// Writes a symlink target into the first block of a new slow symlink, through the page
    /// cache.
    pub(crate) fn write_symlink(&self, target: &kernel::str::CStr) -> Result {
        // With the NUL, which `page_symlink` counts.
        let len = kernel::ffi::c_int::try_from(target.to_bytes_with_nul().len())
            .map_err(|_| ENAMETOOLONG)?;
        // SAFETY: The inode is live, a slow symlink whose mapping has our address space
        // operations; `target` is valid for `len` bytes.
        let ret = unsafe { bindings::page_symlink(self.as_ptr(), target.as_char_ptr(), len) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Sets the size and drops the page cache past it (`truncate_setsize`).
    pub(crate) fn truncate_pagecache(&self, size: u64) {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        // SAFETY: The inode is live; callers hold its lock.
        unsafe { bindings::truncate_setsize(self.as_ptr(), size) }
    }

    /// Waits for direct I/O in flight.
    pub(crate) fn dio_wait(&self) {
        // SAFETY: The inode is live.
        unsafe { bindings::inode_dio_wait(self.as_ptr()) }
    }

    /// Takes the mapping's invalidate lock, which keeps page faults from bringing pages
    /// back while blocks are freed.
    pub(crate) fn invalidate_lock(&self) -> InvalidateLock<'_> {
        // SAFETY: The inode is live.
        unsafe { ffi::aegisfs_vfs_filemap_invalidate(self.as_ptr(), true) };
        // INVARIANT: The lock is held.
        InvalidateLock { inode: self }
    }

    /// Writes the inode's dirty metadata buffers and waits for them.
    pub(crate) fn sync_metadata_buffers(&self) -> Result {
        // SAFETY: `mmb_ptr` is the inode's initialised list.
        let ret = unsafe { ffi::aegisfs_vfs_mmb_sync(self.mmb_ptr()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }
}

impl Inode {
    /// Takes the inode lock (`i_rwsem`) exclusive.
    pub(crate) fn lock(&self) -> InodeLock<'_> {
        // SAFETY: By the type invariants the inode is live.
        unsafe { ffi::aegisfs_vfs_inode_lock(self.as_ptr(), true) };
        // INVARIANT: The lock is held.
        InodeLock { inode: self }
    }

    /// Takes the inode lock (`i_rwsem`) shared: the VFS holds it so for `readdir` and
    /// lookups, exclusive for changes to a directory.
    pub(crate) fn lock_shared(&self) -> InodeLockShared<'_> {
        // SAFETY: By the type invariants the inode is live.
        unsafe { ffi::aegisfs_vfs_inode_lock_shared(self.as_ptr(), true) };
        // INVARIANT: The lock is held shared.
        InodeLockShared { inode: self }
    }

    fn i_flags(&self) -> u32 {
        // SAFETY: By the type invariants the inode is live; `i_flags` is a word changed with
        // single stores (`inode_set_flags`).
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).i_flags) }
    }

    /// Whether the inode is immutable (`chattr +i`).
    pub(crate) fn is_immutable(&self) -> bool {
        self.i_flags() & bindings::S_IMMUTABLE != 0
    }

    /// Whether the file is an active swap file (`S_SWAPFILE`, set by swapon until swapoff):
    /// its blocks belong to the swap code, which writes them directly.
    pub(crate) fn is_swapfile(&self) -> bool {
        self.i_flags() & bindings::S_SWAPFILE != 0
    }

    /// Whether the inode is append-only (`chattr +a`).
    pub(crate) fn is_append(&self) -> bool {
        self.i_flags() & bindings::S_APPEND != 0
    }

    /// Sets the VFS flags (`S_IMMUTABLE`, ...) to `flags`.
    pub(crate) fn set_vfs_flags(&self, flags: InodeFlags) {
        // SAFETY: By the type invariants the inode is live; `inode_set_flags` changes only
        // the bits of the mask, atomically.
        unsafe { bindings::inode_set_flags(self.as_ptr(), flags.vfs_bits(), InodeFlags::VFS_MASK) }
    }

    /// The largest file size the filesystem allows (`s_maxbytes`).
    pub(crate) fn max_bytes(&self) -> u64 {
        // SAFETY: By the type invariants the inode and its superblock are live;
        // `s_maxbytes` is set at mount and not changed.
        let max = unsafe { (*(*self.as_ptr()).i_sb).s_maxbytes };
        u64::try_from(max).unwrap_or(0)
    }

    /// Checks that the file may grow to `size` bytes (resource limits, `s_maxbytes`).
    pub(crate) fn newsize_ok(&self, size: u64) -> Result {
        let size = i64::try_from(size).map_err(|_| EFBIG)?;
        // SAFETY: By the type invariants the inode is live.
        let ret = unsafe { bindings::inode_newsize_ok(self.as_ptr(), size) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Writes the dirty page cache of bytes `start..=end` and waits for it.
    pub(crate) fn write_and_wait(&self, start: u64, end: u64) -> Result {
        let start = i64::try_from(start).map_err(|_| EFBIG)?;
        let end = i64::try_from(end).unwrap_or(i64::MAX);
        // SAFETY: By the type invariants the inode is live, and so is its mapping.
        let ret = unsafe {
            bindings::filemap_write_and_wait_range((*self.as_ptr()).i_mapping, start, end)
        };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Drops the page cache of bytes `start..=end` (callers hold the inode lock and the
    /// invalidate lock).
    pub(crate) fn truncate_pagecache_range(&self, start: u64, end: u64) {
        let start = i64::try_from(start).unwrap_or(i64::MAX);
        let end = i64::try_from(end).unwrap_or(i64::MAX);
        // SAFETY: By the type invariants the inode is live.
        unsafe { bindings::truncate_pagecache_range(self.as_ptr(), start, end) }
    }

    /// Zeroes `len` bytes from `pos`, all in one block, in the page cache, and dirties them
    /// (callers hold the inode lock).
    pub(crate) fn zero_cached(&self, pos: u64, len: u64) -> Result {
        if len == 0 || pos % crate::disk::BLOCK_SIZE_U64 + len > crate::disk::BLOCK_SIZE_U64 {
            return Err(EINVAL);
        }
        let pos = i64::try_from(pos).map_err(|_| EFBIG)?;
        let len = kernel::ffi::c_uint::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: The inode is live with our address space operations; `get_block` matches
        // `get_block_t`; the range lies inside one block.
        let ret =
            unsafe { ffi::aegisfs_vfs_zero_cached(self.as_ptr(), pos, len, Some(ops::get_block)) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }
}

/// The inode lock (`i_rwsem`), held exclusive.
///
/// # Invariants
///
/// The inode lock of `inode` is held exclusive while this object exists.
pub(crate) struct InodeLock<'a> {
    inode: &'a Inode,
}

impl Drop for InodeLock<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold the lock.
        unsafe { ffi::aegisfs_vfs_inode_lock(self.inode.as_ptr(), false) }
    }
}

/// The inode lock (`i_rwsem`), held shared.
///
/// # Invariants
///
/// The inode lock of `inode` is held shared while this object exists.
pub(crate) struct InodeLockShared<'a> {
    inode: &'a Inode,
}

impl Drop for InodeLockShared<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold the lock shared.
        unsafe { ffi::aegisfs_vfs_inode_lock_shared(self.inode.as_ptr(), false) }
    }
}

/// An inode's xattr lock, held.
///
/// # Invariants
///
/// The xattr lock of `inode` is held (exclusive if `write`) while this object exists.
pub(crate) struct XattrLock<'a> {
    inode: &'a Inode,
    write: bool,
}

impl Drop for XattrLock<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold the lock as `write` says.
        unsafe { ffi::aegisfs_vfs_rwsem_unlock(self.inode.xattr_lock_ptr(), self.write) }
    }
}

/// The mapping's invalidate lock, held.
///
/// # Invariants
///
/// The invalidate lock of `inode`'s mapping is held exclusive while this object exists.
pub(crate) struct InvalidateLock<'a> {
    inode: &'a Inode,
}

impl Drop for InvalidateLock<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold the lock.
        unsafe { ffi::aegisfs_vfs_filemap_invalidate(self.inode.as_ptr(), false) }
    }
}

/// The block pointers of an inode, read under the shared block map lock.
///
/// # Invariants
///
/// The map lock of `inode` is held shared while this object exists.
pub(crate) struct MapRead<'a> {
    inode: &'a Inode,
}

impl Deref for MapRead<'_> {
    type Target = BlockPtrs;

    fn deref(&self) -> &BlockPtrs {
        // SAFETY: By the type invariants the lock is held shared, so no writer exists.
        unsafe { &*(*self.inode.aegis()).map.get() }
    }
}

impl Drop for MapRead<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold the lock shared.
        unsafe { ffi::aegisfs_vfs_rwsem_unlock(self.inode.map_lock_ptr(), false) }
    }
}

/// The block pointers of an inode, changed under the exclusive block map lock.
///
/// # Invariants
///
/// The map lock of `inode` is held exclusive while this object exists.
pub(crate) struct MapWrite<'a> {
    inode: &'a Inode,
}

impl Deref for MapWrite<'_> {
    type Target = BlockPtrs;

    fn deref(&self) -> &BlockPtrs {
        // SAFETY: By the type invariants the lock is held exclusive.
        unsafe { &*(*self.inode.aegis()).map.get() }
    }
}

impl DerefMut for MapWrite<'_> {
    fn deref_mut(&mut self) -> &mut BlockPtrs {
        // SAFETY: By the type invariants the lock is held exclusive, so this is the only
        // access.
        unsafe { &mut *(*self.inode.aegis()).map.get() }
    }
}

impl Drop for MapWrite<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold the lock exclusive.
        unsafe { ffi::aegisfs_vfs_rwsem_unlock(self.inode.map_lock_ptr(), true) }
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
    pub(crate) dirsync: bool,
}

impl InodeFlags {
    /// The `S_*` bits of `i_flags` that [`InodeFlags`] stand for.
    const VFS_MASK: u32 = bindings::S_IMMUTABLE
        | bindings::S_APPEND
        | bindings::S_NOATIME
        | bindings::S_SYNC
        | bindings::S_DIRSYNC;

    /// The flags as `S_*` bits of `i_flags`.
    fn vfs_bits(&self) -> u32 {
        let mut flags = 0;
        if self.immutable {
            flags |= bindings::S_IMMUTABLE;
        }
        if self.append {
            flags |= bindings::S_APPEND;
        }
        if self.noatime {
            flags |= bindings::S_NOATIME;
        }
        if self.sync {
            flags |= bindings::S_SYNC;
        }
        if self.dirsync {
            flags |= bindings::S_DIRSYNC;
        }
        flags
    }
}

/// The attributes of a new inode, validated from disk.
#[derive(Clone, Copy)]
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

/// How far a [`NewInode`] got, which decides how it is given up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NewState {
    /// From `iget_locked`, to be read from disk.
    Read,
    /// From `new_inode`, not yet in the inode hash (no inode number).
    Fresh,
    /// A new file's inode, hashed and `I_NEW`, with an allocated inode number.
    Created,
}

/// An inode being set up: read from disk (`I_NEW` until filled) or being created.
///
/// # Invariants
///
/// `inode` is a live AegisFS inode of a mounted superblock, referenced by this object and
/// invisible to others (`I_NEW`, or not yet hashed) until it is handed over.
pub(crate) struct NewInode {
    inode: NonNull<bindings::inode>,
    state: NewState,
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
            Ok(Iget::New(NewInode {
                inode,
                state: NewState::Read,
            }))
        } else {
            // INVARIANT: A cached inode that is not new was fully set up by `NewInode::init`.
            Ok(Iget::Cached(InodeRef { inode }))
        }
    }

    /// A new in-memory inode for a file of `mode` created in `dir` by the current task
    /// through a mount with `idmap`: owner, group and the final mode (set-group-ID
    /// inheritance) are set the VFS way; the inode number comes with [`NewInode::insert`].
    pub(crate) fn new_inode(
        &self,
        idmap: *mut bindings::mnt_idmap,
        dir: &Inode,
        mode: u16,
    ) -> Result<NewInode> {
        // SAFETY: The superblock and `dir` are live; the VFS passed `idmap` to the operation
        // this is called from.
        let inode = unsafe { ffi::aegisfs_vfs_new_inode(self.as_ptr(), idmap, dir.as_ptr(), mode) };
        let inode = NonNull::new(inode).ok_or(ENOMEM)?;
        // INVARIANT: `new_inode` returned a referenced inode that is not hashed yet.
        Ok(NewInode {
            inode,
            state: NewState::Fresh,
        })
    }
}

impl NewInode {
    pub(crate) fn ino(&self) -> u32 {
        // SAFETY: By the type invariants the inode is live; `i_ino` is set from a u32.
        let ino = unsafe { (*self.inode.as_ptr()).i_ino };
        u32::try_from(ino).unwrap_or(0)
    }

    pub(crate) fn sb(&self) -> &SuperBlock {
        // SAFETY: By the type invariants the inode belongs to a mounted AegisFS superblock.
        unsafe { SuperBlock::from_raw((*self.inode.as_ptr()).i_sb) }
    }

    /// Applies the POSIX ACL rules of `dir` to the new inode (`posix_acl_create`): its mode
    /// takes the umask, or the masks of `dir`'s default ACL, which it then inherits (a new
    /// directory as its default ACL too). Returns the ACLs to store with the inode.
    pub(crate) fn inherit_acls(&mut self, dir: &Inode) -> Result<super::xattr::InheritedAcls> {
        let mut default_acl = core::ptr::null_mut();
        let mut access_acl = core::ptr::null_mut();
        // SAFETY: By the type invariants the inode is live and only ours, so its mode may be
        // changed; `dir` is live; the out pointers are locals.
        let ret = unsafe {
            ffi::aegisfs_vfs_acl_create(
                dir.as_ptr(),
                self.inode.as_ptr(),
                &mut default_acl,
                &mut access_acl,
            )
        };
        // SAFETY: `posix_acl_create` returned these references (or null) for us to own.
        let acls = unsafe {
            super::xattr::InheritedAcls {
                default: super::xattr::AclRef::from_owned(default_acl),
                access: super::xattr::AclRef::from_owned(access_acl),
            }
        };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(acls)
    }

    /// The mode `new_inode` chose.
    pub(crate) fn mode(&self) -> u16 {
        // SAFETY: By the type invariants the inode is live and only ours.
        unsafe { (*self.inode.as_ptr()).i_mode }
    }

    /// Gives a fresh inode its number and puts it in the inode hash, `I_NEW`.
    pub(crate) fn insert(&mut self, ino: u32) -> Result {
        if self.state != NewState::Fresh {
            return Err(EINVAL);
        }
        // SAFETY: By the type invariants the inode is live, only ours and not hashed.
        let ret = unsafe { ffi::aegisfs_vfs_insert_inode(self.inode.as_ptr(), u64::from(ino)) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        self.state = NewState::Created;
        Ok(())
    }

    /// Fills the inode read from disk and unlocks it.
    pub(crate) fn init(
        self,
        attrs: &InodeAttrs,
        info: InodeInfo,
        map: BlockPtrs,
        kind: InodeKind,
    ) -> InodeRef {
        self.fill(attrs, info, map, kind);
        // SAFETY: By the type invariants the inode is `I_NEW` and ours.
        unsafe { bindings::unlock_new_inode(self.inode.as_ptr()) };
        self.into_ref()
    }

    /// Fills a created inode: `attrs` except the mode and owner, which `new_inode` set;
    /// all times are set to now. It stays `I_NEW` until [`NewInode::instantiate`].
    pub(crate) fn setup(&mut self, attrs: &InodeAttrs, info: InodeInfo, kind: InodeKind) {
        let inode = self.inode.as_ptr();
        let attrs = InodeAttrs {
            mode: self.mode(),
            ..*attrs
        };
        // SAFETY: By the type invariants the inode is live and only ours; the owner was set
        // by `new_inode`, so `fill` writes it back unchanged.
        let (uid, gid) = unsafe {
            let (mut uid, mut gid) = (0, 0);
            ffi::aegisfs_vfs_get_owner(inode, &mut uid, &mut gid);
            (uid, gid)
        };
        self.fill(
            &InodeAttrs { uid, gid, ..attrs },
            info,
            BlockPtrs::empty(),
            kind,
        );
        // SAFETY: As above; `info` was just written by `fill` and is not shared yet.
        unsafe {
            let now = bindings::simple_inode_init_ts(inode);
            let nsec = u32::try_from(now.tv_nsec).unwrap_or(0);
            (*AegisInode::from_vfs(inode)).info.crtime = Timestamp::new(now.tv_sec, nsec);
            ffi::aegisfs_vfs_mark_inode_dirty(inode);
        }
    }

    /// The inode as an [`Inode`], once `setup` filled it.
    pub(crate) fn inode(&self) -> &Inode {
        // SAFETY: The inode is live and was filled by `setup` (callers use this after it);
        // nobody else can reach it while it is `I_NEW`.
        unsafe { Inode::from_raw(self.inode.as_ptr()) }
    }

    /// Hands a created inode over to `dentry` and unlocks it.
    pub(crate) fn instantiate(self, dentry: &super::dentry::Dentry) {
        // SAFETY: The inode is hashed, `I_NEW` and filled; `d_instantiate_new` takes our
        // reference and unlocks it.
        unsafe { bindings::d_instantiate_new(dentry.as_ptr(), self.inode.as_ptr()) };
        core::mem::forget(self);
    }

    /// Unlocks a created inode that no dentry names yet (a whiteout) and drops it: it stays
    /// on disk with its link.
    pub(crate) fn release(self) {
        // SAFETY: The inode is hashed, `I_NEW` and filled; we drop our reference.
        unsafe {
            bindings::unlock_new_inode(self.inode.as_ptr());
            bindings::iput(self.inode.as_ptr());
        }
        core::mem::forget(self);
    }

    /// Hands a created, unnamed (`O_TMPFILE`) inode over to `file` and unlocks it.
    pub(crate) fn instantiate_tmpfile(self, file: *mut bindings::file) {
        // SAFETY: The inode is hashed, `I_NEW` and filled; `file` is the open file of the
        // `tmpfile` call; `d_tmpfile` takes our reference.
        unsafe {
            bindings::d_tmpfile(file, self.inode.as_ptr());
            bindings::unlock_new_inode(self.inode.as_ptr());
        }
        core::mem::forget(self);
    }

    fn fill(&self, attrs: &InodeAttrs, info: InodeInfo, map: BlockPtrs, kind: InodeKind) {
        let inode = self.inode.as_ptr();
        let flags = attrs.flags.vfs_bits();
        // SAFETY: By the type invariants the inode is live and only ours, so its fields may
        // be written; it is embedded in an `AegisInode`.
        unsafe {
            let aegis = AegisInode::from_vfs(inode);
            (&raw mut (*aegis).info).write(info);
            (*(*aegis).map.get()) = map;
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
                    ffi::aegisfs_vfs_set_large_folios(inode);
                }
                InodeKind::Directory => {
                    (*inode).i_op = &ops::DIR_INODE_OPS.0;
                    (*inode).__bindgen_anon_3.i_fop = &ops::DIR_OPS.0;
                    (*(*inode).i_mapping).a_ops = &ops::ADDRESS_SPACE_OPS.0;
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
        }
    }

    fn into_ref(self) -> InodeRef {
        let inode = self.inode;
        core::mem::forget(self);
        // INVARIANT: The inode is fully set up and unlocked; our reference moves over.
        InodeRef { inode }
    }
}

impl Drop for NewInode {
    fn drop(&mut self) {
        let inode = self.inode.as_ptr();
        // SAFETY: By the type invariants we hold a reference to the live inode.
        unsafe {
            match self.state {
                // Marks it bad, unlocks it and drops the reference.
                NewState::Read => bindings::iget_failed(inode),
                // Not on disk: eviction only releases memory.
                NewState::Fresh => bindings::iput(inode),
                // Eviction of a hashed inode without links frees its number and blocks.
                NewState::Created => {
                    bindings::clear_nlink(inode);
                    bindings::discard_new_inode(inode);
                }
            }
        }
    }
}

impl Inode {
    /// A new reference to the inode, unless it is being evicted.
    pub(crate) fn grab(&self) -> Option<InodeRef> {
        // SAFETY: The inode is live.
        let inode = unsafe { ffi::aegisfs_vfs_igrab(self.as_ptr()) };
        // INVARIANT: `igrab` took a reference on our live, set-up inode.
        NonNull::new(inode).map(|inode| InodeRef { inode })
    }

    /// Writes the file's dirty pages and waits for them; a write error is returned and also
    /// stays recorded for `fsync`.
    pub(crate) fn write_ordered_data(&self) -> Result {
        // SAFETY: The inode is live.
        let ret = unsafe { ffi::aegisfs_vfs_write_ordered_data(self.as_ptr()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }
}
