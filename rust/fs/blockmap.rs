// SPDX-License-Identifier: GPL-2.0

//! Mapping logical blocks of a file to disk blocks through the indirect trees.

use super::superblock::inode_corruption;
use crate::blockmap::{BlockPath, PTR_UNWRITTEN};
use crate::disk::{IndirectBlock, BLOCK_SIZE_U64};
use crate::error::FormatError;
use crate::vfs::buffer::Verified;
use crate::vfs::inode::Inode;
use kernel::prelude::*;

/// Contiguous disk blocks backing contiguous logical blocks.
pub(crate) struct BlockRun {
    pub(crate) start: u64,
    pub(crate) count: u64,
}

/// The disk blocks on the walk from the inode to a data block, to catch loops.
struct WalkPath {
    blocks: [u64; 3],
    len: usize,
}

impl WalkPath {
    fn contains(&self, block: u64) -> bool {
        self.blocks.iter().take(self.len).any(|&b| b == block)
    }

    fn push(&mut self, block: u64) {
        if let Some(slot) = self.blocks.get_mut(self.len) {
            *slot = block;
            self.len += 1;
        }
    }
}

/// Checks a block pointer read from the inode or an indirect block.
fn check_ptr(inode: &Inode, path: &WalkPath, block: u64) -> Result {
    if block & PTR_UNWRITTEN != 0 {
        return Err(inode_corruption(inode, FormatError::UnwrittenPointer.msg()));
    }
    if !inode.sb().info().geometry().is_data_block(block) {
        return Err(inode_corruption(
            inode,
            "block pointer outside the data area",
        ));
    }
    if path.contains(block) {
        return Err(inode_corruption(inode, "indirect block loop"));
    }
    Ok(())
}

/// Maps a data (last level) pointer `first` and the pointers after it: `None` for a hole
/// or, in a regular file, an UNWRITTEN pointer (both read as zeros). An UNWRITTEN pointer
/// anywhere else is corruption ([`check_ptr`]).
fn map_leaf(
    inode: &Inode,
    path: &WalkPath,
    first: u64,
    max: u64,
    ptrs: impl Iterator<Item = u64>,
) -> Result<Option<BlockRun>> {
    if first == 0 {
        return Ok(None);
    }
    if first & PTR_UNWRITTEN != 0 && inode.info().unwritten_ok {
        // Allocated but not written: the block number must still be valid.
        check_ptr(inode, path, first & !PTR_UNWRITTEN)?;
        return Ok(None);
    }
    extend_run(inode, path, first, max, ptrs).map(Some)
}

/// Extends a run starting at `first` (pointer `0` of `ptrs`) over the following pointers
/// while they continue it on disk, up to `max` blocks.
fn extend_run(
    inode: &Inode,
    path: &WalkPath,
    first: u64,
    max: u64,
    mut ptrs: impl Iterator<Item = u64>,
) -> Result<BlockRun> {
    check_ptr(inode, path, first)?;
    let mut count = 1u64;
    while count < max {
        let Some(next) = first.checked_add(count) else {
            break;
        };
        if ptrs.next() != Some(next) {
            break;
        }
        check_ptr(inode, path, next)?;
        count += 1;
    }
    Ok(BlockRun {
        start: first,
        count,
    })
}

/// Maps logical block `lblk` of `inode`, and up to `max` following blocks when they are
/// contiguous on disk. `None` is a hole or an UNWRITTEN block of a regular file, which read
/// as zeros (and which `FIBMAP` reports as 0).
pub(crate) fn map_blocks(inode: &Inode, lblk: u64, max: u64) -> Result<Option<BlockRun>> {
    let Some(block_path) = BlockPath::of(lblk) else {
        return Ok(None);
    };
    let max = max.min(block_path.run_in_leaf()).max(1);
    let info = inode.info();
    let mut walk = WalkPath {
        blocks: [0; 3],
        len: 0,
    };
    let offsets = block_path.used_offsets();

    if block_path.depth == 0 {
        let start = usize::from(offsets.first().copied().unwrap_or(0));
        let mut ptrs = info.direct.iter().skip(start).copied();
        return match ptrs.next() {
            None => Ok(None),
            Some(first) => map_leaf(inode, &walk, first, max, ptrs),
        };
    }

    let sb = inode.sb();
    let geo = sb.info().geometry();
    let root_index = usize::from(block_path.depth - 1);
    let mut block = info.tree_roots.get(root_index).copied().unwrap_or(0);
    for (level, &offset) in offsets.iter().enumerate() {
        if block == 0 {
            return Ok(None);
        }
        check_ptr(inode, &walk, block)?;
        walk.push(block);
        let bh = sb.bread(block)?;
        let indirect = IndirectBlock::from_block(bh.data());
        if !bh.is_verified(Verified::Indirect) {
            indirect
                .verify_checksum(geo.checksum_seed(), inode.ino(), info.generation)
                .map_err(|e| inode_corruption(inode, e.msg()))?;
            bh.set_verified(Verified::Indirect);
        }
        let offset = usize::from(offset);
        if level + 1 == offsets.len() {
            let mut ptrs = indirect.ptrs.iter().skip(offset).map(|p| p.get());
            return match ptrs.next() {
                None => Ok(None),
                Some(first) => map_leaf(inode, &walk, first, max, ptrs),
            };
        }
        block = indirect.ptr(offset).unwrap_or(0);
    }
    Ok(None)
}

/// Checks that logical blocks `first..first + count` of `inode` (those below its size) map
/// without error.
pub(crate) fn check_range(inode: &Inode, first: u64, count: u64) -> Result {
    let end = first
        .saturating_add(count)
        .min(inode.size().div_ceil(BLOCK_SIZE_U64));
    let mut lblk = first;
    while lblk < end {
        let step = match map_blocks(inode, lblk, end - lblk)? {
            Some(run) => run.count,
            None => 1,
        };
        lblk = lblk.saturating_add(step.max(1));
    }
    Ok(())
}

/// Maps the blocks of a directory (which has no holes), keeping the last contiguous run so
/// that a walk over the directory maps each run once instead of each block.
pub(crate) struct DirMap<'a> {
    dir: &'a Inode,
    blocks: u64,
    /// The last run and the directory block index it starts at.
    run: Option<(u64, BlockRun)>,
}

impl<'a> DirMap<'a> {
    pub(crate) fn new(dir: &'a Inode) -> Self {
        Self {
            dir,
            blocks: dir.size() / BLOCK_SIZE_U64,
            run: None,
        }
    }

    /// The disk block of block `index` of the directory.
    pub(crate) fn block(&mut self, index: u64) -> Result<u64> {
        if let Some((first, run)) = &self.run {
            if let Some(offset) = index.checked_sub(*first).filter(|&o| o < run.count) {
                // Every block of a run was checked to be a data block, so this is one.
                return Ok(run.start + offset);
            }
        }
        let wanted = self.blocks.saturating_sub(index).max(1);
        match map_blocks(self.dir, index, wanted)? {
            Some(run) => {
                let start = run.start;
                self.run = Some((index, run));
                Ok(start)
            }
            None => Err(inode_corruption(self.dir, "hole in a directory")),
        }
    }
}
