//! fsck.aegisfs and the journal: replay of committed transactions (wrapping, escapes,
//! revokes), transactions that do not count as committed (torn or damaged commit, logged
//! blocks that do not match their tags, transaction checksum mismatch) and everything
//! after them, unknown journal features, and transaction ids that wrap.

mod common;

use std::fs;

use aegisfs_format::checksum::set_journal_block_checksum;
use aegisfs_format::journal::{
    JournalCommit, JOURNAL_FEATURES_DEFAULT, JOURNAL_FEATURE_TXN_CHECKSUM, JOURNAL_MAGIC,
};
use common::fsck::{first_free_data_block, fsck, make_fs, read_block, write_block, Fs};
use common::journal::{fill, Log};
use common::{set_range, Image};

/// A fresh image, its journal (writing from log block `pos`) and `n` free data blocks,
/// each filled with 0xEE.
fn setup(name: &str, pos: u64, n: u64) -> (Fs, Log, Vec<u64>) {
    let fs = make_fs(name);
    let log = Log::open(&fs.img, pos);
    let free = first_free_data_block(&fs.img) + 1000;
    let blocks: Vec<u64> = (free..free + n).collect();
    for &b in &blocks {
        write_block(&fs.img, b, &fill(0xEE));
    }
    (fs, log, blocks)
}

/// `-n` replays the `committed` transactions in memory only, with the summary `replayed`,
/// and finds the filesystem clean (exit 0, nothing written), but for a `damaged` committed
/// transaction it does not replay (exit 4); `-y` replays them on disk
/// (exit 1); the journal is then empty with `next` as its sequence, RECOVER is clear and a
/// second `-n` is clean. Returns the `-y` output.
fn recover(log: &Log, committed: u64, replayed: &str, next: u64, damaged: bool) -> String {
    let before = fs::read(&log.img).unwrap();
    let (code, out) = fsck(&log.img, &["-n"]);
    assert_eq!(code, if damaged { 4 } else { 0 }, "{out}");
    assert!(
        out.contains(&format!(
            "journal replayed in memory only (read-only check): {replayed}"
        )),
        "{out}"
    );
    assert!(replayed.starts_with(&format!("{committed} transaction(s)")));
    assert!(
        fs::read(&log.img).unwrap() == before,
        "-n wrote to the image"
    );
    let (code, out) = fsck(&log.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("journal replayed: {replayed}")),
        "{out}"
    );
    let (start, head, seq, _) = log.superblock();
    assert_eq!((start, head, seq), (0, 0, next), "{out}");
    assert!(!Image::open(&log.img).sb().needs_recovery());
    let (code, again) = fsck(&log.img, &["-n"]);
    assert_eq!(code, 0, "{out}\n---\n{again}");
    out
}

#[test]
fn journal_recovery_replays_a_committed_transaction() {
    let fs = make_fs("jrec");
    let im = Image::open(&fs.img);
    let a_block = im.block_map(&im.lookup("a")).data[&0];
    drop(im);
    let mut log = Log::open(&fs.img, 1);
    let mut content = fill(0);
    content[..6].copy_from_slice(b"HELLO\n");
    log.put(&log.txn(1).log(&[(a_block, content.clone())]).commit());
    log.go_live(1, 1, |_| {});

    let out = recover(&log, 1, "1 transaction(s), 1 block(s) written", 2, false);
    assert!(out.contains("Journal needs recovery: 1 committed transaction(s)"));
    assert_eq!(read_block(&fs.img, a_block), content);
    assert_eq!(log.superblock(), (0, 0, 2, JOURNAL_FEATURES_DEFAULT));
}

