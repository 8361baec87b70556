// Inode accessors and validation (docs/format.md, "Inodes").

use crate::checksum::verify_inode_checksum;
use crate::disk::{
    file_type_of_mode, Inode, Timestamp, BLOCK_SIZE_U64, FIRST_INO, FT_BLKDEV, FT_CHRDEV, FT_DIR,
    FT_FIFO, FT_REG, FT_SOCK, FT_SYMLINK, INLINE_DATA_MAX, INLINE_DATA_OFFSET, INODE_BASE_SIZE,
    INODE_FLAGS_ALL, INODE_FLAG_INLINE_DATA, MAX_FILE_SIZE, MAX_INODE_BLOCKS, NSEC_PER_SEC,
    SYMLINK_MAX, S_IFMT,
};
use crate::error::{FormatError, Result};
use crate::geometry::Geometry;

/// Which of an inode's four timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeField {
    /// Last access.
    Atime,
    /// Last modification.
    Mtime,
    /// Last status change.
    Ctime,
    /// Creation.
    Crtime,
}

impl Inode {
    /// The fixed part of an inode at the start of `raw` (its slot in an inode table block,
    /// at least 256 bytes).
    pub fn from_slot(raw: &[u8]) -> Result<&Inode> {
        let fixed: &[u8; INODE_BASE_SIZE] = raw
            .get(..INODE_BASE_SIZE)
            .and_then(|s| s.try_into().ok())
            .ok_or(FormatError::BufferSize)?;
        Ok(zerocopy::transmute_ref!(fixed))
    }

    /// The fixed part of an inode at the start of `raw`, mutable.
    pub fn from_slot_mut(raw: &mut [u8]) -> Result<&mut Inode> {
        let fixed: &mut [u8; INODE_BASE_SIZE] = raw
            .get_mut(..INODE_BASE_SIZE)
            .and_then(|s| s.try_into().ok())
            .ok_or(FormatError::BufferSize)?;
        Ok(zerocopy::transmute_mut!(fixed))
    }

    /// An all-zero inode.
    pub fn zeroed() -> Inode {
        zerocopy::FromZeros::new_zeroed()
    }

    /// The inode's 256 bytes.
    pub fn as_bytes(&self) -> &[u8; INODE_BASE_SIZE] {
        zerocopy::transmute_ref!(self)
    }

    fn as_bytes_mut(&mut self) -> &mut [u8; INODE_BASE_SIZE] {
        zerocopy::transmute_mut!(self)
    }

    /// `mode & S_IFMT`.
    pub fn format(&self) -> u16 {
        self.mode.get() & S_IFMT
    }

    /// The directory entry file type (`FT_*`) of this inode, `None` if its mode is invalid.
    pub fn file_type(&self) -> Option<u8> {
        file_type_of_mode(self.mode.get())
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == Some(FT_DIR)
    }

    /// True for a regular file.
    pub fn is_reg(&self) -> bool {
        self.file_type() == Some(FT_REG)
    }

