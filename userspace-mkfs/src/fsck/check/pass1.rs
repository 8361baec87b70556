//! Pass 1: every inode and its block map (fields, checksums, claimed blocks, sizes).

use crate::format_ext::file_type_name;
use aegisfs_format::blockmap::{BlockPtr, DIND_START, IND_START, TIND_START};
use aegisfs_format::checksum::{set_inode_checksum, verify_inode_checksum};
use aegisfs_format::disk::{
    bitmap_test, GroupDesc, IndirectBlock, Inode, BLOCK_SIZE, BLOCK_SIZE_U64, FIRST_INO, FT_DIR,
    INLINE_DATA_MAX, INODE_BASE_SIZE, INODE_FLAGS_ALL, INODE_FLAG_INDEX, INODE_FLAG_INLINE_DATA,
    MAX_FILE_SIZE, NSEC_PER_SEC, N_DIRECT, PTRS_PER_BLOCK, ROOT_INO, SYMLINK_MAX,
};
use aegisfs_format::disk::{FT_REG, FT_SYMLINK};
use aegisfs_format::inode::TimeField;
use aegisfs_format::xattr::{
    check_disjoint, inline_area, inline_area_mut, inline_used, validate_inline, XattrBlock,
};

use super::{
    live_in_free_slot, span, Checker, DirBlock, DirInfo, Dup, Loc, Walk, CHUNK_BLOCKS, TYPE_BAD,
    XATTR_LBLK,
};
use crate::fsck::dev::{zero_block, zero_blocks, Block};
use crate::fsck::ui::{check_cancel, Res, Stop};

impl<'u, 'o> Checker<'u, 'o> {
    /// `skip`: leave out the table blocks whose slots a trusted inode bitmap marks all
    /// free (see [`Checker::run`]).
    pub(super) fn pass1(&mut self, skip: bool) -> Res<()> {
        let groups = self.geo.group_count();
        let isz = usize::from(self.geo.inode_size());
        let per_block = self.geo.inodes_per_block();
        let ipg = self.geo.inodes_per_group();
        let table_blocks = self.geo.inode_table_blocks();
        let mut chunk = zero_blocks(CHUNK_BLOCKS.min(table_blocks) as usize);
        let mut gdt = zero_blocks(self.geo.gdt_blocks() as usize);
        if skip {
            self.dev.read_blocks(self.geo.gdt_start(), &mut gdt)?;
        }
        for g in 0..groups {
            check_cancel()?;
            self.ui.progress(1, u64::from(g), u64::from(groups));
            let ibm = self
                .dev
                .read_new(self.geo.inode_bitmap_block(g).unwrap_or(0))?;
            let trusted = skip && self.bitmap_trusted(g, &ibm, &gdt);
            let free = |tb: u64| {
                let first = tb as u32 * per_block;
                trusted && (first..(first + per_block).min(ipg)).all(|i| !bitmap_test(&ibm[..], i))
            };
            let table = self.geo.inode_table_block(g).unwrap_or(0);
            // Pass 1 writes no inode table block but the one it is checking, so a chunk read
            // ahead cannot go stale.
            let mut tb = 0;
            while tb < table_blocks {
                if free(tb) {
                    self.mark_skipped(g, tb);
                    tb += 1;
                    continue;
                }
                let mut n = 1;
                while n < CHUNK_BLOCKS && tb + n < table_blocks && !free(tb + n) {
                    n += 1;
                }
                let blocks = &mut chunk[..n as usize];
                self.dev.read_blocks(table + tb, blocks)?;
                for (j, blk) in (tb..).zip(blocks.iter_mut()) {
                    let mut dirty = false;
                    for k in 0..per_block {
                        let index = j as u32 * per_block + k;
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
                        self.dev.write(table + j, blk)?;
                    }
                }
                tb += n;
            }
        }
        Ok(())
    }

    /// Whether group `g`'s inode bitmap `ibm` may stand for its inode table, so that table
    /// blocks it marks all free need not be read: the group descriptor (in `gdt`) and the
    /// bitmap's checksum in it are right, and so are the bits the format fixes (reserved
    /// inodes, bits past `inodes_per_group`). Any doubt means reading the whole table.
    fn bitmap_trusted(&self, g: u32, ibm: &Block, gdt: &[Block]) -> bool {
        let Some(k) = self
            .geo
            .group_desc_location(g)
            .and_then(|(b, _)| b.checked_sub(self.geo.gdt_start()))
        else {
            return false;
        };
        let Some(desc) = gdt.get(k as usize).map(|b| GroupDesc::in_block(b, g % 64)) else {
            return false;
        };
        let mut fixed = zero_block();
        desc.verify_checksum(self.seed, g).is_ok()
            && desc.verify_inode_bitmap(self.seed, g, ibm).is_ok()
            && self.geo.init_inode_bitmap(g, &mut fixed).is_some()
            && ibm
                .iter()
                .zip(fixed.iter())
                .all(|(&have, &set)| have & set == set)
    }