#[test]
fn journal_clean_two_transactions_replay_both() {
    let (_fs, mut log, b) = setup("jtwo", 1, 3);
    // 1 logs A and B, 2 logs B again and C: B ends with 2's copy.
    log.put(&log.txn(1).log(&[(b[0], fill(1)), (b[1], fill(2))]).commit());
    log.put(&log.txn(2).log(&[(b[1], fill(3)), (b[2], fill(4))]).commit());
    log.go_live(1, 1, |_| {});
    recover(
        &log,
        2,
        "2 transaction(s), 4 block(s) written, 0 revoked, 0 skipped",
        3,
        false,
    );
    assert_eq!(read_block(&log.img, b[0]), fill(1));
    assert_eq!(read_block(&log.img, b[1]), fill(3));
    assert_eq!(read_block(&log.img, b[2]), fill(4));
}

#[test]
fn journal_replay_wraps_escapes_revokes_and_stops_at_uncommitted() {
    let (_fs, mut log, b) = setup("jwrap", 0, 4);
    let (ba, bb, bc, bd) = (b[0], b[1], b[2], b[3]);
    let mut magic = fill(0x11);
    magic[..4].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
    // Transaction 7 logs A (escaped: it starts with the journal magic) and B; 8 revokes B
    // and logs C; 9 revokes C and logs D but never commits, so neither counts. The log
    // starts 3 blocks before its end, so it wraps to log block 1 inside transaction 7.
    let start = log.jlen - 3;
    log.pos = start;
    log.put(
        &log.txn(7)
            .log(&[(ba, magic.clone()), (bb, fill(0x22))])
            .commit(),
    );
    log.put(&log.txn(8).revoke(&[bb]).log(&[(bc, fill(0x33))]).commit());
    log.put(
        &log.txn(9)
            .revoke(&[bc])
            .log(&[(bd, fill(0x44))])
            .uncommitted(),
    );
    log.go_live(start, 7, |_| {});
    // B is the last log block; 7's commit block wrapped to log block 1.
    assert!(read_block(&log.img, log.jstart + log.jlen - 1) == fill(0x22));
    assert!(read_block(&log.img, log.jstart + 1)[..4] == JOURNAL_MAGIC.to_le_bytes());

    let out = recover(
        &log,
        2,
        "2 transaction(s), 2 block(s) written, 1 revoked, 0 skipped",
        9,
        false,
    );
    assert!(!out.contains("has a commit block"), "{out}");
    assert_eq!(read_block(&log.img, ba), magic);
    assert_eq!(read_block(&log.img, bb), fill(0xEE));
    assert_eq!(read_block(&log.img, bc), fill(0x33));
    assert_eq!(read_block(&log.img, bd), fill(0xEE));
}

#[test]
fn journal_escaped_blocks_are_restored() {
    let (_fs, mut log, b) = setup("jesc", 1, 2);
    let mut m1 = fill(0x5A);
    m1[..4].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
    // Only the first 4 bytes are the magic: a whole journal header with a valid-looking
    // sequence must not confuse the scan either.
    let mut m2 = fill(0);
    m2[..4].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
    m2[4..8].copy_from_slice(&3u32.to_le_bytes());
    m2[8..16].copy_from_slice(&1u64.to_le_bytes());
    let txn = log
        .txn(1)
        .log(&[(b[0], m1.clone()), (b[1], m2.clone())])
        .commit();
    // The logged copies have their magic zeroed.
    assert_eq!(&txn[1][..4], &[0; 4]);
    assert_eq!(&txn[2][..4], &[0; 4]);
    log.put(&txn);
    log.go_live(1, 1, |_| {});
    recover(
        &log,
        1,
        "1 transaction(s), 2 block(s) written, 0 revoked, 0 skipped",
        2,
        false,
    );
    assert_eq!(read_block(&log.img, b[0]), m1);
    assert_eq!(read_block(&log.img, b[1]), m2);
}

