//! Planning the block map of a file mkfs writes: its data blocks and the indirect blocks
//! that map them are allocated as one sequence in logical order (each indirect block just
//! before the first data block under it), so a file is contiguous on disk apart from the
//! groups' metadata it may have to step over.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use aegisfs_format::blockmap::{BlockPath, DIND_START, IND_START, TIND_START};
use aegisfs_format::disk::{
    IndirectBlock, BLOCK_SIZE, N_DIRECT, PTRS_PER_BLOCK, PTRS_PER_BLOCK_U64,
};

const P: u64 = PTRS_PER_BLOCK_U64;

/// A source of free blocks.
pub trait BlockSource {
    /// Allocates between 1 and `max` (> 0) contiguous blocks; returns the first block and
    /// the count.
    fn alloc_run(&mut self, max: u64) -> Result<(u64, u64), String>;
}

/// An indirect block, identified by its height (1 maps data blocks, 2 maps height-1
/// blocks, 3 maps height-2 blocks) and the first logical block its subtree covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IndirectKey {
    pub height: u8,
    pub first: u64,
}

impl IndirectKey {
    /// Logical blocks covered by one pointer of this block.
    fn span_per_ptr(self) -> u64 {
        P.pow(u32::from(self.height) - 1)
    }
}

/// One allocated piece of a file, in allocation (= physical) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// `count` data blocks for logical blocks `logical..logical + count` at `phys..`.
    Data { phys: u64, logical: u64, count: u64 },
    /// An indirect block at `phys`.
    Indirect { phys: u64, key: IndirectKey },
}

/// The planned block map of one file.
#[derive(Debug, Default)]
pub struct FileMap {
    pub direct: [u64; N_DIRECT],
    pub indirect: u64,
    pub double_indirect: u64,
    pub triple_indirect: u64,
    /// Every allocated piece, in physical order.
    pub pieces: Vec<Piece>,
    /// Blocks allocated: data plus indirect.
    pub blocks: u64,
    /// Data extents `(logical, phys, count)` sorted by logical block.
    extents: Vec<(u64, u64, u64)>,
    indirect_blocks: HashMap<IndirectKey, u64>,
}

/// The indirect blocks on the path to logical block `l`, root first (none for a direct
/// block), or `None` past the largest file.
fn path_to(l: u64) -> Option<Vec<IndirectKey>> {
    let path = BlockPath::of(l)?;
    let [o0, o1, _] = path.offsets.map(u64::from);
    let key = |height, first| IndirectKey { height, first };
    Some(match path.depth {
        0 => vec![],
        1 => vec![key(1, IND_START)],
        2 => vec![key(2, DIND_START), key(1, DIND_START + o0 * P)],
        _ => vec![
            key(3, TIND_START),
            key(2, TIND_START + o0 * P * P),
            key(1, TIND_START + o0 * P * P + o1 * P),
        ],
    })
}

impl FileMap {
    /// Plans a file whose data occupies the logical block ranges `[first, last)` in
    /// `ranges` (sorted, disjoint); everything else is a hole.
    pub fn plan(ranges: &[(u64, u64)], alloc: &mut dyn BlockSource) -> Result<FileMap, String> {
        let mut map = FileMap::default();
        for &(first, last) in ranges {
            let mut l = first;
            while l < last {
                let path = path_to(l).ok_or_else(|| {
                    format!("file is too large: block {l} is past the largest file AegisFS maps")
                })?;
                for key in path {
                    if let Entry::Vacant(slot) = map.indirect_blocks.entry(key) {
                        let (phys, _) = alloc.alloc_run(1)?;
                        slot.insert(phys);
                        map.pieces.push(Piece::Indirect { phys, key });
                        map.blocks += 1;
                        match (key.height, key.first) {
                            (1, IND_START) => map.indirect = phys,
                            (2, DIND_START) => map.double_indirect = phys,
                            (3, _) => map.triple_indirect = phys,
                            _ => {}
                        }
                    }
                }
                let leaf_run = BlockPath::of(l).map_or(1, |p| p.run_in_leaf());
                let (phys, count) = alloc.alloc_run(leaf_run.min(last - l))?;
                map.add_data(l, phys, count);
                l += count;
            }
        }
        Ok(map)
    }

    fn add_data(&mut self, logical: u64, phys: u64, count: u64) {
        self.blocks += count;
        if logical < IND_START {
            for k in 0..count {
                self.direct[(logical + k) as usize] = phys + k;
            }
        }
        match self.extents.last_mut() {
            Some((l, p, n)) if *l + *n == logical && *p + *n == phys => *n += count,
            _ => self.extents.push((logical, phys, count)),
        }
        match self.pieces.last_mut() {
            Some(Piece::Data {
                phys: p,
                logical: l,
                count: n,
            }) if *l + *n == logical && *p + *n == phys => *n += count,
            _ => self.pieces.push(Piece::Data {
                phys,
                logical,
                count,
            }),
        }
    }

    /// The physical block of logical block `l`, 0 for a hole.
    pub fn lookup(&self, l: u64) -> u64 {
        let idx = self.extents.partition_point(|&(first, _, _)| first <= l);
        if idx == 0 {
            return 0;
        }
        let (first, phys, count) = self.extents[idx - 1];
        if l < first + count {
            phys + (l - first)
        } else {
            0
        }
    }

