//! The checker: pass 0 (superblock and journal), pass 1 (inodes and block maps, 1B clones
//! blocks claimed twice), pass 2 (directory blocks), pass 3 (connectivity), pass 4
//! (reference counts), pass 5 (bitmaps and counts), one file per pass as e2fsck's
//! `pass1.c`..`pass5.c`, and `dirindex` for hash-indexed directories. This file holds the
//! state they share: the [`Checker`], the expected bitmaps, file types and reference
//! counts, and inode I/O.
//!
//! Memory is bounded by the filesystem's size, never by what it contains: one expected
//! block bitmap and one inode bitmap block per group, a file type byte and a reference
//! count per inode, one record per directory and per directory block, a record per block
//! claimed twice, and a bit per inode table block. Inode tables are streamed, 1 MiB per
//! read, and their blocks that a trusted inode bitmap marks wholly free are not read at
//! all (see [`Checker::run`]).

mod dirindex;
mod pass0;
mod pass1;
mod pass1b;
mod pass2;
mod pass3;
mod pass4;
mod pass5;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use aegisfs_format::checksum::verify_inode_checksum;
use aegisfs_format::disk::{
    bitmap_set, Inode, SuperBlock, BLOCKS_PER_GROUP, BLOCK_SIZE, PTRS_PER_BLOCK_U64,
};
use aegisfs_format::geometry::Geometry;

use super::dev::{Block, Device};
use super::ui::{Mode, Res, Stop, Ui};
use pass0::load_superblock;

/// File type byte of an inode that is in use but whose clearing was declined: entries to
/// it are left alone and its counts are not checked.
const TYPE_BAD: u8 = 0xFF;
/// Logical block recorded for an xattr block.
const XATTR_LBLK: u64 = u64::MAX;
/// Inode table blocks read at once (1 MiB) where a pass scans a table.
const CHUNK_BLOCKS: u64 = 256;

/// What the check concluded.
pub struct Outcome {
    /// The filesystem was clean and skipped (no `-f`).
    pub skipped_clean: bool,
    pub used_inodes: u64,
    pub inodes: u64,
    pub used_blocks: u64,
    pub blocks: u64,
    pub directories: u64,
    /// Files whose data blocks are not contiguous.
    pub fragmented: u64,
}

#[derive(Clone, Copy)]
struct DirInfo {
    generation: u32,
    /// What `..` says.
    dotdot: u32,
    /// The directory holding the (first) entry for it; 0 while none was seen.
    parent: u32,
    connected: bool,
    /// `links_count` was 0: a removed directory, still allocated.
    unlinked: bool,
    /// `INDEX` is set and, once pass 2 checked it, the index is valid: entries are added
    /// where the index finds them (see `dirindex`).
    indexed: bool,
}

#[derive(Clone, Copy)]
struct DirBlock {
    ino: u32,
    lblk: u64,
    block: u64,
}

/// Where a block pointer lives.
#[derive(Clone, Copy, Debug)]
enum Loc {
    Direct(usize),
    Root(u8),
    Xattr,
    Indirect { block: u64, index: usize },
}

/// A pointer to a block that another pointer claimed first; pass 1B gives it a copy.
#[derive(Clone, Copy, Debug)]
struct Dup {
    ino: u32,
    generation: u32,
    is_dir: bool,
    loc: Loc,
    block: u64,
    /// 0 for a data or xattr block, else the indirection levels below it.
    level: u8,
    lblk: u64,
    /// The pointer carries the UNWRITTEN bit (a data block of a regular file); its copy
    /// keeps it.
    unwritten: bool,
}

/// State of one walk over an inode's block map.
struct Walk {
    ino: u32,
    generation: u32,
    is_dir: bool,
    /// A regular file: its data pointers may carry the UNWRITTEN bit.
    regular: bool,
    /// Claim blocks (false: give back what an earlier walk claimed).
    claim: bool,
    /// Pointers to logical blocks at or past this are cleared.
    limit: u64,
    /// Re-walk after a truncation: its problems were reported by the first walk.
    quiet: bool,
    count: u64,
    /// The last logical block mapped to a written block (unwritten blocks may lie past
    /// the size).
    last: Option<u64>,
    /// Length of the mapped prefix `0..prefix`.
    prefix: u64,
    /// A block is mapped past a hole.
    beyond_prefix: bool,
    prev_phys: Option<u64>,
    fragmented: bool,
    /// Giving back: how many pointers to each block to leave claimed. They are the
    /// inode's duplicate claims; the block's first claim may be its own (it points at the
    /// block twice) or another owner's, and only the first is for the inode to give back.
    keep_claimed: BTreeMap<u64, u32>,
}

