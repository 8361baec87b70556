//! Hash-indexed directories (docs/format.md, "Indexed directories"): the `INDEX` flag
//! (pass 1), the check of each index tree before pass 2 reads the directory blocks, the
//! repair of a bad index (the directory is made linear, which keeps every entry), and
//! adding an entry to an indexed directory (passes 3 and 4).
//!
//! A directory whose index is valid keeps `DirInfo::indexed`, and its index blocks are in
//! `Checker::index_blocks`, which pass 2 and every directory edit leave alone: they are
//! not directory blocks.

use crate::format_ext::file_type_name;
use aegisfs_format::checksum::{dir_index_checksum, set_inode_checksum};
use aegisfs_format::dir::{
    add_entry, init_dir_block, iter_dir_block, iter_verified_dir_block, set_dir_block_checksum,
    validate_dir_block,
};
use aegisfs_format::dirindex::{
    name_hash, set_index_checksum, IndexBlock, HASH_LIMIT, INDEX_MAGIC, INDEX_MAX_LEVEL,
    INDEX_ROOT_BLOCK, MIN_INDEXED_BLOCKS,
};
use aegisfs_format::disk::{Inode, DIR_INDEX_CHECKSUM_OFFSET, FT_DIR, INODE_FLAG_INDEX};

use super::Checker;
use crate::fsck::dev::Block;
use crate::fsck::ui::{check_cancel, Res, Stop};

/// Why an indexed directory is invalid on a filesystem without `DIR_INDEX`.
const NO_FEATURE: &str =
    "the INDEX flag is set, but the filesystem does not have the DIR_INDEX feature";

/// An index block still to check: where it is and the range its parent gave it.
struct Node {
    lblk: u64,
    /// The level its parent expects; `None` for the root.
    level: Option<u8>,
    lo: u64,
    hi: u64,
}

impl<'u, 'o> Checker<'u, 'o> {
    /// Pass 1: `INDEX` is allowed on directories only. Returns whether `raw` changed.
    pub(super) fn check_index_flag(&mut self, ino: u32, ft: u8, raw: &mut [u8]) -> Res<bool> {
        let inode = Inode::from_slot(raw).map_err(|e| Stop::Error(e.msg().into()))?;
        let flags = inode.flags.get();
        if ft == FT_DIR || flags & INODE_FLAG_INDEX == 0 {
            return Ok(false);
        }
        let msg = format!(
            "Inode {ino} ({}) has the INDEX flag, which only directories may have; clear it",
            file_type_name(ft)
        );
        if !self.ui.problem(&msg, false)? {
            return Ok(false);
        }
        Inode::from_slot_mut(raw)
            .map_err(|e| Stop::Error(e.msg().into()))?
            .flags
            .set(flags & !INODE_FLAG_INDEX);
        Ok(true)
    }

    /// Before pass 2: checks the index of every directory with `INDEX`. A valid one's index
    /// blocks are recorded so that pass 2 skips them; an invalid one is made linear.
    pub(super) fn check_indexes(&mut self) -> Res<()> {
        let indexed: Vec<u32> = self
            .dirs
            .iter()
            .filter(|(_, i)| i.indexed)
            .map(|(&d, _)| d)
            .collect();
        for dir in indexed {
            check_cancel()?;
            self.check_index(dir)?;
        }
        Ok(())
    }

