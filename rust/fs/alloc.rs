// SPDX-License-Identifier: GPL-2.0

//! The block and inode allocators, on the groups' bitmaps.
//!
//! Free counts live in three places: each bitmap, its group descriptor (with the bitmap's
//! checksum) and the superblock's in-memory totals (written to disk by `sync_fs` and at
//! unmount). A bitmap is changed with its buffer locked and its descriptor is updated before
//! that lock is released, so the descriptor always matches the bitmap; the lock order is
//! bitmap, then GDT block. The in-memory totals are claimed before searching, so parallel
//! allocations never promise more than is free, and no lock is global.
//!
//! A free block is still not for the taking while it is busy (freed by a transaction not yet
//! committed), reserved (held for a file's sequential writes) or being discarded (FITRIM):
//! those ranges are kept in memory and consulted under the bitmap's lock, and each is
//! recorded under that same lock, so an allocation sees a range either as set in the bitmap
//! or as excluded, never as plainly free.

use super::superblock::group_corruption;
use crate::checksum::{bitmap_checksum, bitmap_checksum_flip};
use crate::disk::{
    bitmap_find_set, bitmap_set, bitmap_test, GroupDesc, BLOCKS_PER_GROUP, FIRST_INO,
};
use crate::error::FormatError;
use crate::vfs::buffer::{BufferHead, Verified};
use crate::vfs::inode::Inode;
use crate::vfs::super_block::SuperBlock;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::{CondVar, Mutex};
use kernel::{new_condvar, new_mutex};

/// Blocks of a bitmap as `u32` (a group holds at most 32768).
const BPG: u32 = BLOCKS_PER_GROUP;

/// Takes up to `want` units from `counter`, keeping `keep` untouched; returns how many.
fn claim(counter: &AtomicU64, want: u64, keep: u64) -> u64 {
    let mut cur = counter.load(Ordering::Relaxed);
    loop {
        let take = want.min(cur.saturating_sub(keep));
        if take == 0 {
            return 0;
        }
        match counter.compare_exchange_weak(cur, cur - take, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return take,
            Err(now) => cur = now,
        }
    }
}

/// Changes the descriptor of group `g` with `f` and updates its checksum. Called with the
/// group's bitmap buffer locked.
fn update_desc(sb: &SuperBlock, g: u32, f: impl FnOnce(&mut GroupDesc)) -> Result {
    let geo = sb.info().geometry();
    let (block, _) = geo.group_desc_location(g).ok_or(EUCLEAN)?;
    let bh = sb.bread(block)?;
    let seed = geo.checksum_seed();
    super::journal::modify(sb, &bh, None, |data| {
        let desc = GroupDesc::in_block_mut(data, g);
        f(desc);
        desc.update_checksum(seed, g);
    });
    Ok(())
}

/// Reads a field of the descriptor of group `g`.
fn read_desc<R>(sb: &SuperBlock, g: u32, f: impl FnOnce(&GroupDesc) -> R) -> Result<R> {
    let geo = sb.info().geometry();
    let (block, _) = geo.group_desc_location(g).ok_or(EUCLEAN)?;
    let bh = sb.bread(block)?;
    Ok(bh.read_locked(|data| f(GroupDesc::in_block(data, g))))
}

/// Reads the block or inode bitmap of group `g`, verifying its checksum the first time.
fn read_bitmap(sb: &SuperBlock, g: u32, inodes: bool) -> Result<BufferHead> {
    let geo = sb.info().geometry();
    let (block, kind) = if inodes {
        (geo.inode_bitmap_block(g), Verified::InodeBitmap)
    } else {
        (geo.block_bitmap_block(g), Verified::BlockBitmap)
    };
    let bh = sb.bread(block.ok_or(EUCLEAN)?)?;
    if !bh.is_verified(kind) {
        let seed = geo.checksum_seed();
        // Under the bitmap's lock, which every change of the bitmap holds while it updates
        // the descriptor's checksum too: a descriptor read before it could be older than a
        // bitmap changed meanwhile by a task that verified it first.
        let matches = bh.read_locked(|data| {
            read_desc(sb, g, |d| {
                if inodes {
                    d.inode_bitmap_checksum.get()
                } else {
                    d.block_bitmap_checksum.get()
                }
            })
            .map(|expected| bitmap_checksum(seed, g, data) == expected)
        })?;
        if !matches {
            let err = if inodes {
                FormatError::InodeBitmapChecksum
            } else {
                FormatError::BlockBitmapChecksum
            };
            return Err(group_corruption(sb, g, err.msg()));
        }
        bh.set_verified(kind);
    }
    Ok(bh)
}