impl Walk {
    fn new(ino: u32, generation: u32, is_dir: bool, claim: bool, limit: u64) -> Walk {
        Walk {
            ino,
            generation,
            is_dir,
            regular: false,
            claim,
            limit,
            quiet: false,
            count: 0,
            last: None,
            prefix: 0,
            beyond_prefix: false,
            prev_phys: None,
            fragmented: false,
            keep_claimed: BTreeMap::new(),
        }
    }

    /// Whether this pointer to `b` (giving back) is one of the inode's duplicate claims,
    /// which stay claimed.
    fn keeps_claim(&mut self, b: u64) -> bool {
        match self.keep_claimed.get_mut(&b) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn note_data(&mut self, lblk: u64, phys: u64, unwritten: bool) {
        if !unwritten {
            self.last = Some(lblk);
        }
        if lblk == self.prefix {
            self.prefix += 1;
        } else {
            self.beyond_prefix = true;
        }
        if self.prev_phys.is_some_and(|p| p + 1 != phys) {
            self.fragmented = true;
        }
        self.prev_phys = Some(phys);
    }
}

/// Whether a slot the inode bitmap calls free holds a plainly live inode, which fsck then
/// takes as in use (a bitmap that lost its bit): linked, of a valid type, its checksum
/// right. The checksum comes last: most free slots are zeros and fail the cheap tests.
fn live_in_free_slot(seed: u32, ino: u32, raw: &[u8]) -> bool {
    Inode::from_slot(raw).is_ok_and(|i| i.links_count.get() != 0 && i.file_type().is_some())
        && verify_inode_checksum(seed, ino, raw).is_ok()
}

/// Logical blocks under one pointer `level` levels above the data.
fn span(level: u8) -> u64 {
    PTRS_PER_BLOCK_U64.pow(u32::from(level))
}

/// Inode table blocks read ahead by [`Checker::read_inode_ahead`].
#[derive(Default)]
struct ReadAhead {
    first: u64,
    len: usize,
    blocks: Vec<Block>,
    /// `dev.writes` when they were read: any write since may have changed one.
    writes: u64,
}

pub struct Checker<'u, 'o> {
    pub dev: Device,
    pub ui: &'u mut Ui<'o>,
    geo: Geometry,
    seed: u32,
    block0: Box<Block>,
    /// Expected block bitmaps, one 4096-byte block per group.
    seen: Vec<u8>,
    /// Expected inode bitmaps.
    iused: Vec<u8>,
    ftype: Vec<u8>,
    refs: Vec<u32>,
    dirs: BTreeMap<u32, DirInfo>,
    /// Directory blocks; `dblist[..sorted_len]` is sorted by directory and logical block.
    dblist: Vec<DirBlock>,
    sorted_len: usize,
    /// Index blocks of indexed directories, as (directory, logical block): not directory
    /// blocks, so pass 2 does not check them and no entry is ever added to them.
    index_blocks: BTreeSet<(u32, u64)>,
    dups: Vec<Dup>,
    alloc_cursor: u64,
    fragmented: u64,
    lost_found: Option<u32>,
    /// Names seen so far in the directory pass 2 is in (its blocks come in a row).
    names: (u32, HashSet<Vec<u8>>),
    /// Inode table blocks pass 1 skipped as free, a bit per block (empty: none).
    skipped: Vec<u64>,
    /// The superblock was not marked clean: the filesystem stopped while mounted, and its
    /// free totals, which a mount recounts from the group descriptors, may lag behind.
    unclean: bool,
    now: i64,
}

impl<'u, 'o> Checker<'u, 'o> {
    /// Pass 0: reads and checks the superblock and the journal (replaying it when
    /// repairing). Fails with an operational error when the superblock cannot be used.
    pub fn open(dev: Device, ui: &'u mut Ui<'o>, now: i64) -> Res<Checker<'u, 'o>> {
        let (block0, geo) = load_superblock(&dev, ui)?;
        let unclean = !SuperBlock::in_block(&block0).is_clean();
        let mut c = Checker {
            seed: geo.checksum_seed(),
            geo,
            block0,
            seen: Vec::new(),
            iused: Vec::new(),
            ftype: Vec::new(),
            refs: Vec::new(),
            dirs: BTreeMap::new(),
            dblist: Vec::new(),
            sorted_len: 0,
            index_blocks: BTreeSet::new(),
            dups: Vec::new(),
            alloc_cursor: 0,
            fragmented: 0,
            lost_found: None,
            names: (0, HashSet::new()),
            skipped: Vec::new(),
            unclean,
            now,
            dev,
            ui,
        };
        c.check_journal()?;
        Ok(c)
    }

