//! Tests of `geometry.rs`, kept apart so the file the kernel module includes stays small
//! (the module includes `geometry.rs` alone, so it must not declare this as a submodule).

use crate::checksum::checksum_seed;
use crate::disk::{
    GroupDesc, SuperBlock, BLOCK_SIZE, FEATURE_COMPAT_HAS_JOURNAL, FEATURE_INCOMPAT_DIR_INDEX,
    FEATURE_INCOMPAT_RECOVER, INODE_SIZES, MAX_INODES_PER_GROUP, MAX_JOURNAL_BLOCKS,
    MIN_GROUP_DATA_BLOCKS, STATE_ERRORS,
};
use crate::error::{FormatError, Result};
use crate::geometry::*;

const UUID: [u8; 16] = [7; 16];

fn plan(blocks: u64) -> Geometry {
    Geometry::plan(blocks, InodeSpec::default(), DEFAULT_INODE_SIZE, None).unwrap()
}

fn sb_for(geo: &Geometry) -> SuperBlock {
    let mut sb = SuperBlock::zeroed();
    geo.fill_superblock(&mut sb, &UUID, b"test", 1_700_000_000)
        .unwrap();
    sb
}

fn round_trip(geo: &Geometry, device: u64) {
    let sb = sb_for(geo);
    let back = sb.validate(device).unwrap();
    let mut expect = *geo;
    expect.set_checksum_seed(checksum_seed(&UUID));
    assert_eq!(back, expect);
}

/// Applies `f` to a valid superblock, refreshes its checksum and validates it.
fn mutated(f: impl FnOnce(&mut SuperBlock)) -> Result<Geometry> {
    let geo = plan(100_000);
    let mut sb = sb_for(&geo);
    f(&mut sb);
    sb.update_checksum();
    sb.validate(100_000)
}

#[test]
fn plan_round_trips_through_validate() {
    for blocks in [2_000u64, 32_768, 33_000, 100_000, 1 << 20, 1 << 28, 1 << 32] {
        let geo = plan(blocks);
        round_trip(&geo, blocks);
        assert!(geo.blocks_count() <= blocks);
        assert_eq!(
            geo.inodes_count(),
            geo.group_count() * geo.inodes_per_group()
        );
    }
    for size in INODE_SIZES {
        for spec in [
            InodeSpec::Ratio(MIN_INODE_RATIO),
            InodeSpec::Ratio(MAX_INODE_RATIO),
            InodeSpec::Count(11),
            InodeSpec::Count(100_000),
        ] {
            for jb in [Some(0), None, Some(1024), Some(5000)] {
                let geo = Geometry::plan(300_000, spec, size, jb).unwrap();
                round_trip(&geo, 300_000);
            }
        }
    }
}

#[test]
fn smallest_filesystem() {
    let smallest = (1000..3000u64)
        .find(|&n| Geometry::plan(n, InodeSpec::default(), DEFAULT_INODE_SIZE, None).is_ok())
        .unwrap();
    let geo = plan(smallest);
    assert_eq!(geo.group_count(), 1);
    assert_eq!(geo.journal_blocks(), 1024);
    assert_eq!(
        geo.last_group_len(),
        geo.group_meta_blocks() + MIN_GROUP_DATA_BLOCKS
    );
    assert_eq!(geo.blocks_count(), smallest);
    for n in 0..smallest {
        assert_eq!(
            Geometry::plan(n, InodeSpec::default(), DEFAULT_INODE_SIZE, None),
            Err(FormatError::FsTooSmall),
            "{n}"
        );
    }
    round_trip(&geo, smallest);
    let tiny = Geometry::plan(100, InodeSpec::Count(16), 256, Some(0)).unwrap();
    assert_eq!(tiny.first_group_block(), 2);
    assert_eq!(tiny.journal_start(), 0);
    assert_eq!(tiny.inodes_count(), 16);
    round_trip(&tiny, 100);
}

