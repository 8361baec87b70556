// Errors of the on-disk format layer.
//
// `FormatError` is a small `Copy` enum so kernel code can log it (`msg()`) and map it to an
// errno without allocating: corruption of on-disk data is EUCLEAN, an image or request this
// implementation cannot or will not handle is EINVAL.

/// What went wrong while parsing, validating or planning on-disk structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// A buffer passed in has the wrong length (a caller bug, not on-disk corruption).
    BufferSize,
    /// The superblock magic is not `"AegisFS\0"`: not an AegisFS filesystem.
    BadMagic,
    /// `format_version` is not 1.
    UnsupportedVersion,
    /// `block_size_log2` is not 12.
    UnsupportedBlockSize,
    /// `feature_incompat` has bits this implementation does not support.
    UnsupportedFeature,
    /// `blocks_count` is larger than the device.
    DeviceTooSmall,
    /// The superblock checksum does not match.
    SuperBlockChecksum,
    /// `blocks_per_group` is not 32768.
    BadBlocksPerGroup,
    /// `inode_size` is not 256, 512 or 1024.
    BadInodeSize,
    /// `inodes_per_group` is 0, not a multiple of 16 or above 32768.
    BadInodesPerGroup,
    /// `group_count` is 0 or `inodes_count != group_count * inodes_per_group`.
    BadGroupCount,
    /// `gdt_start` is not 1 or `gdt_blocks` is not `ceil(group_count / 64)`.
    BadGdtLocation,
    /// The journal is not inside `[gdt end, first_group_block)`, is shorter than the
    /// minimum, longer than `u32::MAX` blocks, or disagrees with `HAS_JOURNAL`/`RECOVER`.
    BadJournalLocation,
    /// `blocks_count` does not match `first_group_block` and the group count, or the last
    /// group is too short, or some position overflows.
    BadBlocksCount,
    /// `root_ino`, `first_ino` or `lost_found_ino` differ from 2, 11, 11.
    BadReservedInodes,
    /// A free or reserved count in the superblock exceeds its total.
    BadFreeCounts,
    /// Unknown bits in the superblock `state`.
    BadState,
    /// `errors_behavior` is not 1, 2 or 3.
    BadErrorsBehavior,
    /// The label is not NUL padded UTF-8 of at most 63 bytes.
    BadLabel,
    /// `last_orphan` or an inode's `next_orphan` is not 0 or a valid non-reserved inode.
    BadOrphan,
    /// A group descriptor checksum does not match.
    GroupDescChecksum,
    /// A group descriptor's bitmap or inode table position differs from the fixed layout.
    GroupDescLayout,
    /// A group descriptor's free/used counts exceed the group's size, or flags are set.
    GroupDescCounts,
    /// A block bitmap checksum does not match the one in its group descriptor.
    BlockBitmapChecksum,
    /// An inode bitmap checksum does not match the one in its group descriptor.
    InodeBitmapChecksum,
    /// An inode number is 0 or above `inodes_count`.
    BadInodeNumber,
    /// An inode checksum does not match.
    InodeChecksum,
    /// An inode's mode has no valid file type.
    InodeFileType,
    /// An inode's size is impossible for its type.
    InodeSize,
    /// An inode has unknown flags, or `INLINE_DATA` on something that is not a symlink, or
    /// a symlink whose inline flag does not match its size.
    InodeFlags,
    /// A nanosecond field of an inode is 1e9 or more.
    InodeTime,
    /// An inode's `blocks` count is impossible.
    InodeBlocks,
    /// An inode's `extra_size` does not fit its inline xattr area.
    InodeExtraSize,
    /// A device, FIFO or socket inode has a size or block pointers.
    InodeSpecial,
    /// A block pointer is outside the data area (metadata, before the groups, past the end).
    BadBlockPointer,
    /// An indirect block checksum does not match (or its reserved word is not zero).
    IndirectChecksum,
    /// A directory block checksum does not match.
    DirChecksum,
    /// A directory block tail is malformed.
    DirTail,
    /// A directory entry's `rec_len` is too small, unaligned or crosses the tail.
    DirRecLen,
    /// A used directory entry has `name_len` 0 or a name with `/` or NUL.
    DirName,
    /// A directory entry names an inode that does not exist or is reserved.
    DirInode,
    /// A directory entry's `file_type` is above 7.
    DirFileType,
    /// A journal block has a wrong magic, type or layout.
    JournalFormat,
    /// A journal block checksum does not match.
    JournalChecksum,
    /// mkfs: the device is too small for the requested layout.
    FsTooSmall,
    /// mkfs: the journal size is below the minimum (1024 blocks) or does not fit.
    BadJournalSize,
    /// mkfs: the requested inode count or ratio is out of range.
    BadInodeCount,
}

