// SPDX-License-Identifier: GPL-2.0

//! Reading inodes from the inode table into the inode cache.

use super::superblock::{corruption, group_corruption};
use crate::checksum::bitmap_checksum;
use crate::disk::{
    bitmap_test, Inode as DiskInode, Timestamp, FT_DIR, FT_REG, FT_SYMLINK, INLINE_DATA_MAX,
    INODE_FLAGS_USER, INODE_FLAG_APPEND, INODE_FLAG_IMMUTABLE, INODE_FLAG_NOATIME, INODE_FLAG_SYNC,
    N_DIRECT,
};
use crate::error::FormatError;
use crate::vfs::buffer::Verified;
use crate::vfs::inode::{Iget, InodeAttrs, InodeFlags, InodeKind, InodeRef, NewInode};
use crate::vfs::super_block::SuperBlock;
use core::sync::atomic::{AtomicBool, AtomicU64};
use kernel::prelude::*;

/// What AegisFS keeps about an inode besides the VFS fields.
pub(crate) struct InodeInfo {
    /// Part of the checksums of the inode's indirect and directory blocks.
    pub(crate) generation: u32,
    /// Direct block pointers (validated when used).
    pub(crate) direct: [u64; N_DIRECT],
    /// Roots of the single, double and triple indirect trees (validated when used).
    pub(crate) tree_roots: [u64; 3],
    /// Whether data pointers may carry the UNWRITTEN bit (regular files only).
    pub(crate) unwritten_ok: bool,
    /// The inode flags users see (`FS_*_FL` numbering), for `FS_IOC_GETFLAGS`.
    pub(crate) user_flags: u32,
    /// Creation time, for `statx` birth time.
    pub(crate) crtime: Timestamp,
    /// A fast symlink's target, NUL terminated (`i_link` points here).
    pub(crate) link: [u8; InodeInfo::LINK_BUFFER_SIZE],
    /// Directory block where the last lookup found its name: lookups in `readdir` order
    /// (like `ls -l`) then find the next name without scanning the directory from the start.
    pub(crate) lookup_start: AtomicU64,
    /// Whether corruption in the inode's blocks was already logged.
    pub(crate) corruption_reported: AtomicBool,
}

impl InodeInfo {
    pub(crate) const LINK_BUFFER_SIZE: usize = INLINE_DATA_MAX + 1;

    /// The state of a freshly allocated inode, before it is read.
    pub(crate) fn empty() -> Self {
        Self {
            generation: 0,
            direct: [0; N_DIRECT],
            tree_roots: [0; 3],
            unwritten_ok: false,
            user_flags: 0,
            crtime: Timestamp::new(0, 0),
            link: [0; Self::LINK_BUFFER_SIZE],
            lookup_start: AtomicU64::new(0),
            corruption_reported: AtomicBool::new(false),
        }
    }
}

/// Whether inode `index` of `group` is marked in use in its group's inode bitmap.
fn inode_in_use(sb: &SuperBlock, group: u32, index: u32) -> Result<bool> {
    let info = sb.info();
    let geo = info.geometry();
    let (Some(block), Some(expected)) = (
        geo.inode_bitmap_block(group),
        info.inode_bitmap_checksum(group),
    ) else {
        return Err(EUCLEAN);
    };
    let bh = sb.bread(block)?;
    if !bh.is_verified(Verified::InodeBitmap) {
        if bitmap_checksum(geo.checksum_seed(), group, bh.data()) != expected {
            return Err(group_corruption(
                sb,
                group,
                FormatError::InodeBitmapChecksum.msg(),
            ));
        }
        bh.set_verified(Verified::InodeBitmap);
    }
    Ok(bitmap_test(bh.data(), index))
}

/// Returns inode `ino`, reading and validating it if it is not cached.
pub(crate) fn iget(sb: &SuperBlock, ino: u32) -> Result<InodeRef> {
    match sb.iget(ino)? {
        Iget::Cached(inode) => Ok(inode),
        Iget::New(new) => read_inode(new),
    }
}

fn read_inode(new: NewInode) -> Result<InodeRef> {
    let sb = new.sb();
    let ino = new.ino();
    let geo = sb.info().geometry();
    let loc = geo
        .inode_location(ino)
        .map_err(|e| corruption(sb, ino, e.msg()))?;
    if !inode_in_use(sb, loc.group, loc.index)? {
        return Err(corruption(
            sb,
            ino,
            "directory entry refers to a free inode",
        ));
    }
    let bh = sb.bread(loc.block)?;
    let raw = loc
        .offset
        .checked_add(usize::from(geo.inode_size()))
        .and_then(|end| bh.data().get(loc.offset..end))
        .ok_or(EUCLEAN)?;
    let disk = DiskInode::validate(ino, raw, geo).map_err(|e| corruption(sb, ino, e.msg()))?;
    let nlink = disk.links_count.get();
    if nlink == 0 {
        return Err(corruption(sb, ino, "deleted inode is still referenced"));
    }

    let mut info = InodeInfo::empty();
    info.generation = disk.generation.get();
    for (dst, src) in info.direct.iter_mut().zip(disk.direct.iter()) {
        *dst = src.get();
    }
    info.tree_roots = [
        disk.indirect.get(),
        disk.double_indirect.get(),
        disk.triple_indirect.get(),
    ];
    info.crtime = disk.crtime();
    info.user_flags = disk.flags.get() & INODE_FLAGS_USER;

    let kind = match disk.file_type() {
        Some(FT_REG) => InodeKind::Regular,
        Some(FT_DIR) => InodeKind::Directory,
        Some(FT_SYMLINK) => match disk.inline_data() {
            Some(target) => {
                for (dst, src) in info.link.iter_mut().zip(target) {
                    *dst = *src;
                }
                InodeKind::FastSymlink
            }
            None => InodeKind::SlowSymlink,
        },
        _ => InodeKind::Special {
            rdev: disk.rdev.get(),
        },
    };
    info.unwritten_ok = kind == InodeKind::Regular;

    let flags = disk.flags.get();
    let attrs = InodeAttrs {
        mode: disk.mode.get(),
        uid: disk.uid.get(),
        gid: disk.gid.get(),
        nlink,
        size: disk.size.get(),
        // Validated to at most MAX_INODE_BLOCKS, so this does not saturate in practice.
        blocks_512: disk.blocks.get().saturating_mul(8),
        atime: disk.atime(),
        mtime: disk.mtime(),
        ctime: disk.ctime(),
        generation: info.generation,
        flags: InodeFlags {
            immutable: flags & INODE_FLAG_IMMUTABLE != 0,
            append: flags & INODE_FLAG_APPEND != 0,
            noatime: flags & INODE_FLAG_NOATIME != 0,
            sync: flags & INODE_FLAG_SYNC != 0,
        },
    };
    drop(bh);
    Ok(new.init(&attrs, info, kind))
}