#[test]
fn exactly_one_group_and_dropped_tail() {
    let fgb = 1 + 1 + 1024;
    let one = Geometry::plan(fgb + 32768, InodeSpec::default(), 256, Some(1024)).unwrap();
    assert_eq!(one.group_count(), 1);
    assert_eq!(one.last_group_len(), 32768);
    assert_eq!(one.blocks_count(), fgb + 32768);
    let p = |n| Geometry::plan(n, InodeSpec::default(), 256, Some(1024)).unwrap();
    let first_two = (fgb + 32769..fgb + 32768 + 2000)
        .find(|&n| p(n).group_count() == 2)
        .unwrap();
    let dropped = p(first_two - 1);
    assert_eq!(dropped.group_count(), 1);
    assert_eq!(dropped.blocks_count(), fgb + 32768);
    round_trip(&dropped, first_two - 1);
    let two = p(first_two);
    assert_eq!(two.blocks_count(), first_two);
    assert_eq!(
        two.last_group_len(),
        two.group_meta_blocks() + MIN_GROUP_DATA_BLOCKS
    );
    round_trip(&two, first_two);
}

#[test]
fn huge_geometries() {
    let tib = plan(1 << 28);
    assert_eq!(tib.group_count(), 8191);
    assert_eq!(tib.journal_blocks(), 32768);
    assert_eq!(tib.gdt_blocks(), 128);
    round_trip(&tib, 1 << 28);
    let tib16 = plan(1 << 32);
    assert_eq!(tib16.gdt_blocks(), 2048);
    // 2^30 inodes wanted, spread over slightly fewer than 131072 groups.
    let ipg = u64::from(tib16.inodes_per_group());
    let groups = u64::from(tib16.group_count());
    assert!(groups * ipg >= 1 << 30);
    assert!(groups * (ipg - 16) < 1 << 30);
    assert!(tib16.group_count() > 131_000);
    round_trip(&tib16, 1 << 32);
    let last = tib16.group_count() - 1;
    assert_eq!(
        tib16.group_start(last).unwrap() + tib16.group_len(last).unwrap(),
        tib16.blocks_count()
    );
    let loc = tib16.inode_location(tib16.inodes_count()).unwrap();
    assert_eq!(loc.group, last);
    assert!(loc.block < tib16.first_data_block(last).unwrap());
    // Far beyond what the format can address: capped, still consistent.
    let max = plan(u64::MAX);
    assert_eq!(u64::from(max.group_count()), MAX_PLAN_GROUPS);
    assert_eq!(max.inodes_per_group(), 16);
    round_trip(&max, u64::MAX);
    let counted = Geometry::plan(1 << 32, InodeSpec::Count(u32::MAX - 100), 1024, None);
    assert_eq!(counted, Err(FormatError::BadInodeCount));
}

#[test]
fn plan_rejects_bad_parameters() {
    let p = |spec, size, jb| Geometry::plan(100_000, spec, size, jb);
    assert_eq!(
        p(InodeSpec::default(), 128, None),
        Err(FormatError::BadInodeSize)
    );
    assert_eq!(
        p(InodeSpec::default(), 2048, None),
        Err(FormatError::BadInodeSize)
    );
    assert_eq!(
        p(InodeSpec::Ratio(1023), 256, None),
        Err(FormatError::BadInodeCount)
    );
    assert_eq!(
        p(InodeSpec::Ratio(MAX_INODE_RATIO + 1), 256, None),
        Err(FormatError::BadInodeCount)
    );
    assert_eq!(
        p(InodeSpec::Count(10), 256, None),
        Err(FormatError::BadInodeCount)
    );
    assert_eq!(
        p(InodeSpec::Count(32768 * 4 + 1), 256, None),
        Err(FormatError::BadInodeCount)
    );
    assert_eq!(
        p(InodeSpec::default(), 256, Some(1023)),
        Err(FormatError::BadJournalSize)
    );
    assert_eq!(
        p(InodeSpec::default(), 256, Some(MAX_JOURNAL_BLOCKS + 1)),
        Err(FormatError::BadJournalSize)
    );
    assert_eq!(
        p(InodeSpec::default(), 256, Some(99_000)),
        Err(FormatError::FsTooSmall)
    );
    let counted = p(InodeSpec::Count(32768 * 3), 256, None).unwrap();
    assert_eq!(counted.group_count(), 3);
    assert_eq!(counted.inodes_per_group(), MAX_INODES_PER_GROUP);
}

