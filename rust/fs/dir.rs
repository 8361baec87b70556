// SPDX-License-Identifier: GPL-2.0

//! Directories: validated directory blocks, `readdir`, and adding, changing and removing
//! entries (the VFS holds the directory's `i_rwsem` exclusive for changes, shared for
//! reading, so blocks never change under a reader).
//!
//! Directory positions of linear directories are byte offsets in the directory, so they
//! stay valid across calls and `seekdir`: an offset that does not start an entry resumes at
//! the next one. Indexed directories (`dirindex`) use byte offsets in their first block
//! and hash positions after it.

use super::blockmap::{self, DirMap};
use super::dirindex;
use super::superblock::inode_corruption;
use crate::dir::{
    add_entry, init_dir_block, init_first_dir_block, is_empty_dir_block, iter_verified_dir_block,
    min_rec_len, patch_dir_block_checksum, remove_entry, set_dir_block_checksum, set_entry_inode,
    verify_dir_block_checksum, DirChange, DirIter,
};
use crate::disk::{BLOCK_SIZE, BLOCK_SIZE_U64, DIR_ENTRY_HEADER_SIZE, DIR_TAIL_OFFSET, NAME_MAX};
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

    /// The block's bytes.
    pub(crate) fn data(&self) -> &[u8; BLOCK_SIZE] {
        self.bh.data()
    }

    /// Whether a record has `need` bytes to give to a new entry. The block was validated
    /// when it was read, so the records are walked as they are (as in `find_pos`).
    pub(crate) fn has_room(&self, need: usize) -> bool {
        let block = self.bh.data();
        let mut offset = 0usize;
        while offset < DIR_TAIL_OFFSET {
            let Some(&[i0, i1, i2, i3, r0, r1, name_len, _]) =
                block.get(offset..offset + DIR_ENTRY_HEADER_SIZE)
            else {
                return false;
            };
            let rec_len = usize::from(u16::from_le_bytes([r0, r1]));
            // Cannot happen in a validated block; stops the walk rather than loop forever.
            if rec_len < DIR_ENTRY_HEADER_SIZE {
                return false;
            }
            let used = if u32::from_le_bytes([i0, i1, i2, i3]) == 0 {
                0
            } else {
                min_rec_len(usize::from(name_len))
            };
            if rec_len.saturating_sub(used) >= need {
                return true;
            }
            offset += rec_len;
        }
        false
    }

    /// Whether the block has no used record.
    pub(crate) fn is_unused(&self) -> Result<bool> {
        for entry in self.entries() {
            if entry.map_err(|_| EUCLEAN)?.ino != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The name, inode and file type of the used record at `offset`, an offset
    /// [`DirBlock::entries`] returned (the block was validated, so the header is read as
    /// is).
    pub(crate) fn record(&self, offset: usize) -> Option<(&[u8], u32, u8)> {
        let block = self.bh.data();
        let header = block.get(offset..offset.checked_add(DIR_ENTRY_HEADER_SIZE)?)?;
        let &[i0, i1, i2, i3, _, _, name_len, file_type] = header else {
            return None;
        };
        let ino = u32::from_le_bytes([i0, i1, i2, i3]);
        let name_start = offset + DIR_ENTRY_HEADER_SIZE;
        let name = block.get(name_start..name_start + usize::from(name_len))?;
        (ino != 0).then_some((name, ino, file_type))
    }

    /// The inode number of the used entry named `name`, if any.
    pub(crate) fn find(&self, name: &[u8]) -> Option<u32> {
        self.find_pos(name).map(|(_, ino)| ino)
    }

    /// The offset and inode number of the used entry named `name`, if any.
    pub(crate) fn find_pos(&self, name: &[u8]) -> Option<(usize, u32)> {
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
                    return Some((offset, ino));
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
    if !dirindex::is_indexed(dir) {
        return iterate_blocks(dir, emitter, dir.size());
    }
    iterate_blocks(dir, emitter, BLOCK_SIZE_U64)?;
    dirindex::iterate(dir, emitter)
}

/// `readdir` of the directory blocks before byte `size`, positions being byte offsets.
fn iterate_blocks(dir: &Inode, emitter: &mut DirEmitter, size: u64) -> Result {
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

/// Where a directory entry is: block `index` of the directory, byte `offset` in it.
#[derive(Clone, Copy)]
pub(crate) struct EntryPos {
    pub(crate) index: u64,
    pub(crate) offset: usize,
    pub(crate) ino: u32,
}

/// Changes block `index` of `dir` with `f` and updates the block's checksum: patched for
/// the bytes `f` says it changed, rehashed when it does not say (`None`).
pub(super) fn modify_block(
    dir: &Inode,
    index: u64,
    f: impl FnOnce(&mut [u8; BLOCK_SIZE]) -> crate::error::Result<Option<DirChange>>,
) -> Result {
    let mut map = DirMap::new(dir);
    let block = DirBlock::read(dir, &mut map, index)?;
    let seed = block.geometry.checksum_seed();
    let generation = dir.info().generation;
    super::journal::modify(dir.sb(), &block.bh, Some(dir), |data| {
        let result = f(data);
        // The checksum was verified when the block was read and kept right by every change
        // since, so a change of a few bytes only needs those bytes hashed.
        let patched = matches!(&result, Ok(Some(change)) if patch_dir_block_checksum(data, change));
        if !patched {
            set_dir_block_checksum(data, seed, dir.ino(), generation);
        }
        result.map(drop)
    })
    .map_err(|e| inode_corruption(dir, e.msg()))
}

/// Finds the used entry `name` of `dir`.
pub(crate) fn find(dir: &Inode, name: &[u8]) -> Result<Option<EntryPos>> {
    if dirindex::is_indexed(dir) {
        return dirindex::find(dir, name);
    }
    find_in_blocks(dir, name, block_count(dir))
}

/// Finds the used entry `name` in the first `blocks` blocks of `dir`.
fn find_in_blocks(dir: &Inode, name: &[u8], blocks: u64) -> Result<Option<EntryPos>> {
    let mut map = DirMap::new(dir);
    for index in 0..blocks {
        crate::vfs::cond_resched();
        let block = DirBlock::read(dir, &mut map, index)?;
        if let Some((offset, ino)) = block.find_pos(name) {
            return Ok(Some(EntryPos { index, offset, ino }));
        }
    }
    Ok(None)
}

/// Adds the entry `name` -> `ino` to `dir`: in an indexed directory into the leaf of its
/// hash (the head only loses names once the directory is indexed, so that lookups can
/// skip it, see [`dirindex::HeadNames`]); in a linear one into the first block with room,
/// else into a new block at the end, or, on a filesystem with `DIR_INDEX`, by indexing a
/// directory of one full block. ENAMETOOLONG for names above 255 bytes.
pub(crate) fn add(dir: &Inode, name: &[u8], ino: u32, file_type: u8) -> Result {
    if name.len() > NAME_MAX {
        return Err(ENAMETOOLONG);
    }
    if dirindex::is_indexed(dir) {
        return dirindex::add(dir, name, ino, file_type);
    }
    let blocks = block_count(dir);
    let mut map = DirMap::new(dir);
    for index in 0..blocks {
        crate::vfs::cond_resched();
        let block = DirBlock::read(dir, &mut map, index)?;
        if block.has_room(min_rec_len(name.len())) {
            drop(block);
            return modify_block(dir, index, |data| {
                add_entry(data, ino, name, file_type)?
                    .ok_or(crate::error::FormatError::DirRecLen)
                    .map(Some)
            });
        }
    }
    drop(map);
    if blocks == 1 && dir.sb().info().geometry().dir_hash_key().is_some() {
        dirindex::convert(dir)?;
        return dirindex::add(dir, name, ino, file_type);
    }
    let mapped = blockmap::get_blocks(dir, blocks, 1, true)?.ok_or(EIO)?;
    let sb = dir.sb();
    let geo = sb.info().geometry();
    let bh = sb.new_block(mapped.start)?;
    let generation = dir.info().generation;
    super::journal::modify(dir.sb(), &bh, Some(dir), |data| {
        init_dir_block(data);
        let added = add_entry(data, ino, name, file_type);
        set_dir_block_checksum(data, geo.checksum_seed(), dir.ino(), generation);
        added
    })
    .map_err(|_| EINVAL)?;
    dir.set_size((blocks + 1) * BLOCK_SIZE_U64);
    dir.mark_dirty();
    Ok(())
}

/// Points the entry at `pos` to `ino` of `file_type`.
pub(crate) fn set(dir: &Inode, pos: EntryPos, ino: u32, file_type: u8) -> Result {
    modify_block(dir, pos.index, |data| {
        set_entry_inode(data, pos.offset, ino, file_type).map(Some)
    })
}

/// Removes the entry at `pos`; empty blocks at the end of a linear directory are freed
/// (an index keeps its leaves).
pub(crate) fn remove(dir: &Inode, pos: EntryPos) -> Result {
    modify_block(dir, pos.index, |data| {
        remove_entry(data, pos.offset).map(Some)
    })?;
    if dirindex::is_indexed(dir) {
        return Ok(());
    }
    let mut blocks = block_count(dir);
    while blocks > 1 {
        let mut map = DirMap::new(dir);
        let block = DirBlock::read(dir, &mut map, blocks - 1)?;
        let mut unused = true;
        for entry in block.entries() {
            if entry.map_err(|e| inode_corruption(dir, e.msg()))?.ino != 0 {
                unused = false;
                break;
            }
        }
        drop(block);
        if !unused {
            break;
        }
        let mut map = dir.map_write();
        let freed = blockmap::free_range(dir, &mut map, blocks - 1, blocks);
        blockmap::finish_changes(dir, map);
        freed?;
        blocks -= 1;
        dir.set_size(blocks * BLOCK_SIZE_U64);
        dir.mark_dirty();
    }
    Ok(())
}

/// Whether `dir` holds nothing but `.` and `..`.
pub(crate) fn is_empty(dir: &Inode) -> Result<bool> {
    let indexed = dirindex::is_indexed(dir);
    let linear_blocks = if indexed { 1 } else { block_count(dir) };
    let mut map = DirMap::new(dir);
    for index in 0..linear_blocks {
        let block = DirBlock::read(dir, &mut map, index)?;
        if !is_empty_dir_block(block.bh.data()).map_err(|e| inode_corruption(dir, e.msg()))? {
            return Ok(false);
        }
    }
    if indexed {
        return dirindex::leaves_empty(dir);
    }
    Ok(true)
}

/// Gives new directory `dir` its first block, with `.` and `..` (-> `parent`).
pub(crate) fn init(dir: &Inode, parent: u32) -> Result {
    let mapped = blockmap::get_blocks(dir, 0, 1, true)?.ok_or(EIO)?;
    let sb = dir.sb();
    let seed = sb.info().geometry().checksum_seed();
    let bh = sb.new_block(mapped.start)?;
    let generation = dir.info().generation;
    super::journal::modify(dir.sb(), &bh, Some(dir), |data| {
        let result = init_first_dir_block(data, dir.ino(), parent);
        set_dir_block_checksum(data, seed, dir.ino(), generation);
        result
    })
    .map_err(|_| EINVAL)?;
    dir.set_size(BLOCK_SIZE_U64);
    dir.mark_dirty();
    Ok(())
}
