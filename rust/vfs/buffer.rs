// SPDX-License-Identifier: GPL-2.0

//! Buffer heads: metadata blocks read through the block device's page cache.

use super::ffi;
use super::inode::Inode;
use crate::disk::{BLOCK_SIZE, BLOCK_SIZE_U64};
use core::ptr::NonNull;
use kernel::bindings;
use kernel::prelude::*;

/// The kinds of metadata whose checksum a buffer remembers having verified.
///
/// A block is verified once after it is read from the device; later users skip the CRC.
/// Each kind has its own state bit, so a block that a corrupt image uses as two kinds of
/// metadata is still checked as each of them.
#[derive(Clone, Copy)]
pub(crate) enum Verified {
    /// An indirect block (checksum over its owner's inode number and generation).
    Indirect = 0,
    /// A directory block (its records were validated too).
    Directory = 1,
    /// An inode bitmap.
    InodeBitmap = 2,
    /// A block bitmap.
    BlockBitmap = 3,
    /// An xattr block (its entries were validated too, and found disjoint from its inode's
    /// inline area).
    Xattr = 4,
    /// A directory index block.
    DirIndex = 5,
}

/// The journal's state bits of a metadata buffer.
#[derive(Clone, Copy)]
pub(crate) enum JournalFlag {
    /// Changed in the running transaction (which holds a reference).
    Running = 0,
    /// Committed to the log and not yet written home (the checkpoint list holds a
    /// reference).
    Checkpoint = 1,
    /// The block was freed: its cached copy must not be written home.
    Freed = 2,
}

/// A 4096-byte block read from the device, released when dropped.
///
/// # Invariants
///
/// `bh` points to a `buffer_head` on which this object holds a reference, whose data is up to
/// date and exactly [`BLOCK_SIZE`] bytes long.
pub(crate) struct BufferHead {
    bh: NonNull<bindings::buffer_head>,
}

impl BufferHead {
    /// Reads `block` of the filesystem on `sb`.
    ///
    /// # Safety
    ///
    /// `sb` must be a live superblock whose block size is [`BLOCK_SIZE`], and `block` must lie
    /// inside its device.
    pub(crate) unsafe fn read(sb: *mut bindings::super_block, block: u64) -> Result<Self> {
        // SAFETY: The caller guarantees `sb` is live with a 4096-byte block size.
        let bh = unsafe { ffi::aegisfs_vfs_sb_bread(sb, block) };
        // SAFETY: `sb_bread` returns null or a referenced, up-to-date buffer.
        unsafe { Self::from_read(bh) }
    }

    /// Reads `block` of the filesystem on `sb`, when it is neither cached nor being read
    /// reading the `count - 1` blocks after it along.
    ///
    /// # Safety
    ///
    /// As for [`BufferHead::read`], and the `count` blocks from `block` must lie inside the
    /// device.
    pub(crate) unsafe fn read_ahead(
        sb: *mut bindings::super_block,
        block: u64,
        count: u32,
    ) -> Result<Self> {
        // SAFETY: The caller guarantees `sb` is live with a 4096-byte block size and the
        // blocks inside its device.
        let bh = unsafe { ffi::aegisfs_vfs_sb_bread_ahead(sb, block, count) };
        // SAFETY: `aegisfs_vfs_sb_bread_ahead` returns null or a referenced, up-to-date
        // buffer.
        unsafe { Self::from_read(bh) }
    }

    /// # Safety
    ///
    /// `bh` must be null or a referenced, up-to-date buffer, whose reference passes to the
    /// result.
    unsafe fn from_read(bh: *mut bindings::buffer_head) -> Result<Self> {
        let bh = NonNull::new(bh).ok_or(EIO)?;
        // SAFETY: The caller guarantees `bh` is a referenced buffer.
        let size = unsafe { ffi::aegisfs_vfs_bh_size(bh.as_ptr()) };
        let buffer = Self { bh };
        if size != BLOCK_SIZE_U64 {
            return Err(EIO);
        }
        // INVARIANT: `buffer` holds the caller's reference; its size was just checked.
        Ok(buffer)
    }

    /// A new block of `sb`: its buffer zeroed and up to date, not read from the device.
    ///
    /// # Safety
    ///
    /// As for [`BufferHead::read`].
    pub(crate) unsafe fn new_zeroed(sb: *mut bindings::super_block, block: u64) -> Result<Self> {
        // SAFETY: The caller guarantees `sb` is live with a 4096-byte block size.
        let bh = unsafe { ffi::aegisfs_vfs_sb_getblk_zeroed(sb, block) };
        let bh = NonNull::new(bh).ok_or(ENOMEM)?;
        // INVARIANT: `sb_getblk` returned a referenced buffer of the superblock's block size,
        // now zeroed and up to date.
        Ok(Self { bh })
    }