#[test]
fn default_journal_sizes() {
    let mib = 256;
    assert_eq!(default_journal_blocks(0), 1024);
    assert_eq!(default_journal_blocks(128 * mib - 1), 1024);
    assert_eq!(default_journal_blocks(128 * mib), 4096);
    assert_eq!(default_journal_blocks(1024 * mib - 1), 4096);
    assert_eq!(default_journal_blocks(1024 * mib), 8192);
    assert_eq!(default_journal_blocks(2048 * mib), 16384);
    assert_eq!(default_journal_blocks(16384 * mib - 1), 16384);
    assert_eq!(default_journal_blocks(16384 * mib), 32768);
    assert_eq!(default_journal_blocks(u64::MAX), 32768);
    assert_eq!(default_reserved_blocks(1000), 50);
    assert_eq!(default_reserved_blocks(u64::MAX), u64::MAX / 20);
}

#[test]
fn positions() {
    let g = plan(100_000);
    let fgb = g.first_group_block();
    let meta = g.group_meta_blocks();
    assert_eq!(fgb, 1 + 1 + 4096);
    assert_eq!(g.journal_start(), 2);
    assert_eq!(g.group_count(), 3);
    assert_eq!(g.group_start(1), Some(fgb + 32768));
    assert_eq!(g.group_start(3), None);
    assert_eq!(g.block_bitmap_block(2), Some(fgb + 65536));
    assert_eq!(g.inode_bitmap_block(2), Some(fgb + 65537));
    assert_eq!(g.inode_table_block(2), Some(fgb + 65538));
    assert_eq!(g.first_data_block(0), Some(fgb + meta));
    assert_eq!(g.group_len(0), Some(32768));
    assert_eq!(g.group_len(2), Some(g.blocks_count() - fgb - 65536));
    assert_eq!(g.group_len(3), None);
    assert_eq!(g.overhead(), fgb + 3 * meta);
    assert_eq!(g.data_blocks(), g.blocks_count() - g.overhead());
    assert_eq!(g.group_desc_location(0), Some((1, 0)));
    assert_eq!(g.group_desc_location(2), Some((1, 128)));
    assert_eq!(g.group_desc_location(3), None);

    assert!(!g.is_data_block(0));
    assert!(!g.is_data_block(fgb - 1));
    assert!(!g.is_data_block(fgb));
    assert!(!g.is_data_block(fgb + meta - 1));
    assert!(g.is_data_block(fgb + meta));
    assert!(g.is_data_block(fgb + 32767));
    assert!(!g.is_data_block(fgb + 32768));
    assert!(g.is_data_block(fgb + 32768 + meta));
    assert!(g.is_data_block(g.blocks_count() - 1));
    assert!(!g.is_data_block(g.blocks_count()));
    assert!(!g.is_data_block(u64::MAX));
    assert_eq!(g.check_data_block(fgb), Err(FormatError::BadBlockPointer));
    assert_eq!(g.check_data_block(fgb + meta), Ok(fgb + meta));
    assert_eq!(g.group_of_block(fgb + 32768 + 5), Some((1, 5)));
    assert_eq!(g.group_of_block(fgb - 1), None);
    let data: u64 = (0..g.group_count())
        .map(|i| g.group_data_blocks(i).unwrap())
        .sum();
    assert_eq!(data, g.data_blocks());
}

#[test]
fn inode_locations() {
    // 3 full groups and a 1694-block tail: 4 groups.
    let g = Geometry::plan(100_000, InodeSpec::Count(4 * 64), 512, Some(0)).unwrap();
    assert_eq!(g.group_count(), 4);
    assert_eq!(g.inodes_per_group(), 64);
    assert_eq!(g.inodes_per_block(), 8);
    assert_eq!(g.inode_table_blocks(), 8);
    let t0 = g.inode_table_block(0).unwrap();
    let first = g.inode_location(1).unwrap();
    assert_eq!(
        (first.group, first.index, first.block, first.offset),
        (0, 0, t0, 0)
    );
    let l = g.inode_location(10).unwrap();
    assert_eq!((l.group, l.index, l.block, l.offset), (0, 9, t0 + 1, 512));
    let l = g.inode_location(65).unwrap();
    assert_eq!(
        (l.group, l.index, l.block, l.offset),
        (1, 0, g.inode_table_block(1).unwrap(), 0)
    );
    let l = g.inode_location(192).unwrap();
    assert_eq!((l.group, l.index), (2, 63));
    assert_eq!(l.block, g.inode_table_block(2).unwrap() + 7);
    assert_eq!(l.offset, 7 * 512);
    assert_eq!(g.inode_location(0), Err(FormatError::BadInodeNumber));
    assert!(g.inode_location(256).is_ok());
    assert_eq!(g.inode_location(257), Err(FormatError::BadInodeNumber));
    assert_eq!(g.ino_of(2, 63), Some(192));
    assert_eq!(g.ino_of(3, 63), Some(256));
    assert_eq!(g.ino_of(4, 0), None);
    assert_eq!(g.ino_of(0, 64), None);
}

