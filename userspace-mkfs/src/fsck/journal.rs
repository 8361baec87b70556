//! Journal recovery (docs/format.md, "Journal"), in the three passes of jbd2: scan for the
//! last committed transaction, collect revoke records, replay the logged blocks that were
//! not revoked. Only the scan walks the circular log (bounded by its length); the other
//! two work from what it recorded of each transaction.
//!
//! A transaction counts as committed only when its commit block is valid, its transaction
//! checksum matches (journals with `TXN_CHECKSUM`), and every logged block matches its tag
//! (checksum over the unescaped contents; target inside the filesystem and outside the
//! journal). The scan pass reads the logged blocks to check that, and stops at the first
//! transaction that fails: it and everything after it are neither counted nor replayed.
//! The scan pass (`Journal::scan_log`) also describes each transaction it meets, which is
//! what aegisfs-inspect prints.

use std::collections::HashMap;

use aegisfs_format::checksum::journal_data_checksum;
use aegisfs_format::journal::{
    check_journal_block, unescape, JournalCommit, JournalDescriptor, JournalHeader, JournalRevoke,
    TransactionChecksum, JOURNAL_FIRST_LOG_BLOCK, JOURNAL_MAGIC, JT_COMMIT, JT_DESCRIPTOR,
    JT_REVOKE, TAG_FLAG_ESCAPED,
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

/// A block a transaction logs: its tag and where its copy is in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedBlock {
    /// The filesystem block it belongs to.
    pub target: u64,
    /// The log block that holds the copy.
    pub pos: u64,
    /// The tag's `TAG_FLAG_*`.
    flags: u32,
    /// The tag's checksum of the unescaped copy.
    checksum: u32,
}

/// A commit block found by [`Journal::scan_log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    /// Its log block.
    pub block: u64,
    /// Its own block checksum (and magic and type) is valid.
    pub checksum_ok: bool,
    /// Its `transaction_checksum` matches the transaction read from the log; `None` when
    /// the journal has no `TXN_CHECKSUM` or the block itself is bad.
    pub txn_checksum_ok: Option<bool>,
}

/// One transaction found by [`Journal::scan_log`], committed or not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnInfo {
    pub sequence: u64,
    /// Log block of its first block.
    pub start: u64,
    pub descriptor_blocks: u64,
    pub revoke_blocks: u64,
    /// The blocks it logs, in log order.
    pub logged: Vec<LoggedBlock>,
    /// The blocks its revoke records name.
    pub revoked: Vec<u64>,
    pub commit: Option<Commit>,
    /// The first logged block that does not match its tag, and why.
    pub bad_copy: Option<String>,
}

impl TxnInfo {
    /// Why a transaction with a valid commit block still does not count as committed.
    pub fn damage(&self) -> Option<String> {
        if let Some(why) = &self.bad_copy {
            return Some(why.clone());
        }
        match self.commit {
            Some(c) if c.txn_checksum_ok == Some(false) => {
                Some("its transaction checksum does not match".to_string())
            }
            _ => None,
        }
    }

    /// Recovery replays it: a valid commit block and nothing damaged.
    pub fn committed(&self) -> bool {
        self.commit.is_some_and(|c| c.checksum_ok) && self.damage().is_none()
    }
}

/// Why a walk over the log stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEnd {
    /// Log block `pos` is not a journal block: the normal end of the log.
    End { pos: u64 },
    /// Log block `pos` belongs to transaction `found`, not to the `expected` one: an older
    /// transaction already checkpointed, also a normal end.
    SequenceGap { pos: u64, found: u64, expected: u64 },
    /// Log block `pos` of the expected transaction is damaged (`why`): a torn write.
    BadBlock { pos: u64, why: String },
    /// The transaction has a valid commit block but fails another check; it and
    /// everything after it are not replayed.
    Damaged { sequence: u64 },
    /// The walk consumed every block of the log.
    Full,
}

