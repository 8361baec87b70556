// Hash-indexed directories (docs/format.md, "Indexed directories"): the name hash, index
// blocks (validated view and editing) and the choice of where a full leaf splits.

use crate::checksum::dir_index_checksum;
use crate::dir::min_rec_len;
use crate::disk::{BLOCK_SIZE, DIR_INDEX_CHECKSUM_OFFSET, DIR_TAIL_OFFSET};
use crate::error::{FormatError, Result};

/// `magic` of an index block.
pub const INDEX_MAGIC: [u8; 4] = *b"AIDX";
/// Bytes before the first index entry.
pub const INDEX_HEADER_SIZE: usize = 16;
/// Bytes of one index entry: `hash` (u64) and `block` (u32).
pub const INDEX_ENTRY_SIZE: usize = 12;
/// Entries an index block holds.
pub const INDEX_MAX_ENTRIES: usize =
    (DIR_INDEX_CHECKSUM_OFFSET - INDEX_HEADER_SIZE) / INDEX_ENTRY_SIZE;
/// Highest `level` of the root.
pub const INDEX_MAX_LEVEL: u8 = 2;
/// Name hashes are below this (62 bits).
pub const HASH_LIMIT: u64 = 1 << 62;
/// Directory block of the index root.
pub const INDEX_ROOT_BLOCK: u64 = 1;
/// First directory block the index may reference.
pub const FIRST_INDEXED_BLOCK: u64 = 2;
/// Smallest number of blocks of an indexed directory: head, root, one leaf.
pub const MIN_INDEXED_BLOCKS: u64 = 3;
/// Most used records a directory block can hold (each takes at least 12 bytes).
pub const MAX_LEAF_ENTRIES: usize = DIR_TAIL_OFFSET / min_rec_len(1);

const _: () = assert!(INDEX_MAX_ENTRIES == 339);

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    for (dst, src) in word.iter_mut().zip(bytes) {
        *dst = *src;
    }
    u64::from_le_bytes(word)
}

/// SipHash-2-4 of `data` with the 128-bit `key` (`k0`, `k1` little-endian).
pub fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    let (k0, k1) = key.split_at(8);
    let (k0, k1) = (le_u64(k0), le_u64(k1));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let (words, tail) = data.as_chunks::<8>();
    for word in words {
        let m = u64::from_le_bytes(*word);
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
    }
    // The length's low byte goes into the top byte of the last word.
    let last = le_u64(tail) | ((data.len() as u64) << 56);
    v[3] ^= last;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The 62-bit hash that places `name` in an indexed directory.
pub fn name_hash(key: &[u8; 16], name: &[u8]) -> u64 {
    siphash24(key, name) >> 2
}

/// One entry of an index block: the child covers hashes from `hash` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// First hash the child covers.
    pub hash: u64,
    /// Directory block of the child.
    pub block: u32,
}

fn entry_at(block: &[u8; BLOCK_SIZE], i: usize) -> Option<IndexEntry> {
    let off = INDEX_HEADER_SIZE.checked_add(i.checked_mul(INDEX_ENTRY_SIZE)?)?;
    let raw = block.get(off..off.checked_add(INDEX_ENTRY_SIZE)?)?;
    // Fixed-size reads: a binary search reads about nine entries of each index block.
    let &[h0, h1, h2, h3, h4, h5, h6, h7, b0, b1, b2, b3] = raw else {
        return None;
    };
    Some(IndexEntry {
        hash: u64::from_le_bytes([h0, h1, h2, h3, h4, h5, h6, h7]),
        block: u32::from_le_bytes([b0, b1, b2, b3]),
    })
}

fn put_entry(block: &mut [u8; BLOCK_SIZE], i: usize, e: IndexEntry) -> Result<()> {
    let off = INDEX_HEADER_SIZE + i * INDEX_ENTRY_SIZE;
    let raw = block
        .get_mut(off..off + INDEX_ENTRY_SIZE)
        .ok_or(FormatError::DirIndex)?;
    let (hash, child) = raw.split_at_mut(8);
    hash.copy_from_slice(&e.hash.to_le_bytes());
    child.copy_from_slice(&e.block.to_le_bytes());
    Ok(())
}

fn raw_count(block: &[u8; BLOCK_SIZE]) -> usize {
    usize::from(u16::from_le_bytes([block[6], block[7]]))
}

