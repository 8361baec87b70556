// SPDX-License-Identifier: GPL-2.0

//! Reading directories: validated directory blocks and `readdir`.
//!
//! Directory positions are byte offsets in the directory, so they stay valid across calls
//! and `seekdir`: an offset that does not start an entry resumes at the next one.

use super::blockmap::dir_block;
use super::superblock::inode_corruption;
use crate::dir::{check_name, min_rec_len, verify_dir_block_checksum};
use crate::disk::{
    BLOCK_SIZE, BLOCK_SIZE_U64, DIR_ENTRY_HEADER_SIZE, DIR_TAIL_OFFSET, FIRST_INO, FT_MAX, ROOT_INO,
};
use crate::error::FormatError;
use crate::vfs::buffer::{BufferHead, Verified};
use crate::vfs::inode::Inode;
use crate::vfs::ops::DirEmitter;
use kernel::prelude::*;

/// A record of a directory block.
pub(crate) struct Entry<'a> {
    /// Byte offset of the record in its block.
    pub(crate) offset: usize,
    /// Bytes to the next record.
    pub(crate) rec_len: usize,
    /// Inode number; 0 for an unused record.
    pub(crate) ino: u32,
    pub(crate) name: &'a [u8],
    pub(crate) file_type: u8,
}

/// Iterator over the records of a directory block whose checksum was verified; each record
/// is checked before it is returned, and the first bad one ends the walk with an error.
///
/// The format crate's `iter_dir_block` applies the same rules but always recomputes the
/// block checksum; this one relies on the buffer's verified bit instead.
pub(crate) struct Entries<'a> {
    block: &'a [u8; BLOCK_SIZE],
    offset: usize,
    inodes_count: u32,
    failed: bool,
}

impl<'a> Entries<'a> {
    fn parse(&self) -> core::result::Result<Entry<'a>, FormatError> {
        let block = self.block;
        let off = self.offset;
        let header = off
            .checked_add(DIR_ENTRY_HEADER_SIZE)
            .filter(|&end| end <= DIR_TAIL_OFFSET)
            .and_then(|end| block.get(off..end))
            .ok_or(FormatError::DirRecLen)?;
        let &[i0, i1, i2, i3, r0, r1, name_len, file_type] = header else {
            return Err(FormatError::DirRecLen);
        };
        let ino = u32::from_le_bytes([i0, i1, i2, i3]);
        let rec_len = usize::from(u16::from_le_bytes([r0, r1]));
        let name_len = usize::from(name_len);
        if rec_len < DIR_ENTRY_HEADER_SIZE
            || rec_len % 4 != 0
            || rec_len < min_rec_len(name_len)
            || off + rec_len > DIR_TAIL_OFFSET
        {
            return Err(FormatError::DirRecLen);
        }
        if file_type > FT_MAX {
            return Err(FormatError::DirFileType);
        }
        if ino == 0 {
            return Ok(Entry {
                offset: off,
                rec_len,
                ino,
                name: &[],
                file_type,
            });
        }
        if ino > self.inodes_count || ino == 1 || (ino > ROOT_INO && ino < FIRST_INO) {
            return Err(FormatError::DirInode);
        }
        let name_start = off + DIR_ENTRY_HEADER_SIZE;
        let name = block
            .get(name_start..name_start + name_len)
            .ok_or(FormatError::DirRecLen)?;
        check_name(name)?;
        Ok(Entry {
            offset: off,
            rec_len,
            ino,
            name,
            file_type,
        })
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = core::result::Result<Entry<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= DIR_TAIL_OFFSET {
            return None;
        }
        match self.parse() {
            Ok(entry) => {
                self.offset += entry.rec_len;
                Some(Ok(entry))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// A block of a directory, checksum verified.
pub(crate) struct DirBlock {
    bh: BufferHead,
    inodes_count: u32,
}

impl DirBlock {
    /// Reads block `index` of directory `dir`.
    pub(crate) fn read(dir: &Inode, index: u64) -> Result<Self> {
        let sb = dir.sb();
        let geo = sb.info().geometry();
        let bh = sb.bread(dir_block(dir, index)?)?;
        if !bh.is_verified(Verified::Directory) {
            verify_dir_block_checksum(
                bh.data(),
                geo.checksum_seed(),
                dir.ino(),
                dir.info().generation,
            )
            .map_err(|e| inode_corruption(dir, e.msg()))?;
            bh.set_verified(Verified::Directory);
        }
        Ok(Self {
            bh,
            inodes_count: geo.inodes_count(),
        })
    }

    pub(crate) fn entries(&self) -> Entries<'_> {
        Entries {
            block: self.bh.data(),
            offset: 0,
            inodes_count: self.inodes_count,
            failed: false,
        }
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
        let block = DirBlock::read(dir, index)?;
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
