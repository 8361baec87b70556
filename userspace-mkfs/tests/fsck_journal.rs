//! fsck.aegisfs and the journal: replay of committed transactions (wrapping, escapes,
//! revokes, uncommitted and damaged ones) and transaction ids that wrap.

mod common;

use std::path::Path;

use aegisfs_format::checksum::{journal_data_checksum, set_journal_block_checksum};
use aegisfs_format::disk::{BLOCK_SIZE, FEATURE_INCOMPAT_RECOVER};
use aegisfs_format::journal::{
    escape, JournalCommit, JournalDescriptor, JournalRevoke, JournalSuperBlock, JOURNAL_MAGIC,
    TAG_FLAG_ESCAPED,
};
use common::fsck::{
    detect_repair, edit_sb, first_free_data_block, fsck, make_fs, read_block, write_block, Block,
};
use common::Image;

/// Writes `blocks` into the log from log block `pos` (wrapping), returns the next position.
fn put_log(img: &Path, jstart: u64, jlen: u64, mut pos: u64, blocks: &[Box<Block>]) -> u64 {
    for b in blocks {
        write_block(img, jstart + pos, b);
        pos = if pos + 1 >= jlen { 1 } else { pos + 1 };
    }
    pos
}

fn set_journal_start(img: &Path, start: u64, sequence: u64) {
    let im = Image::open(img);
    let j = im.geo.journal_start();
    let mut jsb = read_block(img, j);
    let s = JournalSuperBlock::from_block_mut(&mut jsb);
    s.start.set(start);
    s.sequence.set(sequence);
    set_journal_block_checksum(im.seed(), &mut jsb);
    write_block(img, j, &jsb);
    edit_sb(img, |sb| sb.feature_incompat.set(FEATURE_INCOMPAT_RECOVER));
}

/// One transaction: descriptor, logged blocks (escaped as needed), optional revoke block
/// and commit block.
fn transaction(
    seed: u32,
    seq: u64,
    logged: &[(u64, Box<Block>)],
    revoked: &[u64],
    commit: bool,
) -> Vec<Box<Block>> {
    let mut out = Vec::new();
    if !revoked.is_empty() {
        let mut r = Box::new([0u8; BLOCK_SIZE]);
        let rv = JournalRevoke::init(&mut r, seq);
        for &b in revoked {
            assert!(rv.push(b));
        }
        set_journal_block_checksum(seed, &mut r);
        out.push(r);
    }
    if !logged.is_empty() {
        let mut d = Box::new([0u8; BLOCK_SIZE]);
        let mut data = Vec::new();
        {
            let desc = JournalDescriptor::init(&mut d, seq);
            for (target, content) in logged {
                let csum = journal_data_checksum(seed, seq, content);
                let mut copy = content.clone();
                let flags = if escape(&mut copy) {
                    TAG_FLAG_ESCAPED
                } else {
                    0
                };
                assert!(desc.push_tag(*target, flags, csum));
                data.push(copy);
            }
        }
        set_journal_block_checksum(seed, &mut d);
        out.push(d);
        out.extend(data);
    }
    if commit {
        let mut c = Box::new([0u8; BLOCK_SIZE]);
        JournalCommit::write(&mut c, seed, seq, 1_700_000_000, 0);
        out.push(c);
    }
    out
}

#[test]
fn journal_recovery_replays_a_committed_transaction() {
    let fs = make_fs("jrec");
    let im = Image::open(&fs.img);
    let (jstart, jlen, seed) = (im.geo.journal_start(), im.geo.journal_blocks(), im.seed());
    let a_block = im.block_map(&im.lookup("a")).data[&0];
    drop(im);
    let mut content = Box::new([0u8; BLOCK_SIZE]);
    content[..6].copy_from_slice(b"HELLO\n");
    let log = transaction(seed, 1, &[(a_block, content.clone())], &[], true);
    put_log(&fs.img, jstart, jlen, 1, &log);
    set_journal_start(&fs.img, 1, 1);

    let out = detect_repair(
        &fs.img,
        "Journal needs recovery: 1 committed transaction(s)",
    );
    assert!(
        out.contains("journal replayed: 1 transaction(s), 1 block(s) written"),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, a_block), content);
    let im = Image::open(&fs.img);
    assert!(!im.sb().needs_recovery());
    let jsb = read_block(&fs.img, jstart);
    let j = JournalSuperBlock::validate(&jsb, seed, jlen).unwrap();
    assert_eq!((j.start.get(), j.sequence.get()), (0, 2));
}

