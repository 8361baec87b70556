//! AegisFS userspace tools. The binaries under `src/bin` are thin wrappers around the
//! modules here, so the future fsck.aegisfs can share device handling and the format
//! helpers.

pub mod alloc;
pub mod build;
pub mod cli;
pub mod device;
pub mod dirblocks;
pub mod filemap;
pub mod format_ext;
pub mod fsck;
pub mod inspect;
pub mod mkfs;
pub mod mounts;
pub mod progress;
pub mod rng;
pub mod size;
pub mod sparse;
pub mod tool;
pub mod wipe;
pub mod writer;
pub mod xattrs;