#[test]
fn statfs_and_fsid() {
    let g = plan(100_000);
    let s = g.statfs(1000, 50, 400);
    assert_eq!(s.blocks, g.data_blocks());
    assert_eq!((s.bfree, s.bavail, s.ffree), (1000, 600, 50));
    assert_eq!(s.files, u64::from(g.inodes_count()));
    assert_eq!((s.bsize, s.namelen), (4096, 255));
    assert_eq!(g.statfs(100, 0, 400).bavail, 0);
    let mut uuid = [0u8; 16];
    uuid[0] = 1;
    uuid[8] = 3;
    uuid[7] = 0x80;
    uuid[12] = 5;
    assert_eq!(fsid(&uuid), [2, 0x8000_0005]);
}

#[test]
fn new_group_metadata() {
    let g = plan(100_000);
    for i in 0..g.group_count() {
        let mut d = g.new_group_desc(i).unwrap();
        d.update_checksum(g.checksum_seed(), i);
        d.validate(i, &g).unwrap();
        let mut bb = [0u8; BLOCK_SIZE];
        g.init_block_bitmap(i, &mut bb).unwrap();
        let set: u64 = bb.iter().map(|b| u64::from(b.count_ones())).sum();
        assert_eq!(set, 32768 - g.group_data_blocks(i).unwrap());
        assert_eq!(
            u64::from(d.free_blocks.get()),
            g.group_data_blocks(i).unwrap()
        );
        let mut ib = [0u8; BLOCK_SIZE];
        g.init_inode_bitmap(i, &mut ib).unwrap();
        let set: u32 = ib.iter().map(|b| b.count_ones()).sum();
        let reserved = if i == 0 { 10 } else { 0 };
        assert_eq!(set, 32768 - g.inodes_per_group() + reserved);
        assert_eq!(crate::disk::bitmap_test(&ib, 9), i == 0);
        assert!(!crate::disk::bitmap_test(&ib, 10));
    }
    assert!(g.new_group_desc(g.group_count()).is_none());
}

#[test]
fn set_range_matches_bit_by_bit() {
    for (start, end) in [
        (0, 0),
        (0, 1),
        (3, 5),
        (7, 9),
        (8, 16),
        (5, 300),
        (10, 32768),
        (32767, 40000),
    ] {
        let mut fast = [0u8; BLOCK_SIZE];
        bitmap_set_range(&mut fast, start, end);
        for bit in 0..32768u32 {
            let want = u64::from(bit) >= start && u64::from(bit) < end;
            assert_eq!(
                crate::disk::bitmap_test(&fast, bit),
                want,
                "{start}..{end} bit {bit}"
            );
        }
    }
}

#[test]
fn group_desc_rules() {
    let g = plan(100_000);
    let check = |f: &dyn Fn(&mut GroupDesc)| {
        let mut d = g.new_group_desc(1).unwrap();
        f(&mut d);
        d.update_checksum(g.checksum_seed(), 1);
        d.validate(1, &g)
    };
    assert_eq!(check(&|_| {}), Ok(()));
    assert_eq!(
        check(&|d| d.block_bitmap.set(5)),
        Err(FormatError::GroupDescLayout)
    );
    assert_eq!(
        check(&|d| d.inode_bitmap.set(5)),
        Err(FormatError::GroupDescLayout)
    );
    assert_eq!(
        check(&|d| d.inode_table.set(5)),
        Err(FormatError::GroupDescLayout)
    );
    let data = g.group_data_blocks(1).unwrap() as u32;
    assert_eq!(check(&|d| d.free_blocks.set(data)), Ok(()));
    assert_eq!(
        check(&|d| d.free_blocks.set(data + 1)),
        Err(FormatError::GroupDescCounts)
    );
    let ipg = g.inodes_per_group();
    assert_eq!(
        check(&|d| d.free_inodes.set(ipg + 1)),
        Err(FormatError::GroupDescCounts)
    );
    assert_eq!(
        check(&|d| d.used_dirs.set(1)),
        Err(FormatError::GroupDescCounts)
    );
    assert_eq!(
        check(&|d| {
            d.free_inodes.set(ipg - 3);
            d.used_dirs.set(3)
        }),
        Ok(())
    );
    assert_eq!(
        check(&|d| d.flags.set(1)),
        Err(FormatError::GroupDescCounts)
    );
    let mut d = g.new_group_desc(1).unwrap();
    d.update_checksum(g.checksum_seed(), 1);
    assert_eq!(d.validate(0, &g), Err(FormatError::GroupDescChecksum));
    assert_eq!(d.validate(3, &g), Err(FormatError::GroupDescChecksum));
}

