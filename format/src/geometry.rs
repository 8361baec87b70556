// Filesystem geometry: validated from a superblock (mount, fsck) or planned for a device
// (mkfs). Both paths go through `Geometry::derive`, so a planned geometry obeys exactly the
// rules a reader enforces (docs/format.md, "Layout" and "mkfs defaults").

use crate::checksum::checksum_seed;
use crate::disk::{
    GroupDesc, SuperBlock, BLOCKS_PER_GROUP, BLOCK_SIZE, BLOCK_SIZE_LOG2, BLOCK_SIZE_U64,
    DESCS_PER_BLOCK, ERRORS_CONTINUE, FEATURE_COMPAT_HAS_JOURNAL, FEATURE_COMPAT_XATTR,
    FEATURE_INCOMPAT_DIR_INDEX, FIRST_INO, FORMAT_VERSION, GDT_START, GROUP_BITMAP_BLOCKS,
    GROUP_DESC_SIZE, INODES_PER_GROUP_ALIGN, INODE_SIZES, LOST_FOUND_INO, MAGIC,
    MAX_INODES_PER_GROUP, MAX_JOURNAL_BLOCKS, MIN_GROUP_DATA_BLOCKS, MIN_JOURNAL_BLOCKS, NAME_MAX,
    ROOT_INO, STATE_ALL, STATE_CLEAN,
};
use crate::error::{FormatError, Result};

/// [`BLOCKS_PER_GROUP`] as `u64`.
const BPG: u64 = BLOCKS_PER_GROUP as u64;

/// mkfs default: one inode per this many bytes of filesystem.
pub const DEFAULT_INODE_RATIO: u64 = 16384;
/// mkfs default inode size.
pub const DEFAULT_INODE_SIZE: u16 = 512;
/// Smallest accepted bytes-per-inode ratio.
pub const MIN_INODE_RATIO: u64 = 1024;
/// Largest accepted bytes-per-inode ratio (64 MiB).
pub const MAX_INODE_RATIO: u64 = 64 << 20;
/// mkfs default reserved blocks: this percentage of the data blocks.
pub const DEFAULT_RESERVED_PERCENT: u64 = 5;

/// Default journal length in blocks for a device of `fs_blocks` blocks (like mke2fs):
/// 4 MiB below 128 MiB, 16 MiB below 1 GiB, 32 MiB below 2 GiB, 64 MiB below 16 GiB, and
/// 128 MiB from 16 GiB on. Never 0: a filesystem without a journal must be asked for.
pub fn default_journal_blocks(fs_blocks: u64) -> u64 {
    const MIB: u64 = 256; // blocks per MiB
    if fs_blocks < 128 * MIB {
        1024
    } else if fs_blocks < 1024 * MIB {
        4096
    } else if fs_blocks < 2048 * MIB {
        8192
    } else if fs_blocks < 16384 * MIB {
        16384
    } else {
        32768
    }
}

/// Default reserved blocks for `data_blocks` data blocks (5%).
pub fn default_reserved_blocks(data_blocks: u64) -> u64 {
    data_blocks / 100 * DEFAULT_RESERVED_PERCENT
        + data_blocks % 100 * DEFAULT_RESERVED_PERCENT / 100
}

/// Most groups mkfs makes: every group keeps at least 16 inodes within a u32 inode count.
pub const MAX_PLAN_GROUPS: u64 = u32::MAX as u64 / INODES_PER_GROUP_ALIGN as u64;

/// How mkfs chooses the number of inodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InodeSpec {
    /// One inode per this many bytes of filesystem (`MIN_INODE_RATIO..=MAX_INODE_RATIO`).
    Ratio(u64),
    /// At least this many inodes in total (rounded up to fill whole groups).
    Count(u32),
}

impl Default for InodeSpec {
    fn default() -> Self {
        InodeSpec::Ratio(DEFAULT_INODE_RATIO)
    }
}

/// The geometry fields a superblock records (input of [`Geometry::derive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RawGeometry {
    blocks_count: u64,
    first_group_block: u64,
    blocks_per_group: u32,
    inodes_per_group: u32,
    inodes_count: u32,
    group_count: u32,
    inode_size: u16,
    gdt_start: u64,
    gdt_blocks: u32,
    journal_start: u64,
    journal_blocks: u64,
    has_journal: bool,
}