fn set_count(block: &mut [u8; BLOCK_SIZE], count: usize) -> Result<()> {
    let c = u16::try_from(count).map_err(|_| FormatError::DirIndex)?;
    block[6..8].copy_from_slice(&c.to_le_bytes());
    Ok(())
}

/// An index block whose checksum and structure were checked
/// ([`IndexBlock::validate`]).
///
/// # Invariants
/// `count` is in `1..=INDEX_MAX_ENTRIES`, the hashes are strictly ascending and below
/// [`HASH_LIMIT`], and every child block is in `FIRST_INDEXED_BLOCK..dir_blocks`.
#[derive(Clone, Copy)]
pub struct IndexBlock<'a> {
    block: &'a [u8; BLOCK_SIZE],
    count: usize,
}

impl<'a> IndexBlock<'a> {
    /// Checks index block `block` of directory `dir_ino`/`dir_generation`, a directory of
    /// `dir_blocks` blocks: checksum, magic, reserved bytes, count, level, the order and
    /// range of the hashes, the child blocks and the zero bytes after the entries. How the
    /// block fits in the tree (its level and first hash) is for the caller to check.
    pub fn validate(
        block: &'a [u8; BLOCK_SIZE],
        seed: u32,
        dir_ino: u32,
        dir_generation: u32,
        dir_blocks: u64,
    ) -> Result<Self> {
        let stored = u32::from_le_bytes([block[0xFFC], block[0xFFD], block[0xFFE], block[0xFFF]]);
        if stored != dir_index_checksum(seed, dir_ino, dir_generation, block) {
            return Err(FormatError::DirIndexChecksum);
        }
        Self::check(block, dir_blocks)
    }

    /// [`IndexBlock::validate`] without the checksum (a block this implementation wrote
    /// and still holds in memory).
    pub fn check(block: &'a [u8; BLOCK_SIZE], dir_blocks: u64) -> Result<Self> {
        let count = raw_count(block);
        if block[0..4] != INDEX_MAGIC
            || block[4] > INDEX_MAX_LEVEL
            || block[5] != 0
            || block[8..16].iter().any(|&b| b != 0)
            || count == 0
            || count > INDEX_MAX_ENTRIES
        {
            return Err(FormatError::DirIndex);
        }
        let used_end = INDEX_HEADER_SIZE + count * INDEX_ENTRY_SIZE;
        let unused = block
            .get(used_end..DIR_INDEX_CHECKSUM_OFFSET)
            .ok_or(FormatError::DirIndex)?;
        if unused.iter().any(|&b| b != 0) {
            return Err(FormatError::DirIndex);
        }
        let mut prev: Option<u64> = None;
        for i in 0..count {
            let e = entry_at(block, i).ok_or(FormatError::DirIndex)?;
            let ascending = prev.is_none_or(|p| e.hash > p);
            if !ascending
                || e.hash >= HASH_LIMIT
                || u64::from(e.block) < FIRST_INDEXED_BLOCK
                || u64::from(e.block) >= dir_blocks
            {
                return Err(FormatError::DirIndex);
            }
            prev = Some(e.hash);
        }
        Ok(Self { block, count })
    }

    /// The view of an index block that passed [`IndexBlock::validate`] when it was read
    /// and was changed since only through this module's editing functions, which keep it
    /// valid: only the header is checked again (the accessors stay in bounds whatever
    /// the entries hold).
    pub fn revalidated(block: &'a [u8; BLOCK_SIZE]) -> Result<Self> {
        let count = raw_count(block);
        if block[0..4] != INDEX_MAGIC
            || block[4] > INDEX_MAX_LEVEL
            || count == 0
            || count > INDEX_MAX_ENTRIES
        {
            return Err(FormatError::DirIndex);
        }
        Ok(Self { block, count })
    }

    /// 0 when the children are leaves.
    pub fn level(&self) -> u8 {
        self.block[4]
    }

    /// Entries used (at least 1).
    pub fn count(&self) -> usize {
        self.count
    }

    /// True when no entry can be added.
    pub fn is_full(&self) -> bool {
        self.count >= INDEX_MAX_ENTRIES
    }

    /// Entry `i` (`i < count`).
    pub fn entry(&self, i: usize) -> Option<IndexEntry> {
        if i < self.count {
            entry_at(self.block, i)
        } else {
            None
        }
    }