#[test]
fn journal_torn_commit_is_not_replayed() {
    // The commit block of transaction 2 is missing: only 1 is replayed.
    let (_fs, mut log, b) = setup("jtorn", 1, 2);
    log.put(&log.txn(1).log(&[(b[0], fill(1))]).commit());
    log.put(&log.txn(2).log(&[(b[1], fill(2))]).uncommitted());
    log.go_live(1, 1, |_| {});
    let out = recover(
        &log,
        1,
        "1 transaction(s), 1 block(s) written, 0 revoked, 0 skipped",
        2,
        false,
    );
    assert!(!out.contains("has a commit block"), "{out}");
    assert_eq!(read_block(&log.img, b[0]), fill(1));
    assert_eq!(read_block(&log.img, b[1]), fill(0xEE));

    // The commit block of transaction 2 has a bad checksum (a torn write): neither 2 nor
    // the valid transaction 3 after it is replayed.
    let (_fs, mut log, b) = setup("jtorn2", 1, 3);
    log.put(&log.txn(1).log(&[(b[0], fill(1))]).commit());
    let mut t2 = log.txn(2).log(&[(b[1], fill(2))]).commit();
    t2.last_mut().unwrap()[0x40] ^= 1;
    log.put(&t2);
    log.put(&log.txn(3).log(&[(b[2], fill(3))]).commit());
    log.go_live(1, 1, |_| {});
    recover(
        &log,
        1,
        "1 transaction(s), 1 block(s) written, 0 revoked, 0 skipped",
        2,
        false,
    );
    assert_eq!(read_block(&log.img, b[0]), fill(1));
    assert_eq!(read_block(&log.img, b[1]), fill(0xEE));
    assert_eq!(read_block(&log.img, b[2]), fill(0xEE));
}

#[test]
fn journal_logged_block_not_matching_its_tag_ends_the_log() {
    // Transaction 2's second logged block does not match its tag: 2 (including its good
    // first block) and 3 are not replayed.
    let (_fs, mut log, b) = setup("jbad", 1, 4);
    log.put(&log.txn(1).log(&[(b[0], fill(1))]).commit());
    let mut t2 = log.txn(2).log(&[(b[1], fill(2)), (b[2], fill(3))]).commit();
    t2[2][100] ^= 1;
    log.put(&t2);
    log.put(&log.txn(3).log(&[(b[3], fill(4))]).commit());
    log.go_live(1, 1, |_| {});
    let out = recover(
        &log,
        1,
        "1 transaction(s), 1 block(s) written, 0 revoked, 0 skipped",
        2,
        true,
    );
    assert!(
        out.contains(&format!(
            "Journal transaction 2 has a commit block, but the logged copy of block {} has \
             a bad checksum; do not replay it or any later transaction",
            b[2]
        )),
        "{out}"
    );
    assert_eq!(read_block(&log.img, b[0]), fill(1));
    for &x in &b[1..] {
        assert_eq!(read_block(&log.img, x), fill(0xEE));
    }
}

#[test]
fn journal_tag_target_outside_the_data_ends_the_log() {
    let (fs, mut log, b) = setup("jtarget", 1, 2);
    let blocks = Image::open(&fs.img).geo.blocks_count();
    // 2 logs a block inside the journal itself, 3 one past the end of the filesystem.
    log.put(&log.txn(1).log(&[(b[0], fill(1))]).commit());
    log.put(&log.txn(2).log(&[(log.jstart + 5, fill(2))]).commit());
    log.go_live(1, 1, |_| {});
    let out = recover(
        &log,
        1,
        "1 transaction(s), 1 block(s) written, 0 revoked, 0 skipped",
        2,
        true,
    );
    assert!(
        out.contains(&format!(
            "Journal transaction 2 has a commit block, but it logs block {}, which is \
             outside the filesystem's data",
            log.jstart + 5
        )),
        "{out}"
    );

    let mut log = Log::open(&fs.img, 1);
    log.put(
        &log.txn(2)
            .log(&[(b[1], fill(3)), (blocks, fill(4))])
            .commit(),
    );
    log.go_live(1, 2, |_| {});
    recover(
        &log,
        0,
        "0 transaction(s), 0 block(s) written, 0 revoked, 0 skipped",
        2,
        true,
    );
    assert_eq!(read_block(&log.img, b[1]), fill(0xEE));
}

