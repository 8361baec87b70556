// SPDX-License-Identifier: GPL-2.0

//! Extended attributes (docs/format.md, "Extended attributes"): entries in the inode's
//! inline area (bytes 0x100..inode_size of its slot in the inode table) and in one xattr
//! block.
//!
//! Readers hold the inode's xattr lock shared, writers exclusive (and the inode lock, which
//! the VFS takes). A change is planned on copies of the inline area and the block, so that a
//! refusal (EEXIST, ENODATA, ENOSPC) changes nothing, then written in one journal handle:
//! the block (allocated near the inode when first needed, freed when emptied), then the
//! inode slot (inline area, `extra_size`, `xattr_block`, `blocks`).

use super::alloc;
use super::inode::{copy_slot, SLOT_MAX};
use super::journal;
use super::superblock::inode_corruption;
use crate::blockmap::PTR_UNWRITTEN;
use crate::checksum::set_inode_checksum;
use crate::disk::{Inode as DiskInode, BLOCK_SIZE, NAME_MAX};
use crate::error::FormatError;
use crate::vfs::buffer::{BufferHead, Verified};
use crate::vfs::inode::Inode;
use crate::xattr::{
    check_disjoint, entries, find, inline_area, inline_area_mut, inline_used, insert, remove,
    validate_inline, XattrBlock, XattrEntry, XATTR_INLINE_OFFSET,
};
use kernel::prelude::*;

/// `setxattr` flags (include/uapi/linux/xattr.h).
pub(crate) const XATTR_CREATE: u32 = 1;
pub(crate) const XATTR_REPLACE: u32 = 2;

fn corrupt(inode: &Inode, e: FormatError) -> Error {
    inode_corruption(inode, e.msg())
}

/// A copy of an inode's slot, with the inode table block it came from.
struct Slot {
    bh: BufferHead,
    offset: usize,
    size: usize,
    raw: [u8; SLOT_MAX],
}

impl Slot {
    /// Reads the slot of `inode` and checks its inline area.
    fn read(inode: &Inode) -> Result<Slot> {
        let slot = Self::load(inode)?;
        validate_inline(slot.raw()).map_err(|e| corrupt(inode, e))?;
        Ok(slot)
    }

    /// Reads the slot of `inode`.
    fn load(inode: &Inode) -> Result<Slot> {
        let sb = inode.sb();
        let geo = sb.info().geometry();
        let loc = geo.inode_location(inode.ino()).map_err(|_| EUCLEAN)?;
        let size = usize::from(geo.inode_size());
        let bh = sb.bread(loc.block)?;
        let mut raw = [0u8; SLOT_MAX];
        copy_slot(&bh, loc.offset, raw.get_mut(..size).ok_or(EUCLEAN)?)?;
        Ok(Slot {
            bh,
            offset: loc.offset,
            size,
            raw,
        })
    }

    fn raw(&self) -> &[u8] {
        self.raw.get(..self.size).unwrap_or(&[])
    }

    fn raw_mut(&mut self) -> &mut [u8] {
        self.raw.get_mut(..self.size).unwrap_or(&mut [])
    }

    fn xattr_block(&self) -> u64 {
        DiskInode::from_slot(self.raw()).map_or(0, |i| i.xattr_block.get())
    }

    /// Writes the inline area, its used length, the xattr block pointer and the block count
    /// of the inode into its slot (in the running transaction).
    fn write(&self, inode: &Inode, used: usize, xattr_block: u64) -> Result {
        let sb = inode.sb();
        let seed = sb.info().geometry().checksum_seed();
        let ino = inode.ino();
        let extra = u16::try_from(used).map_err(|_| EINVAL)?;
        let inline = self.raw().get(XATTR_INLINE_OFFSET..).unwrap_or(&[]);
        journal::modify(sb, &self.bh, None, |data| -> Result {
            let raw = self
                .offset
                .checked_add(self.size)
                .and_then(|end| data.get_mut(self.offset..end))
                .ok_or(EUCLEAN)?;
            let area = inline_area_mut(raw);
            area.get_mut(..inline.len())
                .ok_or(EUCLEAN)?
                .copy_from_slice(inline);
            let disk = DiskInode::from_slot_mut(raw).map_err(|_| EUCLEAN)?;
            disk.extra_size.set(extra);
            disk.xattr_block.set(xattr_block);
            disk.blocks.set(inode.blocks_512() / 8);
            set_inode_checksum(seed, ino, raw).map_err(|_| EUCLEAN)
        })
    }
}