    fn sb(&self) -> &SuperBlock {
        SuperBlock::in_block(&self.block0)
    }

    fn sb_mut(&mut self) -> &mut SuperBlock {
        SuperBlock::in_block_mut(&mut self.block0)
    }

    fn fixing(&self) -> bool {
        self.ui.mode != Mode::ReadOnly
    }

    /// True when, without `-f`, the filesystem may be reported clean without a check.
    pub fn may_skip(&self, force: bool) -> bool {
        let sb = self.sb();
        let max = sb.max_mount_count.get();
        !force
            && self.ui.mode != Mode::ReadOnly
            && self.ui.found == 0
            && sb.is_clean()
            && !sb.has_errors()
            && !sb.needs_recovery()
            && (max == 0 || sb.mount_count.get() < max)
    }

    /// The counts the superblock records (for the quick "clean" line).
    pub fn recorded_outcome(&self) -> Outcome {
        let sb = self.sb();
        Outcome {
            skipped_clean: true,
            used_inodes: u64::from(self.geo.inodes_count()) - u64::from(sb.free_inodes.get()),
            inodes: u64::from(self.geo.inodes_count()),
            used_blocks: self.geo.blocks_count() - sb.free_blocks.get(),
            blocks: self.geo.blocks_count(),
            directories: 0,
            fragmented: 0,
        }
    }

    /// Passes 1 to 5, then the superblock's state.
    ///
    /// Pass 1 skips inode table blocks that a trusted inode bitmap marks wholly free. Should
    /// pass 2 find a directory entry naming a live inode in one of them, which a full read
    /// would have taken as in use, the check starts again from pass 1 and reads every
    /// block (as e2fsck restarts when an entry names an inode in a skipped table range).
    pub fn run(&mut self) -> Res<Outcome> {
        self.ui.record();
        let (free_blocks, free_inodes) = match self.passes(true) {
            Err(Stop::Restart) => {
                self.ui.restart();
                self.passes(false)?
            }
            r => r?,
        };
        self.finish_superblock()?;
        Ok(Outcome {
            skipped_clean: false,
            used_inodes: u64::from(self.geo.inodes_count()) - free_inodes,
            inodes: u64::from(self.geo.inodes_count()),
            used_blocks: self.geo.blocks_count() - free_blocks,
            blocks: self.geo.blocks_count(),
            directories: self.dirs.len() as u64,
            fragmented: self.fragmented,
        })
    }

