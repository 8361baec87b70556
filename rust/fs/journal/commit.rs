// SPDX-License-Identifier: GPL-2.0

//! Writing a transaction to the log.
//!
//! The log of a transaction is: descriptor blocks (up to 254 tags each) each followed by the
//! copies of the blocks it tags, revoke blocks, then the commit block, which carries the
//! checksum of the descriptor and revoke blocks. Everything before the commit block is
//! written and waited for first; the commit block is then written after a cache flush and
//! with forced unit access, so that a commit block on disk means the whole transaction is.

use super::checkpoint;
use super::transaction::Transaction;
use super::{release_inodes, Journal, State};
use crate::checksum::{journal_data_checksum, set_journal_block_checksum};
use crate::journal::{
    escape, JournalCommit, JournalDescriptor, JournalRevoke, TransactionChecksum,
    JOURNAL_FIRST_LOG_BLOCK, MAX_DESCRIPTOR_TAGS, MAX_REVOKE_RECORDS, TAG_FLAG_ESCAPED,
};
use crate::vfs::buffer::{plugged, BufferHead, JournalFlag};
use crate::vfs::inode::InodeRef;
use crate::vfs::log::device_warn;
use crate::vfs::super_block::SuperBlock;
use kernel::prelude::*;
use kernel::sync::MutexGuard;

/// Waits until no commit is in progress, then keeps new handles out and waits for the
/// running ones to end.
pub(super) fn lock_out(journal: &Journal) -> Result<MutexGuard<'_, State>> {
    let mut st = journal.state.lock();
    while st.locked {
        journal.wait.wait(&mut st);
    }
    if st.aborted {
        return Err(EIO);
    }
    st.locked = true;
    while st.running.handles > 0 {
        journal.wait.wait(&mut st);
    }
    Ok(st)
}

/// Lets handles start again.
pub(super) fn unlock(journal: &Journal) {
    journal.state.lock().locked = false;
    journal.wait.notify_all();
}

/// Commits the running transaction and waits until it is on disk; then, if the log is more
/// than half full, writes everything home and empties it.
pub(super) fn commit(sb: &SuperBlock, journal: &Journal) -> Result {
    write_ordered_early(journal);
    let st = lock_out(journal)?;
    let (result, ordered) = commit_locked(sb, journal, st, false);
    unlock(journal);
    release_inodes(ordered);
    super::discard_committed(sb, journal);
    result
}

/// Writes the data of the running transaction's ordered files while its handles still run,
/// so that the commit, which keeps handles out until it is on disk, finds little left to
/// write: a writer is stopped for the commit's own blocks, not for all the data it wrote.
/// Errors are left for the commit, which writes the files again and finds them.
fn write_ordered_early(journal: &Journal) {
    let mut inodes = KVec::new();
    {
        let st = journal.state.lock();
        if inodes
            .reserve(st.running.ordered.len(), GFP_KERNEL)
            .is_err()
        {
            return;
        }
        for inode in st.running.ordered.iter() {
            if let Some(reference) = inode.grab() {
                // Cannot fail after the reservation.
                let _ = inodes.push(reference, GFP_KERNEL);
            }
        }
    }
    for inode in inodes.iter() {
        let _ = inode.write_ordered_data();
    }
    // The references are dropped (`iput`) here, with the journal unlocked.
    release_inodes(inodes);
}

/// With the transaction locked (`st`, from [`lock_out`]): commits the running transaction,
/// and checkpoints when `checkpoint` is set or the log is more than half full. Returns the
/// inodes to release once handles may start again.
pub(super) fn commit_locked<'a>(
    sb: &SuperBlock,
    journal: &'a Journal,
    mut st: MutexGuard<'a, State>,
    force_checkpoint: bool,
) -> (Result, KVec<InodeRef>) {
    let mut ordered = KVec::new();
    if !st.running.is_empty() {
        let next = st.running.sequence.wrapping_add(1);
        let txn = core::mem::replace(&mut st.running, Transaction::new(next));
        let (head, live) = (st.head, st.live);
        drop(st);
        for bh in txn.buffers.iter() {
            bh.clear_flag(JournalFlag::Running);
        }
        let written = write(sb, journal, &txn, head, live);
        let Transaction {
            sequence,
            buffers,
            ordered: inodes,
            ..
        } = txn;
        ordered = inodes;
        st = journal.state.lock();
        match written {
            Ok(new_head) => {
                st.head = new_head;
                st.live = true;
                st.committed = sequence;
                let mut overflow = KVec::new();
                for bh in buffers {
                    if bh.set_flag(JournalFlag::Checkpoint) {
                        continue;
                    }
                    if let Err(bh) = push_or_return(&mut st.checkpoint, bh) {
                        bh.clear_flag(JournalFlag::Checkpoint);
                        let _ = overflow.push(bh, GFP_KERNEL);
                    }
                }
                drop(st);
                // Could not be listed: committed, so they may go home now.
                for bh in overflow.iter() {
                    bh.submit_write(false);
                }
                let mut result = Ok(());
                for bh in overflow.iter() {
                    result = result.and(bh.wait_write());
                }
                // Freed blocks are free now; with `discard` they wait for their discard
                // (`discard_committed`, after the unlock), and so do the ones being
                // discarded whatever the option says now.
                let discard = sb.info().discard();
                journal.busy.lock().retain(|b| {
                    b.discarding || discard || super::transaction::seq_after(b.sequence, sequence)
                });
                if let Err(e) = result {
                    journal.abort();
                    return (Err(e), ordered);
                }
            }
            Err(e) => {
                st.aborted = true;
                drop(st);
                crate::vfs::log::device_err!(
                    sb.name(),
                    "journal: writing transaction {} failed (error {}); aborting the journal",
                    sequence,
                    e.to_errno()
                );
                return (Err(e), ordered);
            }
        }
    } else {
        drop(st);
    }
    let half_full = {
        let st = journal.state.lock();
        st.head - JOURNAL_FIRST_LOG_BLOCK > journal.capacity() / 2
    };
    if force_checkpoint || half_full {
        if let Err(e) = checkpoint::checkpoint(sb, journal) {
            journal.abort();
            return (Err(e), ordered);
        }
    }
    (Ok(()), ordered)
}