/// Reads and checks (the first time the block is read) the xattr block of the inode whose
/// slot is `slot`; `None` when it has none.
fn read_block(inode: &Inode, slot: &Slot) -> Result<Option<BufferHead>> {
    let block = slot.xattr_block();
    if block == 0 {
        return Ok(None);
    }
    if block & PTR_UNWRITTEN != 0 {
        return Err(corrupt(inode, FormatError::UnwrittenPointer));
    }
    let sb = inode.sb();
    let geo = sb.info().geometry();
    if !geo.is_data_block(block) {
        return Err(inode_corruption(
            inode,
            "xattr block pointer outside the data area",
        ));
    }
    let bh = sb.bread(block)?;
    if !bh.is_verified(Verified::Xattr) {
        let x = XattrBlock::from_block(bh.data());
        x.validate(geo.checksum_seed(), block)
            .and_then(|()| {
                let raw = slot.raw();
                check_disjoint(inline_area(raw), inline_used(raw), &x.area, x.used())
            })
            .map_err(|e| corrupt(inode, e))?;
        bh.set_verified(Verified::Xattr);
    }
    Ok(Some(bh))
}

/// Calls `f` with the entry `index`/`name`, wherever it is; ENODATA when there is none.
fn with_entry<R>(
    inode: &Inode,
    index: u8,
    name: &[u8],
    f: impl FnOnce(&XattrEntry<'_>) -> Result<R>,
) -> Result<R> {
    let slot = Slot::read(inode)?;
    let raw = slot.raw();
    if let Some(e) =
        find(inline_area(raw), inline_used(raw), index, name).map_err(|e| corrupt(inode, e))?
    {
        return f(&e);
    }
    if let Some(bh) = read_block(inode, &slot)? {
        let x = XattrBlock::from_block(bh.data());
        if let Some(e) = find(&x.area, x.used(), index, name).map_err(|e| corrupt(inode, e))? {
            return f(&e);
        }
    }
    Err(ENODATA)
}

/// The value of attribute `name` of name index `index` copied into `out` (`None`: only its
/// length is wanted); returns its length. ENODATA without such an attribute, ERANGE when
/// `out` is too small, EIO after a shutdown (as ext4).
pub(crate) fn get(inode: &Inode, index: u8, name: &[u8], out: Option<&mut [u8]>) -> Result<usize> {
    if inode.sb().info().is_shutdown() {
        return Err(EIO);
    }
    if name.len() > NAME_MAX {
        return Err(ERANGE);
    }
    let _lock = inode.xattr_lock(false);
    with_entry(inode, index, name, |e| {
        if let Some(out) = out {
            out.get_mut(..e.value.len())
                .ok_or(ERANGE)?
                .copy_from_slice(e.value);
        }
        Ok(e.value.len())
    })
}

/// Calls `emit` with the name index and suffix of every attribute of `inode`.
pub(crate) fn list(inode: &Inode, mut emit: impl FnMut(u8, &[u8]) -> Result) -> Result {
    let _lock = inode.xattr_lock(false);
    let slot = Slot::read(inode)?;
    let raw = slot.raw();
    for e in entries(inline_area(raw), inline_used(raw)) {
        let e = e.map_err(|e| corrupt(inode, e))?;
        emit(e.index, e.name)?;
    }
    if let Some(bh) = read_block(inode, &slot)? {
        let x = XattrBlock::from_block(bh.data());
        for e in entries(&x.area, x.used()) {
            let e = e.map_err(|e| corrupt(inode, e))?;
            emit(e.index, e.name)?;
        }
    }
    Ok(())
}

/// Where the attributes of an inode are stored, for `FIEMAP_FLAG_XATTR`.
pub(crate) struct XattrStorage {
    /// Byte address on the device and length of the inode's inline area, when it holds an
    /// entry.
    pub(crate) inline: Option<(u64, u64)>,
    /// The inode's xattr block, if it has one.
    pub(crate) block: Option<u64>,
}

/// Where the attributes of `inode` are stored.
pub(crate) fn storage(inode: &Inode) -> Result<XattrStorage> {
    let _lock = inode.xattr_lock(false);
    let slot = Slot::read(inode)?;
    let inline = if inline_used(slot.raw()) > 0 {
        let start = slot
            .bh
            .block()
            .checked_mul(BLOCK_SIZE as u64)
            .and_then(|b| b.checked_add(u64::try_from(slot.offset + XATTR_INLINE_OFFSET).ok()?))
            .ok_or(EUCLEAN)?;
        let len = slot.size.checked_sub(XATTR_INLINE_OFFSET).ok_or(EUCLEAN)?;
        Some((start, len as u64))
    } else {
        None
    };
    let block = read_block(inode, &slot)?.map(|bh| bh.block());
    Ok(XattrStorage { inline, block })
}

/// A copy of an xattr block being changed.
struct BlockImage {
    data: KVec<u8>,
}

impl BlockImage {
    /// A copy of the block `bh`, or (without one) an empty xattr block.
    fn new(bh: Option<&BufferHead>) -> Result<Self> {
        let mut image = Self {
            data: KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?,
        };
        match bh {
            Some(bh) => image.block_mut()?.copy_from_slice(bh.data()),
            None => XattrBlock::from_block_mut(image.block_mut()?).init(),
        }
        Ok(image)
    }

    fn block_mut(&mut self) -> Result<&mut [u8; BLOCK_SIZE]> {
        <&mut [u8; BLOCK_SIZE]>::try_from(self.data.as_mut_slice()).map_err(|_| EINVAL)
    }

    fn xattr(&mut self) -> Result<&mut XattrBlock> {
        self.block_mut().map(XattrBlock::from_block_mut)
    }
}

/// `setxattr`/`removexattr` (the caller holds the inode lock and no handle): [`set`], once
/// more after a commit when ENOSPC may be only blocks the running transaction freed.
pub(crate) fn setxattr(
    inode: &Inode,
    index: u8,
    name: &[u8],
    value: Option<&[u8]>,
    flags: u32,
) -> Result {
    journal::retry_after_commit(inode.sb(), || set(inode, index, name, value, flags))
}

/// Sets attribute `name` of name index `index` to `value`, or removes it (`value` `None`),
/// and updates ctime. `flags`: `XATTR_CREATE` fails with EEXIST when it exists,
/// `XATTR_REPLACE` with ENODATA when it does not. ENOSPC when neither the inline area nor
/// the xattr block has room. Callers hold the inode lock.
pub(crate) fn set(
    inode: &Inode,
    index: u8,
    name: &[u8],
    value: Option<&[u8]>,
    flags: u32,
) -> Result {
    if name.len() > NAME_MAX {
        return Err(ERANGE);
    }
    if !crate::xattr::is_valid_name(index, name) {
        return Err(EINVAL);
    }
    let sb = inode.sb();
    let _handle = journal::start(sb)?;
    let _lock = inode.xattr_lock(true);
    let mut slot = Slot::read(inode)?;
    let old_block = slot.xattr_block();
    let bh = read_block(inode, &slot)?;
    let mut image = match &bh {
        Some(bh) => Some(BlockImage::new(Some(bh))?),
        None => None,
    };

    let mut used = inline_used(slot.raw());
    let (mut inline_changed, mut block_changed) = (false, false);
    let bad = |e| corrupt(inode, e);
    if let Some(u) = remove(inline_area_mut(slot.raw_mut()), used, index, name).map_err(bad)? {
        used = u;
        inline_changed = true;
    }
    if let Some(image) = &mut image {
        let x = image.xattr()?;
        let block_used = x.used();
        if let Some(u) = remove(&mut x.area, block_used, index, name).map_err(bad)? {
            x.set_used(u);
            block_changed = true;
        }
    }
    let found = inline_changed || block_changed;
    if found && flags & XATTR_CREATE != 0 {
        return Err(EEXIST);
    }
    if !found && flags & XATTR_REPLACE != 0 {
        return Err(ENODATA);
    }
    if !found && value.is_none() {
        return Ok(());
    }
    if let Some(value) = value {
        if let Some(u) =
            insert(inline_area_mut(slot.raw_mut()), used, index, name, value).map_err(bad)?
        {
            used = u;
            inline_changed = true;
        } else {
            if image.is_none() {
                image = Some(BlockImage::new(None)?);
            }
            let x = image.as_mut().ok_or(EINVAL)?.xattr()?;
            let block_used = x.used();
            let u = insert(&mut x.area, block_used, index, name, value)
                .map_err(bad)?
                .ok_or(ENOSPC)?;
            x.set_used(u);
            block_changed = true;
        }
    }

    let mut new_block = old_block;
    if let (true, Some(image)) = (block_changed, &mut image) {
        new_block = write_block(inode, old_block, bh.as_ref(), image)?;
    }
    if inline_changed || new_block != old_block {
        slot.write(inode, used, new_block)?;
    }
    inode.touch(false);
    inode.mark_dirty();
    Ok(())
}

/// Writes a changed block image: frees the block when the image is empty, allocates one
/// near the inode when there was none. Returns the new `xattr_block`.
fn write_block(
    inode: &Inode,
    old_block: u64,
    bh: Option<&BufferHead>,
    image: &mut BlockImage,
) -> Result<u64> {
    let sb = inode.sb();
    let geo = sb.info().geometry();
    if image.xattr()?.used() == 0 {
        if old_block != 0 {
            free_block(inode, old_block)?;
        }
        return Ok(0);
    }
    let (block, target) = match bh {
        Some(bh) => (old_block, bh.clone()),
        None => {
            // At the end of the inode's group, like indirect blocks: out of the way of data
            // runs.
            let group = geo.inode_group(inode.ino()).map_or(0, |(g, _)| g);
            let goal = geo.first_data_block(group).unwrap_or(0);
            let (block, _) = alloc::alloc_blocks(sb, goal, 1, true)?;
            match sb.new_block(block) {
                Ok(new_bh) => {
                    inode.account_blocks(1, true);
                    (block, new_bh)
                }
                Err(e) => {
                    alloc::free_blocks(sb, block, 1)?;
                    return Err(e);
                }
            }
        }
    };
    image.xattr()?.update_checksum(geo.checksum_seed(), block);
    let bytes = image.block_mut()?;
    journal::modify(sb, &target, Some(inode), |data| data.copy_from_slice(bytes));
    target.set_verified(Verified::Xattr);
    Ok(block)
}

/// Frees xattr block `block` of `inode` (in the running transaction).
fn free_block(inode: &Inode, block: u64) -> Result {
    let sb = inode.sb();
    journal::forget_metadata(sb, block);
    alloc::free_blocks(sb, block, 1)?;
    inode.account_blocks(1, false);
    Ok(())
}

/// Frees the xattr block of an inode being deleted (in its last transaction).
pub(crate) fn delete(inode: &Inode) -> Result {
    let _lock = inode.xattr_lock(true);
    // Its inline area goes with it, whatever it holds.
    let slot = Slot::load(inode)?;
    let block = slot.xattr_block();
    if block == 0 {
        return Ok(());
    }
    if block & PTR_UNWRITTEN != 0 || !inode.sb().info().geometry().is_data_block(block) {
        return Err(inode_corruption(
            inode,
            "xattr block pointer outside the data area",
        ));
    }
    free_block(inode, block)?;
    slot.write(inode, inline_used(slot.raw()), 0)
}
