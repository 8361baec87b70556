//! Coalescing block writes: mkfs allocates in increasing block order, so consecutive
//! blocks (of one file or of several) are gathered into one large buffer and written with
//! a single `pwrite`.

use aegisfs_format::disk::{BLOCK_SIZE, BLOCK_SIZE_U64};

use crate::device::Target;

/// Largest buffer gathered before it is written.
const MAX_RUN_BYTES: usize = 8 << 20;

pub struct RunWriter<'a> {
    target: &'a Target,
    start: u64,
    buf: Vec<u8>,
    /// Statistics: `pwrite` calls issued and bytes written.
    pub writes: u64,
    pub bytes: u64,
}

impl<'a> RunWriter<'a> {
    pub fn new(target: &'a Target) -> RunWriter<'a> {
        RunWriter {
            target,
            start: 0,
            buf: Vec::with_capacity(MAX_RUN_BYTES),
            writes: 0,
            bytes: 0,
        }
    }

    /// Returns a zeroed buffer of `blocks` blocks that will be written at block `block`
    /// (at most [`MAX_RUN_BYTES`] at a time: callers split larger runs).
    pub fn reserve(&mut self, block: u64, blocks: usize) -> Result<&mut [u8], String> {
        let len = blocks * BLOCK_SIZE;
        debug_assert!(len <= MAX_RUN_BYTES);
        let next = self.start + (self.buf.len() / BLOCK_SIZE) as u64;
        if !self.buf.is_empty() && (next != block || self.buf.len() + len > MAX_RUN_BYTES) {
            self.flush()?;
        }
        if self.buf.is_empty() {
            self.start = block;
        }
        let old = self.buf.len();
        self.buf.resize(old + len, 0);
        Ok(&mut self.buf[old..])
    }

    /// Queues whole blocks of `data` at block `block`.
    pub fn write_blocks(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        debug_assert_eq!(data.len() % BLOCK_SIZE, 0);
        for (k, chunk) in data.chunks(MAX_RUN_BYTES).enumerate() {
            let at = block + (k * MAX_RUN_BYTES / BLOCK_SIZE) as u64;
            self.reserve(at, chunk.len() / BLOCK_SIZE)?
                .copy_from_slice(chunk);
        }
        Ok(())
    }

    /// Blocks a single reservation may hold.
    pub const fn max_run_blocks() -> u64 {
        (MAX_RUN_BYTES / BLOCK_SIZE) as u64
    }

    pub fn flush(&mut self) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.target
            .write_at(&self.buf, self.start * BLOCK_SIZE_U64)?;
        self.writes += 1;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}
