// SPDX-License-Identifier: GPL-2.0

//! The running transaction and the handles that join it.

use super::{journal_of, Journal};
use crate::journal::{MAX_DESCRIPTOR_TAGS, MAX_REVOKE_RECORDS};
use crate::vfs::buffer::{BufferHead, JournalFlag};
use crate::vfs::inode::{Inode, InodeRef};
use crate::vfs::log::device_warn;
use crate::vfs::super_block::SuperBlock;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// Log blocks a handle may still add after it starts; a transaction beyond its limit less
/// this is committed before new handles join.
const HANDLE_MARGIN: u64 = 64;

/// `a` comes after `b` in transaction ids that may wrap.
pub(super) fn seq_after(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

/// A transaction: the metadata blocks changed by its handles, the metadata blocks freed
/// (revoked), and the files whose new data blocks must reach the disk before it commits.
pub(super) struct Transaction {
    pub(super) sequence: u64,
    pub(super) handles: u32,
    pub(super) buffers: KVec<BufferHead>,
    pub(super) revokes: KVec<u64>,
    pub(super) ordered: KVec<InodeRef>,
}

impl Transaction {
    pub(super) fn new(sequence: u64) -> Self {
        Self {
            sequence,
            handles: 0,
            buffers: KVec::new(),
            revokes: KVec::new(),
            ordered: KVec::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buffers.is_empty() && self.revokes.is_empty()
    }

    /// Log blocks the transaction takes: descriptors, logged blocks, revoke blocks, commit.
    pub(super) fn footprint(&self) -> u64 {
        let n = self.buffers.len() as u64;
        let r = self.revokes.len() as u64;
        n + n.div_ceil(MAX_DESCRIPTOR_TAGS as u64) + r.div_ceil(MAX_REVOKE_RECORDS as u64) + 1
    }
}

/// A handle on the running transaction: the changes made while it is held commit together.
/// Handles nest: an inner one (same task) is part of the outer one.
pub(crate) struct Handle<'a> {
    /// The journal of an outermost handle; `None` when nested or without a journal.
    journal: Option<&'a Journal>,
    nofs: u32,
}

fn marker(journal: &Journal) -> usize {
    core::ptr::from_ref(journal) as usize
}

/// Starts a handle on the journal of `sb` (a no-op without a journal). Waits while a commit
/// is in progress, and commits first when the running transaction is full. EIO after the
/// journal was aborted.
pub(crate) fn start(sb: &SuperBlock) -> Result<Handle<'_>> {
    if sb.info().is_shutdown() {
        return Err(EIO);
    }
    let Some(journal) = journal_of(sb) else {
        return Ok(Handle {
            journal: None,
            nofs: 0,
        });
    };
    if crate::vfs::task_handle() == marker(journal) {
        return Ok(Handle {
            journal: None,
            nofs: 0,
        });
    }
    let limit = journal
        .max_transaction()
        .saturating_sub(HANDLE_MARGIN)
        .max(1);
    let mut st = journal.state.lock();
    loop {
        if st.aborted {
            return Err(EIO);
        }
        if st.locked {
            journal.wait.wait(&mut st);
            continue;
        }
        if st.running.footprint() >= limit {
            drop(st);
            super::commit::commit(sb, journal)?;
            st = journal.state.lock();
            continue;
        }
        break;
    }
    st.running.handles += 1;
    drop(st);
    crate::vfs::set_task_handle(marker(journal));
    Ok(Handle {
        journal: Some(journal),
        nofs: crate::vfs::nofs_save(),
    })
}

impl<'a> Handle<'a> {
    /// Lets a long operation (a truncate) continue in a new transaction when the running
    /// one is full: call it only where the changes so far are complete on their own.
    pub(crate) fn restart(&mut self, sb: &'a SuperBlock) -> Result {
        let Some(journal) = self.journal else {
            return Ok(());
        };
        let limit = journal
            .max_transaction()
            .saturating_sub(HANDLE_MARGIN)
            .max(1);
        if journal.state.lock().running.footprint() < limit {
            return Ok(());
        }
        let nofs = self.nofs;
        self.end();
        crate::vfs::nofs_restore(nofs);
        let new = start(sb)?;
        self.journal = new.journal;
        self.nofs = new.nofs;
        core::mem::forget(new);
        Ok(())
    }

    /// Ends the handle (without restoring the allocation flags).
    fn end(&mut self) {
        if let Some(journal) = self.journal.take() {
            let mut st = journal.state.lock();
            st.running.handles = st.running.handles.saturating_sub(1);
            let wake = st.locked && st.running.handles == 0;
            drop(st);
            if wake {
                journal.wait.notify_all();
            }
            crate::vfs::set_task_handle(0);
        }
    }

