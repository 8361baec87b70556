// SPDX-License-Identifier: GPL-2.0

//! Buffer heads: metadata blocks read through the block device's page cache.

use super::ffi;
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
        let bh = NonNull::new(bh).ok_or(EIO)?;
        // SAFETY: `sb_bread` returned a referenced, up-to-date buffer of the superblock's
        // block size.
        let size = unsafe { ffi::aegisfs_vfs_bh_size(bh.as_ptr()) };
        let buffer = Self { bh };
        if size != BLOCK_SIZE_U64 {
            return Err(EIO);
        }
        // INVARIANT: `buffer` holds the reference `sb_bread` took; its size was just checked.
        Ok(buffer)
    }

    /// The block's bytes.
    pub(crate) fn data(&self) -> &[u8; BLOCK_SIZE] {
        // SAFETY: By the type invariants the buffer is referenced and up to date, so `b_data`
        // points to `BLOCK_SIZE` readable bytes that stay mapped until `drop`. The filesystem
        // is read-only, so the kernel does not write them while this borrow lives.
        unsafe { &*ffi::aegisfs_vfs_bh_data(self.bh.as_ptr()).cast::<[u8; BLOCK_SIZE]>() }
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

    /// Maps the buffer to `count` contiguous blocks from `block` on the device of `sb`.
    ///
    /// # Safety
    ///
    /// `sb` must be the live superblock the buffer's inode belongs to.
    pub(crate) unsafe fn map(&mut self, sb: *mut bindings::super_block, block: u64, count: u64) {
        let size = count.saturating_mul(BLOCK_SIZE_U64);
        // SAFETY: By the type invariants `bh` is valid; the caller guarantees `sb`.
        unsafe { ffi::aegisfs_vfs_map_bh(self.bh.as_ptr(), sb, block, size) }
    }
}