    /// The entry whose range holds `hash`: the last one whose `hash` is at most it (the
    /// first when `hash` is below them all, which a caller that checked the block's first
    /// hash never asks).
    pub fn child_for(&self, hash: u64) -> usize {
        let (mut lo, mut hi) = (0, self.count);
        // Invariant: the answer is in lo..hi, and entry lo's hash <= hash unless lo is 0.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match entry_at(self.block, mid) {
                Some(e) if e.hash <= hash => lo = mid,
                _ => hi = mid,
            }
        }
        lo
    }

    /// The end of entry `i`'s range in a block whose range ends at `hi`.
    pub fn range_end(&self, i: usize, hi: u64) -> u64 {
        match self.entry(i + 1) {
            Some(next) => next.hash,
            None => hi,
        }
    }
}

/// Writes index block `block`: `level` and the `entries` (the caller keeps them ascending);
/// the checksum is not set.
pub fn init_index_block(
    block: &mut [u8; BLOCK_SIZE],
    level: u8,
    entries: &[IndexEntry],
) -> Result<()> {
    if entries.is_empty() || entries.len() > INDEX_MAX_ENTRIES || level > INDEX_MAX_LEVEL {
        return Err(FormatError::DirIndex);
    }
    block.fill(0);
    block[0..4].copy_from_slice(&INDEX_MAGIC);
    block[4] = level;
    set_count(block, entries.len())?;
    for (i, e) in entries.iter().enumerate() {
        put_entry(block, i, *e)?;
    }
    Ok(())
}

/// Inserts `entry` at position `pos` of index block `block` (checked before), moving the
/// later entries up. Fails when the block is full. The checksum is not updated.
pub fn insert_index_entry(
    block: &mut [u8; BLOCK_SIZE],
    pos: usize,
    entry: IndexEntry,
) -> Result<()> {
    let count = raw_count(block);
    if count >= INDEX_MAX_ENTRIES || pos > count {
        return Err(FormatError::DirIndex);
    }
    let start = INDEX_HEADER_SIZE + pos * INDEX_ENTRY_SIZE;
    let end = INDEX_HEADER_SIZE + count * INDEX_ENTRY_SIZE;
    // `count < INDEX_MAX_ENTRIES`: the moved entries end before the checksum.
    block
        .get_mut(start..end + INDEX_ENTRY_SIZE)
        .ok_or(FormatError::DirIndex)?
        .copy_within(0..end - start, INDEX_ENTRY_SIZE);
    put_entry(block, pos, entry)?;
    set_count(block, count + 1)
}

/// Copies the upper half of the entries of index block `block` (at least two entries)
/// into `upper`, a new index block of the same level, and returns how many entries `block`
/// keeps ([`truncate_index_block`]) and the first hash `upper` covers. The checksum of
/// `upper` is not set.
pub fn copy_upper_half(
    block: &[u8; BLOCK_SIZE],
    upper: &mut [u8; BLOCK_SIZE],
) -> Result<(usize, u64)> {
    let count = raw_count(block);
    if !(2..=INDEX_MAX_ENTRIES).contains(&count) {
        return Err(FormatError::DirIndex);
    }
    let keep = count / 2;
    upper.fill(0);
    upper[0..8].copy_from_slice(&block[0..8]);
    set_count(upper, count - keep)?;
    let from = INDEX_HEADER_SIZE + keep * INDEX_ENTRY_SIZE;
    let to = INDEX_HEADER_SIZE + count * INDEX_ENTRY_SIZE;
    let moved = block.get(from..to).ok_or(FormatError::DirIndex)?;
    upper
        .get_mut(INDEX_HEADER_SIZE..INDEX_HEADER_SIZE + moved.len())
        .ok_or(FormatError::DirIndex)?
        .copy_from_slice(moved);
    let first = entry_at(upper, 0)
        .map(|e| e.hash)
        .ok_or(FormatError::DirIndex)?;
    Ok((keep, first))
}

/// Keeps the first `count` entries of index block `block` (at least one), zeroing the
/// others. The checksum is not updated.
pub fn truncate_index_block(block: &mut [u8; BLOCK_SIZE], count: usize) -> Result<()> {
    let old = raw_count(block);
    if count == 0 || count > old || old > INDEX_MAX_ENTRIES {
        return Err(FormatError::DirIndex);
    }
    block
        .get_mut(
            INDEX_HEADER_SIZE + count * INDEX_ENTRY_SIZE
                ..INDEX_HEADER_SIZE + old * INDEX_ENTRY_SIZE,
        )
        .ok_or(FormatError::DirIndex)?
        .fill(0);
    set_count(block, count)
}

