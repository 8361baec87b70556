//! Pass 2: directory blocks and their entries.

use crate::format_ext::file_type_name;
use std::collections::HashSet;

use aegisfs_format::dir::{
    check_tail, init_dir_block, iter_verified_dir_block, remove_entry, set_dir_block_checksum,
    set_entry_inode, verify_dir_block_checksum, DirBlockBuilder,
};
use aegisfs_format::disk::{DIR_TAIL_OFFSET, FT_DIR, ROOT_INO};
use aegisfs_format::error::FormatError;

use super::{Checker, DirBlock, TYPE_BAD};
use crate::fsck::dev::{zero_block, Block};
use crate::fsck::ui::{check_cancel, Res, Stop};

impl<'u, 'o> Checker<'u, 'o> {
    pub(super) fn pass2(&mut self) -> Res<()> {
        self.dblist.sort_by_key(|d| (d.ino, d.lblk));
        self.sorted_len = self.dblist.len();
        self.check_indexes()?;
        let n = self.dblist.len();
        for k in 0..n {
            check_cancel()?;
            self.ui.progress(2, k as u64, n as u64);
            let db = self.dblist[k];
            if !self.index_blocks.contains(&(db.ino, db.lblk)) {
                self.check_dir_block(db)?;
            }
        }
        Ok(())
    }

    fn check_dir_block(&mut self, db: DirBlock) -> Res<()> {
        let dir = db.ino;
        let Some(info) = self.dirs.get(&dir).copied() else {
            return Ok(());
        };
        let mut blk = self.dev.read_new(db.block)?;
        self.restart_if_skipped_live(dir, &blk)?;
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

    /// Before any question about a block of directory `dir`: if a record (however damaged
    /// its name or type) names a live inode in a table block pass 1 skipped, the check
    /// restarts, so that the inode is checked and counted as a full read would have.
    fn restart_if_skipped_live(&mut self, dir: u32, blk: &Block) -> Res<()> {
        if self.skipped.is_empty() {
            return Ok(());
        }
        let mut pos = 0;
        while pos + 8 <= DIR_TAIL_OFFSET {
            let ino = rd_u32(&blk[..], pos);
            let rec_len = usize::from(rd_u16(&blk[..], pos + 4));
            if rec_len < 8 || rec_len % 4 != 0 || pos + rec_len > DIR_TAIL_OFFSET {
                break;
            }
            if ino != 0 && self.skipped_but_live(ino)? {
                self.ui.info(&format!(
                    "Directory inode {dir} names inode {ino}, a live inode in an inode table \
                     block skipped as free; restarting from pass 1, reading every inode table \
                     block"
                ));
                return Err(Stop::Restart);
            }
            pos += rec_len;
        }
        Ok(())
    }

    pub(super) fn set_dotdot(&mut self, dir: u32, to: u32) {
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
                file_type_name(ft),
                file_type_name(t)
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
}

fn rd_u16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn rd_u32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