    fn check_index(&mut self, dir: u32) -> Res<()> {
        let Some(generation) = self.dirs.get(&dir).map(|i| i.generation) else {
            return Ok(());
        };
        let blocks = self.dir_block_numbers(dir);
        let verdict = match self.geo.dir_hash_key().copied() {
            Some(key) => self.index_tree(dir, generation, &blocks, &key)?,
            None => Err(NO_FEATURE.to_string()),
        };
        match verdict {
            Ok(index) => {
                self.index_blocks
                    .extend(index.into_iter().map(|l| (dir, l)));
                Ok(())
            }
            Err(why) => {
                let msg = format!(
                    "Directory inode {dir}: invalid index ({why}); make the directory linear"
                );
                if self.ui.problem(&msg, false)? {
                    return self.make_linear(dir);
                }
                // Left as it is: pass 2 still reads every block that may hold entries (so
                // their inodes are counted), not those that look like index blocks.
                if let Some(i) = self.dirs.get_mut(&dir) {
                    i.indexed = false;
                }
                for (lblk, &b) in blocks.iter().enumerate() {
                    let blk = self.dev.read_new(b)?;
                    if self.looks_like_index(&blk, lblk as u64, dir, generation) {
                        self.index_blocks.insert((dir, lblk as u64));
                    }
                }
                Ok(())
            }
        }
    }

    /// The device blocks of directory `dir` by logical block, as far as they run without
    /// a gap (pass 1 truncates a directory at its first hole).
    fn dir_block_numbers(&self, dir: u32) -> Vec<u64> {
        let mut list = self.dir_blocks(dir);
        list.sort_by_key(|d| d.lblk);
        list.iter()
            .enumerate()
            .take_while(|&(k, d)| d.lblk == k as u64)
            .map(|(_, d)| d.block)
            .collect()
    }

    /// Checks the index tree of directory `dir` (its device blocks by logical block in
    /// `blocks`) as docs/format.md "Validation" says. Returns its index blocks (logical),
    /// or why it is invalid.
    fn index_tree(
        &self,
        dir: u32,
        generation: u32,
        blocks: &[u64],
        key: &[u8; 16],
    ) -> Res<Result<Vec<u64>, String>> {
        let n = blocks.len() as u64;
        if n < MIN_INDEXED_BLOCKS {
            return Ok(Err(format!(
                "{n} blocks, fewer than the {MIN_INDEXED_BLOCKS} of an indexed directory"
            )));
        }
        let mut referenced = vec![false; blocks.len()];
        let mut index = Vec::new();
        let mut todo = vec![Node {
            lblk: INDEX_ROOT_BLOCK,
            level: None,
            lo: 0,
            hi: HASH_LIMIT,
        }];
        // Each block is visited once (a second reference is an error), so this ends.
        while let Some(node) = todo.pop() {
            let lblk = node.lblk;
            let Some(&phys) = blocks.get(lblk as usize) else {
                return Ok(Err(format!("index block {lblk} is not mapped")));
            };
            let blk = self.dev.read_new(phys)?;
            let ib = match IndexBlock::validate(&blk, self.seed, dir, generation, n) {
                Ok(ib) => ib,
                Err(e) => return Ok(Err(format!("index block {lblk}: {}", e.msg()))),
            };
            let level = ib.level();
            if let Some(want) = node.level.filter(|&w| w != level) {
                return Ok(Err(format!(
                    "index block {lblk} has level {level}, its parent's level needs {want}"
                )));
            }
            let entries: Vec<_> = (0..ib.count())
                .filter_map(|i| Some((ib.entry(i)?, ib.range_end(i, node.hi))))
                .collect();
            let (Some((first, _)), Some((last, _))) = (entries.first(), entries.last()) else {
                return Ok(Err(format!("index block {lblk} has no entries")));
            };
            if first.hash != node.lo {
                return Ok(Err(format!(
                    "index block {lblk} starts at hash {:#x}, not at {:#x}",
                    first.hash, node.lo
                )));
            }
            if last.hash >= node.hi {
                return Ok(Err(format!(
                    "index block {lblk} has hash {:#x}, past the end of its range {:#x}",
                    last.hash, node.hi
                )));
            }
            index.push(lblk);
            for (e, end) in entries {
                let child = u64::from(e.block);
                match referenced.get_mut(child as usize) {
                    Some(seen) if !*seen => *seen = true,
                    Some(_) => return Ok(Err(format!("block {child} is referenced twice"))),
                    None => return Ok(Err(format!("block {child} is past the end"))),
                }
                if level > 0 {
                    todo.push(Node {
                        lblk: child,
                        level: Some(level - 1),
                        lo: e.hash,
                        hi: end,
                    });
                } else if let Some(why) =
                    self.leaf_fault(dir, generation, blocks, child, (e.hash, end), key)?
                {
                    return Ok(Err(why));
                }
            }
        }
        if let Some(k) = (2..blocks.len()).find(|&k| !referenced[k]) {
            return Ok(Err(format!("block {k} is not referenced by the index")));
        }
        Ok(Ok(index))
    }

