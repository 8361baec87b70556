// SPDX-License-Identifier: GPL-2.0

//! Superblocks: the mounted filesystem and its block device.

use super::buffer::BufferHead;
use super::ffi;
use crate::disk::BLOCK_SIZE_U64;
use crate::fs::superblock::SbInfo;
use core::ops::Deref;
use kernel::bindings;
use kernel::ffi::{c_int, c_uint, c_ulong};
use kernel::prelude::*;
use kernel::str::CStrExt;
use kernel::types::Opaque;

const BLOCK_SIZE_ULONG: c_ulong = 4096;

/// The block device under a superblock, read in 4096-byte blocks.
///
/// This is what `fill_super` has before the filesystem's private data exists.
///
/// # Invariants
///
/// The wrapped `super_block` is live and belongs to AegisFS.
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::super_block>);

impl Device {
    /// Wraps a superblock being filled.
    ///
    /// # Safety
    ///
    /// `sb` must be a live AegisFS superblock, for `'a`.
    pub(crate) unsafe fn from_raw<'a>(sb: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `Device` is a transparent wrapper of `super_block`; the caller guarantees
        // the pointer is valid for `'a`.
        unsafe { &*sb.cast::<Self>() }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// The device name for log lines, like `vdb`.
    pub(crate) fn name(&self) -> &str {
        // SAFETY: By the type invariants the superblock is live; `s_id` is set before
        // `fill_super` and never changes afterwards.
        let id = unsafe { &(*self.as_ptr()).s_id };
        // SAFETY: `c_char` and `u8` have the same size and alignment.
        let bytes = unsafe { &*(core::ptr::from_ref(id).cast::<[u8; 32]>()) };
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        core::str::from_utf8(&bytes[..len]).unwrap_or("?")
    }

    /// Stops the system after corruption was found, for `errors=panic`: logs
    /// `aegisfs (<device>): <object> <number>: <msg>`, like `inode 12: ...`.
    pub(crate) fn panic(&self, object: &str, number: u32, msg: &str) -> ! {
        let object_len = c_int::try_from(object.len()).unwrap_or(0);
        let msg_len = c_int::try_from(msg.len()).unwrap_or(0);
        // SAFETY: The format string takes a NUL-terminated string (`s_id` is one), two
        // length-limited byte strings that `object` and `msg` provide, and a `c_uint`.
        unsafe {
            bindings::panic(
                c"aegisfs (%s): %.*s %u: %.*s\n".as_char_ptr(),
                (*self.as_ptr()).s_id.as_ptr(),
                object_len,
                object.as_ptr(),
                c_uint::from(number),
                msg_len,
                msg.as_ptr(),
            )
        }
    }

    /// Size of the device in 4096-byte blocks.
    pub(crate) fn blocks(&self) -> u64 {
        // SAFETY: By the type invariants the superblock is live and has a block device.
        unsafe { ffi::aegisfs_vfs_device_bytes(self.as_ptr()) / BLOCK_SIZE_U64 }
    }

