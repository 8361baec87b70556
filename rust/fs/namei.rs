// SPDX-License-Identifier: GPL-2.0

//! Name lookup in directories.

use super::dir::{block_count, DirBlock};
use super::inode::iget;
use super::superblock::inode_corruption;
use crate::disk::NAME_MAX;
use crate::vfs::inode::{Inode, InodeRef};
use kernel::prelude::*;

/// Finds `name` in directory `dir`; `None` when there is no such entry.
pub(crate) fn lookup(dir: &Inode, name: &[u8]) -> Result<Option<InodeRef>> {
    if name.len() > NAME_MAX {
        return Err(ENAMETOOLONG);
    }
    for index in 0..block_count(dir) {
        crate::vfs::cond_resched();
        let block = DirBlock::read(dir, index)?;
        for entry in block.entries() {
            let entry = entry.map_err(|e| inode_corruption(dir, e.msg()))?;
            if entry.ino != 0 && entry.name == name {
                let ino = entry.ino;
                drop(block);
                return iget(dir.sb(), ino).map(Some);
            }
        }
    }
    Ok(None)
}
