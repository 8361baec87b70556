// SPDX-License-Identifier: GPL-2.0

//! Shifting the block map of a file by whole blocks, for `fallocate`'s
//! `FALLOC_FL_COLLAPSE_RANGE` and `FALLOC_FL_INSERT_RANGE`: the mapped blocks from a logical
//! block on move down or up, a leaf run per transaction.

use super::blockmap::{
    check_data_ptr, discard_prealloc, finish_changes, free_range, leaf_for, leaf_index,
    next_extent, WalkPath,
};
use super::inode::BlockPtrs;
use super::superblock::inode_corruption;
use crate::blockmap::BlockPath;
use crate::disk::MAX_FILE_BLOCKS;
use crate::vfs::inode::Inode;
use kernel::prelude::*;

/// The first logical block of the leaf that maps `lblk`.
fn leaf_start(lblk: u64) -> u64 {
    BlockPath::of(lblk).map_or(lblk, |path| lblk - leaf_index(&path) as u64)
}

/// Moves the pointers of logical blocks `from..from + count` (mapped, in one leaf) to
/// `to..`, as far as the destination's leaf goes; returns how many moved. Destinations must
/// be holes unless they are among the sources. The sources left as holes give their leaf
/// back when it maps nothing any more.
fn move_run(inode: &Inode, map: &mut BlockPtrs, from: u64, to: u64, count: u64) -> Result<u64> {
    let src_path = BlockPath::of(from).ok_or(EFBIG)?;
    let dst_path = BlockPath::of(to).ok_or(EFBIG)?;
    let moved = count
        .min(src_path.run_in_leaf())
        .min(dst_path.run_in_leaf());
    let n = usize::try_from(moved).map_err(|_| EINVAL)?;
    let mut ptrs = [0u64; crate::disk::PTRS_PER_BLOCK];
    let mut walk = WalkPath::default();
    let src = leaf_for(inode, map, &src_path, &mut walk)?;
    let si = leaf_index(&src_path);
    for (i, ptr) in ptrs.iter_mut().enumerate().take(n) {
        *ptr = src.ptr(map, si + i);
        if *ptr != 0 {
            check_data_ptr(inode, &walk, *ptr)?;
        }
    }
    let mut walk = WalkPath::default();
    let dst = leaf_for(inode, map, &dst_path, &mut walk)?;
    let di = leaf_index(&dst_path);
    let sources = from..from + moved;
    for i in 0..n {
        if !sources.contains(&(to + i as u64)) && dst.ptr(map, di + i) != 0 {
            return Err(inode_corruption(inode, "block shift onto a mapped block"));
        }
    }
    src.set(inode, map, si, core::iter::repeat_n(0, n));
    dst.set(inode, map, di, ptrs.iter().take(n).copied());
    map.changed = true;
    drop((src, dst));
    // The sources that no destination covers are holes now.
    let vacated = if to < from {
        (to + moved).max(from)..from + moved
    } else {
        from..(from + moved).min(to)
    };
    if vacated.start < vacated.end {
        free_range(inode, map, vacated.start, vacated.end)?;
    }
    Ok(moved)
}

/// Moves every mapped block of `inode` from logical block `start` on by `n` blocks: down
/// (`FALLOC_FL_COLLAPSE_RANGE`: `start - n..start` must be holes) or `up`
/// (`FALLOC_FL_INSERT_RANGE`: `start..start + n` becomes a hole). A transaction per leaf
/// run, each leaving every block mapped exactly once.
pub(crate) fn shift_blocks(inode: &Inode, start: u64, n: u64, up: bool) -> Result {
    let sb = inode.sb();
    let mut handle = super::journal::start(sb)?;
    discard_prealloc(inode, &mut inode.map_write())?;
    if !up {
        let mut lblk = start;
        while let Some(ext) = next_extent(inode, lblk, MAX_FILE_BLOCKS)? {
            let end = ext.lblk + ext.count;
            let mut from = ext.lblk;
            while from < end {
                let mut map = inode.map_write();
                let moved = move_run(inode, &mut map, from, from - n, end - from);
                finish_changes(inode, map);
                from += moved?;
                handle.restart(sb)?;
            }
            lblk = end;
        }
        return Ok(());
    }
    // Upwards from the last extent down, so that no destination is mapped yet.
    let mut last = start;
    let mut lblk = start;
    while let Some(ext) = next_extent(inode, lblk, MAX_FILE_BLOCKS)? {
        last = ext.lblk + ext.count;
        lblk = last;
    }
    if last.checked_add(n).is_none_or(|e| e > MAX_FILE_BLOCKS) {
        return Err(EFBIG);
    }
    let mut hi = last;
    while hi > start {
        // The last extent below `hi`: the last one found from the leaf below it.
        let mut from = leaf_start(hi - 1).max(start);
        let mut found = None;
        while let Some(ext) = next_extent(inode, from, hi)? {
            from = ext.lblk + ext.count;
            found = Some(ext);
        }
        let Some(ext) = found else {
            hi = leaf_start(hi - 1).max(start);
            continue;
        };
        let mut end = (ext.lblk + ext.count).min(hi);
        while end > ext.lblk {
            let first = ext
                .lblk
                .max(leaf_start(end - 1))
                .max(leaf_start(end - 1 + n).saturating_sub(n));
            let mut map = inode.map_write();
            let moved = move_run(inode, &mut map, first, first + n, end - first);
            finish_changes(inode, map);
            moved?;
            end = first;
            handle.restart(sb)?;
        }
        hi = ext.lblk;
    }
    Ok(())
}
