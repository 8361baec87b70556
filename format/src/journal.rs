// Journal block layouts (docs/format.md, "Journal"): superblock, descriptor, revoke and
// commit blocks, the transaction checksum, the empty journal mkfs writes, and escaping of
// logged blocks.

use crate::checksum::{
    set_journal_block_checksum, verify_journal_block_checksum, JOURNAL_CHECKSUM_OFFSET,
};
use crate::crc32c::crc32c;
use crate::disk::{BLOCK_SIZE, BLOCK_SIZE_U64};
use crate::error::{FormatError, Result};
use core::mem::{offset_of, size_of};
use zerocopy::little_endian::{I64, U32, U64};

/// Magic of every journal metadata block (`"GEAJ"` on disk).
pub const JOURNAL_MAGIC: u32 = 0x4A41_4547;
/// Block type: journal superblock.
pub const JT_SUPERBLOCK: u32 = 1;
/// Block type: descriptor.
pub const JT_DESCRIPTOR: u32 = 2;
/// Block type: commit.
pub const JT_COMMIT: u32 = 3;
/// Block type: revoke.
pub const JT_REVOKE: u32 = 4;
/// Descriptor tag flag: the logged block began with [`JOURNAL_MAGIC`], zeroed in the log.
pub const TAG_FLAG_ESCAPED: u32 = 1 << 0;
/// Tags in one descriptor block.
pub const MAX_DESCRIPTOR_TAGS: usize = 254;
/// Block numbers in one revoke block.
pub const MAX_REVOKE_RECORDS: usize = 509;
/// First log block (block 0 of the journal is its superblock).
pub const JOURNAL_FIRST_LOG_BLOCK: u64 = 1;
/// Journal incompatible feature: commit blocks carry a `transaction_checksum`.
pub const JOURNAL_FEATURE_TXN_CHECKSUM: u32 = 1 << 0;
/// Every journal feature bit this implementation knows; a reader refuses to replay a
/// journal with any other bit set.
pub const JOURNAL_FEATURES_SUPPORTED: u32 = JOURNAL_FEATURE_TXN_CHECKSUM;
/// The journal features mkfs sets.
pub const JOURNAL_FEATURES_DEFAULT: u32 = JOURNAL_FEATURE_TXN_CHECKSUM;

/// The 16-byte header of every journal metadata block.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct JournalHeader {
    /// [`JOURNAL_MAGIC`].
    pub magic: U32,
    /// `JT_*`.
    pub block_type: U32,
    /// Transaction id.
    pub sequence: U64,
}

/// The journal superblock (block 0 of the journal).
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct JournalSuperBlock {
    /// Type [`JT_SUPERBLOCK`], sequence 0.
    pub header: JournalHeader,
    /// 4096.
    pub block_size: U32,
    /// Journal length in blocks (the superblock's `journal_blocks`).
    pub max_len: U32,
    /// First log block: 1.
    pub first: U64,
    /// Log block of the oldest live transaction; 0 = journal empty.
    pub start: U64,
    /// First expected transaction id.
    pub sequence: U64,
    /// Error recorded by the journal, 0 = none.
    pub errno: U32,
    /// Incompatible journal features (`JOURNAL_FEATURE_*`).
    pub features: U32,
    /// Log block where the next transaction would be written, as of the last write of
    /// this block; 0 when the journal is empty. Informative only.
    pub head: U64,
    /// Zero.
    pub reserved: [u8; 0xFFC - 0x40],
    /// Checksum over bytes `0..0xFFC`.
    pub checksum: U32,
}

/// One descriptor tag: a block logged in the following log blocks.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct JournalTag {
    /// Filesystem block the logged block belongs to.
    pub target: U64,
    /// `TAG_FLAG_*`.
    pub flags: U32,
    /// `journal_data_checksum(seed, sequence, real contents)`.
    pub checksum: U32,
}

