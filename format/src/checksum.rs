// Checksums of every checksummed structure (docs/format.md, "Checksums").
//
// All are `crc32c(seed, ...)` (raw update, no inversion) where `seed` is the superblock's
// `checksum_seed`; a checksum field inside the covered range counts as four zero bytes.

use crate::crc32c::crc32c;
use crate::disk::{
    GroupDesc, IndirectBlock, SuperBlock, BLOCK_SIZE, DIR_INDEX_CHECKSUM_OFFSET, DIR_TAIL_OFFSET,
    GROUP_DESC_CHECKSUM_OFFSET, INDIRECT_CHECKSUM_OFFSET, INODE_CHECKSUM_OFFSET, INODE_SIZES,
    SUPERBLOCK_CHECKSUM_OFFSET,
};
use crate::error::{FormatError, Result};
use core::mem::offset_of;

/// The reflected Castagnoli polynomial.
pub const CRC32C_POLY: u32 = 0x82F6_3B78;

/// Offset of the checksum in journal metadata blocks (superblock, descriptor, revoke,
/// commit).
pub const JOURNAL_CHECKSUM_OFFSET: usize = 0xFFC;

/// The checksum seed of a filesystem UUID: `crc32c(0xFFFFFFFF, uuid)`.
pub fn checksum_seed(uuid: &[u8; 16]) -> u32 {
    crc32c(0xFFFF_FFFF, uuid)
}

/// CRC of `bytes` with the 4-byte field at `field` counted as zeros.
fn crc_with_zeroed_field(crc: u32, bytes: &[u8], field: usize) -> u32 {
    let head = bytes.get(..field).unwrap_or(bytes);
    let crc = crc32c(crc, head);
    let crc = crc32c(crc, &[0; 4]);
    crc32c(crc, bytes.get(field + 4..).unwrap_or(&[]))
}

/// The product of two polynomials over GF(2) modulo the CRC32C polynomial, in the CRC's
/// reflected bit order (bit 31 is the coefficient of x^0). Branch-free: about a hundred
/// cycles, less than hashing a few hundred bytes even with the `crc32` instruction.
const fn gf2_mul_mod(a: u32, b: u32) -> u32 {
    let mut product = 0;
    let mut b_times_x_i = b;
    let mut i = 0;
    while i < 32 {
        product ^= b_times_x_i & 0u32.wrapping_sub((a >> (31 - i)) & 1);
        b_times_x_i = (b_times_x_i >> 1) ^ (CRC32C_POLY & 0u32.wrapping_sub(b_times_x_i & 1));
        i += 1;
    }
    product
}

/// `x^(8n)` modulo the polynomial for n = 0..=4096: what taking `n` zero bytes multiplies
/// a CRC state by (16 KiB, so that carrying a patch to the end of a block is one
/// multiplication).
static ZERO_BYTES: [u32; BLOCK_SIZE + 1] = {
    let mut table = [0u32; BLOCK_SIZE + 1];
    let mut x_8n: u32 = 1 << 31;
    let mut n = 0;
    while n <= BLOCK_SIZE {
        table[n] = x_8n;
        x_8n = gf2_mul_mod(x_8n, 1 << (31 - 8));
        n += 1;
    }
    table
};

/// The CRC32C state after `crc` has taken `n` more zero bytes: one multiplication per
/// 4096 bytes (a zero byte multiplies the state by x^8).
pub fn crc32c_zero_bytes(crc: u32, n: u32) -> u32 {
    let mut crc = crc;
    let mut n = n as usize;
    let block = ZERO_BYTES.last().copied().unwrap_or(1 << 31);
    while n > BLOCK_SIZE {
        crc = gf2_mul_mod(block, crc);
        n -= BLOCK_SIZE;
    }
    gf2_mul_mod(ZERO_BYTES.get(n).copied().unwrap_or(1 << 31), crc)
}

/// A checksum after some of the bytes it covers changed, from the checksum `sum` before:
/// `delta_crc` is `crc32c(0, old ^ new)` over the changed bytes and `after` the number of
/// covered bytes after them. A raw CRC is linear in its input, so a change of a few bytes
/// is hashed without rehashing the rest.
pub fn patch_checksum(sum: u32, delta_crc: u32, after: u32) -> u32 {
    sum ^ crc32c_zero_bytes(delta_crc, after)
}

/// `seed` extended with two u32 words (inode number and generation, or group number).
fn seed_with(seed: u32, a: u32, b: Option<u32>) -> u32 {
    let crc = crc32c(seed, &a.to_le_bytes());
    match b {
        Some(b) => crc32c(crc, &b.to_le_bytes()),
        None => crc,
    }
}

