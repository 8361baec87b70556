// SPDX-License-Identifier: GPL-2.0

//! The metadata journal: a physical redo log of whole metadata blocks (docs/journal.md).
//!
//! Every change to a metadata block goes through [`modify`] inside a [`Handle`]: the block
//! joins the running transaction and is not written home until that transaction is
//! committed to the log. A commit locks out new handles, waits for the running ones,
//! writes the data blocks of files that got new blocks (ordered data), the logged copies of
//! the transaction's blocks, its revoke records and a commit block (after a cache flush, with
//! forced unit access). Committed blocks are written home by the checkpoint, which runs when
//! the log is half full and at unmount, and then empties the log. Mount replays what a crash
//! left in the log (`recovery`).
//!
//! - `transaction`: the running transaction, handles, revoked and busy blocks.
//! - `commit`: writing a transaction to the log.
//! - `checkpoint`: writing committed blocks home and emptying the log.
//! - `recovery`: replay at mount.

mod checkpoint;
mod commit;
pub(crate) mod recovery;
mod transaction;

pub(crate) use transaction::{resume, start};

use crate::disk::BLOCK_SIZE;
use crate::vfs::buffer::BufferHead;
use crate::vfs::inode::{Inode, InodeRef};
use crate::vfs::log::{device_err, device_warn};
use crate::vfs::super_block::{CommitTimer, SuperBlock};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::new_condvar;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{CondVar, Mutex};

/// The commit interval of mounts without `commit=` (or with `commit=0`), in seconds: the
/// module parameter `commit_interval` (5 unless given at load).
pub(crate) fn default_commit_seconds() -> u32 {
    crate::module_parameters::commit_interval.value().max(1)
}

/// Blocks freed by a transaction that is not yet committed: they must not be reused before
/// it is, or a crash could leave the old owner pointing at someone else's data. With the
/// `discard` mount option they stay busy after the commit until the device has discarded
/// them (`discarding`, see [`discard_committed`]).
#[derive(Clone, Copy)]
struct Busy {
    start: u64,
    count: u64,
    sequence: u64,
    discarding: bool,
}

/// What the journal keeps under its lock.
struct State {
    running: transaction::Transaction,
    /// No new handle may start: a commit is in progress.
    locked: bool,
    /// The last transaction written to the log.
    committed: u64,
    /// The next log block to write (the log is used from `first` on and emptied by every
    /// checkpoint, so it never wraps).
    head: u64,
    /// Whether the log holds committed transactions (the journal superblock's `start`).
    live: bool,
    /// Blocks committed to the log and not yet written home, each once (its
    /// `JournalFlag::Checkpoint` bit is set).
    checkpoint: KVec<BufferHead>,
    /// Set after an I/O error or a shutdown: no more changes are accepted.
    aborted: bool,
}

/// The journal of a mounted filesystem.
#[pin_data]
pub(crate) struct Journal {
    /// First block of the journal area (its superblock) and its length.
    start: u64,
    len: u64,
    seed: u32,
    #[pin]
    state: Mutex<State>,
    /// Signalled when handles end, a commit finishes or the transaction unlocks.
    #[pin]
    wait: CondVar,
    #[pin]
    busy: Mutex<KVec<Busy>>,
    /// Commit interval in milliseconds.
    interval_ms: AtomicU64,
    timer: CommitTimer,
    /// Whether the timer may re-arm (false once unmount started).
    timer_enabled: AtomicBool,
}

