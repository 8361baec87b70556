// SPDX-License-Identifier: GPL-2.0

//! Replaying the journal at mount, in three passes over the log like fsck.aegisfs: scan
//! for the committed transactions (each whole: commit block, transaction checksum and every
//! logged block's checksum; the scan stops at the first one that is not), collect the
//! revoke records, and write the logged blocks that no later revoke covers home. Replay only
//! writes what the log says, so a replay cut short by a crash is simply done again.

use crate::checksum::{journal_data_checksum, set_journal_block_checksum};
use crate::disk::BLOCK_SIZE;
use crate::journal::{
    check_journal_block, unescape, JournalCommit, JournalDescriptor, JournalHeader, JournalRevoke,
    JournalSuperBlock, TransactionChecksum, JOURNAL_FIRST_LOG_BLOCK, JOURNAL_MAGIC, JT_COMMIT,
    JT_DESCRIPTOR, JT_REVOKE, TAG_FLAG_ESCAPED,
};
use crate::vfs::buffer::BufferHead;
use crate::vfs::log::{device_err, device_warn};
use crate::vfs::super_block::Device;
use kernel::prelude::*;

/// Where the journal is.
pub(crate) struct JournalArea {
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) seed: u32,
    /// Blocks in the filesystem (logged blocks must lie below).
    pub(crate) fs_blocks: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Scan,
    Revoke,
    Replay,
}

/// A revoke record: the block, and the latest transaction that revoked it.
struct Revoked {
    block: u64,
    sequence: u64,
}