/// Where an inode lives on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InodeLocation {
    /// Group of the inode.
    pub group: u32,
    /// Index inside the group's inode table (bit in the inode bitmap).
    pub index: u32,
    /// Inode table block holding the inode.
    pub block: u64,
    /// Byte offset of the inode inside that block.
    pub offset: usize,
}

/// The figures `statfs` reports (docs/format.md, "statfs").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    /// Block size, 4096.
    pub bsize: u64,
    /// `blocks_count - overhead`.
    pub blocks: u64,
    /// Free data blocks.
    pub bfree: u64,
    /// Free data blocks available to unprivileged users.
    pub bavail: u64,
    /// `inodes_count`.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// 255.
    pub namelen: u64,
}

/// `f_fsid` of a filesystem: `uuid[0..4] ^ uuid[8..12]`, `uuid[4..8] ^ uuid[12..16]`
/// as little-endian u32 words.
pub fn fsid(uuid: &[u8; 16]) -> [u32; 2] {
    let w = |i: usize| u32::from_le_bytes([uuid[i], uuid[i + 1], uuid[i + 2], uuid[i + 3]]);
    [w(0) ^ w(8), w(4) ^ w(12)]
}

/// A validated filesystem geometry; every position it returns lies inside the filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Blocks in the filesystem.
    blocks_count: u64,
    /// First block of group 0.
    first_group_block: u64,
    /// Number of groups (at least 1).
    group_count: u32,
    /// Inodes per group (multiple of 16, at most 32768).
    inodes_per_group: u32,
    /// `group_count * inodes_per_group`.
    inodes_count: u32,
    /// 256, 512 or 1024.
    inode_size: u16,
    /// Blocks of each group's inode table.
    inode_table_blocks: u64,
    /// First GDT block (1).
    gdt_start: u64,
    /// GDT blocks.
    gdt_blocks: u32,
    /// First journal block (0 without a journal).
    journal_start: u64,
    /// Journal blocks (0 = no journal).
    journal_blocks: u64,
    /// Length of the last group in blocks.
    last_group_len: u64,
    /// Blocks that can never hold data: `first_group_block + group_count * (2 + itb)`.
    overhead: u64,
    /// Seed of every checksum (the superblock's `checksum_seed`; 0 in a plan).
    checksum_seed: u32,
    /// ro_compat bits set in the superblock that are unknown: mount read-only if non-zero.
    unknown_ro_compat: u64,
    /// The directory name hash key when the filesystem has `DIR_INDEX`.
    dir_hash_key: Option<[u8; 16]>,
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

impl Geometry {
    /// Blocks in the filesystem.
    pub fn blocks_count(&self) -> u64 {
        self.blocks_count
    }

    /// First block of group 0.
    pub fn first_group_block(&self) -> u64 {
        self.first_group_block
    }

    /// Number of groups (at least 1).
    pub fn group_count(&self) -> u32 {
        self.group_count
    }

    /// Inodes per group (multiple of 16, at most 32768).
    pub fn inodes_per_group(&self) -> u32 {
        self.inodes_per_group
    }

    /// `group_count * inodes_per_group`.
    pub fn inodes_count(&self) -> u32 {
        self.inodes_count
    }

    /// 256, 512 or 1024.
    pub fn inode_size(&self) -> u16 {
        self.inode_size
    }

    /// Blocks of each group's inode table.
    pub fn inode_table_blocks(&self) -> u64 {
        self.inode_table_blocks
    }

    /// First GDT block (1).
    pub fn gdt_start(&self) -> u64 {
        self.gdt_start
    }

    /// GDT blocks.
    pub fn gdt_blocks(&self) -> u32 {
        self.gdt_blocks
    }

    /// First journal block (0 without a journal).
    pub fn journal_start(&self) -> u64 {
        self.journal_start
    }

    /// Journal blocks (0 = no journal).
    pub fn journal_blocks(&self) -> u64 {
        self.journal_blocks
    }

    /// Length of the last group in blocks.
    pub fn last_group_len(&self) -> u64 {
        self.last_group_len
    }

    /// Blocks that can never hold data: `first_group_block + group_count * (2 + itb)`.
    pub fn overhead(&self) -> u64 {
        self.overhead
    }

