//! `journal`: the journal superblock, then the log walked from its start as recovery
//! walks it (the same scan fsck runs): each transaction, whether it would be replayed,
//! and why the walk stopped.

use aegisfs_format::checksum::verify_journal_block_checksum;
use aegisfs_format::journal::{
    JournalSuperBlock, JOURNAL_FEATURE_TXN_CHECKSUM, JOURNAL_MAGIC, JT_SUPERBLOCK,
};

use super::superblock::flag_names;
use super::{Inspector, Res};
use crate::fsck::journal::{Journal, LogEnd, TxnInfo};

pub(super) fn show(ins: &mut Inspector) -> Res<()> {
    let geo = ins.geometry()?;
    let (jstart, jlen) = (geo.journal_start(), geo.journal_blocks());
    if jlen == 0 {
        writeln!(ins.out, "No journal.")?;
        return Ok(());
    }
    let seed = geo.checksum_seed();
    let blk = ins.read(jstart)?;
    let j = JournalSuperBlock::from_block(&blk);
    let magic_ok = j.header.magic.get() == JOURNAL_MAGIC;
    let magic = ins.verdict(magic_ok);
    let type_ok = j.header.block_type.get() == JT_SUPERBLOCK;
    let block_type = ins.verdict(type_ok);
    let csum = ins.verdict(verify_journal_block_checksum(seed, &blk).is_ok());
    let o = &mut *ins.out;
    writeln!(
        o,
        "Journal: blocks {jstart}..{} ({jlen} blocks)",
        jstart + jlen - 1
    )?;
    writeln!(o, "Magic: 0x{:08x} {magic}", j.header.magic.get())?;
    writeln!(o, "Block type: {} {block_type}", j.header.block_type.get())?;
    writeln!(o, "Block size: {} bytes", j.block_size.get())?;
    writeln!(o, "Length (max_len): {} blocks", j.max_len.get())?;
    writeln!(o, "First log block: {}", j.first.get())?;
    writeln!(
        o,
        "Start: {}{}",
        j.start.get(),
        if j.is_empty() { " (empty)" } else { "" }
    )?;
    writeln!(
        o,
        "Sequence: {} (first expected transaction)",
        j.sequence.get()
    )?;
    writeln!(o, "Head: {} (informative)", j.head.get())?;
    writeln!(o, "Errno: {}", j.errno.get())?;
    writeln!(
        o,
        "Features: {}",
        flag_names(
            u64::from(j.features.get()),
            &[(u64::from(JOURNAL_FEATURE_TXN_CHECKSUM), "txn_checksum")]
        )
    )?;
    writeln!(o, "Checksum: 0x{:08x} {csum}", j.checksum.get())?;
    let jsb = match JournalSuperBlock::validate(&blk, seed, jlen) {
        Ok(jsb) => jsb,
        Err(e) => {
            let bad = ins.bad();
            writeln!(
                ins.out,
                "Validation: {bad}: {}; the log is not walked",
                e.msg()
            )?;
            return Ok(());
        }
    };
    writeln!(ins.out, "Validation: ok")?;
    if jsb.is_empty() {
        writeln!(ins.out, "Log: empty, nothing to replay")?;
        return Ok(());
    }
    let journal = Journal {
        start_block: jstart,
        len: jlen,
        seed,
        fs_blocks: geo.blocks_count(),
        txn_checksum: jsb.has_txn_checksum(),
    };
    let (start, sequence) = (jsb.start.get(), jsb.sequence.get());
    let scan = {
        let Inspector { dev, out, bar, .. } = &mut *ins;
        journal.scan_log(dev, start, sequence, &mut |cur, max| {
            if let Some(bar) = bar.as_mut() {
                bar.update(&mut **out, cur, max, "");
            }
            Ok(())
        })?
    };
    // The scan stops at the log's end, usually well before the most it could read.
    ins.progress(1, 1);
    ins.clear_progress();
    writeln!(
        ins.out,
        "Log: walked from log block {start}, transaction {sequence}"
    )?;
    let mut replayed_blocks = 0;
    for t in &scan.txns {
        show_txn(ins, t)?;
        if t.committed() {
            replayed_blocks += t.logged.len();
        }
    }
    let end = match &scan.end {
        LogEnd::End { pos } => format!("end of log at log block {pos} (no journal block)"),
        LogEnd::SequenceGap {
            pos,
            found,
            expected,
        } => format!(
            "sequence gap at log block {pos}: transaction {found} where {expected} was expected \
             (end of log)"
        ),
        LogEnd::BadBlock { pos, why } => {
            format!("bad checksum or structure at log block {pos}: {why}")
        }
        LogEnd::Damaged { sequence } => {
            format!("transaction {sequence} is damaged; it and later transactions are not replayed")
        }
        LogEnd::Full => "the whole log was walked".to_string(),
    };
    let committed = scan.next_sequence.wrapping_sub(sequence);
    writeln!(ins.out, "Stop: {end}")?;
    writeln!(
        ins.out,
        "Recovery would replay {committed} transaction(s), {replayed_blocks} logged block(s) \
         (before revokes); next sequence {}",
        scan.next_sequence
    )?;
    Ok(())
}

fn show_txn(ins: &mut Inspector, t: &TxnInfo) -> Res<()> {
    writeln!(
        ins.out,
        "Transaction {}: starts at log block {}, {} descriptor, {} data, {} revoke block(s)",
        t.sequence,
        t.start,
        t.descriptor_blocks,
        t.logged.len(),
        t.revoke_blocks
    )?;
    if !t.logged.is_empty() {
        let targets: Vec<u64> = t.logged.iter().map(|l| l.target).collect();
        writeln!(ins.out, "  logs blocks: {}", join(&targets))?;
    }
    if !t.revoked.is_empty() {
        writeln!(ins.out, "  revokes blocks: {}", join(&t.revoked))?;
    }
    let commit = match t.commit {
        None => "none".to_string(),
        Some(c) => {
            let csum = ins.verdict(c.checksum_ok);
            let txn = match c.txn_checksum_ok {
                None => String::new(),
                Some(ok) => format!(", transaction checksum {}", ins.verdict(ok)),
            };
            format!("log block {}, checksum {csum}{txn}", c.block)
        }
    };
    writeln!(ins.out, "  commit: {commit}")?;
    if let Some(why) = &t.bad_copy {
        let bad = ins.bad();
        writeln!(ins.out, "  logged copy {bad}: {why}")?;
    }
    let replay = if t.committed() {
        "yes".to_string()
    } else if t.commit.is_none() {
        "no (not committed)".to_string()
    } else {
        "no".to_string()
    };
    writeln!(ins.out, "  replayed: {replay}")?;
    Ok(())
}

fn join(blocks: &[u64]) -> String {
    blocks
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
