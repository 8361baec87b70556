//! `freefrag`: free space fragmentation from the block bitmaps, as e2freefrag reports it:
//! the free extents (runs of clear bits; a group's metadata always ends a run) in
//! power-of-two size buckets.

use aegisfs_format::disk::{SuperBlock, BLOCK_SIZE_U64};

use super::groups::free_runs;
use super::{human_bytes, Inspector, Res};

/// Buckets: extents of `2^k .. 2^(k+1)` blocks; 2^15 blocks is a whole group.
const BUCKETS: usize = 16;

pub(super) fn show(ins: &mut Inspector) -> Res<()> {
    let geo = ins.geometry()?;
    let groups = geo.group_count();
    let mut hist = [(0u64, 0u64); BUCKETS];
    let (mut free, mut extents, mut largest) = (0u64, 0u64, 0u64);
    for g in 0..groups {
        ins.progress(u64::from(g), u64::from(groups));
        let (Some(bb), Some(len)) = (geo.block_bitmap_block(g), geo.group_len(g)) else {
            return super::corrupt(format_args!("group {g} is outside the filesystem"));
        };
        let bitmap = ins.read(bb)?;
        for (_, n) in free_runs(&bitmap, u32::try_from(len).unwrap_or(u32::MAX)) {
            let n = u64::from(n);
            let bucket = (n.ilog2() as usize).min(BUCKETS - 1);
            hist[bucket].0 += 1;
            hist[bucket].1 += n;
            free += n;
            extents += 1;
            largest = largest.max(n);
        }
    }
    ins.progress(u64::from(groups), u64::from(groups));
    ins.clear_progress();
    let block0 = ins.read(0)?;
    let sb_free = SuperBlock::in_block(&block0).free_blocks.get();
    let verdict = if sb_free == free { "ok" } else { ins.bad() };
    let o = &mut *ins.out;
    let total = geo.blocks_count();
    writeln!(o, "Block size:            {BLOCK_SIZE_U64} bytes")?;
    writeln!(o, "Total blocks:          {total}")?;
    writeln!(
        o,
        "Free blocks:           {free} ({}% of all blocks; superblock: {sb_free}) {verdict}",
        hundredths(free, total)
    )?;
    writeln!(o, "Free extents:          {extents}")?;
    writeln!(
        o,
        "Largest free extent:   {largest} blocks ({})",
        human_bytes(u128::from(largest) * 4096)
    )?;
    let avg_tenths = (free * 10).checked_div(extents).unwrap_or(0);
    writeln!(
        o,
        "Average free extent:   {}.{} blocks",
        avg_tenths / 10,
        avg_tenths % 10
    )?;
    writeln!(o)?;
    writeln!(o, "Free extent size histogram:")?;
    writeln!(
        o,
        "  {:>17}   {:>12}  {:>12}  {:>7}",
        "extent size", "extents", "free blocks", "% free"
    )?;
    for (k, &(count, blocks)) in hist.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let lo = 4096u128 << k;
        let hi = if k + 1 == BUCKETS {
            "-".to_string()
        } else {
            short_size(lo * 2)
        };
        writeln!(
            o,
            "  {:>7} .. {:<7}   {count:>12}  {blocks:>12}  {:>6}%",
            short_size(lo),
            hi,
            hundredths(blocks, free)
        )?;
    }
    Ok(())
}

/// `part / whole` as a percentage with two decimals (`0.00` when `whole` is 0).
fn hundredths(part: u64, whole: u64) -> String {
    let h = (u128::from(part) * 10_000)
        .checked_div(u128::from(whole))
        .unwrap_or(0);
    format!("{}.{:02}", h / 100, h % 100)
}

/// A power-of-two size as e2freefrag labels its buckets: `4K`, `64K`, `1M`, `128M`.
fn short_size(bytes: u128) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}G", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b => format!("{}K", b >> 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_percentages() {
        assert_eq!(short_size(4096), "4K");
        assert_eq!(short_size(1 << 20), "1M");
        assert_eq!(short_size(4096 << 15), "128M");
        assert_eq!(hundredths(1, 3), "33.33");
        assert_eq!(hundredths(5, 0), "0.00");
        assert_eq!(hundredths(7, 7), "100.00");
    }
}
