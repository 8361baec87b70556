//! Deterministic pseudo-random test data, fast enough for gigabyte files.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

const CHUNK: usize = 1 << 20;

/// SplitMix64: every 8-byte word depends only on the seed and its index, so a range can be
/// regenerated or checked without the bytes before it.
fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Byte `i` of the stream of `seed`.
#[cfg(test)]
pub fn byte(seed: u64, i: u64) -> u8 {
    word(seed, i / 8).to_le_bytes()[(i % 8) as usize]
}

/// Writes bytes `0..len` of the stream of `seed` at `offset` of `path` (created if
/// missing, never truncated, so holes elsewhere stay holes).
pub fn fill(path: &Path, offset: u64, len: u64, seed: u64) -> Result<(), String> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        // done is a multiple of CHUNK, hence of 8.
        for (k, w) in buf[..n].chunks_mut(8).enumerate() {
            let bytes = word(seed, done / 8 + k as u64).to_le_bytes();
            w.copy_from_slice(&bytes[..w.len()]);
        }
        file.write_all_at(&buf[..n], offset + done)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        done += n as u64;
    }
    Ok(())
}
