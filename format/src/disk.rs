// On-disk structures and constants of AegisFS v1 (docs/format.md, "Superblock",
// "Group descriptor", "Inodes", "Directories").
//
// Every struct is `repr(C)` of little-endian zerocopy types (alignment 1, no padding), so it
// can be viewed in place inside a block buffer. Offsets and sizes are asserted at compile
// time against the spec.

use core::mem::{offset_of, size_of};
use zerocopy::little_endian::{I64, U16, U32, U64};

/// Block size in bytes (the only one supported).
pub const BLOCK_SIZE: usize = 4096;
/// [`BLOCK_SIZE`] as `u64`, for block-number arithmetic.
pub const BLOCK_SIZE_U64: u64 = 4096;
/// `log2(BLOCK_SIZE)`, the required `block_size_log2`.
pub const BLOCK_SIZE_LOG2: u32 = 12;

/// Superblock magic, bytes `"AegisFS\0"`.
pub const MAGIC: [u8; 8] = *b"AegisFS\0";
/// The format version this crate implements.
pub const FORMAT_VERSION: u32 = 1;
/// Byte offset of the superblock inside block 0.
pub const SUPERBLOCK_OFFSET: usize = 1024;
/// Size of the superblock in bytes.
pub const SUPERBLOCK_SIZE: usize = 1024;

/// First block of the group descriptor table.
pub const GDT_START: u64 = 1;
/// Size of a group descriptor in bytes.
pub const GROUP_DESC_SIZE: usize = 64;
/// Group descriptors per GDT block.
pub const DESCS_PER_BLOCK: u32 = 64;
/// Blocks per group (one bitmap block covers 32768 blocks).
pub const BLOCKS_PER_GROUP: u32 = 32768;
/// Maximum `inodes_per_group` (one inode bitmap block).
pub const MAX_INODES_PER_GROUP: u32 = 32768;
/// `inodes_per_group` must be a multiple of this (inodes per block at 256 bytes).
pub const INODES_PER_GROUP_ALIGN: u32 = 16;
/// A group must hold at least this many data blocks besides its metadata.
pub const MIN_GROUP_DATA_BLOCKS: u64 = 64;
/// Metadata blocks at the start of every group before the inode table (the two bitmaps).
pub const GROUP_BITMAP_BLOCKS: u64 = 2;

/// Size of the fixed part of an inode (and the smallest `inode_size`).
pub const INODE_BASE_SIZE: usize = 256;
/// Valid `inode_size` values.
pub const INODE_SIZES: [u16; 3] = [256, 512, 1024];

/// Root directory inode.
pub const ROOT_INO: u32 = 2;
/// First non-reserved inode.
pub const FIRST_INO: u32 = 11;
/// `lost+found` inode (made by mkfs).
pub const LOST_FOUND_INO: u32 = 11;

/// Direct block pointers in an inode.
pub const N_DIRECT: usize = 12;
/// Block pointers in an indirect block.
pub const PTRS_PER_BLOCK: usize = 511;
/// [`PTRS_PER_BLOCK`] as `u64`.
pub const PTRS_PER_BLOCK_U64: u64 = 511;
/// Logical blocks a file can map: `12 + 511 + 511^2 + 511^3`.
pub const MAX_FILE_BLOCKS: u64 = N_DIRECT as u64
    + PTRS_PER_BLOCK_U64
    + PTRS_PER_BLOCK_U64 * PTRS_PER_BLOCK_U64
    + PTRS_PER_BLOCK_U64 * PTRS_PER_BLOCK_U64 * PTRS_PER_BLOCK_U64;
/// Maximum file size in bytes: [`MAX_FILE_BLOCKS`] * 4096 = 547 612 569 600.
pub const MAX_FILE_SIZE: u64 = MAX_FILE_BLOCKS * BLOCK_SIZE_U64;
/// Indirect blocks a fully mapped file needs: `1 + (1 + 511) + (1 + 511 + 511^2)`.
pub const MAX_INDIRECT_BLOCKS: u64 = 1
    + (1 + PTRS_PER_BLOCK_U64)
    + (1 + PTRS_PER_BLOCK_U64 + PTRS_PER_BLOCK_U64 * PTRS_PER_BLOCK_U64);
/// Largest valid inode `blocks` value: all data and indirect blocks plus one xattr block.
pub const MAX_INODE_BLOCKS: u64 = MAX_FILE_BLOCKS + MAX_INDIRECT_BLOCKS + 1;

/// Maximum length of a name in a directory.
pub const NAME_MAX: usize = 255;
/// Maximum length of a symlink target.
pub const SYMLINK_MAX: u64 = 4095;
/// Byte offset of inline data inside an inode (the block pointer area).
pub const INLINE_DATA_OFFSET: usize = 0x60;
/// Bytes of inline data an inode can hold (`0x60..0xD8`).
pub const INLINE_DATA_MAX: usize = 120;

