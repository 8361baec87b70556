//! The AegisFS on-disk format, version 1 (see `docs/format.md`, which is normative).
//!
//! This crate is the single definition of the format. It is `no_std` without `alloc` so the
//! kernel module can include its files directly (`#[path = ...] mod <file>;` at the crate
//! root, one `mod` per file); the files refer to each other only as `crate::<file>::...`.
//! Every function that looks at bytes read from a device validates them and returns a
//! [`error::FormatError`] instead of panicking.
#![no_std]

pub mod blockmap;
pub mod checksum;
pub mod crc32c;
pub mod dir;
pub mod dirindex;
pub mod disk;
pub mod error;
pub mod geometry;
pub mod inode;
pub mod journal;
pub mod xattr;

#[cfg(test)]
mod geometry_tests;
#[cfg(test)]
mod test_rng;