#[test]
fn journal_transaction_checksum_mismatch_is_not_replayed() {
    let (_fs, mut log, b) = setup("jtxsum", 1, 3);
    log.put(&log.txn(1).log(&[(b[0], fill(1))]).commit());
    // Transaction 2's commit block is valid in itself but carries a transaction checksum
    // that does not cover its blocks.
    let mut t2 = log.txn(2).revoke(&[b[0]]).log(&[(b[1], fill(2))]).commit();
    {
        let c = t2.last_mut().unwrap();
        let cm = JournalCommit::from_block_mut(c);
        let v = cm.transaction_checksum.get();
        cm.transaction_checksum.set(v ^ 0x8000_0000);
        set_journal_block_checksum(log.seed, c);
    }
    let t2_start = log.pos;
    log.put(&t2);
    log.put(&log.txn(3).log(&[(b[2], fill(3))]).commit());
    log.go_live(1, 1, |_| {});
    let out = recover(
        &log,
        1,
        "1 transaction(s), 1 block(s) written, 0 revoked, 0 skipped",
        2,
        true,
    );
    assert!(
        out.contains(
            "Journal transaction 2 has a commit block, but its transaction checksum does \
             not match"
        ),
        "{out}"
    );
    assert_eq!(read_block(&log.img, b[0]), fill(1));
    assert_eq!(read_block(&log.img, b[1]), fill(0xEE));
    assert_eq!(read_block(&log.img, b[2]), fill(0xEE));

    // Without TXN_CHECKSUM in the journal superblock the field is not checked: the same
    // log replays all three transactions (2's revoke cancels 1's copy of A).
    for &x in &b {
        write_block(&log.img, x, &fill(0xEE));
    }
    let mut relog = Log::open(&log.img, t2_start);
    relog.put(&t2);
    relog.put(&relog.txn(3).log(&[(b[2], fill(3))]).commit());
    relog.go_live(1, 1, |j| j.features.set(0));
    recover(
        &relog,
        3,
        "3 transaction(s), 2 block(s) written, 1 revoked, 0 skipped",
        4,
        false,
    );
    assert_eq!(read_block(&log.img, b[0]), fill(0xEE));
    assert_eq!(read_block(&log.img, b[1]), fill(2));
    assert_eq!(read_block(&log.img, b[2]), fill(3));
}

#[test]
fn journal_revokes_cancel_earlier_copies_only() {
    let (_fs, mut log, b) = setup("jrevoke", 1, 3);
    let (x, y, z) = (b[0], b[1], b[2]);
    // 1 logs X, Y and Z; 2 revokes X and Y; 3 logs X again (replayed: after the revoke);
    // 4 logs Z and revokes it in the same transaction (both copies of Z cancelled).
    log.put(
        &log.txn(1)
            .log(&[(x, fill(1)), (y, fill(2)), (z, fill(3))])
            .commit(),
    );
    log.put(&log.txn(2).revoke(&[x, y]).commit());
    log.put(&log.txn(3).log(&[(x, fill(4))]).commit());
    log.put(&log.txn(4).log(&[(z, fill(5))]).revoke(&[z]).commit());
    log.go_live(1, 1, |_| {});
    recover(
        &log,
        4,
        "4 transaction(s), 1 block(s) written, 4 revoked, 0 skipped",
        5,
        false,
    );
    assert_eq!(read_block(&log.img, x), fill(4));
    assert_eq!(read_block(&log.img, y), fill(0xEE));
    assert_eq!(read_block(&log.img, z), fill(0xEE));
}