    /// Keeps the handle open after this call returns, for a pair of VFS calls that must
    /// commit together (`write_begin` and `write_end`); [`resume`] takes it back. Returns
    /// what to hand to `resume`: the allocation flags, or [`NESTED`] for a nested handle
    /// (which `resume` must not end).
    pub(crate) fn detach(self) -> u32 {
        let token = if self.journal.is_some() {
            self.nofs
        } else {
            NESTED
        };
        core::mem::forget(self);
        token
    }
}

/// What [`Handle::detach`] returns for a nested handle.
const NESTED: u32 = u32::MAX;

/// Takes back a handle that [`Handle::detach`] left open in the current task, with what
/// `detach` returned; dropping it ends it.
pub(crate) fn resume(sb: &SuperBlock, nofs: u32) -> Handle<'_> {
    match journal_of(sb) {
        Some(journal) if nofs != NESTED && crate::vfs::task_handle() == marker(journal) => Handle {
            journal: Some(journal),
            nofs,
        },
        _ => Handle {
            journal: None,
            nofs: 0,
        },
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        if self.journal.is_some() {
            self.end();
            crate::vfs::nofs_restore(self.nofs);
        }
    }
}

/// Adds `bh`, just changed, to the running transaction.
pub(super) fn join(sb: &SuperBlock, journal: &Journal, bh: &BufferHead, owner: Option<&Inode>) {
    if crate::vfs::task_handle() != marker(journal) {
        device_warn!(
            sb.name(),
            "metadata block {} changed outside a transaction",
            bh.block()
        );
    }
    bh.clear_flag(JournalFlag::Freed);
    let mut st = journal.state.lock();
    let sequence = st.running.sequence;
    let mut arm = false;
    if !bh.set_flag(JournalFlag::Running) {
        arm = st.running.is_empty();
        if st.running.buffers.push(bh.clone(), GFP_KERNEL).is_err() {
            bh.clear_flag(JournalFlag::Running);
            st.aborted = true;
            drop(st);
            device_warn!(sb.name(), "out of memory in the journal; aborting it");
            return;
        }
    }
    drop(st);
    if let Some(inode) = owner {
        inode.info().sync_seq.store(sequence, Ordering::Relaxed);
        inode.info().datasync_seq.store(sequence, Ordering::Relaxed);
    }
    if arm {
        journal.arm_timer();
    }
}

/// Adds a revoke record for metadata block `block` to the running transaction.
pub(super) fn revoke(sb: &SuperBlock, journal: &Journal, block: u64) {
    let mut st = journal.state.lock();
    let arm = st.running.is_empty();
    if st.running.revokes.push(block, GFP_KERNEL).is_err() {
        st.aborted = true;
        drop(st);
        device_warn!(sb.name(), "out of memory in the journal; aborting it");
        return;
    }
    drop(st);
    if arm {
        journal.arm_timer();
    }
}

/// Adds `inode` to the files whose data is written before the running transaction commits.
pub(super) fn add_ordered(journal: &Journal, inode: &Inode) {
    if inode.info().unlinked.load(Ordering::Relaxed) {
        return;
    }
    let mut st = journal.state.lock();
    let sequence = st.running.sequence;
    if inode.info().ordered_seq.swap(sequence, Ordering::Relaxed) == sequence {
        return;
    }
    drop(st);
    // `igrab` may not be called under the journal lock (it takes the inode's lock).
    let Some(reference) = inode.grab() else {
        return;
    };
    st = journal.state.lock();
    if st.running.sequence != sequence || st.aborted {
        // The transaction committed meanwhile, with the data written before it.
        drop(st);
        return;
    }
    // Reserved first: a failed push would drop (`iput`) the reference under the lock.
    if st.running.ordered.reserve(1, GFP_KERNEL).is_err() {
        st.aborted = true;
        drop(st);
        drop(reference);
        return;
    }
    // Cannot fail after the reservation.
    let _ = st.running.ordered.push(reference, GFP_KERNEL);
}

/// Takes `inode` off the running transaction's ordered files.
pub(super) fn forget_ordered(journal: &Journal, inode: &Inode) {
    let mut st = journal.state.lock();
    if inode.info().ordered_seq.load(Ordering::Relaxed) != st.running.sequence {
        return;
    }
    let Some(i) = st
        .running
        .ordered
        .iter()
        .position(|r| core::ptr::eq::<Inode>(&**r, inode))
    else {
        return;
    };
    // `i` is in bounds: found just now under the lock.
    let removed = st.running.ordered.remove(i);
    drop(st);
    // Not the last reference (the caller's is another); dropped with the journal unlocked
    // all the same.
    drop(removed);
}
