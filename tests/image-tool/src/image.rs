//! An AegisFS image opened for inspection and patching, every structure located and checked
//! through the format crate.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use aegisfs_format::blockmap::BlockPath;
use aegisfs_format::checksum::set_inode_checksum;
use aegisfs_format::dir::iter_dir_block;
use aegisfs_format::disk::{
    GroupDesc, IndirectBlock, Inode, SuperBlock, BLOCK_SIZE, BLOCK_SIZE_U64, NAME_MAX, ROOT_INO,
};
use aegisfs_format::error::FormatError;
use aegisfs_format::geometry::{Geometry, StatFs};

pub type Block = [u8; BLOCK_SIZE];

/// Error text for a format-level failure at `what`.
pub fn ferr(what: &str, e: FormatError) -> String {
    format!("{what}: {}", e.msg())
}

pub struct Image {
    file: File,
    /// Whole 4096-byte blocks in the image file.
    pub device_blocks: u64,
    pub geo: Geometry,
    /// Every block written through this handle, for [`Image::written`].
    written: RefCell<BTreeSet<u64>>,
}

/// A used entry of a directory and where it is stored.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub block: u64,
    /// Byte offset of the record in `block`.
    pub offset: usize,
    pub ino: u32,
    pub name: Vec<u8>,
}

/// Where a logical block of a file is found: the indirect blocks walked from the inode's
/// tree root down (empty for a direct block), then the data block (`None` for a hole).
#[derive(Debug, PartialEq, Eq)]
pub struct Mapping {
    pub indirect: Vec<u64>,
    pub data: Option<u64>,
}