/// A descriptor block: `count` tags, each followed in the log by its data block.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct JournalDescriptor {
    /// Type [`JT_DESCRIPTOR`], the transaction id.
    pub header: JournalHeader,
    /// Tags used.
    pub count: U32,
    /// Tags.
    pub tags: [JournalTag; MAX_DESCRIPTOR_TAGS],
    /// Zero.
    pub reserved: [u8; 8],
    /// Checksum over bytes `0..0xFFC`.
    pub checksum: U32,
}

/// A revoke block: `count` block numbers whose earlier log copies must not be replayed.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct JournalRevoke {
    /// Type [`JT_REVOKE`], the transaction id.
    pub header: JournalHeader,
    /// Records used.
    pub count: U32,
    /// Revoked block numbers.
    pub blocks: [U64; MAX_REVOKE_RECORDS],
    /// Checksum over bytes `0..0xFFC`.
    pub checksum: U32,
}

/// A commit block: ends a transaction.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct JournalCommit {
    /// Type [`JT_COMMIT`], the transaction id.
    pub header: JournalHeader,
    /// Commit time, seconds.
    pub commit_sec: I64,
    /// Commit time, nanoseconds.
    pub commit_nsec: U32,
    /// [`TransactionChecksum`] of the transaction's descriptor and revoke blocks.
    pub transaction_checksum: U32,
    /// Zero.
    pub reserved: [u8; 0xFFC - 0x20],
    /// Checksum over bytes `0..0xFFC`.
    pub checksum: U32,
}

const _: () = {
    assert!(size_of::<JournalHeader>() == 16);
    assert!(size_of::<JournalSuperBlock>() == BLOCK_SIZE);
    assert!(offset_of!(JournalSuperBlock, block_size) == 0x10);
    assert!(offset_of!(JournalSuperBlock, max_len) == 0x14);
    assert!(offset_of!(JournalSuperBlock, first) == 0x18);
    assert!(offset_of!(JournalSuperBlock, start) == 0x20);
    assert!(offset_of!(JournalSuperBlock, sequence) == 0x28);
    assert!(offset_of!(JournalSuperBlock, errno) == 0x30);
    assert!(offset_of!(JournalSuperBlock, features) == 0x34);
    assert!(offset_of!(JournalSuperBlock, head) == 0x38);
    assert!(offset_of!(JournalSuperBlock, checksum) == 0xFFC);
    assert!(size_of::<JournalTag>() == 16);
    assert!(size_of::<JournalDescriptor>() == BLOCK_SIZE);
    assert!(offset_of!(JournalDescriptor, count) == 0x10);
    assert!(offset_of!(JournalDescriptor, tags) == 0x14);
    assert!(offset_of!(JournalDescriptor, checksum) == 0xFFC);
    assert!(size_of::<JournalRevoke>() == BLOCK_SIZE);
    assert!(offset_of!(JournalRevoke, blocks) == 0x14);
    assert!(offset_of!(JournalRevoke, checksum) == 0xFFC);
    assert!(size_of::<JournalCommit>() == BLOCK_SIZE);
    assert!(offset_of!(JournalCommit, commit_sec) == 0x10);
    assert!(offset_of!(JournalCommit, commit_nsec) == 0x18);
    assert!(offset_of!(JournalCommit, transaction_checksum) == 0x1C);
    assert!(offset_of!(JournalCommit, checksum) == 0xFFC);
};

/// Checks magic, block type and checksum of a journal metadata block and returns its
/// header.
pub fn check_journal_block(
    block: &[u8; BLOCK_SIZE],
    seed: u32,
    block_type: u32,
) -> Result<&JournalHeader> {
    let sb: &JournalSuperBlock = zerocopy::transmute_ref!(block);
    let h = &sb.header;
    if h.magic.get() != JOURNAL_MAGIC || h.block_type.get() != block_type {
        return Err(FormatError::JournalFormat);
    }
    verify_journal_block_checksum(seed, block)?;
    Ok(h)
}

/// Zeroes `block` and writes the header of a journal block of type `block_type` (every
/// journal block layout starts with its [`JournalHeader`]).
fn init_block(block: &mut [u8; BLOCK_SIZE], block_type: u32, sequence: u64) {
    block.fill(0);
    let h = &mut JournalSuperBlock::from_block_mut(block).header;
    h.magic.set(JOURNAL_MAGIC);
    h.block_type.set(block_type);
    h.sequence.set(sequence);
}

