// SPDX-License-Identifier: GPL-2.0

//! Reading directories: validated directory blocks and `readdir`.
//!
//! Directory positions are byte offsets in the directory, so they stay valid across calls
//! and `seekdir`: an offset that does not start an entry resumes at the next one.

use super::blockmap::DirMap;
use super::superblock::inode_corruption;
use crate::dir::{iter_verified_dir_block, verify_dir_block_checksum, DirIter};
use crate::disk::{BLOCK_SIZE, BLOCK_SIZE_U64, DIR_ENTRY_HEADER_SIZE, DIR_TAIL_OFFSET};
use crate::geometry::Geometry;
use crate::vfs::buffer::{BufferHead, Verified};
use crate::vfs::inode::Inode;
use crate::vfs::ops::DirEmitter;
use kernel::prelude::*;

/// A block of a directory whose checksum and records were verified.
///
/// Both are checked when the block is read from the device and remembered in the buffer,
/// so that lookups, which walk every block of the directory, can then compare names
/// without validating each record again.
pub(crate) struct DirBlock<'a> {
    bh: BufferHead,
    geometry: &'a Geometry,
}

impl<'a> DirBlock<'a> {
    /// Reads block `index` of directory `dir`, mapped through `map`.
    pub(crate) fn read(dir: &'a Inode, map: &mut DirMap<'_>, index: u64) -> Result<Self> {
        let sb = dir.sb();
        let geo = sb.info().geometry();
        let bh = sb.bread(map.block(index)?)?;
        if !bh.is_verified(Verified::Directory) {
            verify_dir_block_checksum(
                bh.data(),
                geo.checksum_seed(),
                dir.ino(),
                dir.info().generation,
            )
            .map_err(|e| inode_corruption(dir, e.msg()))?;
            for entry in iter_verified_dir_block(bh.data(), geo) {
                entry.map_err(|e| inode_corruption(dir, e.msg()))?;
            }
            bh.set_verified(Verified::Directory);
        }
        Ok(Self { bh, geometry: geo })
    }

    /// The records of the block, each validated before it is returned.
    pub(crate) fn entries(&self) -> DirIter<'_> {
        iter_verified_dir_block(self.bh.data(), self.geometry)
    }

    /// The inode number of the used entry named `name`, if any.
    pub(crate) fn find(&self, name: &[u8]) -> Option<u32> {
        let block = self.bh.data();
        let mut offset = 0usize;
        while offset < DIR_TAIL_OFFSET {
            let header = block.get(offset..offset.checked_add(DIR_ENTRY_HEADER_SIZE)?)?;
            let &[i0, i1, i2, i3, r0, r1, name_len, _] = header else {
                return None;
            };
            let ino = u32::from_le_bytes([i0, i1, i2, i3]);
            let rec_len = usize::from(u16::from_le_bytes([r0, r1]));
            // Cannot happen in a validated block; stops the walk rather than loop forever.
            if rec_len < DIR_ENTRY_HEADER_SIZE {
                return None;
            }
            if ino != 0 && usize::from(name_len) == name.len() {
                let name_start = offset + DIR_ENTRY_HEADER_SIZE;
                if block.get(name_start..name_start + name.len()) == Some(name) {
                    return Some(ino);
                }
            }
            offset += rec_len;
        }
        None
    }
}

/// Number of blocks of a directory (its size is a multiple of 4096).
pub(crate) fn block_count(dir: &Inode) -> u64 {
    dir.size() / BLOCK_SIZE_U64
}

/// The directory position of byte `offset` of the block starting at `block_start`.
fn dir_pos(block_start: u64, offset: usize) -> Result<i64> {
    u64::try_from(offset)
        .ok()
        .and_then(|offset| block_start.checked_add(offset))
        .and_then(|pos| i64::try_from(pos).ok())
        .ok_or(EINVAL)
}

/// `readdir`: emits the entries from the current position on.
pub(crate) fn iterate(dir: &Inode, emitter: &mut DirEmitter) -> Result {
    let size = dir.size();
    let mut map = DirMap::new(dir);
    loop {
        let Ok(pos) = u64::try_from(emitter.pos()) else {
            return Ok(());
        };
        if pos >= size {
            return Ok(());
        }
        let index = pos / BLOCK_SIZE_U64;
        let block_start = index * BLOCK_SIZE_U64;
        // Below 4096.
        let resume = (pos % BLOCK_SIZE_U64) as usize;
        crate::vfs::cond_resched();
        let block = DirBlock::read(dir, &mut map, index)?;
        for entry in block.entries() {
            let entry = entry.map_err(|e| inode_corruption(dir, e.msg()))?;
            if entry.offset < resume || entry.ino == 0 {
                continue;
            }
            // `dir_emit` reports the entry at the current position; once it is taken, the
            // position moves past it so that an error further on cannot repeat it forever.
            emitter.set_pos(dir_pos(block_start, entry.offset)?);
            if !emitter.emit(entry.name, entry.ino, entry.file_type) {
                return Ok(());
            }
            emitter.set_pos(dir_pos(block_start, entry.offset + entry.rec_len)?);
        }
        emitter.set_pos(dir_pos(block_start, BLOCK_SIZE)?);
    }
}