    /// Checks one inode slot; returns whether `raw` was changed (and must be written).
    fn check_inode(&mut self, ino: u32, raw: &mut [u8], bit: bool) -> Res<bool> {
        if ino < FIRST_INO && ino != ROOT_INO {
            return Ok(false);
        }
        // A slot the bitmap calls free is in use only if it is plainly alive; free slots
        // are never written by mkfs and may hold anything.
        if !bit && !live_in_free_slot(self.seed, ino, raw) {
            return Ok(false);
        }
        let csum_ok = verify_inode_checksum(self.seed, ino, raw).is_ok();
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
        if self.check_index_flag(ino, ft, raw)? {
            changed = true;
        }
        if let Err(e) = validate_inline(raw) {
            let msg = format!(
                "Inode {ino} has a corrupt inline xattr area ({}); clear it",
                e.msg()
            );
            if self.ui.problem(&msg, false)? {
                inline_area_mut(raw).fill(0);
                Inode::from_slot_mut(raw)
                    .map_err(|e| Stop::Error(e.msg().into()))?
                    .extra_size
                    .set(0);
                changed = true;
            }
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
        w.regular = ft == FT_REG;
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
            let indexed =
                Inode::from_slot(raw).is_ok_and(|i| i.flags.get() & INODE_FLAG_INDEX != 0);
            self.dirs.insert(
                ino,
                DirInfo {
                    generation,
                    dotdot: 0,
                    parent: 0,
                    connected: false,
                    unlinked,
                    indexed,
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
                file_type_name(ft)
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
                if p == 0 {
                    continue;
                }
                if let Some(new) = self.walk_ptr(w, p, 0, d as u64, Loc::Direct(d))? {
                    Inode::from_slot_mut(raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?
                        .set_direct_ptr(d, new);
                    changed = true;
                }
            }
            for (depth, first) in [(1u8, IND_START), (2, DIND_START), (3, TIND_START)] {
                let p = Inode::from_slot(raw).map_or(0, |i| i.tree_root(depth).unwrap_or(0));
                if p == 0 {
                    continue;
                }
                if let Some(new) = self.walk_ptr(w, p, depth, first, Loc::Root(depth))? {
                    Inode::from_slot_mut(raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?
                        .set_tree_root(depth, new);
                    changed = true;
                }
            }
        }
        let x = Inode::from_slot(raw).map_or(0, |i| i.xattr_block.get());
        if x != 0 && self.walk_xattr(w, x, raw)? {
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

    /// Walks the xattr block `p` of the inode whose bytes are `raw`; returns whether the
    /// pointer must be cleared.
    fn walk_xattr(&mut self, w: &mut Walk, p: u64, raw: &[u8]) -> Res<bool> {
        let ino = w.ino;
        if !w.claim {
            if self.geo.is_data_block(p) && !w.keeps_claim(p) {
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
        // A quiet re-walk follows the first one, which asked about the block already.
        if !w.quiet {
            if let Some(problem) = self.xattr_block_problem(p, raw)? {
                let msg = format!("Inode {ino} xattr block {p} {problem}; clear it");
                if self.ui.problem(&msg, false)? {
                    return Ok(true);
                }
            }
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
                    unwritten: false,
                });
            }
        }
        Ok(false)
    }

    /// What is wrong with the contents of xattr block `p` of the inode `raw`: a rule of the
    /// block itself, or a name its (valid) inline area holds too.
    fn xattr_block_problem(&self, p: u64, raw: &[u8]) -> Res<Option<String>> {
        let blk = self.dev.read_new(p)?;
        let x = XattrBlock::from_block(&blk);
        if let Err(e) = x.validate(self.seed, p) {
            return Ok(Some(format!("is corrupt ({})", e.msg())));
        }
        let (inline, used) = (inline_area(raw), inline_used(raw));
        if validate_inline(raw).is_ok() && check_disjoint(inline, used, &x.area, x.used()).is_err()
        {
            return Ok(Some(
                "holds a name that its inode's inline xattr area holds too".into(),
            ));
        }
        Ok(None)
    }

    /// A walk that gives back the blocks inode `ino` claimed, but not its duplicate
    /// claims.
    fn give_back_walk(&self, ino: u32, generation: u32, is_dir: bool) -> Walk {
        let mut w = Walk::new(ino, generation, is_dir, false, u64::MAX);
        for d in self.dups.iter().filter(|d| d.ino == ino) {
            *w.keep_claimed.entry(d.block).or_insert(0) += 1;
        }
        w
    }

    /// Walks pointer `p`, `level` levels above the data, mapping logical blocks from
    /// `first`. Returns the value the pointer must be replaced with (0 clears it), if any.
    fn walk_ptr(
        &mut self,
        w: &mut Walk,
        raw_p: u64,
        level: u8,
        first: u64,
        loc: Loc,
    ) -> Res<Option<u64>> {
        let ino = w.ino;
        // Blocks are accounted by number: the UNWRITTEN bit is checked below.
        let BlockPtr {
            block: p,
            unwritten,
        } = BlockPtr::decode(raw_p);
        if !w.claim {
            if !self.geo.is_data_block(p) || w.keeps_claim(p) {
                return Ok(None);
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
            return Ok(None);
        }
        if first >= w.limit {
            let msg = format!(
                "Symlink inode {ino} maps logical block {first}, past its one block; clear it"
            );
            if self.ask(w, &msg)? {
                return Ok(Some(0));
            }
        }
        let what = if level == 0 {
            "block"
        } else {
            "indirect block"
        };
        if !self.geo.is_data_block(p) {
            let msg = format!(
                "Inode {ino} has an illegal {what} pointer {raw_p} at logical block {first} \
                 ({}); clear it",
                self.bad_ptr_reason(p)
            );
            return Ok(self.ask(w, &msg)?.then_some(0));
        }
        let mut fix = None;
        // Only data pointers of regular files may be unwritten.
        let unwritten_ok = level == 0 && w.regular;
        if unwritten && !unwritten_ok {
            let msg = format!(
                "Inode {ino} {what} pointer {p} at logical block {first} has the unwritten \
                 flag, which only data blocks of regular files may have; clear the flag"
            );
            if self.ask(w, &msg)? {
                fix = Some(p);
            }
        }
        let unwritten = unwritten && unwritten_ok;
        if self.claim(p) {
            let msg = format!(
                "Inode {ino} block {p} (logical block {first}) is claimed by more than one \
                 owner; clone it"
            );
            if level == 0 {
                w.count += 1;
                w.note_data(first, p, unwritten);
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
                    unwritten,
                });
            }
            return Ok(fix);
        }
        if level == 0 {
            w.count += 1;
            w.note_data(first, p, unwritten);
            if w.is_dir {
                self.dblist.push(DirBlock {
                    ino,
                    lblk: first,
                    block: p,
                });
            }
            return Ok(fix);
        }
        let mut blk = self.dev.read_new(p)?;
        let mut dirty = false;
        let ib = IndirectBlock::from_block(&blk);
        if ib.verify_checksum(self.seed, ino, w.generation).is_err() {
            if ib.validate_ptrs(level == 1 && w.regular, &self.geo).is_ok() {
                let msg = format!("Indirect block {p} of inode {ino} has a bad checksum");
                if self.ask(w, &msg)? {
                    dirty = true;
                } else {
                    w.count += 1;
                    return Ok(fix);
                }
            } else {
                let msg = format!(
                    "Indirect block {p} of inode {ino} is corrupt (bad checksum and pointers); \
                     clear it"
                );
                if self.ask(w, &msg)? {
                    self.unclaim(p);
                    return Ok(Some(0));
                }
                w.count += 1;
                return Ok(fix);
            }
        }
        for i in 0..PTRS_PER_BLOCK {
            let c = IndirectBlock::from_block(&blk).ptr(i).unwrap_or(0);
            if c == 0 {
                continue;
            }
            let cf = first + i as u64 * span(level - 1);
            let l = Loc::Indirect { block: p, index: i };
            if let Some(new) = self.walk_ptr(w, c, level - 1, cf, l)? {
                IndirectBlock::from_block_mut(&mut blk).set_ptr(i, new);
                dirty = true;
            }
        }
        w.count += 1;
        if dirty {
            IndirectBlock::from_block_mut(&mut blk).update_checksum(self.seed, ino, w.generation);
            self.dev.write(p, &blk)?;
        }
        Ok(fix)
    }

    /// Counts (without claiming) a subtree that another owner claimed first.
    fn count_shared(&mut self, w: &mut Walk, p: u64, level: u8, first: u64) -> Res<()> {
        w.count += 1;
        let blk = self.dev.read_new(p)?;
        let ib = IndirectBlock::from_block(&blk);
        for i in 0..PTRS_PER_BLOCK {
            let BlockPtr {
                block: c,
                unwritten,
            } = BlockPtr::decode(ib.ptr(i).unwrap_or(0));
            if c == 0 || !self.geo.is_data_block(c) {
                continue;
            }
            let cf = first + i as u64 * span(level - 1);
            if level == 1 {
                w.count += 1;
                w.note_data(cf, c, unwritten && w.regular);
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
        let mut back = self.give_back_walk(ino, generation, is_dir);
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
    pub(super) fn release_walked(
        &mut self,
        ino: u32,
        generation: u32,
        is_dir: bool,
        raw: &mut [u8],
    ) -> Res<()> {
        let tree = Inode::from_slot(raw).is_ok_and(|i| !i.has_inline_data());
        let mut back = self.give_back_walk(ino, generation, is_dir);
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
}
