//! Block and inode allocation for mkfs. mkfs never frees, so first-fit in group order is a
//! cursor that only moves forward: what is in use in each group follows from the cursor,
//! and the bitmaps are generated from it at the end without keeping them in memory.

use aegisfs_format::disk::{FIRST_INO, LOST_FOUND_INO};
use aegisfs_format::geometry::Geometry;

use crate::filemap::BlockSource;

pub struct BlockAllocator {
    geo: Geometry,
    group: u32,
    /// Next free block (inside `group`'s data area, or its end when the group is full).
    next: u64,
}

impl BlockAllocator {
    pub fn new(geo: &Geometry) -> BlockAllocator {
        BlockAllocator {
            geo: *geo,
            group: 0,
            next: geo.first_data_block(0).expect("a geometry has a group 0"),
        }
    }

    fn group_end(&self, g: u32) -> u64 {
        self.geo.group_start(g).expect("group in range") + self.geo.group_len(g).expect("group")
    }

    /// Data blocks allocated in group `g`; they are the first ones of its data area.
    pub fn used_in_group(&self, g: u32) -> u64 {
        if g < self.group {
            self.geo.group_data_blocks(g).expect("group in range")
        } else if g == self.group {
            self.next - self.geo.first_data_block(g).expect("group in range")
        } else {
            0
        }
    }
}

impl BlockSource for BlockAllocator {
    fn alloc_run(&mut self, max: u64) -> Result<(u64, u64), String> {
        while self.next == self.group_end(self.group) {
            if self.group + 1 == self.geo.group_count() {
                return Err("no space left in the new filesystem".to_string());
            }
            self.group += 1;
            self.next = self
                .geo
                .first_data_block(self.group)
                .expect("group in range");
        }
        let count = max.min(self.group_end(self.group) - self.next);
        let start = self.next;
        self.next += count;
        Ok((start, count))
    }
}

/// Hands out inode numbers from `first_ino` upwards; `lost+found` is the first of them.
pub struct InodeAllocator {
    inodes_per_group: u32,
    inodes_count: u32,
    /// The highest inode number in use.
    last: u32,
    /// Directories per group.
    dirs: Vec<u32>,
}

impl InodeAllocator {
    pub fn new(geo: &Geometry) -> InodeAllocator {
        InodeAllocator {
            inodes_per_group: geo.inodes_per_group(),
            inodes_count: geo.inodes_count(),
            last: FIRST_INO - 1,
            dirs: vec![0; geo.group_count() as usize],
        }
    }

    /// Allocates the next inode.
    pub fn alloc(&mut self, is_dir: bool) -> Result<u32, String> {
        if self.last >= self.inodes_count {
            return Err(format!(
                "the new filesystem has only {} inodes, too few for the source tree \
                 (use -N or -i)",
                self.inodes_count
            ));
        }
        self.last += 1;
        if is_dir {
            self.note_dir(self.last);
        }
        Ok(self.last)
    }

    /// Counts a directory with an inode that was not allocated here (the root).
    pub fn note_dir(&mut self, ino: u32) {
        self.dirs[((ino - 1) / self.inodes_per_group) as usize] += 1;
    }

    /// Inodes in use in group `g` (reserved ones included); they are the group's first.
    pub fn used_in_group(&self, g: u32) -> u32 {
        let first = g * self.inodes_per_group;
        self.last.saturating_sub(first).min(self.inodes_per_group)
    }

    pub fn dirs_in_group(&self, g: u32) -> u32 {
        self.dirs[g as usize]
    }
}

const _: () = assert!(LOST_FOUND_INO == FIRST_INO);

#[cfg(test)]
mod tests {
    use super::*;
    use aegisfs_format::geometry::InodeSpec;

    fn geo(blocks: u64) -> Geometry {
        Geometry::plan(blocks, InodeSpec::Count(64), 256, Some(0)).unwrap()
    }

    #[test]
    fn runs_skip_group_metadata_and_end_with_no_space() {
        let g = geo(32768 + 2 + 200);
        assert_eq!(g.group_count(), 2);
        let mut a = BlockAllocator::new(&g);
        let first = g.first_data_block(0).unwrap();
        assert_eq!(a.alloc_run(10).unwrap(), (first, 10));
        let rest = g.group_data_blocks(0).unwrap() - 10;
        assert_eq!(a.alloc_run(u64::MAX).unwrap(), (first + 10, rest));
        assert_eq!(a.used_in_group(0), g.group_data_blocks(0).unwrap());
        assert_eq!(a.used_in_group(1), 0);
        let second = g.first_data_block(1).unwrap();
        assert_eq!(a.alloc_run(5).unwrap(), (second, 5));
        assert_eq!(a.used_in_group(1), 5);
        let left = g.group_data_blocks(1).unwrap() - 5;
        assert_eq!(a.alloc_run(u64::MAX).unwrap(), (second + 5, left));
        assert!(a.alloc_run(1).is_err());
    }

    #[test]
    fn inodes_after_the_reserved_ones_then_exhausted() {
        let g = geo(32768 + 2 + 200);
        let ipg = g.inodes_per_group();
        let mut a = InodeAllocator::new(&g);
        assert_eq!(a.alloc(true).unwrap(), LOST_FOUND_INO);
        a.note_dir(2);
        assert_eq!(a.used_in_group(0), 11);
        assert_eq!(a.dirs_in_group(0), 2);
        for ino in 12..=ipg + 1 {
            assert_eq!(a.alloc(ino == ipg + 1).unwrap(), ino);
        }
        assert_eq!(a.used_in_group(0), ipg);
        assert_eq!(a.used_in_group(1), 1);
        assert_eq!(a.dirs_in_group(1), 1);
        while a.alloc(false).is_ok() {}
        assert_eq!(a.used_in_group(1), ipg);
        assert!(a.alloc(false).unwrap_err().contains("inodes"));
    }
}
