// SPDX-License-Identifier: GPL-2.0

//! Mapping logical blocks of a file to disk blocks through the indirect trees.

use super::alloc;
use super::inode::{BlockPtrs, Prealloc};
use super::superblock::inode_corruption;
use crate::blockmap::{BlockPath, DIND_START, IND_START, PTR_UNWRITTEN, TIND_START};
use crate::disk::{IndirectBlock, BLOCK_SIZE_U64, MAX_FILE_BLOCKS, PTRS_PER_BLOCK_U64};
use crate::error::FormatError;
use crate::vfs::buffer::{plugged, BufferHead, Verified};
use crate::vfs::inode::{Inode, MapWrite};
use kernel::prelude::*;

/// Contiguous disk blocks backing contiguous logical blocks.
pub(crate) struct BlockRun {
    pub(crate) start: u64,
    pub(crate) count: u64,
}

/// The disk blocks on the walk from the inode to a data block, to catch loops.
#[derive(Default)]
pub(super) struct WalkPath {
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
fn direct_ptrs<'a>(map: &'a BlockPtrs, offsets: &[u16]) -> impl Iterator<Item = u64> + 'a {
    let start = usize::from(offsets.first().copied().unwrap_or(0));
    map.direct.iter().skip(start).copied()
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
    map_in(inode, &inode.map_read(), lblk, max)
}

/// [`map_blocks`] with the block map lock held.
fn map_in(inode: &Inode, map: &BlockPtrs, lblk: u64, max: u64) -> Result<Option<BlockRun>> {
    let Some(block_path) = BlockPath::of(lblk) else {
        return Ok(None);
    };
    let max = max.min(block_path.run_in_leaf()).max(1);
    let mut walk = WalkPath::default();
    let offsets = block_path.used_offsets();

    if block_path.depth == 0 {
        let mut ptrs = direct_ptrs(map, offsets);
        return match ptrs.next() {
            None => Ok(None),
            Some(first) => map_leaf(inode, &walk, first, max, ptrs),
        };
    }

    let root_index = usize::from(block_path.depth - 1);
    let mut block = map.roots.get(root_index).copied().unwrap_or(0);
    for (level, &offset) in offsets.iter().enumerate() {
        if block == 0 {
            return Ok(None);
        }
        let (bh, first_use) = read_indirect_checked(inode, &mut walk, block)?;
        let indirect = IndirectBlock::from_block(bh.data());
        let offset = usize::from(offset);
        if level + 1 == offsets.len() {
            let mut ptrs = indirect.ptrs.iter().skip(offset).map(|p| p.get());
            return match ptrs.next() {
                None => Ok(None),
                Some(first) => map_leaf(inode, &walk, first, max, ptrs),
            };
        }
        if first_use {
            readahead_children(inode, indirect);
        }
        block = indirect.ptr(offset).unwrap_or(0);
    }
    Ok(None)
}

/// Starts reading the indirect blocks that `indirect` (itself an indirect block read just
/// now) points to. The walk needs one of them now and, whether the file is read in order
/// or at random, most of the others soon: read one at a time when first needed, each is a
/// wait of its own (a quarter of the cold random reads of a 1 GiB file waited for one),
/// where read together they leave as one batch of requests.
fn readahead_children(inode: &Inode, indirect: &IndirectBlock) {
    let sb = inode.sb();
    let geo = sb.info().geometry();
    plugged(|| {
        let mut run: Option<(u64, u32)> = None;
        for block in indirect.ptrs.iter().map(|p| p.get()) {
            // A bad pointer is left for `read_indirect` to report if a walk takes it.
            if !geo.is_data_block(block) {
                continue;
            }
            run = match run {
                Some((first, count)) if first + u64::from(count) == block => {
                    Some((first, count + 1))
                }
                _ => {
                    if let Some((first, count)) = run {
                        sb.readahead(first, count);
                    }
                    Some((block, 1))
                }
            };
        }
        if let Some((first, count)) = run {
            sb.readahead(first, count);
        }
    });
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

/// Most blocks a [`DirMap`] maps at once, once a walk goes block after block: it then maps
/// each run of this many once.
const DIR_RUN_MAX: u64 = 16;

/// Maps the blocks of a directory (which has no holes). A walk block after block maps a run
/// at a time and keeps it; any other access maps the one block it asks for, as a lookup
/// needs one block of each level of the index, and checking the pointers after it (up to
/// [`DIR_RUN_MAX`]) would only learn a run it does not use.
pub(crate) struct DirMap<'a> {
    dir: &'a Inode,
    blocks: u64,
    /// The last run and the directory block index it starts at.
    run: Option<(u64, BlockRun)>,
    /// The block after the one asked for last.
    next: u64,
}