    /// True for a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type() == Some(FT_SYMLINK)
    }

    /// True for a device, FIFO or socket (no data, no block pointers).
    pub fn is_special(&self) -> bool {
        matches!(
            self.file_type(),
            Some(FT_CHRDEV | FT_BLKDEV | FT_FIFO | FT_SOCK)
        )
    }

    /// True if the `INLINE_DATA` flag is set.
    pub fn has_inline_data(&self) -> bool {
        self.flags.get() & INODE_FLAG_INLINE_DATA != 0
    }

    /// A timestamp.
    pub fn time(&self, which: TimeField) -> Timestamp {
        let (s, n) = match which {
            TimeField::Atime => (&self.atime, &self.atime_nsec),
            TimeField::Mtime => (&self.mtime, &self.mtime_nsec),
            TimeField::Ctime => (&self.ctime, &self.ctime_nsec),
            TimeField::Crtime => (&self.crtime, &self.crtime_nsec),
        };
        Timestamp::new(s.get(), n.get())
    }

    /// Sets a timestamp (nanoseconds above 999 999 999 are clamped).
    pub fn set_time(&mut self, which: TimeField, t: Timestamp) {
        let (s, n) = match which {
            TimeField::Atime => (&mut self.atime, &mut self.atime_nsec),
            TimeField::Mtime => (&mut self.mtime, &mut self.mtime_nsec),
            TimeField::Ctime => (&mut self.ctime, &mut self.ctime_nsec),
            TimeField::Crtime => (&mut self.crtime, &mut self.crtime_nsec),
        };
        s.set(t.sec);
        n.set(t.nsec.min(NSEC_PER_SEC - 1));
    }

    /// Access time.
    pub fn atime(&self) -> Timestamp {
        self.time(TimeField::Atime)
    }

    /// Modification time.
    pub fn mtime(&self) -> Timestamp {
        self.time(TimeField::Mtime)
    }

    /// Status change time.
    pub fn ctime(&self) -> Timestamp {
        self.time(TimeField::Ctime)
    }

    /// Creation time.
    pub fn crtime(&self) -> Timestamp {
        self.time(TimeField::Crtime)
    }

    /// Direct pointer `i` (`None` if `i >= 12`).
    pub fn direct_ptr(&self, i: usize) -> Option<u64> {
        self.direct.get(i).map(|p| p.get())
    }

    /// Sets direct pointer `i`; false if `i >= 12`.
    pub fn set_direct_ptr(&mut self, i: usize, block: u64) -> bool {
        match self.direct.get_mut(i) {
            Some(p) => {
                p.set(block);
                true
            }
            None => false,
        }
    }

    /// The root pointer of a mapping level: 1 `indirect`, 2 `double_indirect`,
    /// 3 `triple_indirect` (`None` for other depths).
    pub fn tree_root(&self, depth: u8) -> Option<u64> {
        match depth {
            1 => Some(self.indirect.get()),
            2 => Some(self.double_indirect.get()),
            3 => Some(self.triple_indirect.get()),
            _ => None,
        }
    }

    /// Sets the root pointer of mapping level `depth` (1..=3); false for other depths.
    pub fn set_tree_root(&mut self, depth: u8, block: u64) -> bool {
        let p = match depth {
            1 => &mut self.indirect,
            2 => &mut self.double_indirect,
            3 => &mut self.triple_indirect,
            _ => return false,
        };
        p.set(block);
        true
    }

    /// True if no block pointer (direct or tree root) is set.
    pub fn has_no_block_ptrs(&self) -> bool {
        self.direct.iter().all(|p| p.get() == 0)
            && self.indirect.get() == 0
            && self.double_indirect.get() == 0
            && self.triple_indirect.get() == 0
    }

    /// The inline data (`size` bytes at `0x60`) if `INLINE_DATA` is set and `size` fits.
    pub fn inline_data(&self) -> Option<&[u8]> {
        if !self.has_inline_data() {
            return None;
        }
        let len = usize::try_from(self.size.get())
            .ok()
            .filter(|&l| l <= INLINE_DATA_MAX)?;
        self.as_bytes()
            .get(INLINE_DATA_OFFSET..INLINE_DATA_OFFSET + len)
    }

    /// Stores `data` inline: clears the pointer area, copies `data`, sets `INLINE_DATA`,
    /// `size` and `blocks` 0. Fails with `InodeSize` above 120 bytes.
    pub fn set_inline_data(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > INLINE_DATA_MAX {
            return Err(FormatError::InodeSize);
        }
        let area = self
            .as_bytes_mut()
            .get_mut(INLINE_DATA_OFFSET..INLINE_DATA_OFFSET + INLINE_DATA_MAX)
            .ok_or(FormatError::BufferSize)?;
        area.fill(0);
        for (d, s) in area.iter_mut().zip(data) {
            *d = *s;
        }
        self.flags.set(self.flags.get() | INODE_FLAG_INLINE_DATA);
        self.size.set(data.len() as u64);
        self.blocks.set(0);
        Ok(())
    }

    /// Validates inode `ino` from its `inode_size` bytes `raw` and returns its fixed part.
    ///
    /// Checks: `ino` in range, checksum, a valid file type, known flags, nanoseconds below
    /// 1e9, `extra_size` within the inline xattr area, `blocks` at most what any file can
    /// own and at most the data blocks, `next_orphan`, and per type: size at most
    /// `MAX_FILE_SIZE`; directories a multiple of 4096 with no holes; symlinks
    /// `1..=4095` bytes, inline iff at most 120 (then `blocks` counts only an xattr block);
    /// `INLINE_DATA` only on symlinks; devices, FIFOs and sockets with size 0 and no block
    /// pointers. Block pointers themselves are checked when used
    /// (`Geometry::check_data_block`).
    pub fn validate<'a>(ino: u32, raw: &'a [u8], geo: &Geometry) -> Result<&'a Inode> {
        if raw.len() != usize::from(geo.inode_size()) {
            return Err(FormatError::BufferSize);
        }
        if !geo.is_valid_ino(ino) {
            return Err(FormatError::BadInodeNumber);
        }
        verify_inode_checksum(geo.checksum_seed(), ino, raw)?;
        let inode = Inode::from_slot(raw)?;
        let ft = inode.file_type().ok_or(FormatError::InodeFileType)?;
        let flags = inode.flags.get();
        if flags & !INODE_FLAGS_ALL != 0 {
            return Err(FormatError::InodeFlags);
        }
        let nsecs = [
            inode.atime_nsec.get(),
            inode.mtime_nsec.get(),
            inode.ctime_nsec.get(),
            inode.crtime_nsec.get(),
        ];
        if nsecs.iter().any(|&n| n >= NSEC_PER_SEC) {
            return Err(FormatError::InodeTime);
        }
        if usize::from(inode.extra_size.get()) > raw.len() - INODE_BASE_SIZE {
            return Err(FormatError::InodeExtraSize);
        }
        let blocks = inode.blocks.get();
        if blocks > MAX_INODE_BLOCKS || blocks > geo.data_blocks() {
            return Err(FormatError::InodeBlocks);
        }
        let orphan = inode.next_orphan.get();
        if orphan != 0 && (orphan < FIRST_INO || orphan > geo.inodes_count()) {
            return Err(FormatError::BadOrphan);
        }
        let size = inode.size.get();
        if size > MAX_FILE_SIZE {
            return Err(FormatError::InodeSize);
        }
        let inline = inode.has_inline_data();
        let xattr_blocks = u64::from(inode.xattr_block.get() != 0);
        match ft {
            FT_SYMLINK => {
                if size == 0 || size > SYMLINK_MAX {
                    return Err(FormatError::InodeSize);
                }
                if inline != (size <= INLINE_DATA_MAX as u64) {
                    return Err(FormatError::InodeFlags);
                }
                if inline && blocks != xattr_blocks {
                    return Err(FormatError::InodeBlocks);
                }
                if !inline && blocks < 1 + xattr_blocks {
                    return Err(FormatError::InodeBlocks);
                }
            }
            _ if inline => return Err(FormatError::InodeFlags),
            FT_DIR => {
                if !size.is_multiple_of(BLOCK_SIZE_U64) {
                    return Err(FormatError::InodeSize);
                }
                if blocks < size / BLOCK_SIZE_U64 + xattr_blocks {
                    return Err(FormatError::InodeBlocks);
                }
            }
            FT_REG => {}
            _ => {
                if size != 0 || !inode.has_no_block_ptrs() {
                    return Err(FormatError::InodeSpecial);
                }
                if blocks != xattr_blocks {
                    return Err(FormatError::InodeBlocks);
                }
            }
        }
        Ok(inode)
    }
}