    /// Seed of every checksum (the superblock's `checksum_seed`; 0 in a plan until
    /// [`Geometry::set_checksum_seed`]).
    pub fn checksum_seed(&self) -> u32 {
        self.checksum_seed
    }

    /// ro_compat bits set in the superblock that are unknown: mount read-only if non-zero.
    pub fn unknown_ro_compat(&self) -> u64 {
        self.unknown_ro_compat
    }

    /// The key of the directory name hash when directories may be indexed (`DIR_INDEX`).
    pub fn dir_hash_key(&self) -> Option<&[u8; 16]> {
        self.dir_hash_key.as_ref()
    }

    /// Makes a planned filesystem one with indexed directories (`Some(key)`) or without.
    pub fn set_dir_hash_key(&mut self, key: Option<[u8; 16]>) {
        self.dir_hash_key = key;
    }

    /// Computes the derived geometry from recorded fields, checking every relation.
    fn derive(r: &RawGeometry, device_blocks: u64) -> Result<Geometry> {
        if r.blocks_per_group != BLOCKS_PER_GROUP {
            return Err(FormatError::BadBlocksPerGroup);
        }
        if !INODE_SIZES.contains(&r.inode_size) {
            return Err(FormatError::BadInodeSize);
        }
        let ipg = r.inodes_per_group;
        if ipg == 0 || !ipg.is_multiple_of(INODES_PER_GROUP_ALIGN) || ipg > MAX_INODES_PER_GROUP {
            return Err(FormatError::BadInodesPerGroup);
        }
        if r.group_count == 0 || r.group_count.checked_mul(ipg) != Some(r.inodes_count) {
            return Err(FormatError::BadGroupCount);
        }
        let groups = u64::from(r.group_count);
        if r.gdt_start != GDT_START
            || u64::from(r.gdt_blocks) != ceil_div(groups, u64::from(DESCS_PER_BLOCK))
        {
            return Err(FormatError::BadGdtLocation);
        }
        let gdt_end = GDT_START + u64::from(r.gdt_blocks);
        if r.journal_blocks == 0 {
            if r.journal_start != 0 || r.has_journal {
                return Err(FormatError::BadJournalLocation);
            }
        } else {
            let fits = r
                .journal_start
                .checked_add(r.journal_blocks)
                .is_some_and(|end| end <= r.first_group_block);
            if !r.has_journal
                || r.journal_blocks < MIN_JOURNAL_BLOCKS
                || r.journal_blocks > MAX_JOURNAL_BLOCKS
                || r.journal_start < gdt_end
                || !fits
            {
                return Err(FormatError::BadJournalLocation);
            }
        }
        if r.first_group_block < gdt_end {
            return Err(FormatError::BadBlocksCount);
        }
        // ipg <= 32768 and inode_size <= 1024, so this is at most 8192 blocks.
        let itb = u64::from(ipg) * u64::from(r.inode_size) / BLOCK_SIZE_U64;
        let meta = GROUP_BITMAP_BLOCKS + itb;
        let last_len = (groups - 1)
            .checked_mul(BPG)
            .and_then(|span| r.first_group_block.checked_add(span))
            .and_then(|last_start| r.blocks_count.checked_sub(last_start))
            .ok_or(FormatError::BadBlocksCount)?;
        if last_len < meta + MIN_GROUP_DATA_BLOCKS || last_len > BPG {
            return Err(FormatError::BadBlocksCount);
        }
        if r.blocks_count > device_blocks {
            return Err(FormatError::DeviceTooSmall);
        }
        // Cannot overflow: it is below blocks_count.
        let overhead = r.first_group_block + groups * meta;
        Ok(Geometry {
            blocks_count: r.blocks_count,
            first_group_block: r.first_group_block,
            group_count: r.group_count,
            inodes_per_group: ipg,
            inodes_count: r.inodes_count,
            inode_size: r.inode_size,
            inode_table_blocks: itb,
            gdt_start: r.gdt_start,
            gdt_blocks: r.gdt_blocks,
            journal_start: r.journal_start,
            journal_blocks: r.journal_blocks,
            last_group_len: last_len,
            overhead,
            checksum_seed: 0,
            unknown_ro_compat: 0,
            dir_hash_key: None,
        })
    }