    /// Checks what [`BufferHead::read`] needs of `block`. Callers check block numbers
    /// against the filesystem, which mount checked against the device, so a block past the
    /// device's end means the device shrank or went away (a removed disk has no blocks):
    /// EIO.
    fn check_read(&self, block: u64) -> Result {
        if block >= self.blocks() {
            return Err(EIO);
        }
        // SAFETY: By the type invariants the superblock is live.
        if unsafe { (*self.as_ptr()).s_blocksize } != BLOCK_SIZE_ULONG {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// How many of the blocks `first..first + count` lie inside the device.
    fn blocks_inside(&self, first: u64, count: u32) -> u32 {
        let end = first.saturating_add(u64::from(count)).min(self.blocks());
        u32::try_from(end.saturating_sub(first)).unwrap_or(0)
    }

    /// Reads block `block` of the device.
    pub(crate) fn bread(&self, block: u64) -> Result<BufferHead> {
        self.check_read(block)?;
        // SAFETY: By the type invariants the superblock is live; `check_read` checked its
        // block size to be 4096 and `block` to lie inside the device.
        unsafe { BufferHead::read(self.as_ptr(), block) }
    }

    /// [`Self::bread`] of `block` that, when the block is neither cached nor being read,
    /// reads the `count - 1` blocks after it (clamped to the device) along with it.
    pub(crate) fn bread_ahead(&self, block: u64, count: u32) -> Result<BufferHead> {
        self.check_read(block)?;
        let count = self.blocks_inside(block, count);
        // SAFETY: By the type invariants the superblock is live; `check_read` checked its
        // block size to be 4096 and `block` to lie inside the device, and `count` is clamped
        // to the blocks inside it.
        unsafe { BufferHead::read_ahead(self.as_ptr(), block, count) }
    }

    /// A zeroed buffer for block `block`, not read (a newly allocated metadata block).
    pub(crate) fn new_block(&self, block: u64) -> Result<BufferHead> {
        if block >= self.blocks() {
            return Err(EIO);
        }
        // SAFETY: By the type invariants the superblock is live; `fill_super` set its block
        // size to 4096 before anything allocates; `block` lies inside the device.
        unsafe { BufferHead::new_zeroed(self.as_ptr(), block) }
    }

    /// Whether block `block` is in the buffer cache and up to date.
    pub(crate) fn is_cached(&self, block: u64) -> bool {
        // SAFETY: By the type invariants the superblock is live.
        unsafe { ffi::aegisfs_vfs_block_cached(self.as_ptr(), block) }
    }

    /// Starts reading the blocks `first..first + count` (clamped to the device) that are
    /// not cached, without waiting for them.
    pub(crate) fn readahead(&self, first: u64, count: u32) {
        let count = self.blocks_inside(first, count);
        if count == 0 {
            return;
        }
        // SAFETY: By the type invariants the superblock is live; the blocks lie inside
        // the device.
        unsafe { ffi::aegisfs_vfs_breadahead(self.as_ptr(), first, count) }
    }

    /// Drops the cached copy of freed metadata block `block`, so that a dirty copy is never
    /// written over the block's next user.
    pub(crate) fn forget_block(&self, block: u64) {
        // SAFETY: By the type invariants the superblock is live.
        unsafe { ffi::aegisfs_vfs_forget_block(self.as_ptr(), block) }
    }

    /// Whether the filesystem is mounted read-only.
    pub(crate) fn is_read_only(&self) -> bool {
        // SAFETY: By the type invariants the superblock is live.
        unsafe { ffi::aegisfs_vfs_sb_rdonly(self.as_ptr()) }
    }

    /// Marks the superblock read-only (after an error with `errors=remount-ro`).
    pub(crate) fn force_read_only(&self) {
        // SAFETY: By the type invariants the superblock is live; setting `SB_RDONLY` is what
        // ext4 does for `errors=remount-ro`.
        unsafe { ffi::aegisfs_vfs_set_rdonly(self.as_ptr(), true) }
    }
}

/// A mounted AegisFS superblock: a [`Device`] with the filesystem's private data.
///
/// # Invariants
///
/// In addition to the invariants of [`Device`], `s_fs_info` points to a valid [`SbInfo`] that
/// lives as long as the superblock.
#[repr(transparent)]
pub(crate) struct SuperBlock(Device);

impl SuperBlock {
    /// Wraps a superblock whose private data is set.
    ///
    /// # Safety
    ///
    /// `sb` must be a live AegisFS superblock whose `s_fs_info` points to a valid `SbInfo`,
    /// for `'a`.
    pub(crate) unsafe fn from_raw<'a>(sb: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `SuperBlock` is a transparent wrapper of `super_block` (through `Device`);
        // the caller guarantees the pointer and its private data are valid for `'a`.
        unsafe { &*sb.cast::<Self>() }
    }

    /// Whether `fill_super` has completed (the root dentry is set).
    pub(crate) fn is_mounted(&self) -> bool {
        // SAFETY: By the type invariants the superblock is live; `s_root` is set once at the
        // end of `fill_super`, before anything else can reach the superblock.
        !unsafe { (*self.as_ptr()).s_root }.is_null()
    }

    /// The filesystem's private data.
    pub(crate) fn info(&self) -> &SbInfo {
        // SAFETY: By the type invariants `s_fs_info` points to a valid `SbInfo` for as long
        // as the superblock lives.
        unsafe { &*(*self.as_ptr()).s_fs_info.cast::<SbInfo>() }
    }
}

impl Deref for SuperBlock {
    type Target = Device;