/// Whether inode `index` of `group` is marked in use.
pub(crate) fn inode_in_use(sb: &SuperBlock, group: u32, index: u32) -> Result<bool> {
    let bh = read_bitmap(sb, group, true)?;
    Ok(bh.read_locked(|data| bitmap_test(data, index)))
}

/// Allocates in group `g` up to `max` free blocks contiguous with the first free one found
/// from index `from` on (wrapping to the group start), or, with `backwards`, the last free
/// block of the group. Returns the first block and the count, `None` if the group is full.
fn alloc_in_group(
    sb: &SuperBlock,
    g: u32,
    from: u32,
    max: u64,
    backwards: bool,
) -> Result<Option<(u64, u64)>> {
    let geo = sb.info().geometry();
    let (Some(start), Some(len)) = (geo.group_start(g), geo.group_len(g)) else {
        return Err(EUCLEAN);
    };
    if read_desc(sb, g, |d| d.free_blocks.get())? == 0 {
        return Ok(None);
    }
    // The group length fits a bitmap (at most 32768).
    let len = len.min(u64::from(BPG)) as u32;
    let meta = u32::try_from(geo.group_meta_blocks()).map_err(|_| EUCLEAN)?;
    let bh = read_bitmap(sb, g, false)?;
    let found = super::journal::modify(sb, &bh, None, |bitmap| -> Result<Option<(u32, u32)>> {
        let usable =
            |i: u32| !bitmap_test(bitmap, i) && excluded(sb, start + u64::from(i)).is_none();
        let first = if backwards {
            (meta..len).rev().find(|&i| usable(i))
        } else {
            let from = from.clamp(meta, len);
            find_usable(sb, bitmap, start, from, len)
                .or_else(|| find_usable(sb, bitmap, start, meta, from))
        };
        let Some(first) = first else {
            return Ok(None);
        };
        // The run ends at the first block it may not take, looked up once for the whole
        // run (each look takes the journal's and the reservations' locks).
        let want = max.min(u64::from(len - first));
        let block = start + u64::from(first);
        let limit = match first_excluded(sb, block, want) {
            // Within the group, at or after `first` (which was usable when it was found).
            Some((x, _)) => u32::try_from(x - start).unwrap_or(len),
            None => first + want as u32,
        };
        let mut count = 0u32;
        while first + count < limit && !bitmap_test(bitmap, first + count) {
            count += 1;
        }
        if count == 0 {
            return Ok(None);
        }
        for i in first..first + count {
            bitmap_set(bitmap, i, true);
        }
        update_desc(sb, g, |d| {
            d.free_blocks.set(d.free_blocks.get().saturating_sub(count));
            let sum = bitmap_checksum_flip(d.block_bitmap_checksum.get(), first, count);
            d.block_bitmap_checksum.set(sum);
        })?;
        Ok(Some((first, count)))
    })?;
    Ok(found.map(|(first, count)| (start + u64::from(first), u64::from(count))))
}

/// Whether free block `block` may not be allocated now, with the end of the range it lies in
/// (see [`first_excluded`]).
fn excluded(sb: &SuperBlock, block: u64) -> Option<u64> {
    first_excluded(sb, block, 1).map(|(_, end)| end)
}

/// Keeps in `found` whichever of it and `first..end` starts first.
fn earliest(found: &mut Option<(u64, u64)>, first: u64, end: u64) {
    if found.is_none_or(|(f, _)| first < f) {
        *found = Some((first, end));
    }
}