/// The first `count` entries of a block's table; `JournalFormat` if `count` exceeds it.
fn used<'a, T>(table: &'a [T], count: &U32) -> Result<&'a [T]> {
    let n = usize::try_from(count.get()).map_err(|_| FormatError::JournalFormat)?;
    table.get(..n).ok_or(FormatError::JournalFormat)
}

/// The next free entry of a block's table, now counted; `None` when the table is full.
fn push_slot<'a, T>(table: &'a mut [T], count: &mut U32) -> Option<&'a mut T> {
    let n = count.get();
    let slot = table.get_mut(usize::try_from(n).ok()?)?;
    count.set(n + 1);
    Some(slot)
}

/// `from_block` and `from_block_mut`: a journal block layout viewed in place.
macro_rules! block_views {
    ($($t:ident: $what:literal;)*) => {$(
        impl $t {
            #[doc = concat!("A ", $what, " viewed in place.")]
            pub fn from_block(block: &[u8; BLOCK_SIZE]) -> &$t {
                zerocopy::transmute_ref!(block)
            }

            #[doc = concat!("A ", $what, " viewed in place, mutable.")]
            pub fn from_block_mut(block: &mut [u8; BLOCK_SIZE]) -> &mut $t {
                zerocopy::transmute_mut!(block)
            }
        }
    )*};
}

block_views! {
    JournalSuperBlock: "journal superblock";
    JournalDescriptor: "descriptor block";
    JournalRevoke: "revoke block";
    JournalCommit: "commit block";
}

impl JournalSuperBlock {
    /// Validates a journal superblock for a journal of `journal_blocks` blocks: header,
    /// checksum, block size, `max_len`, `first` = 1, `start` and `head` each 0 or a log
    /// block (`JournalFormat`/`JournalChecksum`), then the features: `JournalFeature` if
    /// any bit outside [`JOURNAL_FEATURES_SUPPORTED`] is set (the journal must not be
    /// replayed).
    pub fn validate(
        block: &[u8; BLOCK_SIZE],
        seed: u32,
        journal_blocks: u64,
    ) -> Result<&JournalSuperBlock> {
        check_journal_block(block, seed, JT_SUPERBLOCK)?;
        let jsb = Self::from_block(block);
        let max_len = u64::from(jsb.max_len.get());
        let log_pos = |p: u64| p == 0 || (JOURNAL_FIRST_LOG_BLOCK..max_len).contains(&p);
        if u64::from(jsb.block_size.get()) != BLOCK_SIZE_U64
            || max_len != journal_blocks
            || jsb.first.get() != JOURNAL_FIRST_LOG_BLOCK
            || !log_pos(jsb.start.get())
            || !log_pos(jsb.head.get())
        {
            return Err(FormatError::JournalFormat);
        }
        if jsb.unknown_features() != 0 {
            return Err(FormatError::JournalFeature);
        }
        Ok(jsb)
    }

    /// Feature bits set that this implementation does not know.
    pub fn unknown_features(&self) -> u32 {
        self.features.get() & !JOURNAL_FEATURES_SUPPORTED
    }

    /// True when commit blocks carry a transaction checksum to verify.
    pub fn has_txn_checksum(&self) -> bool {
        self.features.get() & JOURNAL_FEATURE_TXN_CHECKSUM != 0
    }

    /// True when the journal holds no live transaction.
    pub fn is_empty(&self) -> bool {
        self.start.get() == 0
    }
}

