// Logical block -> indirect path mapping (docs/format.md, "Block mapping") and the
// indirect block view.

use crate::disk::{IndirectBlock, BLOCK_SIZE, MAX_FILE_BLOCKS, N_DIRECT, PTRS_PER_BLOCK_U64};
use crate::error::{FormatError, Result};
use crate::geometry::Geometry;

const P: u64 = PTRS_PER_BLOCK_U64;
const DIRECT: u64 = N_DIRECT as u64;
/// First logical block mapped through the single indirect block.
pub const IND_START: u64 = DIRECT;
/// First logical block mapped through the double indirect block.
pub const DIND_START: u64 = IND_START + P;
/// First logical block mapped through the triple indirect block.
pub const TIND_START: u64 = DIND_START + P * P;

/// Bit 63 of a data block pointer of a regular file (a `direct[]` slot or an entry of the
/// last indirect level): the block `ptr & !PTR_UNWRITTEN` is allocated to the file but its
/// contents are not; it reads as zeros until written (preallocation, `fallocate`). Never
/// set on pointers to indirect blocks, on directory or symlink data pointers or on
/// `xattr_block`.
pub const PTR_UNWRITTEN: u64 = 1 << 63;

/// A decoded non-zero data block pointer: the block number and the UNWRITTEN flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPtr {
    /// The block number (bit 63 cleared).
    pub block: u64,
    /// The block is allocated but reads as zeros.
    pub unwritten: bool,
}

impl BlockPtr {
    /// Splits a raw pointer into block number and flag (no range check; 0 stays 0).
    pub const fn decode(raw: u64) -> BlockPtr {
        BlockPtr {
            block: raw & !PTR_UNWRITTEN,
            unwritten: raw & PTR_UNWRITTEN != 0,
        }
    }

    /// The raw pointer.
    pub const fn encode(self) -> u64 {
        if self.unwritten {
            self.block | PTR_UNWRITTEN
        } else {
            self.block
        }
    }

    /// Checks a raw pointer: `Ok(None)` for 0 (a hole); `UnwrittenPointer` if the flag is
    /// set and `allow_unwritten` is false (the pointer is not a data pointer of a regular
    /// file); `BadBlockPointer` if the block number is not a data block (a flag on block 0
    /// included).
    pub fn check(raw: u64, allow_unwritten: bool, geo: &Geometry) -> Result<Option<BlockPtr>> {
        if raw == 0 {
            return Ok(None);
        }
        let p = BlockPtr::decode(raw);
        if p.unwritten && !allow_unwritten {
            return Err(FormatError::UnwrittenPointer);
        }
        geo.check_data_block(p.block)?;
        Ok(Some(p))
    }
}

/// The path from an inode to logical block `lblk`.
///
/// `depth` 0: `direct[offsets[0]]`. Depth 1: `indirect`, then entry `offsets[0]` of it.
/// Depth 2: `double_indirect`, entries `offsets[0]`, `offsets[1]`. Depth 3:
/// `triple_indirect`, entries `offsets[0..3]`. Unused offsets are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPath {
    /// 0 (direct) to 3 (triple indirect).
    pub depth: u8,
    /// Index at each level: into `direct` for depth 0, else into the indirect blocks.
    pub offsets: [u16; 3],
}

impl BlockPath {
    /// The path of logical block `lblk`, or `None` past [`MAX_FILE_BLOCKS`].
    pub fn of(lblk: u64) -> Option<BlockPath> {
        // Every offset below is < 511 (or < 12), so the u16 casts are exact.
        if lblk < IND_START {
            Some(BlockPath {
                depth: 0,
                offsets: [lblk as u16, 0, 0],
            })
        } else if lblk < DIND_START {
            Some(BlockPath {
                depth: 1,
                offsets: [(lblk - IND_START) as u16, 0, 0],
            })
        } else if lblk < TIND_START {
            let r = lblk - DIND_START;
            Some(BlockPath {
                depth: 2,
                offsets: [(r / P) as u16, (r % P) as u16, 0],
            })
        } else if lblk < MAX_FILE_BLOCKS {
            let r = lblk - TIND_START;
            Some(BlockPath {
                depth: 3,
                offsets: [(r / (P * P)) as u16, (r / P % P) as u16, (r % P) as u16],
            })
        } else {
            None
        }
    }

    /// The offsets actually used (`depth.max(1)` of them).
    pub fn used_offsets(&self) -> &[u16] {
        let n = usize::from(self.depth.max(1));
        self.offsets.get(..n).unwrap_or(&self.offsets)
    }

    /// Logical blocks that share the last level's block with this one and follow it
    /// (including it): how far a contiguous walk can go without reading another
    /// indirect block.
    pub fn run_in_leaf(&self) -> u64 {
        let last = self.used_offsets().last().copied().unwrap_or(0);
        let width = if self.depth == 0 { DIRECT } else { P };
        width - u64::from(last)
    }
}

impl IndirectBlock {
    /// An indirect block viewed in place.
    pub fn from_block(block: &[u8; BLOCK_SIZE]) -> &IndirectBlock {
        zerocopy::transmute_ref!(block)
    }

