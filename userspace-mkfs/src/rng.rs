//! A small PRNG (xoshiro256**) for UUIDs and inode generations, seeded from the kernel.

use std::io;

pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seeds from `getrandom(2)`.
    pub fn from_os() -> io::Result<Rng> {
        let mut seed = [0u8; 32];
        let mut filled = 0;
        while filled < seed.len() {
            // SAFETY: the pointer and length describe the unfilled tail of `seed`.
            let n = unsafe {
                libc::getrandom(seed[filled..].as_mut_ptr().cast(), seed.len() - filled, 0)
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            filled += n as usize;
        }
        Ok(Rng::from_seed(seed))
    }

    /// A deterministic generator (tests); the seed is spread with splitmix64 so that no
    /// state word is zero.
    pub fn from_seed(seed: [u8; 32]) -> Rng {
        let mut s = [0u64; 4];
        for (k, word) in s.iter_mut().enumerate() {
            let mut x = u64::from_le_bytes(seed[k * 8..k * 8 + 8].try_into().unwrap())
                .wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(k as u64 + 1));
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *word = x ^ (x >> 31);
        }
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// 16 random bytes (a hash key).
    pub fn key128(&mut self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        k[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        k
    }

    /// A random (version 4, RFC 4122 variant) UUID.
    pub fn uuid_v4(&mut self) -> [u8; 16] {
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        u[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        u[6] = (u[6] & 0x0F) | 0x40;
        u[8] = (u[8] & 0x3F) | 0x80;
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_seeded_generators_differ() {
        let mut a = Rng::from_os().unwrap();
        let mut b = Rng::from_os().unwrap();
        assert_ne!(a.uuid_v4(), b.uuid_v4());
    }

    #[test]
    fn uuid_has_version_and_variant() {
        let mut r = Rng::from_seed([7; 32]);
        for _ in 0..100 {
            let u = r.uuid_v4();
            assert_eq!(u[6] >> 4, 4);
            assert_eq!(u[8] >> 6, 2);
        }
    }

    #[test]
    fn output_is_not_degenerate() {
        let mut r = Rng::from_seed([0; 32]);
        let values: std::collections::HashSet<u32> = (0..1000).map(|_| r.next_u32()).collect();
        assert_eq!(values.len(), 1000);
    }
}