/// What [`Journal::scan_log`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogScan {
    /// The transactions in log order: the committed ones, then the one the walk stopped
    /// in, if it had started.
    pub txns: Vec<TxnInfo>,
    /// The first transaction id after the committed ones.
    pub next_sequence: u64,
    pub end: LogEnd,
}

impl LogScan {
    /// The transaction with a valid commit block that fails another check (id, why).
    pub fn damaged(&self) -> Option<(u64, String)> {
        match self.end {
            LogEnd::Damaged { sequence } => self
                .txns
                .iter()
                .find(|t| t.sequence == sequence)
                .and_then(|t| Some((sequence, t.damage()?))),
            _ => None,
        }
    }
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
    pub fn committed(&self, dev: &Device, start: u64, sequence: u64) -> Res<Scan> {
        let log = self.scan_log(dev, start, sequence, &mut |_, _| check_cancel())?;
        Ok(Scan {
            transactions: log.next_sequence.wrapping_sub(sequence),
            next_sequence: log.next_sequence,
            damaged: log.damaged(),
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
        let log = self.scan_log(dev, start, sequence, &mut |_, _| check_cancel())?;
        let mut rec = Recovery {
            transactions: log.next_sequence.wrapping_sub(sequence),
            next_sequence: log.next_sequence,
            ..Recovery::default()
        };
        let committed: Vec<&TxnInfo> = log.txns.iter().filter(|t| t.committed()).collect();
        // Revoked block -> the latest transaction that revoked it.
        let mut revokes: HashMap<u64, u64> = HashMap::new();
        for t in &committed {
            for &b in &t.revoked {
                let latest = revokes.entry(b).or_insert(t.sequence);
                if seq_after(t.sequence, *latest) {
                    *latest = t.sequence;
                }
            }
        }
        let mut data = zero_block();
        for t in &committed {
            let seq = t.sequence;
            for logged in &t.logged {
                check_cancel()?;
                let target = logged.target;
                if revokes.get(&target).is_some_and(|&r| !seq_after(seq, r)) {
                    rec.revoked += 1;
                    continue;
                }
                if let Err(why) = self.logged_copy(dev, seq, logged, &mut data)? {
                    rec.bad += 1;
                    ui.problem(&format!("Journal transaction {seq}: {why}; skip it"), true)?;
                    continue;
                }
                if write {
                    dev.write(target, &data)?;
                }
                rec.replayed += 1;
            }
        }
        Ok(rec)
    }

    /// The scan pass: walks the log that starts at log block `start` with transaction
    /// `sequence` as recovery does, reading every logged block to check it against its
    /// tag, and reports each transaction it meets and why it stopped. Only the
    /// transactions before the first one that is not [`TxnInfo::committed`] count.
    /// `progress` is told the log blocks consumed and the most there can be before each
    /// block is read.
    pub fn scan_log(
        &self,
        dev: &Device,
        start: u64,
        sequence: u64,
        progress: &mut dyn FnMut(u64, u64) -> Res<()>,
    ) -> Res<LogScan> {
        let mut pos = start;
        let mut seq = sequence;
        // Log blocks consumed: the log can hold at most len - 1 of them.
        let mut steps: u64 = 0;
        let cap = self.len - JOURNAL_FIRST_LOG_BLOCK;
        let mut block = zero_block();
        let mut data = zero_block();
        let mut txns = Vec::new();
        // The transaction being read and its transaction checksum so far.
        let mut cur: Option<TxnInfo> = None;
        let mut sum = TransactionChecksum::new(self.seed);
        let end = loop {
            progress(steps, cap)?;
            if steps >= cap {
                break LogEnd::Full;
            }
            dev.read(self.start_block + pos, &mut block)?;
            let h: &JournalHeader = &JournalDescriptor::from_block(&block).header;
            if h.magic.get() != JOURNAL_MAGIC {
                break LogEnd::End { pos };
            }
            if h.sequence.get() != seq {
                break LogEnd::SequenceGap {
                    pos,
                    found: h.sequence.get(),
                    expected: seq,
                };
            }
            let kind = h.block_type.get();
            let txn = cur.get_or_insert_with(|| TxnInfo {
                sequence: seq,
                start: pos,
                ..TxnInfo::default()
            });
            if let Err(e) = check_journal_block(&block, self.seed, kind) {
                if kind == JT_COMMIT {
                    txn.commit = Some(Commit {
                        block: pos,
                        checksum_ok: false,
                        txn_checksum_ok: None,
                    });
                }
                break LogEnd::BadBlock {
                    pos,
                    why: e.msg().to_string(),
                };
            }
            steps += 1;
            match kind {
                JT_DESCRIPTOR => {
                    let Ok(tags) = JournalDescriptor::from_block(&block).used_tags() else {
                        break LogEnd::BadBlock {
                            pos,
                            why: "descriptor tag count out of range".to_string(),
                        };
                    };
                    if steps + tags.len() as u64 > cap {
                        break LogEnd::BadBlock {
                            pos,
                            why: "descriptor logs more blocks than the log holds".to_string(),
                        };
                    }
                    sum.add_metadata_block(&block);
                    txn.descriptor_blocks += 1;
                    let mut dpos = pos;
                    for tag in tags {
                        dpos = self.next(dpos);
                        steps += 1;
                        let logged = LoggedBlock {
                            target: tag.target.get(),
                            pos: dpos,
                            flags: tag.flags.get(),
                            checksum: tag.checksum.get(),
                        };
                        txn.logged.push(logged);
                        if txn.bad_copy.is_none() {
                            txn.bad_copy = self.logged_copy(dev, seq, &logged, &mut data)?.err();
                        }
                    }
                    pos = self.next(dpos);
                }
                JT_REVOKE => {
                    let Ok(records) = JournalRevoke::from_block(&block).records() else {
                        break LogEnd::BadBlock {
                            pos,
                            why: "revoke record count out of range".to_string(),
                        };
                    };
                    sum.add_metadata_block(&block);
                    txn.revoke_blocks += 1;
                    txn.revoked.extend(records.iter().map(|b| b.get()));
                    pos = self.next(pos);
                }
                JT_COMMIT => {
                    let c = JournalCommit::from_block(&block);
                    txn.commit = Some(Commit {
                        block: pos,
                        checksum_ok: true,
                        txn_checksum_ok: self
                            .txn_checksum
                            .then(|| c.check_transaction(&sum).is_ok()),
                    });
                    sum = TransactionChecksum::new(self.seed);
                    let committed = txn.committed();
                    txns.extend(cur.take());
                    if !committed {
                        break LogEnd::Damaged { sequence: seq };
                    }
                    seq = seq.wrapping_add(1);
                    pos = self.next(pos);
                }
                other => {
                    break LogEnd::BadBlock {
                        pos,
                        why: format!("unknown journal block type {other}"),
                    }
                }
            }
        };
        txns.extend(cur);
        Ok(LogScan {
            txns,
            next_sequence: seq,
            end,
        })
    }

    /// Reads the copy of `logged` (transaction `seq`) into `data`, unescaped, and checks
    /// it against its tag: `Err(why)` if its target is outside the filesystem or inside the
    /// journal, or its checksum does not match.
    fn logged_copy(
        &self,
        dev: &Device,
        seq: u64,
        logged: &LoggedBlock,
        data: &mut Block,
    ) -> Res<Result<(), String>> {
        let target = logged.target;
        let in_journal = target >= self.start_block && target < self.start_block + self.len;
        if target >= self.fs_blocks || in_journal {
            return Ok(Err(format!(
                "it logs block {target}, which is outside the filesystem's data"
            )));
        }
        dev.read(self.start_block + logged.pos, data)?;
        if logged.flags & TAG_FLAG_ESCAPED != 0 {
            unescape(data);
        }
        if journal_data_checksum(self.seed, seq, data) != logged.checksum {
            return Ok(Err(format!(
                "the logged copy of block {target} has a bad checksum"
            )));
        }
        Ok(Ok(()))
    }
}
