//! Hand-made journals for the fsck tests: transactions built with the format crate's
//! journal builders and written into an image's circular log.

use std::path::{Path, PathBuf};

use super::fsck::{edit_sb, read_block, write_block, Block};
use super::Image;
use aegisfs_format::checksum::{journal_data_checksum, set_journal_block_checksum};
use aegisfs_format::disk::{BLOCK_SIZE, FEATURE_INCOMPAT_RECOVER};
use aegisfs_format::journal::{
    escape, JournalCommit, JournalDescriptor, JournalRevoke, JournalSuperBlock,
    TransactionChecksum, JOURNAL_FIRST_LOG_BLOCK, TAG_FLAG_ESCAPED,
};

/// A block filled with `v`.
pub fn fill(v: u8) -> Box<Block> {
    Box::new([v; BLOCK_SIZE])
}

/// One transaction being built: its blocks in log order and its transaction checksum.
pub struct Txn {
    seed: u32,
    pub seq: u64,
    pub blocks: Vec<Box<Block>>,
    sum: TransactionChecksum,
}

impl Txn {
    pub fn new(seed: u32, seq: u64) -> Txn {
        Txn {
            seed,
            seq,
            blocks: Vec::new(),
            sum: TransactionChecksum::new(seed),
        }
    }

    /// Appends a revoke block for `revoked`.
    pub fn revoke(mut self, revoked: &[u64]) -> Txn {
        let mut r = Box::new([0u8; BLOCK_SIZE]);
        let rv = JournalRevoke::init(&mut r, self.seq);
        for &b in revoked {
            assert!(rv.push(b));
        }
        set_journal_block_checksum(self.seed, &mut r);
        self.sum.add_metadata_block(&r);
        self.blocks.push(r);
        self
    }

    /// Appends a descriptor for `logged` (target, real contents) and the logged copies,
    /// escaped as needed.
    pub fn log(mut self, logged: &[(u64, Box<Block>)]) -> Txn {
        let mut d = Box::new([0u8; BLOCK_SIZE]);
        let mut data = Vec::new();
        {
            let desc = JournalDescriptor::init(&mut d, self.seq);
            for (target, content) in logged {
                let csum = journal_data_checksum(self.seed, self.seq, content);
                let mut copy = content.clone();
                let flags = if escape(&mut copy) {
                    TAG_FLAG_ESCAPED
                } else {
                    0
                };
                assert!(desc.push_tag(*target, flags, csum));
                data.push(copy);
            }
        }
        set_journal_block_checksum(self.seed, &mut d);
        self.sum.add_metadata_block(&d);
        self.blocks.push(d);
        self.blocks.extend(data);
        self
    }

    /// The transaction's blocks, ended by its commit block.
    pub fn commit(mut self) -> Vec<Box<Block>> {
        let mut c = Box::new([0u8; BLOCK_SIZE]);
        JournalCommit::write(&mut c, self.seed, self.seq, 1_700_000_000, 0, &self.sum);
        self.blocks.push(c);
        self.blocks
    }

    /// The transaction's blocks without a commit block.
    pub fn uncommitted(self) -> Vec<Box<Block>> {
        self.blocks
    }
}

/// An image's journal, and where the next log block goes.
pub struct Log {
    pub img: PathBuf,
    pub jstart: u64,
    pub jlen: u64,
    pub seed: u32,
    /// The log block the next [`Log::put`] writes.
    pub pos: u64,
}

impl Log {
    /// The journal of `img`, writing from log block `pos`.
    pub fn open(img: &Path, pos: u64) -> Log {
        let im = Image::open(img);
        Log {
            img: img.to_path_buf(),
            jstart: im.geo.journal_start(),
            jlen: im.geo.journal_blocks(),
            seed: im.seed(),
            pos,
        }
    }

    /// A transaction `seq` of this journal.
    pub fn txn(&self, seq: u64) -> Txn {
        Txn::new(self.seed, seq)
    }

    /// Writes `blocks` into the log from the current position, wrapping at its end.
    pub fn put(&mut self, blocks: &[Box<Block>]) {
        for b in blocks {
            write_block(&self.img, self.jstart + self.pos, b);
            self.pos = if self.pos + 1 >= self.jlen {
                JOURNAL_FIRST_LOG_BLOCK
            } else {
                self.pos + 1
            };
        }
    }

    /// Makes the log live: the journal superblock gets `start`, `sequence` and `head` (the
    /// current position) and `edit` applied; the superblock gets RECOVER.
    pub fn go_live(&self, start: u64, sequence: u64, edit: impl FnOnce(&mut JournalSuperBlock)) {
        let mut jsb = read_block(&self.img, self.jstart);
        let s = JournalSuperBlock::from_block_mut(&mut jsb);
        s.start.set(start);
        s.sequence.set(sequence);
        s.head.set(self.pos);
        edit(s);
        set_journal_block_checksum(self.seed, &mut jsb);
        write_block(&self.img, self.jstart, &jsb);
        edit_sb(&self.img, |sb| {
            let f = sb.feature_incompat.get();
            sb.feature_incompat.set(f | FEATURE_INCOMPAT_RECOVER)
        });
    }

    /// The journal superblock as it is on disk now, validated.
    pub fn superblock(&self) -> (u64, u64, u64, u32) {
        let b = read_block(&self.img, self.jstart);
        let j = JournalSuperBlock::validate(&b, self.seed, self.jlen).unwrap();
        (
            j.start.get(),
            j.head.get(),
            j.sequence.get(),
            j.features.get(),
        )
    }
}