fn seq_after(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

impl JournalArea {
    fn next(&self, pos: u64) -> u64 {
        if pos + 1 >= self.len {
            JOURNAL_FIRST_LOG_BLOCK
        } else {
            pos + 1
        }
    }

    fn read(&self, dev: &Device, pos: u64) -> Result<BufferHead> {
        dev.bread(self.start + pos)
    }

    /// Whether `target` may be replayed to: inside the filesystem, outside the journal and
    /// not the superblock's block.
    fn valid_target(&self, target: u64) -> bool {
        target < self.fs_blocks && !(self.start..self.start + self.len).contains(&target)
    }

    /// One walk over the log from `start` with transaction `sequence`. The scan returns the
    /// id after the last whole committed transaction; the other passes stop at `end`.
    fn pass(
        &self,
        dev: &Device,
        pass: Pass,
        start: u64,
        sequence: u64,
        end: Option<u64>,
        txn_checksum: bool,
        revoked: &mut KVec<Revoked>,
    ) -> Result<u64> {
        let mut pos = start;
        let mut seq = sequence;
        let mut committed = sequence;
        let mut steps = 0u64;
        let cap = self.len - JOURNAL_FIRST_LOG_BLOCK;
        let mut csum = TransactionChecksum::new(self.seed);
        let mut whole = true;
        let mut scratch = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
        let real: &mut [u8; BLOCK_SIZE] = scratch.as_mut_slice().try_into().map_err(|_| EINVAL)?;
        loop {
            if end == Some(seq) || steps >= cap {
                break;
            }
            crate::vfs::cond_resched();
            let bh = self.read(dev, pos)?;
            let block = bh.data();
            let h: &JournalHeader = &JournalDescriptor::from_block(block).header;
            if h.magic.get() != JOURNAL_MAGIC || h.sequence.get() != seq {
                break;
            }
            let kind = h.block_type.get();
            if check_journal_block(block, self.seed, kind).is_err() {
                break;
            }
            steps += 1;
            match kind {
                JT_DESCRIPTOR => {
                    let Ok(tags) = JournalDescriptor::from_block(block).used_tags() else {
                        break;
                    };
                    if steps + tags.len() as u64 > cap {
                        break;
                    }
                    csum.add_metadata_block(block);
                    let mut dpos = pos;
                    for tag in tags {
                        dpos = self.next(dpos);
                        steps += 1;
                        let target = tag.target.get();
                        if pass == Pass::Revoke {
                            continue;
                        }
                        let data = self.read(dev, dpos)?;
                        real.copy_from_slice(data.data());
                        if tag.flags.get() & TAG_FLAG_ESCAPED != 0 {
                            unescape(real);
                        }
                        if pass == Pass::Scan {
                            if !self.valid_target(target)
                                || journal_data_checksum(self.seed, seq, real) != tag.checksum.get()
                            {
                                whole = false;
                            }
                            continue;
                        }
                        let skip = revoked
                            .binary_search_by(|r| r.block.cmp(&target))
                            .ok()
                            .and_then(|i| revoked.get(i))
                            .is_some_and(|r| !seq_after(seq, r.sequence));
                        if !skip {
                            write_home(dev, target, real)?;
                        }
                    }
                    pos = self.next(dpos);
                }
                JT_REVOKE => {
                    let Ok(records) = JournalRevoke::from_block(block).records() else {
                        break;
                    };
                    csum.add_metadata_block(block);
                    if pass == Pass::Revoke {
                        for b in records {
                            add_revoke(revoked, b.get(), seq)?;
                        }
                    }
                    pos = self.next(pos);
                }
                JT_COMMIT => {
                    if pass == Pass::Scan {
                        let commit = JournalCommit::from_block(block);
                        if !whole || (txn_checksum && commit.check_transaction(&csum).is_err()) {
                            break;
                        }
                    }
                    seq = seq.wrapping_add(1);
                    committed = seq;
                    csum = TransactionChecksum::new(self.seed);
                    whole = true;
                    pos = self.next(pos);
                }
                _ => break,
            }
        }
        Ok(committed)
    }
}

/// Adds (or raises) the revoke record of `block` in the sorted list.
fn add_revoke(revoked: &mut KVec<Revoked>, block: u64, sequence: u64) -> Result {
    match revoked.binary_search_by(|r| r.block.cmp(&block)) {
        Ok(i) => {
            if let Some(r) = revoked.get_mut(i) {
                if seq_after(sequence, r.sequence) {
                    r.sequence = sequence;
                }
            }
        }
        Err(i) => {
            revoked.reserve(1, GFP_KERNEL)?;
            revoked
                .insert_within_capacity(i, Revoked { block, sequence })
                .map_err(|_| ENOMEM)?;
        }
    }
    Ok(())
}

/// Writes `data` to block `target` and waits.
fn write_home(dev: &Device, target: u64, data: &[u8; BLOCK_SIZE]) -> Result {
    let bh = dev.new_block(target)?;
    bh.change(|block| block.copy_from_slice(data));
    bh.submit_write(false);
    bh.wait_write()
}

/// Replays the journal of `area` if it holds transactions; returns the sequence the next
/// transaction gets. EUCLEAN (logged) for a journal superblock that is not valid.
pub(crate) fn recover(dev: &Device, area: &JournalArea) -> Result<u64> {
    let jsb_bh = dev.bread(area.start)?;
    let (start, sequence, txn_checksum) = {
        let jsb = JournalSuperBlock::validate(jsb_bh.data(), area.seed, area.len).map_err(|e| {
            device_err!(dev.name(), "journal superblock: {}", e.msg());
            if e.is_corruption() {
                EUCLEAN
            } else {
                EINVAL
            }
        })?;
        (jsb.start.get(), jsb.sequence.get(), jsb.has_txn_checksum())
    };
    if start == 0 {
        return Ok(sequence);
    }
    let mut revoked = KVec::new();
    let end = area.pass(
        dev,
        Pass::Scan,
        start,
        sequence,
        None,
        txn_checksum,
        &mut revoked,
    )?;
    let count = end.wrapping_sub(sequence);
    for pass in [Pass::Revoke, Pass::Replay] {
        area.pass(
            dev,
            pass,
            start,
            sequence,
            Some(end),
            txn_checksum,
            &mut revoked,
        )?;
    }
    dev.flush()?;
    jsb_bh.change(|block| {
        let jsb = JournalSuperBlock::from_block_mut(block);
        jsb.start.set(0);
        jsb.head.set(0);
        jsb.sequence.set(end);
        set_journal_block_checksum(area.seed, block);
    });
    jsb_bh.submit_write(true);
    jsb_bh.wait_write()?;
    if count > 0 {
        device_warn!(dev.name(), "recovered {} journal transactions", count);
    }
    Ok(end)
}