impl SuperBlock {
    /// The checksum this superblock should have (over bytes `0..0x3FC`, seeded with its own
    /// `checksum_seed`).
    pub fn compute_checksum(&self) -> u32 {
        let bytes = self.as_bytes();
        crc32c(
            self.checksum_seed.get(),
            bytes.get(..SUPERBLOCK_CHECKSUM_OFFSET).unwrap_or(bytes),
        )
    }

    /// Stores the correct checksum.
    pub fn update_checksum(&mut self) {
        let c = self.compute_checksum();
        self.checksum.set(c);
    }

    /// Sets `last_orphan` (the orphan list's head, which every unlink changes twice) and
    /// patches the checksum for the four bytes instead of rehashing the superblock. The
    /// checksum must be correct before.
    pub fn set_last_orphan(&mut self, ino: u32) {
        let delta = (self.last_orphan.get() ^ ino).to_le_bytes();
        self.last_orphan.set(ino);
        let after = SUPERBLOCK_CHECKSUM_OFFSET - offset_of!(SuperBlock, last_orphan) - 4;
        let sum = patch_checksum(self.checksum.get(), crc32c(0, &delta), after as u32);
        self.checksum.set(sum);
    }

    /// Checks the stored checksum.
    pub fn verify_checksum(&self) -> Result<()> {
        if self.checksum.get() == self.compute_checksum() {
            Ok(())
        } else {
            Err(FormatError::SuperBlockChecksum)
        }
    }
}

impl GroupDesc {
    /// The checksum descriptor `g` should have.
    pub fn compute_checksum(&self, seed: u32, g: u32) -> u32 {
        crc_with_zeroed_field(
            seed_with(seed, g, None),
            self.as_bytes(),
            GROUP_DESC_CHECKSUM_OFFSET,
        )
    }

    /// Stores the correct checksum for group `g`.
    pub fn update_checksum(&mut self, seed: u32, g: u32) {
        let c = self.compute_checksum(seed, g);
        self.checksum.set(c);
    }

    /// Checks the stored checksum of descriptor `g`.
    pub fn verify_checksum(&self, seed: u32, g: u32) -> Result<()> {
        if self.checksum.get() == self.compute_checksum(seed, g) {
            Ok(())
        } else {
            Err(FormatError::GroupDescChecksum)
        }
    }

    /// Checks group `g`'s block bitmap against the checksum in this descriptor.
    pub fn verify_block_bitmap(&self, seed: u32, g: u32, bitmap: &[u8; BLOCK_SIZE]) -> Result<()> {
        if self.block_bitmap_checksum.get() == bitmap_checksum(seed, g, bitmap) {
            Ok(())
        } else {
            Err(FormatError::BlockBitmapChecksum)
        }
    }

    /// Checks group `g`'s inode bitmap against the checksum in this descriptor.
    pub fn verify_inode_bitmap(&self, seed: u32, g: u32, bitmap: &[u8; BLOCK_SIZE]) -> Result<()> {
        if self.inode_bitmap_checksum.get() == bitmap_checksum(seed, g, bitmap) {
            Ok(())
        } else {
            Err(FormatError::InodeBitmapChecksum)
        }
    }

    /// Stores the checksum of group `g`'s block bitmap (update the descriptor checksum
    /// afterwards).
    pub fn set_block_bitmap_checksum(&mut self, seed: u32, g: u32, bitmap: &[u8; BLOCK_SIZE]) {
        self.block_bitmap_checksum
            .set(bitmap_checksum(seed, g, bitmap));
    }

    /// Stores the checksum of group `g`'s inode bitmap (update the descriptor checksum
    /// afterwards).
    pub fn set_inode_bitmap_checksum(&mut self, seed: u32, g: u32, bitmap: &[u8; BLOCK_SIZE]) {
        self.inode_bitmap_checksum
            .set(bitmap_checksum(seed, g, bitmap));
    }
}

/// Checksum of a block or inode bitmap of group `g` (stored in the group descriptor).
pub fn bitmap_checksum(seed: u32, g: u32, bitmap: &[u8; BLOCK_SIZE]) -> u32 {
    crc32c(seed_with(seed, g, None), bitmap)
}

