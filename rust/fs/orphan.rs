// SPDX-License-Identifier: GPL-2.0

//! The orphan list: inodes whose last link is gone while they are still open, and files
//! being truncated, chained from the superblock's `last_orphan` through each inode's
//! `next_orphan`. Changes to the chain are journaled with the change that needs them, so
//! after a crash the next read-write mount finds every unfinished deletion or truncate and
//! completes it.

use super::blockmap;
use super::inode::iget;
use super::journal;
use super::superblock::{settle_read_only, write_super, SuperState};
use crate::checksum::set_inode_checksum;
use crate::disk::{Inode as DiskInode, SuperBlock as DiskSuperBlock, BLOCK_SIZE_U64};
use crate::vfs::inode::Inode;
use crate::vfs::log::{device_err, device_warn};
use crate::vfs::super_block::SuperBlock;
use kernel::prelude::*;

/// Sets the `next_orphan` of inode `ino` in its inode table block.
fn set_next(sb: &SuperBlock, ino: u32, next: u32) -> Result {
    let geo = sb.info().geometry();
    let loc = geo.inode_location(ino).map_err(|_| EUCLEAN)?;
    let size = usize::from(geo.inode_size());
    let bh = sb.bread(loc.block)?;
    journal::modify(sb, &bh, None, |data| -> Result {
        let raw = data.get_mut(loc.offset..loc.offset + size).ok_or(EUCLEAN)?;
        DiskInode::from_slot_mut(raw)
            .map_err(|_| EUCLEAN)?
            .next_orphan
            .set(next);
        set_inode_checksum(geo.checksum_seed(), ino, raw).map_err(|_| EUCLEAN)
    })
}

/// Sets the superblock's `last_orphan`.
fn set_head(sb: &SuperBlock, ino: u32) -> Result {
    let bh = sb.bread(0)?;
    journal::modify(sb, &bh, None, |block0| {
        DiskSuperBlock::in_block_mut(block0).set_last_orphan(ino);
    });
    Ok(())
}

/// Puts `inode` on the orphan list (in the current handle), unless it is on it.
pub(crate) fn add(inode: &Inode) -> Result {
    let sb = inode.sb();
    if sb.info().journal().is_none() {
        return Ok(());
    }
    let ino = inode.ino();
    let mut list = sb.info().orphans().lock();
    if list.contains(&ino) {
        return Ok(());
    }
    list.insert_within_capacity(0, ino).or_else(|_| {
        list.reserve(1, GFP_KERNEL)?;
        list.insert_within_capacity(0, ino).map_err(|_| ENOMEM)
    })?;
    let next = list.get(1).copied().unwrap_or(0);
    set_next(sb, ino, next)?;
    set_head(sb, ino)
}

/// Takes `inode` off the orphan list (in the current handle), if it is on it.
pub(crate) fn remove(inode: &Inode) -> Result {
    remove_ino(inode.sb(), inode.ino())
}

fn remove_ino(sb: &SuperBlock, ino: u32) -> Result {
    if sb.info().journal().is_none() {
        return Ok(());
    }
    let mut list = sb.info().orphans().lock();
    let Some(index) = list.iter().position(|&i| i == ino) else {
        return Ok(());
    };
    let next = list.get(index + 1).copied().unwrap_or(0);
    if index == 0 {
        set_head(sb, next)?;
    } else if let Some(&prev) = list.get(index - 1) {
        set_next(sb, prev, next)?;
    }
    set_next(sb, ino, 0)?;
    list.remove(index).map_err(|_| EINVAL)?;
    Ok(())
}

/// The first inode of the orphan list on disk (0: the list is empty).
pub(crate) fn head(sb: &SuperBlock) -> Result<u32> {
    let bh = sb.bread(0)?;
    Ok(bh.read_locked(|block0| DiskSuperBlock::in_block(block0).last_orphan.get()))
}

/// Whether a read-only mount may finish the orphan list, as ext4 does: only when the
/// device can be written and the journal was replayed (not `norecovery`), so that the
/// list is the one the crash left.
pub(crate) fn read_only_may_process(sb: &SuperBlock) -> bool {
    if sb.device_read_only() || sb.info().norecovery() {
        device_warn!(
            sb.name(),
            "write access unavailable, orphan inodes left for a read-write mount"
        );
        return false;
    }
    true
}

/// At a read-only mount that [`read_only_may_process`] allows, with the superblock
/// writable for the time: finishes the list, then settles as a remount read-only does.
pub(crate) fn process_read_only(sb: &SuperBlock) -> Result {
    device_warn!(sb.name(), "orphan cleanup on a read-only mount");
    write_super(sb, SuperState::Mounting, true)?;
    process(sb)?;
    settle_read_only(sb)
}

/// At a mount: reads the orphan list and finishes what it records (deletes inodes without
/// links, frees the blocks past the size of the others).
pub(crate) fn process(sb: &SuperBlock) -> Result {
    let geo = sb.info().geometry();
    let head = head(sb)?;
    let mut chain = KVec::new();
    let mut ino = head;
    while ino != 0 {
        if chain.len() as u64 > u64::from(geo.inodes_count()) || chain.contains(&ino) {
            device_err!(sb.name(), "orphan list has a loop; run fsck.aegisfs");
            return Err(EUCLEAN);
        }
        chain.push(ino, GFP_KERNEL)?;
        let loc = geo.inode_location(ino).map_err(|_| EUCLEAN)?;
        let size = usize::from(geo.inode_size());
        let bh = sb.bread(loc.block)?;
        ino = bh
            .read_locked(|data| {
                data.get(loc.offset..loc.offset + size)
                    .and_then(|raw| DiskInode::from_slot(raw).ok())
                    .map(|i| i.next_orphan.get())
            })
            .ok_or(EUCLEAN)?;
    }
    if chain.is_empty() {
        return Ok(());
    }
    *sb.info().orphans().lock() = chain;
    let count = sb.info().orphans().lock().len();
    loop {
        let Some(ino) = sb.info().orphans().lock().first().copied() else {
            break;
        };
        let inode = match iget(sb, ino) {
            Ok(inode) => inode,
            Err(e) => {
                // Cannot be read: leave it for fsck, but go on with the others.
                let _handle = journal::start(sb)?;
                remove_ino(sb, ino)?;
                device_warn!(sb.name(), "orphan inode {}: error {}", ino, e.to_errno());
                continue;
            }
        };
        if inode.nlink() == 0 {
            // The last reference: eviction deletes it and takes it off the list.
            drop(inode);
        } else {
            blockmap::truncate_blocks(&inode, inode.size().div_ceil(BLOCK_SIZE_U64))?;
            let _handle = journal::start(sb)?;
            remove(&inode)?;
        }
        // Eviction may have failed to take it off: do not loop on it.
        let _handle = journal::start(sb)?;
        remove_ino(sb, ino)?;
    }
    device_warn!(sb.name(), "finished {} orphan inodes", count);
    journal::commit(sb)
}
