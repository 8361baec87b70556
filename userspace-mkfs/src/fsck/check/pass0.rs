//! Pass 0: the superblock (read, mended field by field, and written back at the end)
//! and the journal (checked, and replayed when repairing).

use aegisfs_format::checksum::checksum_seed;
use aegisfs_format::checksum::set_journal_block_checksum;
use aegisfs_format::disk::{
    GroupDesc, SuperBlock, FEATURE_INCOMPAT_RECOVER, FIRST_INO, LOST_FOUND_INO, ROOT_INO,
    STATE_ALL, STATE_CLEAN, STATE_ERRORS,
};
use aegisfs_format::error::FormatError;
use aegisfs_format::geometry::Geometry;
use aegisfs_format::journal::{init_journal_superblock, JournalSuperBlock};

use super::Checker;
use crate::fsck::dev::{Block, Device};
use crate::fsck::journal::Journal;
use crate::fsck::ui::{Res, Stop, Ui};

impl<'u, 'o> Checker<'u, 'o> {
    pub(super) fn check_journal(&mut self) -> Res<()> {
        let jblocks = self.geo.journal_blocks();
        if jblocks == 0 {
            return Ok(());
        }
        let jstart = self.geo.journal_start();
        let mut jblk = self.dev.read_new(jstart)?;
        let (start, sequence, txn_checksum) =
            match JournalSuperBlock::validate(&jblk, self.seed, jblocks) {
                Ok(j) => (j.start.get(), j.sequence.get(), j.has_txn_checksum()),
                Err(FormatError::JournalFeature) => {
                    // Structurally sound, but written with features this fsck does not know:
                    // it cannot tell what is committed, so the log can only be discarded.
                    let j = JournalSuperBlock::from_block(&jblk);
                    let (unknown, sequence) = (j.unknown_features(), j.sequence.get());
                    let msg = format!(
                        "Journal superblock has unknown incompatible journal features \
                         0x{unknown:x}; the journal cannot be replayed: discard it"
                    );
                    if self.ui.problem(&msg, false)? {
                        init_journal_superblock(&mut jblk, self.seed, jblocks)
                            .map_err(|e| Stop::Error(e.msg().to_string()))?;
                        JournalSuperBlock::from_block_mut(&mut jblk)
                            .sequence
                            .set(sequence);
                        set_journal_block_checksum(self.seed, &mut jblk);
                        self.dev.write(jstart, &jblk)?;
                        self.clear_recover();
                    }
                    return Ok(());
                }
                Err(e) => {
                    let msg = format!(
                        "Journal superblock is corrupt ({}); reset it to an empty journal",
                        e.msg()
                    );
                    if self.ui.problem(&msg, false)? {
                        init_journal_superblock(&mut jblk, self.seed, jblocks)
                            .map_err(|e| Stop::Error(e.msg().to_string()))?;
                        self.dev.write(jstart, &jblk)?;
                        self.clear_recover();
                    }
                    return Ok(());
                }
            };
        if start == 0 {
            // What a crash right after a mount leaves: nothing to replay, and the next
            // mount clears the flag itself. Not an error in a read-only check.
            if self.sb().needs_recovery()
                && self.fixing()
                && self.ui.problem(
                    "Superblock has the RECOVER flag, but the journal is empty; clear the flag",
                    true,
                )?
            {
                self.clear_recover();
            }
            return Ok(());
        }
        let journal = Journal {
            start_block: jstart,
            len: jblocks,
            seed: self.seed,
            fs_blocks: self.geo.blocks_count(),
            txn_checksum,
        };
        let scan = journal.committed(&self.dev, start, sequence)?;
        let committed = scan.transactions;
        if let Some((seq, why)) = &scan.damaged {
            self.ui.problem(
                &format!(
                    "Journal transaction {seq} has a commit block, but {why}; do not replay \
                     it or any later transaction"
                ),
                true,
            )?;
        }
        let (rec, how) = if self.fixing() {
            let msg = format!(
                "Journal needs recovery: {committed} committed transaction(s) not yet \
                 checkpointed; replay them"
            );
            if !self.ui.problem(&msg, true)? {
                return Ok(());
            }
            let rec = journal.recover(&mut self.dev, self.ui, start, sequence, true)?;
            // The replayed blocks must be durable before the log that holds them is emptied.
            self.dev.sync()?;
            let jsb = JournalSuperBlock::from_block_mut(&mut jblk);
            jsb.start.set(0);
            jsb.head.set(0);
            jsb.sequence.set(rec.next_sequence);
            set_journal_block_checksum(self.seed, &mut jblk);
            self.dev.write(jstart, &jblk)?;
            (rec, "replayed")
        } else {
            // A committed log is the normal state after a crash, and the next mount
            // replays it: check the filesystem as that replay will leave it.
            self.dev.replay_in_memory(true);
            let rec = journal.recover(&mut self.dev, self.ui, start, sequence, true);
            self.dev.replay_in_memory(false);
            (rec?, "replayed in memory only (read-only check)")
        };
        self.ui.info(&format!(
            "{}: journal {}: {} transaction(s), {} block(s) written, {} revoked, {} skipped",
            self.ui.device, how, rec.transactions, rec.replayed, rec.revoked, rec.bad
        ));
        // The log may have held block 0 itself: start again from what is on disk now.
        let (block0, geo) = load_superblock(&self.dev, self.ui)?;
        self.block0 = block0;
        self.geo = geo;
        self.seed = geo.checksum_seed();
        self.clear_recover();
        Ok(())
    }

    fn clear_recover(&mut self) {
        let sb = self.sb_mut();
        let f = sb.feature_incompat.get();
        sb.feature_incompat.set(f & !FEATURE_INCOMPAT_RECOVER);
    }
}