    /// Plans the geometry mkfs writes on a device of `device_blocks` blocks.
    ///
    /// Superblock in block 0, GDT from block 1, the journal right after the GDT, the groups
    /// right after the journal. `journal_blocks`: `None` picks [`default_journal_blocks`],
    /// `Some(0)` makes no journal, otherwise at least [`MIN_JOURNAL_BLOCKS`]. A last group
    /// too short for its metadata plus 64 data blocks is dropped (the device tail stays
    /// unused). The checksum seed of the result is 0: set it from the UUID (as
    /// [`Geometry::fill_superblock`] does).
    pub fn plan(
        device_blocks: u64,
        inodes: InodeSpec,
        inode_size: u16,
        journal_blocks: Option<u64>,
    ) -> Result<Geometry> {
        if !INODE_SIZES.contains(&inode_size) {
            return Err(FormatError::BadInodeSize);
        }
        match inodes {
            InodeSpec::Ratio(r) if !(MIN_INODE_RATIO..=MAX_INODE_RATIO).contains(&r) => {
                return Err(FormatError::BadInodeCount)
            }
            InodeSpec::Count(n) if n < FIRST_INO => return Err(FormatError::BadInodeCount),
            _ => {}
        }
        let jb = journal_blocks.unwrap_or_else(|| default_journal_blocks(device_blocks));
        if jb != 0 && !(MIN_JOURNAL_BLOCKS..=MAX_JOURNAL_BLOCKS).contains(&jb) {
            return Err(FormatError::BadJournalSize);
        }
        let max_groups = ceil_div(device_blocks, BPG).min(MAX_PLAN_GROUPS);
        let mut gdt = ceil_div(max_groups, u64::from(DESCS_PER_BLOCK)).max(1);
        // With the group count capped at 64 * gdt, the needed GDT size never grows, so this
        // only shrinks gdt and ends at a fixed point.
        loop {
            let (groups, ipg, blocks_count) =
                Self::plan_groups(device_blocks, inodes, inode_size, gdt, jb)?;
            let needed = ceil_div(u64::from(groups), u64::from(DESCS_PER_BLOCK));
            if needed < gdt {
                gdt = needed;
                continue;
            }
            let gdt_blocks = u32::try_from(gdt).map_err(|_| FormatError::FsTooSmall)?;
            let raw = RawGeometry {
                blocks_count,
                first_group_block: GDT_START + gdt + jb,
                blocks_per_group: BLOCKS_PER_GROUP,
                inodes_per_group: ipg,
                inodes_count: groups.checked_mul(ipg).ok_or(FormatError::BadInodeCount)?,
                group_count: groups,
                inode_size,
                gdt_start: GDT_START,
                gdt_blocks,
                journal_start: if jb == 0 { 0 } else { GDT_START + gdt },
                journal_blocks: jb,
                has_journal: jb != 0,
            };
            return Self::derive(&raw, device_blocks);
        }
    }

    /// Groups, inodes per group and blocks count for a GDT of `gdt` blocks.
    fn plan_groups(
        device_blocks: u64,
        inodes: InodeSpec,
        inode_size: u16,
        gdt: u64,
        jb: u64,
    ) -> Result<(u32, u32, u64)> {
        let fgb = GDT_START + gdt + jb;
        let avail = device_blocks
            .checked_sub(fgb)
            .filter(|&a| a > 0)
            .ok_or(FormatError::FsTooSmall)?;
        let cap = (gdt * u64::from(DESCS_PER_BLOCK)).min(MAX_PLAN_GROUPS);
        let (mut groups, mut tail) = (avail / BPG, avail % BPG);
        if groups >= cap {
            groups = cap;
            tail = 0;
        }
        let mut with_tail = groups + u64::from(tail > 0);
        let mut blocks = fgb + groups * BPG + tail;
        let mut ipg = Self::plan_ipg(inodes, with_tail, blocks)?;
        let meta = |ipg: u32| {
            GROUP_BITMAP_BLOCKS + u64::from(ipg) * u64::from(inode_size) / BLOCK_SIZE_U64
        };
        if tail > 0 && tail < meta(ipg) + MIN_GROUP_DATA_BLOCKS {
            with_tail = groups;
            blocks = fgb + groups * BPG;
            if groups == 0 {
                return Err(FormatError::FsTooSmall);
            }
            ipg = Self::plan_ipg(inodes, with_tail, blocks)?;
        }
        let groups = u32::try_from(with_tail).map_err(|_| FormatError::FsTooSmall)?;
        Ok((groups, ipg, blocks))
    }