    fn deref(&self) -> &Device {
        &self.0
    }
}

impl Device {
    /// Flushes the device's volatile write cache.
    pub(crate) fn flush(&self) -> Result {
        // SAFETY: By the type invariants the superblock is live with an open device.
        let ret = unsafe { ffi::aegisfs_vfs_issue_flush(self.as_ptr()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Whether the block device is read-only (`blockdev --setro`, a write-protected disk).
    pub(crate) fn device_read_only(&self) -> bool {
        // SAFETY: By the type invariants the superblock is live with an open device.
        unsafe { ffi::aegisfs_vfs_bdev_read_only(self.as_ptr()) }
    }

    /// The device's discard granularity in bytes (at least 1), or `None` when it cannot
    /// discard.
    pub(crate) fn discard_granularity(&self) -> Option<u32> {
        // SAFETY: By the type invariants the superblock is live with an open device.
        let granularity = unsafe { ffi::aegisfs_vfs_discard_granularity(self.as_ptr()) };
        (granularity != 0).then_some(granularity)
    }

    /// Discards blocks `block..block + count` of the device and waits until that is done.
    /// The caller makes sure no one uses those blocks meanwhile.
    pub(crate) fn discard(&self, block: u64, count: u64) -> Result {
        let end = block.checked_add(count).ok_or(EINVAL)?;
        if end > self.blocks() {
            return Err(EINVAL);
        }
        // SAFETY: By the type invariants the superblock is live with an open device; its block
        // size is 4096 (set by `fill_super` before anything else runs), and the range lies
        // inside the device (checked above).
        let ret = unsafe { ffi::aegisfs_vfs_issue_discard(self.as_ptr(), block, count) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }
}

/// A delayed work that calls `fs::journal::timer` for a superblock after a delay.
///
/// # Invariants
///
/// `timer` was returned by `aegisfs_vfs_timer_new` for a superblock that outlives this object.
pub(crate) struct CommitTimer {
    timer: core::ptr::NonNull<kernel::ffi::c_void>,
}

// SAFETY: The timer is a kernel work item, usable from any task.
unsafe impl Send for CommitTimer {}
// SAFETY: `arm` only queues the work item, which the workqueue code serialises.
unsafe impl Sync for CommitTimer {}

impl CommitTimer {
    /// A timer for `sb`, which must outlive it (the timer is dropped in `put_super`).
    pub(crate) fn new(sb: &Device) -> Result<Self> {
        // SAFETY: By the type invariants of `Device` the superblock is live.
        let timer = unsafe { ffi::aegisfs_vfs_timer_new(sb.as_ptr()) };
        Ok(Self {
            timer: core::ptr::NonNull::new(timer).ok_or(ENOMEM)?,
        })
    }

    /// Cancels the callback and waits for a run in progress.
    pub(crate) fn cancel(&self) {
        // SAFETY: By the type invariants `timer` is live.
        unsafe { ffi::aegisfs_vfs_timer_cancel(self.timer.as_ptr()) }
    }

    /// Runs the callback in `ms` milliseconds, unless it is already queued.
    pub(crate) fn arm(&self, ms: u32) {
        // SAFETY: By the type invariants `timer` is live.
        unsafe { ffi::aegisfs_vfs_timer_arm(self.timer.as_ptr(), ms) }
    }
}

impl Drop for CommitTimer {
    fn drop(&mut self) {
        // SAFETY: By the type invariants `timer` is live; this cancels and waits for the
        // work, then frees it.
        unsafe { ffi::aegisfs_vfs_timer_free(self.timer.as_ptr()) }
    }
}

/// Called by the commit timer's work item.
///
/// # Safety
///
/// `sb` must be a mounted AegisFS superblock (the timer is cancelled before it goes away).
#[no_mangle]
unsafe extern "C" fn aegisfs_commit_timer(sb: *mut bindings::super_block) {
    // SAFETY: The caller guarantees `sb` is mounted with its private data set.
    let sb = unsafe { SuperBlock::from_raw(sb) };
    crate::fs::journal::timer(sb);
}
