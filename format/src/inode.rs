// Inode accessors and validation (docs/format.md, "Inodes").

use crate::checksum::verify_inode_checksum;
use crate::disk::{
    file_type_of_mode, Inode, Timestamp, BLOCK_SIZE_U64, FIRST_INO, FT_BLKDEV, FT_CHRDEV, FT_DIR,
    FT_FIFO, FT_REG, FT_SOCK, FT_SYMLINK, INLINE_DATA_MAX, INLINE_DATA_OFFSET, INODE_BASE_SIZE,
    INODE_FLAGS_ALL, INODE_FLAG_INDEX, INODE_FLAG_INLINE_DATA, MAX_FILE_SIZE, MAX_INODE_BLOCKS,
    NSEC_PER_SEC, SYMLINK_MAX, S_IFMT,
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
        if flags & !INODE_FLAGS_ALL != 0 || (flags & INODE_FLAG_INDEX != 0 && ft != FT_DIR) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::set_inode_checksum;
    use crate::disk::{
        INODE_FLAG_APPEND, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK,
    };
    use crate::geometry::{Geometry, InodeSpec};

    fn geo(inode_size: u16) -> Geometry {
        let mut g = Geometry::plan(100_000, InodeSpec::default(), inode_size, None).unwrap();
        g.set_checksum_seed(0xC0FF_EE00);
        g
    }

    /// A valid regular file inode `ino` in an `inode_size` slot, then `f`, then checksum.
    fn build(g: &Geometry, ino: u32, buf: &mut [u8; 1024], f: impl FnOnce(&mut Inode)) -> usize {
        let n = usize::from(g.inode_size());
        buf.fill(0);
        {
            let i = Inode::from_slot_mut(&mut buf[..n]).unwrap();
            i.mode.set(S_IFREG | 0o644);
            i.links_count.set(1);
            i.generation.set(42);
            i.size.set(10_000);
            i.blocks.set(3);
            i.set_time(TimeField::Mtime, Timestamp::new(-5, 999_999_999));
            f(i);
        }
        set_inode_checksum(g.checksum_seed(), ino, &mut buf[..n]).unwrap();
        n
    }

    fn check(g: &Geometry, f: impl FnOnce(&mut Inode)) -> Result<()> {
        let mut buf = [0u8; 1024];
        let n = build(g, 20, &mut buf, f);
        Inode::validate(20, &buf[..n], g).map(|_| ())
    }

    /// `check` of an inode first made a `base` (a directory, a symlink...), then changed.
    fn check_with(
        g: &Geometry,
        base: impl Fn(&mut Inode),
        f: impl FnOnce(&mut Inode),
    ) -> Result<()> {
        check(g, |i| {
            base(i);
            f(i);
        })
    }

    #[test]
    fn valid_inodes_of_every_type() {
        for size in [256u16, 512, 1024] {
            let g = geo(size);
            assert_eq!(check(&g, |_| {}), Ok(()));
            assert_eq!(
                check(&g, |i| {
                    i.mode.set(S_IFDIR | 0o755);
                    i.size.set(8192);
                    i.blocks.set(2);
                }),
                Ok(())
            );
            assert_eq!(
                check(&g, |i| {
                    i.mode.set(S_IFDIR | 0o755);
                    i.size.set(0);
                    i.blocks.set(0);
                }),
                Ok(())
            );
            for fmt in [S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK] {
                assert_eq!(
                    check(&g, |i| {
                        i.mode.set(fmt | 0o600);
                        i.size.set(0);
                        i.blocks.set(0);
                        i.rdev.set(0x0801);
                    }),
                    Ok(())
                );
            }
            assert_eq!(
                check(&g, |i| {
                    i.mode.set(S_IFLNK | 0o777);
                    i.set_inline_data(b"/target").unwrap();
                }),
                Ok(())
            );
            assert_eq!(
                check(&g, |i| {
                    i.mode.set(S_IFLNK | 0o777);
                    i.size.set(121);
                    i.blocks.set(1);
                    i.direct[0].set(g.first_data_block(0).unwrap());
                }),
                Ok(())
            );
        }
    }

    #[test]
    fn each_inode_rule() {
        use FormatError as E;
        let g = geo(512);
        let lnk = |i: &mut Inode| i.mode.set(S_IFLNK | 0o777);
        assert_eq!(check(&g, |i| i.mode.set(0o644)), Err(E::InodeFileType));
        assert_eq!(check(&g, |i| i.mode.set(0o170644)), Err(E::InodeFileType));
        assert_eq!(check(&g, |i| i.flags.set(0x4000_0000)), Err(E::InodeFlags));
        assert_eq!(
            check(&g, |i| i.flags.set(INODE_FLAG_INDEX)),
            Err(E::InodeFlags)
        );
        assert_eq!(check(&g, |i| i.flags.set(INODE_FLAG_APPEND)), Ok(()));
        assert_eq!(
            check(&g, |i| i.flags.set(INODE_FLAG_INLINE_DATA)),
            Err(E::InodeFlags)
        );
        assert_eq!(
            check(&g, |i| i.atime_nsec.set(NSEC_PER_SEC)),
            Err(E::InodeTime)
        );
        assert_eq!(check(&g, |i| i.mtime_nsec.set(u32::MAX)), Err(E::InodeTime));
        assert_eq!(
            check(&g, |i| i.ctime_nsec.set(NSEC_PER_SEC)),
            Err(E::InodeTime)
        );
        assert_eq!(
            check(&g, |i| i.crtime_nsec.set(NSEC_PER_SEC)),
            Err(E::InodeTime)
        );
        assert_eq!(check(&g, |i| i.extra_size.set(256)), Ok(()));
        assert_eq!(check(&g, |i| i.extra_size.set(257)), Err(E::InodeExtraSize));
        assert_eq!(
            check(&g, |i| i.blocks.set(g.data_blocks() + 1)),
            Err(E::InodeBlocks)
        );
        assert_eq!(check(&g, |i| i.blocks.set(u64::MAX)), Err(E::InodeBlocks));
        assert_eq!(check(&g, |i| i.next_orphan.set(3)), Err(E::BadOrphan));
        assert_eq!(check(&g, |i| i.next_orphan.set(12)), Ok(()));
        assert_eq!(
            check(&g, |i| i.next_orphan.set(g.inodes_count() + 1)),
            Err(E::BadOrphan)
        );
        assert_eq!(check(&g, |i| i.size.set(MAX_FILE_SIZE)), Ok(()));
        assert_eq!(
            check(&g, |i| i.size.set(MAX_FILE_SIZE + 1)),
            Err(E::InodeSize)
        );
        let dir = |i: &mut Inode| {
            i.mode.set(S_IFDIR | 0o755);
            i.size.set(4096);
            i.blocks.set(1);
        };
        assert_eq!(check(&g, dir), Ok(()));
        assert_eq!(check_with(&g, dir, |i| i.size.set(4097)), Err(E::InodeSize));
        assert_eq!(
            check_with(&g, dir, |i| i.blocks.set(0)),
            Err(E::InodeBlocks)
        );
        assert_eq!(
            check_with(&g, dir, |i| i.flags.set(INODE_FLAG_INLINE_DATA)),
            Err(E::InodeFlags)
        );
        assert_eq!(
            check_with(&g, dir, |i| i.flags.set(INODE_FLAG_INDEX)),
            Ok(())
        );
        // Symlinks by size, block count and inline flag.
        for (size, blocks, inline, want) in [
            (0, 0, true, Err(E::InodeSize)),
            (4096, 1, false, Err(E::InodeSize)),
            (120, 1, false, Err(E::InodeFlags)),
            (121, 0, true, Err(E::InodeFlags)),
            (121, 0, false, Err(E::InodeBlocks)),
        ] {
            let got = check_with(&g, lnk, |i| {
                i.size.set(size);
                i.blocks.set(blocks);
                if inline {
                    i.flags.set(INODE_FLAG_INLINE_DATA);
                }
            });
            assert_eq!(
                got, want,
                "symlink size {size}, {blocks} block(s), inline {inline}"
            );
        }
        assert_eq!(
            check_with(&g, lnk, |i| {
                i.set_inline_data(b"x").unwrap();
                i.blocks.set(1);
            }),
            Err(E::InodeBlocks)
        );
        assert_eq!(
            check_with(&g, lnk, |i| {
                i.set_inline_data(b"x").unwrap();
                i.xattr_block.set(g.first_data_block(1).unwrap());
                i.blocks.set(1);
            }),
            Ok(())
        );
        let fifo = |i: &mut Inode| {
            i.mode.set(S_IFIFO | 0o600);
            i.size.set(0);
            i.blocks.set(0);
        };
        assert_eq!(check(&g, fifo), Ok(()));
        assert_eq!(
            check_with(&g, fifo, |i| i.size.set(1)),
            Err(E::InodeSpecial)
        );
        assert_eq!(
            check_with(&g, fifo, |i| i.triple_indirect.set(5000)),
            Err(E::InodeSpecial)
        );
        assert_eq!(
            check_with(&g, fifo, |i| i.blocks.set(1)),
            Err(E::InodeBlocks)
        );
    }

    #[test]
    fn numbers_sizes_and_checksum() {
        let g = geo(256);
        let mut buf = [0u8; 1024];
        let n = build(&g, 20, &mut buf, |_| {});
        assert!(Inode::validate(20, &buf[..n], &g).is_ok());
        assert_eq!(
            Inode::validate(21, &buf[..n], &g).map(|_| ()),
            Err(FormatError::InodeChecksum)
        );
        assert_eq!(
            Inode::validate(0, &buf[..n], &g).map(|_| ()),
            Err(FormatError::BadInodeNumber)
        );
        assert_eq!(
            Inode::validate(g.inodes_count() + 1, &buf[..n], &g).map(|_| ()),
            Err(FormatError::BadInodeNumber)
        );
        assert_eq!(
            Inode::validate(20, &buf[..512], &g).map(|_| ()),
            Err(FormatError::BufferSize)
        );
        let mut other = g;
        other.set_checksum_seed(1);
        assert_eq!(
            Inode::validate(20, &buf[..n], &other).map(|_| ()),
            Err(FormatError::InodeChecksum)
        );
        for size in [256usize, 512, 1024] {
            let g = geo(size as u16);
            let n = build(&g, 20, &mut buf, |_| {});
            assert_eq!(n, size);
            for bit in 0..size * 8 {
                let mut c = buf;
                c[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    Inode::validate(20, &c[..n], &g).is_err(),
                    "size {size} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn validate_never_panics_on_random_inodes() {
        let mut next = crate::test_rng::xorshift64(0xD1B5_4A32_D192_ED03);
        for size in [256u16, 1024] {
            let g = geo(size);
            let n = usize::from(size);
            let mut buf = [0u8; 1024];
            for round in 0..20_000 {
                build(&g, 20, &mut buf, |_| {});
                for _ in 0..(next() % 8 + 1) {
                    let at = (next() % 0x100) as usize;
                    buf[at] = next() as u8;
                }
                if round % 4 == 0 {
                    let fmt = [S_IFLNK, S_IFDIR, S_IFREG, S_IFIFO][(next() % 4) as usize];
                    buf[0..2].copy_from_slice(&(fmt | 0o644).to_le_bytes());
                }
                set_inode_checksum(g.checksum_seed(), 20, &mut buf[..n]).unwrap();
                if let Ok(i) = Inode::validate(20, &buf[..n], &g) {
                    assert!(i.size.get() <= MAX_FILE_SIZE);
                    if let Some(d) = i.inline_data() {
                        assert_eq!(d.len() as u64, i.size.get());
                    }
                }
            }
        }
    }

    #[test]
    fn accessors() {
        let mut i = Inode::zeroed();
        i.mode.set(S_IFDIR | 0o700);
        assert!(i.is_dir() && !i.is_reg() && !i.is_symlink() && !i.is_special());
        assert_eq!(i.format(), S_IFDIR);
        assert_eq!(i.file_type(), Some(crate::disk::FT_DIR));
        i.set_time(TimeField::Atime, Timestamp::new(1, 2));
        i.set_time(TimeField::Ctime, Timestamp::new(-3, 4));
        i.set_time(TimeField::Crtime, Timestamp::new(i64::MAX, 2_000_000_000));
        assert_eq!(i.atime(), Timestamp::new(1, 2));
        assert_eq!(i.ctime(), Timestamp::new(-3, 4));
        assert_eq!(i.crtime(), Timestamp::new(i64::MAX, 999_999_999));
        assert_eq!(i.mtime(), Timestamp::new(0, 0));
        assert_eq!(i.as_bytes()[0x28], 1);
        assert_eq!(i.as_bytes()[0x48], 2);
        assert!(i.set_direct_ptr(11, 77));
        assert!(!i.set_direct_ptr(12, 77));
        assert_eq!(i.direct_ptr(11), Some(77));
        assert_eq!(i.direct_ptr(12), None);
        assert!(i.set_tree_root(3, 99));
        assert!(!i.set_tree_root(4, 99));
        assert_eq!(i.tree_root(3), Some(99));
        assert_eq!(i.triple_indirect.get(), 99);
        assert_eq!(i.tree_root(0), None);
        assert!(!i.has_no_block_ptrs());
        let target = [b'a'; 120];
        i.set_inline_data(&target).unwrap();
        assert_eq!(i.inline_data(), Some(&target[..]));
        assert_eq!(i.direct_ptr(0), Some(u64::from_le_bytes([b'a'; 8])));
        i.set_inline_data(b"short").unwrap();
        assert_eq!(i.inline_data(), Some(&b"short"[..]));
        assert_eq!(i.tree_root(3), Some(0));
        assert_eq!(i.set_inline_data(&[0; 121]), Err(FormatError::InodeSize));
        i.size.set(121);
        assert_eq!(i.inline_data(), None);
        assert_eq!(
            Inode::from_slot(&[0u8; 255]).map(|_| ()),
            Err(FormatError::BufferSize)
        );
    }
}