/// [`bitmap_checksum`] after bits `first..first + count` of the bitmap flipped, from the
/// checksum `sum` before: it hashes the flipped bytes, not the whole bitmap, which every
/// allocation and free would otherwise do.
pub fn bitmap_checksum_flip(sum: u32, first: u32, count: u32) -> u32 {
    const BITS: u32 = BLOCK_SIZE as u32 * 8;
    let end = first.saturating_add(count).min(BITS);
    if first >= end {
        return sum;
    }
    let end_byte = end.div_ceil(8);
    let mut delta_crc = 0;
    let mut chunk = [0u8; 64];
    let mut used = 0;
    for byte in first / 8..end_byte {
        let lo = first.max(byte * 8) - byte * 8;
        let hi = end.min(byte * 8 + 8) - byte * 8;
        if let Some(slot) = chunk.get_mut(used) {
            *slot = ((1u16 << hi) - (1u16 << lo)) as u8;
        }
        used += 1;
        if used == chunk.len() {
            delta_crc = crc32c(delta_crc, &chunk);
            used = 0;
        }
    }
    delta_crc = crc32c(delta_crc, chunk.get(..used).unwrap_or(&[]));
    patch_checksum(sum, delta_crc, BITS / 8 - end_byte)
}

fn inode_slot_ok(raw: &[u8]) -> Result<()> {
    if INODE_SIZES.iter().any(|&s| usize::from(s) == raw.len()) {
        Ok(())
    } else {
        Err(FormatError::BufferSize)
    }
}