impl FormatError {
    /// A short description for log lines, e.g. `aegisfs (vda): <msg>`.
    pub fn msg(&self) -> &'static str {
        match self {
            Self::BufferSize => "buffer has the wrong size",
            Self::BadMagic => "bad magic number (not an AegisFS filesystem)",
            Self::UnsupportedVersion => "unsupported format version",
            Self::UnsupportedBlockSize => "unsupported block size",
            Self::UnsupportedFeature => "unsupported incompatible features",
            Self::DeviceTooSmall => "filesystem is larger than the device",
            Self::SuperBlockChecksum => "superblock checksum mismatch",
            Self::BadBlocksPerGroup => "bad blocks per group",
            Self::BadInodeSize => "bad inode size",
            Self::BadInodesPerGroup => "bad inodes per group",
            Self::BadGroupCount => "bad group or inode count",
            Self::BadGdtLocation => "bad group descriptor table location",
            Self::BadJournalLocation => "bad journal location or size",
            Self::BadBlocksCount => "bad blocks count or group layout",
            Self::BadReservedInodes => "bad reserved inode numbers",
            Self::BadFreeCounts => "free or reserved counts exceed totals",
            Self::BadState => "unknown superblock state bits",
            Self::BadErrorsBehavior => "bad errors behavior",
            Self::BadLabel => "bad label",
            Self::BadOrphan => "bad orphan list pointer",
            Self::GroupDescChecksum => "group descriptor checksum mismatch",
            Self::GroupDescLayout => "group descriptor has wrong metadata positions",
            Self::GroupDescCounts => "group descriptor counts or flags invalid",
            Self::BlockBitmapChecksum => "block bitmap checksum mismatch",
            Self::InodeBitmapChecksum => "inode bitmap checksum mismatch",
            Self::BadInodeNumber => "inode number out of range",
            Self::InodeChecksum => "inode checksum mismatch",
            Self::InodeFileType => "inode has an invalid file type",
            Self::InodeSize => "inode size invalid for its type",
            Self::InodeFlags => "inode flags invalid",
            Self::InodeTime => "inode timestamp nanoseconds out of range",
            Self::InodeBlocks => "inode block count invalid",
            Self::InodeExtraSize => "inode extra size invalid",
            Self::InodeSpecial => "special inode has data",
            Self::BadBlockPointer => "block pointer outside the data area",
            Self::IndirectChecksum => "indirect block checksum mismatch",
            Self::DirChecksum => "directory block checksum mismatch",
            Self::DirTail => "directory block tail malformed",
            Self::DirRecLen => "directory entry record length invalid",
            Self::DirName => "directory entry name invalid",
            Self::DirInode => "directory entry inode number invalid",
            Self::DirFileType => "directory entry file type invalid",
            Self::JournalFormat => "journal block malformed",
            Self::JournalChecksum => "journal block checksum mismatch",
            Self::FsTooSmall => "device too small for the filesystem layout",
            Self::BadJournalSize => "journal size invalid",
            Self::BadInodeCount => "inode count or ratio out of range",
        }
    }

    /// True when the error means on-disk data is corrupt (the kernel returns EUCLEAN);
    /// false for unsupported or invalid images and requests (EINVAL).
    ///
    /// Superblock geometry errors count as invalid, not corrupt: they stop the mount before
    /// anything else is read, like ext2's EINVAL for a bad superblock.
    pub fn is_corruption(&self) -> bool {
        !matches!(
            self,
            Self::BufferSize
                | Self::BadMagic
                | Self::UnsupportedVersion
                | Self::UnsupportedBlockSize
                | Self::UnsupportedFeature
                | Self::DeviceTooSmall
                | Self::BadBlocksPerGroup
                | Self::BadInodeSize
                | Self::BadInodesPerGroup
                | Self::BadGroupCount
                | Self::BadGdtLocation
                | Self::BadJournalLocation
                | Self::BadBlocksCount
                | Self::BadReservedInodes
                | Self::FsTooSmall
                | Self::BadJournalSize
                | Self::BadInodeCount
        )
    }
}

/// Result type of this crate.
pub type Result<T> = core::result::Result<T, FormatError>;

#[cfg(test)]
mod tests {
    use super::FormatError::{self, *};

    const ALL: [FormatError; 47] = [
        BufferSize,
        BadMagic,
        UnsupportedVersion,
        UnsupportedBlockSize,
        UnsupportedFeature,
        DeviceTooSmall,
        SuperBlockChecksum,
        BadBlocksPerGroup,
        BadInodeSize,
        BadInodesPerGroup,
        BadGroupCount,
        BadGdtLocation,
        BadJournalLocation,
        BadBlocksCount,
        BadReservedInodes,
        BadFreeCounts,
        BadState,
        BadErrorsBehavior,
        BadLabel,
        BadOrphan,
        GroupDescChecksum,
        GroupDescLayout,
        GroupDescCounts,
        BlockBitmapChecksum,
        InodeBitmapChecksum,
        BadInodeNumber,
        InodeChecksum,
        InodeFileType,
        InodeSize,
        InodeFlags,
        InodeTime,
        InodeBlocks,
        InodeExtraSize,
        InodeSpecial,
        BadBlockPointer,
        IndirectChecksum,
        DirChecksum,
        DirTail,
        DirRecLen,
        DirName,
        DirInode,
        DirFileType,
        JournalFormat,
        JournalChecksum,
        FsTooSmall,
        BadJournalSize,
        BadInodeCount,
    ];

    #[test]
    fn messages_are_distinct_and_short() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(!a.msg().is_empty() && a.msg().len() < 64, "{a:?}");
            for b in &ALL[i + 1..] {
                assert!(a == b || a.msg() != b.msg(), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn classification() {
        for e in [
            SuperBlockChecksum,
            InodeChecksum,
            DirRecLen,
            BadBlockPointer,
            JournalChecksum,
        ] {
            assert!(e.is_corruption(), "{e:?}");
        }
        for e in [
            BadMagic,
            UnsupportedFeature,
            DeviceTooSmall,
            BadGroupCount,
            FsTooSmall,
        ] {
            assert!(!e.is_corruption(), "{e:?}");
        }
    }
}