    /// Inodes per group for `groups` groups and a filesystem of `blocks` blocks.
    fn plan_ipg(inodes: InodeSpec, groups: u64, blocks: u64) -> Result<u32> {
        if groups == 0 {
            return Err(FormatError::FsTooSmall);
        }
        let total = match inodes {
            InodeSpec::Ratio(r) => {
                // blocks * 4096 / r without overflow (r <= 2^26, so the remainder term
                // stays below 2^38).
                (blocks / r)
                    .saturating_mul(BLOCK_SIZE_U64)
                    .saturating_add(blocks % r * BLOCK_SIZE_U64 / r)
            }
            InodeSpec::Count(n) => u64::from(n),
        };
        let align = u64::from(INODES_PER_GROUP_ALIGN);
        let per_group = ceil_div(ceil_div(total, groups), align) * align;
        let per_group = per_group.max(align);
        let ipg = match inodes {
            InodeSpec::Ratio(_) => per_group
                .min(u64::from(MAX_INODES_PER_GROUP))
                .min(u64::from(u32::MAX) / groups / align * align),
            InodeSpec::Count(_) => {
                if per_group > u64::from(MAX_INODES_PER_GROUP)
                    || per_group.saturating_mul(groups) > u64::from(u32::MAX)
                {
                    return Err(FormatError::BadInodeCount);
                }
                per_group
            }
        };
        if ipg < align || ipg.saturating_mul(groups) < u64::from(FIRST_INO) {
            return Err(FormatError::BadInodeCount);
        }
        u32::try_from(ipg).map_err(|_| FormatError::BadInodeCount)
    }

    /// Fills `sb` for a new filesystem with this geometry: zeroes it, sets every field
    /// (free counts as if only the reserved inodes were used and no data block allocated,
    /// reserved blocks 5%, state CLEAN, errors CONTINUE) and its checksum. mkfs adjusts the
    /// free counts for what it allocates and calls `update_checksum` again.
    pub fn fill_superblock(
        &self,
        sb: &mut SuperBlock,
        uuid: &[u8; 16],
        label: &[u8],
        now: i64,
    ) -> Result<()> {
        *sb = SuperBlock::zeroed();
        sb.set_label(label)?;
        sb.magic = MAGIC;
        sb.format_version.set(FORMAT_VERSION);
        sb.block_size_log2.set(BLOCK_SIZE_LOG2);
        let journal = if self.journal_blocks > 0 {
            FEATURE_COMPAT_HAS_JOURNAL
        } else {
            0
        };
        sb.feature_compat.set(journal | FEATURE_COMPAT_XATTR);
        sb.blocks_count.set(self.blocks_count);
        sb.free_blocks.set(self.data_blocks());
        sb.reserved_blocks
            .set(default_reserved_blocks(self.data_blocks()));
        sb.inodes_count.set(self.inodes_count);
        sb.free_inodes.set(self.inodes_count - (FIRST_INO - 1));
        sb.first_group_block.set(self.first_group_block);
        sb.blocks_per_group.set(BLOCKS_PER_GROUP);
        sb.inodes_per_group.set(self.inodes_per_group);
        sb.group_count.set(self.group_count);
        sb.inode_size.set(self.inode_size);
        sb.state.set(STATE_CLEAN);
        sb.gdt_start.set(self.gdt_start);
        sb.gdt_blocks.set(self.gdt_blocks);
        sb.root_ino.set(ROOT_INO);
        sb.first_ino.set(FIRST_INO);
        sb.lost_found_ino.set(LOST_FOUND_INO);
        sb.journal_start.set(self.journal_start);
        sb.journal_blocks.set(self.journal_blocks);
        sb.mkfs_time.set(now);
        sb.write_time.set(now);
        sb.check_time.set(now);
        sb.uuid = *uuid;
        sb.checksum_seed.set(checksum_seed(uuid));
        if let Some(key) = self.dir_hash_key {
            sb.feature_incompat.set(FEATURE_INCOMPAT_DIR_INDEX);
            sb.dir_hash_key = key;
        }
        sb.errors_behavior.set(ERRORS_CONTINUE);
        sb.update_checksum();
        Ok(())
    }