/// Sets the checksum of index block `block` of directory `dir_ino`/`dir_generation`.
pub fn set_index_checksum(
    block: &mut [u8; BLOCK_SIZE],
    seed: u32,
    dir_ino: u32,
    dir_generation: u32,
) {
    let c = dir_index_checksum(seed, dir_ino, dir_generation, block);
    block[DIR_INDEX_CHECKSUM_OFFSET..].copy_from_slice(&c.to_le_bytes());
}

/// Where a full leaf splits so that a new entry fits: `entries` holds `(hash, rec_len)` of
/// the leaf's used records and of the new entry (in any order; it is sorted). Returns the
/// first hash of the upper leaf: the boundary between two different hashes that shares
/// the bytes most evenly while both sides fit in a block; `None` when there is none (every
/// entry has the same hash).
pub fn leaf_split_hash(entries: &mut [(u64, u16)]) -> Option<u64> {
    entries.sort_unstable();
    let total: usize = entries.iter().map(|&(_, len)| usize::from(len)).sum();
    let mut below = 0usize;
    let mut best: Option<(usize, u64)> = None;
    for pair in entries.windows(2) {
        let &[(h0, len0), (h1, _)] = pair else {
            continue;
        };
        below += usize::from(len0);
        let above = total - below;
        if h0 == h1 || below > DIR_TAIL_OFFSET || above > DIR_TAIL_OFFSET {
            continue;
        }
        let imbalance = below.abs_diff(above);
        if best.is_none_or(|(b, _)| imbalance < b) {
            best = Some((imbalance, h1));
        }
    }
    best.map(|(_, hash)| hash)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::test_rng::xorshift64;
    use std::vec::Vec;

    #[test]
    fn siphash_reference_vectors() {
        // The SipHash paper's key 00..0f over the messages 00..(n-1).
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let msg: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(siphash24(&key, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&key, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(&key, &msg[..15]), 0xa129_ca61_49be_45e5);
    }

    #[test]
    #[allow(deprecated)]
    fn siphash_matches_std() {
        use core::hash::Hasher;
        let mut rng = xorshift64(7);
        for len in 0..80 {
            let key: [u8; 16] = core::array::from_fn(|_| rng() as u8);
            let data: Vec<u8> = (0..len).map(|_| rng() as u8).collect();
            let mut h = std::hash::SipHasher::new_with_keys(
                u64::from_le_bytes(key[..8].try_into().unwrap()),
                u64::from_le_bytes(key[8..].try_into().unwrap()),
            );
            h.write(&data);
            assert_eq!(siphash24(&key, &data), h.finish(), "len {len}");
            assert!(name_hash(&key, &data) < HASH_LIMIT);
        }
    }

    const SEED: u32 = 0x1234_5678;

    fn block_with(level: u8, entries: &[IndexEntry]) -> [u8; BLOCK_SIZE] {
        let mut b = [0u8; BLOCK_SIZE];
        init_index_block(&mut b, level, entries).unwrap();
        set_index_checksum(&mut b, SEED, 12, 3);
        b
    }

    fn e(hash: u64, block: u32) -> IndexEntry {
        IndexEntry { hash, block }
    }

    #[test]
    fn validate_and_search() {
        let b = block_with(1, &[e(0, 2), e(100, 5), e(200, 3)]);
        let v = IndexBlock::validate(&b, SEED, 12, 3, 6).unwrap();
        assert_eq!((v.level(), v.count(), v.is_full()), (1, 3, false));
        assert_eq!(v.child_for(0), 0);
        assert_eq!(v.child_for(99), 0);
        assert_eq!(v.child_for(100), 1);
        assert_eq!(v.child_for(u64::MAX), 2);
        assert_eq!(v.range_end(0, HASH_LIMIT), 100);
        assert_eq!(v.range_end(2, HASH_LIMIT), HASH_LIMIT);
        assert_eq!(v.entry(3), None);
        // Another inode, generation or a child past the end.
        assert_eq!(
            IndexBlock::validate(&b, SEED, 13, 3, 6).err(),
            Some(FormatError::DirIndexChecksum)
        );
        assert_eq!(
            IndexBlock::validate(&b, SEED, 12, 3, 5).err(),
            Some(FormatError::DirIndex)
        );
        let view = IndexBlock::revalidated(&b).unwrap();
        assert_eq!((view.count(), view.entry(2)), (3, Some(e(200, 3))));
        let mut bad = b;
        bad[6] = 0;
        assert_eq!(
            IndexBlock::revalidated(&bad).err(),
            Some(FormatError::DirIndex)
        );
        bad = b;
        bad[0] = 0;
        assert_eq!(
            IndexBlock::revalidated(&bad).err(),
            Some(FormatError::DirIndex)
        );
    }

    #[test]
    fn validate_rejects_each_broken_field() {
        let good = block_with(0, &[e(0, 2), e(7, 3)]);
        type Mutation = fn(&mut [u8; BLOCK_SIZE]);
        let cases: &[(&str, Mutation)] = &[
            ("magic", |b| b[0] = b'X'),
            ("level", |b| b[4] = 3),
            ("reserved byte", |b| b[5] = 1),
            ("reserved word", |b| b[12] = 1),
            ("count 0", |b| b[6] = 0),
            ("count past entries", |b| b[6] = 3),
            ("count too big", |b| {
                b[6..8].copy_from_slice(&340u16.to_le_bytes())
            }),
            ("bytes after entries", |b| b[0xFF0] = 1),
            ("hash order", |b| {
                b[28..36].copy_from_slice(&0u64.to_le_bytes())
            }),
            ("hash limit", |b| {
                b[28..36].copy_from_slice(&HASH_LIMIT.to_le_bytes())
            }),
            ("child 1", |b| {
                b[24..28].copy_from_slice(&1u32.to_le_bytes())
            }),
            ("child 0", |b| {
                b[36..40].copy_from_slice(&0u32.to_le_bytes())
            }),
        ];
        assert!(IndexBlock::validate(&good, SEED, 12, 3, 4).is_ok());
        for (what, mutate) in cases {
            let mut b = good;
            mutate(&mut b);
            set_index_checksum(&mut b, SEED, 12, 3);
            assert!(IndexBlock::validate(&b, SEED, 12, 3, 4).is_err(), "{what}");
        }
    }

    #[test]
    fn insert_split_and_truncate() {
        let mut b = block_with(0, &[e(0, 2)]);
        for i in 1..INDEX_MAX_ENTRIES as u64 {
            insert_index_entry(&mut b, i as usize, e(i * 10, 2 + i as u32)).unwrap();
        }
        let v = IndexBlock::check(&b, 1000).unwrap();
        assert!(v.is_full());
        assert_eq!(
            insert_index_entry(&mut b, 0, e(1, 999)),
            Err(FormatError::DirIndex)
        );
        let mut upper = [0u8; BLOCK_SIZE];
        let (kept, first) = copy_upper_half(&b, &mut upper).unwrap();
        truncate_index_block(&mut b, kept).unwrap();
        assert_eq!(kept, 169);
        let (lo, hi) = (
            IndexBlock::check(&b, 1000).unwrap(),
            IndexBlock::check(&upper, 1000).unwrap(),
        );
        assert_eq!((lo.count(), hi.count()), (169, 170));
        assert_eq!(first, 1690);
        assert_eq!(hi.entry(0), Some(e(1690, 171)));
        assert_eq!(lo.entry(168), Some(e(1680, 170)));
        // Insert in the middle keeps order.
        insert_index_entry(&mut b, 1, e(5, 700)).unwrap();
        let lo = IndexBlock::check(&b, 1000).unwrap();
        assert_eq!(
            (lo.entry(1), lo.entry(2)),
            (Some(e(5, 700)), Some(e(10, 3)))
        );
    }

    #[test]
    fn leaf_split_shares_bytes_at_a_hash_boundary() {
        let mut v: Vec<(u64, u16)> = (0..200).map(|i| (1000 - i, 20)).collect();
        let h = leaf_split_hash(&mut v).unwrap();
        assert_eq!(h, 901);
        // One big entry at the top moves the boundary down.
        let mut v: Vec<(u64, u16)> = (0..100).map(|i| (i, 20)).collect();
        v.push((500, 264));
        assert_eq!(leaf_split_hash(&mut v), Some(57));
        // Equal hashes stay together.
        let mut v: Vec<(u64, u16)> = (0..10).map(|i| (i / 5, 400)).collect();
        assert_eq!(leaf_split_hash(&mut v), Some(1));
        let mut v: Vec<(u64, u16)> = (0..10).map(|_| (4, 400)).collect();
        assert_eq!(leaf_split_hash(&mut v), None);
        // No boundary where both sides fit.
        let mut v = [(1, 4000), (2, 200), (3, 4000)];
        assert_eq!(leaf_split_hash(&mut v), None);
    }
}