/// Minimum journal length when a journal is present.
pub const MIN_JOURNAL_BLOCKS: u64 = 1024;
/// Maximum journal length (the journal superblock's `max_len` is a u32).
pub const MAX_JOURNAL_BLOCKS: u64 = u32::MAX as u64;

/// compat: a journal is present at `journal_start`.
pub const FEATURE_COMPAT_HAS_JOURNAL: u64 = 1 << 0;
/// compat: made with extended attribute support (inline areas and xattr blocks).
pub const FEATURE_COMPAT_XATTR: u64 = 1 << 1;
/// incompat: the journal holds committed transactions not yet checkpointed.
pub const FEATURE_INCOMPAT_RECOVER: u64 = 1 << 0;
/// incompat: indexed directories (reserved, not implemented in v1).
pub const FEATURE_INCOMPAT_DIR_INDEX: u64 = 1 << 1;
/// compat bits this implementation knows.
pub const FEATURE_COMPAT_SUPPORTED: u64 = FEATURE_COMPAT_HAS_JOURNAL | FEATURE_COMPAT_XATTR;
/// incompat bits this implementation can mount; any other set bit refuses the mount.
pub const FEATURE_INCOMPAT_SUPPORTED: u64 = FEATURE_INCOMPAT_RECOVER | FEATURE_INCOMPAT_DIR_INDEX;
/// ro_compat bits this implementation knows; any other set bit forces read-only.
pub const FEATURE_RO_COMPAT_SUPPORTED: u64 = 0;

/// Superblock state: unmounted cleanly.
pub const STATE_CLEAN: u16 = 1 << 0;
/// Superblock state: errors detected.
pub const STATE_ERRORS: u16 = 1 << 1;
/// All defined state bits.
pub const STATE_ALL: u16 = STATE_CLEAN | STATE_ERRORS;

/// `errors_behavior`: continue.
pub const ERRORS_CONTINUE: u32 = 1;
/// `errors_behavior`: remount read-only.
pub const ERRORS_REMOUNT_RO: u32 = 2;
/// `errors_behavior`: panic.
pub const ERRORS_PANIC: u32 = 3;

/// Inode flag: synchronous updates (`FS_SYNC_FL`).
pub const INODE_FLAG_SYNC: u32 = 0x8;
/// Inode flag: immutable (`FS_IMMUTABLE_FL`).
pub const INODE_FLAG_IMMUTABLE: u32 = 0x10;
/// Inode flag: append only (`FS_APPEND_FL`).
pub const INODE_FLAG_APPEND: u32 = 0x20;
/// Inode flag: no dump (`FS_NODUMP_FL`).
pub const INODE_FLAG_NODUMP: u32 = 0x40;
/// Inode flag: no atime updates (`FS_NOATIME_FL`).
pub const INODE_FLAG_NOATIME: u32 = 0x80;
/// Inode flag: a hash-indexed directory (`FS_INDEX_FL`); kept by the filesystem, not by
/// `FS_IOC_SETFLAGS`.
pub const INODE_FLAG_INDEX: u32 = 0x1000;
/// Inode flag: synchronous directory updates (`FS_DIRSYNC_FL`).
pub const INODE_FLAG_DIRSYNC: u32 = 0x10000;
/// Inode flag: data inline in the block pointer area (fast symlinks).
pub const INODE_FLAG_INLINE_DATA: u32 = 0x1000_0000;
/// All defined inode flags.
pub const INODE_FLAGS_ALL: u32 = INODE_FLAG_SYNC
    | INODE_FLAG_IMMUTABLE
    | INODE_FLAG_APPEND
    | INODE_FLAG_NODUMP
    | INODE_FLAG_NOATIME
    | INODE_FLAG_DIRSYNC
    | INODE_FLAG_INDEX
    | INODE_FLAG_INLINE_DATA;
/// The flags user space may change with `FS_IOC_SETFLAGS`.
pub const INODE_FLAGS_USER: u32 = INODE_FLAGS_ALL & !(INODE_FLAG_INLINE_DATA | INODE_FLAG_INDEX);

/// File type mask of `mode`.
pub const S_IFMT: u16 = 0o170000;
/// Socket.
pub const S_IFSOCK: u16 = 0o140000;
/// Symbolic link.
pub const S_IFLNK: u16 = 0o120000;
/// Regular file.
pub const S_IFREG: u16 = 0o100000;
/// Block device.
pub const S_IFBLK: u16 = 0o060000;
/// Directory.
pub const S_IFDIR: u16 = 0o040000;
/// Character device.
pub const S_IFCHR: u16 = 0o020000;
/// FIFO.
pub const S_IFIFO: u16 = 0o010000;