    /// Sets the checksum seed (mkfs, after planning: `checksum_seed(uuid)`).
    pub fn set_checksum_seed(&mut self, seed: u32) {
        self.checksum_seed = seed;
    }

    /// Inodes per inode table block.
    pub fn inodes_per_block(&self) -> u32 {
        // inode_size is 256, 512 or 1024 in a derived geometry.
        BLOCK_SIZE
            .checked_div(usize::from(self.inode_size))
            .map_or(1, |n| n as u32)
    }

    /// Metadata blocks at the start of every group: two bitmaps and the inode table.
    pub fn group_meta_blocks(&self) -> u64 {
        GROUP_BITMAP_BLOCKS + self.inode_table_blocks
    }

    /// Blocks that can hold file data: `blocks_count - overhead`.
    pub fn data_blocks(&self) -> u64 {
        self.blocks_count - self.overhead
    }

    /// First block of group `g`.
    pub fn group_start(&self, g: u32) -> Option<u64> {
        (g < self.group_count).then(|| self.first_group_block + u64::from(g) * BPG)
    }

    /// Length of group `g` in blocks (32768 except maybe the last).
    pub fn group_len(&self, g: u32) -> Option<u64> {
        if g >= self.group_count {
            None
        } else if g + 1 == self.group_count {
            Some(self.last_group_len)
        } else {
            Some(BPG)
        }
    }

    /// Data blocks of group `g` (its length minus its metadata).
    pub fn group_data_blocks(&self, g: u32) -> Option<u64> {
        Some(self.group_len(g)? - self.group_meta_blocks())
    }

    /// Block bitmap block of group `g`.
    pub fn block_bitmap_block(&self, g: u32) -> Option<u64> {
        self.group_start(g)
    }

    /// Inode bitmap block of group `g`.
    pub fn inode_bitmap_block(&self, g: u32) -> Option<u64> {
        Some(self.group_start(g)? + 1)
    }

    /// First inode table block of group `g`.
    pub fn inode_table_block(&self, g: u32) -> Option<u64> {
        Some(self.group_start(g)? + 2)
    }

    /// First data block of group `g`.
    pub fn first_data_block(&self, g: u32) -> Option<u64> {
        Some(self.group_start(g)? + self.group_meta_blocks())
    }

    /// GDT block and byte offset of group `g`'s descriptor.
    pub fn group_desc_location(&self, g: u32) -> Option<(u64, usize)> {
        (g < self.group_count).then(|| {
            (
                self.gdt_start + u64::from(g / DESCS_PER_BLOCK),
                (g % DESCS_PER_BLOCK) as usize * GROUP_DESC_SIZE,
            )
        })
    }

    /// Group of block `b` and its index in that group, if `b` is inside a group.
    pub fn group_of_block(&self, b: u64) -> Option<(u32, u32)> {
        if b < self.first_group_block || b >= self.blocks_count {
            return None;
        }
        let rel = b - self.first_group_block;
        // rel / BPG < group_count <= u32::MAX and rel % BPG < 32768.
        Some(((rel / BPG) as u32, (rel % BPG) as u32))
    }

    /// True iff `b` is inside a group and is not one of that group's bitmaps or inode
    /// table blocks: the only blocks a block pointer may name.
    pub fn is_data_block(&self, b: u64) -> bool {
        match self.group_of_block(b) {
            Some((_, i)) => u64::from(i) >= self.group_meta_blocks(),
            None => false,
        }
    }

    /// `Ok(b)` if `b` may be used as a block pointer, else `BadBlockPointer`.
    pub fn check_data_block(&self, b: u64) -> Result<u64> {
        if self.is_data_block(b) {
            Ok(b)
        } else {
            Err(FormatError::BadBlockPointer)
        }
    }

    /// True iff `ino` names an existing inode (`1..=inodes_count`).
    pub fn is_valid_ino(&self, ino: u32) -> bool {
        ino != 0 && ino <= self.inodes_count
    }