/// Writes the empty journal superblock mkfs puts at `journal_start`: `start` 0, `head` 0,
/// `sequence` 1, features [`JOURNAL_FEATURES_DEFAULT`], checksummed with `seed`. Fails if
/// `journal_blocks` exceeds `u32::MAX`.
pub fn init_journal_superblock(
    block: &mut [u8; BLOCK_SIZE],
    seed: u32,
    journal_blocks: u64,
) -> Result<()> {
    let max_len = u32::try_from(journal_blocks).map_err(|_| FormatError::BadJournalSize)?;
    init_block(block, JT_SUPERBLOCK, 0);
    let jsb = JournalSuperBlock::from_block_mut(block);
    jsb.block_size.set(BLOCK_SIZE as u32);
    jsb.max_len.set(max_len);
    jsb.first.set(JOURNAL_FIRST_LOG_BLOCK);
    jsb.start.set(0);
    jsb.sequence.set(1);
    jsb.features.set(JOURNAL_FEATURES_DEFAULT);
    jsb.head.set(0);
    set_journal_block_checksum(seed, block);
    Ok(())
}

/// The checksum a commit block carries over its transaction: `crc32c`, seeded with the
/// filesystem checksum seed, of the concatenation in log order of the 4 little-endian
/// bytes of the `checksum` field (`0xFFC`) of every descriptor and revoke block of the
/// transaction (`crc32c(seed, "")` = `seed` when it has none). Fed one block at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionChecksum {
    state: u32,
}

impl TransactionChecksum {
    /// The checksum of a transaction with no descriptor or revoke block yet.
    pub const fn new(seed: u32) -> TransactionChecksum {
        TransactionChecksum { state: seed }
    }

    /// Adds the next descriptor or revoke block of the transaction, by the value of its
    /// `checksum` field.
    pub fn add_block(&mut self, checksum: u32) {
        self.state = crc32c(self.state, &checksum.to_le_bytes());
    }

    /// Adds the next descriptor or revoke block of the transaction, already checksummed:
    /// reads its `checksum` field at `0xFFC`.
    pub fn add_metadata_block(&mut self, block: &[u8; BLOCK_SIZE]) {
        if let Some(&[a, b, c, d]) = block.get(JOURNAL_CHECKSUM_OFFSET..) {
            self.add_block(u32::from_le_bytes([a, b, c, d]));
        }
    }

    /// The checksum of the blocks added so far.
    pub fn value(&self) -> u32 {
        self.state
    }
}

impl JournalDescriptor {
    /// Starts an empty descriptor for transaction `sequence` (zeroes the block).
    pub fn init(block: &mut [u8; BLOCK_SIZE], sequence: u64) -> &mut JournalDescriptor {
        init_block(block, JT_DESCRIPTOR, sequence);
        Self::from_block_mut(block)
    }

    /// The used tags; `JournalFormat` if `count` exceeds [`MAX_DESCRIPTOR_TAGS`].
    pub fn used_tags(&self) -> Result<&[JournalTag]> {
        used(&self.tags, &self.count)
    }

    /// Appends a tag; false when the descriptor is full.
    pub fn push_tag(&mut self, target: u64, flags: u32, checksum: u32) -> bool {
        let Some(t) = push_slot(&mut self.tags, &mut self.count) else {
            return false;
        };
        t.target.set(target);
        t.flags.set(flags);
        t.checksum.set(checksum);
        true
    }
}

impl JournalRevoke {
    /// Starts an empty revoke block for transaction `sequence` (zeroes the block).
    pub fn init(block: &mut [u8; BLOCK_SIZE], sequence: u64) -> &mut JournalRevoke {
        init_block(block, JT_REVOKE, sequence);
        Self::from_block_mut(block)
    }

    /// The used records; `JournalFormat` if `count` exceeds [`MAX_REVOKE_RECORDS`].
    pub fn records(&self) -> Result<&[U64]> {
        used(&self.blocks, &self.count)
    }

    /// Appends a revoked block number; false when the block is full.
    pub fn push(&mut self, block: u64) -> bool {
        let Some(b) = push_slot(&mut self.blocks, &mut self.count) else {
            return false;
        };
        b.set(block);
        true
    }
}