impl<'u, 'o> Checker<'u, 'o> {
    /// Writes the superblock when repairing: fixed fields, free counts, and the state
    /// (CLEAN, ERRORS cleared) when nothing is left to fix.
    pub(super) fn finish_superblock(&mut self) -> Res<()> {
        if !self.fixing() {
            if self.sb().has_errors() {
                self.ui
                    .info("Note: the superblock records that errors were detected earlier");
            }
            return Ok(());
        }
        if self.sb().has_errors() && self.ui.left == 0 {
            self.ui.problem(
                "Superblock records errors (state ERRORS); clear it after this full check",
                true,
            )?;
        }
        let clean = self.ui.left == 0;
        let now = self.now;
        let sb = self.sb_mut();
        let state = sb.state.get() & STATE_ALL;
        // As e2fsck: only a filesystem left without errors counts as checked.
        if clean {
            sb.state.set((state | STATE_CLEAN) & !STATE_ERRORS);
            sb.check_time.set(now);
            sb.mount_count.set(0);
        } else {
            sb.state.set((state & !STATE_CLEAN) | STATE_ERRORS);
        }
        sb.update_checksum();
        let blk = self.block0.clone();
        self.dev.write(0, &blk)?;
        self.dev.sync()?;
        Ok(())
    }
}

/// Reads block 0 and validates the superblock, mending (in memory, and on disk when the
/// fix is accepted and written at the end) what can be mended field by field. Anything
/// else means the filesystem cannot be checked.
pub(super) fn load_superblock(dev: &Device, ui: &mut Ui) -> Res<(Box<Block>, Geometry)> {
    let mut block0 = dev.read_new(0)?;
    for _ in 0..16 {
        let sb = SuperBlock::in_block_mut(&mut block0);
        let err = match sb.validate(dev.blocks) {
            Ok(geo) => {
                if sb.reserved.iter().any(|&b| b != 0)
                    && ui.problem("Superblock reserved bytes are not zero", true)?
                {
                    sb.reserved.fill(0);
                    sb.update_checksum();
                }
                return Ok((block0, geo));
            }
            Err(e) => e,
        };
        if err == FormatError::SuperBlockChecksum {
            mend_seed(dev, ui, sb)?;
            ui.problem("Superblock checksum does not match", true)?;
            sb.update_checksum();
            continue;
        }
        let (msg, safe): (String, bool) = match err {
            FormatError::BadFreeCounts => {
                // Pass 5 recounts and reports both.
                sb.free_blocks.set(0);
                sb.free_inodes.set(0);
                sb.update_checksum();
                continue;
            }
            FormatError::BadState => (
                format!(
                    "Superblock state has unknown bits 0x{:x}",
                    sb.state.get() & !STATE_ALL
                ),
                true,
            ),
            FormatError::BadErrorsBehavior => (
                format!(
                    "Superblock errors behavior {} is invalid; set it to 1 (continue)",
                    sb.errors_behavior.get()
                ),
                true,
            ),
            FormatError::BadLabel => ("Superblock label is malformed; clear it".into(), false),
            FormatError::BadOrphan => (
                format!(
                    "Superblock orphan list head {} is invalid; clear it",
                    sb.last_orphan.get()
                ),
                true,
            ),
            FormatError::BadReservedInodes => (
                "Superblock reserved inode numbers are wrong; set them to 2, 11, 11".into(),
                false,
            ),
            e => {
                return Err(Stop::Error(format!(
                    "superblock is unusable: {}; cannot check this filesystem",
                    e.msg()
                )))
            }
        };
        // Mended in memory either way so a read-only check can go on; a repair writes the
        // superblock at the end.
        ui.problem(&msg, safe)?;
        match err {
            FormatError::BadState => sb.state.set(sb.state.get() & STATE_ALL),
            FormatError::BadErrorsBehavior => sb.errors_behavior.set(1),
            FormatError::BadLabel => sb.label = [0; 64],
            FormatError::BadOrphan => sb.last_orphan.set(0),
            FormatError::BadReservedInodes => {
                sb.root_ino.set(ROOT_INO);
                sb.first_ino.set(FIRST_INO);
                sb.lost_found_ino.set(LOST_FOUND_INO);
            }
            _ => {}
        }
        sb.update_checksum();
    }
    Err(Stop::Error(
        "superblock is unusable; cannot check this filesystem".into(),
    ))
}

/// Before a superblock's checksum is recomputed, makes sure its `checksum_seed` is the one
/// the rest of the filesystem was written with (group 0's descriptor tells): a damaged
/// seed must not be sealed in, or every other checksum would look wrong. The seed may
/// legitimately differ from the UUID's (it survives UUID changes), so the UUID's is only
/// a fallback.
fn mend_seed(dev: &Device, ui: &mut Ui, sb: &mut SuperBlock) -> Res<()> {
    let gdt = dev.read_new(1)?;
    let d = GroupDesc::in_block(&gdt, 0);
    if d.verify_checksum(sb.checksum_seed.get(), 0).is_ok() {
        return Ok(());
    }
    let from_uuid = checksum_seed(&sb.uuid);
    if d.verify_checksum(from_uuid, 0).is_err() {
        return Err(Stop::Error(
            "superblock checksum does not match, and neither its checksum seed nor its UUID's \
             matches group 0's descriptor; cannot check this filesystem"
                .into(),
        ));
    }
    ui.problem(
        &format!(
            "Superblock checksum seed 0x{:08x} is wrong; use the UUID's, 0x{from_uuid:08x}",
            sb.checksum_seed.get()
        ),
        true,
    )?;
    sb.checksum_seed.set(from_uuid);
    Ok(())
}