    /// An indirect block viewed in place, mutable.
    pub fn from_block_mut(block: &mut [u8; BLOCK_SIZE]) -> &mut IndirectBlock {
        zerocopy::transmute_mut!(block)
    }

    /// Pointer `i` (`None` if `i >= 511`); 0 is a hole.
    pub fn ptr(&self, i: usize) -> Option<u64> {
        self.ptrs.get(i).map(|p| p.get())
    }

    /// Pointer `i`, checked: `Ok(None)` for a hole, `Ok(Some(b))` for a valid data block,
    /// `BadBlockPointer` otherwise (including `i >= 511`).
    pub fn checked_ptr(&self, i: usize, geo: &Geometry) -> Result<Option<u64>> {
        match self.ptr(i) {
            None => Err(FormatError::BadBlockPointer),
            Some(0) => Ok(None),
            Some(b) => geo.check_data_block(b).map(Some),
        }
    }

    /// Pointer `i`, decoded and checked by [`BlockPtr::check`] (`i >= 511` is
    /// `BadBlockPointer`). `allow_unwritten` only for the last level of a regular file.
    pub fn checked_block_ptr(
        &self,
        i: usize,
        allow_unwritten: bool,
        geo: &Geometry,
    ) -> Result<Option<BlockPtr>> {
        match self.ptr(i) {
            None => Err(FormatError::BadBlockPointer),
            Some(raw) => BlockPtr::check(raw, allow_unwritten, geo),
        }
    }

    /// Sets pointer `i`; returns false if `i >= 511`.
    pub fn set_ptr(&mut self, i: usize, block: u64) -> bool {
        match self.ptrs.get_mut(i) {
            Some(p) => {
                p.set(block);
                true
            }
            None => false,
        }
    }

    /// True if every pointer is 0.
    pub fn is_empty(&self) -> bool {
        self.ptrs.iter().all(|p| p.get() == 0)
    }