impl<'a> DirMap<'a> {
    pub(crate) fn new(dir: &'a Inode) -> Self {
        Self {
            dir,
            blocks: dir.size() / BLOCK_SIZE_U64,
            run: None,
            next: u64::MAX,
        }
    }

    /// The disk block of block `index` of the directory.
    pub(crate) fn block(&mut self, index: u64) -> Result<u64> {
        let sequential = index == self.next;
        self.next = index.saturating_add(1);
        if let Some((first, run)) = &self.run {
            if let Some(offset) = index.checked_sub(*first).filter(|&o| o < run.count) {
                // Every block of a run was checked to be a data block, so this is one.
                return Ok(run.start + offset);
            }
        }
        let wanted = if sequential {
            self.blocks.saturating_sub(index).clamp(1, DIR_RUN_MAX)
        } else {
            1
        };
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
pub(super) fn check_data_ptr(inode: &Inode, path: &WalkPath, raw: u64) -> Result<(u64, bool)> {
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
    read_indirect_checked(inode, walk, block).map(|(bh, _)| bh)
}

/// [`read_indirect`], also saying whether this read is the block's first use since it
/// entered the cache (its checksum was verified now).
fn read_indirect_checked(
    inode: &Inode,
    walk: &mut WalkPath,
    block: u64,
) -> Result<(BufferHead, bool)> {
    check_ptr(inode, walk, block)?;
    walk.push(block);
    let sb = inode.sb();
    let bh = sb.bread(block)?;
    if bh.is_verified(Verified::Indirect) {
        return Ok((bh, false));
    }
    let info = inode.info();
    IndirectBlock::from_block(bh.data())
        .verify_checksum(
            sb.info().geometry().checksum_seed(),
            inode.ino(),
            info.generation,
        )
        .map_err(|e| inode_corruption(inode, e.msg()))?;
    bh.set_verified(Verified::Indirect);
    Ok((bh, true))
}

/// One walk from the inode towards logical block `lblk` (< `end`).
fn find_from(inode: &Inode, lblk: u64, end: u64) -> Result<Step> {
    let Some(block_path) = BlockPath::of(lblk) else {
        return Ok(Step::Skip(end));
    };
    let map = inode.map_read();
    let mut walk = WalkPath::default();
    let offsets = block_path.used_offsets();
    if block_path.depth == 0 {
        let mut ptrs = direct_ptrs(&map, offsets);
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
    let mut block = map.roots.get(root_index).copied().unwrap_or(0);
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
/// Blocks past the size count too: `fallocate(FALLOC_FL_KEEP_SIZE)` leaves UNWRITTEN ones
/// there, and ext4 reports them.
pub(crate) fn fiemap(
    inode: &Inode,
    start: u64,
    len: u64,
    mut emit: impl FnMut(&Extent, bool) -> Result<bool>,
) -> Result {
    let range_end = start.saturating_add(len).div_ceil(BLOCK_SIZE_U64);
    let mut lblk = start / BLOCK_SIZE_U64;
    let mut pending: Option<Extent> = None;
    loop {
        let next = next_extent(inode, lblk, MAX_FILE_BLOCKS)?;
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

/// Blocks allocated ahead of a file written sequentially (2 MiB), so that parallel writers
/// each get long contiguous runs.
const PREALLOC_BLOCKS: u64 = 512;

/// The result of `get_block`: mapped blocks, `new` when just allocated (or converted from
/// UNWRITTEN), which the page cache must zero where it does not write.
pub(crate) struct Mapped {
    pub(crate) start: u64,
    pub(crate) count: u64,
    pub(crate) new: bool,
}

/// Maps logical block `lblk` (and up to `max` following blocks) of `inode`; with `create`,
/// allocates what is a hole or UNWRITTEN. `None`: a hole, without `create`.
pub(crate) fn get_blocks(
    inode: &Inode,
    lblk: u64,
    max: u64,
    create: bool,
) -> Result<Option<Mapped>> {
    let map = |run: BlockRun| Mapped {
        start: run.start,
        count: run.count,
        new: false,
    };
    if let Some(run) = map_blocks(inode, lblk, max)? {
        return Ok(Some(map(run)));
    }
    if !create {
        return Ok(None);
    }
    let _handle = super::journal::start(inode.sb())?;
    let mut ptrs = inode.map_write();
    if let Some(run) = map_in(inode, &ptrs, lblk, max)? {
        return Ok(Some(map(run)));
    }
    let mapped = allocate(inode, &mut ptrs, lblk, max);
    finish_changes(inode, ptrs);
    mapped.map(Some)
}

/// Releases the block map lock, then has the inode logged if its pointers changed (the
/// inode is copied under that lock, so not while it is held).
pub(crate) fn finish_changes(inode: &Inode, mut map: MapWrite<'_>) {
    let changed = core::mem::take(&mut map.changed);
    drop(map);
    if changed {
        inode.mark_dirty();
    }
}

/// Where a leaf's pointers are: the inode's direct pointers or an indirect block.
pub(super) enum Leaf {
    Direct,
    Indirect(BufferHead),
}

impl Leaf {
    pub(super) fn ptr(&self, map: &BlockPtrs, index: usize) -> u64 {
        match self {
            Leaf::Direct => map.direct.get(index).copied().unwrap_or(0),
            Leaf::Indirect(bh) => IndirectBlock::from_block(bh.data()).ptr(index).unwrap_or(0),
        }
    }

    /// Sets pointers `index..` to `values`.
    pub(super) fn set(
        &self,
        inode: &Inode,
        map: &mut BlockPtrs,
        index: usize,
        values: impl Iterator<Item = u64>,
    ) {
        match self {
            Leaf::Direct => {
                for (slot, v) in map.direct.iter_mut().skip(index).zip(values) {
                    *slot = v;
                }
                map.changed = true;
            }
            Leaf::Indirect(bh) => set_indirect_ptrs(inode, bh, index, values),
        }
    }
}

/// Sets pointers `index..` of indirect block `bh` of `inode` to `values`.
fn set_indirect_ptrs(
    inode: &Inode,
    bh: &BufferHead,
    index: usize,
    values: impl Iterator<Item = u64>,
) {
    let seed = inode.sb().info().geometry().checksum_seed();
    let generation = inode.info().generation;
    super::journal::modify(inode.sb(), &bh, Some(inode), |data| {
        let ind = IndirectBlock::from_block_mut(data);
        for (i, v) in (index..).zip(values) {
            ind.set_ptr(i, v);
        }
        ind.update_checksum(seed, inode.ino(), generation);
    });
}

/// The block a new block of `inode` should be allocated near: after its last allocation,
/// else at the start of the data area of its inode's group.
fn goal(inode: &Inode, map: &BlockPtrs) -> u64 {
    if map.goal != 0 {
        return map.goal;
    }
    let geo = inode.sb().info().geometry();
    let group = geo.inode_group(inode.ino()).map_or(0, |(g, _)| g);
    geo.first_data_block(group).unwrap_or(0)
}

/// Allocates a zeroed indirect block for `inode`, at the end of its inode's group.
fn alloc_indirect(inode: &Inode, map: &BlockPtrs) -> Result<u64> {
    let sb = inode.sb();
    let geo = sb.info().geometry();
    let group = geo.inode_group(inode.ino()).map_or(0, |(g, _)| g);
    let goal_block = match geo.group_of_block(goal(inode, map)) {
        Some((g, _)) if g != group => goal(inode, map),
        _ => geo.first_data_block(group).unwrap_or(0),
    };
    let (block, _) = alloc::alloc_blocks(sb, goal_block, 1, true)?;
    let seed = geo.checksum_seed();
    let generation = inode.info().generation;
    let bh = match sb.new_block(block) {
        Ok(bh) => bh,
        Err(e) => {
            alloc::free_blocks(sb, block, 1)?;
            return Err(e);
        }
    };
    super::journal::modify(inode.sb(), &bh, Some(inode), |data| {
        IndirectBlock::from_block_mut(data).update_checksum(seed, inode.ino(), generation);
    });
    bh.set_verified(Verified::Indirect);
    inode.account_blocks(1, true);
    Ok(block)
}

/// Gives the blocks allocated ahead of `inode` back.
pub(crate) fn discard_prealloc(inode: &Inode, map: &mut BlockPtrs) -> Result {
    let pa = core::mem::take(&mut map.prealloc);
    if pa.count > 0 {
        alloc::release_reservation(inode.sb(), pa.pblk, pa.count);
    }
    Ok(())
}

/// Allocates `want` (at least 1) data blocks for logical blocks from `lblk`, contiguous on
/// disk; returns the first and the count.
fn alloc_data(inode: &Inode, map: &mut BlockPtrs, lblk: u64, want: u64) -> Result<(u64, u64)> {
    let sb = inode.sb();
    let pa = map.prealloc;
    if pa.count > 0 && pa.lblk == lblk {
        let n = alloc::take_reserved(sb, pa.pblk, want.min(pa.count))?;
        if n > 0 {
            map.prealloc = Prealloc {
                lblk: lblk + n,
                pblk: pa.pblk + n,
                count: pa.count - n,
            };
            map.next_lblk = lblk + n;
            map.goal = pa.pblk + n;
            return Ok((pa.pblk, n));
        }
    }
    discard_prealloc(inode, map)?;
    let sequential = inode.info().unwritten_ok && lblk != 0 && lblk == map.next_lblk;
    let info = sb.info();
    // Near a full disk, blocks held ahead by open files would turn into early ENOSPC.
    let free = info.free_blocks.load(core::sync::atomic::Ordering::Relaxed);
    let ahead = sequential && free > 64 * PREALLOC_BLOCKS;
    let (start, n) = alloc::alloc_blocks(sb, goal(inode, map), want, false)?;
    map.goal = start + n;
    map.next_lblk = lblk + n;
    if ahead {
        let count = alloc::reserve_after(sb, start + n, PREALLOC_BLOCKS)?;
        if count > 0 {
            map.prealloc = Prealloc {
                lblk: lblk + n,
                pblk: start + n,
                count,
            };
        }
    }
    Ok((start, n))
}

/// The index of `path`'s pointer in its leaf.
pub(super) fn leaf_index(path: &BlockPath) -> usize {
    usize::from(path.used_offsets().last().copied().unwrap_or(0))
}

/// The leaf holding the pointer of the block `block_path` leads to, allocating the missing
/// indirect blocks on the way.
pub(super) fn leaf_for(
    inode: &Inode,
    map: &mut BlockPtrs,
    block_path: &BlockPath,
    walk: &mut WalkPath,
) -> Result<Leaf> {
    if block_path.depth == 0 {
        return Ok(Leaf::Direct);
    }
    let offsets = block_path.used_offsets();
    let root_index = usize::from(block_path.depth - 1);
    let mut parent: Option<(BufferHead, usize)> = None;
    let mut block = map.roots.get(root_index).copied().unwrap_or(0);
    let mut leaf = None;
    for (level, &offset) in offsets.iter().enumerate() {
        if block == 0 {
            block = alloc_indirect(inode, map)?;
            map.changed = true;
            match &parent {
                None => {
                    if let Some(root) = map.roots.get_mut(root_index) {
                        *root = block;
                    }
                }
                Some((bh, index)) => set_indirect_ptrs(inode, bh, *index, core::iter::once(block)),
            }
        }
        let bh = read_indirect(inode, walk, block)?;
        let offset = usize::from(offset);
        if level + 1 == offsets.len() {
            leaf = Some(Leaf::Indirect(bh));
            break;
        }
        block = IndirectBlock::from_block(bh.data())
            .ptr(offset)
            .unwrap_or(0);
        parent = Some((bh, offset));
    }
    leaf.ok_or(EUCLEAN)
}

/// Allocates (or converts from UNWRITTEN) blocks for the hole at `lblk`, and up to `max`
/// following holes in the same leaf.
fn allocate(inode: &Inode, map: &mut BlockPtrs, lblk: u64, max: u64) -> Result<Mapped> {
    let block_path = BlockPath::of(lblk).ok_or(EFBIG)?;
    let max = max.min(block_path.run_in_leaf()).max(1);
    let mut walk = WalkPath::default();
    let leaf = leaf_for(inode, map, &block_path, &mut walk)?;
    let index = leaf_index(&block_path);
    let first = leaf.ptr(map, index);
    let max_usize = usize::try_from(max).unwrap_or(usize::MAX);
    if inode.info().unwritten_ok {
        // The data written into these blocks reaches the disk before the transaction that
        // maps them commits.
        super::journal::add_ordered(inode.sb(), inode);
    }
    if first & PTR_UNWRITTEN != 0 {
        // Preallocated: the blocks become written; the page cache zeroes what the write
        // does not cover.
        let start = first & !PTR_UNWRITTEN;
        check_ptr(inode, &walk, start)?;
        let mut count = 1u64;
        while usize::try_from(count).unwrap_or(usize::MAX) < max_usize
            && leaf.ptr(map, index + count as usize) == (start + count) | PTR_UNWRITTEN
        {
            count += 1;
        }
        leaf.set(inode, map, index, (0..count).map(|i| start + i));
        return Ok(Mapped {
            start,
            count,
            new: true,
        });
    }
    let limit = max_usize.min(leaf_len(&leaf).saturating_sub(index));
    let mut want = 1usize;
    while want < limit && leaf.ptr(map, index + want) == 0 {
        want += 1;
    }
    let (start, count) = alloc_data(inode, map, lblk, want as u64)?;
    leaf.set(inode, map, index, (0..count).map(|i| start + i));
    inode.account_blocks(count, true);
    map.changed = true;
    Ok(Mapped {
        start,
        count,
        new: true,
    })
}

/// Written pointers [`alloc_unwritten`] converts at once.
const CONVERT_BATCH: u64 = 64;

/// Preallocates logical blocks `start..end` of a regular file (`fallocate`): holes get
/// UNWRITTEN blocks (allocated, reading as zeros, accounted in `i_blocks`), and written
/// blocks in `convert` become UNWRITTEN (their contents read as zeros from then on). On an
/// error (ENOSPC) the blocks allocated so far stay, mapped and accounted.
pub(crate) fn alloc_unwritten(
    inode: &Inode,
    start: u64,
    end: u64,
    convert: core::ops::Range<u64>,
) -> Result {
    if !inode.info().unwritten_ok {
        return Err(EOPNOTSUPP);
    }
    if end > MAX_FILE_BLOCKS {
        return Err(EFBIG);
    }
    let sb = inode.sb();
    let mut handle = super::journal::start(sb)?;
    discard_prealloc(inode, &mut inode.map_write())?;
    let mut lblk = start;
    while lblk < end {
        let mut map = inode.map_write();
        let block_path = BlockPath::of(lblk).ok_or(EFBIG)?;
        let mut walk = WalkPath::default();
        let leaf = leaf_for(inode, &mut map, &block_path, &mut walk)?;
        let index = leaf_index(&block_path);
        let n = (end - lblk).min(block_path.run_in_leaf());
        let mut i = 0u64;
        while i < n {
            let slot = index + i as usize;
            let ptr = leaf.ptr(&map, slot);
            // The run of pointers like this one: holes, or written blocks to convert.
            let hole = ptr == 0;
            let to_convert =
                |p: u64, l: u64| p != 0 && p & PTR_UNWRITTEN == 0 && convert.contains(&l);
            if !hole && !to_convert(ptr, lblk + i) {
                if ptr & PTR_UNWRITTEN != 0 {
                    check_ptr(inode, &walk, ptr & !PTR_UNWRITTEN)?;
                }
                i += 1;
                continue;
            }
            let mut run = 1u64;
            while i + run < n {
                let next = leaf.ptr(&map, slot + run as usize);
                let same = if hole {
                    next == 0
                } else {
                    run < CONVERT_BATCH && to_convert(next, lblk + i + run)
                };
                if !same {
                    break;
                }
                run += 1;
            }
            if hole {
                let (first, got) = alloc::alloc_blocks(inode.sb(), goal(inode, &map), run, false)?;
                let got = got.min(run);
                map.goal = first + got;
                leaf.set(
                    inode,
                    &mut map,
                    slot,
                    (0..got).map(|k| (first + k) | PTR_UNWRITTEN),
                );
                inode.account_blocks(got, true);
                map.changed = true;
                i += got.max(1);
            } else {
                let mut blocks = [0u64; CONVERT_BATCH as usize];
                for (k, b) in blocks.iter_mut().enumerate().take(run as usize) {
                    let p = leaf.ptr(&map, slot + k);
                    check_ptr(inode, &walk, p)?;
                    *b = p | PTR_UNWRITTEN;
                }
                leaf.set(
                    inode,
                    &mut map,
                    slot,
                    blocks.iter().take(run as usize).copied(),
                );
                i += run;
            }
        }
        lblk += n;
        drop(leaf);
        finish_changes(inode, map);
        // One leaf at a time, each complete: a long range takes several transactions.
        handle.restart(sb)?;
        crate::vfs::cond_resched();
    }
    Ok(())
}

fn leaf_len(leaf: &Leaf) -> usize {
    match leaf {
        Leaf::Direct => crate::disk::N_DIRECT,
        Leaf::Indirect(_) => crate::disk::PTRS_PER_BLOCK,
    }
}

/// Collects freed blocks into contiguous runs and frees each run at once.
struct Freer<'a> {
    inode: &'a Inode,
    run: Option<(u64, u64)>,
    total: u64,
    /// A directory's blocks are metadata in the device's cache: a dirty copy must not be
    /// written after the block found a new user.
    forget: bool,
    /// Leaf indirect blocks still to process before stopping (a transaction's worth).
    budget: u32,
    /// The walk stopped because the budget ran out.
    stopped: bool,
}

impl<'a> Freer<'a> {
    fn new(inode: &'a Inode) -> Self {
        Self {
            inode,
            run: None,
            total: 0,
            forget: inode.mode() & crate::disk::S_IFMT == crate::disk::S_IFDIR,
            budget: u32::MAX,
            stopped: false,
        }
    }

    fn add(&mut self, block: u64) -> Result {
        self.total += 1;
        if self.forget {
            super::journal::forget_metadata(self.inode.sb(), block);
        }
        if let Some((start, count)) = &mut self.run {
            if *start + *count == block {
                *count += 1;
                return Ok(());
            }
        }
        self.flush()?;
        self.run = Some((block, 1));
        Ok(())
    }

    fn flush(&mut self) -> Result {
        if let Some((start, count)) = self.run.take() {
            alloc::free_blocks(self.inode.sb(), start, count)?;
        }
        Ok(())
    }

    /// Frees what is pending and accounts the freed blocks in the inode.
    fn finish(mut self) -> Result {
        let result = self.flush();
        self.inode.account_blocks(self.total, false);
        result
    }
}

/// Frees the blocks of logical blocks `start..end` under an indirect block `block` that
/// maps logical blocks from `base`, `levels` levels above the data. Returns whether the
/// block maps nothing any more.
fn free_subtree(
    inode: &Inode,
    walk: &mut WalkPath,
    freer: &mut Freer<'_>,
    block: u64,
    levels: u32,
    base: u64,
    start: u64,
    end: u64,
) -> Result<bool> {
    let bh = read_indirect(inode, walk, block)?;
    let span = PTRS_PER_BLOCK_U64.saturating_pow(levels - 1);
    let mut cleared = [0u64; 8];
    let mut any_cleared = false;
    // The block only changes under the block map lock, which we hold.
    let ind = IndirectBlock::from_block(bh.data());
    for i in 0..crate::disk::PTRS_PER_BLOCK {
        let ptr = ind.ptr(i).unwrap_or(0);
        let child_lo = base.saturating_add((i as u64).saturating_mul(span));
        let child_hi = child_lo.saturating_add(span);
        if ptr == 0 || child_hi <= start || child_lo >= end {
            continue;
        }
        let free_child = if levels == 1 {
            let data = if ptr & PTR_UNWRITTEN != 0 && inode.info().unwritten_ok {
                ptr & !PTR_UNWRITTEN
            } else {
                ptr
            };
            check_ptr(inode, walk, data)?;
            freer.add(data)?;
            true
        } else {
            if freer.budget == 0 {
                freer.stopped = true;
                break;
            }
            let empty = free_subtree(inode, walk, freer, ptr, levels - 1, child_lo, start, end)?;
            if levels == 2 {
                freer.budget = freer.budget.saturating_sub(1);
            }
            if empty {
                super::journal::forget_metadata(inode.sb(), ptr);
                freer.add(ptr)?;
            }
            empty
        };
        if free_child {
            cleared[i / 64] |= 1 << (i % 64);
            any_cleared = true;
        }
        crate::vfs::cond_resched();
        if freer.stopped {
            break;
        }
    }
    walk.len = walk.len.saturating_sub(1);
    let is_cleared = |i: usize| cleared[i / 64] & (1 << (i % 64)) != 0;
    let empty =
        (0..crate::disk::PTRS_PER_BLOCK).all(|i| ind.ptr(i).unwrap_or(0) == 0 || is_cleared(i));
    if any_cleared && !empty {
        let seed = inode.sb().info().geometry().checksum_seed();
        let generation = inode.info().generation;
        super::journal::modify(inode.sb(), &bh, Some(inode), |data| {
            let ind = IndirectBlock::from_block_mut(data);
            for i in 0..crate::disk::PTRS_PER_BLOCK {
                if is_cleared(i) {
                    ind.set_ptr(i, 0);
                }
            }
            ind.update_checksum(seed, inode.ino(), generation);
        });
    }
    Ok(empty)
}

/// Frees the blocks mapping logical blocks `start..end` of `inode` (data, UNWRITTEN and
/// indirect blocks that end up mapping nothing), and the blocks allocated ahead.
pub(crate) fn free_range(inode: &Inode, map: &mut BlockPtrs, start: u64, end: u64) -> Result {
    free_range_budget(inode, map, start, end, u32::MAX).map(|_| ())
}

/// [`free_range`] that stops after `budget` leaf indirect blocks, with the block map
/// consistent; returns whether it finished.
fn free_range_budget(
    inode: &Inode,
    map: &mut BlockPtrs,
    start: u64,
    end: u64,
    budget: u32,
) -> Result<bool> {
    discard_prealloc(inode, map)?;
    let mut freer = Freer::new(inode);
    freer.budget = budget;
    let result = free_range_in(inode, map, &mut freer, start, end);
    let stopped = freer.stopped;
    let finished = freer.finish();
    map.next_lblk = 0;
    result.and(finished).map(|()| !stopped)
}

fn free_range_in(
    inode: &Inode,
    map: &mut BlockPtrs,
    freer: &mut Freer<'_>,
    start: u64,
    end: u64,
) -> Result {
    let walk = WalkPath::default();
    for i in start..end.min(IND_START) {
        let Some(slot) = map.direct.get_mut(i as usize) else {
            break;
        };
        let ptr = *slot;
        if ptr == 0 {
            continue;
        }
        let data = if ptr & PTR_UNWRITTEN != 0 && inode.info().unwritten_ok {
            ptr & !PTR_UNWRITTEN
        } else {
            ptr
        };
        check_ptr(inode, &walk, data)?;
        freer.add(data)?;
        *slot = 0;
    }
    let ranges = [
        (IND_START, DIND_START, 1u32),
        (DIND_START, TIND_START, 2),
        (TIND_START, MAX_FILE_BLOCKS, 3),
    ];
    for (index, &(lo, hi, levels)) in ranges.iter().enumerate() {
        let root = map.roots[index];
        if root == 0 || hi <= start || lo >= end {
            continue;
        }
        let mut walk = WalkPath::default();
        if free_subtree(inode, &mut walk, freer, root, levels, lo, start, end)? {
            super::journal::forget_metadata(inode.sb(), root);
            freer.add(root)?;
            map.roots[index] = 0;
        }
        if freer.stopped {
            break;
        }
    }
    map.changed = true;
    Ok(())
}

/// Leaf indirect blocks (each up to 511 data blocks) freed per transaction.
const FREE_LEAVES_PER_TRANSACTION: u32 = 256;

/// Frees the blocks of logical blocks `start..end` of `inode`, in as many transactions as it
/// takes (each leaves the block map consistent).
pub(crate) fn free_blocks_range(inode: &Inode, start: u64, end: u64) -> Result {
    let sb = inode.sb();
    let mut handle = super::journal::start(sb)?;
    loop {
        let mut map = inode.map_write();
        let finished = free_range_budget(inode, &mut map, start, end, FREE_LEAVES_PER_TRANSACTION);
        finish_changes(inode, map);
        let finished = finished?;
        if finished {
            return Ok(());
        }
        // With the block map lock released: other handles may need it to finish.
        handle.restart(sb)?;
    }
}

/// Frees every block of `inode` from logical block `from` on (truncate).
pub(crate) fn truncate_blocks(inode: &Inode, from: u64) -> Result {
    free_blocks_range(inode, from, MAX_FILE_BLOCKS)?;
    if from == 0 {
        inode.map_write().goal = 0;
    }
    Ok(())
}

/// Makes the UNWRITTEN blocks of logical blocks `start..end` written (their data is on disk).
pub(crate) fn convert_unwritten(inode: &Inode, start: u64, end: u64) -> Result {
    let mut lblk = start;
    while lblk < end {
        let mut map = inode.map_write();
        let block_path = BlockPath::of(lblk).ok_or(EFBIG)?;
        let n = (end - lblk).min(block_path.run_in_leaf());
        let mut walk = WalkPath::default();
        let leaf = leaf_for(inode, &mut map, &block_path, &mut walk)?;
        let index = leaf_index(&block_path);
        for i in 0..n as usize {
            let ptr = leaf.ptr(&map, index + i);
            if ptr & PTR_UNWRITTEN != 0 {
                let block = ptr & !PTR_UNWRITTEN;
                check_ptr(inode, &walk, block)?;
                leaf.set(inode, &mut map, index + i, core::iter::once(block));
            }
        }
        lblk += n;
        drop(leaf);
        finish_changes(inode, map);
    }
    Ok(())
}