/// Pushes without failing silently: gives the element back when memory runs out.
fn push_or_return(
    list: &mut KVec<BufferHead>,
    bh: BufferHead,
) -> core::result::Result<(), BufferHead> {
    if list.reserve(1, GFP_KERNEL).is_err() {
        return Err(bh);
    }
    // Cannot fail after the reservation.
    let _ = list.push(bh, GFP_KERNEL);
    Ok(())
}

/// Writes `txn` to the log from log block `head` (`live`: the log already holds
/// transactions; otherwise the journal superblock is pointed at this one first). Returns the
/// log block after its commit block.
fn write(
    sb: &SuperBlock,
    journal: &Journal,
    txn: &Transaction,
    head: u64,
    live: bool,
) -> Result<u64> {
    // Ordered data: file blocks this transaction points to reach the disk first. As in
    // jbd2, blocks that could not be written keep their error for `fsync`, and the metadata
    // commits without them, unless mounted `data_err=abort`.
    let mut warned = false;
    for inode in txn.ordered.iter() {
        if let Err(e) = inode.write_ordered_data() {
            if sb.info().data_err_abort() {
                return Err(e);
            }
            if !warned {
                device_warn!(
                    sb.name(),
                    "inode {}: error {} writing its data before commit {}; committing anyway",
                    inode.ino(),
                    e.to_errno(),
                    txn.sequence
                );
                warned = true;
            }
        }
    }
    if head.saturating_add(txn.footprint()) > journal.len {
        return Err(ENOSPC);
    }
    let seed = journal.seed;
    let sequence = txn.sequence;
    if !live {
        checkpoint::write_superblock(sb, journal, head, sequence)?;
    }
    let mut pos = head;
    let mut logs: KVec<BufferHead> = KVec::new();
    let mut transaction = TransactionChecksum::new(seed);
    for chunk in txn.buffers.chunks(MAX_DESCRIPTOR_TAGS) {
        let descriptor = sb.new_block(journal.start + pos)?;
        pos += 1;
        let mut tags: KVec<(u64, u32, u32)> = KVec::with_capacity(chunk.len(), GFP_KERNEL)?;
        for bh in chunk {
            let log = sb.new_block(journal.start + pos)?;
            pos += 1;
            let (flags, checksum) = bh.read_locked(|data| {
                log.change(|copy| {
                    copy.copy_from_slice(data);
                    let checksum = journal_data_checksum(seed, sequence, copy);
                    let flags = if escape(copy) { TAG_FLAG_ESCAPED } else { 0 };
                    (flags, checksum)
                })
            });
            tags.push((bh.block(), flags, checksum), GFP_KERNEL)?;
            logs.push(log, GFP_KERNEL)?;
        }
        descriptor.change(|block| {
            let d = JournalDescriptor::init(block, sequence);
            for &(target, flags, checksum) in tags.iter() {
                d.push_tag(target, flags, checksum);
            }
            set_journal_block_checksum(seed, block);
            transaction.add_metadata_block(block);
        });
        logs.push(descriptor, GFP_KERNEL)?;
    }
    for chunk in txn.revokes.chunks(MAX_REVOKE_RECORDS) {
        let revoke = sb.new_block(journal.start + pos)?;
        pos += 1;
        revoke.change(|block| {
            let r = JournalRevoke::init(block, sequence);
            for &b in chunk {
                r.push(b);
            }
            set_journal_block_checksum(seed, block);
            transaction.add_metadata_block(block);
        });
        logs.push(revoke, GFP_KERNEL)?;
    }
    // The log is contiguous: plugged, its blocks go out as a few large writes.
    plugged(|| {
        for log in logs.iter() {
            log.submit_write(false);
        }
    });
    let mut result = Ok(());
    for log in logs.iter() {
        result = result.and(log.wait_write());
    }
    result?;
    let commit = sb.new_block(journal.start + pos)?;
    pos += 1;
    let now = crate::vfs::real_seconds();
    commit.change(|block| JournalCommit::write(block, seed, sequence, now, 0, &transaction));
    commit.submit_write(true);
    commit.wait_write()?;
    Ok(pos)
}