    /// The contents of indirect block `key` of inode `ino`/`generation`, checksummed.
    pub fn indirect_block(
        &self,
        key: IndirectKey,
        seed: u32,
        ino: u32,
        generation: u32,
    ) -> [u8; BLOCK_SIZE] {
        let mut raw = [0u8; BLOCK_SIZE];
        let block = IndirectBlock::from_block_mut(&mut raw);
        let span = key.span_per_ptr();
        for i in 0..PTRS_PER_BLOCK {
            let first = key.first + i as u64 * span;
            let ptr = if key.height == 1 {
                self.lookup(first)
            } else {
                self.indirect_blocks
                    .get(&IndirectKey {
                        height: key.height - 1,
                        first,
                    })
                    .copied()
                    .unwrap_or(0)
            };
            block.set_ptr(i, ptr);
        }
        block.update_checksum(seed, ino, generation);
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegisfs_format::disk::MAX_FILE_BLOCKS;

    /// The pointers of an indirect block, after checking its checksum.
    fn ptrs(m: &FileMap, key: IndirectKey) -> Vec<u64> {
        let raw = m.indirect_block(key, 0xABCD, 42, 7);
        let ib = IndirectBlock::from_block(&raw);
        ib.verify_checksum(0xABCD, 42, 7).unwrap();
        (0..PTRS_PER_BLOCK).map(|i| ib.ptr(i).unwrap()).collect()
    }

    /// Hands out blocks from a counter, skipping `skip` (like group metadata).
    struct Counter {
        next: u64,
        skip: std::ops::Range<u64>,
    }

    impl BlockSource for Counter {
        fn alloc_run(&mut self, max: u64) -> Result<(u64, u64), String> {
            if self.skip.contains(&self.next) {
                self.next = self.skip.end;
            }
            let limit = if self.next < self.skip.start {
                self.skip.start
            } else {
                u64::MAX
            };
            let n = max.min(limit - self.next);
            let start = self.next;
            self.next += n;
            Ok((start, n))
        }
    }

    #[test]
    fn small_file_is_direct_only() {
        let mut a = Counter {
            next: 100,
            skip: 0..0,
        };
        let m = FileMap::plan(&[(0, 3)], &mut a).unwrap();
        assert_eq!(&m.direct[..4], &[100, 101, 102, 0]);
        assert_eq!(m.indirect, 0);
        assert_eq!(m.blocks, 3);
        assert_eq!(
            m.pieces,
            vec![Piece::Data {
                phys: 100,
                logical: 0,
                count: 3
            }]
        );
    }

    #[test]
    fn indirect_block_precedes_its_data() {
        let mut a = Counter {
            next: 1000,
            skip: 0..0,
        };
        let m = FileMap::plan(&[(0, 13)], &mut a).unwrap();
        assert_eq!(m.direct[11], 1011);
        assert_eq!(m.indirect, 1012);
        assert_eq!(m.lookup(12), 1013);
        assert_eq!(m.blocks, 14);
        let ptrs = ptrs(
            &m,
            IndirectKey {
                height: 1,
                first: 12,
            },
        );
        assert_eq!(ptrs[0], 1013);
        assert!(ptrs[1..].iter().all(|&p| p == 0));
    }

    #[test]
    fn sparse_triple_indirect() {
        let mut a = Counter {
            next: 5000,
            skip: 0..0,
        };
        let l = TIND_START + 3 * P * P + 7 * P + 5;
        let m = FileMap::plan(&[(l, l + 1)], &mut a).unwrap();
        assert_eq!(m.direct, [0; N_DIRECT]);
        assert_eq!(m.indirect, 0);
        assert_eq!(m.double_indirect, 0);
        assert_eq!(m.triple_indirect, 5000);
        assert_eq!(m.blocks, 4);
        let t = ptrs(
            &m,
            IndirectKey {
                height: 3,
                first: TIND_START,
            },
        );
        assert_eq!(t[3], 5001);
        let d = ptrs(
            &m,
            IndirectKey {
                height: 2,
                first: TIND_START + 3 * P * P,
            },
        );
        assert_eq!(d[7], 5002);
        let s = ptrs(
            &m,
            IndirectKey {
                height: 1,
                first: TIND_START + 3 * P * P + 7 * P,
            },
        );
        assert_eq!(s[5], 5003);
        assert_eq!(m.lookup(l), 5003);
        assert_eq!(m.lookup(l - 1), 0);
    }

    #[test]
    fn runs_split_around_skipped_blocks() {
        let mut a = Counter {
            next: 10,
            skip: 15..20,
        };
        let m = FileMap::plan(&[(0, 8)], &mut a).unwrap();
        assert_eq!(&m.direct[..8], &[10, 11, 12, 13, 14, 20, 21, 22]);
        assert_eq!(m.pieces.len(), 2);
    }

    #[test]
    fn every_block_of_a_large_file_is_mapped_once() {
        let mut a = Counter {
            next: 1,
            skip: 0..0,
        };
        let n = DIND_START + 2 * P + 3;
        let m = FileMap::plan(&[(0, n)], &mut a).unwrap();
        let mut seen = std::collections::HashSet::new();
        for l in 0..n {
            let p = m.lookup(l);
            assert_ne!(p, 0);
            assert!(seen.insert(p));
        }
        // single + double + 3 leaves under the double.
        assert_eq!(m.blocks, n + 5);
        assert_eq!(m.pieces.len(), 2 * 5);
    }

    #[test]
    fn too_large_is_refused() {
        let mut a = Counter {
            next: 1,
            skip: 0..0,
        };
        assert!(FileMap::plan(&[(MAX_FILE_BLOCKS - 1, MAX_FILE_BLOCKS)], &mut a).is_ok());
        assert!(FileMap::plan(&[(MAX_FILE_BLOCKS - 1, MAX_FILE_BLOCKS + 1)], &mut a).is_err());
    }
}
