//! Format-level helpers the `aegisfs-format` crate does not provide (yet). They belong
//! there and are kept here, small and self-contained, so they can move without changes.

use aegisfs_format::disk::{FT_BLKDEV, FT_CHRDEV, FT_DIR, FT_FIFO, FT_REG, FT_SOCK, FT_SYMLINK};

/// Linux `new_encode_dev`: the 32-bit device number stored in an inode's `rdev`
/// (docs/format.md, "Inodes").
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// What a directory entry's or an inode's file type (`FT_*`) is, in words.
pub fn file_type_name(ft: u8) -> &'static str {
    match ft {
        FT_REG => "regular file",
        FT_DIR => "directory",
        FT_CHRDEV => "character device",
        FT_BLKDEV => "block device",
        FT_FIFO => "FIFO",
        FT_SOCK => "socket",
        FT_SYMLINK => "symbolic link",
        _ => "unknown",
    }
}

/// Reserved blocks for `percent_hundredths` hundredths of a percent of `data_blocks`
/// (the superblock's `reserved_blocks`; `geometry::default_reserved_blocks` is the 5% case).
pub fn reserved_blocks(data_blocks: u64, percent_hundredths: u64) -> u64 {
    (u128::from(data_blocks) * u128::from(percent_hundredths) / 10_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegisfs_format::geometry::default_reserved_blocks;

    #[test]
    fn device_numbers() {
        assert_eq!(encode_dev(1, 3), 0x103);
        assert_eq!(encode_dev(8, 17), 0x811);
        assert_eq!(encode_dev(259, 300), 44 | (259 << 8) | (256 << 12));
        assert_eq!(encode_dev(4095, 0xfffff), 0xffff_ffff);
    }

    #[test]
    fn reserved_matches_the_default_at_five_percent() {
        for blocks in [0, 1, 99, 100, 12345, 268_435_456, u64::MAX / 2] {
            assert_eq!(
                reserved_blocks(blocks, 500),
                default_reserved_blocks(blocks)
            );
        }
        assert_eq!(reserved_blocks(1000, 50), 5);
        assert_eq!(reserved_blocks(1000, 0), 0);
        assert_eq!(reserved_blocks(u64::MAX, 5000), u64::MAX / 2);
    }
}