    /// The block's bytes.
    ///
    /// Every writer changes a block in [`BufferHead::modify`] while holding the lock of the
    /// object the block belongs to (the directory's `i_rwsem`, the inode's block map lock),
    /// which readers through this method hold too; blocks shared by several objects
    /// (bitmaps, inode tables) are read with [`BufferHead::read_locked`] instead.
    pub(crate) fn data(&self) -> &[u8; BLOCK_SIZE] {
        // SAFETY: By the type invariants the buffer is referenced and up to date, so `b_data`
        // points to `BLOCK_SIZE` readable bytes that stay mapped until `drop`. By the locking
        // rule above, no writer changes them while this borrow lives.
        unsafe { &*ffi::aegisfs_vfs_bh_data(self.bh.as_ptr()).cast::<[u8; BLOCK_SIZE]>() }
    }

    /// The block number.
    pub(crate) fn block(&self) -> u64 {
        // SAFETY: By the type invariants `bh` is a referenced buffer head.
        unsafe { ffi::aegisfs_vfs_bh_blocknr(self.bh.as_ptr()) }
    }

    /// Sets a journal state bit; returns whether it was set before.
    pub(crate) fn set_flag(&self, flag: JournalFlag) -> bool {
        // SAFETY: By the type invariants `bh` is a referenced buffer head; bits change
        // atomically.
        unsafe { ffi::aegisfs_vfs_bh_flag(self.bh.as_ptr(), flag as u32, 1) }
    }

    /// Clears a journal state bit; returns whether it was set before.
    pub(crate) fn clear_flag(&self, flag: JournalFlag) -> bool {
        // SAFETY: As in `set_flag`.
        unsafe { ffi::aegisfs_vfs_bh_flag(self.bh.as_ptr(), flag as u32, -1) }
    }

    /// Whether a journal state bit is set.
    pub(crate) fn has_flag(&self, flag: JournalFlag) -> bool {
        // SAFETY: As in `set_flag`.
        unsafe { ffi::aegisfs_vfs_bh_flag(self.bh.as_ptr(), flag as u32, 0) }
    }

    /// Changes the block with `f` under the buffer lock, without marking it dirty (the
    /// journal writes it).
    pub(crate) fn change<R>(&self, f: impl FnOnce(&mut [u8; BLOCK_SIZE]) -> R) -> R {
        let bh = self.bh.as_ptr();
        // SAFETY: By the type invariants `bh` is a referenced buffer head.
        unsafe { ffi::aegisfs_vfs_lock_buffer(bh) };
        // SAFETY: As in `modify`: we hold the buffer lock.
        let result = f(unsafe { &mut *ffi::aegisfs_vfs_bh_data(bh).cast_mut().cast() });
        // SAFETY: We locked the buffer above.
        unsafe { ffi::aegisfs_vfs_unlock_buffer(bh) };
        result
    }

    /// Starts writing the block to the device (dirty or not); with `flush_fua`, after a
    /// cache flush and with forced unit access. [`BufferHead::wait_write`] waits.
    pub(crate) fn submit_write(&self, flush_fua: bool) {
        // SAFETY: By the type invariants `bh` is a referenced, up-to-date buffer head.
        unsafe { ffi::aegisfs_vfs_submit_write(self.bh.as_ptr(), flush_fua) }
    }

    /// Waits for a write started by [`BufferHead::submit_write`]; EIO if it failed.
    pub(crate) fn wait_write(&self) -> Result {
        // SAFETY: By the type invariants `bh` is a referenced buffer head.
        if unsafe { ffi::aegisfs_vfs_wait_write(self.bh.as_ptr()) } < 0 {
            return Err(EIO);
        }
        Ok(())
    }

    /// Calls `f` with the block's bytes under the buffer lock.
    pub(crate) fn read_locked<R>(&self, f: impl FnOnce(&[u8; BLOCK_SIZE]) -> R) -> R {
        // SAFETY: By the type invariants `bh` is a referenced buffer head.
        unsafe { ffi::aegisfs_vfs_lock_buffer(self.bh.as_ptr()) };
        // SAFETY: The buffer is up to date and referenced; writers hold the buffer lock we
        // hold, so the bytes do not change while `f` runs.
        let result = f(unsafe { &*ffi::aegisfs_vfs_bh_data(self.bh.as_ptr()).cast() });
        // SAFETY: We locked the buffer above.
        unsafe { ffi::aegisfs_vfs_unlock_buffer(self.bh.as_ptr()) };
        result
    }

    /// Changes the block with `f` under the buffer lock and marks it dirty; with `owner`,
    /// the block is metadata of that inode and written by its `fsync`.
    ///
    /// The buffer lock also keeps writeback from sending the block to the device while it
    /// is half changed, so the block on disk always matches its own checksum.
    pub(crate) fn modify<R>(
        &self,
        owner: Option<&Inode>,
        f: impl FnOnce(&mut [u8; BLOCK_SIZE]) -> R,
    ) -> R {
        let bh = self.bh.as_ptr();
        // SAFETY: By the type invariants `bh` is a referenced buffer head.
        unsafe { ffi::aegisfs_vfs_lock_buffer(bh) };
        // SAFETY: The buffer is up to date and referenced, and we hold its lock: no other
        // writer and no I/O touches the bytes while `f` runs (readers follow the rule of
        // `data`).
        let result = f(unsafe { &mut *ffi::aegisfs_vfs_bh_data(bh).cast_mut().cast() });
        let mmb = owner.map_or(core::ptr::null_mut(), |inode| inode.mmb_ptr());
        // SAFETY: We locked the buffer above; `mmb` is null or the live list of `owner`.
        unsafe {
            ffi::aegisfs_vfs_unlock_buffer(bh);
            ffi::aegisfs_vfs_dirty_buffer(bh, mmb);
        }
        result
    }