#[test]
fn journal_replay_wraps_escapes_revokes_and_stops_at_uncommitted() {
    let fs = make_fs("jwrap");
    let im = Image::open(&fs.img);
    let (jstart, jlen, seed) = (im.geo.journal_start(), im.geo.journal_blocks(), im.seed());
    let free = first_free_data_block(&fs.img) + 1000;
    drop(im);
    let (ba, bb, bc, bd) = (free, free + 1, free + 2, free + 3);
    let fill = |v: u8| Box::new([v; BLOCK_SIZE]);
    let mut magic = fill(0x11);
    magic[..4].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
    for b in [ba, bb, bc, bd] {
        write_block(&fs.img, b, &fill(0xEE));
    }
    // Transaction 7 logs A (escaped: it starts with the journal magic) and B; 8 revokes B
    // and logs C; 9 revokes C and logs D but never commits, so neither counts. The log starts 3 blocks before its end, so
    // it wraps to log block 1.
    let mut log = transaction(seed, 7, &[(ba, magic.clone()), (bb, fill(0x22))], &[], true);
    log.extend(transaction(seed, 8, &[(bc, fill(0x33))], &[bb], true));
    log.extend(transaction(seed, 9, &[(bd, fill(0x44))], &[bc], false));
    let start = jlen - 3;
    put_log(&fs.img, jstart, jlen, start, &log);
    set_journal_start(&fs.img, start, 7);

    let (code, out) = fsck(&fs.img, &["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("Journal needs recovery: 2 committed transaction(s)"),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, ba), fill(0xEE));
    let (code, out) = fsck(&fs.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "journal replayed: 2 transaction(s), 2 block(s) written, 1 revoked, 0 skipped"
        ),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, ba), magic);
    assert_eq!(read_block(&fs.img, bb), fill(0xEE));
    assert_eq!(read_block(&fs.img, bc), fill(0x33));
    assert_eq!(read_block(&fs.img, bd), fill(0xEE));
    let jsb = read_block(&fs.img, jstart);
    let j = JournalSuperBlock::validate(&jsb, seed, jlen).unwrap();
    assert_eq!((j.start.get(), j.sequence.get()), (0, 9));
    assert_eq!(fsck(&fs.img, &["-n"]).0, 0);
}

#[test]
fn journal_block_with_a_bad_checksum_is_not_replayed() {
    let fs = make_fs("jbad");
    let im = Image::open(&fs.img);
    let (jstart, jlen, seed) = (im.geo.journal_start(), im.geo.journal_blocks(), im.seed());
    let target = first_free_data_block(&fs.img) + 500;
    drop(im);
    write_block(&fs.img, target, &[0xEE; BLOCK_SIZE]);
    let mut log = transaction(
        seed,
        1,
        &[(target, Box::new([0x55; BLOCK_SIZE]))],
        &[],
        true,
    );
    log[1][100] ^= 1;
    put_log(&fs.img, jstart, jlen, 1, &log);
    set_journal_start(&fs.img, 1, 1);
    let (code, out) = fsck(&fs.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "the logged copy of block {target} has a bad checksum; skip it"
        )),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, target)[..], [0xEE; BLOCK_SIZE][..]);
    assert_eq!(fsck(&fs.img, &["-n"]).0, 0);
}

#[test]
fn journal_transaction_ids_wrap() {
    let fs = make_fs("jseqwrap");
    let im = Image::open(&fs.img);
    let (jstart, jlen, seed) = (im.geo.journal_start(), im.geo.journal_blocks(), im.seed());
    let free = first_free_data_block(&fs.img) + 2000;
    drop(im);
    let fill = |v: u8| Box::new([v; BLOCK_SIZE]);
    for b in [free, free + 1] {
        write_block(&fs.img, b, &fill(0xEE));
    }
    // u64::MAX logs both blocks; the next id, 0, revokes the second.
    let mut log = transaction(
        seed,
        u64::MAX,
        &[(free, fill(1)), (free + 1, fill(2))],
        &[],
        true,
    );
    log.extend(transaction(seed, 0, &[], &[free + 1], true));
    put_log(&fs.img, jstart, jlen, 1, &log);
    set_journal_start(&fs.img, 1, u64::MAX);
    let (code, out) = fsck(&fs.img, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("journal replayed: 2 transaction(s), 1 block(s) written, 1 revoked"),
        "{out}"
    );
    assert_eq!(read_block(&fs.img, free), fill(1));
    assert_eq!(read_block(&fs.img, free + 1), fill(0xEE));
    let j = read_block(&fs.img, jstart);
    assert_eq!(JournalSuperBlock::from_block(&j).sequence.get(), 1);
    assert_eq!(fsck(&fs.img, &["-n"]).0, 0);
}