/// The first block of `block..block + count` that may not be allocated although the bitmap
/// may show it free, with the end of the range it lies in: freed by a transaction not yet
/// committed (busy), held for a file's sequential writes (reserved), or being discarded
/// (FITRIM). Called with the bitmap of the blocks' group locked.
fn first_excluded(sb: &SuperBlock, block: u64, count: u64) -> Option<(u64, u64)> {
    let end = block.saturating_add(count);
    let mut found = super::journal::busy_in(sb, block, count);
    let info = sb.info();
    for r in info.reservations().lock().iter() {
        let r_end = r.start.saturating_add(r.count);
        if r.start < end && r_end > block {
            earliest(&mut found, r.start.max(block), r_end);
        }
    }
    if let Some((first, r_end)) = info.trims().overlap(block, end) {
        earliest(&mut found, first, r_end);
    }
    found
}

/// What a FITRIM holds: free runs of blocks being discarded. Like reservations they stay
/// clear in the bitmap (nothing is journaled, a crash leaks nothing) and allocations skip
/// them: a block allocated and written while its discard is in flight could lose the data.
#[pin_data]
pub(crate) struct Trims {
    #[pin]
    runs: Mutex<KVec<Reservation>>,
    /// Signalled whenever a run is given back.
    #[pin]
    changed: CondVar,
    /// How many runs are held. Changed under `runs` and read without it by allocators,
    /// which hold the lock of the bitmap the run was taken under (so they see it).
    held: AtomicUsize,
    /// How many runs were given back so far (changed under `runs`): an allocation that
    /// found no free block watches it.
    released: AtomicU64,
}