/// Directory entry file type: unknown.
pub const FT_UNKNOWN: u8 = 0;
/// Directory entry file type: regular file.
pub const FT_REG: u8 = 1;
/// Directory entry file type: directory.
pub const FT_DIR: u8 = 2;
/// Directory entry file type: character device.
pub const FT_CHRDEV: u8 = 3;
/// Directory entry file type: block device.
pub const FT_BLKDEV: u8 = 4;
/// Directory entry file type: FIFO.
pub const FT_FIFO: u8 = 5;
/// Directory entry file type: socket.
pub const FT_SOCK: u8 = 6;
/// Directory entry file type: symbolic link.
pub const FT_SYMLINK: u8 = 7;
/// Largest valid directory entry file type.
pub const FT_MAX: u8 = 7;

/// Directory entry file type (`FT_*`) for a `mode`, or `None` if its type is invalid.
pub fn file_type_of_mode(mode: u16) -> Option<u8> {
    match mode & S_IFMT {
        S_IFREG => Some(FT_REG),
        S_IFDIR => Some(FT_DIR),
        S_IFCHR => Some(FT_CHRDEV),
        S_IFBLK => Some(FT_BLKDEV),
        S_IFIFO => Some(FT_FIFO),
        S_IFSOCK => Some(FT_SOCK),
        S_IFLNK => Some(FT_SYMLINK),
        _ => None,
    }
}

/// A timestamp: seconds since the epoch and nanoseconds (`0..=999_999_999`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub sec: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

impl Timestamp {
    /// A timestamp from seconds and nanoseconds.
    pub const fn new(sec: i64, nsec: u32) -> Self {
        Self { sec, nsec }
    }
}

/// Nanoseconds per second (the exclusive bound of a `*_nsec` field).
pub const NSEC_PER_SEC: u32 = 1_000_000_000;

/// The superblock: 1024 bytes at byte 1024 of block 0.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct SuperBlock {
    /// `"AegisFS\0"`.
    pub magic: [u8; 8],
    /// 1.
    pub format_version: U32,
    /// 12.
    pub block_size_log2: U32,
    /// Compatible features (`FEATURE_COMPAT_*`).
    pub feature_compat: U64,
    /// Incompatible features (`FEATURE_INCOMPAT_*`).
    pub feature_incompat: U64,
    /// Read-only compatible features.
    pub feature_ro_compat: U64,
    /// Blocks in the filesystem.
    pub blocks_count: U64,
    /// Free data blocks (sum of the groups' `free_blocks`).
    pub free_blocks: U64,
    /// Blocks kept for `reserved_uid`/`reserved_gid`.
    pub reserved_blocks: U64,
    /// Inodes in the filesystem.
    pub inodes_count: U32,
    /// Free inodes.
    pub free_inodes: U32,
    /// First block of group 0.
    pub first_group_block: U64,
    /// 32768.
    pub blocks_per_group: U32,
    /// Inodes per group.
    pub inodes_per_group: U32,
    /// Number of groups.
    pub group_count: U32,
    /// 256, 512 or 1024.
    pub inode_size: U16,
    /// `STATE_*` bits.
    pub state: U16,
    /// 1.
    pub gdt_start: U64,
    /// `ceil(group_count / 64)`.
    pub gdt_blocks: U32,
    /// 2.
    pub root_ino: U32,
    /// 11.
    pub first_ino: U32,
    /// 11.
    pub lost_found_ino: U32,
    /// First journal block (0 without a journal).
    pub journal_start: U64,
    /// Journal length in blocks.
    pub journal_blocks: U64,
    /// Mounts since mkfs or the last check.
    pub mount_count: U32,
    /// 0 = no limit.
    pub max_mount_count: U32,
    /// Seconds.
    pub mkfs_time: I64,
    /// Seconds, last mount.
    pub mount_time: I64,
    /// Seconds, last superblock write.
    pub write_time: I64,
    /// Seconds, last fsck.
    pub check_time: I64,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
    /// UTF-8, NUL padded, at most 63 bytes used.
    pub label: [u8; 64],
    /// Seed of every checksum: `crc32c(0xFFFFFFFF, uuid)` at mkfs time.
    pub checksum_seed: U32,
    /// Owner of the reserved blocks.
    pub reserved_uid: U32,
    /// Group of the reserved blocks.
    pub reserved_gid: U32,
    /// Head of the orphan inode list (0 = empty).
    pub last_orphan: U32,
    /// Errors recorded.
    pub error_count: U32,
    /// `ERRORS_*`.
    pub errors_behavior: U32,
    /// Seconds.
    pub first_error_time: I64,
    /// Seconds.
    pub last_error_time: I64,
    /// Key of the directory name hash (SipHash-2-4 `k0`, `k1`, each u64 LE).
    pub dir_hash_key: [u8; 16],
    /// Zero.
    pub reserved: [u8; 708],
    /// CRC32C of bytes `0..0x3FC`, seeded with `checksum_seed`.
    pub checksum: U32,
}

