//! Pass 3: directory connectivity (every directory reachable from the root), and the
//! directory edits it and pass 4 use (lost+found, entries, `..`).

use aegisfs_format::checksum::set_inode_checksum;
use aegisfs_format::dir::{
    iter_verified_dir_block, remove_entry, set_dir_block_checksum, set_entry_inode, DirBlockBuilder,
};
use aegisfs_format::disk::{
    Inode, BLOCK_SIZE_U64, FT_DIR, LOST_FOUND_INO, N_DIRECT, ROOT_INO, S_IFDIR,
};
use aegisfs_format::inode::TimeField;

use super::{Checker, DirBlock, DirInfo};
use crate::fsck::dev::zero_block;
use crate::fsck::ui::{check_cancel, Res, Stop};

impl<'u, 'o> Checker<'u, 'o> {
    pub(super) fn pass3(&mut self) -> Res<()> {
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
                // Its names go with it: the new directory gets just its entry in the root.
                let dirs: Vec<u32> = self.dirs.keys().copied().collect();
                for dir in dirs {
                    if self.refs.get(lf as usize).is_none_or(|&r| r == 0) {
                        break;
                    }
                    self.remove_entries_to(dir, lf)?;
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
                indexed: false,
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
    pub(super) fn release_inode(&mut self, ino: u32) -> Res<()> {
        let mut raw = self.read_inode(ino)?;
        let (generation, is_dir) = Inode::from_slot(&raw)
            .map(|i| (i.generation.get(), i.is_dir()))
            .unwrap_or((0, false));
        self.release_walked(ino, generation, is_dir, &mut raw)?;
        self.write_inode(ino, &raw)
    }

    /// Adds an entry to directory `dir`, growing it by a block when every block is full
    /// (up to its direct blocks). Returns false when there is no room. An indexed directory
    /// takes it where its index finds it, or is made linear first.
    pub(super) fn add_entry(&mut self, dir: u32, name: &[u8], ino: u32, ft: u8) -> Res<bool> {
        let Some(info) = self.dirs.get(&dir).copied() else {
            return Ok(false);
        };
        if info.indexed && self.add_indexed_entry(dir, info.generation, name, ino, ft)? {
            return Ok(true);
        }
        let blocks = self.dir_blocks(dir);
        for db in &blocks {
            if self.index_blocks.contains(&(dir, db.lblk)) {
                continue;
            }
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
            if self.index_blocks.contains(&(dir, db.lblk)) {
                continue;
            }
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
}
