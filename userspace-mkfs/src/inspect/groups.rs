//! `groups`: each group's block range, descriptor fields, free counts (as recorded and as
//! the bitmaps say) and checksums, then the totals against the superblock's.

use aegisfs_format::disk::{bitmap_find_clear, bitmap_find_set, GroupDesc, SuperBlock};
use aegisfs_format::geometry::Geometry;

use super::{Inspector, Res};
use crate::fsck::dev::Block;

/// The runs of clear bits among the first `len` bits of a bitmap block: `(first, length)`.
pub(super) fn free_runs(bitmap: &Block, len: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = bitmap_find_clear(bitmap, at, len)?;
        let end = bitmap_find_set(bitmap, start, len).unwrap_or(len);
        at = end;
        Some((start, end - start))
    })
}

/// Clear bits among the first `len` bits of a bitmap block.
fn count_free(bitmap: &Block, len: u32) -> u64 {
    free_runs(bitmap, len).map(|(_, n)| u64::from(n)).sum()
}

/// Reads group `g`'s descriptor (`gdt` caches the GDT block last read: `(block, data)`).
pub(super) fn descriptor<'g>(
    ins: &Inspector,
    geo: &Geometry,
    g: u32,
    gdt: &'g mut Option<(u64, Box<Block>)>,
) -> Res<&'g GroupDesc> {
    let Some((block, _)) = geo.group_desc_location(g) else {
        return super::corrupt(format_args!("group {g} has no descriptor"));
    };
    if gdt.as_ref().is_none_or(|(b, _)| *b != block) {
        *gdt = Some((block, ins.read(block)?));
    }
    match gdt {
        Some((_, data)) => Ok(GroupDesc::in_block(data, g)),
        None => super::corrupt("group descriptor table unreadable"),
    }
}

pub(super) fn show(ins: &mut Inspector) -> Res<()> {
    let geo = ins.geometry()?;
    let seed = geo.checksum_seed();
    let mut gdt = None;
    let (mut free_blocks, mut free_inodes, mut bitmap_free_blocks, mut bitmap_free_inodes) =
        (0u64, 0u64, 0u64, 0u64);
    for g in 0..geo.group_count() {
        // The geometry's positions are checked; the descriptor's are shown against them.
        let (Some(start), Some(len), Some(bb), Some(ib), Some(it), Some(data)) = (
            geo.group_start(g),
            geo.group_len(g),
            geo.block_bitmap_block(g),
            geo.inode_bitmap_block(g),
            geo.inode_table_block(g),
            geo.first_data_block(g),
        ) else {
            return super::corrupt(format_args!("group {g} is outside the filesystem"));
        };
        let d = descriptor(ins, &geo, g, &mut gdt)?;
        let (d_bb, d_ib, d_it) = (
            d.block_bitmap.get(),
            d.inode_bitmap.get(),
            d.inode_table.get(),
        );
        let (d_free_b, d_free_i, d_dirs, d_flags) = (
            d.free_blocks.get(),
            d.free_inodes.get(),
            d.used_dirs.get(),
            d.flags.get(),
        );
        let desc_csum_ok = d.verify_checksum(seed, g).is_ok();
        let desc_valid = d.validate(g, &geo);
        let bbm = ins.read(bb)?;
        let ibm = ins.read(ib)?;
        let bbm_ok = d.verify_block_bitmap(seed, g, &bbm).is_ok();
        let ibm_ok = d.verify_inode_bitmap(seed, g, &ibm).is_ok();
        // Group lengths are at most 32768, the bits of one bitmap block.
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        let bm_free_b = count_free(&bbm, len32);
        let bm_free_i = count_free(&ibm, geo.inodes_per_group());
        free_blocks += u64::from(d_free_b);
        free_inodes += u64::from(d_free_i);
        bitmap_free_blocks += bm_free_b;
        bitmap_free_inodes += bm_free_i;

        let at = |found: u64, want: u64, ins: &mut Inspector| {
            if found == want {
                format!("{found}")
            } else {
                format!("{found} {} (expected {want})", ins.bad())
            }
        };
        let bb_s = at(d_bb, bb, ins);
        let ib_s = at(d_ib, ib, ins);
        let it_s = at(d_it, it, ins);
        let counts = |recorded: u32, bitmap: u64, ins: &mut Inspector| {
            if u64::from(recorded) == bitmap {
                format!("{recorded}")
            } else {
                format!("{recorded} {} (bitmap: {bitmap})", ins.bad())
            }
        };
        let fb_s = counts(d_free_b, bm_free_b, ins);
        let fi_s = counts(d_free_i, bm_free_i, ins);
        let flags_s = if d_flags == 0 {
            "0x0".to_string()
        } else {
            format!("0x{d_flags:x} {} (none defined)", ins.bad())
        };
        let desc_s = match (desc_csum_ok, desc_valid) {
            (true, Ok(())) => "ok".to_string(),
            (false, _) => format!("checksum {}", ins.bad()),
            (true, Err(e)) => format!("{}: {}", ins.bad(), e.msg()),
        };
        let bbm_s = ins.verdict(bbm_ok);
        let ibm_s = ins.verdict(ibm_ok);
        let o = &mut *ins.out;
        writeln!(
            o,
            "Group {g}: blocks {start}..{} ({len} blocks), data from block {data}",
            start + len - 1
        )?;
        writeln!(
            o,
            "  block bitmap {bb_s}, inode bitmap {ib_s}, inode table {it_s} ({} blocks)",
            geo.inode_table_blocks()
        )?;
        writeln!(
            o,
            "  free blocks {fb_s}, free inodes {fi_s}, used directories {d_dirs}, flags {flags_s}"
        )?;
        writeln!(
            o,
            "  descriptor {desc_s}, block bitmap checksum {bbm_s}, inode bitmap checksum {ibm_s}"
        )?;
    }
    let block0 = ins.read(0)?;
    let sb = SuperBlock::in_block(&block0);
    let (sb_b, sb_i) = (sb.free_blocks.get(), u64::from(sb.free_inodes.get()));
    let total_b = if free_blocks == sb_b {
        "ok".to_string()
    } else {
        ins.bad().to_string()
    };
    let total_i = if free_inodes == sb_i {
        "ok".to_string()
    } else {
        ins.bad().to_string()
    };
    writeln!(
        ins.out,
        "Total free blocks: {free_blocks} (bitmaps: {bitmap_free_blocks}, superblock: {sb_b}) {total_b}"
    )?;
    writeln!(
        ins.out,
        "Total free inodes: {free_inodes} (bitmaps: {bitmap_free_inodes}, superblock: {sb_i}) {total_i}"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegisfs_format::disk::{bitmap_set, BLOCK_SIZE};

    #[test]
    fn runs_of_clear_bits() {
        let mut bm = [0u8; BLOCK_SIZE];
        for i in [0, 1, 5, 100] {
            bitmap_set(&mut bm, i, true);
        }
        let runs: Vec<_> = free_runs(&bm, 200).collect();
        assert_eq!(runs, vec![(2, 3), (6, 94), (101, 99)]);
        assert_eq!(count_free(&bm, 200), 196);
        assert_eq!(free_runs(&bm, 0).count(), 0);
        bm.fill(0xFF);
        assert_eq!(count_free(&bm, 32768), 0);
        bm.fill(0);
        assert_eq!(free_runs(&bm, 32768).collect::<Vec<_>>(), vec![(0, 32768)]);
    }
}
