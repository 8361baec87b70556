//! The checker: pass 0 (superblock and journal), pass 1 (inodes and block maps, 1B clones
//! blocks claimed twice), pass 2 (directory blocks), pass 3 (connectivity), pass 4
//! (reference counts), pass 5 (bitmaps and counts).
//!
//! Memory is bounded by the filesystem's size, never by what it contains: one expected
//! block bitmap and one inode bitmap block per group, a file type byte and a reference
//! count per inode, one record per directory and per directory block, and a record per
//! block claimed twice. Inode tables are streamed.

use std::collections::{BTreeMap, HashSet};

use aegisfs_format::blockmap::{DIND_START, IND_START, TIND_START};
use aegisfs_format::checksum::set_journal_block_checksum;
use aegisfs_format::checksum::{checksum_seed, set_inode_checksum, verify_inode_checksum};
use aegisfs_format::dir::{
    check_tail, init_dir_block, iter_verified_dir_block, remove_entry, set_dir_block_checksum,
    set_entry_inode, verify_dir_block_checksum, DirBlockBuilder,
};
use aegisfs_format::disk::{
    bitmap_set, bitmap_test, GroupDesc, IndirectBlock, Inode, SuperBlock, BLOCKS_PER_GROUP,
    BLOCK_SIZE, BLOCK_SIZE_U64, DIR_TAIL_OFFSET, FEATURE_INCOMPAT_RECOVER, FIRST_INO, FT_DIR,
    INLINE_DATA_MAX, INODE_BASE_SIZE, INODE_FLAGS_ALL, INODE_FLAG_INLINE_DATA, LOST_FOUND_INO,
    MAX_FILE_SIZE, NSEC_PER_SEC, N_DIRECT, PTRS_PER_BLOCK, PTRS_PER_BLOCK_U64, ROOT_INO, STATE_ALL,
    STATE_CLEAN, STATE_ERRORS, SYMLINK_MAX, S_IFDIR,
};
use aegisfs_format::disk::{FT_REG, FT_SYMLINK};
use aegisfs_format::error::FormatError;
use aegisfs_format::geometry::Geometry;
use aegisfs_format::inode::TimeField;
use aegisfs_format::journal::{init_journal_superblock, JournalSuperBlock};

use super::dev::{zero_block, Block, Device};
use super::journal::Journal;
use super::ui::{check_cancel, Mode, Res, Stop, Ui};

/// File type byte of an inode that is in use but whose clearing was declined: entries to
/// it are left alone and its counts are not checked.
const TYPE_BAD: u8 = 0xFF;
/// Logical block recorded for an xattr block.
const XATTR_LBLK: u64 = u64::MAX;

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
}

/// State of one walk over an inode's block map.
struct Walk {
    ino: u32,
    generation: u32,
    is_dir: bool,
    /// Claim blocks (false: give back what an earlier walk claimed).
    claim: bool,
    /// Pointers to logical blocks at or past this are cleared.
    limit: u64,
    /// Re-walk after a truncation: its problems were reported by the first walk.
    quiet: bool,
    count: u64,
    last: Option<u64>,
    /// Length of the mapped prefix `0..prefix`.
    prefix: u64,
    /// A block is mapped past a hole.
    beyond_prefix: bool,
    prev_phys: Option<u64>,
    fragmented: bool,
}

impl Walk {
    fn new(ino: u32, generation: u32, is_dir: bool, claim: bool, limit: u64) -> Walk {
        Walk {
            ino,
            generation,
            is_dir,
            claim,
            limit,
            quiet: false,
            count: 0,
            last: None,
            prefix: 0,
            beyond_prefix: false,
            prev_phys: None,
            fragmented: false,
        }
    }

