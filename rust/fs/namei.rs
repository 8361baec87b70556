// SPDX-License-Identifier: GPL-2.0

//! Name lookup in directories.

use super::blockmap::DirMap;
use super::dir::{block_count, DirBlock};
use super::inode::iget;
use crate::disk::NAME_MAX;
use crate::vfs::inode::{Inode, InodeRef};
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// Finds `name` in directory `dir`; `None` when there is no such entry.
pub(crate) fn lookup(dir: &Inode, name: &[u8]) -> Result<Option<InodeRef>> {
    if name.len() > NAME_MAX {
        return Err(ENAMETOOLONG);
    }
    let blocks = block_count(dir);
    let lookup_start = &dir.info().lookup_start;
    let start = lookup_start.load(Ordering::Relaxed);
    let start = if start < blocks { start } else { 0 };
    let mut map = DirMap::new(dir);
    for step in 0..blocks {
        crate::vfs::cond_resched();
        // Both are below `blocks`, so neither the sum nor the remainder can overflow.
        let index = (start + step) % blocks;
        let block = DirBlock::read(dir, &mut map, index)?;
        if let Some(ino) = block.find(name) {
            drop(block);
            lookup_start.store(index, Ordering::Relaxed);
            return iget(dir.sb(), ino).map(Some);
        }
    }
    Ok(None)
}
