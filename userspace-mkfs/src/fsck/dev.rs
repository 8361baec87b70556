//! The device fsck checks: opened read-only for `-n` (so a check can never write), else
//! read-write and, for a block device, exclusively. A read-only check replays the journal
//! into memory: the replayed blocks are read in place of the device's.

use std::collections::BTreeMap;
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

/// `n` zeroed blocks, contiguous on the heap (a buffer for [`Device::read_blocks`]).
pub fn zero_blocks(n: usize) -> Vec<Block> {
    vec![[0u8; BLOCK_SIZE]; n]
}

pub struct Device {
    path: PathBuf,
    file: File,
    writable: bool,
    /// Whole 4096-byte blocks on the device.
    pub blocks: u64,
    /// Blocks written so far.
    pub writes: u64,
    /// Blocks a read-only check replayed from the journal, read in place of the device's.
    replayed: BTreeMap<u64, Box<Block>>,
    /// While set, writes to a read-only device go to `replayed`.
    replaying: bool,
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
            replayed: BTreeMap::new(),
            replaying: false,
        })
    }

    /// Between `true` and `false`, writes to a read-only device (the journal's replay in a
    /// read-only check) are kept in memory and read back in place of the device's blocks.
    pub fn replay_in_memory(&mut self, on: bool) {
        self.replaying = on && !self.writable;
    }

    pub fn read(&self, b: u64, buf: &mut Block) -> Result<(), String> {
        if let Some(block) = self.replayed.get(&b) {
            buf.copy_from_slice(&block[..]);
            return Ok(());
        }
        let off = b
            .checked_mul(BLOCK_SIZE_U64)
            .ok_or_else(|| format!("{}: block {b} out of range", self.path.display()))?;
        self.file
            .read_exact_at(buf, off)
            .map_err(|e| format!("{}: read of block {b} failed: {e}", self.path.display()))
    }

    /// Reads `bufs.len()` consecutive blocks from block `b` on in one call: scanning a big
    /// region a block per system call costs far more than the data (and far more again in
    /// a guest under emulation).
    pub fn read_blocks(&self, b: u64, bufs: &mut [Block]) -> Result<(), String> {
        let n = bufs.len() as u64;
        let off = b
            .checked_add(n)
            .and_then(|end| end.checked_mul(BLOCK_SIZE_U64))
            .map(|_| b * BLOCK_SIZE_U64)
            .ok_or_else(|| format!("{}: blocks {b}+{n} out of range", self.path.display()))?;
        self.file
            .read_exact_at(bufs.as_flattened_mut(), off)
            .map_err(|e| {
                format!(
                    "{}: read of blocks {b}..{} failed: {e}",
                    self.path.display(),
                    b + n
                )
            })?;
        for (&at, block) in self.replayed.range(b..b + n) {
            bufs[(at - b) as usize].copy_from_slice(&block[..]);
        }
        Ok(())
    }

    pub fn read_new(&self, b: u64) -> Result<Box<Block>, String> {
        let mut buf = zero_block();
        self.read(b, &mut buf)?;
        Ok(buf)
    }

    pub fn write(&mut self, b: u64, buf: &Block) -> Result<(), String> {
        if self.replaying {
            self.replayed.insert(b, Box::new(*buf));
            return Ok(());
        }
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
