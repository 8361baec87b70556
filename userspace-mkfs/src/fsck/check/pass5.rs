//! Pass 5: group summary (bitmaps, descriptors, superblock free counts).

use aegisfs_format::disk::{bitmap_test, GroupDesc, BLOCKS_PER_GROUP, BLOCK_SIZE};

use super::Checker;
use crate::fsck::dev::{zero_blocks, Block};
use crate::fsck::ui::{check_cancel, Res, Stop};

impl<'u, 'o> Checker<'u, 'o> {
    /// Compares bitmaps, descriptors and the superblock's free counts with what passes
    /// 1-4 found; returns the free blocks and inodes.
    pub(super) fn pass5(&mut self) -> Res<(u64, u64)> {
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
        let mut have = zero_blocks(2);
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
            // The two bitmaps are neighbours (docs/format.md, "Layout"): one read.
            if ib == bb + 1 {
                self.dev.read_blocks(bb, &mut have)?;
            } else {
                self.dev.read(bb, &mut have[0])?;
                self.dev.read(ib, &mut have[1])?;
            }
            self.compare_bitmap(bb, &have[0], &want_b, "Block", base_b, glen)?;
            self.compare_bitmap(ib, &have[1], &want_i, "Inode", base_i, ipg)?;

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
            if self.total_wrong(&msg)? {
                self.sb_mut().free_blocks.set(free_blocks);
            }
        }
        if u64::from(sb_fi) != free_inodes {
            let msg = format!("Free inodes count wrong ({sb_fi}, counted={free_inodes})");
            if self.total_wrong(&msg)? {
                self.sb_mut().free_inodes.set(free_inodes as u32);
            }
        }
        Ok((free_blocks, free_inodes))
    }

    /// A superblock free total that differs from the count: a problem to fix, but in a
    /// read-only check of a filesystem that stopped while mounted only a note, as the next
    /// mount recounts the totals from the group descriptors (e2fsck does not count it
    /// either).
    fn total_wrong(&mut self, msg: &str) -> Res<bool> {
        if self.unclean && !self.fixing() {
            self.ui.info(&format!(
                "{msg}: not marked clean, the next mount recounts it"
            ));
            return Ok(false);
        }
        self.ui.problem(msg, true)
    }

    /// Reports and rewrites an on-disk bitmap that differs from the expected one.
    fn compare_bitmap(
        &mut self,
        block: u64,
        have: &Block,
        want: &Block,
        what: &str,
        base: u64,
        bits: u32,
    ) -> Res<()> {
        if have == want {
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
}

fn zero_bits(bm: &Block) -> u32 {
    bm.iter().map(|b| b.count_zeros()).sum()
}