    /// Passes 1 to 5 from a fresh state (`skip`: pass 1 may skip free table blocks); returns
    /// the free blocks and inodes.
    fn passes(&mut self, skip: bool) -> Res<(u64, u64)> {
        let groups = self.geo.group_count() as usize;
        self.seen = vec![0u8; groups * BLOCK_SIZE];
        self.iused = vec![0u8; groups * BLOCK_SIZE];
        for g in 0..self.geo.group_count() {
            let r = g as usize * BLOCK_SIZE..(g as usize + 1) * BLOCK_SIZE;
            self.geo
                .init_block_bitmap(g, self.seen[r.clone()].as_mut().try_into().unwrap());
            self.geo
                .init_inode_bitmap(g, self.iused[r].as_mut().try_into().unwrap());
        }
        let inodes = self.geo.inodes_count() as usize + 1;
        self.ftype = vec![0u8; inodes];
        self.refs = vec![0u32; inodes];
        self.dirs.clear();
        self.dblist.clear();
        self.sorted_len = 0;
        self.index_blocks.clear();
        self.dups.clear();
        self.alloc_cursor = 0;
        self.fragmented = 0;
        self.lost_found = None;
        self.names = (0, HashSet::new());
        let table_blocks = groups as u64 * self.geo.inode_table_blocks();
        self.skipped = if skip {
            vec![0u64; table_blocks.div_ceil(64) as usize]
        } else {
            Vec::new()
        };

        self.ui.info("Pass 1: Checking inodes, blocks, and sizes");
        self.pass1(skip)?;
        if !self.dups.is_empty() {
            self.ui
                .info("Pass 1B: Cloning blocks claimed more than once");
            self.pass1b()?;
        }
        self.ui.info("Pass 2: Checking directory structure");
        self.pass2()?;
        // Only pass 2 restarts the check.
        self.ui.settle();
        self.ui.info("Pass 3: Checking directory connectivity");
        self.pass3()?;
        self.ui.info("Pass 4: Checking reference counts");
        self.pass4()?;
        self.ui.info("Pass 5: Checking group summary information");
        self.pass5()
    }

    // ----- inode table blocks pass 1 skipped -----

    /// Index of table block `tb` of group `g` among all inode table blocks.
    fn table_index(&self, g: u32, tb: u64) -> u64 {
        u64::from(g) * self.geo.inode_table_blocks() + tb
    }

    fn mark_skipped(&mut self, g: u32, tb: u64) {
        let i = self.table_index(g, tb);
        if let Some(w) = self.skipped.get_mut((i / 64) as usize) {
            *w |= 1 << (i % 64);
        }
    }

    /// True when inode `ino` is not in use as far as pass 1 knows, but lies in a table block
    /// pass 1 skipped and holds a live inode there, which a full pass 1 would have taken
    /// as in use.
    fn skipped_but_live(&self, ino: u32) -> Res<bool> {
        if self.skipped.is_empty() || self.ftype_of(ino) != 0 {
            return Ok(false);
        }
        let Ok(loc) = self.geo.inode_location(ino) else {
            return Ok(false);
        };
        let Some(table) = self.geo.inode_table_block(loc.group) else {
            return Ok(false);
        };
        let i = self.table_index(loc.group, loc.block - table);
        let skipped = self
            .skipped
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0);
        if !skipped {
            return Ok(false);
        }
        let blk = self.dev.read_new(loc.block)?;
        let isz = usize::from(self.geo.inode_size());
        Ok(live_in_free_slot(
            self.seed,
            ino,
            &blk[loc.offset..loc.offset + isz],
        ))
    }

    // ----- bitmaps and allocation -----

    fn seen_slot(&mut self, b: u64) -> Option<(&mut [u8], u32)> {
        let (g, i) = self.geo.group_of_block(b)?;
        let r = g as usize * BLOCK_SIZE..(g as usize + 1) * BLOCK_SIZE;
        Some((self.seen.get_mut(r)?, i))
    }

    /// Marks `b` in use; returns whether it already was.
    fn claim(&mut self, b: u64) -> bool {
        match self.seen_slot(b) {
            Some((bm, i)) => bitmap_set(bm, i, true),
            None => true,
        }
    }

    fn unclaim(&mut self, b: u64) {
        if let Some((bm, i)) = self.seen_slot(b) {
            bitmap_set(bm, i, false);
        }
    }

    /// A free data block (first fit from a moving cursor), now marked in use.
    fn alloc(&mut self) -> Option<u64> {
        let total = u64::from(self.geo.group_count()) * u64::from(BLOCKS_PER_GROUP);
        for k in 0..total {
            let rel = (self.alloc_cursor + k) % total;
            let b = self.geo.first_group_block() + rel;
            if self.geo.is_data_block(b) && !self.claim(b) {
                self.alloc_cursor = rel + 1;
                return Some(b);
            }
        }
        None
    }

