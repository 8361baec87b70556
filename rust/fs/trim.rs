// SPDX-License-Identifier: GPL-2.0

//! FITRIM (batched discard): the free blocks of a byte range of the filesystem are discarded,
//! group by group, with the checks and the arithmetic of ext4's `ext4_trim_fs`.
//!
//! Only blocks free in the bitmaps are discarded, never the blocks before the first group
//! (superblock, descriptors, journal) nor a group's bitmaps and inode table. The walk itself
//! (`alloc::trim_group`) keeps each run away from allocations while it is discarded and skips
//! blocks freed by a transaction that is not committed yet.

use crate::disk::{BLOCKS_PER_GROUP, BLOCK_SIZE_U64};
use crate::vfs::super_block::SuperBlock;
use kernel::prelude::*;

/// `struct fstrim_range`, in bytes.
pub(crate) struct TrimRange {
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) minlen: u64,
}

/// Discards the free runs of at least `range.minlen` bytes (and at least the device's discard
/// `granularity`) that lie in `range.start..range.start + range.len`; returns how many bytes
/// were discarded. EINVAL, as ext4, when the start is past the filesystem, the length is
/// shorter than a block or the minimum length is longer than a group. A fatal signal ends the
/// walk early with what was discarded so far.
pub(crate) fn trim_fs(sb: &SuperBlock, range: &TrimRange, granularity: u32) -> Result<u64> {
    let info = sb.info();
    if info.is_shutdown() {
        return Err(EIO);
    }
    let geo = info.geometry();
    let blocks = geo.blocks_count();
    let group_blocks = u64::from(BLOCKS_PER_GROUP);
    let start = range.start / BLOCK_SIZE_U64;
    let mut minlen = range.minlen / BLOCK_SIZE_U64;
    if minlen > group_blocks || start >= blocks || range.len < BLOCK_SIZE_U64 {
        return Err(EINVAL);
    }
    // Less than the device's granularity cannot be discarded anyway.
    if range.minlen < u64::from(granularity) {
        minlen = u64::from(granularity) / BLOCK_SIZE_U64;
        if minlen > group_blocks {
            return Ok(0);
        }
    }
    // At most BLOCKS_PER_GROUP (checked above).
    let minlen = u32::try_from(minlen.max(1)).map_err(|_| EINVAL)?;
    let end = start.saturating_add(range.len / BLOCK_SIZE_U64).min(blocks);
    let start = start.max(geo.first_group_block());
    if start >= end {
        return Ok(0);
    }
    let (Some((first_group, first_index)), Some((last_group, last_index))) =
        (geo.group_of_block(start), geo.group_of_block(end - 1))
    else {
        return Ok(0);
    };
    // Runs are recorded with the bitmap locked; memory for that must not come from reclaim
    // that writes to this filesystem.
    let nofs = crate::vfs::nofs_save();
    let result = (|| -> Result<u64> {
        let mut trimmed = 0u64;
        for g in first_group..=last_group {
            if crate::vfs::should_stop() {
                break;
            }
            let from = if g == first_group { first_index } else { 0 };
            let to = if g == last_group {
                last_index.saturating_add(1)
            } else {
                BLOCKS_PER_GROUP
            };
            trimmed = trimmed.saturating_add(super::alloc::trim_group(sb, g, from, to, minlen)?);
            crate::vfs::cond_resched();
        }
        Ok(trimmed)
    })();
    crate::vfs::nofs_restore(nofs);
    Ok(result?.saturating_mul(BLOCK_SIZE_U64))
}