#[test]
fn device_smaller_than_filesystem() {
    let g = plan(100_000);
    let sb = sb_for(&g);
    assert!(sb.validate(g.blocks_count()).is_ok());
    assert_eq!(
        sb.validate(g.blocks_count() - 1),
        Err(FormatError::DeviceTooSmall)
    );
    assert_eq!(sb.validate(0), Err(FormatError::DeviceTooSmall));
}

#[test]
fn each_superblock_rule() {
    use FormatError as E;
    assert!(mutated(|_| {}).is_ok());
    assert_eq!(mutated(|sb| sb.magic[7] = b'X'), Err(E::BadMagic));
    assert_eq!(
        mutated(|sb| sb.format_version.set(2)),
        Err(E::UnsupportedVersion)
    );
    assert_eq!(
        mutated(|sb| sb.block_size_log2.set(10)),
        Err(E::UnsupportedBlockSize)
    );
    assert_eq!(
        mutated(|sb| sb.feature_incompat.set(1 << 9)),
        Err(E::UnsupportedFeature)
    );
    let key = *b"sixteen byte key";
    let indexed = mutated(|sb| {
        sb.feature_incompat.set(FEATURE_INCOMPAT_DIR_INDEX);
        sb.dir_hash_key = key;
    })
    .unwrap();
    assert_eq!(indexed.dir_hash_key(), Some(&key));
    assert_eq!(
        mutated(|sb| sb.dir_hash_key = key).unwrap().dir_hash_key(),
        None
    );
    assert!(mutated(|sb| sb.feature_incompat.set(FEATURE_INCOMPAT_RECOVER)).is_ok());
    assert_eq!(
        mutated(|sb| sb.feature_ro_compat.set(1 << 3))
            .unwrap()
            .unknown_ro_compat(),
        8
    );
    assert!(mutated(|sb| sb.feature_compat.set(FEATURE_COMPAT_HAS_JOURNAL | 1 << 40)).is_ok());
    assert_eq!(
        mutated(|sb| sb.blocks_per_group.set(16384)),
        Err(E::BadBlocksPerGroup)
    );
    assert_eq!(mutated(|sb| sb.inode_size.set(128)), Err(E::BadInodeSize));
    assert_eq!(mutated(|sb| sb.inode_size.set(768)), Err(E::BadInodeSize));
    for ipg in [0, 8, 17, 32784] {
        assert_eq!(
            mutated(|sb| {
                sb.inodes_per_group.set(ipg);
                sb.inodes_count.set(ipg * sb.group_count.get());
            }),
            Err(E::BadInodesPerGroup)
        );
    }
    assert_eq!(
        mutated(|sb| {
            sb.inodes_per_group.set(32768);
            sb.inodes_count.set(32768 * 3);
            sb.free_inodes.set(0);
            sb.free_blocks.set(0);
            sb.reserved_blocks.set(0);
        })
        .map(|g| g.inode_table_blocks()),
        Ok(32768 * u64::from(DEFAULT_INODE_SIZE) / 4096)
    );
    assert_eq!(mutated(|sb| sb.group_count.set(0)), Err(E::BadGroupCount));
    assert_eq!(
        mutated(|sb| sb.inodes_count.set(sb.inodes_count.get() + 16)),
        Err(E::BadGroupCount)
    );
    assert_eq!(
        mutated(|sb| {
            sb.group_count.set(u32::MAX);
            sb.inodes_per_group.set(16);
            sb.inodes_count.set(u32::MAX.wrapping_mul(16));
        }),
        Err(E::BadGroupCount)
    );
    assert_eq!(mutated(|sb| sb.gdt_start.set(0)), Err(E::BadGdtLocation));
    assert_eq!(mutated(|sb| sb.gdt_blocks.set(2)), Err(E::BadGdtLocation));
    assert_eq!(mutated(|sb| sb.gdt_blocks.set(0)), Err(E::BadGdtLocation));
    assert_eq!(
        mutated(|sb| sb.journal_start.set(1)),
        Err(E::BadJournalLocation)
    );
    assert_eq!(
        mutated(|sb| sb.journal_start.set(3)),
        Err(E::BadJournalLocation)
    );
    assert_eq!(
        mutated(|sb| sb.journal_blocks.set(sb.journal_blocks.get() + 1)),
        Err(E::BadJournalLocation)
    );
    assert_eq!(
        mutated(|sb| sb.journal_blocks.set(1023)),
        Err(E::BadJournalLocation)
    );
    assert!(mutated(|sb| sb.journal_blocks.set(1024)).is_ok());
    assert_eq!(
        mutated(|sb| sb.journal_start.set(u64::MAX - 10)),
        Err(E::BadJournalLocation)
    );
    assert_eq!(
        mutated(|sb| sb.feature_compat.set(0)),
        Err(E::BadJournalLocation)
    );
    assert_eq!(
        mutated(|sb| {
            sb.feature_compat.set(0);
            sb.journal_blocks.set(0);
        }),
        Err(E::BadJournalLocation)
    );
    assert!(mutated(|sb| {
        sb.feature_compat.set(0);
        sb.journal_blocks.set(0);
        sb.journal_start.set(0);
    })
    .is_ok());
    assert_eq!(
        mutated(|sb| {
            sb.feature_compat.set(0);
            sb.journal_blocks.set(0);
            sb.journal_start.set(0);
            sb.feature_incompat.set(FEATURE_INCOMPAT_RECOVER);
        }),
        Err(E::BadJournalLocation)
    );
    assert_eq!(
        mutated(|sb| {
            sb.feature_compat.set(0);
            sb.journal_blocks.set(0);
            sb.journal_start.set(0);
            sb.first_group_block.set(1);
        }),
        Err(E::BadBlocksCount)
    );
    assert_eq!(
        mutated(|sb| sb.blocks_count.set(sb.blocks_count.get() + 1)),
        Err(E::DeviceTooSmall)
    );
    assert_eq!(
        mutated(|sb| sb.blocks_count.set(sb.blocks_count.get() + 32768)),
        Err(E::BadBlocksCount)
    );
    assert_eq!(
        mutated(|sb| sb.first_group_block.set(u64::MAX)),
        Err(E::BadBlocksCount)
    );
    assert_eq!(
        mutated(|sb| sb
            .blocks_count
            .set(sb.first_group_block.get() + 2 * 32768 + 10)),
        Err(E::BadBlocksCount)
    );
    assert_eq!(mutated(|sb| sb.blocks_count.set(0)), Err(E::BadBlocksCount));
    assert_eq!(mutated(|sb| sb.root_ino.set(1)), Err(E::BadReservedInodes));
    assert_eq!(
        mutated(|sb| sb.first_ino.set(12)),
        Err(E::BadReservedInodes)
    );
    assert_eq!(
        mutated(|sb| sb.lost_found_ino.set(12)),
        Err(E::BadReservedInodes)
    );
    assert_eq!(
        mutated(|sb| sb.free_blocks.set(sb.free_blocks.get() + 1)),
        Err(E::BadFreeCounts)
    );
    assert_eq!(
        mutated(|sb| sb.reserved_blocks.set(sb.free_blocks.get() + 1)),
        Err(E::BadFreeCounts)
    );
    assert_eq!(
        mutated(|sb| sb.free_inodes.set(sb.inodes_count.get() + 1)),
        Err(E::BadFreeCounts)
    );
    assert!(mutated(|sb| sb.state.set(STATE_ERRORS)).is_ok());
    assert_eq!(mutated(|sb| sb.state.set(4)), Err(E::BadState));
    assert_eq!(
        mutated(|sb| sb.errors_behavior.set(0)),
        Err(E::BadErrorsBehavior)
    );
    assert_eq!(
        mutated(|sb| sb.errors_behavior.set(4)),
        Err(E::BadErrorsBehavior)
    );
    assert!(mutated(|sb| sb.errors_behavior.set(3)).is_ok());
    assert_eq!(mutated(|sb| sb.label = [b'a'; 64]), Err(E::BadLabel));
    assert_eq!(mutated(|sb| sb.label[10] = b'x'), Err(E::BadLabel));
    assert_eq!(mutated(|sb| sb.label[0] = 0xFF), Err(E::BadLabel));
    assert!(mutated(|sb| sb.label = [b'a'; 64]).is_err());
    assert!(mutated(|sb| {
        sb.label = [b'a'; 64];
        sb.label[63] = 0;
    })
    .is_ok());
    assert_eq!(mutated(|sb| sb.last_orphan.set(5)), Err(E::BadOrphan));
    assert!(mutated(|sb| sb.last_orphan.set(11)).is_ok());
    assert_eq!(
        mutated(|sb| sb.last_orphan.set(sb.inodes_count.get() + 1)),
        Err(E::BadOrphan)
    );
}

