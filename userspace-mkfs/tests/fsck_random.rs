//! Randomized damage: 300 seeded single-byte, single-bit or single-field corruptions of
//! metadata blocks (group descriptors, bitmaps, inode table, directory and indirect blocks,
//! the journal superblock). fsck must never crash or hang, `-n` must answer 0 or 4, and
//! `-fy` must either repair (then `-n` is clean) or report what it could not fix (exit
//! status with bit 4 set; fsck(8) statuses are sums, so 5 = corrected + left uncorrected).
//! A second test does the same to the blocks of an indexed directory.
//! Block 0 is left alone: a superblock that does not validate is an operational error
//! (exit 8) by design, as AegisFS has no backup superblock to fall back on.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aegisfs_format::checksum::{set_inode_checksum, set_journal_block_checksum};
use aegisfs_format::dir::set_dir_block_checksum;
use aegisfs_format::dirindex::set_index_checksum;
use aegisfs_format::disk::{GroupDesc, IndirectBlock, BLOCK_SIZE, BLOCK_SIZE_U64, ROOT_INO};
use aegisfs_tools::rng::Rng;
use common::dirindex::{make_indexed, use_test_key, Head, Shape};
use common::fsck::FSCK;
use common::{mkfs_ok, text, Image, Scratch};

const ITERATIONS: u32 = 300;

/// How a damaged block gets a valid checksum again, so that the damage reaches the
/// checks behind the checksum.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Gdt,
    BlockBitmap,
    InodeBitmap,
    /// Inode table block holding inodes `first..` in slots of `size` bytes.
    InodeTable {
        first: u32,
        size: usize,
    },
    Dir {
        ino: u32,
        generation: u32,
    },
    Indirect {
        ino: u32,
        generation: u32,
    },
    JournalSuper,
}

