// SPDX-License-Identifier: GPL-2.0

//! Mapping logical blocks of a file to disk blocks through the indirect trees.

use super::inode::InodeInfo;
use super::superblock::inode_corruption;
use crate::blockmap::{BlockPath, DIND_START, IND_START, PTR_UNWRITTEN, TIND_START};
use crate::disk::{IndirectBlock, BLOCK_SIZE_U64, MAX_FILE_BLOCKS, PTRS_PER_BLOCK_U64};
use crate::error::FormatError;
use crate::vfs::buffer::{BufferHead, Verified};
use crate::vfs::inode::Inode;
use kernel::prelude::*;

/// Contiguous disk blocks backing contiguous logical blocks.
pub(crate) struct BlockRun {
    pub(crate) start: u64,
    pub(crate) count: u64,
}

/// The disk blocks on the walk from the inode to a data block, to catch loops.
#[derive(Default)]
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

/// The direct pointers from the slot a depth-0 block path names.
fn direct_ptrs<'a>(info: &'a InodeInfo, offsets: &[u16]) -> impl Iterator<Item = u64> + 'a {
    let start = usize::from(offsets.first().copied().unwrap_or(0));
    info.direct.iter().skip(start).copied()
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
    let mut walk = WalkPath::default();
    let offsets = block_path.used_offsets();

    if block_path.depth == 0 {
        let mut ptrs = direct_ptrs(info, offsets);
        return match ptrs.next() {
            None => Ok(None),
            Some(first) => map_leaf(inode, &walk, first, max, ptrs),
        };
    }

    let root_index = usize::from(block_path.depth - 1);
    let mut block = info.tree_roots.get(root_index).copied().unwrap_or(0);
    for (level, &offset) in offsets.iter().enumerate() {
        if block == 0 {
            return Ok(None);
        }
        let bh = read_indirect(inode, &mut walk, block)?;
        let indirect = IndirectBlock::from_block(bh.data());
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

/// Mapped logical blocks `lblk..lblk + count`, on disk at `pblk..pblk + count`, all written
/// or all UNWRITTEN (allocated, reading as zeros).
pub(crate) struct Extent {
    pub(crate) lblk: u64,
    pub(crate) pblk: u64,
    pub(crate) count: u64,
    pub(crate) unwritten: bool,
}

/// What a walk from the root to a leaf found: an extent, or the first logical block after
/// the absent or empty subtree it met.
enum Step {
    Found(Extent),
    Skip(u64),
}

/// Checks a data (last level) pointer that is not 0: its block and UNWRITTEN flag.
fn check_data_ptr(inode: &Inode, path: &WalkPath, raw: u64) -> Result<(u64, bool)> {
    if raw & PTR_UNWRITTEN != 0 && inode.info().unwritten_ok {
        let block = raw & !PTR_UNWRITTEN;
        check_ptr(inode, path, block)?;
        return Ok((block, true));
    }
    check_ptr(inode, path, raw)?;
    Ok((raw, false))
}

/// The first mapped pointer of `ptrs` (that of logical block `lblk` first) below logical
/// block `end`, extended over the following pointers that continue it on disk with the same
/// flag; `Skip` past the last pointer when all are holes.
fn scan_leaf(
    inode: &Inode,
    path: &WalkPath,
    lblk: u64,
    end: u64,
    ptrs: &mut dyn Iterator<Item = u64>,
) -> Result<Step> {
    let mut cur = lblk;
    let mut found: Option<Extent> = None;
    for raw in ptrs {
        if cur >= end {
            break;
        }
        match &mut found {
            None if raw == 0 => {}
            None => {
                let (pblk, unwritten) = check_data_ptr(inode, path, raw)?;
                found = Some(Extent {
                    lblk: cur,
                    pblk,
                    count: 1,
                    unwritten,
                });
            }
            Some(ext) => {
                if raw == 0 {
                    break;
                }
                let (pblk, unwritten) = check_data_ptr(inode, path, raw)?;
                if unwritten != ext.unwritten || ext.pblk.checked_add(ext.count) != Some(pblk) {
                    break;
                }
                ext.count = ext.count.saturating_add(1);
            }
        }
        cur = cur.saturating_add(1);
    }
    Ok(match found {
        Some(ext) => Step::Found(ext),
        None => Step::Skip(cur),
    })
}

/// Reads indirect block `block` (checked, and added to `walk`), verifying its checksum.
fn read_indirect(inode: &Inode, walk: &mut WalkPath, block: u64) -> Result<BufferHead> {
    check_ptr(inode, walk, block)?;
    walk.push(block);
    let sb = inode.sb();
    let bh = sb.bread(block)?;
    if !bh.is_verified(Verified::Indirect) {
        let info = inode.info();
        IndirectBlock::from_block(bh.data())
            .verify_checksum(
                sb.info().geometry().checksum_seed(),
                inode.ino(),
                info.generation,
            )
            .map_err(|e| inode_corruption(inode, e.msg()))?;
        bh.set_verified(Verified::Indirect);
    }
    Ok(bh)
}

/// One walk from the inode towards logical block `lblk` (< `end`).
fn find_from(inode: &Inode, lblk: u64, end: u64) -> Result<Step> {
    let Some(block_path) = BlockPath::of(lblk) else {
        return Ok(Step::Skip(end));
    };
    let info = inode.info();
    let mut walk = WalkPath::default();
    let offsets = block_path.used_offsets();
    if block_path.depth == 0 {
        let mut ptrs = direct_ptrs(info, offsets);
        return scan_leaf(inode, &walk, lblk, end, &mut ptrs);
    }
    let depth = u32::from(block_path.depth);
    let (range_start, range_end) = match depth {
        1 => (IND_START, DIND_START),
        2 => (DIND_START, TIND_START),
        _ => (TIND_START, MAX_FILE_BLOCKS),
    };
    let rel = lblk.saturating_sub(range_start);
    let root_index = usize::from(block_path.depth - 1);
    let mut block = info.tree_roots.get(root_index).copied().unwrap_or(0);
    if block == 0 {
        return Ok(Step::Skip(range_end));
    }
    for (level, &offset) in offsets.iter().enumerate() {
        let bh = read_indirect(inode, &mut walk, block)?;
        let indirect = IndirectBlock::from_block(bh.data());
        let offset = usize::from(offset);
        if level + 1 == offsets.len() {
            let mut ptrs = indirect.ptrs.iter().skip(offset).map(|p| p.get());
            return scan_leaf(inode, &walk, lblk, end, &mut ptrs);
        }
        block = indirect.ptr(offset).unwrap_or(0);
        if block == 0 {
            // The absent subtree maps 511^k blocks, k the levels below this pointer.
            let levels_below = u32::try_from(offsets.len() - level - 1).unwrap_or(0);
            let span = PTRS_PER_BLOCK_U64.saturating_pow(levels_below).max(1);
            let next = (rel / span).saturating_add(1).saturating_mul(span);
            return Ok(Step::Skip(range_start.saturating_add(next)));
        }
    }
    Ok(Step::Skip(end))
}

/// The first mapped extent (written or UNWRITTEN) at or after logical block `lblk` and
/// starting below `end`, skipping absent subtrees whole; it ends at a leaf's end or `end`.
pub(crate) fn next_extent(inode: &Inode, mut lblk: u64, end: u64) -> Result<Option<Extent>> {
    let end = end.min(MAX_FILE_BLOCKS);
    while lblk < end {
        match find_from(inode, lblk, end)? {
            Step::Found(ext) => return Ok(Some(ext)),
            Step::Skip(next) => lblk = next.max(lblk.saturating_add(1)),
        }
        crate::vfs::cond_resched();
    }
    Ok(None)
}

/// `lseek(SEEK_DATA)` (`data`) or `lseek(SEEK_HOLE)` from byte `offset`: the new position,
/// or `ENXIO` at or past the end and when no data follows. UNWRITTEN blocks are holes.
pub(crate) fn seek_data_hole(inode: &Inode, offset: i64, data: bool) -> Result<i64> {
    let size = inode.size();
    let off = u64::try_from(offset).map_err(|_| ENXIO)?;
    if off >= size {
        return Err(ENXIO);
    }
    let end = size.div_ceil(BLOCK_SIZE_U64);
    let mut lblk = off / BLOCK_SIZE_U64;
    let pos = loop {
        let ext = next_extent(inode, lblk, end)?;
        match ext {
            // Skip UNWRITTEN extents looking for data, written ones looking for a hole.
            Some(e) if e.unwritten == data && (data || e.lblk == lblk) => {
                lblk = e.lblk.saturating_add(e.count)
            }
            Some(e) if data => break off.max(e.lblk.saturating_mul(BLOCK_SIZE_U64)),
            None if data => return Err(ENXIO),
            // A hole at `lblk` (the next extent starts later, or none is left: the virtual
            // hole at the end of the file).
            _ => break off.max(lblk.saturating_mul(BLOCK_SIZE_U64)).min(size),
        }
    };
    i64::try_from(pos).map_err(|_| EOVERFLOW)
}

/// `FIEMAP` over bytes `start..start + len`: calls `emit` with each extent of contiguous
/// disk blocks (the last one of the file with `true`) until it returns `true` (full).
pub(crate) fn fiemap(
    inode: &Inode,
    start: u64,
    len: u64,
    mut emit: impl FnMut(&Extent, bool) -> Result<bool>,
) -> Result {
    let file_end = inode.size().div_ceil(BLOCK_SIZE_U64);
    let range_end = start.saturating_add(len).div_ceil(BLOCK_SIZE_U64);
    let mut lblk = start / BLOCK_SIZE_U64;
    let mut pending: Option<Extent> = None;
    loop {
        let next = next_extent(inode, lblk, file_end)?;
        let Some(e) = next else {
            if let Some(p) = &pending {
                emit(p, true)?;
            }
            return Ok(());
        };
        lblk = e.lblk.saturating_add(e.count);
        if let Some(p) = &mut pending {
            if p.lblk.saturating_add(p.count) == e.lblk
                && p.pblk.checked_add(p.count) == Some(e.pblk)
                && p.unwritten == e.unwritten
            {
                p.count = p.count.saturating_add(e.count);
                continue;
            }
        }
        if e.lblk >= range_end {
            // More of the file is mapped past the range: the last extent reported is not
            // the file's last.
            if let Some(p) = &pending {
                emit(p, false)?;
            }
            return Ok(());
        }
        if let Some(p) = pending.replace(e) {
            if emit(&p, false)? {
                return Ok(());
            }
        }
    }
}