    fn mark_used(&mut self, ino: u32, ft: u8) {
        if let Some(t) = self.ftype.get_mut(ino as usize) {
            *t = ft;
        }
        if let Ok((g, index)) = self.geo.inode_group(ino) {
            let r = g as usize * BLOCK_SIZE..(g as usize + 1) * BLOCK_SIZE;
            bitmap_set(&mut self.iused[r], index, true);
        }
    }

    fn mark_free(&mut self, ino: u32) {
        if let Some(t) = self.ftype.get_mut(ino as usize) {
            *t = 0;
        }
        if let Ok((g, index)) = self.geo.inode_group(ino) {
            let r = g as usize * BLOCK_SIZE..(g as usize + 1) * BLOCK_SIZE;
            bitmap_set(&mut self.iused[r], index, false);
        }
        self.dirs.remove(&ino);
    }

    fn ftype_of(&self, ino: u32) -> u8 {
        self.ftype.get(ino as usize).copied().unwrap_or(0)
    }

    fn add_ref(&mut self, ino: u32) {
        if let Some(r) = self.refs.get_mut(ino as usize) {
            *r = r.saturating_add(1);
        }
    }

    // ----- inode I/O -----

    fn read_inode(&self, ino: u32) -> Res<Vec<u8>> {
        let loc = self
            .geo
            .inode_location(ino)
            .map_err(|e| Stop::Error(e.msg().to_string()))?;
        let blk = self.dev.read_new(loc.block)?;
        let isz = usize::from(self.geo.inode_size());
        Ok(blk[loc.offset..loc.offset + isz].to_vec())
    }

    /// [`Self::read_inode`] for a pass that visits inodes in ascending order: on a miss it
    /// reads ahead, in one call, through the table block of the last inode in use (as pass 1
    /// found) within [`CHUNK_BLOCKS`] of the group's table.
    fn read_inode_ahead(&self, ino: u32, ahead: &mut ReadAhead) -> Res<Vec<u8>> {
        let loc = self
            .geo
            .inode_location(ino)
            .map_err(|e| Stop::Error(e.msg().to_string()))?;
        let per_block = self.geo.inodes_per_block().max(1);
        let hit = ahead.writes == self.dev.writes
            && loc.block >= ahead.first
            && loc.block - ahead.first < ahead.len as u64;
        if !hit {
            let first_index = loc.index - loc.index % per_block;
            let end = self
                .geo
                .inodes_per_group()
                .min(first_index.saturating_add(CHUNK_BLOCKS as u32 * per_block));
            let base = ino - loc.index;
            let last = (loc.index..end)
                .rev()
                .find(|&i| self.ftype_of(base + i) != 0)
                .unwrap_or(loc.index);
            let n = (last / per_block - loc.index / per_block + 1) as usize;
            if ahead.blocks.len() < n {
                ahead.blocks.resize(n, [0u8; BLOCK_SIZE]);
            }
            self.dev.read_blocks(loc.block, &mut ahead.blocks[..n])?;
            (ahead.first, ahead.len, ahead.writes) = (loc.block, n, self.dev.writes);
        }
        let blk = &ahead.blocks[(loc.block - ahead.first) as usize];
        let isz = usize::from(self.geo.inode_size());
        Ok(blk[loc.offset..loc.offset + isz].to_vec())
    }

    fn write_inode(&mut self, ino: u32, raw: &[u8]) -> Res<()> {
        let loc = self
            .geo
            .inode_location(ino)
            .map_err(|e| Stop::Error(e.msg().to_string()))?;
        let mut blk = self.dev.read_new(loc.block)?;
        blk[loc.offset..loc.offset + raw.len()].copy_from_slice(raw);
        Ok(self.dev.write(loc.block, &blk)?)
    }

    // ----- directory blocks -----

    /// The blocks of directory `dir`: a binary search in the part sorted for pass 2, then
    /// the few blocks added since.
    fn dir_blocks(&self, dir: u32) -> Vec<DirBlock> {
        let sorted = &self.dblist[..self.sorted_len];
        let lo = sorted.partition_point(|d| d.ino < dir);
        let hi = sorted.partition_point(|d| d.ino <= dir);
        sorted[lo..hi]
            .iter()
            .chain(
                self.dblist[self.sorted_len..]
                    .iter()
                    .filter(|d| d.ino == dir),
            )
            .copied()
            .collect()
    }
}