/// Runs fsck with a time limit; panics on a signal or a hang.
fn fsck(img: &Path, args: &[&str], what: &str) -> (i32, String) {
    let mut child = Command::new(FSCK)
        .args(args)
        .arg(img)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
            let code = status
                .code()
                .unwrap_or_else(|| panic!("{what}: fsck {args:?} killed by {status:?}\n{log}"));
            return (code, log);
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("{what}: fsck {args:?} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn random_metadata_corruption() {
    let scratch = Scratch::new("fsck-random");
    let src = scratch.join("src");
    fs::create_dir_all(src.join("d1/sub")).unwrap();
    fs::create_dir_all(src.join("d2")).unwrap();
    for i in 0..12 {
        fs::write(src.join(format!("d1/f{i}")), vec![i as u8; 100 * i]).unwrap();
    }
    fs::write(src.join("big"), vec![7u8; 30 * BLOCK_SIZE]).unwrap();
    fs::write(src.join("d2/g"), b"g").unwrap();
    std::os::unix::fs::symlink("d1/f1", src.join("ln")).unwrap();
    let pristine_path = scratch.join("pristine");
    mkfs_ok(&[
        "-q".as_ref(),
        "-N".as_ref(),
        "64".as_ref(),
        "-d".as_ref(),
        src.as_os_str(),
        pristine_path.as_os_str(),
        "5M".as_ref(),
    ]);

    let im = Image::open(&pristine_path);
    let geo = im.geo;
    let mut targets: Vec<(u64, Kind)> = vec![
        (1, Kind::Gdt),
        (geo.block_bitmap_block(0).unwrap(), Kind::BlockBitmap),
        (geo.inode_bitmap_block(0).unwrap(), Kind::InodeBitmap),
        (geo.journal_start(), Kind::JournalSuper),
    ];
    let per_block = geo.inodes_per_block();
    for k in 0..2u32 {
        targets.push((
            geo.inode_table_block(0).unwrap() + u64::from(k),
            Kind::InodeTable {
                first: k * per_block + 1,
                size: usize::from(geo.inode_size()),
            },
        ));
    }
    for path in ["", "lost+found", "d1", "d1/sub", "d2"] {
        let node = if path.is_empty() {
            im.inode(ROOT_INO)
        } else {
            im.lookup(path)
        };
        let kind = Kind::Dir {
            ino: node.ino,
            generation: node.i().generation.get(),
        };
        for &b in im.block_map(&node).data.values() {
            targets.push((b, kind));
        }
    }
    let big = im.lookup("big");
    let kind = Kind::Indirect {
        ino: big.ino,
        generation: big.i().generation.get(),
    };
    targets.push((big.i().indirect.get(), kind));
    let seed = im.seed();
    drop(im);

    let pristine = fs::read(&pristine_path).unwrap();
    let img = scratch.join("img");
    let mut rng = Rng::from_seed(*b"aegisfs fsck randomized test 01!");
    let mut outcomes = [0u32; 3];
    for iter in 0..ITERATIONS {
        fs::write(&img, &pristine).unwrap();
        let (block, kind) = targets[(rng.next_u32() as usize) % targets.len()];
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        let mut blk = [0u8; BLOCK_SIZE];
        f.read_exact_at(&mut blk, block * BLOCK_SIZE_U64).unwrap();
        let how = rng.next_u32() % 3;
        let off = (rng.next_u32() % 4096) as usize;
        let values = [0, 1, u32::MAX, rng.next_u32() % 64, rng.next_u32()];
        if let Some(at) = damage(&mut rng, &mut blk, off, how, &values) {
            reseal(&f, &mut blk, kind, at, seed);
        }
        f.write_all_at(&blk, block * BLOCK_SIZE_U64).unwrap();
        drop(f);

        let what = format!("iteration {iter}: block {block} ({kind:?}), offset {off}, how {how}");
        outcomes[check_and_repair(&img, &what)] += 1;
    }
    // The damage must mostly be found and repaired, or the test proves nothing.
    assert!(
        outcomes[1] > ITERATIONS / 2,
        "outcomes (clean, repaired, left): {outcomes:?}"
    );
}

/// The same for the blocks of an indexed directory (docs/format.md, "Indexed
/// directories"): root of level 1, 3 nodes, 8 leaves, entries in the first block too.
/// Damage resealed with the right checksum reaches the index checks behind it.
#[test]
fn random_index_corruption() {
    const ROUNDS: u32 = 200;
    let scratch = Scratch::new("fsck-random-index");
    let src = scratch.join("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    for i in 0..200 {
        fs::write(src.join(format!("dir/name-{i:03}")), b"").unwrap();
    }
    let pristine_path = scratch.join("pristine");
    mkfs_ok(&[
        "-q".as_ref(),
        "-N".as_ref(),
        "256".as_ref(),
        "-d".as_ref(),
        src.as_os_str(),
        pristine_path.as_os_str(),
        "5M".as_ref(),
    ]);
    use_test_key(&pristine_path);
    let shape = Shape {
        head: Head::First(20),
        root_level: 1,
        nodes: 3,
        leaves: 8,
        unreferenced: false,
    };
    let d = make_indexed(&pristine_path, "dir", shape);
    let (code, log) = fsck(&pristine_path, &["-fn"], "pristine");
    assert_eq!(code, 0, "{log}");
    let seed = Image::open(&pristine_path).seed();

    let pristine = fs::read(&pristine_path).unwrap();
    let img = scratch.join("img");
    let mut rng = Rng::from_seed(*b"aegisfs fsck randomized index 01");
    let mut outcomes = [0u32; 3];
    for iter in 0..ROUNDS {
        fs::write(&img, &pristine).unwrap();
        let lblk = (rng.next_u32() as usize) % d.blocks.len();
        let block = d.blocks[lblk];
        let index = lblk == 1 || d.nodes.contains(&(lblk as u64));
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        let mut blk = [0u8; BLOCK_SIZE];
        f.read_exact_at(&mut blk, block * BLOCK_SIZE_U64).unwrap();
        let how = rng.next_u32() % 3;
        // Index blocks have their entries near the start: aim there half of the time.
        let span = if index && rng.next_u32().is_multiple_of(2) {
            128
        } else {
            4096
        };
        let off = (rng.next_u32() % span) as usize;
        let values = [0, 1, 2, u32::MAX, rng.next_u32() % 64, rng.next_u32()];
        if damage(&mut rng, &mut blk, off, how, &values).is_some() {
            if index {
                set_index_checksum(&mut blk, seed, d.ino, d.generation);
            } else {
                set_dir_block_checksum(&mut blk, seed, d.ino, d.generation);
            }
        }
        f.write_all_at(&blk, block * BLOCK_SIZE_U64).unwrap();
        drop(f);

        let what = format!("iteration {iter}: logical block {lblk}, offset {off}, how {how}");
        outcomes[check_and_repair(&img, &what)] += 1;
    }
    assert!(
        outcomes[1] > ROUNDS / 2,
        "outcomes (clean, repaired, left): {outcomes:?}"
    );
}

/// Recomputes the checksum that covers byte `at` of a damaged block.
fn reseal(f: &fs::File, blk: &mut [u8; BLOCK_SIZE], kind: Kind, at: usize, seed: u32) {
    match kind {
        Kind::Gdt => GroupDesc::in_block_mut(blk, 0).update_checksum(seed, 0),
        Kind::BlockBitmap | Kind::InodeBitmap => {
            let mut gdt = [0u8; BLOCK_SIZE];
            f.read_exact_at(&mut gdt, BLOCK_SIZE_U64).unwrap();
            let d = GroupDesc::in_block_mut(&mut gdt, 0);
            if matches!(kind, Kind::BlockBitmap) {
                d.set_block_bitmap_checksum(seed, 0, blk);
            } else {
                d.set_inode_bitmap_checksum(seed, 0, blk);
            }
            d.update_checksum(seed, 0);
            f.write_all_at(&gdt, BLOCK_SIZE_U64).unwrap();
        }
        Kind::InodeTable { first, size } => {
            let slot = at / size;
            let raw = &mut blk[slot * size..(slot + 1) * size];
            set_inode_checksum(seed, first + slot as u32, raw).unwrap();
        }
        Kind::Dir { ino, generation } => set_dir_block_checksum(blk, seed, ino, generation),
        Kind::Indirect { ino, generation } => {
            IndirectBlock::from_block_mut(blk).update_checksum(seed, ino, generation)
        }
        Kind::JournalSuper => set_journal_block_checksum(seed, blk),
    }
}

/// `fsck -n`, `-fy`, then `-n` again of damaged image `img`: exit codes as e2fsck's, a
/// repair only when `-n` found something, clean after it unless `-fy` left errors.
/// Returns 0 (nothing found), 1 (repaired) or 2 (errors left).
fn check_and_repair(img: &Path, what: &str) -> usize {
    let (n1, log1) = fsck(img, &["-n"], what);
    assert!(n1 == 0 || n1 == 4, "{what}: -n exit {n1}\n{log1}");
    let (y, logy) = fsck(img, &["-f", "-y"], what);
    assert!(
        matches!(y, 0 | 1 | 4 | 5),
        "{what}: -fy exit {y}\n{log1}\n---\n{logy}"
    );
    if n1 == 0 {
        assert_eq!(y, 0, "{what}: -n found nothing but -fy did\n{logy}");
    }
    if y & 4 != 0 {
        return 2;
    }
    let (n2, log2) = fsck(img, &["-n"], what);
    assert_eq!(
        n2, 0,
        "{what}: not clean after repair\n{log1}\n---\n{logy}\n---\n{log2}"
    );
    (y & 1) as usize
}

/// Damages `blk` at byte `off`: `how` 0 flips random bits of the byte, 1 one bit, 2 writes
/// one of `values` over the aligned word there and returns its offset, so that the caller
/// can reseal the checksum and only the value itself is wrong.
fn damage(rng: &mut Rng, blk: &mut [u8], off: usize, how: u32, values: &[u32]) -> Option<usize> {
    match how {
        0 => blk[off] ^= (rng.next_u32() % 255 + 1) as u8,
        1 => blk[off] ^= 1 << (rng.next_u32() % 8),
        _ => {
            let at = off & !3;
            let v = values[(rng.next_u32() as usize) % values.len()];
            blk[at..at + 4].copy_from_slice(&v.to_le_bytes());
            return Some(at);
        }
    }
    None
}