/// Offset of the superblock checksum field.
pub const SUPERBLOCK_CHECKSUM_OFFSET: usize = 0x3FC;

const _: () = {
    assert!(size_of::<SuperBlock>() == SUPERBLOCK_SIZE);
    assert!(offset_of!(SuperBlock, format_version) == 0x008);
    assert!(offset_of!(SuperBlock, block_size_log2) == 0x00C);
    assert!(offset_of!(SuperBlock, feature_compat) == 0x010);
    assert!(offset_of!(SuperBlock, feature_incompat) == 0x018);
    assert!(offset_of!(SuperBlock, feature_ro_compat) == 0x020);
    assert!(offset_of!(SuperBlock, blocks_count) == 0x028);
    assert!(offset_of!(SuperBlock, free_blocks) == 0x030);
    assert!(offset_of!(SuperBlock, reserved_blocks) == 0x038);
    assert!(offset_of!(SuperBlock, inodes_count) == 0x040);
    assert!(offset_of!(SuperBlock, free_inodes) == 0x044);
    assert!(offset_of!(SuperBlock, first_group_block) == 0x048);
    assert!(offset_of!(SuperBlock, blocks_per_group) == 0x050);
    assert!(offset_of!(SuperBlock, inodes_per_group) == 0x054);
    assert!(offset_of!(SuperBlock, group_count) == 0x058);
    assert!(offset_of!(SuperBlock, inode_size) == 0x05C);
    assert!(offset_of!(SuperBlock, state) == 0x05E);
    assert!(offset_of!(SuperBlock, gdt_start) == 0x060);
    assert!(offset_of!(SuperBlock, gdt_blocks) == 0x068);
    assert!(offset_of!(SuperBlock, root_ino) == 0x06C);
    assert!(offset_of!(SuperBlock, first_ino) == 0x070);
    assert!(offset_of!(SuperBlock, lost_found_ino) == 0x074);
    assert!(offset_of!(SuperBlock, journal_start) == 0x078);
    assert!(offset_of!(SuperBlock, journal_blocks) == 0x080);
    assert!(offset_of!(SuperBlock, mount_count) == 0x088);
    assert!(offset_of!(SuperBlock, max_mount_count) == 0x08C);
    assert!(offset_of!(SuperBlock, mkfs_time) == 0x090);
    assert!(offset_of!(SuperBlock, mount_time) == 0x098);
    assert!(offset_of!(SuperBlock, write_time) == 0x0A0);
    assert!(offset_of!(SuperBlock, check_time) == 0x0A8);
    assert!(offset_of!(SuperBlock, uuid) == 0x0B0);
    assert!(offset_of!(SuperBlock, label) == 0x0C0);
    assert!(offset_of!(SuperBlock, checksum_seed) == 0x100);
    assert!(offset_of!(SuperBlock, reserved_uid) == 0x104);
    assert!(offset_of!(SuperBlock, reserved_gid) == 0x108);
    assert!(offset_of!(SuperBlock, last_orphan) == 0x10C);
    assert!(offset_of!(SuperBlock, error_count) == 0x110);
    assert!(offset_of!(SuperBlock, errors_behavior) == 0x114);
    assert!(offset_of!(SuperBlock, first_error_time) == 0x118);
    assert!(offset_of!(SuperBlock, last_error_time) == 0x120);
    assert!(offset_of!(SuperBlock, dir_hash_key) == 0x128);
    assert!(offset_of!(SuperBlock, reserved) == 0x138);
    assert!(offset_of!(SuperBlock, checksum) == SUPERBLOCK_CHECKSUM_OFFSET);
};

/// Block 0 as laid out on disk: 1024 zero bytes, the superblock, then unused bytes.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
struct Block0 {
    head: [u8; SUPERBLOCK_OFFSET],
    sb: SuperBlock,
    tail: [u8; BLOCK_SIZE - SUPERBLOCK_OFFSET - SUPERBLOCK_SIZE],
}

const _: () = assert!(size_of::<Block0>() == BLOCK_SIZE);

impl SuperBlock {
    /// The superblock inside block 0.
    pub fn in_block(block0: &[u8; BLOCK_SIZE]) -> &SuperBlock {
        let b: &Block0 = zerocopy::transmute_ref!(block0);
        &b.sb
    }

    /// The superblock inside block 0, mutable.
    pub fn in_block_mut(block0: &mut [u8; BLOCK_SIZE]) -> &mut SuperBlock {
        let b: &mut Block0 = zerocopy::transmute_mut!(block0);
        &mut b.sb
    }