    /// What is wrong with leaf `lblk` covering hashes `range`: it must be a valid directory
    /// block without `.` or `..` whose names all hash into the range.
    fn leaf_fault(
        &self,
        dir: u32,
        generation: u32,
        blocks: &[u64],
        lblk: u64,
        (lo, hi): (u64, u64),
        key: &[u8; 16],
    ) -> Res<Option<String>> {
        let Some(&phys) = blocks.get(lblk as usize) else {
            return Ok(Some(format!("leaf block {lblk} is not mapped")));
        };
        let blk = self.dev.read_new(phys)?;
        let bad = |e: aegisfs_format::error::FormatError| {
            Some(format!(
                "leaf block {lblk} is not a valid directory block ({})",
                e.msg()
            ))
        };
        let records = match iter_dir_block(&blk, &self.geo, dir, generation) {
            Ok(r) => r,
            Err(e) => return Ok(bad(e)),
        };
        for e in records {
            let e = match e {
                Ok(e) => e,
                Err(e) => return Ok(bad(e)),
            };
            if !e.is_used() {
                continue;
            }
            let shown = String::from_utf8_lossy(e.name);
            if e.name == b"." || e.name == b".." {
                return Ok(Some(format!("leaf block {lblk} holds '{shown}'")));
            }
            if !(lo..hi).contains(&name_hash(key, e.name)) {
                return Ok(Some(format!(
                    "entry '{shown}' in leaf block {lblk} is outside the leaf's hash range"
                )));
            }
        }
        Ok(None)
    }