#[test]
fn journal_with_unknown_features_is_not_replayed() {
    let (_fs, mut log, b) = setup("jfeat", 1, 1);
    log.put(&log.txn(5).log(&[(b[0], fill(1))]).commit());
    let unknown = 1u32 << 7;
    log.go_live(1, 5, |j| {
        j.features.set(JOURNAL_FEATURE_TXN_CHECKSUM | unknown)
    });
    let msg = "Journal superblock has unknown incompatible journal features 0x80; the \
               journal cannot be replayed: discard it";
    let before = read_block(&log.img, log.jstart);
    let (code, out) = fsck(&log.img, &["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains(msg), "{out}");
    assert!(!out.contains("Journal needs recovery"), "{out}");
    assert_eq!(read_block(&log.img, log.jstart), before);
    // Not safe to fix without asking: preen stops.
    let (code, out) = fsck(&log.img, &["-p"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("UNEXPECTED INCONSISTENCY"), "{out}");
    assert_eq!(read_block(&log.img, log.jstart), before);

    let (code, out) = fsck(&log.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(msg), "{out}");
    assert!(!out.contains("journal replayed"), "{out}");
    assert_eq!(read_block(&log.img, b[0]), fill(0xEE));
    assert_eq!(log.superblock(), (0, 0, 5, JOURNAL_FEATURES_DEFAULT));
    assert!(!Image::open(&log.img).sb().needs_recovery());
    assert_eq!(fsck(&log.img, &["-n"]).0, 0);
}

#[test]
fn journal_transaction_ids_wrap() {
    let (_fs, mut log, b) = setup("jseqwrap", 1, 2);
    // u64::MAX logs both blocks; the next id, 0, revokes the second.
    log.put(
        &log.txn(u64::MAX)
            .log(&[(b[0], fill(1)), (b[1], fill(2))])
            .commit(),
    );
    log.put(&log.txn(0).revoke(&[b[1]]).commit());
    log.go_live(1, u64::MAX, |_| {});
    recover(
        &log,
        2,
        "2 transaction(s), 1 block(s) written, 1 revoked, 0 skipped",
        1,
        false,
    );
    assert_eq!(read_block(&log.img, b[0]), fill(1));
    assert_eq!(read_block(&log.img, b[1]), fill(0xEE));
}

#[test]
fn read_only_check_sees_the_replayed_filesystem() {
    // On disk, group 0's block bitmap marks a free block used; the log holds the right
    // bitmap. `-n` checks what the replay will leave: clean, and nothing written.
    let fs = make_fs("jro");
    let im = Image::open(&fs.img);
    let bitmap_block = im.geo.block_bitmap_block(0).unwrap();
    let free = first_free_data_block(&fs.img) - im.geo.first_group_block();
    drop(im);
    let good = read_block(&fs.img, bitmap_block);
    let mut bad = good.clone();
    set_range(&mut bad, free, free + 1);
    write_block(&fs.img, bitmap_block, &bad);
    let mut log = Log::open(&fs.img, 1);
    log.put(&log.txn(1).log(&[(bitmap_block, good.clone())]).commit());
    log.go_live(1, 1, |_| {});
    let before = fs::read(&fs.img).unwrap();
    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replayed in memory only"), "{out}");
    assert!(
        fs::read(&fs.img).unwrap() == before,
        "-n wrote to the image"
    );

    // The other way round: the log holds the wrong bitmap, which `-n` then finds.
    write_block(&fs.img, bitmap_block, &good);
    let mut log = Log::open(&fs.img, 1);
    log.put(&log.txn(1).log(&[(bitmap_block, bad)]).commit());
    log.go_live(1, 1, |_| {});
    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("bitmap"), "{out}");
    assert_eq!(read_block(&fs.img, bitmap_block), good);
}

#[test]
fn recover_flag_with_an_empty_journal() {
    // What a crash right after a mount leaves: not an error for `-n`; `-y` clears it.
    let fs = make_fs("jflag");
    let log = Log::open(&fs.img, 1);
    log.go_live(0, 1, |j| j.head.set(0));
    assert!(Image::open(&fs.img).sb().needs_recovery());
    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 0, "{out}");
    assert!(Image::open(&fs.img).sb().needs_recovery());
    let (code, out) = fsck(&fs.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the journal is empty; clear the flag"),
        "{out}"
    );
    assert!(!Image::open(&fs.img).sb().needs_recovery());
}