    /// The superblock viewed in its own 1024 bytes.
    pub fn from_bytes(bytes: &[u8; SUPERBLOCK_SIZE]) -> &SuperBlock {
        zerocopy::transmute_ref!(bytes)
    }

    /// The superblock's bytes.
    pub fn as_bytes(&self) -> &[u8; SUPERBLOCK_SIZE] {
        zerocopy::transmute_ref!(self)
    }

    /// An all-zero superblock (to be filled by `Geometry::fill_superblock`).
    pub fn zeroed() -> SuperBlock {
        zerocopy::FromZeros::new_zeroed()
    }

    /// The label as bytes, up to the first NUL.
    pub fn label_bytes(&self) -> &[u8] {
        let len = self
            .label
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.label.len());
        self.label.get(..len).unwrap_or(&[])
    }

    /// Sets the label; fails with `BadLabel` if longer than 63 bytes, not UTF-8 or
    /// containing NUL.
    pub fn set_label(&mut self, label: &[u8]) -> crate::error::Result<()> {
        if label.len() > self.label.len() - 1
            || label.contains(&0)
            || core::str::from_utf8(label).is_err()
        {
            return Err(crate::error::FormatError::BadLabel);
        }
        self.label = [0; 64];
        for (d, s) in self.label.iter_mut().zip(label) {
            *d = *s;
        }
        Ok(())
    }

    /// Incompatible feature bits set that this implementation does not support.
    pub fn unsupported_incompat(&self) -> u64 {
        self.feature_incompat.get() & !FEATURE_INCOMPAT_SUPPORTED
    }

    /// Read-only compatible feature bits set that this implementation does not know: when
    /// non-zero the filesystem may only be mounted read-only.
    pub fn unknown_ro_compat(&self) -> u64 {
        self.feature_ro_compat.get() & !FEATURE_RO_COMPAT_SUPPORTED
    }

    /// True when the journal must be replayed before use.
    pub fn needs_recovery(&self) -> bool {
        self.feature_incompat.get() & FEATURE_INCOMPAT_RECOVER != 0
    }

    /// True when the filesystem was unmounted cleanly.
    pub fn is_clean(&self) -> bool {
        self.state.get() & STATE_CLEAN != 0
    }

    /// True when errors were recorded.
    pub fn has_errors(&self) -> bool {
        self.state.get() & STATE_ERRORS != 0
    }
}

/// A group descriptor (64 bytes; descriptor `g` is at byte `(g % 64) * 64` of GDT block
/// `g / 64`).
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct GroupDesc {
    /// Block bitmap block (group start + 0).
    pub block_bitmap: U64,
    /// Inode bitmap block (group start + 1).
    pub inode_bitmap: U64,
    /// First inode table block (group start + 2).
    pub inode_table: U64,
    /// Free data blocks in the group.
    pub free_blocks: U32,
    /// Free inodes in the group.
    pub free_inodes: U32,
    /// Directories in the group.
    pub used_dirs: U32,
    /// None defined; zero.
    pub flags: U32,
    /// Checksum of the block bitmap.
    pub block_bitmap_checksum: U32,
    /// Checksum of the inode bitmap.
    pub inode_bitmap_checksum: U32,
    /// Zero.
    pub reserved: [u8; 12],
    /// Checksum of the descriptor.
    pub checksum: U32,
}

/// Offset of the group descriptor checksum field.
pub const GROUP_DESC_CHECKSUM_OFFSET: usize = 0x3C;

const _: () = {
    assert!(size_of::<GroupDesc>() == GROUP_DESC_SIZE);
    assert!(offset_of!(GroupDesc, inode_bitmap) == 0x08);
    assert!(offset_of!(GroupDesc, inode_table) == 0x10);
    assert!(offset_of!(GroupDesc, free_blocks) == 0x18);
    assert!(offset_of!(GroupDesc, free_inodes) == 0x1C);
    assert!(offset_of!(GroupDesc, used_dirs) == 0x20);
    assert!(offset_of!(GroupDesc, flags) == 0x24);
    assert!(offset_of!(GroupDesc, block_bitmap_checksum) == 0x28);
    assert!(offset_of!(GroupDesc, inode_bitmap_checksum) == 0x2C);
    assert!(offset_of!(GroupDesc, reserved) == 0x30);
    assert!(offset_of!(GroupDesc, checksum) == GROUP_DESC_CHECKSUM_OFFSET);
    assert!(DESCS_PER_BLOCK as usize * GROUP_DESC_SIZE == BLOCK_SIZE);
};

impl GroupDesc {
    /// The 64 descriptors of a GDT block.
    pub fn table(block: &[u8; BLOCK_SIZE]) -> &[GroupDesc; DESCS_PER_BLOCK as usize] {
        zerocopy::transmute_ref!(block)
    }

