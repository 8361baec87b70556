// SPDX-License-Identifier: GPL-2.0

//! Regular files: size changes, failed writes and the end of a writer.

use super::blockmap;
use crate::disk::BLOCK_SIZE_U64;
use crate::vfs::inode::Inode;
use kernel::prelude::*;

/// Changes the size of `inode` (truncate): shrinking zeroes the rest of the new last block
/// and frees the blocks past it, including preallocated ones; growing leaves a hole.
pub(crate) fn set_size(inode: &Inode, size: u64) -> Result {
    let old = inode.size();
    inode.dio_wait();
    if size < old {
        inode.zero_tail_block(size)?;
    }
    {
        let _lock = inode.invalidate_lock();
        inode.truncate_pagecache(size);
        if size < old {
            blockmap::truncate_blocks(inode, size.div_ceil(BLOCK_SIZE_U64))?;
        }
    }
    inode.touch(true);
    inode.mark_dirty();
    Ok(())
}

/// After a write that failed or copied less than it asked for: blocks allocated past the
/// size are freed again.
pub(crate) fn write_failed(inode: &Inode, end: u64) {
    let size = inode.size();
    if end > size {
        let _lock = inode.invalidate_lock();
        inode.truncate_pagecache(size);
        // An error here was logged where it was found; the write reports its own.
        let _ = blockmap::truncate_blocks(inode, size.div_ceil(BLOCK_SIZE_U64));
    }
}

/// The last writer of `inode` closes it: blocks allocated ahead are given back.
pub(crate) fn release(inode: &Inode) -> Result {
    blockmap::discard_prealloc(inode, &mut inode.map_write())
}