    /// Writes the block to the device now if it is dirty, and waits.
    pub(crate) fn sync(&self) -> Result {
        // SAFETY: By the type invariants `bh` is a referenced buffer head.
        let ret = unsafe { ffi::aegisfs_vfs_sync_buffer(self.bh.as_ptr()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Whether the checksum of this block as `kind` was already verified.
    pub(crate) fn is_verified(&self, kind: Verified) -> bool {
        // SAFETY: By the type invariants `bh` is a referenced buffer head.
        unsafe { ffi::aegisfs_vfs_buffer_verified(self.bh.as_ptr(), kind as u32) }
    }

    /// Records that the checksum of this block as `kind` is correct.
    pub(crate) fn set_verified(&self, kind: Verified) {
        // SAFETY: By the type invariants `bh` is a referenced buffer head; the bit is set
        // atomically.
        unsafe { ffi::aegisfs_vfs_set_buffer_verified(self.bh.as_ptr(), kind as u32) }
    }
}

impl Clone for BufferHead {
    fn clone(&self) -> Self {
        // SAFETY: By the type invariants `bh` is a referenced buffer head.
        unsafe { ffi::aegisfs_vfs_get_bh(self.bh.as_ptr()) };
        // INVARIANT: We took a new reference on the same up-to-date buffer.
        Self { bh: self.bh }
    }
}

impl Drop for BufferHead {
    fn drop(&mut self) {
        // SAFETY: By the type invariants this object owns one reference on `bh`.
        unsafe { ffi::aegisfs_vfs_brelse(self.bh.as_ptr()) }
    }
}

/// The buffer head the page cache passes to `get_block`, to be mapped to disk blocks.
///
/// # Invariants
///
/// `bh` points to a valid `buffer_head` that the caller of `get_block` lets us fill in.
pub(crate) struct MapBuffer {
    bh: NonNull<bindings::buffer_head>,
}

impl MapBuffer {
    /// Wraps the `bh_result` of a `get_block` call.
    ///
    /// # Safety
    ///
    /// `bh` must be valid for reads and writes until the returned object is dropped.
    pub(crate) unsafe fn from_raw(bh: *mut bindings::buffer_head) -> Option<Self> {
        // INVARIANT: The caller guarantees `bh` stays valid while the object exists.
        NonNull::new(bh).map(|bh| Self { bh })
    }

    /// How many blocks the caller would like mapped at once (at least 1).
    pub(crate) fn wanted_blocks(&self) -> u64 {
        // SAFETY: By the type invariants `bh` is valid.
        let size = unsafe { ffi::aegisfs_vfs_bh_size(self.bh.as_ptr()) };
        (size / BLOCK_SIZE_U64).max(1)
    }

    /// The logical block after the last one of the folio the buffer belongs to (0 for a
    /// buffer outside the page cache, as `mpage` passes).
    pub(crate) fn folio_end_block(&self) -> u64 {
        // SAFETY: By the type invariants `bh` is valid.
        unsafe { ffi::aegisfs_vfs_bh_folio_end(self.bh.as_ptr()) }
    }

    /// Maps the buffer to `count` contiguous blocks from `block` on the device of `sb`;
    /// `new` blocks were just allocated (the page cache zeroes what is not written).
    ///
    /// # Safety
    ///
    /// `sb` must be the live superblock the buffer's inode belongs to.
    pub(crate) unsafe fn map(
        &mut self,
        sb: *mut bindings::super_block,
        block: u64,
        count: u64,
        new: bool,
    ) {
        let size = count.saturating_mul(BLOCK_SIZE_U64);
        // SAFETY: By the type invariants `bh` is valid; the caller guarantees `sb`.
        unsafe { ffi::aegisfs_vfs_map_bh(self.bh.as_ptr(), sb, block, size) };
        if new {
            // SAFETY: By the type invariants `bh` is valid.
            unsafe { ffi::aegisfs_vfs_set_buffer_new(self.bh.as_ptr()) };
        }
    }
}

/// Runs `f` with the current task's block requests plugged: what `f` submits for adjacent
/// blocks leaves as fewer, larger requests when the plug is released at its end. Writes must
/// be waited for after this returns, not inside `f`.
pub(crate) fn plugged<R>(f: impl FnOnce() -> R) -> R {
    let mut plug: bindings::blk_plug = pin_init::zeroed();
    // SAFETY: `plug` stays in this frame, unmoved, until `blk_finish_plug` below releases it
    // in the same task (a plug already held by the task makes both calls no-ops).
    unsafe { bindings::blk_start_plug(&mut plug) };
    let result = f();
    // SAFETY: Started above in this task.
    unsafe { bindings::blk_finish_plug(&mut plug) };
    result
}
