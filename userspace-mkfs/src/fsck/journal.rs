//! Journal recovery (docs/format.md, "Journal"), in the three passes of jbd2: scan for the
//! last committed transaction, collect revoke records, replay the logged blocks that were
//! not revoked. Every walk over the circular log is bounded by its length.
//!
//! A transaction counts as committed only when its commit block is valid, its transaction
//! checksum matches (journals with `TXN_CHECKSUM`), and every logged block matches its tag
//! (checksum over the unescaped contents; target inside the filesystem and outside the
//! journal). The scan pass reads the logged blocks to check that, and stops at the first
//! transaction that fails: it and everything after it are neither counted nor replayed.

use std::collections::HashMap;

use aegisfs_format::checksum::journal_data_checksum;
use aegisfs_format::journal::{
    check_journal_block, unescape, JournalCommit, JournalDescriptor, JournalHeader, JournalRevoke,
    JournalTag, TransactionChecksum, JOURNAL_FIRST_LOG_BLOCK, JOURNAL_MAGIC, JT_COMMIT,
    JT_DESCRIPTOR, JT_REVOKE, TAG_FLAG_ESCAPED,
};

use super::dev::{zero_block, Block, Device};
use super::ui::{check_cancel, Res, Ui};

/// Where the journal is and how to read it.
pub struct Journal {
    pub start_block: u64,
    pub len: u64,
    pub seed: u32,
    pub fs_blocks: u64,
    /// The journal superblock has `TXN_CHECKSUM`: verify commit blocks'
    /// `transaction_checksum`.
    pub txn_checksum: bool,
}

/// What the scan pass found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Committed transactions found.
    pub transactions: u64,
    /// The first transaction id after the committed ones.
    pub next_sequence: u64,
    /// A transaction that has a valid commit block but fails another check (id, why):
    /// the log ends before it.
    pub damaged: Option<(u64, String)>,
}

/// What a recovery did (or, when only scanning, would do).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Committed transactions found.
    pub transactions: u64,
    /// Logged blocks written back.
    pub replayed: u64,
    /// Logged blocks skipped because a later revoke record covers them.
    pub revoked: u64,
    /// Logged blocks skipped because they no longer match their tag when replayed (the
    /// scan pass accepted them: only a device changing under fsck gets here).
    pub bad: u64,
    /// The first transaction id after the log: the journal superblock's new `sequence`.
    pub next_sequence: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Scan,
    Revoke,
    Replay,
}