    /// Group and index in the group of inode `ino`.
    pub fn inode_group(&self, ino: u32) -> Result<(u32, u32)> {
        if !self.is_valid_ino(ino) {
            return Err(FormatError::BadInodeNumber);
        }
        let i = ino - 1;
        match (
            i.checked_div(self.inodes_per_group),
            i.checked_rem(self.inodes_per_group),
        ) {
            (Some(g), Some(idx)) => Ok((g, idx)),
            _ => Err(FormatError::BadInodeNumber),
        }
    }

    /// Inode number of index `index` in group `g`.
    pub fn ino_of(&self, g: u32, index: u32) -> Option<u32> {
        if g >= self.group_count || index >= self.inodes_per_group {
            return None;
        }
        // Below inodes_count, which fits u32.
        Some(g * self.inodes_per_group + index + 1)
    }

    /// Where inode `ino` lives on disk.
    pub fn inode_location(&self, ino: u32) -> Result<InodeLocation> {
        let (group, index) = self.inode_group(ino)?;
        let per_block = self.inodes_per_block();
        let table = self
            .inode_table_block(group)
            .ok_or(FormatError::BadInodeNumber)?;
        Ok(InodeLocation {
            group,
            index,
            block: table + u64::from(index / per_block.max(1)),
            offset: (index % per_block.max(1)) as usize * usize::from(self.inode_size),
        })
    }

    /// The statfs figures from the summed group counts and the superblock's
    /// `reserved_blocks`.
    pub fn statfs(&self, free_blocks: u64, free_inodes: u64, reserved_blocks: u64) -> StatFs {
        StatFs {
            bsize: BLOCK_SIZE_U64,
            blocks: self.data_blocks(),
            bfree: free_blocks,
            bavail: free_blocks.saturating_sub(reserved_blocks),
            files: u64::from(self.inodes_count),
            ffree: free_inodes,
            namelen: NAME_MAX as u64,
        }
    }

    /// A descriptor for group `g` of a new filesystem: fixed positions, every data block
    /// and inode free, no directories, bitmap checksums and checksum not yet set.
    pub fn new_group_desc(&self, g: u32) -> Option<GroupDesc> {
        let start = self.group_start(g)?;
        let mut d = GroupDesc::zeroed();
        d.block_bitmap.set(start);
        d.inode_bitmap.set(start + 1);
        d.inode_table.set(start + 2);
        // A group's data blocks are fewer than 32768.
        d.free_blocks.set(self.group_data_blocks(g)? as u32);
        d.free_inodes.set(self.inodes_per_group);
        Some(d)
    }

    /// Initializes group `g`'s block bitmap: its metadata blocks and the bits past the end of
    /// a short last group are set, the rest clear.
    pub fn init_block_bitmap(&self, g: u32, bitmap: &mut [u8; BLOCK_SIZE]) -> Option<()> {
        let len = self.group_len(g)?;
        bitmap.fill(0);
        bitmap_set_range(bitmap, 0, self.group_meta_blocks());
        bitmap_set_range(bitmap, len, BPG);
        Some(())
    }

    /// Initializes group `g`'s inode bitmap: bits `inodes_per_group..32768` set and, in
    /// group 0, the reserved inodes `1..first_ino` set.
    pub fn init_inode_bitmap(&self, g: u32, bitmap: &mut [u8; BLOCK_SIZE]) -> Option<()> {
        if g >= self.group_count {
            return None;
        }
        bitmap.fill(0);
        if g == 0 {
            bitmap_set_range(bitmap, 0, u64::from(FIRST_INO - 1));
        }
        bitmap_set_range(bitmap, u64::from(self.inodes_per_group), BPG);
        Some(())
    }
}

/// Sets bits `start..end` of a bitmap block (clamped to its 32768 bits).
pub(crate) fn bitmap_set_range(bitmap: &mut [u8; BLOCK_SIZE], start: u64, end: u64) {
    let end = end.min(BPG);
    let mut i = start;
    while i < end {
        let byte = (i / 8) as usize;
        if i.is_multiple_of(8) && end - i >= 8 {
            let whole = ((end - i) / 8) as usize;
            if let Some(bytes) = bitmap.get_mut(byte..byte + whole) {
                bytes.fill(0xFF);
            }
            i += whole as u64 * 8;
        } else {
            if let Some(b) = bitmap.get_mut(byte) {
                *b |= 1 << (i % 8);
            }
            i += 1;
        }
    }
}

