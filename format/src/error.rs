// Errors of the on-disk format layer.
//
// `FormatError` is a small `Copy` enum so kernel code can log it (`msg()`) and map it to an
// errno without allocating: corruption of on-disk data is EUCLEAN, an image or request this
// implementation cannot or will not handle is EINVAL.

/// Declares [`FormatError`] from one list of `Variant => "message"`, so each variant's
/// description for log lines stands next to it and the tests see every variant.
macro_rules! format_errors {
    ($($(#[$doc:meta])* $name:ident => $msg:literal,)*) => {
        /// What went wrong while parsing, validating or planning on-disk structures.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum FormatError {
            $($(#[$doc])* $name,)*
        }

        impl FormatError {
            /// A short description for log lines, e.g. `aegisfs (vda): <msg>`.
            pub fn msg(&self) -> &'static str {
                match self {
                    $(Self::$name => $msg,)*
                }
            }

            /// Every error, in declaration order.
            #[cfg(test)]
            pub(crate) const ALL: &'static [FormatError] = &[$(Self::$name,)*];
        }
    };
}

format_errors! {
    /// A buffer passed in has the wrong length (a caller bug, not on-disk corruption).
    BufferSize => "buffer has the wrong size",
    /// The superblock magic is not `"AegisFS\0"`: not an AegisFS filesystem.
    BadMagic => "bad magic number (not an AegisFS filesystem)",
    /// `format_version` is not 1.
    UnsupportedVersion => "unsupported format version",
    /// `block_size_log2` is not 12.
    UnsupportedBlockSize => "unsupported block size",
    /// `feature_incompat` has bits this implementation does not support.
    UnsupportedFeature => "unsupported incompatible features",
    /// `blocks_count` is larger than the device.
    DeviceTooSmall => "filesystem is larger than the device",
    /// The superblock checksum does not match.
    SuperBlockChecksum => "superblock checksum mismatch",
    /// `blocks_per_group` is not 32768.
    BadBlocksPerGroup => "bad blocks per group",
    /// `inode_size` is not 256, 512 or 1024.
    BadInodeSize => "bad inode size",
    /// `inodes_per_group` is 0, not a multiple of 16 or above 32768.
    BadInodesPerGroup => "bad inodes per group",
    /// `group_count` is 0 or `inodes_count != group_count * inodes_per_group`.
    BadGroupCount => "bad group or inode count",
    /// `gdt_start` is not 1 or `gdt_blocks` is not `ceil(group_count / 64)`.
    BadGdtLocation => "bad group descriptor table location",
    /// The journal is not inside `[gdt end, first_group_block)`, is shorter than the
    /// minimum, longer than `u32::MAX` blocks, or disagrees with `HAS_JOURNAL`/`RECOVER`.
    BadJournalLocation => "bad journal location or size",
    /// `blocks_count` does not match `first_group_block` and the group count, or the last
    /// group is too short, or some position overflows.
    BadBlocksCount => "bad blocks count or group layout",
    /// `root_ino`, `first_ino` or `lost_found_ino` differ from 2, 11, 11.
    BadReservedInodes => "bad reserved inode numbers",
    /// A free or reserved count in the superblock exceeds its total.
    BadFreeCounts => "free or reserved counts exceed totals",
    /// Unknown bits in the superblock `state`.
    BadState => "unknown superblock state bits",
    /// `errors_behavior` is not 1, 2 or 3.
    BadErrorsBehavior => "bad errors behavior",
    /// The label is not NUL padded UTF-8 of at most 63 bytes.
    BadLabel => "bad label",
    /// `last_orphan` or an inode's `next_orphan` is not 0 or a valid non-reserved inode.
    BadOrphan => "bad orphan list pointer",
    /// A group descriptor checksum does not match.
    GroupDescChecksum => "group descriptor checksum mismatch",
    /// A group descriptor's bitmap or inode table position differs from the fixed layout.
    GroupDescLayout => "group descriptor has wrong metadata positions",
    /// A group descriptor's free/used counts exceed the group's size, or flags are set.
    GroupDescCounts => "group descriptor counts or flags invalid",
    /// A block bitmap checksum does not match the one in its group descriptor.
    BlockBitmapChecksum => "block bitmap checksum mismatch",
    /// An inode bitmap checksum does not match the one in its group descriptor.
    InodeBitmapChecksum => "inode bitmap checksum mismatch",
    /// An inode number is 0 or above `inodes_count`.
    BadInodeNumber => "inode number out of range",
    /// An inode checksum does not match.
    InodeChecksum => "inode checksum mismatch",
    /// An inode's mode has no valid file type.
    InodeFileType => "inode has an invalid file type",
    /// An inode's size is impossible for its type.
    InodeSize => "inode size invalid for its type",
    /// An inode has unknown flags, or `INLINE_DATA` on something that is not a symlink, or
    /// a symlink whose inline flag does not match its size.
    InodeFlags => "inode flags invalid",
    /// A nanosecond field of an inode is 1e9 or more.
    InodeTime => "inode timestamp nanoseconds out of range",
    /// An inode's `blocks` count is impossible.
    InodeBlocks => "inode block count invalid",
    /// An inode's `extra_size` does not fit its inline xattr area.
    InodeExtraSize => "inode extra size invalid",
    /// A device, FIFO or socket inode has a size or block pointers.
    InodeSpecial => "special inode has data",
    /// A block pointer is outside the data area (metadata, before the groups, past the end).
    BadBlockPointer => "block pointer outside the data area",
    /// The UNWRITTEN bit (63) on a pointer that may not carry it: an indirect tree pointer,
    /// or a data pointer of a directory or symlink (or the xattr block).
    UnwrittenPointer => "unwritten flag on a metadata or non-regular block pointer",
    /// An indirect block checksum does not match (or its reserved word is not zero).
    IndirectChecksum => "indirect block checksum mismatch",
    /// A directory block checksum does not match.
    DirChecksum => "directory block checksum mismatch",
    /// A directory block tail is malformed.
    DirTail => "directory block tail malformed",
    /// A directory entry's `rec_len` is too small, unaligned or crosses the tail.
    DirRecLen => "directory entry record length invalid",
    /// A used directory entry has `name_len` 0 or a name with `/` or NUL.
    DirName => "directory entry name invalid",
    /// A directory entry names an inode that does not exist or is reserved.
    DirInode => "directory entry inode number invalid",
    /// A directory entry's `file_type` is above 7.
    DirFileType => "directory entry file type invalid",
    /// A directory index block has a wrong magic, count, level, order of hashes or child
    /// block, or non-zero reserved bytes.
    DirIndex => "directory index block invalid",
    /// A directory index block checksum does not match.
    DirIndexChecksum => "directory index block checksum mismatch",
    /// A leaf of an indexed directory holds a name whose hash its index range excludes,
    /// or an indexed directory is too short or not allowed by the superblock's features.
    DirIndexRange => "directory index does not match its entries",
    /// An xattr area's used length is not a multiple of 4 inside the area, or bytes after
    /// it are not zero.
    XattrArea => "xattr area used length or tail invalid",
    /// An xattr entry crosses the end of its area's used bytes or has non-zero padding.
    XattrEntry => "xattr entry malformed",
    /// An xattr entry has an unknown name index or a name invalid for its index.
    XattrName => "xattr entry name or index invalid",
    /// The same xattr name is stored twice in an inode.
    XattrDuplicate => "xattr name stored twice",
    /// A POSIX ACL value is malformed.
    XattrAcl => "xattr ACL value malformed",
    /// An xattr block has a wrong magic or refcount, or non-zero reserved bytes.
    XattrBlockHeader => "xattr block header invalid",
    /// An xattr block checksum does not match.
    XattrBlockChecksum => "xattr block checksum mismatch",
    /// A journal block has a wrong magic, type or layout.
    JournalFormat => "journal block malformed",
    /// A journal block checksum does not match.
    JournalChecksum => "journal block checksum mismatch",
    /// The journal superblock has incompatible journal feature bits this implementation
    /// does not know: the journal must not be replayed.
    JournalFeature => "unsupported journal features",
    /// mkfs: the device is too small for the requested layout.
    FsTooSmall => "device too small for the filesystem layout",
    /// mkfs: the journal size is below the minimum (1024 blocks) or does not fit.
    BadJournalSize => "journal size invalid",
    /// mkfs: the requested inode count or ratio is out of range.
    BadInodeCount => "inode count or ratio out of range",
}

impl FormatError {
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
                | Self::JournalFeature
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

    const ALL: &[FormatError] = FormatError::ALL;

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
            UnwrittenPointer,
            JournalChecksum,
        ] {
            assert!(e.is_corruption(), "{e:?}");
        }
        for e in [
            BadMagic,
            UnsupportedFeature,
            JournalFeature,
            DeviceTooSmall,
            BadGroupCount,
            FsTooSmall,
        ] {
            assert!(!e.is_corruption(), "{e:?}");
        }
    }
}