impl JournalCommit {
    /// Writes a commit block for transaction `sequence` at time `sec`/`nsec`, carrying
    /// `transaction` (fed with every descriptor and revoke block of the transaction),
    /// checksummed.
    pub fn write(
        block: &mut [u8; BLOCK_SIZE],
        seed: u32,
        sequence: u64,
        sec: i64,
        nsec: u32,
        transaction: &TransactionChecksum,
    ) {
        init_block(block, JT_COMMIT, sequence);
        let c = Self::from_block_mut(block);
        c.commit_sec.set(sec);
        c.commit_nsec.set(nsec);
        c.transaction_checksum.set(transaction.value());
        set_journal_block_checksum(seed, block);
    }

    /// Checks the commit block's `transaction_checksum` against the one computed over the
    /// transaction read from the log: `JournalChecksum` if they differ.
    pub fn check_transaction(&self, transaction: &TransactionChecksum) -> Result<()> {
        if self.transaction_checksum.get() == transaction.value() {
            Ok(())
        } else {
            Err(FormatError::JournalChecksum)
        }
    }
}

/// True if a block to be logged starts with [`JOURNAL_MAGIC`] and so must be escaped.
pub fn needs_escape(data: &[u8; BLOCK_SIZE]) -> bool {
    matches!(data.first_chunk::<4>(), Some(m) if u32::from_le_bytes(*m) == JOURNAL_MAGIC)
}

/// Escapes a block for the log: zeroes its first 4 bytes if they are the magic. Returns
/// whether it did (then set [`TAG_FLAG_ESCAPED`] in its tag).
pub fn escape(data: &mut [u8; BLOCK_SIZE]) -> bool {
    let esc = needs_escape(data);
    if esc {
        if let Some(m) = data.first_chunk_mut::<4>() {
            *m = [0; 4];
        }
    }
    esc
}

