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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::open_target;

    #[test]
    fn contiguous_blocks_become_one_write() {
        let dir = std::env::temp_dir().join(format!("aegisfs-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("img");
        let mut target = open_target(&path, false).unwrap();
        target.prepare(64 << 20).unwrap();
        let mut w = RunWriter::new(&target);
        for b in 10..20u64 {
            w.reserve(b, 1).unwrap().fill(b as u8);
        }
        w.write_blocks(20, &[0xAA; 2 * BLOCK_SIZE]).unwrap();
        // A gap starts a new run.
        w.reserve(100, 1).unwrap().fill(1);
        // More than one buffer's worth is split at the buffer size.
        let big = vec![0x55u8; MAX_RUN_BYTES + BLOCK_SIZE];
        w.write_blocks(1000, &big).unwrap();
        w.flush().unwrap();
        assert_eq!(w.writes, 4);
        assert_eq!(w.bytes, (13 * BLOCK_SIZE + big.len()) as u64);
        let mut buf = vec![0u8; BLOCK_SIZE];
        target.read_at(&mut buf, 15 * BLOCK_SIZE_U64).unwrap();
        assert!(buf.iter().all(|&b| b == 15));
        target.read_at(&mut buf, 21 * BLOCK_SIZE_U64).unwrap();
        assert!(buf.iter().all(|&b| b == 0xAA));
        target.read_at(&mut buf, 22 * BLOCK_SIZE_U64).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        let last = 1000 + (big.len() / BLOCK_SIZE) as u64 - 1;
        target.read_at(&mut buf, last * BLOCK_SIZE_U64).unwrap();
        assert!(buf.iter().all(|&b| b == 0x55));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
