// SPDX-License-Identifier: GPL-2.0

//! Regular files: size changes, failed writes and the end of a writer.

use super::blockmap;
use super::shift;
use crate::disk::BLOCK_SIZE_U64;
use crate::vfs::inode::Inode;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// Changes the size of `inode` (truncate): shrinking zeroes the rest of the new last block
/// and frees the blocks past it, including preallocated ones; growing leaves a hole. A
/// truncate to the current size frees the blocks preallocated past it, as ext4's does.
pub(crate) fn set_size(inode: &Inode, size: u64) -> Result {
    let old = inode.size();
    if size == old && inode.blocks_512() == 0 {
        return Ok(());
    }
    let shrink = size <= old;
    inode.dio_wait();
    if shrink {
        if size % BLOCK_SIZE_U64 != 0 {
            // Up to the old size only: the page cache would grow the file to the end.
            zero_partial_blocks(inode, size, size.next_multiple_of(BLOCK_SIZE_U64), old)?;
        }
        // A truncate may take several transactions: a crash in between is finished at the
        // next mount.
        let _handle = super::journal::start(inode.sb())?;
        super::orphan::add(inode)?;
    }
    {
        let _lock = inode.invalidate_lock();
        inode.truncate_pagecache(size);
        if shrink {
            blockmap::truncate_blocks(inode, size.div_ceil(BLOCK_SIZE_U64))?;
        }
    }
    let _handle = super::journal::start(inode.sb())?;
    if shrink {
        super::orphan::remove(inode)?;
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

/// `write_begin` of a buffered write ending at byte `end`: runs `begin` (the page cache's
/// part, which allocates blocks through [`get_block_write`]) in a handle that stays open
/// until [`write_end`], so that the blocks and the new size commit together. After ENOSPC,
/// when blocks freed by the running transaction would become usable, commits and tries
/// once more.
pub(crate) fn write_begin(inode: &Inode, end: u64, mut begin: impl FnMut() -> Result) -> Result {
    let sb = inode.sb();
    let mut retried = false;
    loop {
        let info = inode.info();
        info.write_whole_end
            .store(end / BLOCK_SIZE_U64, Ordering::Relaxed);
        info.fresh_end.store(0, Ordering::Relaxed);
        let handle = super::journal::start(sb)?;
        match begin() {
            Ok(()) => {
                let token = handle.detach();
                inode.info().write_nofs.store(token, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) => {
                drop(handle);
                write_failed(inode, end);
                if e == ENOSPC && !retried && super::journal::should_retry_alloc(sb) {
                    super::journal::commit(sb)?;
                    retried = true;
                    continue;
                }
                return Err(e);
            }
        }
    }
}

/// `write_end`: ends the handle `write_begin` opened; `short` when less than asked was
/// copied, so that blocks allocated past the size go again.
pub(crate) fn write_end(inode: &Inode, end: u64, short: bool) {
    let token = inode.info().write_nofs.load(Ordering::Relaxed);
    drop(super::journal::resume(inode.sb(), token));
    if short {
        write_failed(inode, end);
    }
}

/// The `get_block` of `write_begin` for logical block `lblk`, in a folio that ends before
/// block `folio_end`. A hole is allocated together with the holes after it that the write
/// overwrites whole in that folio, in one allocation (one bitmap and one indirect block
/// change, where one block at a time would change them for every block). The page cache
/// asks for those blocks next: they are reported new, as if allocated then, so that what
/// the write does not copy after all (a short copy) is zeroed, never read from the disk.
/// Only the writer holding the inode lock uses the `fresh` range, and only within the
/// folio it has locked, so nothing can map those blocks elsewhere meanwhile.
pub(crate) fn get_block_write(
    inode: &Inode,
    lblk: u64,
    folio_end: u64,
) -> Result<Option<blockmap::Mapped>> {
    let info = inode.info();
    let fresh_start = info.fresh_start.load(Ordering::Relaxed);
    if (fresh_start..info.fresh_end.load(Ordering::Relaxed)).contains(&lblk) {
        return Ok(Some(blockmap::Mapped {
            start: info.fresh_block.load(Ordering::Relaxed) + (lblk - fresh_start),
            count: 1,
            new: true,
        }));
    }
    let whole_end = info.write_whole_end.load(Ordering::Relaxed).min(folio_end);
    let max = whole_end.saturating_sub(lblk).max(1);
    let Some(run) = blockmap::get_blocks(inode, lblk, max, true)? else {
        return Ok(None);
    };
    if run.new && run.count > 1 {
        info.fresh_block.store(run.start + 1, Ordering::Relaxed);
        info.fresh_start.store(lblk + 1, Ordering::Relaxed);
        info.fresh_end.store(lblk + run.count, Ordering::Relaxed);
    }
    // The buffer is one block of its folio.
    Ok(Some(blockmap::Mapped { count: 1, ..run }))
}

/// An `O_DIRECT` write of bytes `pos..pos + len` completed: its UNWRITTEN blocks
/// (`unwritten`) become written and the size grows to its end, in one transaction.
///
/// iomap completes a pure overwrite (nothing UNWRITTEN, within the size) from the bio's
/// completion, in interrupt context: that case must return before anything that sleeps.
pub(crate) fn dio_write_done(inode: &Inode, pos: u64, len: u64, unwritten: bool) -> Result {
    let end = pos.saturating_add(len);
    if !unwritten && end <= inode.size() {
        return Ok(());
    }
    let _handle = super::journal::start(inode.sb())?;
    if unwritten && len > 0 {
        blockmap::convert_unwritten(inode, pos / BLOCK_SIZE_U64, end.div_ceil(BLOCK_SIZE_U64))?;
    }
    if end > inode.size() {
        inode.set_size(end);
        inode.mark_dirty();
    }
    Ok(())
}

/// The last writer of `inode` closes it: blocks allocated ahead are given back.
pub(crate) fn release(inode: &Inode) -> Result {
    blockmap::discard_prealloc(inode, &mut inode.map_write())
}

/// Refuses writes to an immutable file through a descriptor opened before `chattr +i`
/// (opening it for writing fails already), and to an active swap file with ETXTBSY, in
/// ext4's order: the VFS's own check (`generic_write_checks`) would come only after the
/// alignment check of `O_DIRECT`.
pub(crate) fn check_write(inode: &Inode) -> Result {
    if inode.sb().info().is_shutdown() {
        return Err(EIO);
    }
    if inode.is_immutable() {
        return Err(EPERM);
    }
    if inode.is_swapfile() {
        return Err(ETXTBSY);
    }
    Ok(())
}

/// What [`iomap_map`] found at a logical block.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoMapKind {
    /// Not allocated: reads as zeros.
    Hole,
    /// Written blocks.
    Mapped,
    /// Allocated but not written (`fallocate`): reads as zeros.
    Unwritten,
}

/// A mapping for direct I/O: `count` blocks from the asked-for logical block, on disk from
/// `pblk` (not for a hole); `new` when just allocated or converted from UNWRITTEN (the
/// parts the write does not cover must be zeroed).
pub(crate) struct IoMap {
    pub(crate) kind: IoMapKind,
    pub(crate) pblk: u64,
    pub(crate) count: u64,
    pub(crate) new: bool,
}

/// The part of extent `e` (which holds logical block `lblk`) from `lblk` on, at most `max`
/// blocks.
fn extent_map(e: &blockmap::Extent, lblk: u64, max: u64, new: bool) -> IoMap {
    let skip = lblk.saturating_sub(e.lblk);
    IoMap {
        kind: if e.unwritten {
            IoMapKind::Unwritten
        } else {
            IoMapKind::Mapped
        },
        pblk: e.pblk + skip,
        count: (e.count - skip.min(e.count)).clamp(1, max),
        new,
    }
}

/// Maps logical block `lblk` and up to `max` - 1 following blocks for direct I/O and for
/// swapon. A write allocates holes and turns UNWRITTEN blocks into written ones (the VFS
/// zeroes what it does not write of them); otherwise (a read, or swapon's report) holes and
/// UNWRITTEN extents are reported as they are and nothing changes.
pub(crate) fn iomap_map(inode: &Inode, lblk: u64, max: u64, write: bool) -> Result<IoMap> {
    let max = max.max(1);
    if write {
        if let Some(run) = blockmap::map_blocks(inode, lblk, max)? {
            return Ok(IoMap {
                kind: IoMapKind::Mapped,
                pblk: run.start,
                count: run.count.min(max),
                new: false,
            });
        }
        // A hole or UNWRITTEN blocks: written as UNWRITTEN blocks, converted when the I/O
        // has completed (`dio_write_done`), so a crash before that reads zeros, never the
        // blocks' previous contents.
        let end = lblk.saturating_add(max);
        let hole_end = match blockmap::next_extent(inode, lblk, end)? {
            Some(e) if e.lblk <= lblk && e.unwritten => lblk + (e.count - (lblk - e.lblk)),
            Some(e) if e.lblk > lblk => e.lblk,
            Some(_) => lblk + 1,
            None => end,
        };
        blockmap::alloc_unwritten(inode, lblk, hole_end.min(end).max(lblk + 1), 0..0)?;
        let e = blockmap::next_extent(inode, lblk, lblk + 1)?.ok_or(EIO)?;
        return Ok(extent_map(&e, lblk, max, true));
    }
    let end = lblk.saturating_add(max);
    let hole = |count: u64| IoMap {
        kind: IoMapKind::Hole,
        pblk: 0,
        count,
        new: false,
    };
    Ok(match blockmap::next_extent(inode, lblk, end)? {
        Some(e) if e.lblk <= lblk => extent_map(&e, lblk, max, false),
        Some(e) => hole((e.lblk - lblk).min(max)),
        None => hole(max),
    })
}

/// `fallocate` flags (include/uapi/linux/falloc.h).
pub(crate) const FALLOC_FL_KEEP_SIZE: u32 = 0x01;
pub(crate) const FALLOC_FL_PUNCH_HOLE: u32 = 0x02;
pub(crate) const FALLOC_FL_ZERO_RANGE: u32 = 0x10;
pub(crate) const FALLOC_FL_COLLAPSE_RANGE: u32 = 0x08;
pub(crate) const FALLOC_FL_INSERT_RANGE: u32 = 0x20;

/// `fallocate` of a regular file, called with the inode lock held; `modified` updates the
/// times and drops set-user-ID bits (`file_modified`) once the request is checked.
///
/// - mode 0 and `KEEP_SIZE`: allocates UNWRITTEN blocks for the holes of the range,
///   growing the size to its end unless `KEEP_SIZE` (after ENOSPC the blocks allocated
///   stay, past the unchanged size);
/// - `PUNCH_HOLE | KEEP_SIZE`: frees the whole blocks of the range and zeroes the rest;
/// - `ZERO_RANGE`: the whole blocks of the range become UNWRITTEN (allocated where they
///   were holes), the partial blocks are zeroed; the size grows unless `KEEP_SIZE`;
/// - `COLLAPSE_RANGE`, `INSERT_RANGE` (whole blocks only): remove the range and move what
///   follows down, or move what follows its start up, leaving a hole (see [`shift_range`]).
pub(crate) fn fallocate(
    inode: &Inode,
    mode: u32,
    offset: i64,
    len: i64,
    modified: impl FnOnce() -> Result,
) -> Result {
    let keep = mode & FALLOC_FL_KEEP_SIZE != 0;
    let op = mode & !FALLOC_FL_KEEP_SIZE;
    match op {
        0 | FALLOC_FL_ZERO_RANGE => {}
        FALLOC_FL_PUNCH_HOLE if keep => {}
        FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE if !keep => {}
        _ => return Err(EOPNOTSUPP),
    }
    let offset = u64::try_from(offset).map_err(|_| EINVAL)?;
    let len = u64::try_from(len).map_err(|_| EINVAL)?;
    if len == 0 {
        return Err(EINVAL);
    }
    if inode.is_immutable() || (op != 0 && inode.is_append()) {
        return Err(EPERM);
    }
    let end = offset.checked_add(len).ok_or(EFBIG)?;
    if end > inode.max_bytes() {
        return Err(EFBIG);
    }
    if op == FALLOC_FL_COLLAPSE_RANGE || op == FALLOC_FL_INSERT_RANGE {
        return shift_range(inode, op == FALLOC_FL_INSERT_RANGE, offset, len, modified);
    }
    let grow = !keep && end > inode.size();
    if grow {
        inode.newsize_ok(end)?;
    }
    inode.dio_wait();
    modified()?;
    let first = offset / BLOCK_SIZE_U64;
    let last = end.div_ceil(BLOCK_SIZE_U64);
    match op {
        FALLOC_FL_PUNCH_HOLE => punch_hole(inode, offset, end)?,
        FALLOC_FL_ZERO_RANGE => zero_range(inode, offset, end, grow)?,
        _ => blockmap::alloc_unwritten(inode, first, last, 0..0)?,
    }
    if grow && end > inode.size() {
        let _lock = inode.invalidate_lock();
        inode.truncate_pagecache(end);
    }
    if op != 0 {
        inode.touch(true);
    }
    inode.mark_dirty();
    Ok(())
}

/// `FALLOC_FL_COLLAPSE_RANGE` (bytes `offset..offset + len` removed, the rest of the file
/// moved down, the size smaller by `len`) or, with `insert`, `FALLOC_FL_INSERT_RANGE` (the
/// file from `offset` moved up by `len`, leaving a hole). Both as ext4: whole blocks only
/// (EINVAL), the range must end before the end of the file (collapse) or start inside it
/// (insert), EFBIG past the maximum size. Blocks move in several transactions: a crash in
/// the middle leaves a consistent filesystem but the file partly shifted.
fn shift_range(
    inode: &Inode,
    insert: bool,
    offset: u64,
    len: u64,
    modified: impl FnOnce() -> Result,
) -> Result {
    if !inode.info().unwritten_ok {
        return Err(EOPNOTSUPP);
    }
    if offset % BLOCK_SIZE_U64 != 0 || len % BLOCK_SIZE_U64 != 0 {
        return Err(EINVAL);
    }
    let size = inode.size();
    let new_size = if insert {
        if offset >= size {
            return Err(EINVAL);
        }
        size.checked_add(len).ok_or(EFBIG)?
    } else {
        if offset + len >= size {
            return Err(EINVAL);
        }
        size - len
    };
    if new_size > inode.max_bytes() {
        return Err(EFBIG);
    }
    inode.dio_wait();
    modified()?;
    // Everything from `offset` moves: its pages go to disk first and then out of the cache.
    inode.write_and_wait(offset, u64::MAX)?;
    let _lock = inode.invalidate_lock();
    inode.truncate_pagecache_range(offset, u64::MAX);
    let (first, n) = (offset / BLOCK_SIZE_U64, len / BLOCK_SIZE_U64);
    if insert {
        {
            let _handle = super::journal::start(inode.sb())?;
            inode.set_size(new_size);
            inode.mark_dirty();
        }
        shift::shift_blocks(inode, first, n, true)?;
    } else {
        blockmap::free_blocks_range(inode, first, first + n)?;
        shift::shift_blocks(inode, first + n, n, false)?;
        let _handle = super::journal::start(inode.sb())?;
        inode.truncate_pagecache(new_size);
    }
    let _handle = super::journal::start(inode.sb())?;
    inode.touch(true);
    inode.mark_dirty();
    Ok(())
}

/// The blocks wholly inside bytes `start..end`.
fn whole_blocks(start: u64, end: u64) -> core::ops::Range<u64> {
    start.div_ceil(BLOCK_SIZE_U64)..end / BLOCK_SIZE_U64
}

/// Zeroes, in the page cache, the parts of bytes `start..end` (below `limit`) that lie in
/// blocks the range covers only partly, where those blocks hold written data.
fn zero_partial_blocks(inode: &Inode, start: u64, end: u64, limit: u64) -> Result {
    let head = start / BLOCK_SIZE_U64;
    let tail = (end - 1) / BLOCK_SIZE_U64;
    let mut parts = [None, None];
    if start % BLOCK_SIZE_U64 != 0 || (head == tail && end % BLOCK_SIZE_U64 != 0) {
        parts[0] = Some((start, end.min((head + 1) * BLOCK_SIZE_U64)));
    }
    if end % BLOCK_SIZE_U64 != 0 && tail != head {
        parts[1] = Some((tail * BLOCK_SIZE_U64, end));
    }
    for (a, b) in parts.into_iter().flatten() {
        let b = b.min(limit);
        if a >= b {
            continue;
        }
        // Holes and UNWRITTEN blocks read as zeros already.
        if blockmap::map_blocks(inode, a / BLOCK_SIZE_U64, 1)?.is_some() {
            inode.zero_cached(a, b - a)?;
        }
    }
    Ok(())
}

/// `FALLOC_FL_PUNCH_HOLE`: frees the whole blocks of bytes `start..end` (the page cache
/// dropped first) and zeroes the partial ones.
fn punch_hole(inode: &Inode, start: u64, end: u64) -> Result {
    // Data written through mmap over a hole gets its block at writeback: do that first.
    inode.write_and_wait(start, end - 1)?;
    let _lock = inode.invalidate_lock();
    zero_partial_blocks(inode, start, end, inode.size())?;
    let whole = whole_blocks(start, end);
    if whole.start < whole.end {
        inode
            .truncate_pagecache_range(whole.start * BLOCK_SIZE_U64, whole.end * BLOCK_SIZE_U64 - 1);
        blockmap::free_blocks_range(inode, whole.start, whole.end)?;
    }
    Ok(())
}

/// `FALLOC_FL_ZERO_RANGE`: the whole blocks of bytes `start..end` become UNWRITTEN (the
/// page cache dropped first), holes among all the blocks the range touches are allocated
/// UNWRITTEN, and the partial blocks are zeroed in the page cache (up to the new size with
/// `grow`).
fn zero_range(inode: &Inode, start: u64, end: u64, grow: bool) -> Result {
    inode.write_and_wait(start, end - 1)?;
    let _lock = inode.invalidate_lock();
    let limit = if grow { end } else { inode.size() };
    zero_partial_blocks(inode, start, end, limit)?;
    let whole = whole_blocks(start, end);
    if whole.start < whole.end {
        inode
            .truncate_pagecache_range(whole.start * BLOCK_SIZE_U64, whole.end * BLOCK_SIZE_U64 - 1);
    }
    blockmap::alloc_unwritten(
        inode,
        start / BLOCK_SIZE_U64,
        end.div_ceil(BLOCK_SIZE_U64),
        whole,
    )
}