    /// The 64 descriptors of a GDT block, mutable.
    pub fn table_mut(block: &mut [u8; BLOCK_SIZE]) -> &mut [GroupDesc; DESCS_PER_BLOCK as usize] {
        zerocopy::transmute_mut!(block)
    }

    /// Descriptor of group `g` inside the GDT block that holds it (`g / 64` from
    /// `gdt_start`).
    pub fn in_block(block: &[u8; BLOCK_SIZE], g: u32) -> &GroupDesc {
        &Self::table(block)[(g % DESCS_PER_BLOCK) as usize]
    }

    /// Descriptor of group `g` inside its GDT block, mutable.
    pub fn in_block_mut(block: &mut [u8; BLOCK_SIZE], g: u32) -> &mut GroupDesc {
        &mut Self::table_mut(block)[(g % DESCS_PER_BLOCK) as usize]
    }

    /// The descriptor's bytes.
    pub fn as_bytes(&self) -> &[u8; GROUP_DESC_SIZE] {
        zerocopy::transmute_ref!(self)
    }

    /// An all-zero descriptor.
    pub fn zeroed() -> GroupDesc {
        zerocopy::FromZeros::new_zeroed()
    }
}

/// The fixed 256-byte part of an inode (the inline xattr area follows when
/// `inode_size > 256`).
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct Inode {
    /// POSIX type and permission bits.
    pub mode: U16,
    /// Bytes used in the inline xattr area.
    pub extra_size: U16,
    /// Owner.
    pub uid: U32,
    /// Group.
    pub gid: U32,
    /// Hard links.
    pub links_count: U32,
    /// Size in bytes.
    pub size: U64,
    /// 4096-byte blocks allocated: data, indirect and xattr blocks.
    pub blocks: U64,
    /// `INODE_FLAG_*`.
    pub flags: U32,
    /// Generation (also part of checksums of the inode's blocks).
    pub generation: U32,
    /// Access time, seconds.
    pub atime: I64,
    /// Modification time, seconds.
    pub mtime: I64,
    /// Change time, seconds.
    pub ctime: I64,
    /// Creation time, seconds.
    pub crtime: I64,
    /// Access time, nanoseconds.
    pub atime_nsec: U32,
    /// Modification time, nanoseconds.
    pub mtime_nsec: U32,
    /// Change time, nanoseconds.
    pub ctime_nsec: U32,
    /// Creation time, nanoseconds.
    pub crtime_nsec: U32,
    /// Device number (`new_encode_dev`) of device inodes.
    pub rdev: U32,
    /// Next inode on the orphan list.
    pub next_orphan: U32,
    /// Direct block pointers, 0 = hole.
    pub direct: [U64; N_DIRECT],
    /// Single indirect block.
    pub indirect: U64,
    /// Double indirect block.
    pub double_indirect: U64,
    /// Triple indirect block.
    pub triple_indirect: U64,
    /// External xattr block, 0 = none.
    pub xattr_block: U64,
    /// Zero.
    pub reserved: [u8; 28],
    /// Checksum of the inode.
    pub checksum: U32,
}

/// Offset of the inode checksum field.
pub const INODE_CHECKSUM_OFFSET: usize = 0xFC;

const _: () = {
    assert!(size_of::<Inode>() == INODE_BASE_SIZE);
    assert!(offset_of!(Inode, extra_size) == 0x02);
    assert!(offset_of!(Inode, uid) == 0x04);
    assert!(offset_of!(Inode, gid) == 0x08);
    assert!(offset_of!(Inode, links_count) == 0x0C);
    assert!(offset_of!(Inode, size) == 0x10);
    assert!(offset_of!(Inode, blocks) == 0x18);
    assert!(offset_of!(Inode, flags) == 0x20);
    assert!(offset_of!(Inode, generation) == 0x24);
    assert!(offset_of!(Inode, atime) == 0x28);
    assert!(offset_of!(Inode, mtime) == 0x30);
    assert!(offset_of!(Inode, ctime) == 0x38);
    assert!(offset_of!(Inode, crtime) == 0x40);
    assert!(offset_of!(Inode, atime_nsec) == 0x48);
    assert!(offset_of!(Inode, mtime_nsec) == 0x4C);
    assert!(offset_of!(Inode, ctime_nsec) == 0x50);
    assert!(offset_of!(Inode, crtime_nsec) == 0x54);
    assert!(offset_of!(Inode, rdev) == 0x58);
    assert!(offset_of!(Inode, next_orphan) == 0x5C);
    assert!(offset_of!(Inode, direct) == INLINE_DATA_OFFSET);
    assert!(offset_of!(Inode, indirect) == 0xC0);
    assert!(offset_of!(Inode, double_indirect) == 0xC8);
    assert!(offset_of!(Inode, triple_indirect) == 0xD0);
    assert!(offset_of!(Inode, xattr_block) == 0xD8);
    assert!(offset_of!(Inode, xattr_block) == INLINE_DATA_OFFSET + INLINE_DATA_MAX);
    assert!(offset_of!(Inode, reserved) == 0xE0);
    assert!(offset_of!(Inode, checksum) == INODE_CHECKSUM_OFFSET);
};