    fn note_data(&mut self, lblk: u64, phys: u64) {
        self.last = Some(lblk);
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

/// Logical blocks under one pointer `level` levels above the data.
fn span(level: u8) -> u64 {
    PTRS_PER_BLOCK_U64.pow(u32::from(level))
}

fn rd_u16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn rd_u32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn type_name(ft: u8) -> &'static str {
    match ft {
        1 => "regular file",
        2 => "directory",
        3 => "character device",
        4 => "block device",
        5 => "FIFO",
        6 => "socket",
        7 => "symlink",
        _ => "unknown",
    }
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
    dups: Vec<Dup>,
    alloc_cursor: u64,
    fragmented: u64,
    lost_found: Option<u32>,
    /// Names seen so far in the directory pass 2 is in (its blocks come in a row).
    names: (u32, HashSet<Vec<u8>>),
    now: i64,
}

impl<'u, 'o> Checker<'u, 'o> {
    /// Pass 0: reads and checks the superblock and the journal (replaying it when
    /// repairing). Fails with an operational error when the superblock cannot be used.
    pub fn open(dev: Device, ui: &'u mut Ui<'o>, now: i64) -> Res<Checker<'u, 'o>> {
        let (block0, geo) = load_superblock(&dev, ui)?;
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
            dups: Vec::new(),
            alloc_cursor: 0,
            fragmented: 0,
            lost_found: None,
            names: (0, HashSet::new()),
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

    fn check_journal(&mut self) -> Res<()> {
        let jblocks = self.geo.journal_blocks();
        if jblocks == 0 {
            return Ok(());
        }
        let jstart = self.geo.journal_start();
        let mut jblk = self.dev.read_new(jstart)?;
        let (start, sequence) = match JournalSuperBlock::validate(&jblk, self.seed, jblocks) {
            Ok(j) => (j.start.get(), j.sequence.get()),
            Err(e) => {
                let msg = format!(
                    "Journal superblock is corrupt ({}); reset it to an empty journal",
                    e.msg()
                );
                if self.ui.problem(&msg, false)? {
                    init_journal_superblock(&mut jblk, self.seed, jblocks)
                        .map_err(|e| Stop::Error(e.msg().to_string()))?;
                    self.dev.write(jstart, &jblk)?;
                    self.clear_recover();
                }
                return Ok(());
            }
        };
        if start == 0 {
            if self.sb().needs_recovery()
                && self.ui.problem(
                    "Superblock has the RECOVER flag, but the journal is empty; clear the flag",
                    true,
                )?
            {
                self.clear_recover();
            }
            return Ok(());
        }
        let journal = Journal {
            start_block: jstart,
            len: jblocks,
            seed: self.seed,
            fs_blocks: self.geo.blocks_count(),
        };
        let committed = journal.committed(&mut self.dev, self.ui, start, sequence)?;
        if !self.fixing() {
            self.ui.problem(
                &format!(
                    "Journal needs recovery: {committed} committed transaction(s) not yet \
                     checkpointed (not replayed in a read-only check)"
                ),
                true,
            )?;
            return Ok(());
        }
        let msg = format!(
            "Journal needs recovery: {committed} committed transaction(s) not yet \
             checkpointed; replay them"
        );
        if !self.ui.problem(&msg, true)? {
            return Ok(());
        }
        let rec = journal.recover(&mut self.dev, self.ui, start, sequence, true)?;
        // The replayed blocks must be durable before the log that holds them is emptied.
        self.dev.sync()?;
        let jsb = JournalSuperBlock::from_block_mut(&mut jblk);
        jsb.start.set(0);
        jsb.sequence.set(rec.next_sequence);
        set_journal_block_checksum(self.seed, &mut jblk);
        self.dev.write(jstart, &jblk)?;
        self.ui.info(&format!(
            "{}: journal replayed: {} transaction(s), {} block(s) written, {} revoked, {} \
             skipped",
            self.ui.device, rec.transactions, rec.replayed, rec.revoked, rec.bad
        ));
        // The log may have held block 0 itself: start again from what is on disk now.
        let (block0, geo) = load_superblock(&self.dev, self.ui)?;
        self.block0 = block0;
        self.geo = geo;
        self.seed = geo.checksum_seed();
        self.clear_recover();
        Ok(())
    }

    fn clear_recover(&mut self) {
        let sb = self.sb_mut();
        let f = sb.feature_incompat.get();
        sb.feature_incompat.set(f & !FEATURE_INCOMPAT_RECOVER);
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
    pub fn run(&mut self) -> Res<Outcome> {
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

        self.ui.info("Pass 1: Checking inodes, blocks, and sizes");
        self.pass1()?;
        if !self.dups.is_empty() {
            self.ui
                .info("Pass 1B: Cloning blocks claimed more than once");
            self.pass1b()?;
        }
        self.ui.info("Pass 2: Checking directory structure");
        self.pass2()?;
        self.ui.info("Pass 3: Checking directory connectivity");
        self.pass3()?;
        self.ui.info("Pass 4: Checking reference counts");
        self.pass4()?;
        self.ui.info("Pass 5: Checking group summary information");
        let (free_blocks, free_inodes) = self.pass5()?;
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

    fn write_inode(&mut self, ino: u32, raw: &[u8]) -> Res<()> {
        let loc = self
            .geo
            .inode_location(ino)
            .map_err(|e| Stop::Error(e.msg().to_string()))?;
        let mut blk = self.dev.read_new(loc.block)?;
        blk[loc.offset..loc.offset + raw.len()].copy_from_slice(raw);
        Ok(self.dev.write(loc.block, &blk)?)
    }

    // ----- pass 1 -----

    fn pass1(&mut self) -> Res<()> {
        let groups = self.geo.group_count();
        let isz = usize::from(self.geo.inode_size());
        let per_block = self.geo.inodes_per_block();
        let ipg = self.geo.inodes_per_group();
        for g in 0..groups {
            check_cancel()?;
            self.ui.progress(1, u64::from(g), u64::from(groups));
            let ibm = self
                .dev
                .read_new(self.geo.inode_bitmap_block(g).unwrap_or(0))?;
            let table = self.geo.inode_table_block(g).unwrap_or(0);
            for tb in 0..self.geo.inode_table_blocks() {
                let mut blk = self.dev.read_new(table + tb)?;
                let mut dirty = false;
                for k in 0..per_block {
                    let index = tb as u32 * per_block + k;
                    if index >= ipg {
                        break;
                    }
                    let Some(ino) = self.geo.ino_of(g, index) else {
                        continue;
                    };
                    let off = k as usize * isz;
                    let raw = &mut blk[off..off + isz];
                    if self.check_inode(ino, raw, bitmap_test(&ibm[..], index))? {
                        dirty = true;
                    }
                }
                if dirty {
                    self.dev.write(table + tb, &blk)?;
                }
            }
        }
        Ok(())
    }

    /// Checks one inode slot; returns whether `raw` was changed (and must be written).
    fn check_inode(&mut self, ino: u32, raw: &mut [u8], bit: bool) -> Res<bool> {
        if ino < FIRST_INO && ino != ROOT_INO {
            return Ok(false);
        }
        let csum_ok = verify_inode_checksum(self.seed, ino, raw).is_ok();
        {
            let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
            // A slot the bitmap calls free is in use only if it is plainly alive; free slots
            // are never written by mkfs and may hold anything.
            if !bit && (!csum_ok || inode.links_count.get() == 0 || inode.file_type().is_none()) {
                return Ok(false);
            }
        }
        let mut changed = false;
        if !csum_ok
            && self
                .ui
                .problem(&format!("Inode {ino} checksum does not match"), false)?
        {
            changed = true;
        }
        let Some(ft) = Inode::from_slot(raw).ok().and_then(|i| i.file_type()) else {
            let mode = Inode::from_slot(raw).map_or(0, |i| i.mode.get());
            let msg = format!("Inode {ino} has an invalid mode 0o{mode:o}; clear the inode");
            if self.ui.problem(&msg, false)? {
                raw.fill(0);
                return Ok(true);
            }
            self.mark_used(ino, TYPE_BAD);
            return Ok(changed);
        };
        if self.sanitize_fields(ino, ft, raw)? {
            changed = true;
        }
        let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
        let generation = inode.generation.get();
        let size = inode.size.get();
        if ft == FT_SYMLINK {
            let inline = inode.has_inline_data();
            if size == 0 || size > SYMLINK_MAX || inline != (size <= INLINE_DATA_MAX as u64) {
                let msg = format!(
                    "Symlink inode {ino} has size {size}, which does not match its storage; \
                     clear the inode"
                );
                if self.ui.problem(&msg, false)? {
                    raw.fill(0);
                    return Ok(true);
                }
                self.mark_used(ino, TYPE_BAD);
                return Ok(changed);
            }
        }
        let is_dir = ft == FT_DIR;
        let inline = inode.has_inline_data();
        let limit = if ft == FT_SYMLINK { 1 } else { u64::MAX };
        let mut w = Walk::new(ino, generation, is_dir, true, limit);
        if self.walk_inode(&mut w, raw, !inline)? {
            changed = true;
        }

        if is_dir && w.beyond_prefix {
            let msg = format!(
                "Directory inode {ino} has a hole at logical block {}; truncate it there",
                w.prefix
            );
            if self.ui.problem(&msg, false)? {
                w = self.rewalk(ino, generation, is_dir, raw, w.prefix)?;
                changed = true;
            }
        }
        if ft == FT_SYMLINK && !inline && w.last.is_none() {
            let msg = format!("Symlink inode {ino} has no data block; clear the inode");
            if self.ui.problem(&msg, false)? {
                self.release_walked(ino, generation, is_dir, raw)?;
                return Ok(true);
            }
        }
        if ft == FT_SYMLINK && self.symlink_has_nul(raw)? {
            let msg = format!("Symlink inode {ino} has a NUL byte in its target; clear the inode");
            if self.ui.problem(&msg, false)? {
                self.release_walked(ino, generation, is_dir, raw)?;
                return Ok(true);
            }
        }
        if is_dir && w.prefix == 0 && Inode::from_slot(raw).is_ok_and(|i| i.links_count.get() > 0) {
            let msg = format!("Directory inode {ino} has no blocks; clear the inode");
            if self.ui.problem(&msg, false)? {
                self.release_walked(ino, generation, is_dir, raw)?;
                return Ok(true);
            }
        }
        let inode = Inode::from_slot_mut(raw).map_err(|e| Stop::Error(e.msg().into()))?;
        let size = inode.size.get();
        let want_size = if is_dir {
            Some(w.prefix * BLOCK_SIZE_U64)
        } else if ft == FT_REG {
            let need = w.last.map_or(0, |l| (l + 1) * BLOCK_SIZE_U64);
            let mapped_past_end = w.last.is_some_and(|l| size <= l * BLOCK_SIZE_U64);
            (mapped_past_end || size > MAX_FILE_SIZE).then_some(need)
        } else {
            None
        };
        if let Some(want) = want_size.filter(|&w| w != size) {
            let msg = format!("Inode {ino} size is {size}, should be {want}");
            if self.ui.problem(&msg, false)? {
                Inode::from_slot_mut(raw)
                    .map_err(|e| Stop::Error(e.msg().into()))?
                    .size
                    .set(want);
                changed = true;
            }
        }
        let blocks = Inode::from_slot(raw).map_or(0, |i| i.blocks.get());
        if blocks != w.count {
            let msg = format!("Inode {ino} block count is {blocks}, should be {}", w.count);
            if self.ui.problem(&msg, false)? {
                Inode::from_slot_mut(raw)
                    .map_err(|e| Stop::Error(e.msg().into()))?
                    .blocks
                    .set(w.count);
                changed = true;
            }
        }
        // Whatever the format still rejects cannot be mended field by field.
        let mut copy = raw.to_vec();
        let _ = set_inode_checksum(self.seed, ino, &mut copy);
        if let Err(e) = Inode::validate(ino, &copy, &self.geo) {
            let msg = format!("Inode {ino} is invalid ({}); clear the inode", e.msg());
            if self.ui.problem(&msg, false)? {
                self.release_walked(ino, generation, is_dir, raw)?;
                return Ok(true);
            }
        }
        self.mark_used(ino, ft);
        if is_dir {
            let unlinked = Inode::from_slot(raw).is_ok_and(|i| i.links_count.get() == 0);
            self.dirs.insert(
                ino,
                DirInfo {
                    generation,
                    dotdot: 0,
                    parent: 0,
                    connected: false,
                    unlinked,
                },
            );
        }
        if w.fragmented {
            self.fragmented += 1;
        }
        if changed {
            set_inode_checksum(self.seed, ino, raw).map_err(|e| Stop::Error(e.msg().into()))?;
        }
        Ok(changed)
    }

    /// True when a symlink's target (inline, or in its data block) contains a NUL byte.
    fn symlink_has_nul(&self, raw: &[u8]) -> Res<bool> {
        let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
        let len = (inode.size.get() as usize).min(BLOCK_SIZE);
        if let Some(t) = inode.inline_data() {
            return Ok(t.contains(&0));
        }
        let b = inode.direct_ptr(0).unwrap_or(0);
        if b == 0 || !self.geo.is_data_block(b) {
            return Ok(false);
        }
        Ok(self.dev.read_new(b)?[..len].contains(&0))
    }

    /// Fixes fields that can be mended on their own: flags, nanoseconds, `extra_size`,
    /// `next_orphan`, and size or pointers of device, FIFO and socket inodes.
    fn sanitize_fields(&mut self, ino: u32, ft: u8, raw: &mut [u8]) -> Res<bool> {
        let isz = raw.len();
        let mut changed = false;
        let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
        let flags = inode.flags.get();
        let mut bad_flags = flags & !INODE_FLAGS_ALL;
        if ft != FT_SYMLINK {
            bad_flags |= flags & INODE_FLAG_INLINE_DATA;
        }
        if bad_flags != 0 {
            let msg = format!("Inode {ino} has invalid flags 0x{bad_flags:x}");
            if self.ui.problem(&msg, false)? {
                let i = Inode::from_slot_mut(raw).map_err(|e| Stop::Error(e.msg().into()))?;
                i.flags.set(flags & !bad_flags);
                changed = true;
            }
        }
        for which in [
            TimeField::Atime,
            TimeField::Mtime,
            TimeField::Ctime,
            TimeField::Crtime,
        ] {
            let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
            let t = inode.time(which);
            if t.nsec >= NSEC_PER_SEC {
                let msg = format!(
                    "Inode {ino} has an invalid timestamp ({} nanoseconds)",
                    t.nsec
                );
                if self.ui.problem(&msg, false)? {
                    let i = Inode::from_slot_mut(raw).map_err(|e| Stop::Error(e.msg().into()))?;
                    i.set_time(which, aegisfs_format::disk::Timestamp::new(t.sec, 0));
                    changed = true;
                }
            }
        }
        let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
        if usize::from(inode.extra_size.get()) > isz - INODE_BASE_SIZE {
            let msg = format!(
                "Inode {ino} has an invalid extra size {}",
                inode.extra_size.get()
            );
            if self.ui.problem(&msg, false)? {
                let i = Inode::from_slot_mut(raw).map_err(|e| Stop::Error(e.msg().into()))?;
                i.extra_size.set(0);
                changed = true;
            }
        }
        let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
        let orphan = inode.next_orphan.get();
        if orphan != 0 && !(FIRST_INO..=self.geo.inodes_count()).contains(&orphan) {
            let msg = format!("Inode {ino} has an invalid orphan list link {orphan}");
            if self.ui.problem(&msg, false)? {
                let i = Inode::from_slot_mut(raw).map_err(|e| Stop::Error(e.msg().into()))?;
                i.next_orphan.set(0);
                changed = true;
            }
        }
        let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
        if inode.reserved.iter().any(|&b| b != 0)
            && self
                .ui
                .problem(&format!("Inode {ino} reserved bytes are not zero"), false)?
        {
            let i = Inode::from_slot_mut(raw).map_err(|e| Stop::Error(e.msg().into()))?;
            i.reserved.fill(0);
            changed = true;
        }
        let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
        if inode.is_special() && (inode.size.get() != 0 || !inode.has_no_block_ptrs()) {
            let msg = format!(
                "Special file inode {ino} ({}) has a size or block pointers; clear them",
                type_name(ft)
            );
            if self.ui.problem(&msg, false)? {
                let i = Inode::from_slot_mut(raw).map_err(|e| Stop::Error(e.msg().into()))?;
                i.size.set(0);
                for d in 0..N_DIRECT {
                    i.set_direct_ptr(d, 0);
                }
                for depth in 1..=3 {
                    i.set_tree_root(depth, 0);
                }
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Walks the inode's pointers (all of them when `tree`, else only the xattr block).
    /// Returns whether a pointer in the inode was cleared.
    fn walk_inode(&mut self, w: &mut Walk, raw: &mut [u8], tree: bool) -> Res<bool> {
        let mut changed = false;
        if tree {
            for d in 0..N_DIRECT {
                let p = Inode::from_slot(raw).map_or(0, |i| i.direct_ptr(d).unwrap_or(0));
                if p != 0 && self.walk_ptr(w, p, 0, d as u64, Loc::Direct(d))? {
                    Inode::from_slot_mut(raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?
                        .set_direct_ptr(d, 0);
                    changed = true;
                }
            }
            for (depth, first) in [(1u8, IND_START), (2, DIND_START), (3, TIND_START)] {
                let p = Inode::from_slot(raw).map_or(0, |i| i.tree_root(depth).unwrap_or(0));
                if p != 0 && self.walk_ptr(w, p, depth, first, Loc::Root(depth))? {
                    Inode::from_slot_mut(raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?
                        .set_tree_root(depth, 0);
                    changed = true;
                }
            }
        }
        let x = Inode::from_slot(raw).map_or(0, |i| i.xattr_block.get());
        if x != 0 && self.walk_xattr(w, x)? {
            Inode::from_slot_mut(raw)
                .map_err(|e| Stop::Error(e.msg().into()))?
                .xattr_block
                .set(0);
            changed = true;
        }
        Ok(changed)
    }

    fn ask(&mut self, w: &Walk, msg: &str) -> Res<bool> {
        if w.quiet {
            Ok(true)
        } else {
            self.ui.problem(msg, false)
        }
    }

    fn bad_ptr_reason(&self, p: u64) -> &'static str {
        if self.geo.group_of_block(p).is_some() {
            "a group's bitmap or inode table"
        } else {
            "outside the data area"
        }
    }

    fn walk_xattr(&mut self, w: &mut Walk, p: u64) -> Res<bool> {
        let ino = w.ino;
        if !w.claim {
            if self.geo.is_data_block(p) && !self.is_dup(ino, p) {
                self.unclaim(p);
            }
            return Ok(false);
        }
        if !self.geo.is_data_block(p) {
            let msg = format!(
                "Inode {ino} has an illegal xattr block {p} ({}); clear it",
                self.bad_ptr_reason(p)
            );
            return self.ask(w, &msg);
        }
        w.count += 1;
        if self.claim(p) {
            let msg =
                format!("Inode {ino} xattr block {p} is claimed by more than one owner; clone it");
            if self.ask(w, &msg)? {
                self.dups.push(Dup {
                    ino,
                    generation: w.generation,
                    is_dir: false,
                    loc: Loc::Xattr,
                    block: p,
                    level: 0,
                    lblk: XATTR_LBLK,
                });
            }
        }
        Ok(false)
    }

    fn is_dup(&self, ino: u32, b: u64) -> bool {
        self.dups.iter().any(|d| d.ino == ino && d.block == b)
    }

    /// Walks pointer `p`, `level` levels above the data, mapping logical blocks from
    /// `first`. Returns true when the pointer must be cleared.
    fn walk_ptr(&mut self, w: &mut Walk, p: u64, level: u8, first: u64, loc: Loc) -> Res<bool> {
        let ino = w.ino;
        if !w.claim {
            if !self.geo.is_data_block(p) || self.is_dup(ino, p) {
                return Ok(false);
            }
            self.unclaim(p);
            if level > 0 {
                let blk = self.dev.read_new(p)?;
                let ib = IndirectBlock::from_block(&blk);
                if ib.verify_checksum(self.seed, ino, w.generation).is_ok() {
                    for i in 0..PTRS_PER_BLOCK {
                        let c = ib.ptr(i).unwrap_or(0);
                        if c != 0 {
                            let cf = first + i as u64 * span(level - 1);
                            let l = Loc::Indirect { block: p, index: i };
                            self.walk_ptr(w, c, level - 1, cf, l)?;
                        }
                    }
                }
            }
            return Ok(false);
        }
        if first >= w.limit {
            let msg = format!(
                "Symlink inode {ino} maps logical block {first}, past its one block; clear it"
            );
            if self.ask(w, &msg)? {
                return Ok(true);
            }
        }
        if !self.geo.is_data_block(p) {
            let what = if level == 0 {
                "block"
            } else {
                "indirect block"
            };
            let msg = format!(
                "Inode {ino} has an illegal {what} pointer {p} at logical block {first} ({}); \
                 clear it",
                self.bad_ptr_reason(p)
            );
            return self.ask(w, &msg);
        }
        if self.claim(p) {
            let msg = format!(
                "Inode {ino} block {p} (logical block {first}) is claimed by more than one \
                 owner; clone it"
            );
            if level == 0 {
                w.count += 1;
                w.note_data(first, p);
            } else {
                self.count_shared(w, p, level, first)?;
            }
            if self.ask(w, &msg)? {
                self.dups.push(Dup {
                    ino,
                    generation: w.generation,
                    is_dir: w.is_dir,
                    loc,
                    block: p,
                    level,
                    lblk: first,
                });
            }
            return Ok(false);
        }
        if level == 0 {
            w.count += 1;
            w.note_data(first, p);
            if w.is_dir {
                self.dblist.push(DirBlock {
                    ino,
                    lblk: first,
                    block: p,
                });
            }
            return Ok(false);
        }
        let mut blk = self.dev.read_new(p)?;
        let mut dirty = false;
        let ib = IndirectBlock::from_block(&blk);
        if ib.verify_checksum(self.seed, ino, w.generation).is_err() {
            if ib.validate_ptrs(&self.geo).is_ok() {
                let msg = format!("Indirect block {p} of inode {ino} has a bad checksum");
                if self.ask(w, &msg)? {
                    dirty = true;
                } else {
                    w.count += 1;
                    return Ok(false);
                }
            } else {
                let msg = format!(
                    "Indirect block {p} of inode {ino} is corrupt (bad checksum and pointers); \
                     clear it"
                );
                if self.ask(w, &msg)? {
                    self.unclaim(p);
                    return Ok(true);
                }
                w.count += 1;
                return Ok(false);
            }
        }
        for i in 0..PTRS_PER_BLOCK {
            let c = IndirectBlock::from_block(&blk).ptr(i).unwrap_or(0);
            if c == 0 {
                continue;
            }
            let cf = first + i as u64 * span(level - 1);
            let l = Loc::Indirect { block: p, index: i };
            if self.walk_ptr(w, c, level - 1, cf, l)? {
                IndirectBlock::from_block_mut(&mut blk).set_ptr(i, 0);
                dirty = true;
            }
        }
        w.count += 1;
        if dirty {
            IndirectBlock::from_block_mut(&mut blk).update_checksum(self.seed, ino, w.generation);
            self.dev.write(p, &blk)?;
        }
        Ok(false)
    }

    /// Counts (without claiming) a subtree that another owner claimed first.
    fn count_shared(&mut self, w: &mut Walk, p: u64, level: u8, first: u64) -> Res<()> {
        w.count += 1;
        let blk = self.dev.read_new(p)?;
        let ib = IndirectBlock::from_block(&blk);
        for i in 0..PTRS_PER_BLOCK {
            let c = ib.ptr(i).unwrap_or(0);
            if c == 0 || !self.geo.is_data_block(c) {
                continue;
            }
            let cf = first + i as u64 * span(level - 1);
            if level == 1 {
                w.count += 1;
                w.note_data(cf, c);
            } else {
                self.count_shared(w, c, level - 1, cf)?;
            }
        }
        Ok(())
    }

    /// Gives back every block the inode claimed, then walks it again keeping only logical
    /// blocks below `limit`.
    fn rewalk(
        &mut self,
        ino: u32,
        generation: u32,
        is_dir: bool,
        raw: &mut [u8],
        limit: u64,
    ) -> Res<Walk> {
        let mut back = Walk::new(ino, generation, is_dir, false, u64::MAX);
        self.walk_inode(&mut back, raw, true)?;
        self.drop_dir_blocks(ino, is_dir);
        self.dups.retain(|d| d.ino != ino);
        let mut w = Walk::new(ino, generation, is_dir, true, limit);
        w.quiet = true;
        self.walk_inode(&mut w, raw, true)?;
        Ok(w)
    }

    /// Frees an inode whose blocks were claimed by a walk: gives them back and zeroes the
    /// slot.
    fn release_walked(
        &mut self,
        ino: u32,
        generation: u32,
        is_dir: bool,
        raw: &mut [u8],
    ) -> Res<()> {
        let tree = Inode::from_slot(raw).is_ok_and(|i| !i.has_inline_data());
        let mut back = Walk::new(ino, generation, is_dir, false, u64::MAX);
        self.walk_inode(&mut back, raw, tree)?;
        self.drop_dir_blocks(ino, is_dir);
        if !self.dups.is_empty() {
            self.dups.retain(|d| d.ino != ino);
        }
        raw.fill(0);
        self.mark_free(ino);
        Ok(())
    }

    /// Forgets the blocks of directory `ino`.
    fn drop_dir_blocks(&mut self, ino: u32, is_dir: bool) {
        if !is_dir {
            return;
        }
        let in_sorted = self.dblist[..self.sorted_len]
            .iter()
            .filter(|d| d.ino == ino)
            .count();
        self.dblist.retain(|d| d.ino != ino);
        self.sorted_len -= in_sorted;
    }

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

    // ----- pass 1B -----

    fn pass1b(&mut self) -> Res<()> {
        let dups = std::mem::take(&mut self.dups);
        for d in &dups {
            check_cancel()?;
            let Some(new) = self.clone_tree(d, d.block, d.level, d.lblk)? else {
                self.ui.unfixable(&format!(
                    "No free block to clone block {} of inode {}",
                    d.block, d.ino
                ));
                continue;
            };
            match d.loc {
                Loc::Indirect { block, index } => {
                    let mut blk = self.dev.read_new(block)?;
                    let ib = IndirectBlock::from_block_mut(&mut blk);
                    ib.set_ptr(index, new);
                    ib.update_checksum(self.seed, d.ino, d.generation);
                    self.dev.write(block, &blk)?;
                }
                loc => {
                    let mut raw = self.read_inode(d.ino)?;
                    let i =
                        Inode::from_slot_mut(&mut raw).map_err(|e| Stop::Error(e.msg().into()))?;
                    match loc {
                        Loc::Direct(k) => {
                            i.set_direct_ptr(k, new);
                        }
                        Loc::Root(depth) => {
                            i.set_tree_root(depth, new);
                        }
                        _ => i.xattr_block.set(new),
                    }
                    set_inode_checksum(self.seed, d.ino, &mut raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?;
                    self.write_inode(d.ino, &raw)?;
                }
            }
        }
        Ok(())
    }

    /// Copies the subtree at `p` into newly allocated blocks owned by `d.ino`; returns
    /// the new root, or `None` when the filesystem is full.
    fn clone_tree(&mut self, d: &Dup, p: u64, level: u8, first: u64) -> Res<Option<u64>> {
        let Some(new) = self.alloc() else {
            return Ok(None);
        };
        let mut blk = self.dev.read_new(p)?;
        if level == 0 {
            if d.is_dir && first != XATTR_LBLK {
                set_dir_block_checksum(&mut blk, self.seed, d.ino, d.generation);
                self.dblist.push(DirBlock {
                    ino: d.ino,
                    lblk: first,
                    block: new,
                });
            }
        } else {
            for i in 0..PTRS_PER_BLOCK {
                let c = IndirectBlock::from_block(&blk).ptr(i).unwrap_or(0);
                if c == 0 {
                    continue;
                }
                let cf = first + i as u64 * span(level - 1);
                let copy = if self.geo.is_data_block(c) {
                    self.clone_tree(d, c, level - 1, cf)?
                } else {
                    None
                };
                IndirectBlock::from_block_mut(&mut blk).set_ptr(i, copy.unwrap_or(0));
            }
            IndirectBlock::from_block_mut(&mut blk).update_checksum(self.seed, d.ino, d.generation);
        }
        self.dev.write(new, &blk)?;
        Ok(Some(new))
    }

    // ----- pass 2 -----

    fn pass2(&mut self) -> Res<()> {
        self.dblist.sort_by_key(|d| (d.ino, d.lblk));
        self.sorted_len = self.dblist.len();
        let n = self.dblist.len();
        for k in 0..n {
            check_cancel()?;
            self.ui.progress(2, k as u64, n as u64);
            let db = self.dblist[k];
            self.check_dir_block(db)?;
        }
        Ok(())
    }

    fn check_dir_block(&mut self, db: DirBlock) -> Res<()> {
        let dir = db.ino;
        let Some(info) = self.dirs.get(&dir).copied() else {
            return Ok(());
        };
        let mut blk = self.dev.read_new(db.block)?;
        let loc = format!(
            "Directory inode {dir}, block {} (logical block {})",
            db.block, db.lblk
        );
        let mut modified = false;
        let mut tail_bad = false;
        if check_tail(&blk).is_err() {
            tail_bad = true;
            if self
                .ui
                .problem(&format!("{loc}: bad directory block tail"), false)?
            {
                modified = true;
            }
        }
        // Structure: mend the first malformed record until the block parses.
        let mut end = DIR_TAIL_OFFSET;
        for _ in 0..DIR_TAIL_OFFSET {
            let mut prev: Option<usize> = None;
            let mut pos = 0;
            let mut err = None;
            for e in iter_verified_dir_block(&blk, &self.geo) {
                match e {
                    Ok(e) => {
                        prev = Some(e.offset);
                        pos = e.offset + e.rec_len;
                    }
                    Err(x) => {
                        err = Some(x);
                        break;
                    }
                }
            }
            let Some(err) = err else { break };
            let off = pos;
            let rec_len = usize::from(rd_u16(&blk[..], off + 4));
            let name_len = usize::from(blk.get(off + 6).copied().unwrap_or(0));
            let ino = rd_u32(&blk[..], off);
            let (msg, truncate) = match err {
                FormatError::DirRecLen => {
                    let rec_ok = off + 8 <= DIR_TAIL_OFFSET
                        && rec_len >= 8
                        && rec_len % 4 == 0
                        && off + rec_len <= DIR_TAIL_OFFSET;
                    if rec_ok {
                        (
                            format!(
                                "{loc}: entry at offset {off} has a bad name_len {name_len} \
                                 (rec_len {rec_len}); clear the entry"
                            ),
                            false,
                        )
                    } else {
                        (
                            format!(
                                "{loc}: entry at offset {off} has a bad rec_len {rec_len}; \
                                 drop the rest of the block"
                            ),
                            true,
                        )
                    }
                }
                FormatError::DirName => (
                    format!("{loc}: entry at offset {off} has an invalid name; clear the entry"),
                    false,
                ),
                FormatError::DirInode => (
                    format!(
                        "{loc}: entry at offset {off} refers to invalid inode {ino}; clear the \
                         entry"
                    ),
                    false,
                ),
                _ => (
                    format!(
                        "{loc}: entry at offset {off} has an invalid file type {}; clear the \
                         entry",
                        blk.get(off + 7).copied().unwrap_or(0)
                    ),
                    false,
                ),
            };
            if !self.ui.problem(&msg, false)? {
                end = off;
                break;
            }
            modified = true;
            if !truncate {
                blk[off..off + 4].fill(0);
                blk[off + 6] = 0;
                blk[off + 7] = 0;
            } else if let Some(p) = prev {
                let len = (DIR_TAIL_OFFSET - p) as u16;
                blk[p + 4..p + 6].copy_from_slice(&len.to_le_bytes());
            } else {
                init_dir_block(&mut blk);
            }
        }
        if !modified
            && !tail_bad
            && end == DIR_TAIL_OFFSET
            && verify_dir_block_checksum(&blk, self.seed, dir, info.generation).is_err()
            && self
                .ui
                .problem(&format!("{loc}: checksum does not match"), false)?
        {
            modified = true;
        }

        if db.lblk == 0 && self.check_dots(dir, &mut blk, end, &loc)? {
            modified = true;
        }
        // Entries, `.` and `..` excluded (handled above and in pass 3).
        let entries: Vec<(usize, u32, Vec<u8>, u8)> = iter_verified_dir_block(&blk, &self.geo)
            .map_while(|e| e.ok())
            .filter(|e| e.offset < end && e.is_used())
            .map(|e| (e.offset, e.ino, e.name.to_vec(), e.file_type))
            .collect();
        let skip = if db.lblk == 0 { 2 } else { 0 };
        for (k, (off, ino, name, ft)) in entries.into_iter().enumerate() {
            if k < skip {
                continue;
            }
            if self.check_entry(dir, &mut blk, off, ino, &name, ft)? {
                modified = true;
            }
        }
        if modified {
            set_dir_block_checksum(&mut blk, self.seed, dir, info.generation);
            self.dev.write(db.block, &blk)?;
        }
        Ok(())
    }

    /// Checks `.` and `..` at the start of a directory's first block; records `..`.
    fn check_dots(&mut self, dir: u32, blk: &mut Block, end: usize, loc: &str) -> Res<bool> {
        let mut modified = false;
        let first: Vec<(usize, u32, Vec<u8>)> = iter_verified_dir_block(blk, &self.geo)
            .map_while(|e| e.ok())
            .filter(|e| e.offset < end)
            .take(2)
            .map(|e| (e.offset, e.ino, e.name.to_vec()))
            .collect();
        let dot = first.first().filter(|e| e.1 != 0 && e.2 == b".");
        let dotdot = first.get(1).filter(|e| e.1 != 0 && e.2 == b"..");
        if dot.is_none() || dotdot.is_none() {
            let what = if dot.is_none() { "'.'" } else { "'..'" };
            let msg = format!("{loc}: missing {what} entry; rebuild the block's start");
            if !self.ui.problem(&msg, false)? {
                if let Some(dd) = dotdot {
                    self.set_dotdot(dir, dd.1);
                }
                if dot.is_some() {
                    self.add_ref(dir);
                }
                return Ok(false);
            }
            let parent = iter_verified_dir_block(blk, &self.geo)
                .map_while(|e| e.ok())
                .find(|e| e.is_used() && e.name == b"..")
                .map_or(ROOT_INO, |e| e.ino);
            let keep: Vec<(u32, Vec<u8>, u8)> = iter_verified_dir_block(blk, &self.geo)
                .map_while(|e| e.ok())
                .filter(|e| e.offset < end && e.is_used() && e.name != b"." && e.name != b"..")
                .map(|e| (e.ino, e.name.to_vec(), e.file_type))
                .collect();
            let mut nb = zero_block();
            {
                let mut b = DirBlockBuilder::new_first(&mut nb, dir, parent)
                    .map_err(|e| Stop::Error(e.msg().into()))?;
                for (ino, name, ft) in keep {
                    // An entry that no longer fits is dropped; its inode is reconnected later.
                    let _ = b.try_add(ino, &name, ft);
                }
            }
            *blk = *nb;
            self.set_dotdot(dir, parent);
            self.add_ref(dir);
            return Ok(true);
        }
        if let Some(d) = dot {
            if d.1 != dir {
                let msg = format!("'.' in directory inode {dir} is {}, should be {dir}", d.1);
                if self.ui.problem(&msg, false)? {
                    set_entry_inode(blk, d.0, dir, FT_DIR)
                        .map_err(|e| Stop::Error(e.msg().into()))?;
                    modified = true;
                    self.add_ref(dir);
                }
            } else {
                self.add_ref(dir);
            }
        }
        if let Some(dd) = dotdot {
            self.set_dotdot(dir, dd.1);
        }
        Ok(modified)
    }

    fn set_dotdot(&mut self, dir: u32, to: u32) {
        if let Some(i) = self.dirs.get_mut(&dir) {
            i.dotdot = to;
        }
    }

    /// Checks one used entry (not `.`/`..` of a first block); returns whether the block
    /// changed.
    fn check_entry(
        &mut self,
        dir: u32,
        blk: &mut Block,
        off: usize,
        ino: u32,
        name: &[u8],
        ft: u8,
    ) -> Res<bool> {
        let shown = String::from_utf8_lossy(name);
        let clear = |c: &mut Self, blk: &mut Block, msg: String| -> Res<bool> {
            if c.ui.problem(&msg, false)? {
                remove_entry(blk, off).map_err(|e| Stop::Error(e.msg().into()))?;
                return Ok(true);
            }
            c.add_ref(ino);
            Ok(false)
        };
        if name == b"." || name == b".." {
            let msg = format!(
                "Entry '{shown}' in directory inode {dir} at offset {off} is a misplaced '.' or \
                 '..'; clear it"
            );
            return clear(self, blk, msg);
        }
        if self.names.0 != dir {
            self.names = (dir, HashSet::new());
        }
        if !self.names.1.insert(name.to_vec()) {
            let msg = format!(
                "Entry '{shown}' in directory inode {dir} has the same name as an earlier entry; \
                 clear it"
            );
            return clear(self, blk, msg);
        }
        let t = self.ftype_of(ino);
        if t == 0 {
            let msg = format!(
                "Entry '{shown}' in directory inode {dir} refers to unused inode {ino}; clear it"
            );
            return clear(self, blk, msg);
        }
        if t == TYPE_BAD {
            self.add_ref(ino);
            return Ok(false);
        }
        let mut modified = false;
        if ft != t {
            let msg = format!(
                "Entry '{shown}' in directory inode {dir} has file type {ft} ({}), but inode \
                 {ino} is a {}",
                type_name(ft),
                type_name(t)
            );
            if self.ui.problem(&msg, false)? {
                set_entry_inode(blk, off, ino, t).map_err(|e| Stop::Error(e.msg().into()))?;
                modified = true;
            }
        }
        if t == FT_DIR {
            let parent = self.dirs.get(&ino).map_or(0, |i| i.parent);
            let msg = if ino == ROOT_INO {
                Some(format!(
                    "Entry '{shown}' in directory inode {dir} is a link to the root directory; \
                     clear it"
                ))
            } else if ino == dir {
                Some(format!(
                    "Entry '{shown}' in directory inode {dir} is a link to the directory itself; \
                     clear it"
                ))
            } else if parent != 0 {
                Some(format!(
                    "Entry '{shown}' in directory inode {dir} is a link to directory inode \
                     {ino}, which is already linked from directory inode {parent}; clear it"
                ))
            } else {
                None
            };
            if let Some(msg) = msg {
                return Ok(clear(self, blk, msg)? || modified);
            }
            if let Some(i) = self.dirs.get_mut(&ino) {
                i.parent = dir;
            }
        }
        self.add_ref(ino);
        Ok(modified)
    }

    // ----- pass 3 -----

    fn pass3(&mut self) -> Res<()> {
        if self.ftype_of(ROOT_INO) != FT_DIR {
            let msg = if self.ftype_of(ROOT_INO) == 0 {
                "Root inode is not allocated or was cleared; create a new root directory"
            } else {
                "Root inode is not a directory; clear it and create a new root directory"
            };
            if !self.ui.problem(msg, false)? {
                return Ok(());
            }
            if self.ftype_of(ROOT_INO) != 0 {
                self.release_inode(ROOT_INO)?;
            }
            if !self.make_dir(ROOT_INO, ROOT_INO)? {
                return Ok(());
            }
        }
        if let Some(r) = self.dirs.get_mut(&ROOT_INO) {
            r.parent = ROOT_INO;
            r.connected = true;
        }
        self.ensure_lost_found()?;
        let list: Vec<u32> = self.dirs.keys().copied().collect();
        for (k, d) in list.iter().enumerate() {
            check_cancel()?;
            self.ui.progress(3, k as u64, list.len() as u64);
            self.connect(*d)?;
        }
        // `..` of every directory names the directory holding its entry.
        let list: Vec<(u32, DirInfo)> = self.dirs.iter().map(|(k, v)| (*k, *v)).collect();
        for (d, info) in list {
            let want = info.parent;
            if want == 0 {
                if info.dotdot != 0 {
                    self.add_ref(info.dotdot);
                }
                continue;
            }
            if info.dotdot == want {
                self.add_ref(want);
                continue;
            }
            let msg = format!(
                "'..' in directory inode {d} is {}, should be {want}",
                info.dotdot
            );
            if self.ui.problem(&msg, false)? && self.fix_dotdot(d, want)? {
                self.add_ref(want);
            } else if self.ftype_of(info.dotdot) == FT_DIR {
                self.add_ref(info.dotdot);
            }
        }
        Ok(())
    }

    /// Follows parents from `d` up to the root; reconnects a directory without a parent,
    /// and breaks a loop, through `lost+found`.
    fn connect(&mut self, d: u32) -> Res<()> {
        let mut path = vec![d];
        let mut cur = d;
        while let Some(info) = self.dirs.get(&cur).copied() {
            if info.connected {
                break;
            }
            let p = info.parent;
            if p == 0 && info.unlinked && cur != LOST_FOUND_INO {
                let msg = format!(
                    "Directory inode {cur} has no links and no entry (a removed directory still \
                     allocated); release it"
                );
                if self.ui.problem(&msg, true)? {
                    self.release_inode(cur)?;
                }
                break;
            }
            if p == 0 || !self.dirs.contains_key(&p) {
                self.reconnect_dir(cur, None)?;
                break;
            }
            if self.dirs.get(&p).is_some_and(|i| i.connected) {
                break;
            }
            if path.contains(&p) {
                self.reconnect_dir(cur, Some(p))?;
                break;
            }
            path.push(p);
            cur = p;
        }
        for x in path {
            if let Some(i) = self.dirs.get_mut(&x) {
                i.connected = true;
            }
        }
        Ok(())
    }

    fn reconnect_dir(&mut self, d: u32, loop_parent: Option<u32>) -> Res<()> {
        let msg = match loop_parent {
            Some(p) => format!(
                "Directory inode {d} (in directory inode {p}) is part of a directory loop; \
                 move it to /lost+found"
            ),
            None if d == LOST_FOUND_INO => {
                "/lost+found is not connected to the root; reconnect it".to_string()
            }
            None => format!("Unconnected directory inode {d}; connect it to /lost+found"),
        };
        if !self.ui.problem(&msg, false)? {
            return Ok(());
        }
        if let Some(p) = loop_parent {
            self.remove_entries_to(p, d)?;
        }
        let (parent, name) = if d == LOST_FOUND_INO {
            (ROOT_INO, b"lost+found".to_vec())
        } else {
            match self.lost_found {
                Some(lf) if lf != d => (lf, format!("#{d}").into_bytes()),
                _ => {
                    self.ui
                        .unfixable(&format!("No /lost+found to reconnect directory inode {d}"));
                    return Ok(());
                }
            }
        };
        if self.add_entry(parent, &name, d, FT_DIR)? {
            if let Some(i) = self.dirs.get_mut(&d) {
                i.parent = parent;
            }
            self.add_ref(d);
        }
        Ok(())
    }

    /// Makes sure inode 11 is a directory (`lost+found`), recreating it if needed.
    fn ensure_lost_found(&mut self) -> Res<()> {
        let lf = LOST_FOUND_INO;
        match self.ftype_of(lf) {
            FT_DIR => {
                self.lost_found = Some(lf);
                return Ok(());
            }
            0 => {
                if !self
                    .ui
                    .problem("/lost+found (inode 11) not found; create it", false)?
                {
                    return Ok(());
                }
            }
            _ => {
                if !self.ui.problem(
                    "/lost+found (inode 11) is not a directory; clear it and create it",
                    false,
                )? {
                    return Ok(());
                }
                self.release_inode(lf)?;
            }
        }
        if self.make_dir(lf, ROOT_INO)? {
            self.lost_found = Some(lf);
            if self.add_entry(ROOT_INO, b"lost+found", lf, FT_DIR)? {
                if let Some(i) = self.dirs.get_mut(&lf) {
                    i.parent = ROOT_INO;
                    i.connected = true;
                }
                self.add_ref(lf);
            }
        }
        Ok(())
    }

    /// Creates directory `ino` with one block holding `.` and `..` (`parent`).
    fn make_dir(&mut self, ino: u32, parent: u32) -> Res<bool> {
        let Some(b) = self.alloc() else {
            self.ui
                .unfixable(&format!("No free block to create directory inode {ino}"));
            return Ok(false);
        };
        let mut blk = zero_block();
        DirBlockBuilder::new_first(&mut blk, ino, parent)
            .map_err(|e| Stop::Error(e.msg().into()))?
            .finalize(self.seed, ino, 0);
        self.dev.write(b, &blk)?;
        let mut raw = vec![0u8; usize::from(self.geo.inode_size())];
        let i = Inode::from_slot_mut(&mut raw).map_err(|e| Stop::Error(e.msg().into()))?;
        let perm = if ino == LOST_FOUND_INO { 0o700 } else { 0o755 };
        i.mode.set(S_IFDIR | perm);
        i.links_count.set(2);
        i.size.set(BLOCK_SIZE_U64);
        i.blocks.set(1);
        let now = aegisfs_format::disk::Timestamp::new(self.now, 0);
        for which in [
            TimeField::Atime,
            TimeField::Mtime,
            TimeField::Ctime,
            TimeField::Crtime,
        ] {
            i.set_time(which, now);
        }
        i.set_direct_ptr(0, b);
        set_inode_checksum(self.seed, ino, &mut raw).map_err(|e| Stop::Error(e.msg().into()))?;
        self.write_inode(ino, &raw)?;
        self.mark_used(ino, FT_DIR);
        self.dirs.insert(
            ino,
            DirInfo {
                generation: 0,
                dotdot: parent,
                parent: if ino == ROOT_INO { ROOT_INO } else { 0 },
                connected: ino == ROOT_INO,
                unlinked: false,
            },
        );
        self.dblist.push(DirBlock {
            ino,
            lblk: 0,
            block: b,
        });
        self.add_ref(ino);
        Ok(true)
    }

    /// Frees an in-use inode after pass 1: its blocks and its slot.
    fn release_inode(&mut self, ino: u32) -> Res<()> {
        let mut raw = self.read_inode(ino)?;
        let (generation, is_dir) = Inode::from_slot(&raw)
            .map(|i| (i.generation.get(), i.is_dir()))
            .unwrap_or((0, false));
        self.release_walked(ino, generation, is_dir, &mut raw)?;
        self.write_inode(ino, &raw)
    }

    /// Adds an entry to directory `dir`, growing it by a block when every block is full
    /// (up to its direct blocks). Returns false when there is no room.
    fn add_entry(&mut self, dir: u32, name: &[u8], ino: u32, ft: u8) -> Res<bool> {
        let Some(info) = self.dirs.get(&dir).copied() else {
            return Ok(false);
        };
        let blocks = self.dir_blocks(dir);
        for db in &blocks {
            let mut blk = self.dev.read_new(db.block)?;
            if let Ok(Some(_)) = aegisfs_format::dir::add_entry(&mut blk, ino, name, ft) {
                set_dir_block_checksum(&mut blk, self.seed, dir, info.generation);
                self.dev.write(db.block, &blk)?;
                return Ok(true);
            }
        }
        let n = blocks.len();
        let shown = String::from_utf8_lossy(name);
        if n >= N_DIRECT {
            self.ui.unfixable(&format!(
                "No room in directory inode {dir} for '{shown}' (inode {ino})"
            ));
            return Ok(false);
        }
        let Some(b) = self.alloc() else {
            self.ui
                .unfixable(&format!("No free block to grow directory inode {dir}"));
            return Ok(false);
        };
        let mut blk = zero_block();
        let mut builder = DirBlockBuilder::new(&mut blk);
        builder
            .try_add(ino, name, ft)
            .map_err(|e| Stop::Error(e.msg().into()))?;
        builder.finalize(self.seed, dir, info.generation);
        self.dev.write(b, &blk)?;
        let mut raw = self.read_inode(dir)?;
        let i = Inode::from_slot_mut(&mut raw).map_err(|e| Stop::Error(e.msg().into()))?;
        i.set_direct_ptr(n, b);
        i.size.set((n as u64 + 1) * BLOCK_SIZE_U64);
        i.blocks.set(i.blocks.get() + 1);
        set_inode_checksum(self.seed, dir, &mut raw).map_err(|e| Stop::Error(e.msg().into()))?;
        self.write_inode(dir, &raw)?;
        self.dblist.push(DirBlock {
            ino: dir,
            lblk: n as u64,
            block: b,
        });
        Ok(true)
    }

    /// Removes every entry of `dir` naming `target` (not `.`/`..`).
    fn remove_entries_to(&mut self, dir: u32, target: u32) -> Res<()> {
        let Some(info) = self.dirs.get(&dir).copied() else {
            return Ok(());
        };
        let blocks = self.dir_blocks(dir);
        for db in blocks {
            let mut blk = self.dev.read_new(db.block)?;
            let offs: Vec<usize> = iter_verified_dir_block(&blk, &self.geo)
                .map_while(|e| e.ok())
                .filter(|e| e.ino == target && e.name != b"." && e.name != b"..")
                .map(|e| e.offset)
                .collect();
            if offs.is_empty() {
                continue;
            }
            for off in offs.into_iter().rev() {
                remove_entry(&mut blk, off).map_err(|e| Stop::Error(e.msg().into()))?;
                if let Some(r) = self.refs.get_mut(target as usize) {
                    *r = r.saturating_sub(1);
                }
            }
            set_dir_block_checksum(&mut blk, self.seed, dir, info.generation);
            self.dev.write(db.block, &blk)?;
        }
        Ok(())
    }

    /// Points `..` of `dir` at `parent`.
    fn fix_dotdot(&mut self, dir: u32, parent: u32) -> Res<bool> {
        let Some(info) = self.dirs.get(&dir).copied() else {
            return Ok(false);
        };
        let Some(db) = self.dir_blocks(dir).into_iter().find(|d| d.lblk == 0) else {
            return Ok(false);
        };
        let mut blk = self.dev.read_new(db.block)?;
        let off = iter_verified_dir_block(&blk, &self.geo)
            .map_while(|e| e.ok())
            .nth(1)
            .filter(|e| e.name == b"..")
            .map(|e| e.offset);
        let Some(off) = off else {
            return Ok(false);
        };
        set_entry_inode(&mut blk, off, parent, FT_DIR).map_err(|e| Stop::Error(e.msg().into()))?;
        set_dir_block_checksum(&mut blk, self.seed, dir, info.generation);
        self.dev.write(db.block, &blk)?;
        self.set_dotdot(dir, parent);
        Ok(true)
    }

    // ----- pass 4 -----

    fn pass4(&mut self) -> Res<()> {
        let count = self.geo.inodes_count();
        for ino in 1..=count {
            if ino % 4096 == 0 {
                check_cancel()?;
                self.ui.progress(4, u64::from(ino), u64::from(count));
            }
            let t = self.ftype_of(ino);
            if t == 0 || t == TYPE_BAD {
                continue;
            }
            let mut raw = self.read_inode(ino)?;
            let links = Inode::from_slot(&raw).map_or(0, |i| i.links_count.get());
            let mut counted = self.refs.get(ino as usize).copied().unwrap_or(0);
            if counted == 0 && t != FT_DIR {
                if links == 0 {
                    let msg = format!(
                        "Inode {ino} has no links and no directory entry (a deleted file still \
                         allocated); release it"
                    );
                    if self.ui.problem(&msg, true)? {
                        self.release_inode(ino)?;
                    }
                    continue;
                }
                let msg = format!(
                    "Unattached inode {ino} ({}); connect it to /lost+found",
                    type_name(t)
                );
                if self.ui.problem(&msg, false)? {
                    match self.lost_found {
                        Some(lf) => {
                            if self.add_entry(lf, format!("#{ino}").as_bytes(), ino, t)? {
                                counted = 1;
                                self.add_ref(ino);
                            }
                        }
                        None => self
                            .ui
                            .unfixable(&format!("No /lost+found to reconnect inode {ino}")),
                    }
                }
                if counted == 0 {
                    continue;
                }
                raw = self.read_inode(ino)?;
            }
            if links != counted {
                let msg = format!("Inode {ino} ref count is {links}, should be {counted}");
                if self.ui.problem(&msg, false)? {
                    Inode::from_slot_mut(&mut raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?
                        .links_count
                        .set(counted);
                    set_inode_checksum(self.seed, ino, &mut raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?;
                    self.write_inode(ino, &raw)?;
                }
            }
        }
        let orphan = self.sb().last_orphan.get();
        if orphan != 0 {
            let msg =
                format!("Superblock orphan list is not empty (head inode {orphan}); clear it");
            if self.ui.problem(&msg, true)? {
                self.sb_mut().last_orphan.set(0);
            }
        }
        Ok(())
    }

    // ----- pass 5 -----

    /// Compares bitmaps, descriptors and the superblock's free counts with what passes
    /// 1-4 found; returns the free blocks and inodes.
    fn pass5(&mut self) -> Res<(u64, u64)> {
        let groups = self.geo.group_count();
        let mut free_blocks = 0u64;
        let mut free_inodes = 0u64;
        let mut dirs_per_group = vec![0u32; groups as usize];
        for &d in self.dirs.keys() {
            if let Ok((g, _)) = self.geo.inode_group(d) {
                dirs_per_group[g as usize] += 1;
            }
        }
        let mut gdt: Vec<Box<Block>> = Vec::new();
        for k in 0..u64::from(self.geo.gdt_blocks()) {
            gdt.push(self.dev.read_new(self.geo.gdt_start() + k)?);
        }
        let mut gdt_dirty = vec![false; gdt.len()];
        for g in 0..groups {
            check_cancel()?;
            self.ui.progress(5, u64::from(g), u64::from(groups));
            let r = g as usize * BLOCK_SIZE..(g as usize + 1) * BLOCK_SIZE;
            let want_b: Box<Block> = Box::new(self.seen[r.clone()].try_into().unwrap());
            let want_i: Box<Block> = Box::new(self.iused[r].try_into().unwrap());
            let base_b = self.geo.first_group_block() + u64::from(g) * u64::from(BLOCKS_PER_GROUP);
            let base_i = u64::from(g) * u64::from(self.geo.inodes_per_group()) + 1;
            let bb = self.geo.block_bitmap_block(g).unwrap_or(0);
            let ib = self.geo.inode_bitmap_block(g).unwrap_or(0);
            let ipg = self.geo.inodes_per_group();
            let glen = self.geo.group_len(g).unwrap_or(0) as u32;
            self.compare_bitmap(bb, &want_b, "Block", base_b, glen)?;
            self.compare_bitmap(ib, &want_i, "Inode", base_i, ipg)?;

            let fb = zero_bits(&want_b);
            let fi = zero_bits(&want_i);
            free_blocks += u64::from(fb);
            free_inodes += u64::from(fi);
            let mut want = self
                .geo
                .new_group_desc(g)
                .ok_or_else(|| Stop::Error(format!("group {g} out of range")))?;
            want.free_blocks.set(fb);
            want.free_inodes.set(fi);
            want.used_dirs.set(dirs_per_group[g as usize]);
            want.set_block_bitmap_checksum(self.seed, g, &want_b);
            want.set_inode_bitmap_checksum(self.seed, g, &want_i);
            want.update_checksum(self.seed, g);

            let (gb, _) = self.geo.group_desc_location(g).unwrap_or((1, 0));
            let k = (gb - self.geo.gdt_start()) as usize;
            let cur = GroupDesc::in_block(&gdt[k], g % 64);
            let mut msgs: Vec<(String, bool)> = Vec::new();
            if cur.block_bitmap.get() != want.block_bitmap.get()
                || cur.inode_bitmap.get() != want.inode_bitmap.get()
                || cur.inode_table.get() != want.inode_table.get()
            {
                msgs.push((
                    format!("Group descriptor {g} has a wrong bitmap or inode table location"),
                    false,
                ));
            }
            for (what, c, w) in [
                ("Free blocks", cur.free_blocks.get(), fb),
                ("Free inodes", cur.free_inodes.get(), fi),
                (
                    "Directories",
                    cur.used_dirs.get(),
                    dirs_per_group[g as usize],
                ),
            ] {
                if c != w {
                    msgs.push((
                        format!("{what} count wrong for group #{g} ({c}, counted={w})"),
                        true,
                    ));
                }
            }
            if cur.flags.get() != 0 || cur.reserved != [0u8; 12] {
                msgs.push((
                    format!("Group descriptor {g} has non-zero reserved fields"),
                    true,
                ));
            }
            if cur.block_bitmap_checksum.get() != want.block_bitmap_checksum.get() {
                msgs.push((format!("Block bitmap checksum of group {g} is wrong"), true));
            }
            if cur.inode_bitmap_checksum.get() != want.inode_bitmap_checksum.get() {
                msgs.push((format!("Inode bitmap checksum of group {g} is wrong"), true));
            }
            if msgs.is_empty() && cur.as_bytes() != want.as_bytes() {
                msgs.push((
                    format!("Group descriptor {g} checksum does not match"),
                    true,
                ));
            }
            let mut fix = false;
            for (m, safe) in msgs {
                if self.ui.problem(&m, safe)? {
                    fix = true;
                }
            }
            if fix {
                *GroupDesc::in_block_mut(&mut gdt[k], g % 64) = want;
                gdt_dirty[k] = true;
            }
        }
        let slots = u64::from(self.geo.gdt_blocks()) * 64;
        for g in u64::from(groups)..slots {
            let k = (g / 64) as usize;
            let at = (g % 64) as usize * 64;
            if gdt[k][at..at + 64].iter().any(|&b| b != 0)
                && self.ui.problem(
                    &format!("Unused group descriptor slot {g} is not zero"),
                    true,
                )?
            {
                gdt[k][at..at + 64].fill(0);
                gdt_dirty[k] = true;
            }
        }
        for (k, blk) in gdt.iter().enumerate() {
            if gdt_dirty[k] {
                self.dev.write(self.geo.gdt_start() + k as u64, blk)?;
            }
        }
        let (sb_fb, sb_fi) = (self.sb().free_blocks.get(), self.sb().free_inodes.get());
        if sb_fb != free_blocks {
            let msg = format!("Free blocks count wrong ({sb_fb}, counted={free_blocks})");
            if self.ui.problem(&msg, true)? {
                self.sb_mut().free_blocks.set(free_blocks);
            }
        }
        if u64::from(sb_fi) != free_inodes {
            let msg = format!("Free inodes count wrong ({sb_fi}, counted={free_inodes})");
            if self.ui.problem(&msg, true)? {
                self.sb_mut().free_inodes.set(free_inodes as u32);
            }
        }
        Ok((free_blocks, free_inodes))
    }

    /// Reports and rewrites an on-disk bitmap that differs from the expected one.
    fn compare_bitmap(
        &mut self,
        block: u64,
        want: &Block,
        what: &str,
        base: u64,
        bits: u32,
    ) -> Res<()> {
        let have = self.dev.read_new(block)?;
        if *have == *want {
            return Ok(());
        }
        let mut diffs = Vec::new();
        let mut n = 0u64;
        for i in 0..bits {
            let (h, w) = (bitmap_test(&have[..], i), bitmap_test(want, i));
            if h != w {
                n += 1;
                if diffs.len() < 8 {
                    diffs.push(format!(
                        "{}{}",
                        if w { '+' } else { '-' },
                        base + u64::from(i)
                    ));
                }
            }
        }
        let more = if n > diffs.len() as u64 {
            format!(" and {} more", n - diffs.len() as u64)
        } else {
            String::new()
        };
        let list = if diffs.is_empty() {
            "in bits past the end of the group".to_string()
        } else {
            diffs.join(" ")
        };
        let msg = format!("{what} bitmap differences: {list}{more}");
        if self.ui.problem(&msg, true)? {
            self.dev.write(block, want)?;
        }
        Ok(())
    }

    /// Writes the superblock when repairing: fixed fields, free counts, and the state
    /// (CLEAN, ERRORS cleared) when nothing is left to fix.
    fn finish_superblock(&mut self) -> Res<()> {
        if !self.fixing() {
            if self.sb().has_errors() {
                self.ui
                    .info("Note: the superblock records that errors were detected earlier");
            }
            return Ok(());
        }
        if self.sb().has_errors() && self.ui.left == 0 {
            self.ui.problem(
                "Superblock records errors (state ERRORS); clear it after this full check",
                true,
            )?;
        }
        let clean = self.ui.left == 0;
        let now = self.now;
        let sb = self.sb_mut();
        let state = sb.state.get() & STATE_ALL;
        // As e2fsck: only a filesystem left without errors counts as checked.
        if clean {
            sb.state.set((state | STATE_CLEAN) & !STATE_ERRORS);
            sb.check_time.set(now);
            sb.mount_count.set(0);
        } else {
            sb.state.set((state & !STATE_CLEAN) | STATE_ERRORS);
        }
        sb.update_checksum();
        let blk = self.block0.clone();
        self.dev.write(0, &blk)?;
        self.dev.sync()?;
        Ok(())
    }
}

fn zero_bits(bm: &Block) -> u32 {
    bm.iter().map(|b| b.count_zeros()).sum()
}

/// Reads block 0 and validates the superblock, mending (in memory, and on disk when the
/// fix is accepted and written at the end) what can be mended field by field. Anything
/// else means the filesystem cannot be checked.
fn load_superblock(dev: &Device, ui: &mut Ui) -> Res<(Box<Block>, Geometry)> {
    let mut block0 = dev.read_new(0)?;
    for _ in 0..16 {
        let sb = SuperBlock::in_block_mut(&mut block0);
        let err = match sb.validate(dev.blocks) {
            Ok(geo) => {
                if sb.reserved.iter().any(|&b| b != 0)
                    && ui.problem("Superblock reserved bytes are not zero", true)?
                {
                    sb.reserved.fill(0);
                    sb.update_checksum();
                }
                return Ok((block0, geo));
            }
            Err(e) => e,
        };
        if err == FormatError::SuperBlockChecksum {
            mend_seed(dev, ui, sb)?;
            ui.problem("Superblock checksum does not match", true)?;
            sb.update_checksum();
            continue;
        }
        let (msg, safe): (String, bool) = match err {
            FormatError::BadFreeCounts => {
                // Pass 5 recounts and reports both.
                sb.free_blocks.set(0);
                sb.free_inodes.set(0);
                sb.update_checksum();
                continue;
            }
            FormatError::BadState => (
                format!(
                    "Superblock state has unknown bits 0x{:x}",
                    sb.state.get() & !STATE_ALL
                ),
                true,
            ),
            FormatError::BadErrorsBehavior => (
                format!(
                    "Superblock errors behavior {} is invalid; set it to 1 (continue)",
                    sb.errors_behavior.get()
                ),
                true,
            ),
            FormatError::BadLabel => ("Superblock label is malformed; clear it".into(), false),
            FormatError::BadOrphan => (
                format!(
                    "Superblock orphan list head {} is invalid; clear it",
                    sb.last_orphan.get()
                ),
                true,
            ),
            FormatError::BadReservedInodes => (
                "Superblock reserved inode numbers are wrong; set them to 2, 11, 11".into(),
                false,
            ),
            e => {
                return Err(Stop::Error(format!(
                    "superblock is unusable: {}; cannot check this filesystem",
                    e.msg()
                )))
            }
        };
        // Mended in memory either way so a read-only check can go on; a repair writes the
        // superblock at the end.
        ui.problem(&msg, safe)?;
        match err {
            FormatError::BadState => sb.state.set(sb.state.get() & STATE_ALL),
            FormatError::BadErrorsBehavior => sb.errors_behavior.set(1),
            FormatError::BadLabel => sb.label = [0; 64],
            FormatError::BadOrphan => sb.last_orphan.set(0),
            FormatError::BadReservedInodes => {
                sb.root_ino.set(ROOT_INO);
                sb.first_ino.set(FIRST_INO);
                sb.lost_found_ino.set(LOST_FOUND_INO);
            }
            _ => {}
        }
        sb.update_checksum();
    }
    Err(Stop::Error(
        "superblock is unusable; cannot check this filesystem".into(),
    ))
}

/// Before a superblock's checksum is recomputed, makes sure its `checksum_seed` is the one
/// the rest of the filesystem was written with (group 0's descriptor tells): a damaged
/// seed must not be sealed in, or every other checksum would look wrong. The seed may
/// legitimately differ from the UUID's (it survives UUID changes), so the UUID's is only
/// a fallback.
fn mend_seed(dev: &Device, ui: &mut Ui, sb: &mut SuperBlock) -> Res<()> {
    let gdt = dev.read_new(1)?;
    let d = GroupDesc::in_block(&gdt, 0);
    if d.verify_checksum(sb.checksum_seed.get(), 0).is_ok() {
        return Ok(());
    }
    let from_uuid = checksum_seed(&sb.uuid);
    if d.verify_checksum(from_uuid, 0).is_err() {
        return Err(Stop::Error(
            "superblock checksum does not match, and neither its checksum seed nor its UUID's \
             matches group 0's descriptor; cannot check this filesystem"
                .into(),
        ));
    }
    ui.problem(
        &format!(
            "Superblock checksum seed 0x{:08x} is wrong; use the UUID's, 0x{from_uuid:08x}",
            sb.checksum_seed.get()
        ),
        true,
    )?;
    sb.checksum_seed.set(from_uuid);
    Ok(())
}
