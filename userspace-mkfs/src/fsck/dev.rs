//! The device fsck checks: opened read-only for `-n` (so a check can never write), else
//! read-write and, for a block device, exclusively.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use aegisfs_format::disk::{BLOCK_SIZE, BLOCK_SIZE_U64};

use crate::device::open_sized;

/// One 4096-byte block.
pub type Block = [u8; BLOCK_SIZE];

/// A new zeroed block on the heap.
pub fn zero_block() -> Box<Block> {
    Box::new([0u8; BLOCK_SIZE])
}

pub struct Device {
    path: PathBuf,
    file: File,
    writable: bool,
    /// Whole 4096-byte blocks on the device.
    pub blocks: u64,
    /// Blocks written so far.
    pub writes: u64,
}

impl Device {
    pub fn open(path: &Path, writable: bool) -> Result<Device, String> {
        let meta =
            fs::metadata(path).map_err(|e| format!("{}: cannot stat: {e}", path.display()))?;
        let (file, bytes) = open_sized(path, &meta, writable, writable)?;
        Ok(Device {
            path: path.to_path_buf(),
            file,
            writable,
            blocks: bytes / BLOCK_SIZE_U64,
            writes: 0,
        })
    }

    pub fn read(&self, b: u64, buf: &mut Block) -> Result<(), String> {
        let off = b
            .checked_mul(BLOCK_SIZE_U64)
            .ok_or_else(|| format!("{}: block {b} out of range", self.path.display()))?;
        self.file
            .read_exact_at(buf, off)
            .map_err(|e| format!("{}: read of block {b} failed: {e}", self.path.display()))
    }

    pub fn read_new(&self, b: u64) -> Result<Box<Block>, String> {
        let mut buf = zero_block();
        self.read(b, &mut buf)?;
        Ok(buf)
    }

    pub fn write(&mut self, b: u64, buf: &Block) -> Result<(), String> {
        if !self.writable {
            // Reaching this is a bug: every fix is refused in read-only mode first.
            return Err(format!(
                "{}: internal error: write of block {b} in read-only mode",
                self.path.display()
            ));
        }
        self.file
            .write_all_at(buf, b * BLOCK_SIZE_U64)
            .map_err(|e| format!("{}: write of block {b} failed: {e}", self.path.display()))?;
        self.writes += 1;
        Ok(())
    }

    pub fn sync(&self) -> Result<(), String> {
        if !self.writable {
            return Ok(());
        }
        self.file
            .sync_all()
            .map_err(|e| format!("{}: fsync failed: {e}", self.path.display()))
    }
}