/// Header of a directory entry; the name follows.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct DirEntryHeader {
    /// Inode number, 0 = unused entry.
    pub inode: U32,
    /// Bytes to the next entry.
    pub rec_len: U16,
    /// Name length.
    pub name_len: u8,
    /// `FT_*`.
    pub file_type: u8,
}

/// Size of a directory entry header.
pub const DIR_ENTRY_HEADER_SIZE: usize = 8;

/// The 12-byte tail at the end of every directory block.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct DirTail {
    /// 0.
    pub inode: U32,
    /// 12.
    pub rec_len: U16,
    /// 0.
    pub name_len: u8,
    /// [`DIR_TAIL_FILE_TYPE`].
    pub file_type: u8,
    /// Checksum of the directory block.
    pub checksum: U32,
}

/// Offset of the directory block tail (entries fill `0..DIR_TAIL_OFFSET`).
pub const DIR_TAIL_OFFSET: usize = 4084;
/// Size of the directory block tail.
pub const DIR_TAIL_SIZE: usize = 12;
/// The tail's `file_type` marker.
pub const DIR_TAIL_FILE_TYPE: u8 = 0xDE;
/// Offset of the directory block checksum.
pub const DIR_CHECKSUM_OFFSET: usize = 4092;
/// Offset of a directory index block's checksum (the bytes before it are covered).
pub const DIR_INDEX_CHECKSUM_OFFSET: usize = 0xFFC;

const _: () = {
    assert!(size_of::<DirEntryHeader>() == DIR_ENTRY_HEADER_SIZE);
    assert!(size_of::<DirTail>() == DIR_TAIL_SIZE);
    assert!(DIR_TAIL_OFFSET + DIR_TAIL_SIZE == BLOCK_SIZE);
    assert!(DIR_TAIL_OFFSET + offset_of!(DirTail, checksum) == DIR_CHECKSUM_OFFSET);
};

/// An indirect block: 511 block pointers, a checksum and a reserved zero word.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct IndirectBlock {
    /// Block pointers, 0 = hole.
    pub ptrs: [U64; PTRS_PER_BLOCK],
    /// Checksum over `ino`, `generation` and bytes `0..4088`.
    pub checksum: U32,
    /// Zero.
    pub reserved: U32,
}

/// Offset of the indirect block checksum.
pub const INDIRECT_CHECKSUM_OFFSET: usize = 0xFF8;

const _: () = {
    assert!(size_of::<IndirectBlock>() == BLOCK_SIZE);
    assert!(offset_of!(IndirectBlock, checksum) == INDIRECT_CHECKSUM_OFFSET);
    assert!(offset_of!(IndirectBlock, reserved) == 0xFFC);
};

/// Whether bit `i` of a bitmap is set (`false` past the end).
pub fn bitmap_test(bitmap: &[u8], i: u32) -> bool {
    match bitmap.get((i / 8) as usize) {
        Some(b) => b & (1 << (i % 8)) != 0,
        None => false,
    }
}

/// Sets or clears bit `i` of a bitmap; returns the previous value (`false` and no change
/// past the end).
pub fn bitmap_set(bitmap: &mut [u8], i: u32, value: bool) -> bool {
    match bitmap.get_mut((i / 8) as usize) {
        Some(b) => {
            let mask = 1u8 << (i % 8);
            let old = *b & mask != 0;
            if value {
                *b |= mask;
            } else {
                *b &= !mask;
            }
            old
        }
        None => false,
    }
}