/// `a` comes after `b` in transaction ids that may wrap (jbd2's `tid_gt`).
fn seq_after(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

impl Journal {
    fn next(&self, pos: u64) -> u64 {
        if pos + 1 >= self.len {
            JOURNAL_FIRST_LOG_BLOCK
        } else {
            pos + 1
        }
    }

    /// The scan pass alone (reads only): the committed transactions of the log that
    /// starts at log block `start` with transaction `sequence`.
    pub fn committed(&self, dev: &mut Device, ui: &mut Ui, start: u64, sequence: u64) -> Res<Scan> {
        let mut walk = Walk::new(dev, ui, false);
        let end = self.pass(&mut walk, Pass::Scan, start, sequence, None)?;
        Ok(Scan {
            transactions: end.wrapping_sub(sequence),
            next_sequence: end,
            damaged: walk.damaged,
        })
    }

    /// Recovers the log that starts at log block `start` with transaction `sequence`:
    /// replays its committed transactions, honouring revoke records. Without `write`
    /// nothing is written and the result says what replay would do.
    pub fn recover(
        &self,
        dev: &mut Device,
        ui: &mut Ui,
        start: u64,
        sequence: u64,
        write: bool,
    ) -> Res<Recovery> {
        let mut walk = Walk::new(dev, ui, write);
        let end = self.pass(&mut walk, Pass::Scan, start, sequence, None)?;
        walk.rec.next_sequence = end;
        walk.rec.transactions = end.wrapping_sub(sequence);
        self.pass(&mut walk, Pass::Revoke, start, sequence, Some(end))?;
        self.pass(&mut walk, Pass::Replay, start, sequence, Some(end))?;
        Ok(walk.rec)
    }

    /// Reads the logged copy of `tag` (transaction `seq`) at log block `pos` into `data`,
    /// unescaped, and checks it against its tag: `Err(why)` if its target is outside the
    /// filesystem or inside the journal, or its checksum does not match.
    fn logged_copy(
        &self,
        dev: &mut Device,
        seq: u64,
        tag: &JournalTag,
        pos: u64,
        data: &mut Block,
    ) -> Res<Result<(), String>> {
        let target = tag.target.get();
        let in_journal = target >= self.start_block && target < self.start_block + self.len;
        if target >= self.fs_blocks || in_journal {
            return Ok(Err(format!(
                "it logs block {target}, which is outside the filesystem's data"
            )));
        }
        dev.read(self.start_block + pos, data)?;
        if tag.flags.get() & TAG_FLAG_ESCAPED != 0 {
            unescape(data);
        }
        if journal_data_checksum(self.seed, seq, data) != tag.checksum.get() {
            return Ok(Err(format!(
                "the logged copy of block {target} has a bad checksum"
            )));
        }
        Ok(Ok(()))
    }

    /// One walk over the log. Scan returns the id after the last committed transaction;
    /// the other passes stop at `end`.
    fn pass(
        &self,
        w: &mut Walk,
        pass: Pass,
        start: u64,
        sequence: u64,
        end: Option<u64>,
    ) -> Res<u64> {
        let mut pos = start;
        let mut seq = sequence;
        let mut committed = sequence;
        // Log blocks consumed: the log can hold at most len - 1 of them.
        let mut steps: u64 = 0;
        let cap = self.len - JOURNAL_FIRST_LOG_BLOCK;
        let mut block = zero_block();
        let mut data = zero_block();
        // Scan: the transaction checksum so far and the first check the current
        // transaction failed.
        let mut sum = TransactionChecksum::new(self.seed);
        let mut fault: Option<String> = None;
        loop {
            check_cancel()?;
            if end == Some(seq) || steps >= cap {
                break;
            }
            w.dev.read(self.start_block + pos, &mut block)?;
            let h: &JournalHeader = &JournalDescriptor::from_block(&block).header;
            if h.magic.get() != JOURNAL_MAGIC || h.sequence.get() != seq {
                break;
            }
            let kind = h.block_type.get();
            if check_journal_block(&block, self.seed, kind).is_err() {
                break;
            }
            steps += 1;
            match kind {
                JT_DESCRIPTOR => {
                    let d = JournalDescriptor::from_block(&block);
                    let Ok(tags) = d.used_tags() else { break };
                    if steps + tags.len() as u64 > cap {
                        break;
                    }
                    if pass == Pass::Scan {
                        sum.add_metadata_block(&block);
                    }
                    let mut dpos = pos;
                    for tag in tags {
                        dpos = self.next(dpos);
                        steps += 1;
                        match pass {
                            Pass::Revoke => {}
                            Pass::Scan => {
                                if fault.is_none() {
                                    fault =
                                        self.logged_copy(w.dev, seq, tag, dpos, &mut data)?.err();
                                }
                            }
                            Pass::Replay => {
                                let target = tag.target.get();
                                if w.revokes.get(&target).is_some_and(|&r| !seq_after(seq, r)) {
                                    w.rec.revoked += 1;
                                    continue;
                                }
                                if let Err(why) =
                                    self.logged_copy(w.dev, seq, tag, dpos, &mut data)?
                                {
                                    w.rec.bad += 1;
                                    w.ui.problem(
                                        &format!("Journal transaction {seq}: {why}; skip it"),
                                        true,
                                    )?;
                                    continue;
                                }
                                if w.write {
                                    w.dev.write(target, &data)?;
                                }
                                w.rec.replayed += 1;
                            }
                        }
                    }
                    pos = self.next(dpos);
                }
                JT_REVOKE => {
                    let r = JournalRevoke::from_block(&block);
                    let Ok(records) = r.records() else { break };
                    match pass {
                        Pass::Scan => sum.add_metadata_block(&block),
                        Pass::Revoke => {
                            for b in records {
                                let e = w.revokes.entry(b.get()).or_insert(seq);
                                if seq_after(seq, *e) {
                                    *e = seq;
                                }
                            }
                        }
                        Pass::Replay => {}
                    }
                    pos = self.next(pos);
                }
                JT_COMMIT => {
                    if pass == Pass::Scan {
                        let c = JournalCommit::from_block(&block);
                        if fault.is_none()
                            && self.txn_checksum
                            && c.check_transaction(&sum).is_err()
                        {
                            fault = Some("its transaction checksum does not match".to_string());
                        }
                        if let Some(why) = fault.take() {
                            w.damaged = Some((seq, why));
                            break;
                        }
                        sum = TransactionChecksum::new(self.seed);
                    }
                    seq = seq.wrapping_add(1);
                    committed = seq;
                    pos = self.next(pos);
                }
                _ => break,
            }
        }
        Ok(committed)
    }
}

struct Walk<'d, 'u, 'o> {
    dev: &'d mut Device,
    ui: &'u mut Ui<'o>,
    /// Revoked block -> the latest transaction that revoked it.
    revokes: HashMap<u64, u64>,
    rec: Recovery,
    /// Scan: the transaction with a commit block that failed another check.
    damaged: Option<(u64, String)>,
    write: bool,
}

impl<'d, 'u, 'o> Walk<'d, 'u, 'o> {
    fn new(dev: &'d mut Device, ui: &'u mut Ui<'o>, write: bool) -> Self {
        Walk {
            dev,
            ui,
            revokes: HashMap::new(),
            rec: Recovery::default(),
            damaged: None,
            write,
        }
    }
}
