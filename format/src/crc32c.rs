// CRC32C (Castagnoli), slicing-by-8, tables built at compile time.
//
// `crc32c(state, bytes)` is the raw reflected update with no initial or final inversion,
// the convention of the Linux kernel's `crc32c()`, which the kernel module calls instead.

use crate::checksum::CRC32C_POLY;

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ CRC32C_POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

#[inline(always)]
fn tab(k: usize, v: u32) -> u32 {
    // `k` is a constant below 8 at every call site and the byte index is below 256.
    TABLES[k][(v & 0xFF) as usize]
}

/// Raw CRC32C update of `crc` with `data` (no inversion in or out).
///
/// The standard CRC32C of `data` is `!crc32c(!0, data)`; AegisFS checksums are
/// `crc32c(seed, ...)` stored as is.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    let mut crc = crc;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = tab(7, lo)
            ^ tab(6, lo >> 8)
            ^ tab(5, lo >> 16)
            ^ tab(4, lo >> 24)
            ^ tab(3, hi)
            ^ tab(2, hi >> 8)
            ^ tab(1, hi >> 16)
            ^ tab(0, hi >> 24);
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ tab(0, crc ^ u32::from(b));
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitwise(mut crc: u32, data: &[u8]) -> u32 {
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ CRC32C_POLY
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn standard_check_value() {
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn known_vectors() {
        // RFC 3720 (iSCSI) B.4 test vectors.
        assert_eq!(!crc32c(!0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(!crc32c(!0, &[0xFFu8; 32]), 0x62A8_AB43);
        let mut inc = [0u8; 32];
        for (i, b) in inc.iter_mut().enumerate() {
            *b = i as u8;
        }
        assert_eq!(!crc32c(!0, &inc), 0x46DD_794E);
        assert_eq!(crc32c(0, &[]), 0);
        assert_eq!(crc32c(0x1234_5678, &[]), 0x1234_5678);
    }

    #[test]
    fn slicing_matches_bitwise_at_every_length_and_split() {
        let mut data = [0u8; 300];
        let mut x: u32 = 0x9E37_79B9;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        for len in 0..data.len() {
            assert_eq!(crc32c(0xFFFF_FFFF, &data[..len]), bitwise(!0, &data[..len]));
        }
        let whole = crc32c(7, &data);
        for split in 0..data.len() {
            assert_eq!(crc32c(crc32c(7, &data[..split]), &data[split..]), whole);
        }
    }
}
