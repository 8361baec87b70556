// SPDX-License-Identifier: GPL-2.0

//! AegisFS: a journaled, block-based filesystem (docs/format.md, docs/journal.md).
//!
//! - `vfs`: the only module with `unsafe` code. Kernel objects as safe types (superblock,
//!   inode, buffer head), the operation tables and C-callable entry points, and the
//!   registration of the filesystem type with its inode cache. `vfs/helpers.c` wraps static
//!   inline kernel functions and holds the fs_context tables, whose types the kernel
//!   crate's bindings leave opaque.
//! - `fs`: the filesystem logic in safe Rust: mounting (`superblock`), the block and inode
//!   allocators (`alloc`), inodes (`inode`), block mapping (`blockmap`) and its shifts for
//!   collapse and insert range (`shift`), directories (`dir`), the namespace (`namei`),
//!   regular files (`file`), the journal (`journal`), the orphan list (`orphan`), extended
//!   attributes (`xattr`), POSIX ACLs (`acl`) and FITRIM (`trim`).
//! - The rest is the shared on-disk format crate (`format/src/`), included file by file
//!   because its files refer to each other as `crate::<file>`.
//!
//! Errors: corruption (checksums, bad pointers, loops, bad records) is EUCLEAN with one
//! `aegisfs (<device>): ...` log line; an unsupported or foreign image is EINVAL; a failed
//! device read is EIO.

#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/blockmap.rs"]
mod blockmap;
#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/checksum.rs"]
mod checksum;
/// CRC32C for the format files: the kernel's `crc32c()`, which uses the CPU's CRC
/// instructions where it has them (the table-driven `format/src/crc32c.rs` is the tools').
mod crc32c {
    pub(crate) use crate::vfs::crc32c;
}
#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/dir.rs"]
mod dir;
#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/dirindex.rs"]
mod dirindex;
#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/disk.rs"]
mod disk;
#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/error.rs"]
mod error;
#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/geometry.rs"]
mod geometry;
#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/inode.rs"]
mod inode;
#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/journal.rs"]
mod journal;
#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../format/src/xattr.rs"]
mod xattr;

/// The filesystem logic, in safe Rust.
mod fs {
    pub(crate) mod acl;
    pub(crate) mod alloc;
    pub(crate) mod blockmap;
    pub(crate) mod dir;
    pub(crate) mod dirindex;
    pub(crate) mod file;
    pub(crate) mod inode;
    pub(crate) mod journal;
    pub(crate) mod namei;
    pub(crate) mod orphan;
    pub(crate) mod shift;
    pub(crate) mod superblock;
    pub(crate) mod trim;
    pub(crate) mod xattr;
}

mod vfs;

use kernel::prelude::*;

module! {
    type: AegisFs,
    name: "aegisfs",
    authors: ["AegisFS developers"],
    description: "AegisFS journaled filesystem",
    license: "GPL",
    // `mount -t aegisfs` loads the module by this name (request_module), as for ext4.
    alias: ["fs-aegisfs"],
    params: {
        commit_interval: u32 {
            default: 5,
            description: "Journal commit interval in seconds of mounts without commit= (default 5)",
        },
    },
}

struct AegisFs {
    _registration: vfs::fs_type::Registration,
}

impl kernel::Module for AegisFs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _registration: vfs::fs_type::Registration::new(module)?,
        })
    }
}