/// The generation stored in a raw inode.
fn raw_generation(raw: &[u8]) -> u32 {
    match raw.get(0x24..0x28) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Checksum of inode `ino` whose `inode_size` bytes are `raw` (length 256, 512 or 1024);
/// the generation is read from `raw`.
pub fn inode_checksum(seed: u32, ino: u32, raw: &[u8]) -> Result<u32> {
    inode_slot_ok(raw)?;
    Ok(crc_with_zeroed_field(
        seed_with(seed, ino, Some(raw_generation(raw))),
        raw,
        INODE_CHECKSUM_OFFSET,
    ))
}

/// Stores the checksum of inode `ino` in `raw` (its `inode_size` bytes).
pub fn set_inode_checksum(seed: u32, ino: u32, raw: &mut [u8]) -> Result<()> {
    let c = inode_checksum(seed, ino, raw)?;
    match raw.get_mut(INODE_CHECKSUM_OFFSET..INODE_CHECKSUM_OFFSET + 4) {
        Some(f) => {
            f.copy_from_slice(&c.to_le_bytes());
            Ok(())
        }
        None => Err(FormatError::BufferSize),
    }
}

/// Checks the checksum of inode `ino` stored in `raw` (its `inode_size` bytes).
pub fn verify_inode_checksum(seed: u32, ino: u32, raw: &[u8]) -> Result<()> {
    let c = inode_checksum(seed, ino, raw)?;
    match raw.get(INODE_CHECKSUM_OFFSET..INODE_CHECKSUM_OFFSET + 4) {
        Some(&[a, b, cc, d]) if u32::from_le_bytes([a, b, cc, d]) == c => Ok(()),
        _ => Err(FormatError::InodeChecksum),
    }
}

/// Checksum of a directory block of directory `dir_ino`/`dir_generation` (bytes `0..4084`).
pub fn dir_block_checksum(
    seed: u32,
    dir_ino: u32,
    dir_generation: u32,
    block: &[u8; BLOCK_SIZE],
) -> u32 {
    let covered = block.get(..DIR_TAIL_OFFSET).unwrap_or(block);
    crc32c(seed_with(seed, dir_ino, Some(dir_generation)), covered)
}

/// The checksum of index block `block` of directory `dir_ino`/`dir_generation`: bytes
/// `0..0xFFC` (docs/format.md, "Indexed directories").
pub fn dir_index_checksum(
    seed: u32,
    dir_ino: u32,
    dir_generation: u32,
    block: &[u8; BLOCK_SIZE],
) -> u32 {
    let covered = block.get(..DIR_INDEX_CHECKSUM_OFFSET).unwrap_or(block);
    crc32c(seed_with(seed, dir_ino, Some(dir_generation)), covered)
}

impl IndirectBlock {
    /// The checksum this indirect block of inode `ino`/`generation` should have.
    pub fn compute_checksum(&self, seed: u32, ino: u32, generation: u32) -> u32 {
        let bytes: &[u8; BLOCK_SIZE] = zerocopy::transmute_ref!(self);
        crc32c(
            seed_with(seed, ino, Some(generation)),
            bytes.get(..INDIRECT_CHECKSUM_OFFSET).unwrap_or(bytes),
        )
    }

    /// Stores the correct checksum and zeroes the reserved word.
    pub fn update_checksum(&mut self, seed: u32, ino: u32, generation: u32) {
        self.reserved.set(0);
        let c = self.compute_checksum(seed, ino, generation);
        self.checksum.set(c);
    }

    /// Checks the checksum (and that the reserved word is zero).
    pub fn verify_checksum(&self, seed: u32, ino: u32, generation: u32) -> Result<()> {
        if self.reserved.get() == 0
            && self.checksum.get() == self.compute_checksum(seed, ino, generation)
        {
            Ok(())
        } else {
            Err(FormatError::IndirectChecksum)
        }
    }
}

/// Checksum of a journal metadata block (bytes `0..0xFFC`).
pub fn journal_block_checksum(seed: u32, block: &[u8; BLOCK_SIZE]) -> u32 {
    crc32c(seed, block.get(..JOURNAL_CHECKSUM_OFFSET).unwrap_or(block))
}

/// Stores the checksum of a journal metadata block at `0xFFC`.
pub fn set_journal_block_checksum(seed: u32, block: &mut [u8; BLOCK_SIZE]) {
    let c = journal_block_checksum(seed, block);
    if let Some(f) = block.get_mut(JOURNAL_CHECKSUM_OFFSET..) {
        f.copy_from_slice(&c.to_le_bytes());
    }
}

/// Checks the checksum of a journal metadata block.
pub fn verify_journal_block_checksum(seed: u32, block: &[u8; BLOCK_SIZE]) -> Result<()> {
    match block.get(JOURNAL_CHECKSUM_OFFSET..) {
        Some(&[a, b, c, d])
            if u32::from_le_bytes([a, b, c, d]) == journal_block_checksum(seed, block) =>
        {
            Ok(())
        }
        _ => Err(FormatError::JournalChecksum),
    }
}

/// Checksum of a block logged in the journal, stored in its descriptor tag: over the
/// transaction `sequence` (u64 LE) then the block's real (unescaped) 4096 bytes.
pub fn journal_data_checksum(seed: u32, sequence: u64, data: &[u8; BLOCK_SIZE]) -> u32 {
    crc32c(crc32c(seed, &sequence.to_le_bytes()), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crc32c::crc32c;

    #[test]
    fn zero_bytes_shift_matches_hashing_zeros() {
        for crc in [0u32, 1, 0x8000_0000, 0xDEAD_BEEF, !0] {
            for n in [0u32, 1, 2, 3, 7, 8, 255, 1000, 4095, 4096, 70_000] {
                let zeros = [0u8; 70_000];
                let zeros = &zeros[..n as usize];
                assert_eq!(
                    crc32c_zero_bytes(crc, n),
                    crc32c(crc, zeros),
                    "{crc:#x} {n}"
                );
            }
        }
    }

    #[test]
    fn bitmap_flip_matches_rehashing() {
        let mut rng = crate::test_rng::xorshift64(7);
        let mut bitmap = [0u8; BLOCK_SIZE];
        for b in bitmap.iter_mut() {
            *b = rng() as u8;
        }
        let seed = 0x1234_5678;
        let mut sum = bitmap_checksum(seed, 3, &bitmap);
        let bits = BLOCK_SIZE as u32 * 8;
        let fixed = [
            (0, 1),
            (bits - 1, 1),
            (0, bits),
            (5, 0),
            (7, 2),
            (8, 8),
            (9, 700),
        ];
        let random = (0..300).map(|_| (rng() as u32 % bits, rng() as u32 % 3000));
        for (first, count) in fixed.into_iter().chain(random).chain([(bits - 3, 100)]) {
            for i in first..first.saturating_add(count).min(bits) {
                let was = crate::disk::bitmap_test(&bitmap, i);
                crate::disk::bitmap_set(&mut bitmap, i, !was);
            }
            sum = bitmap_checksum_flip(sum, first, count);
            assert_eq!(sum, bitmap_checksum(seed, 3, &bitmap), "{first} {count}");
        }
    }

    #[test]
    fn last_orphan_patch_matches_rehashing() {
        let mut sb = SuperBlock::zeroed();
        sb.checksum_seed.set(0xABCD_0123);
        sb.inodes_count.set(1000);
        sb.update_checksum();
        for ino in [12u32, 0, 0xFFFF_FFFF, 77, 77, 0] {
            sb.set_last_orphan(ino);
            assert_eq!(sb.last_orphan.get(), ino);
            assert!(sb.verify_checksum().is_ok());
            assert_eq!(sb.checksum.get(), sb.compute_checksum());
        }
    }

    #[test]
    fn seed_is_crc_of_uuid() {
        let uuid = *b"0123456789abcdef";
        assert_eq!(checksum_seed(&uuid), crc32c(!0, &uuid));
        assert_ne!(checksum_seed(&uuid), checksum_seed(&[0; 16]));
    }

    #[test]
    fn group_desc_checksum_covers_group_number_and_every_bit() {
        let mut d = GroupDesc::zeroed();
        d.block_bitmap.set(100);
        d.free_blocks.set(5);
        d.update_checksum(77, 3);
        assert!(d.verify_checksum(77, 3).is_ok());
        assert_eq!(
            d.verify_checksum(77, 4),
            Err(FormatError::GroupDescChecksum)
        );
        assert_eq!(
            d.verify_checksum(78, 3),
            Err(FormatError::GroupDescChecksum)
        );
        // Spec: crc32c(seed, g LE, 60 bytes, 4 zero bytes).
        let mut manual = crc32c(77, &3u32.to_le_bytes());
        manual = crc32c(manual, &d.as_bytes()[..60]);
        manual = crc32c(manual, &[0; 4]);
        assert_eq!(d.checksum.get(), manual);
        let bytes = *d.as_bytes();
        for bit in 0..GROUP_DESC_SIZE_BITS {
            let mut c = bytes;
            c[bit / 8] ^= 1 << (bit % 8);
            let table: [u8; BLOCK_SIZE] = core::array::from_fn(|i| c.get(i).copied().unwrap_or(0));
            let dd = GroupDesc::in_block(&table, 0);
            assert!(dd.verify_checksum(77, 3).is_err(), "bit {bit}");
        }
    }

    const GROUP_DESC_SIZE_BITS: usize = 64 * 8;

    #[test]
    fn bitmap_checksums() {
        let mut bm = [0u8; BLOCK_SIZE];
        bm[0] = 0x0F;
        let mut d = GroupDesc::zeroed();
        d.set_block_bitmap_checksum(9, 1, &bm);
        d.set_inode_bitmap_checksum(9, 1, &bm);
        assert!(d.verify_block_bitmap(9, 1, &bm).is_ok());
        assert!(d.verify_inode_bitmap(9, 1, &bm).is_ok());
        assert_eq!(
            d.verify_block_bitmap(9, 2, &bm),
            Err(FormatError::BlockBitmapChecksum)
        );
        for bit in (0..BLOCK_SIZE * 8).step_by(13) {
            let mut c = bm;
            c[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                d.verify_block_bitmap(9, 1, &c),
                Err(FormatError::BlockBitmapChecksum)
            );
            assert_eq!(
                d.verify_inode_bitmap(9, 1, &c),
                Err(FormatError::InodeBitmapChecksum)
            );
        }
    }

    #[test]
    fn inode_checksum_layout() {
        let mut raw = [0u8; 512];
        raw[0x24..0x28].copy_from_slice(&99u32.to_le_bytes());
        raw[300] = 1;
        set_inode_checksum(5, 12, &mut raw).unwrap();
        let mut manual = crc32c(5, &12u32.to_le_bytes());
        manual = crc32c(manual, &99u32.to_le_bytes());
        manual = crc32c(manual, &raw[..0xFC]);
        manual = crc32c(manual, &[0; 4]);
        manual = crc32c(manual, &raw[0x100..]);
        assert_eq!(raw[0xFC..0x100], manual.to_le_bytes());
        assert!(verify_inode_checksum(5, 12, &raw).is_ok());
        assert_eq!(
            verify_inode_checksum(5, 13, &raw),
            Err(FormatError::InodeChecksum)
        );
        assert_eq!(
            inode_checksum(5, 12, &raw[..300]),
            Err(FormatError::BufferSize)
        );
        assert_eq!(
            set_inode_checksum(5, 12, &mut [0u8; 100]),
            Err(FormatError::BufferSize)
        );
    }

    #[test]
    fn dir_and_journal_checksum_layout() {
        let mut block = [1u8; BLOCK_SIZE];
        let manual = crc32c(
            crc32c(crc32c(4, &2u32.to_le_bytes()), &6u32.to_le_bytes()),
            &block[..4084],
        );
        assert_eq!(dir_block_checksum(4, 2, 6, &block), manual);
        block[4090] = 9;
        assert_eq!(dir_block_checksum(4, 2, 6, &block), manual);
        set_journal_block_checksum(4, &mut block);
        assert_eq!(block[0xFFC..], crc32c(4, &block[..0xFFC]).to_le_bytes());
        assert!(verify_journal_block_checksum(4, &block).is_ok());
        block[0] ^= 0x80;
        assert_eq!(
            verify_journal_block_checksum(4, &block),
            Err(FormatError::JournalChecksum)
        );
    }
}
