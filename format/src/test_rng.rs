//! Pseudo-random numbers for the tests that feed random or damaged bytes to the parsers.

/// A xorshift64 generator started at `seed` (not 0): the same numbers on every run.
pub(crate) fn xorshift64(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