    /// Checks every non-zero pointer against the geometry ([`BlockPtr::check`]);
    /// `allow_unwritten` only for a last-level block of a regular file.
    pub fn validate_ptrs(&self, allow_unwritten: bool, geo: &Geometry) -> Result<()> {
        for p in self.ptrs.iter() {
            BlockPtr::check(p.get(), allow_unwritten, geo)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        let p = |l| BlockPath::of(l).map(|b| (b.depth, b.offsets));
        assert_eq!(p(0), Some((0, [0, 0, 0])));
        assert_eq!(p(11), Some((0, [11, 0, 0])));
        assert_eq!(p(12), Some((1, [0, 0, 0])));
        assert_eq!(p(12 + 510), Some((1, [510, 0, 0])));
        assert_eq!(p(12 + 511), Some((2, [0, 0, 0])));
        assert_eq!(p(12 + 511 + 510), Some((2, [0, 510, 0])));
        assert_eq!(p(12 + 511 + 511), Some((2, [1, 0, 0])));
        assert_eq!(p(12 + 511 + 511 * 511 - 1), Some((2, [510, 510, 0])));
        assert_eq!(p(12 + 511 + 511 * 511), Some((3, [0, 0, 0])));
        assert_eq!(p(12 + 511 + 511 * 511 + 1), Some((3, [0, 0, 1])));
        assert_eq!(p(12 + 511 + 511 * 511 + 511), Some((3, [0, 1, 0])));
        assert_eq!(p(12 + 511 + 511 * 511 + 511 * 511), Some((3, [1, 0, 0])));
        assert_eq!(p(MAX_FILE_BLOCKS - 1), Some((3, [510, 510, 510])));
        assert_eq!(p(MAX_FILE_BLOCKS), None);
        assert_eq!(p(u64::MAX), None);
        assert_eq!(MAX_FILE_BLOCKS, 133_694_475);
    }

    #[test]
    fn paths_are_a_bijection_near_boundaries() {
        let inverse = |b: BlockPath| -> u64 {
            let o = b.offsets.map(u64::from);
            match b.depth {
                0 => o[0],
                1 => IND_START + o[0],
                2 => DIND_START + o[0] * P + o[1],
                _ => TIND_START + o[0] * P * P + o[1] * P + o[2],
            }
        };
        for base in [0, IND_START, DIND_START, TIND_START, MAX_FILE_BLOCKS - 600] {
            for l in base.saturating_sub(600)..base + 600 {
                match BlockPath::of(l) {
                    Some(bp) => {
                        assert_eq!(inverse(bp), l);
                        assert!(bp.used_offsets().iter().all(|&o| usize::from(o) < 511));
                    }
                    None => assert!(l >= MAX_FILE_BLOCKS),
                }
            }
        }
    }

    #[test]
    fn run_in_leaf() {
        assert_eq!(BlockPath::of(0).map(|b| b.run_in_leaf()), Some(12));
        assert_eq!(BlockPath::of(11).map(|b| b.run_in_leaf()), Some(1));
        assert_eq!(BlockPath::of(12).map(|b| b.run_in_leaf()), Some(511));
        assert_eq!(
            BlockPath::of(DIND_START + 510).map(|b| b.run_in_leaf()),
            Some(1)
        );
        assert_eq!(
            BlockPath::of(MAX_FILE_BLOCKS - 1).map(|b| b.run_in_leaf()),
            Some(1)
        );
    }

    fn small_geo() -> Geometry {
        use crate::geometry::{InodeSpec, DEFAULT_INODE_SIZE};
        Geometry::plan(100_000, InodeSpec::default(), DEFAULT_INODE_SIZE, None).unwrap()
    }

    #[test]
    fn block_ptr_decode_encode() {
        assert_eq!(
            BlockPtr::decode(1234),
            BlockPtr {
                block: 1234,
                unwritten: false
            }
        );
        assert_eq!(
            BlockPtr::decode(1234 | PTR_UNWRITTEN),
            BlockPtr {
                block: 1234,
                unwritten: true
            }
        );
        for raw in [0, 1, 1234, u64::MAX >> 1, PTR_UNWRITTEN | 5, u64::MAX] {
            assert_eq!(BlockPtr::decode(raw).encode(), raw);
        }
        assert_eq!(PTR_UNWRITTEN, 0x8000_0000_0000_0000);
    }

    #[test]
    fn block_ptr_check() {
        let g = small_geo();
        let data = g.blocks_count() - 1;
        assert!(g.is_data_block(data));
        let w = BlockPtr::check(data, false, &g);
        assert_eq!(
            w.map(|p| p.map(|p| (p.block, p.unwritten))),
            Ok(Some((data, false)))
        );
        let u = BlockPtr::check(data | PTR_UNWRITTEN, true, &g);
        assert_eq!(
            u.map(|p| p.map(|p| (p.block, p.unwritten))),
            Ok(Some((data, true)))
        );
        assert_eq!(
            BlockPtr::check(data | PTR_UNWRITTEN, false, &g),
            Err(FormatError::UnwrittenPointer)
        );
        assert_eq!(BlockPtr::check(0, true, &g), Ok(None));
        assert_eq!(BlockPtr::check(0, false, &g), Ok(None));
        // The flag on block 0, or on a block outside the data area, is still bad.
        assert_eq!(
            BlockPtr::check(PTR_UNWRITTEN, true, &g),
            Err(FormatError::BadBlockPointer)
        );
        assert_eq!(
            BlockPtr::check(g.blocks_count() | PTR_UNWRITTEN, true, &g),
            Err(FormatError::BadBlockPointer)
        );
        // Without the flag allowed, bit 63 is never a data block (blocks_count < 2^63).
        assert!(!g.is_data_block(data | PTR_UNWRITTEN));

        let mut raw = [0u8; BLOCK_SIZE];
        let ib = IndirectBlock::from_block_mut(&mut raw);
        assert!(ib.set_ptr(3, data | PTR_UNWRITTEN));
        assert_eq!(ib.validate_ptrs(true, &g), Ok(()));
        assert_eq!(
            ib.validate_ptrs(false, &g),
            Err(FormatError::UnwrittenPointer)
        );
        assert_eq!(
            ib.checked_block_ptr(3, true, &g),
            Ok(Some(BlockPtr {
                block: data,
                unwritten: true
            }))
        );
        assert_eq!(
            ib.checked_block_ptr(3, false, &g),
            Err(FormatError::UnwrittenPointer)
        );
        assert_eq!(ib.checked_block_ptr(4, false, &g), Ok(None));
        assert_eq!(
            ib.checked_block_ptr(511, true, &g),
            Err(FormatError::BadBlockPointer)
        );
        assert_eq!(ib.checked_ptr(3, &g), Err(FormatError::BadBlockPointer));
    }

    #[test]
    fn indirect_block_checksum_and_ptrs() {
        let mut raw = [0u8; BLOCK_SIZE];
        {
            let ib = IndirectBlock::from_block_mut(&mut raw);
            assert!(ib.is_empty());
            assert!(ib.set_ptr(0, 100));
            assert!(ib.set_ptr(510, 200));
            assert!(!ib.set_ptr(511, 1));
            ib.update_checksum(0x1234, 12, 7);
        }
        let ib = IndirectBlock::from_block(&raw);
        assert_eq!(ib.ptr(0), Some(100));
        assert_eq!(ib.ptr(510), Some(200));
        assert_eq!(ib.ptr(511), None);
        assert_eq!(raw[0xFF0..0xFF8], 200u64.to_le_bytes());
        assert!(ib.verify_checksum(0x1234, 12, 7).is_ok());
        assert!(ib.verify_checksum(0x1234, 13, 7).is_err());
        assert!(ib.verify_checksum(0x1234, 12, 8).is_err());
        assert!(ib.verify_checksum(0x1235, 12, 7).is_err());
        for bit in (0..BLOCK_SIZE * 8).step_by(97) {
            let mut c = raw;
            c[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                IndirectBlock::from_block(&c).verify_checksum(0x1234, 12, 7),
                Err(FormatError::IndirectChecksum),
                "bit {bit}"
            );
        }
    }
}
