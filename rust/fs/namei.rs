// SPDX-License-Identifier: GPL-2.0

//! The namespace: lookup, and creating, linking, removing and renaming names.
//!
//! The VFS checks permissions, existence and types (EEXIST, ENOENT, EISDIR, ENOTDIR, a
//! directory moved under itself) and holds the locks; these functions change the
//! directories and link counts, and report what only the filesystem knows (ENOTEMPTY,
//! ENAMETOOLONG, ENOSPC, EMLINK).

use super::blockmap::DirMap;
use super::dir::{self, block_count, DirBlock};
use super::inode::{iget, new_inode};
use crate::disk::{file_type_of_mode, FT_DIR, NAME_MAX, SYMLINK_MAX, S_IFCHR, S_IFDIR, S_IFMT};
use crate::vfs::dentry::Dentry;
use crate::vfs::inode::{Inode, InodeRef, NewInode};
use core::sync::atomic::Ordering;
use kernel::bindings;
use kernel::prelude::*;

/// Finds `name` in directory `dir`; `None` when there is no such entry.
pub(crate) fn lookup(dir: &Inode, name: &[u8]) -> Result<Option<InodeRef>> {
    if name.len() > NAME_MAX {
        return Err(ENAMETOOLONG);
    }
    if super::dirindex::is_indexed(dir) {
        return match dir::find(dir, name)? {
            Some(pos) => iget(dir.sb(), pos.ino).map(Some),
            None => Ok(None),
        };
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

/// The parent of directory `dir`, from its `..` entry (`get_parent` of NFS export and
/// `open_by_handle_at`, which reconnect a directory found by its handle to the tree).
/// ENOENT when `dir` has been removed.
pub(crate) fn parent(dir: &Inode) -> Result<InodeRef> {
    if !is_dir(dir) {
        return Err(ENOTDIR);
    }
    // Keeps a rename from changing `..` while it is read.
    let _lock = dir.lock_shared();
    // A removed directory has no parent (and rmdir sets its size to 0).
    if dir.nlink() == 0 || block_count(dir) == 0 {
        return Err(ENOENT);
    }
    let mut map = DirMap::new(dir);
    // `.` and `..` are the first two entries of the first block.
    let ino = DirBlock::read(dir, &mut map, 0)?
        .find(b"..")
        .ok_or_else(|| super::superblock::inode_corruption(dir, "directory has no `..` entry"))?;
    iget(dir.sb(), ino)
}

/// Most hard links a file may have (the on-disk count is 32 bits; ext4's limit).
const LINK_MAX: u32 = 65000;

fn file_type(inode: &Inode) -> u8 {
    file_type_of_mode(inode.mode()).unwrap_or(0)
}

fn is_dir(inode: &Inode) -> bool {
    inode.mode() & S_IFMT == S_IFDIR
}

/// Writes the inode now when the directory or mount asks for synchronous updates.
fn dir_changed(dir: &Inode) {
    dir.touch(true);
    dir.mark_dirty();
}

/// Creates a file of `mode` named by `dentry` in `dir` (`rdev` for devices, `link` for a
/// symlink's target). Like `tmpfile` and `link`, tries once more after a commit on ENOSPC
/// (the blocks a recent unlink freed become usable only then), as ext4 does.
pub(crate) fn create(
    idmap: *mut bindings::mnt_idmap,
    dir: &Inode,
    dentry: &Dentry,
    mode: u16,
    rdev: u32,
    link: Option<&kernel::str::CStr>,
) -> Result {
    let name = dentry.name();
    if name.len() > NAME_MAX {
        return Err(ENAMETOOLONG);
    }
    super::journal::retry_after_commit(dir.sb(), || {
        let _handle = super::journal::start(dir.sb())?;
        let directory = mode & S_IFMT == S_IFDIR;
        if directory && dir.nlink() >= LINK_MAX {
            return Err(EMLINK);
        }
        let new = new_inode(idmap, dir, mode, rdev, link.map(|l| l.to_bytes()))?;
        fill_new(&new, dir, link)?;
        dir::add(dir, name, new.ino(), file_type(new.inode()))?;
        if directory {
            dir.inc_nlink();
        }
        dir_changed(dir);
        new.instantiate(dentry);
        Ok(())
    })
}

/// Gives a new inode its contents: a directory's first block, a slow symlink's target.
fn fill_new(new: &NewInode, dir: &Inode, link: Option<&kernel::str::CStr>) -> Result {
    let inode = new.inode();
    if is_dir(inode) {
        return dir::init(inode, dir.ino());
    }
    if let Some(target) = link {
        if !inode.info().inline_link {
            inode.write_symlink(target)?;
        }
    }
    Ok(())
}

/// Checks a symlink target's length: ENAMETOOLONG beyond 4095 bytes.
pub(crate) fn check_symlink(target: &[u8]) -> Result {
    if target.len() as u64 > SYMLINK_MAX {
        return Err(ENAMETOOLONG);
    }
    Ok(())
}

/// An unnamed regular file in `dir` (`O_TMPFILE`), handed to `file`.
pub(crate) fn tmpfile(
    idmap: *mut bindings::mnt_idmap,
    dir: &Inode,
    file: *mut bindings::file,
    mode: u16,
) -> Result {
    super::journal::retry_after_commit(dir.sb(), || {
        let _handle = super::journal::start(dir.sb())?;
        let new = new_inode(idmap, dir, mode, 0, None)?;
        // Without a name it is deleted at its last close, or at the next mount after a crash.
        super::orphan::add(new.inode())?;
        new.instantiate_tmpfile(file);
        Ok(())
    })
}

/// A new name `dentry` in `dir` for the inode of `old`.
pub(crate) fn link(old: &Dentry, dir: &Inode, dentry: &Dentry) -> Result {
    let inode = old.inode().ok_or(ENOENT)?;
    super::journal::retry_after_commit(dir.sb(), || {
        let _handle = super::journal::start(dir.sb())?;
        if inode.nlink() >= LINK_MAX {
            return Err(EMLINK);
        }
        dir::add(dir, dentry.name(), inode.ino(), file_type(inode))?;
        let was_orphan = inode.nlink() == 0;
        inode.inc_nlink();
        if was_orphan {
            // An O_TMPFILE file gets its name.
            super::orphan::remove(inode)?;
        }
        inode.touch(false);
        inode.mark_dirty();
        dir_changed(dir);
        dentry.instantiate_link(inode);
        Ok(())
    })
}

/// `inode` lost its last name: deleted when the last user closes it, until then recorded
/// in the orphan list.
fn last_name_removed(inode: &Inode) -> Result {
    super::orphan::add(inode)?;
    super::journal::forget_ordered(inode.sb(), inode);
    Ok(())
}

/// Removes the name `dentry` of a file from `dir`.
pub(crate) fn unlink(dir: &Inode, dentry: &Dentry) -> Result {
    let inode = dentry.inode().ok_or(ENOENT)?;
    let _handle = super::journal::start(dir.sb())?;
    let pos = dir::find(dir, dentry.name())?.ok_or(ENOENT)?;
    if pos.ino != inode.ino() {
        return Err(super::superblock::inode_corruption(
            dir,
            "directory entry does not match the cached name",
        ));
    }
    dir::remove(dir, pos)?;
    inode.drop_nlink();
    if inode.nlink() == 0 {
        last_name_removed(inode)?;
    }
    inode.touch(false);
    inode.mark_dirty();
    dir_changed(dir);
    Ok(())
}

/// Removes the empty directory `dentry` from `dir`.
pub(crate) fn rmdir(dir: &Inode, dentry: &Dentry) -> Result {
    let inode = dentry.inode().ok_or(ENOENT)?;
    let _handle = super::journal::start(dir.sb())?;
    if !dir::is_empty(inode)? {
        return Err(ENOTEMPTY);
    }
    unlink(dir, dentry)?;
    inode.clear_nlink();
    super::orphan::add(inode)?;
    inode.set_size(0);
    // Without blocks it has no index either.
    inode.info().dir_indexed.store(false, Ordering::Relaxed);
    inode.mark_dirty();
    dir.drop_nlink();
    dir.mark_dirty();
    Ok(())
}

/// `RENAME_*` flags (include/uapi/linux/fs.h).
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const RENAME_WHITEOUT: u32 = 4;

/// Points the `..` of directory `inode` to `parent`.
fn set_dotdot(inode: &Inode, parent: &Inode) -> Result {
    let pos = dir::find(inode, b"..")?.ok_or(EUCLEAN)?;
    dir::set(inode, pos, parent.ino(), FT_DIR)
}

/// `rename(2)` with `flags`: moves `old` in `old_dir` to `new` in `new_dir`, replacing what
/// `new` names; or swaps the two (`RENAME_EXCHANGE`); `RENAME_WHITEOUT` leaves a whiteout
/// (a 0:0 character device) at the old name.
pub(crate) fn rename(
    idmap: *mut bindings::mnt_idmap,
    old_dir: &Inode,
    old: &Dentry,
    new_dir: &Inode,
    new: &Dentry,
    flags: u32,
) -> Result {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0 {
        return Err(EINVAL);
    }
    if new.name().len() > NAME_MAX {
        return Err(ENAMETOOLONG);
    }
    let inode = old.inode().ok_or(ENOENT)?;
    let _handle = super::journal::start(old_dir.sb())?;
    let old_pos = dir::find(old_dir, old.name())?.ok_or(ENOENT)?;
    if flags & RENAME_EXCHANGE != 0 {
        return exchange(old_dir, old_pos, inode, new_dir, new);
    }
    let moving_dir = is_dir(inode);
    let cross = old_dir.ino() != new_dir.ino();
    let target = new.inode();
    if let Some(target) = target {
        if is_dir(target) && !dir::is_empty(target)? {
            return Err(ENOTEMPTY);
        }
    } else if moving_dir && cross && new_dir.nlink() >= LINK_MAX {
        return Err(EMLINK);
    }
    // The whiteout is made first, so that a failure leaves the old name in place.
    let whiteout = if flags & RENAME_WHITEOUT != 0 {
        Some(new_inode(idmap, old_dir, S_IFCHR, 0, None)?)
    } else {
        None
    };

    match target {
        Some(target) => {
            let pos = dir::find(new_dir, new.name())?.ok_or(ENOENT)?;
            dir::set(new_dir, pos, inode.ino(), file_type(inode))?;
            if is_dir(target) {
                target.clear_nlink();
            } else {
                target.drop_nlink();
            }
            if target.nlink() == 0 {
                last_name_removed(target)?;
            }
            target.touch(false);
            target.mark_dirty();
        }
        None => {
            dir::add(new_dir, new.name(), inode.ino(), file_type(inode))?;
            if moving_dir {
                new_dir.inc_nlink();
            }
        }
    }
    match whiteout {
        Some(w) => {
            dir::set(old_dir, old_pos, w.ino(), file_type(w.inode()))?;
            w.release();
        }
        None => dir::remove(old_dir, old_pos)?,
    }
    if moving_dir {
        if cross {
            set_dotdot(inode, new_dir)?;
        }
        // The old directory loses the moved directory's `..` (within one directory, the
        // new name gained it: net nothing without a target; with a target directory, that
        // one's `..` is gone).
        old_dir.drop_nlink();
    }
    inode.touch(false);
    inode.mark_dirty();
    dir_changed(old_dir);
    if cross {
        dir_changed(new_dir);
    }
    Ok(())
}

/// `RENAME_EXCHANGE`: swaps the inodes `old` (at `old_pos` in `old_dir`) and `new` name.
fn exchange(
    old_dir: &Inode,
    old_pos: dir::EntryPos,
    inode: &Inode,
    new_dir: &Inode,
    new: &Dentry,
) -> Result {
    let other = new.inode().ok_or(ENOENT)?;
    let new_pos = dir::find(new_dir, new.name())?.ok_or(ENOENT)?;
    dir::set(old_dir, old_pos, other.ino(), file_type(other))?;
    dir::set(new_dir, new_pos, inode.ino(), file_type(inode))?;
    if old_dir.ino() != new_dir.ino() {
        if is_dir(inode) {
            set_dotdot(inode, new_dir)?;
        }
        if is_dir(other) {
            set_dotdot(other, old_dir)?;
        }
        match (is_dir(inode), is_dir(other)) {
            (true, false) => {
                new_dir.inc_nlink();
                old_dir.drop_nlink();
            }
            (false, true) => {
                old_dir.inc_nlink();
                new_dir.drop_nlink();
            }
            _ => {}
        }
        dir_changed(new_dir);
    }
    dir_changed(old_dir);
    for i in [inode, other] {
        i.touch(false);
        i.mark_dirty();
    }
    Ok(())
}