/// Index of the first clear bit at or after `start` and below `end`, if any.
pub fn bitmap_find_clear(bitmap: &[u8], start: u32, end: u32) -> Option<u32> {
    let mut i = start;
    while i < end {
        let byte = *bitmap.get((i / 8) as usize)?;
        if i.is_multiple_of(8) && byte == 0xFF && end - i >= 8 {
            i += 8;
            continue;
        }
        if byte & (1 << (i % 8)) == 0 {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Index of the first set bit at or after `start` and below `end`, if any (bits past the
/// end of the bitmap count as clear).
pub fn bitmap_find_set(bitmap: &[u8], start: u32, end: u32) -> Option<u32> {
    let mut i = start;
    while i < end {
        let byte = *bitmap.get((i / 8) as usize)?;
        if i.is_multiple_of(8) && byte == 0 && end - i >= 8 {
            i += 8;
            continue;
        }
        if byte & (1 << (i % 8)) != 0 {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        assert_eq!(MAX_FILE_BLOCKS, 133_694_475);
        assert_eq!(MAX_FILE_SIZE, 547_612_569_600);
        assert_eq!(MAX_INDIRECT_BLOCKS, 262_146);
        assert_eq!(&MAGIC, b"AegisFS\0");
        assert_eq!(INODE_FLAGS_USER & INODE_FLAG_INLINE_DATA, 0);
    }

    #[test]
    fn file_types() {
        assert_eq!(file_type_of_mode(S_IFREG | 0o777), Some(FT_REG));
        assert_eq!(file_type_of_mode(S_IFDIR), Some(FT_DIR));
        assert_eq!(file_type_of_mode(S_IFCHR), Some(FT_CHRDEV));
        assert_eq!(file_type_of_mode(S_IFBLK), Some(FT_BLKDEV));
        assert_eq!(file_type_of_mode(S_IFIFO), Some(FT_FIFO));
        assert_eq!(file_type_of_mode(S_IFSOCK), Some(FT_SOCK));
        assert_eq!(file_type_of_mode(S_IFLNK), Some(FT_SYMLINK));
        assert_eq!(file_type_of_mode(0o644), None);
        assert_eq!(file_type_of_mode(0o030000), None);
    }

    #[test]
    fn bitmaps() {
        let mut bm = [0u8; 16];
        assert!(!bitmap_set(&mut bm, 9, true));
        assert!(bitmap_set(&mut bm, 9, true));
        assert_eq!(bm[1], 0b10);
        assert!(bitmap_test(&bm, 9));
        assert!(!bitmap_test(&bm, 8));
        assert!(!bitmap_test(&bm, 1000));
        assert!(!bitmap_set(&mut bm, 1000, true));
        assert_eq!(bitmap_find_clear(&bm, 0, 128), Some(0));
        bm[..2].fill(0xFF);
        assert_eq!(bitmap_find_clear(&bm, 0, 128), Some(16));
        assert_eq!(bitmap_find_clear(&bm, 3, 16), None);
        assert_eq!(bitmap_find_clear(&bm, 20, 21), Some(20));
        assert!(bitmap_set(&mut bm, 9, false));
        assert_eq!(bitmap_find_clear(&bm, 0, 128), Some(9));
        bm.fill(0xFF);
        assert_eq!(bitmap_find_clear(&bm, 0, u32::MAX), None);
    }

    #[test]
    fn bitmap_find_set_bits() {
        let mut bm = [0u8; 16];
        assert_eq!(bitmap_find_set(&bm, 0, 128), None);
        assert_eq!(bitmap_find_set(&bm, 0, u32::MAX), None);
        bitmap_set(&mut bm, 3, true);
        bitmap_set(&mut bm, 70, true);
        assert_eq!(bitmap_find_set(&bm, 0, 128), Some(3));
        assert_eq!(bitmap_find_set(&bm, 3, 4), Some(3));
        assert_eq!(bitmap_find_set(&bm, 4, 128), Some(70));
        assert_eq!(bitmap_find_set(&bm, 4, 70), None);
        assert_eq!(bitmap_find_set(&bm, 71, 128), None);
        assert_eq!(bitmap_find_set(&bm, 200, 300), None);
        // Every start and end agrees with a bit-by-bit search.
        let mut bm = [0u8; 8];
        for i in [0u32, 7, 8, 9, 31, 32, 40, 63] {
            bitmap_set(&mut bm, i, true);
        }
        for start in 0..64u32 {
            for end in start..=64u32 {
                let want = (start..end).find(|&i| bitmap_test(&bm, i));
                assert_eq!(bitmap_find_set(&bm, start, end), want, "{start}..{end}");
            }
        }
    }

    #[test]
    fn gdt_block_views() {
        let mut block = [0u8; BLOCK_SIZE];
        GroupDesc::in_block_mut(&mut block, 64 + 5)
            .free_blocks
            .set(0x0102_0304);
        assert_eq!(&block[5 * 64 + 0x18..5 * 64 + 0x1C], &[4, 3, 2, 1]);
        assert_eq!(
            GroupDesc::in_block(&block, 5).free_blocks.get(),
            0x0102_0304
        );
        assert_eq!(GroupDesc::table(&block)[5].free_blocks.get(), 0x0102_0304);
        SuperBlock::in_block_mut(&mut block).group_count.set(7);
        assert_eq!(&block[1024 + 0x58..1024 + 0x5C], &[7, 0, 0, 0]);
        assert_eq!(SuperBlock::in_block(&block).group_count.get(), 7);
    }
}
