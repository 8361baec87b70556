// SPDX-License-Identifier: GPL-2.0

//! Writing committed blocks home and emptying the log.
//!
//! The checkpoint runs with new handles locked out, right after a commit: every block in
//! the checkpoint list then holds exactly its committed contents. Once they are all written
//! and flushed, the journal superblock is marked empty and the log starts again at its
//! first block.

use super::commit::{commit_locked, lock_out, unlock};
use super::{release_inodes, Journal};
use crate::checksum::set_journal_block_checksum;
use crate::journal::{JournalSuperBlock, JOURNAL_FIRST_LOG_BLOCK};
use crate::vfs::buffer::{plugged, JournalFlag};
use crate::vfs::super_block::SuperBlock;
use kernel::prelude::*;

/// Writes the journal superblock: the log starts at log block `start` (0: empty) with
/// transaction `sequence`. Waits until it is on disk.
pub(super) fn write_superblock(
    sb: &SuperBlock,
    journal: &Journal,
    start: u64,
    sequence: u64,
) -> Result {
    let bh = sb.bread(journal.start)?;
    let seed = journal.seed;
    bh.change(|block| {
        let jsb = JournalSuperBlock::from_block_mut(block);
        jsb.start.set(start);
        jsb.head.set(start);
        jsb.sequence.set(sequence);
        set_journal_block_checksum(seed, block);
    });
    bh.submit_write(true);
    bh.wait_write()
}

/// Writes every committed block home and empties the log. Called with handles locked out
/// and the running transaction empty.
pub(super) fn checkpoint(sb: &SuperBlock, journal: &Journal) -> Result {
    let mut list = core::mem::take(&mut journal.state.lock().checkpoint);
    // In disk order and plugged, neighbouring blocks go home as one write.
    list.sort_unstable_by_key(|bh| bh.block());
    let writes = plugged(|| {
        let mut writes = 0usize;
        for bh in list.iter() {
            bh.clear_flag(JournalFlag::Checkpoint);
            if !bh.has_flag(JournalFlag::Freed) {
                bh.submit_write(false);
                writes += 1;
            }
        }
        writes
    });
    let mut result = Ok(());
    for bh in list.iter() {
        if !bh.has_flag(JournalFlag::Freed) {
            result = result.and(bh.wait_write());
        }
        crate::vfs::cond_resched();
    }
    drop(list);
    result?;
    if writes > 0 {
        sb.flush()?;
    }
    let (live, sequence) = {
        let st = journal.state.lock();
        (st.live, st.committed.wrapping_add(1))
    };
    if live {
        write_superblock(sb, journal, 0, sequence)?;
    }
    let mut st = journal.state.lock();
    st.live = false;
    st.head = JOURNAL_FIRST_LOG_BLOCK;
    Ok(())
}

/// Commits the running transaction, writes everything home and empties the log (unmount,
/// remount read-only).
pub(super) fn flush(sb: &SuperBlock, journal: &Journal) -> Result {
    let st = lock_out(journal)?;
    let (result, ordered) = commit_locked(sb, journal, st, true);
    unlock(journal);
    release_inodes(ordered);
    super::discard_committed(sb, journal);
    result
}