#[test]
fn superblock_checksum_detects_every_bit_flip() {
    let g = plan(100_000);
    let sb = sb_for(&g);
    let bytes = *sb.as_bytes();
    assert!(sb.verify_checksum().is_ok());
    for bit in 0..SUPERBLOCK_CHECKSUM_BITS {
        let mut c = bytes;
        c[bit / 8] ^= 1 << (bit % 8);
        let r = SuperBlock::from_bytes(&c).validate(100_000);
        assert!(r.is_err(), "bit {bit}");
        if bit >= 64 + 64 {
            assert_eq!(r, Err(FormatError::SuperBlockChecksum), "bit {bit}");
        }
    }
}

const SUPERBLOCK_CHECKSUM_BITS: usize = 1024 * 8;

#[test]
fn superblock_in_block0_and_label() {
    let g = plan(100_000);
    let mut block = [0u8; BLOCK_SIZE];
    g.fill_superblock(
        SuperBlock::in_block_mut(&mut block),
        &UUID,
        "étiquette".as_bytes(),
        5,
    )
    .unwrap();
    assert_eq!(&block[1024..1032], b"AegisFS\0");
    assert!(block[..1024].iter().all(|&b| b == 0));
    let sb = SuperBlock::in_block(&block);
    assert_eq!(sb.label_bytes(), "étiquette".as_bytes());
    assert!(sb.validate(100_000).is_ok());
    assert!(sb.is_clean() && !sb.has_errors() && !sb.needs_recovery());
    let mut sb2 = SuperBlock::zeroed();
    assert_eq!(
        g.fill_superblock(&mut sb2, &UUID, &[b'x'; 64], 0),
        Err(FormatError::BadLabel)
    );
    assert!(g.fill_superblock(&mut sb2, &UUID, &[b'x'; 63], 0).is_ok());
    assert_eq!(sb2.set_label(b"a\0b"), Err(FormatError::BadLabel));
    assert_eq!(sb2.set_label(&[0xC3]), Err(FormatError::BadLabel));
}

#[test]
fn validate_never_panics_on_mutated_superblocks() {
    let g = plan(100_000);
    let base = *sb_for(&g).as_bytes();
    let mut next = crate::test_rng::xorshift64(0x2545_F491_4F6C_DD1D);
    for _ in 0..20_000 {
        let mut c = base;
        for _ in 0..(next() % 4 + 1) {
            let at = (next() % 0x128) as usize;
            let v = next();
            match v % 3 {
                0 => c[at] = v as u8,
                1 => c[at] ^= 0xFF,
                _ => c[at] = if v & 8 == 0 { 0 } else { 0xFF },
            }
        }
        let mut s = SuperBlock::zeroed();
        zerocopy::IntoBytes::as_mut_bytes(&mut s).copy_from_slice(&c);
        s.update_checksum();
        if let Ok(geo) = s.validate(next() % 200_000) {
            assert!(geo.blocks_count() <= 200_000);
            assert!(geo.overhead() <= geo.blocks_count());
            for gi in 0..geo.group_count() {
                assert!(geo.group_start(gi).unwrap() < geo.blocks_count());
            }
        }
    }
}