impl SuperBlock {
    /// Validates this superblock against a device of `device_blocks` blocks and returns the
    /// geometry: magic, version, block size, checksum, incompat features, every geometry
    /// relation, reserved inode numbers, counts, state, errors behavior, label and orphan
    /// list head. Unknown ro_compat bits are reported in `Geometry::unknown_ro_compat`.
    pub fn validate(&self, device_blocks: u64) -> Result<Geometry> {
        if self.magic != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if self.format_version.get() != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion);
        }
        if self.block_size_log2.get() != BLOCK_SIZE_LOG2 {
            return Err(FormatError::UnsupportedBlockSize);
        }
        self.verify_checksum()?;
        if self.unsupported_incompat() != 0 {
            return Err(FormatError::UnsupportedFeature);
        }
        let raw = RawGeometry {
            blocks_count: self.blocks_count.get(),
            first_group_block: self.first_group_block.get(),
            blocks_per_group: self.blocks_per_group.get(),
            inodes_per_group: self.inodes_per_group.get(),
            inodes_count: self.inodes_count.get(),
            group_count: self.group_count.get(),
            inode_size: self.inode_size.get(),
            gdt_start: self.gdt_start.get(),
            gdt_blocks: self.gdt_blocks.get(),
            journal_start: self.journal_start.get(),
            journal_blocks: self.journal_blocks.get(),
            has_journal: self.feature_compat.get() & FEATURE_COMPAT_HAS_JOURNAL != 0,
        };
        let mut geo = Geometry::derive(&raw, device_blocks)?;
        if self.needs_recovery() && geo.journal_blocks == 0 {
            return Err(FormatError::BadJournalLocation);
        }
        if self.root_ino.get() != ROOT_INO
            || self.first_ino.get() != FIRST_INO
            || self.lost_found_ino.get() != LOST_FOUND_INO
        {
            return Err(FormatError::BadReservedInodes);
        }
        if self.free_blocks.get() > geo.data_blocks()
            || self.reserved_blocks.get() > geo.data_blocks()
            || self.free_inodes.get() > geo.inodes_count
        {
            return Err(FormatError::BadFreeCounts);
        }
        if self.state.get() & !STATE_ALL != 0 {
            return Err(FormatError::BadState);
        }
        if !(1..=3).contains(&self.errors_behavior.get()) {
            return Err(FormatError::BadErrorsBehavior);
        }
        self.check_label()?;
        let orphan = self.last_orphan.get();
        if orphan != 0 && (orphan < FIRST_INO || orphan > geo.inodes_count) {
            return Err(FormatError::BadOrphan);
        }
        geo.checksum_seed = self.checksum_seed.get();
        geo.unknown_ro_compat = self.unknown_ro_compat();
        if self.feature_incompat.get() & FEATURE_INCOMPAT_DIR_INDEX != 0 {
            geo.dir_hash_key = Some(self.dir_hash_key);
        }
        Ok(geo)
    }

    fn check_label(&self) -> Result<()> {
        let used = self.label_bytes();
        let padding_zero = self
            .label
            .get(used.len()..)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0));
        if used.len() >= self.label.len() || !padding_zero || core::str::from_utf8(used).is_err() {
            return Err(FormatError::BadLabel);
        }
        Ok(())
    }
}

impl GroupDesc {
    /// Validates descriptor `g`: checksum, the fixed bitmap and inode table positions,
    /// counts within the group's size, no flags.
    pub fn validate(&self, g: u32, geo: &Geometry) -> Result<()> {
        self.verify_checksum(geo.checksum_seed, g)?;
        let start = geo.group_start(g).ok_or(FormatError::GroupDescLayout)?;
        if self.block_bitmap.get() != start
            || self.inode_bitmap.get() != start + 1
            || self.inode_table.get() != start + 2
        {
            return Err(FormatError::GroupDescLayout);
        }
        let data = geo
            .group_data_blocks(g)
            .ok_or(FormatError::GroupDescLayout)?;
        let free_inodes = self.free_inodes.get();
        if u64::from(self.free_blocks.get()) > data
            || free_inodes > geo.inodes_per_group
            || self.used_dirs.get() > geo.inodes_per_group.saturating_sub(free_inodes)
            || self.flags.get() != 0
        {
            return Err(FormatError::GroupDescCounts);
        }
        Ok(())
    }
}