impl Image {
    /// Opens a valid image file or block device read-write (validating superblock and group
    /// descriptors).
    pub fn open(path: &Path) -> Result<Image, String> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // The end, not the metadata's length, which is 0 for a block device.
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let device_blocks = len / BLOCK_SIZE_U64;
        let mut block0 = [0u8; BLOCK_SIZE];
        file.read_exact_at(&mut block0, 0)
            .map_err(|e| format!("{}: reading block 0: {e}", path.display()))?;
        let geo = SuperBlock::in_block(&block0)
            .validate(device_blocks)
            .map_err(|e| ferr("superblock", e))?;
        let img = Image {
            file,
            device_blocks,
            geo,
            written: RefCell::new(BTreeSet::new()),
        };
        for g in 0..geo.group_count() {
            img.with_group_desc(g, |d| d.validate(g, &geo))?
                .map_err(|e| ferr(&format!("group descriptor {g}"), e))?;
        }
        Ok(img)
    }

    pub fn read_block(&self, b: u64) -> Result<Block, String> {
        let mut block = [0u8; BLOCK_SIZE];
        self.file
            .read_exact_at(&mut block, b * BLOCK_SIZE_U64)
            .map_err(|e| format!("reading block {b}: {e}"))?;
        Ok(block)
    }

    pub fn write_block(&self, b: u64, block: &Block) -> Result<(), String> {
        self.written.borrow_mut().insert(b);
        self.file
            .write_all_at(block, b * BLOCK_SIZE_U64)
            .map_err(|e| format!("writing block {b}: {e}"))
    }

    /// The blocks written so far, in ascending order.
    pub fn written(&self) -> Vec<u64> {
        self.written.borrow().iter().copied().collect()
    }

    /// Runs `read` on the superblock as stored.
    pub fn with_superblock<T>(&self, read: impl FnOnce(&SuperBlock) -> T) -> Result<T, String> {
        let block0 = self.read_block(0)?;
        Ok(read(SuperBlock::in_block(&block0)))
    }

    /// Applies `edit` to the superblock in place.
    pub fn patch_superblock(&self, edit: impl FnOnce(&mut SuperBlock)) -> Result<(), String> {
        let mut block0 = self.read_block(0)?;
        edit(SuperBlock::in_block_mut(&mut block0));
        self.write_block(0, &block0)
    }

    /// Runs `read` on group descriptor `g` as stored.
    pub fn with_group_desc<T>(
        &self,
        g: u32,
        read: impl FnOnce(&GroupDesc) -> T,
    ) -> Result<T, String> {
        let (b, _) = self
            .geo
            .group_desc_location(g)
            .ok_or_else(|| format!("no group {g}"))?;
        let block = self.read_block(b)?;
        Ok(read(GroupDesc::in_block(&block, g)))
    }

    /// Applies `edit` to group descriptor `g` in place.
    pub fn patch_group_desc(
        &self,
        g: u32,
        edit: impl FnOnce(&mut GroupDesc),
    ) -> Result<(), String> {
        let (b, _) = self
            .geo
            .group_desc_location(g)
            .ok_or_else(|| format!("no group {g}"))?;
        let mut block = self.read_block(b)?;
        edit(GroupDesc::in_block_mut(&mut block, g));
        self.write_block(b, &block)
    }

    /// The `inode_size` bytes of inode `ino`, validated.
    pub fn inode(&self, ino: u32) -> Result<Vec<u8>, String> {
        let raw = self.raw_inode(ino)?;
        Inode::validate(ino, &raw, &self.geo).map_err(|e| ferr(&format!("inode {ino}"), e))?;
        Ok(raw)
    }

    /// The `inode_size` bytes of inode `ino`, as stored.
    pub fn raw_inode(&self, ino: u32) -> Result<Vec<u8>, String> {
        let loc = self
            .geo
            .inode_location(ino)
            .map_err(|e| ferr(&format!("inode {ino}"), e))?;
        let block = self.read_block(loc.block)?;
        Ok(block[loc.offset..loc.offset + usize::from(self.geo.inode_size())].to_vec())
    }

    /// Stores inode `ino`; with `fix_checksum` its checksum is recomputed first.
    pub fn write_inode(&self, ino: u32, raw: &mut [u8], fix_checksum: bool) -> Result<(), String> {
        if fix_checksum {
            set_inode_checksum(self.geo.checksum_seed(), ino, raw)
                .map_err(|e| ferr(&format!("inode {ino}"), e))?;
        }
        let loc = self
            .geo
            .inode_location(ino)
            .map_err(|e| ferr(&format!("inode {ino}"), e))?;
        let mut block = self.read_block(loc.block)?;
        block[loc.offset..loc.offset + raw.len()].copy_from_slice(raw);
        self.write_block(loc.block, &block)
    }

    /// Maps logical block `lblk` of inode `ino` (`raw` is its validated bytes), checking
    /// every pointer and indirect block checksum on the way.
    pub fn map(&self, ino: u32, raw: &[u8], lblk: u64) -> Result<Mapping, String> {
        let inode = Inode::from_slot(raw).map_err(|e| ferr("inode", e))?;
        let path = BlockPath::of(lblk).ok_or_else(|| format!("block {lblk} past the maximum"))?;
        let check = |b: u64| {
            self.geo
                .check_data_block(b)
                .map_err(|e| ferr(&format!("inode {ino} block {lblk}"), e))
        };
        if path.depth == 0 {
            let p = inode.direct_ptr(usize::from(path.offsets[0])).unwrap_or(0);
            let data = if p == 0 { None } else { Some(check(p)?) };
            return Ok(Mapping {
                indirect: Vec::new(),
                data,
            });
        }
        let mut indirect = Vec::new();
        let mut next = inode.tree_root(path.depth).unwrap_or(0);
        for &off in path.used_offsets() {
            if next == 0 {
                return Ok(Mapping {
                    indirect,
                    data: None,
                });
            }
            let b = check(next)?;
            let block = self.read_block(b)?;
            let ind = IndirectBlock::from_block(&block);
            ind.verify_checksum(self.geo.checksum_seed(), ino, inode.generation.get())
                .map_err(|e| ferr(&format!("inode {ino} indirect block {b}"), e))?;
            indirect.push(b);
            next = ind.ptr(usize::from(off)).unwrap_or(0);
        }
        let data = if next == 0 { None } else { Some(check(next)?) };
        Ok(Mapping { indirect, data })
    }

    /// The used entries of directory `dir`, in order.
    pub fn dir_entries(&self, dir: u32) -> Result<Vec<Entry>, String> {
        let raw = self.inode(dir)?;
        let inode = Inode::from_slot(&raw).map_err(|e| ferr("inode", e))?;
        if !inode.is_dir() {
            return Err(format!("inode {dir} is not a directory"));
        }
        let mut out = Vec::new();
        for lblk in 0..inode.size.get() / BLOCK_SIZE_U64 {
            let b = self
                .map(dir, &raw, lblk)?
                .data
                .ok_or_else(|| format!("directory {dir} has a hole at block {lblk}"))?;
            let block = self.read_block(b)?;
            let iter = iter_dir_block(&block, &self.geo, dir, inode.generation.get())
                .map_err(|e| ferr(&format!("directory {dir} block {b}"), e))?;
            for e in iter {
                let e = e.map_err(|e| ferr(&format!("directory {dir} block {b}"), e))?;
                if e.is_used() {
                    out.push(Entry {
                        block: b,
                        offset: e.offset,
                        ino: e.ino,
                        name: e.name.to_vec(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The inode of `path` (relative to the root; `/`-separated).
    pub fn lookup(&self, path: &str) -> Result<u32, String> {
        let mut ino = ROOT_INO;
        for name in path.split('/').filter(|c| !c.is_empty()) {
            ino = self
                .dir_entries(ino)?
                .into_iter()
                .find(|e| e.name == name.as_bytes())
                .map(|e| e.ino)
                .ok_or_else(|| format!("{path}: no entry {name}"))?;
        }
        Ok(ino)
    }

    /// The statfs figures the module must report. They are worked out here from the raw
    /// superblock fields and group descriptors with the formulas of docs/format.md, not
    /// with the format crate's `Geometry::statfs`, which the module itself uses.
    pub fn statfs(&self) -> Result<(StatFs, [u32; 2]), String> {
        let mut free_blocks = 0u64;
        let mut free_inodes = 0u64;
        for g in 0..self.geo.group_count() {
            let (b, i) = self.with_group_desc(g, |d| (d.free_blocks.get(), d.free_inodes.get()))?;
            free_blocks += u64::from(b);
            free_inodes += u64::from(i);
        }
        let (blocks, files, reserved, uuid) = self.with_superblock(|sb| {
            let inode_table_blocks = u64::from(sb.inodes_per_group.get())
                * u64::from(sb.inode_size.get())
                / BLOCK_SIZE_U64;
            let overhead = sb.first_group_block.get()
                + u64::from(sb.group_count.get()) * (2 + inode_table_blocks);
            (
                sb.blocks_count.get() - overhead,
                u64::from(sb.inodes_count.get()),
                sb.reserved_blocks.get(),
                sb.uuid,
            )
        })?;
        let word = |i: usize| u32::from_le_bytes([uuid[i], uuid[i + 1], uuid[i + 2], uuid[i + 3]]);
        Ok((
            StatFs {
                bsize: BLOCK_SIZE_U64,
                blocks,
                bfree: free_blocks,
                bavail: free_blocks.saturating_sub(reserved),
                files,
                ffree: free_inodes,
                namelen: NAME_MAX as u64,
            },
            [word(0) ^ word(8), word(4) ^ word(12)],
        ))
    }
}