impl Trims {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            runs <- new_mutex!(KVec::new()),
            changed <- new_condvar!(),
            held: AtomicUsize::new(0),
            released: AtomicU64::new(0),
        })
    }

    /// The first held block in `block..end`, with the end of its run.
    fn overlap(&self, block: u64, end: u64) -> Option<(u64, u64)> {
        if self.held.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut found = None;
        for r in self.runs.lock().iter() {
            let r_end = r.start.saturating_add(r.count);
            if r.start < end && r_end > block {
                earliest(&mut found, r.start.max(block), r_end);
            }
        }
        found
    }

    /// Holds `start..start + count`: free and not excluded, as the caller checked with the
    /// group's bitmap locked, a lock it still holds.
    fn hold(&self, start: u64, count: u64) -> Result {
        let mut runs = self.runs.lock();
        runs.push(Reservation { start, count }, GFP_KERNEL)?;
        self.held.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Gives back the run held from `start`.
    fn release(&self, start: u64) {
        let mut runs = self.runs.lock();
        if let Some(i) = runs.iter().position(|r| r.start == start) {
            let _ = runs.remove(i);
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
        self.released.fetch_add(1, Ordering::AcqRel);
        drop(runs);
        self.changed.notify_all();
    }

    /// How many runs were given back so far (for [`Trims::wait_release`]).
    fn progress(&self) -> u64 {
        self.released.load(Ordering::Acquire)
    }

    /// After [`Trims::progress`] returned `seen`: waits while runs are held and none was
    /// given back since. Returns whether any run was held or given back meanwhile (blocks
    /// an allocation could not take then may be free now).
    fn wait_release(&self, seen: u64) -> bool {
        if self.held.load(Ordering::Acquire) == 0 && self.progress() == seen {
            return false;
        }
        let mut runs = self.runs.lock();
        while self.released.load(Ordering::Acquire) == seen && !runs.is_empty() {
            self.changed.wait(&mut runs);
        }
        true
    }
}

/// One step of [`trim_group`]'s walk over a group's bitmap.
enum TrimStep {
    /// No free block left in the range.
    Done,
    /// Nothing to discard before this index.
    Skip(u32),
    /// The free run `first..end` (indices in the group) is held: discard it.
    Hold(u32, u32),
}

/// FITRIM in group `g`: discards every free run of at least `minlen` blocks within bit
/// indices `from..to` of the group (its metadata blocks excluded). Each run is held away from
/// allocations (see [`Trims`]) while the device discards it; blocks freed by a transaction
/// not yet committed, and reserved ones, are left alone. Stops early for a fatal signal.
/// Returns how many blocks were discarded.
pub(crate) fn trim_group(sb: &SuperBlock, g: u32, from: u32, to: u32, minlen: u32) -> Result<u64> {
    let info = sb.info();
    let geo = info.geometry();
    let (Some(start), Some(len)) = (geo.group_start(g), geo.group_len(g)) else {
        return Err(EUCLEAN);
    };
    // The group length fits a bitmap (at most 32768).
    let len = len.min(u64::from(BPG)) as u32;
    let meta = u32::try_from(geo.group_meta_blocks()).map_err(|_| EUCLEAN)?;
    let to = to.min(len);
    let minlen = minlen.max(1);
    let mut pos = from.max(meta);
    if pos >= to || read_desc(sb, g, |d| d.free_blocks.get())? < minlen {
        return Ok(0);
    }
    let bh = read_bitmap(sb, g, false)?;
    let mut trimmed = 0u64;
    while pos < to {
        // Under the bitmap's lock, which every allocator in the group takes: the run found
        // is free and not excluded, and held before anyone else can look.
        let step = bh.read_locked(|bitmap| -> Result<TrimStep> {
            let Some(first) = crate::disk::bitmap_find_clear(bitmap, pos, to) else {
                return Ok(TrimStep::Done);
            };
            let mut end = bitmap_find_set(bitmap, first, to).unwrap_or(to);
            let block = start + u64::from(first);
            if let Some((x, x_end)) = first_excluded(sb, block, u64::from(end - first)) {
                let x = u32::try_from(x.saturating_sub(start)).unwrap_or(u32::MAX);
                if x <= first {
                    let skip = u32::try_from(x_end.saturating_sub(start)).unwrap_or(u32::MAX);
                    return Ok(TrimStep::Skip(skip.max(first + 1).min(to)));
                }
                end = end.min(x);
            }
            if end - first < minlen {
                return Ok(TrimStep::Skip(end));
            }
            info.trims().hold(block, u64::from(end - first))?;
            Ok(TrimStep::Hold(first, end))
        })?;
        match step {
            TrimStep::Done => break,
            TrimStep::Skip(next) => pos = next,
            TrimStep::Hold(first, end) => {
                let block = start + u64::from(first);
                let count = u64::from(end - first);
                let result = sb.discard(block, count);
                info.trims().release(block);
                result?;
                trimmed += count;
                pos = end;
            }
        }
        if crate::vfs::should_stop() {
            break;
        }
        crate::vfs::cond_resched();
    }
    Ok(trimmed)
}

/// Free blocks held in memory for a file written sequentially: other files do not get
/// them, but they are not marked in the bitmap until the file uses them (so a crash leaks
/// nothing).
#[derive(Clone, Copy)]
pub(crate) struct Reservation {
    pub(crate) start: u64,
    pub(crate) count: u64,
}

/// Reserves up to `count` free blocks right after `block` (in its group) for a file's next
/// sequential writes; returns how many.
pub(crate) fn reserve_after(sb: &SuperBlock, block: u64, count: u64) -> Result<u64> {
    let geo = sb.info().geometry();
    let Some((g, index)) = geo.group_of_block(block) else {
        return Ok(0);
    };
    let Some(len) = geo.group_len(g) else {
        return Ok(0);
    };
    let len = len.min(u64::from(BPG)) as u32;
    let bh = read_bitmap(sb, g, false)?;
    // Under the bitmap's lock, which every allocator in the group takes.
    bh.read_locked(|bitmap| -> Result<u64> {
        // Excluded blocks are looked up once for the whole window (each look takes the
        // journal's and the reservations' locks).
        let want = count.min(u64::from(len.saturating_sub(index)));
        let limit = first_excluded(sb, block, want).map_or(want, |(x, _)| x - block);
        let mut n = 0u32;
        while u64::from(n) < limit && !bitmap_test(bitmap, index + n) {
            n += 1;
        }
        if n > 0 {
            sb.info().reservations().lock().push(
                Reservation {
                    start: block,
                    count: u64::from(n),
                },
                GFP_KERNEL,
            )?;
        }
        Ok(u64::from(n))
    })
}

/// Gives reserved blocks `start..start + count` back without using them.
pub(crate) fn release_reservation(sb: &SuperBlock, start: u64, count: u64) {
    let mut list = sb.info().reservations().lock();
    let end = start + count;
    let mut i = 0;
    while i < list.len() {
        let r = list[i];
        if r.start >= start && r.start + r.count <= end {
            let _ = list.remove(i);
        } else {
            if r.start < end && r.start + r.count > start {
                // Only the front of a reservation is ever released.
                let cut = end.min(r.start + r.count);
                list[i] = Reservation {
                    start: cut,
                    count: r.start + r.count - cut,
                };
            }
            i += 1;
        }
    }
}

/// Allocates reserved blocks from `start` on (up to `max`): marks them in the bitmap as an
/// allocation would. Returns how many it could take (0 if they are gone).
pub(crate) fn take_reserved(sb: &SuperBlock, start: u64, max: u64) -> Result<u64> {
    release_reservation(sb, start, max);
    let info = sb.info();
    let geo = info.geometry();
    let Some((g, index)) = geo.group_of_block(start) else {
        return Ok(0);
    };
    let len = geo.group_len(g).ok_or(EUCLEAN)?.min(u64::from(BPG)) as u32;
    let keep = if info.reserved_blocks() > 0 && !crate::vfs::capable_resource() {
        info.reserved_blocks()
    } else {
        0
    };
    let claimed = claim(&info.free_blocks, max, keep);
    if claimed == 0 {
        return Ok(0);
    }
    let bh = read_bitmap(sb, g, false)?;
    let taken = super::journal::modify(sb, &bh, None, |bitmap| -> Result<u32> {
        // The run stops at a block freed by an uncommitted transaction or being discarded
        // (its own reservation was just released), both looked up once.
        let want = claimed.min(u64::from(len.saturating_sub(index)));
        let end = start + want;
        let mut limit = super::journal::busy_in(sb, start, want).map_or(end, |(x, _)| x);
        if let Some((x, _)) = info.trims().overlap(start, end) {
            limit = limit.min(x);
        }
        let limit = limit - start;
        let mut n = 0u32;
        while u64::from(n) < limit && !bitmap_test(bitmap, index + n) {
            bitmap_set(bitmap, index + n, true);
            n += 1;
        }
        if n > 0 {
            update_desc(sb, g, |d| {
                d.free_blocks.set(d.free_blocks.get().saturating_sub(n));
                let sum = bitmap_checksum_flip(d.block_bitmap_checksum.get(), index, n);
                d.block_bitmap_checksum.set(sum);
            })?;
        }
        Ok(n)
    })?;
    info.free_blocks
        .fetch_add(claimed - u64::from(taken).min(claimed), Ordering::AcqRel);
    info.mark_dirty();
    Ok(u64::from(taken))
}

/// The first clear bit of `bitmap` in `from..to` whose block (the group starts at `start`)
/// is not busy in the journal.
fn find_usable(sb: &SuperBlock, bitmap: &[u8], start: u64, from: u32, to: u32) -> Option<u32> {
    let mut pos = from;
    while pos < to {
        let i = crate::disk::bitmap_find_clear(bitmap, pos, to)?;
        match excluded(sb, start + u64::from(i)) {
            None => return Some(i),
            Some(end) => {
                let skip = u32::try_from(end.saturating_sub(start)).unwrap_or(u32::MAX);
                pos = skip.max(i + 1);
            }
        }
    }
    None
}

/// Looks for up to `max` blocks in every group from `goal`'s on (see [`alloc_blocks`]).
fn search_groups(sb: &SuperBlock, goal: u64, max: u64, backwards: bool) -> Result<(u64, u64)> {
    let geo = sb.info().geometry();
    let groups = geo.group_count();
    let (goal_group, goal_index) = geo.group_of_block(goal).unwrap_or((0, 0));
    for step in 0..groups {
        let g = (goal_group + step) % groups;
        let from = if step == 0 { goal_index } else { 0 };
        if let Some(run) = alloc_in_group(sb, g, from, max, backwards && step == 0)? {
            return Ok(run);
        }
        crate::vfs::cond_resched();
    }
    Err(ENOSPC)
}

/// Allocates between 1 and `max` contiguous blocks, as close after `goal` as possible;
/// with `backwards`, a single block from the end of `goal`'s group (indirect blocks, kept
/// out of the way of the file's data runs). ENOSPC when nothing is free for the caller (the
/// reserved blocks are for tasks with `CAP_SYS_RESOURCE`).
pub(crate) fn alloc_blocks(
    sb: &SuperBlock,
    goal: u64,
    max: u64,
    backwards: bool,
) -> Result<(u64, u64)> {
    let info = sb.info();
    let geo = info.geometry();
    let keep = if info.reserved_blocks() > 0 && !crate::vfs::capable_resource() {
        info.reserved_blocks()
    } else {
        0
    };
    let claimed = claim(&info.free_blocks, max.max(1), keep);
    if claimed == 0 {
        return Err(ENOSPC);
    }
    let seen = info.trims().progress();
    let mut result = search_groups(sb, goal, claimed, backwards);
    // The free blocks may all have been held by a FITRIM for a moment: once it gave a run
    // back, look once more.
    if matches!(result, Err(e) if e == ENOSPC) && info.trims().wait_release(seen) {
        result = search_groups(sb, goal, claimed, backwards);
    }
    let used = result.as_ref().map_or(0, |&(_, count)| count);
    info.free_blocks
        .fetch_add(claimed - used.min(claimed), Ordering::AcqRel);
    let (first, count) = result?;
    if !(0..count).all(|i| geo.is_data_block(first + i)) {
        let (g, _) = geo.group_of_block(first).unwrap_or((0, 0));
        return Err(group_corruption(
            sb,
            g,
            "block bitmap marks group metadata free",
        ));
    }
    info.mark_dirty();
    Ok((first, count))
}

/// Frees blocks `first..first + count` (which must lie in one group).
fn free_in_group(sb: &SuperBlock, first: u64, count: u64) -> Result {
    let geo = sb.info().geometry();
    let Some((g, index)) = geo.group_of_block(first) else {
        return Err(EUCLEAN);
    };
    let bh = read_bitmap(sb, g, false)?;
    let seed = geo.checksum_seed();
    let (freed, double) = super::journal::modify(sb, &bh, None, |bitmap| -> Result<(u32, bool)> {
        let mut freed = 0u32;
        let mut double = false;
        for i in 0..count {
            let bit = index.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
            if bitmap_set(bitmap, bit, false) {
                freed += 1;
            } else {
                double = true;
            }
        }
        // Busy before the bitmap is unlocked: whoever sees these bits clear (an allocation,
        // a FITRIM) also sees that they wait for the commit.
        super::journal::blocks_freed(sb, first, count);
        let flipped = u32::try_from(count).ok().filter(|_| !double);
        update_desc(sb, g, |d| {
            d.free_blocks.set(d.free_blocks.get().saturating_add(freed));
            // Freeing a block already free is corruption (reported below); the bits that
            // did change are then not one run, so the checksum is computed afresh.
            let sum = match flipped {
                Some(count) => bitmap_checksum_flip(d.block_bitmap_checksum.get(), index, count),
                None => bitmap_checksum(seed, g, bitmap),
            };
            d.block_bitmap_checksum.set(sum);
        })?;
        Ok((freed, double))
    })?;
    let info = sb.info();
    info.free_blocks
        .fetch_add(u64::from(freed), Ordering::AcqRel);
    info.mark_dirty();
    if double {
        return Err(group_corruption(
            sb,
            g,
            "freeing a block that is already free",
        ));
    }
    Ok(())
}

/// Frees blocks `first..first + count`, which must be data blocks.
pub(crate) fn free_blocks(sb: &SuperBlock, first: u64, count: u64) -> Result {
    let geo = sb.info().geometry();
    let end = first.checked_add(count).ok_or(EUCLEAN)?;
    if count == 0 {
        return Ok(());
    }
    if !geo.is_data_block(first) || !geo.is_data_block(end - 1) {
        let (g, _) = geo.group_of_block(first).unwrap_or((0, 0));
        return Err(group_corruption(
            sb,
            g,
            "freeing a block outside the data area",
        ));
    }
    // Runs never cross groups: each group starts with its metadata blocks.
    let (g_first, _) = geo.group_of_block(first).ok_or(EUCLEAN)?;
    let (g_last, _) = geo.group_of_block(end - 1).ok_or(EUCLEAN)?;
    if g_first != g_last {
        return Err(group_corruption(sb, g_first, "block run crosses groups"));
    }
    // `discard` without a journal: no commit to wait for, so the blocks are discarded now,
    // while the bitmap still keeps them from being allocated (as ext4 does).
    if sb.info().journal().is_none() && sb.info().discard() && sb.discard_granularity().is_some() {
        if let Err(e) = sb.discard(first, count) {
            crate::vfs::log::device_warn!(
                sb.name(),
                "discard of blocks {}..{} failed (error {})",
                first,
                end,
                e.to_errno()
            );
        }
    }
    free_in_group(sb, first, count)
}

/// The group for a new inode: for a directory, one with at least the average number of
/// free inodes and the most free blocks (spreading directories over the disk); for other
/// files, the parent's group or the next one with a free inode.
fn pick_group(sb: &SuperBlock, parent: &Inode, dir: bool) -> Result<Option<u32>> {
    let info = sb.info();
    let geo = info.geometry();
    let groups = geo.group_count();
    let (parent_group, _) = geo.inode_group(parent.ino()).unwrap_or((0, 0));
    if dir {
        let average = info.free_inodes.load(Ordering::Relaxed) / u64::from(groups.max(1));
        let mut best: Option<(u32, u32)> = None;
        for g in 0..groups {
            let (inodes, blocks) =
                read_desc(sb, g, |d| (d.free_inodes.get(), d.free_blocks.get()))?;
            if inodes > 0 && u64::from(inodes) >= average && best.is_none_or(|(_, b)| blocks > b) {
                best = Some((g, blocks));
            }
        }
        if let Some((g, _)) = best {
            return Ok(Some(g));
        }
    }
    for step in 0..groups {
        let g = (parent_group + step) % groups;
        if read_desc(sb, g, |d| d.free_inodes.get())? > 0 {
            return Ok(Some(g));
        }
    }
    Ok(None)
}

/// Takes a free inode number in group `g`, or `None` if the group has none left.
fn alloc_inode_in_group(sb: &SuperBlock, g: u32, dir: bool) -> Result<Option<u32>> {
    let geo = sb.info().geometry();
    let per_group = geo.inodes_per_group();
    let first = if g == 0 { FIRST_INO } else { 0 };
    let bh = read_bitmap(sb, g, true)?;
    let index = super::journal::modify(sb, &bh, None, |bitmap| -> Result<Option<u32>> {
        let Some(index) = crate::disk::bitmap_find_clear(bitmap, first, per_group) else {
            return Ok(None);
        };
        bitmap_set(bitmap, index, true);
        start_table_block(sb, g, index, bitmap)?;
        update_desc(sb, g, |d| {
            d.free_inodes.set(d.free_inodes.get().saturating_sub(1));
            if dir {
                d.used_dirs.set(d.used_dirs.get().saturating_add(1));
            }
            let sum = bitmap_checksum_flip(d.inode_bitmap_checksum.get(), index, 1);
            d.inode_bitmap_checksum.set(sum);
        })?;
        Ok(Some(index))
    })?;
    Ok(index.and_then(|i| geo.ino_of(g, i)))
}

/// When inode `index` of group `g`, just taken in `bitmap`, is the only one in use in its
/// inode table block and that block is not cached, gives the block zeroed instead of
/// reading it: the slots of free inodes mean nothing (docs/format.md, "Inodes"), so a
/// file created in a fresh part of the table waits for no read (ext4 does the same).
/// Called under the bitmap's buffer lock, so no other allocation in the block can have
/// read or changed it in between.
fn start_table_block(sb: &SuperBlock, g: u32, index: u32, bitmap: &[u8]) -> Result {
    let geo = sb.info().geometry();
    let per_block = geo.inodes_per_block().max(1);
    let first = index - index % per_block;
    let end = first.saturating_add(per_block).min(geo.inodes_per_group());
    let alone = (first..end).all(|i| i == index || !crate::disk::bitmap_test(bitmap, i));
    let Some(table) = geo.inode_table_block(g) else {
        return Err(EUCLEAN);
    };
    let block = table + u64::from(index / per_block);
    if alone && !sb.is_cached(block) {
        sb.new_block(block)?;
    }
    Ok(())
}

/// Allocates an inode number for a new file in `parent` and clears its on-disk slot.
pub(crate) fn alloc_inode(sb: &SuperBlock, parent: &Inode, dir: bool) -> Result<u32> {
    let info = sb.info();
    if claim(&info.free_inodes, 1, 0) == 0 {
        return Err(ENOSPC);
    }
    let result = (|| {
        let geo = info.geometry();
        let groups = geo.group_count();
        let start = pick_group(sb, parent, dir)?.ok_or(ENOSPC)?;
        for step in 0..groups {
            if let Some(ino) = alloc_inode_in_group(sb, (start + step) % groups, dir)? {
                return Ok(ino);
            }
        }
        Err(ENOSPC)
    })();
    let ino = match result {
        Ok(ino) => ino,
        Err(e) => {
            info.free_inodes.fetch_add(1, Ordering::AcqRel);
            return Err(e);
        }
    };
    info.mark_dirty();
    // A reused slot holds the previous file's inode; start from zeros.
    let geo = info.geometry();
    let loc = geo.inode_location(ino).map_err(|_| EUCLEAN)?;
    let size = usize::from(geo.inode_size());
    let bh = sb.bread(loc.block)?;
    super::journal::modify(sb, &bh, None, |data| {
        if let Some(slot) = data.get_mut(loc.offset..loc.offset + size) {
            slot.fill(0);
        }
    });
    Ok(ino)
}

/// Frees inode number `ino` (of a directory with `dir`).
pub(crate) fn free_inode(sb: &SuperBlock, ino: u32, dir: bool) -> Result {
    let info = sb.info();
    let geo = info.geometry();
    let (g, index) = geo.inode_group(ino).map_err(|_| EUCLEAN)?;
    let bh = read_bitmap(sb, g, true)?;
    let was_used = super::journal::modify(sb, &bh, None, |bitmap| -> Result<bool> {
        let was_used = bitmap_set(bitmap, index, false);
        if was_used {
            update_desc(sb, g, |d| {
                d.free_inodes.set(d.free_inodes.get().saturating_add(1));
                if dir {
                    d.used_dirs.set(d.used_dirs.get().saturating_sub(1));
                }
                let sum = bitmap_checksum_flip(d.inode_bitmap_checksum.get(), index, 1);
                d.inode_bitmap_checksum.set(sum);
            })?;
        }
        Ok(was_used)
    })?;
    if !was_used {
        return Err(group_corruption(
            sb,
            g,
            "freeing an inode that is already free",
        ));
    }
    info.free_inodes.fetch_add(1, Ordering::AcqRel);
    info.mark_dirty();
    Ok(())
}