/// Restores a logged block whose tag has [`TAG_FLAG_ESCAPED`]: puts the magic back.
pub fn unescape(data: &mut [u8; BLOCK_SIZE]) {
    if let Some(m) = data.first_chunk_mut::<4>() {
        *m = JOURNAL_MAGIC.to_le_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::journal_data_checksum;

    const SEED: u32 = 0xA5A5_0001;

    #[test]
    fn empty_journal_superblock() {
        let mut b = [0xEEu8; BLOCK_SIZE];
        init_journal_superblock(&mut b, SEED, 4096).unwrap();
        assert_eq!(&b[0..4], b"GEAJ");
        assert_eq!(&b[4..8], &1u32.to_le_bytes());
        assert_eq!(&b[0x10..0x14], &4096u32.to_le_bytes());
        assert_eq!(&b[0x14..0x18], &4096u32.to_le_bytes());
        assert_eq!(&b[0x18..0x20], &1u64.to_le_bytes());
        assert_eq!(&b[0x20..0x28], &0u64.to_le_bytes());
        assert_eq!(&b[0x28..0x30], &1u64.to_le_bytes());
        assert_eq!(&b[0x30..0x34], &0u32.to_le_bytes());
        assert_eq!(&b[0x34..0x38], &JOURNAL_FEATURE_TXN_CHECKSUM.to_le_bytes());
        assert_eq!(&b[0x38..0x40], &0u64.to_le_bytes());
        assert!(b[0x40..0xFFC].iter().all(|&x| x == 0));
        let jsb = JournalSuperBlock::validate(&b, SEED, 4096).unwrap();
        assert!(jsb.is_empty());
        assert!(jsb.has_txn_checksum());
        assert_eq!(jsb.unknown_features(), 0);
        assert_eq!((jsb.sequence.get(), jsb.head.get()), (1, 0));
        assert_eq!(
            JournalSuperBlock::validate(&b, SEED, 4097).map(|_| ()),
            Err(FormatError::JournalFormat)
        );
        assert_eq!(
            JournalSuperBlock::validate(&b, SEED + 1, 4096).map(|_| ()),
            Err(FormatError::JournalChecksum)
        );
        assert_eq!(
            init_journal_superblock(&mut b, SEED, 1 << 32),
            Err(FormatError::BadJournalSize)
        );
    }

    #[test]
    fn journal_superblock_rules() {
        let mut good = [0u8; BLOCK_SIZE];
        init_journal_superblock(&mut good, SEED, 2048).unwrap();
        let with = |f: &dyn Fn(&mut JournalSuperBlock)| {
            let mut b = good;
            f(JournalSuperBlock::from_block_mut(&mut b));
            set_journal_block_checksum(SEED, &mut b);
            JournalSuperBlock::validate(&b, SEED, 2048).map(|_| ())
        };
        use FormatError::JournalFormat as F;
        assert_eq!(with(&|_| {}), Ok(()));
        assert_eq!(with(&|j| j.header.magic.set(1)), Err(F));
        assert_eq!(with(&|j| j.header.block_type.set(JT_COMMIT)), Err(F));
        assert_eq!(with(&|j| j.block_size.set(1024)), Err(F));
        assert_eq!(with(&|j| j.first.set(0)), Err(F));
        assert_eq!(with(&|j| j.start.set(1)), Ok(()));
        assert_eq!(with(&|j| j.start.set(2047)), Ok(()));
        assert_eq!(with(&|j| j.start.set(2048)), Err(F));
        assert_eq!(with(&|j| j.head.set(1)), Ok(()));
        assert_eq!(with(&|j| j.head.set(2047)), Ok(()));
        assert_eq!(with(&|j| j.head.set(2048)), Err(F));
        assert_eq!(with(&|j| j.head.set(u64::MAX)), Err(F));
        assert_eq!(with(&|j| j.features.set(0)), Ok(()));
        for bit in 1..32 {
            assert_eq!(
                with(&|j| j.features.set(JOURNAL_FEATURE_TXN_CHECKSUM | 1 << bit)),
                Err(FormatError::JournalFeature),
                "feature bit {bit}"
            );
        }
        // A structural error is reported before an unknown feature.
        assert_eq!(
            with(&|j| {
                j.features.set(1 << 31);
                j.head.set(2048);
            }),
            Err(F)
        );
        // Round trip of a live journal superblock.
        let mut b = good;
        {
            let j = JournalSuperBlock::from_block_mut(&mut b);
            j.start.set(17);
            j.head.set(5);
            j.sequence.set(u64::MAX - 1);
            j.errno.set(5);
        }
        set_journal_block_checksum(SEED, &mut b);
        assert_eq!(&b[0x20..0x28], &17u64.to_le_bytes());
        assert_eq!(&b[0x38..0x40], &5u64.to_le_bytes());
        let j = JournalSuperBlock::validate(&b, SEED, 2048).unwrap();
        assert!(!j.is_empty());
        assert_eq!(
            (j.start.get(), j.head.get(), j.sequence.get(), j.errno.get()),
            (17, 5, u64::MAX - 1, 5)
        );
        for bit in 0..BLOCK_SIZE * 8 {
            let mut b = good;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                JournalSuperBlock::validate(&b, SEED, 2048).is_err(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn descriptor_revoke_commit() {
        let mut b = [0u8; BLOCK_SIZE];
        let d = JournalDescriptor::init(&mut b, 7);
        for i in 0..MAX_DESCRIPTOR_TAGS as u64 {
            assert!(d.push_tag(1000 + i, 0, i as u32));
        }
        assert!(!d.push_tag(1, 0, 0));
        assert_eq!(d.used_tags().unwrap().len(), MAX_DESCRIPTOR_TAGS);
        set_journal_block_checksum(SEED, &mut b);
        let h = check_journal_block(&b, SEED, JT_DESCRIPTOR).unwrap();
        assert_eq!(h.sequence.get(), 7);
        assert_eq!(&b[0x14..0x1C], &1000u64.to_le_bytes());
        let last = 0x14 + 253 * 16;
        assert_eq!(&b[last..last + 8], &1253u64.to_le_bytes());
        assert_eq!(
            check_journal_block(&b, SEED, JT_REVOKE).map(|_| ()),
            Err(FormatError::JournalFormat)
        );
        JournalDescriptor::from_block_mut(&mut b).count.set(255);
        assert_eq!(
            JournalDescriptor::from_block(&b)
                .used_tags()
                .map(|t| t.len()),
            Err(FormatError::JournalFormat)
        );

        let mut r = [0u8; BLOCK_SIZE];
        let rv = JournalRevoke::init(&mut r, 8);
        for i in 0..MAX_REVOKE_RECORDS as u64 {
            assert!(rv.push(i));
        }
        assert!(!rv.push(0));
        assert_eq!(rv.records().unwrap().len(), MAX_REVOKE_RECORDS);
        set_journal_block_checksum(SEED, &mut r);
        assert!(check_journal_block(&r, SEED, JT_REVOKE).is_ok());
        assert_eq!(&r[0xFF4..0xFFC], &508u64.to_le_bytes());
        JournalRevoke::from_block_mut(&mut r).count.set(u32::MAX);
        assert!(JournalRevoke::from_block(&r).records().is_err());

        let mut sum = TransactionChecksum::new(SEED);
        sum.add_metadata_block(&b);
        sum.add_metadata_block(&r);
        let mut c = [0xFFu8; BLOCK_SIZE];
        JournalCommit::write(&mut c, SEED, 9, -1, 5, &sum);
        assert!(check_journal_block(&c, SEED, JT_COMMIT).is_ok());
        let cm = JournalCommit::from_block(&c);
        assert_eq!((cm.commit_sec.get(), cm.commit_nsec.get()), (-1, 5));
        assert_eq!(&c[0x1C..0x20], &sum.value().to_le_bytes());
        assert!(c[0x20..0xFFC].iter().all(|&x| x == 0));
        assert_eq!(cm.check_transaction(&sum), Ok(()));
        assert_eq!(
            cm.check_transaction(&TransactionChecksum::new(SEED)),
            Err(FormatError::JournalChecksum)
        );
        c[0x18] ^= 1;
        assert_eq!(
            check_journal_block(&c, SEED, JT_COMMIT).map(|_| ()),
            Err(FormatError::JournalChecksum)
        );
    }

    #[test]
    fn transaction_checksum() {
        // Empty transaction: crc32c(seed, "") is the seed itself.
        assert_eq!(TransactionChecksum::new(SEED).value(), SEED);
        assert_eq!(TransactionChecksum::new(SEED).value(), crc32c(SEED, &[]));
        // Over the concatenation of the checksum fields, in order.
        let mut sum = TransactionChecksum::new(SEED);
        sum.add_block(0x1122_3344);
        sum.add_block(0xAABB_CCDD);
        let bytes = [0x44, 0x33, 0x22, 0x11, 0xDD, 0xCC, 0xBB, 0xAA];
        assert_eq!(sum.value(), crc32c(SEED, &bytes));
        let mut swapped = TransactionChecksum::new(SEED);
        swapped.add_block(0xAABB_CCDD);
        swapped.add_block(0x1122_3344);
        assert_ne!(swapped.value(), sum.value());
        assert_ne!(TransactionChecksum::new(SEED + 1).value(), SEED);
        // From a block: its field at 0xFFC.
        let mut d = [0u8; BLOCK_SIZE];
        JournalDescriptor::init(&mut d, 3).push_tag(100, 0, 1);
        set_journal_block_checksum(SEED, &mut d);
        let mut a = TransactionChecksum::new(SEED);
        a.add_metadata_block(&d);
        let mut b = TransactionChecksum::new(SEED);
        b.add_block(JournalDescriptor::from_block(&d).checksum.get());
        assert_eq!(a, b);
        assert_eq!(a.value(), crc32c(SEED, &d[0xFFC..]));
    }

    #[test]
    fn escaping_and_data_checksum() {
        let mut data = [3u8; BLOCK_SIZE];
        assert!(!needs_escape(&data));
        assert!(!escape(&mut data));
        data[..4].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
        let original = data;
        let sum = journal_data_checksum(SEED, 5, &original);
        assert!(escape(&mut data));
        assert_eq!(&data[..4], &[0; 4]);
        assert_ne!(journal_data_checksum(SEED, 5, &data), sum);
        unescape(&mut data);
        assert_eq!(data, original);
        assert_eq!(journal_data_checksum(SEED, 5, &data), sum);
        assert_ne!(journal_data_checksum(SEED, 6, &data), sum);
    }
}