impl Journal {
    /// A journal for the area `start..start + len`, whose log starts empty at transaction
    /// `sequence` (after recovery).
    pub(crate) fn new(
        sb: &crate::vfs::super_block::Device,
        start: u64,
        len: u64,
        seed: u32,
        sequence: u64,
        commit_seconds: u32,
    ) -> Result<Pin<KBox<Self>>> {
        let timer = CommitTimer::new(sb)?;
        KBox::pin_init(
            try_pin_init!(Self {
                start,
                len,
                seed,
                state <- new_mutex!(State {
                    running: transaction::Transaction::new(sequence),
                    locked: false,
                    committed: sequence.wrapping_sub(1),
                    head: crate::journal::JOURNAL_FIRST_LOG_BLOCK,
                    live: false,
                    checkpoint: KVec::new(),
                    aborted: false,
                }),
                wait <- new_condvar!(),
                busy <- new_mutex!(KVec::new()),
                interval_ms: AtomicU64::new(u64::from(commit_seconds.max(1)) * 1000),
                timer,
                timer_enabled: AtomicBool::new(true),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// Log blocks available to transactions: all but the journal superblock.
    fn capacity(&self) -> u64 {
        self.len - crate::journal::JOURNAL_FIRST_LOG_BLOCK
    }

    /// Largest log footprint a transaction may reach before handles wait for its commit.
    fn max_transaction(&self) -> u64 {
        (self.capacity() / 4).max(16)
    }

    /// Sets the commit interval (`commit=`), in seconds.
    pub(crate) fn set_interval(&self, seconds: u32) {
        self.interval_ms
            .store(u64::from(seconds.max(1)) * 1000, Ordering::Relaxed);
    }

    /// The commit interval in seconds.
    pub(crate) fn interval_seconds(&self) -> u64 {
        self.interval_ms.load(Ordering::Relaxed) / 1000
    }

    fn arm_timer(&self) {
        if self.timer_enabled.load(Ordering::Relaxed) {
            let ms = self.interval_ms.load(Ordering::Relaxed);
            self.timer.arm(u32::try_from(ms).unwrap_or(u32::MAX));
        }
    }

    /// Stops the journal: later handles fail with EIO and nothing more reaches the disk. The
    /// running transaction's file references go (unmount needs every inode released).
    pub(crate) fn abort(&self) {
        let ordered = {
            let mut st = self.state.lock();
            st.aborted = true;
            core::mem::take(&mut st.running.ordered)
        };
        self.wait.notify_all();
        release_inodes(ordered);
    }

    /// The first block at or after `block` in `block..block + count` that is busy, with the
    /// end of its busy extent.
    pub(crate) fn busy_in(&self, block: u64, count: u64) -> Option<(u64, u64)> {
        let busy = self.busy.lock();
        let end = block.saturating_add(count);
        let mut found: Option<(u64, u64)> = None;
        for b in busy.iter() {
            let b_end = b.start.saturating_add(b.count);
            if b.start < end && b_end > block {
                let first = b.start.max(block);
                if found.is_none_or(|(f, _)| first < f) {
                    found = Some((first, b_end));
                }
            }
        }
        found
    }

    /// Whether freed blocks wait for a commit before they can be reused.
    pub(crate) fn has_busy(&self) -> bool {
        !self.busy.lock().is_empty()
    }
}

/// The journal of `sb`, if it has one and is mounted read-write.
fn journal_of(sb: &SuperBlock) -> Option<&Journal> {
    sb.info().journal()
}

/// Changes metadata block `bh` with `f`: in the running transaction (the current task must
/// hold a [`Handle`]), or, without a journal, by marking it dirty (with `owner`, for that
/// inode's `fsync`).
pub(crate) fn modify<R>(
    sb: &SuperBlock,
    bh: &BufferHead,
    owner: Option<&Inode>,
    f: impl FnOnce(&mut [u8; BLOCK_SIZE]) -> R,
) -> R {
    let Some(journal) = journal_of(sb) else {
        return bh.modify(owner, f);
    };
    let result = bh.change(f);
    transaction::join(sb, journal, bh, owner);
    result
}

/// Notes that metadata block `block` was freed in the running transaction: a revoke record
/// keeps older logged copies from being replayed over its next user, and its cached copy is
/// never written home.
pub(crate) fn forget_metadata(sb: &SuperBlock, block: u64) {
    if let Some(journal) = journal_of(sb) {
        transaction::revoke(sb, journal, block);
    }
    sb.forget_block(block);
}

/// Notes that blocks `start..start + count` were freed in the running transaction.
pub(crate) fn blocks_freed(sb: &SuperBlock, start: u64, count: u64) {
    if let Some(journal) = journal_of(sb) {
        let sequence = journal.state.lock().running.sequence;
        let mut busy = journal.busy.lock();
        if let Some(last) = busy.last_mut() {
            if last.sequence == sequence && last.start + last.count == start {
                last.count += count;
                return;
            }
        }
        if busy
            .push(
                Busy {
                    start,
                    count,
                    sequence,
                    discarding: false,
                },
                GFP_KERNEL,
            )
            .is_err()
        {
            // Without the record the blocks could be reused early; committing at once keeps
            // that from mattering (the handle is still open, so force it at the next start).
            device_err!(sb.name(), "out of memory recording freed blocks");
        }
    }
}

/// With the `discard` mount option: discards the blocks freed by committed transactions,
/// then lets them be allocated again. Called after a commit, with handles allowed again
/// (the discards do not hold up the next transaction); the blocks stay busy, so nothing
/// takes them meanwhile. Without the option, committed entries left from an earlier
/// commit made with it are only dropped.
fn discard_committed(sb: &SuperBlock, journal: &Journal) {
    let committed = journal.state.lock().committed;
    let nofs = crate::vfs::nofs_save();
    let mut runs: KVec<(u64, u64, u64)> = KVec::new();
    {
        let mut busy = journal.busy.lock();
        for b in busy.iter_mut() {
            if b.discarding || transaction::seq_after(b.sequence, committed) {
                continue;
            }
            if runs
                .push((b.start, b.count, b.sequence), GFP_KERNEL)
                .is_err()
            {
                break;
            }
            b.discarding = true;
        }
    }
    crate::vfs::nofs_restore(nofs);
    if runs.is_empty() {
        return;
    }
    let discard = sb.info().discard() && sb.discard_granularity().is_some();
    for &(start, count, _) in runs.iter() {
        if !discard {
            break;
        }
        if let Err(e) = sb.discard(start, count) {
            // Like ext4: the blocks are free all the same; later ones are not tried.
            device_warn!(
                sb.name(),
                "discard of blocks {}..{} failed (error {})",
                start,
                start.saturating_add(count),
                e.to_errno()
            );
            break;
        }
        crate::vfs::cond_resched();
    }
    journal.busy.lock().retain(|b| {
        !(b.discarding
            && runs
                .iter()
                .any(|&(start, _, sequence)| start == b.start && sequence == b.sequence))
    });
}

/// Records that `inode` got new data blocks in the running transaction: its data is written
/// before the transaction commits.
pub(crate) fn add_ordered(sb: &SuperBlock, inode: &Inode) {
    if let Some(journal) = journal_of(sb) {
        transaction::add_ordered(journal, inode);
    }
}

/// `inode` lost its last name: its data no longer waits for a commit, and the running
/// transaction lets go of it. Its reference would otherwise keep the file from being
/// deleted at its last close until the commit, and a read-only remount meanwhile would be
/// refused (EBUSY) as if the file were still open.
pub(crate) fn forget_ordered(sb: &SuperBlock, inode: &Inode) {
    inode.info().unlinked.store(true, Ordering::Relaxed);
    if let Some(journal) = journal_of(sb) {
        transaction::forget_ordered(journal, inode);
    }
}

/// The first block free for allocation in `block..block + count` under the journal's rules
/// (not freed by an uncommitted transaction): `None` if all are usable, else the first busy
/// block and the end of its busy extent.
pub(crate) fn busy_in(sb: &SuperBlock, block: u64, count: u64) -> Option<(u64, u64)> {
    journal_of(sb).and_then(|j| j.busy_in(block, count))
}

/// Commits the running transaction and waits until it is on disk.
pub(crate) fn commit(sb: &SuperBlock) -> Result {
    match journal_of(sb) {
        Some(journal) => commit::commit(sb, journal),
        None => Ok(()),
    }
}

/// Makes sure transaction `sequence` (or a later one) is on disk; returns whether that took
/// a commit (which flushed the device cache) or the transaction was already committed.
pub(crate) fn commit_sequence(sb: &SuperBlock, sequence: u64) -> Result<bool> {
    let Some(journal) = journal_of(sb) else {
        return Ok(false);
    };
    {
        let st = journal.state.lock();
        if !transaction::seq_after(sequence, st.committed) {
            return if st.aborted { Err(EIO) } else { Ok(false) };
        }
    }
    commit::commit(sb, journal)?;
    Ok(true)
}

/// The running transaction's sequence (0 without a journal).
pub(crate) fn running_sequence(sb: &SuperBlock) -> u64 {
    journal_of(sb).map_or(0, |j| j.state.lock().running.sequence)
}

/// Whether a commit could make freed blocks usable (for a retry after ENOSPC).
pub(crate) fn should_retry_alloc(sb: &SuperBlock) -> bool {
    journal_of(sb).is_some_and(|j| j.has_busy())
}

/// Runs `op`, which starts its own handle (the caller holds none), and after ENOSPC, when a
/// commit would make the blocks the running transaction freed usable, commits and runs it
/// once more (ext4 retries the same way).
pub(crate) fn retry_after_commit<T>(
    sb: &SuperBlock,
    mut op: impl FnMut() -> Result<T>,
) -> Result<T> {
    match op() {
        Err(e) if e == ENOSPC && should_retry_alloc(sb) => {
            commit(sb)?;
            op()
        }
        result => result,
    }
}

/// Commits, writes everything home and empties the log (unmount, remount read-only,
/// freeze).
pub(crate) fn flush(sb: &SuperBlock) -> Result {
    match journal_of(sb) {
        Some(journal) => checkpoint::flush(sb, journal),
        None => Ok(()),
    }
}

/// Stops the journal after a shutdown: nothing more is committed or written home.
pub(crate) fn abort(sb: &SuperBlock) {
    if let Some(journal) = journal_of(sb) {
        journal.abort();
    }
}

/// Stops the commit timer for good (unmount).
pub(crate) fn stop_timer(sb: &SuperBlock) {
    if let Some(journal) = journal_of(sb) {
        journal.timer_enabled.store(false, Ordering::Relaxed);
        journal.timer.cancel();
    }
}

/// The commit timer fired.
pub(crate) fn timer(sb: &SuperBlock) {
    if let Some(journal) = journal_of(sb) {
        if let Err(e) = commit::commit(sb, journal) {
            device_err!(sb.name(), "journal commit failed: error {}", e.to_errno());
        }
    }
}

/// Drops references the journal took on inodes, outside its lock (an `iput` may evict).
fn release_inodes(inodes: KVec<InodeRef>) {
    drop(inodes);
}