    /// Whether block `lblk` of a directory whose index is being given up holds index data
    /// rather than entries: it is not a valid directory block, and it has the index magic
    /// or an index block's checksum, or it is block 1 (the root's place) and its records do
    /// not parse (a directory block whose tail or checksum alone is damaged keeps its
    /// entries).
    fn looks_like_index(&self, blk: &Block, lblk: u64, dir: u32, generation: u32) -> bool {
        if lblk == 0 || validate_dir_block(blk, &self.geo, dir, generation).is_ok() {
            return false;
        }
        let stored = blk
            .get(DIR_INDEX_CHECKSUM_OFFSET..)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes);
        if blk.starts_with(&INDEX_MAGIC)
            || stored == Some(dir_index_checksum(self.seed, dir, generation, blk))
        {
            return true;
        }
        lblk == INDEX_ROOT_BLOCK && iter_verified_dir_block(blk, &self.geo).any(|e| e.is_err())
    }

    /// Makes directory `dir` linear: each of its index blocks becomes an empty directory
    /// block and `INDEX` is cleared. Leaves and the first block are kept as they are, so
    /// every entry stays; pass 2 then checks every block as a directory block.
    pub(super) fn make_linear(&mut self, dir: u32) -> Res<()> {
        let Some(generation) = self.dirs.get(&dir).map(|i| i.generation) else {
            return Ok(());
        };
        let blocks = self.dir_block_numbers(dir);
        for (lblk, &b) in blocks.iter().enumerate() {
            let lblk = lblk as u64;
            let mut blk = self.dev.read_new(b)?;
            if self.index_blocks.contains(&(dir, lblk))
                || self.looks_like_index(&blk, lblk, dir, generation)
            {
                init_dir_block(&mut blk);
                set_dir_block_checksum(&mut blk, self.seed, dir, generation);
                self.dev.write(b, &blk)?;
            }
        }
        self.index_blocks.retain(|&(d, _)| d != dir);
        let mut raw = self.read_inode(dir)?;
        let inode = Inode::from_slot_mut(&mut raw).map_err(|e| Stop::Error(e.msg().into()))?;
        inode.flags.set(inode.flags.get() & !INODE_FLAG_INDEX);
        set_inode_checksum(self.seed, dir, &mut raw).map_err(|e| Stop::Error(e.msg().into()))?;
        self.write_inode(dir, &raw)?;
        if let Some(i) = self.dirs.get_mut(&dir) {
            i.indexed = false;
        }
        Ok(())
    }

    /// Adds an entry to indexed directory `dir` where the index will find it: its first
    /// block if that has room, else the leaf of the name's hash. When neither has room
    /// the directory is made linear and false returned, for the caller to add the entry
    /// as to any linear directory.
    pub(super) fn add_indexed_entry(
        &mut self,
        dir: u32,
        generation: u32,
        name: &[u8],
        ino: u32,
        ft: u8,
    ) -> Res<bool> {
        let blocks = self.dir_block_numbers(dir);
        let leaf = match self.geo.dir_hash_key().copied() {
            Some(key) => self.leaf_for(dir, generation, &blocks, name_hash(&key, name))?,
            None => None,
        };
        for lblk in [Some(0), leaf].into_iter().flatten() {
            let Some(&b) = blocks.get(lblk as usize) else {
                continue;
            };
            let mut blk = self.dev.read_new(b)?;
            if let Ok(Some(_)) = add_entry(&mut blk, ino, name, ft) {
                set_dir_block_checksum(&mut blk, self.seed, dir, generation);
                self.dev.write(b, &blk)?;
                return Ok(true);
            }
        }
        let shown = String::from_utf8_lossy(name);
        let place = leaf.map_or(String::new(), |l| format!(" or in its leaf block {l}"));
        self.ui.info(&format!(
            "Directory inode {dir}: no room for '{shown}' in its first block{place}; directory \
             made linear"
        ));
        self.make_linear(dir)?;
        Ok(false)
    }

    /// The leaf of directory `dir` whose range holds `hash`, following its index from the
    /// root (checked again on the way); `None` if the index cannot be followed.
    fn leaf_for(&self, dir: u32, generation: u32, blocks: &[u64], hash: u64) -> Res<Option<u64>> {
        let mut lblk = INDEX_ROOT_BLOCK;
        // The root is at most at level INDEX_MAX_LEVEL, and each step goes one down.
        for _ in 0..=INDEX_MAX_LEVEL {
            let Some(&b) = blocks.get(lblk as usize) else {
                return Ok(None);
            };
            let blk = self.dev.read_new(b)?;
            let n = blocks.len() as u64;
            let Ok(ib) = IndexBlock::validate(&blk, self.seed, dir, generation, n) else {
                return Ok(None);
            };
            let Some(e) = ib.entry(ib.child_for(hash)) else {
                return Ok(None);
            };
            if ib.level() == 0 {
                return Ok(Some(u64::from(e.block)));
            }
            lblk = u64::from(e.block);
        }
        Ok(None)
    }

    /// Seals a copy of a block of directory `dir` made by pass 1B: an index block gets an
    /// index block's checksum, anything else a directory block's.
    pub(super) fn seal_dir_block_copy(
        &self,
        blk: &mut Block,
        dir: u32,
        generation: u32,
        lblk: u64,
    ) {
        let indexed = self.dirs.get(&dir).is_some_and(|i| i.indexed);
        if indexed && lblk > 0 && blk.starts_with(&INDEX_MAGIC) {
            set_index_checksum(blk, self.seed, dir, generation);
        } else {
            set_dir_block_checksum(blk, self.seed, dir, generation);
        }
    }
}
