//! Seeded mutations of a valid image's metadata, for the fuzz suite.
//!
//! [`survey`] locates every metadata structure of the image (superblock, group descriptors,
//! bitmaps, used inodes, indirect blocks, directory and directory index blocks, xattr
//! blocks, the journal superblock, descriptor, revoke and commit blocks and the logged
//! copies). [`mutate`] then picks structures and damages them: flipped bits, overwritten
//! byte runs, or one field set to a value chosen to sit on a boundary (0, all ones, the
//! last block, a block of other metadata, an inode number just past the end, ...). Most of
//! the time the checksums covering the change are recomputed, journal transactions
//! resealed included, so the damage gets past the checksum checks to the code behind them.
//! The same image and seed always give the same result: a crash found in the guest is
//! reproduced on the host from the corpus image and the seed.

use aegisfs_format::checksum::{
    bitmap_checksum, journal_data_checksum, set_inode_checksum, set_journal_block_checksum,
};
use aegisfs_format::dir::set_dir_block_checksum;
use aegisfs_format::dirindex::{
    set_index_checksum, INDEX_HEADER_SIZE, INDEX_MAGIC, INDEX_MAX_ENTRIES,
};
use aegisfs_format::disk::{
    GroupDesc, IndirectBlock, Inode, SuperBlock, BLOCK_SIZE, DIR_TAIL_OFFSET, GROUP_DESC_SIZE,
    N_DIRECT, PTRS_PER_BLOCK, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};
use aegisfs_format::journal::{
    unescape, JournalCommit, JournalDescriptor, JournalRevoke, JournalSuperBlock, JournalTag,
    TransactionChecksum, JOURNAL_MAGIC, JT_COMMIT, JT_DESCRIPTOR, JT_REVOKE, MAX_DESCRIPTOR_TAGS,
    TAG_FLAG_ESCAPED,
};
use aegisfs_format::xattr::XattrBlock;
use std::mem::offset_of;

use crate::image::{Block, Image};

/// SplitMix64: small, and the same sequence on every host.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6165_6769_7366_757a)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A metadata structure of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Super,
    GroupDesc(u32),
    BlockBitmap(u32),
    InodeBitmap(u32),
    Inode(u32),
    /// An indirect block of inode `ino`/`generation` at `level` (1 = points at data).
    Indirect {
        block: u64,
        ino: u32,
        generation: u32,
        level: u8,
    },
    DirBlock {
        block: u64,
        ino: u32,
        generation: u32,
    },
    DirIndex {
        block: u64,
        ino: u32,
        generation: u32,
    },
    XattrBlock(u64),
    JournalSuper(u64),
    /// A descriptor, revoke or commit block (`JT_*`).
    JournalBlock(u64, u32),
    /// A block logged by the descriptor at `descriptor`, tag `tag`.
    JournalData {
        block: u64,
        descriptor: u64,
        tag: usize,
    },
}

impl Target {
    /// The kind's name, as `survey` counts it.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Super => "superblock",
            Target::GroupDesc(_) => "group-desc",
            Target::BlockBitmap(_) => "block-bitmap",
            Target::InodeBitmap(_) => "inode-bitmap",
            Target::Inode(_) => "inode",
            Target::Indirect { level: 1, .. } => "indirect-1",
            Target::Indirect { level: 2, .. } => "indirect-2",
            Target::Indirect { .. } => "indirect-3",
            Target::DirBlock { .. } => "dir-block",
            Target::DirIndex { .. } => "dir-index",
            Target::XattrBlock(_) => "xattr-block",
            Target::JournalSuper(_) => "journal-super",
            Target::JournalBlock(_, JT_DESCRIPTOR) => "journal-descriptor",
            Target::JournalBlock(_, JT_REVOKE) => "journal-revoke",
            Target::JournalBlock(..) => "journal-commit",
            Target::JournalData { .. } => "journal-data",
        }
    }
}

/// Where a target's bytes are: block, offset in it, length.
pub fn extent(img: &Image, t: Target) -> Result<(u64, usize, usize), String> {
    let whole = |b: u64| Ok((b, 0, BLOCK_SIZE));
    match t {
        Target::Super => Ok((0, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)),
        Target::GroupDesc(g) => {
            let (b, off) = img
                .geo
                .group_desc_location(g)
                .ok_or_else(|| format!("no group {g}"))?;
            Ok((b, off, GROUP_DESC_SIZE))
        }
        Target::BlockBitmap(g) => whole(img.geo.block_bitmap_block(g).ok_or("no group")?),
        Target::InodeBitmap(g) => whole(img.geo.inode_bitmap_block(g).ok_or("no group")?),
        Target::Inode(ino) => {
            let loc = img
                .geo
                .inode_location(ino)
                .map_err(|e| format!("inode {ino}: {}", e.msg()))?;
            Ok((loc.block, loc.offset, usize::from(img.geo.inode_size())))
        }
        Target::Indirect { block, .. }
        | Target::DirBlock { block, .. }
        | Target::DirIndex { block, .. }
        | Target::XattrBlock(block)
        | Target::JournalSuper(block)
        | Target::JournalBlock(block, _)
        | Target::JournalData { block, .. } => whole(block),
    }
}

/// Every metadata structure of a valid image. Damaged parts are skipped, not reported:
/// the corpus is made by the module, and a structure it cannot read is no target.
pub fn survey(img: &Image) -> Result<Vec<Target>, String> {
    let geo = &img.geo;
    let mut out = vec![Target::Super];
    for g in 0..geo.group_count() {
        out.extend([
            Target::GroupDesc(g),
            Target::BlockBitmap(g),
            Target::InodeBitmap(g),
        ]);
    }
    let per_block = geo.inodes_per_block().max(1);
    let isize = usize::from(geo.inode_size());
    for g in 0..geo.group_count() {
        let table = geo.inode_table_block(g).ok_or("no inode table")?;
        for i in 0..geo.inodes_per_group().div_ceil(per_block) {
            let block = img.read_block(table + u64::from(i))?;
            for slot in 0..per_block {
                let index = i * per_block + slot;
                let Some(ino) = geo.ino_of(g, index) else {
                    continue;
                };
                let off = slot as usize * isize;
                let raw = &block[off..off + isize];
                if raw[..2] == [0, 0] || Inode::validate(ino, raw, geo).is_err() {
                    continue;
                }
                out.push(Target::Inode(ino));
                survey_inode(img, ino, raw, &mut out)?;
            }
        }
    }
    survey_journal(img, &mut out)?;
    Ok(out)
}

fn survey_inode(img: &Image, ino: u32, raw: &[u8], out: &mut Vec<Target>) -> Result<(), String> {
    let inode = Inode::from_slot(raw).map_err(|e| e.msg().to_string())?;
    let generation = inode.generation.get();
    let xattr = inode.xattr_block.get();
    if xattr != 0 && img.geo.is_data_block(xattr) {
        out.push(Target::XattrBlock(xattr));
    }
    if inode.has_inline_data() {
        return Ok(());
    }
    let dir = inode.is_dir();
    let mut data = Vec::new();
    for i in 0..N_DIRECT {
        data.push(inode.direct_ptr(i).unwrap_or(0));
    }
    for level in 1..=3u8 {
        let root = inode.tree_root(level).unwrap_or(0);
        walk_indirect(img, ino, generation, level, root, dir, &mut data, out)?;
    }
    if dir {
        for b in data {
            let b = b & !aegisfs_format::blockmap::PTR_UNWRITTEN;
            if b == 0 || !img.geo.is_data_block(b) {
                continue;
            }
            let block = img.read_block(b)?;
            out.push(if block[..4] == INDEX_MAGIC {
                Target::DirIndex {
                    block: b,
                    ino,
                    generation,
                }
            } else {
                Target::DirBlock {
                    block: b,
                    ino,
                    generation,
                }
            });
        }
    }
    Ok(())
}

/// Collects the indirect blocks under `ptr` (a tree of `level` levels) and, for a
/// directory, the data pointers at its leaves.
#[allow(clippy::too_many_arguments)]
fn walk_indirect(
    img: &Image,
    ino: u32,
    generation: u32,
    level: u8,
    ptr: u64,
    dir: bool,
    data: &mut Vec<u64>,
    out: &mut Vec<Target>,
) -> Result<(), String> {
    if ptr == 0 || !img.geo.is_data_block(ptr) {
        return Ok(());
    }
    let block = img.read_block(ptr)?;
    let ind = IndirectBlock::from_block(&block);
    if ind
        .verify_checksum(img.geo.checksum_seed(), ino, generation)
        .is_err()
    {
        return Ok(());
    }
    out.push(Target::Indirect {
        block: ptr,
        ino,
        generation,
        level,
    });
    for i in 0..PTRS_PER_BLOCK {
        let p = ind.ptr(i).unwrap_or(0);
        if level > 1 {
            walk_indirect(img, ino, generation, level - 1, p, dir, data, out)?;
        } else if dir {
            data.push(p);
        }
    }
    Ok(())
}

fn header_of(block: &Block) -> (u32, u32, u64) {
    // The fields of `JournalHeader`, little-endian.
    let word = |at: usize| read_le(&block[at..at + 4]) as u32;
    (word(0), word(4), read_le(&block[8..16]))
}

/// The journal superblock, and the live log as recovery reads it: from the journal
/// superblock's `start`, the descriptor, revoke and commit blocks of the expected
/// sequence numbers, with the logged blocks after each descriptor, up to the first block
/// that does not continue it. Stale transactions are left out: the module never reads
/// them (unless a mutation of the journal superblock brings them back).
fn survey_journal(img: &Image, out: &mut Vec<Target>) -> Result<(), String> {
    let (jstart, jlen) = (img.geo.journal_start(), img.geo.journal_blocks());
    if jlen == 0 {
        return Ok(());
    }
    out.push(Target::JournalSuper(jstart));
    let jsb_block = img.read_block(jstart)?;
    let jsb = JournalSuperBlock::from_block(&jsb_block);
    let (len, first, mut pos, mut sequence) = (
        u64::from(jsb.max_len.get()).min(jlen),
        jsb.first.get(),
        jsb.start.get(),
        jsb.sequence.get(),
    );
    if first == 0 || first >= len || pos == 0 || pos >= len {
        return Ok(());
    }
    let next = |p: u64| if p + 1 >= len { first } else { p + 1 };
    for _ in 0..len {
        let b = jstart + pos;
        let block = img.read_block(b)?;
        let (magic, kind, seq) = header_of(&block);
        if magic != JOURNAL_MAGIC
            || seq != sequence
            || !matches!(kind, JT_DESCRIPTOR | JT_REVOKE | JT_COMMIT)
        {
            break;
        }
        out.push(Target::JournalBlock(b, kind));
        pos = next(pos);
        match kind {
            JT_DESCRIPTOR => {
                let d = JournalDescriptor::from_block(&block);
                let count = usize::try_from(d.count.get()).unwrap_or(usize::MAX);
                for tag in 0..count.min(MAX_DESCRIPTOR_TAGS) {
                    out.push(Target::JournalData {
                        block: jstart + pos,
                        descriptor: b,
                        tag,
                    });
                    pos = next(pos);
                }
            }
            JT_COMMIT => sequence += 1,
            _ => {}
        }
    }
    Ok(())
}

/// A named field of a structure: offset in the target's bytes and width.
struct Field {
    name: String,
    offset: usize,
    width: usize,
}

macro_rules! fields {
    ($t:ty, $out:ident; $($f:ident: $w:expr),* $(,)?) => {
        $($out.push(Field { name: stringify!($f).to_string(), offset: offset_of!($t, $f), width: $w });)*
    };
}

fn field(name: impl Into<String>, offset: usize, width: usize) -> Field {
    Field {
        name: name.into(),
        offset,
        width,
    }
}

/// The fields of target `t` whose bytes are `bytes`.
fn fields_of(t: Target, bytes: &[u8], rng: &mut Rng) -> Vec<Field> {
    let mut v = Vec::new();
    match t {
        Target::Super => {
            fields!(SuperBlock, v; magic: 8, format_version: 4, block_size_log2: 4,
                feature_compat: 8,
                feature_incompat: 8, feature_ro_compat: 8, blocks_count: 8, free_blocks: 8,
                reserved_blocks: 8, inodes_count: 4, free_inodes: 4, first_group_block: 8,
                blocks_per_group: 4, inodes_per_group: 4, group_count: 4, inode_size: 2,
                state: 2, gdt_start: 8, gdt_blocks: 4, root_ino: 4, first_ino: 4,
                lost_found_ino: 4, journal_start: 8, journal_blocks: 8, mount_count: 4,
                max_mount_count: 4, checksum_seed: 4, last_orphan: 4, error_count: 4,
                errors_behavior: 4, dir_hash_key: 8);
        }
        Target::GroupDesc(_) => {
            fields!(GroupDesc, v; block_bitmap: 8, inode_bitmap: 8, inode_table: 8,
                free_blocks: 4, free_inodes: 4, used_dirs: 4, flags: 4,
                block_bitmap_checksum: 4, inode_bitmap_checksum: 4);
        }
        Target::Inode(_) => {
            fields!(Inode, v; mode: 2, extra_size: 2, uid: 4, gid: 4, links_count: 4,
                size: 8, blocks: 8, flags: 4, generation: 4, atime: 8, mtime: 8,
                atime_nsec: 4, rdev: 4, next_orphan: 4, indirect: 8, double_indirect: 8,
                triple_indirect: 8, xattr_block: 8);
            for i in 0..N_DIRECT {
                v.push(field(
                    format!("direct[{i}]"),
                    offset_of!(Inode, direct) + 8 * i,
                    8,
                ));
            }
            if bytes.len() > 256 {
                // The inline xattr area: its entry headers are 4 bytes.
                let off = 256 + 4 * rng.index((bytes.len() - 256) / 4);
                v.push(field(format!("inline xattr byte {off}"), off, 4));
            }
        }
        Target::Indirect { .. } => {
            let used: Vec<usize> = (0..PTRS_PER_BLOCK)
                .filter(|&i| bytes[8 * i..8 * i + 8] != [0; 8])
                .collect();
            let i = if !used.is_empty() && rng.chance(80) {
                used[rng.index(used.len())]
            } else {
                rng.index(PTRS_PER_BLOCK)
            };
            v.push(field(format!("ptr[{i}]"), 8 * i, 8));
        }
        Target::DirBlock { .. } => {
            // Walk the records as stored; a bad rec_len ends the walk.
            let mut off = 0usize;
            while off + 8 <= DIR_TAIL_OFFSET {
                v.push(field(format!("entry@{off}.inode"), off, 4));
                v.push(field(format!("entry@{off}.rec_len"), off + 4, 2));
                v.push(field(format!("entry@{off}.name_len"), off + 6, 1));
                v.push(field(format!("entry@{off}.file_type"), off + 7, 1));
                v.push(field(format!("entry@{off}.name"), off + 8, 1));
                let rec = usize::from(u16::from_le_bytes([bytes[off + 4], bytes[off + 5]]));
                if rec < 8 {
                    break;
                }
                off += rec;
            }
            v.push(field("tail.rec_len", DIR_TAIL_OFFSET + 4, 2));
        }
        Target::DirIndex { .. } => {
            v.push(field("magic", 0, 4));
            v.push(field("level", 4, 1));
            v.push(field("count", 6, 2));
            let count = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
            // One past the used entries too; never past the block.
            let i = rng
                .index(count.min(INDEX_MAX_ENTRIES) + 1)
                .min(INDEX_MAX_ENTRIES - 1);
            let off = INDEX_HEADER_SIZE + 12 * i;
            v.push(field(format!("entry[{i}].hash"), off, 8));
            v.push(field(format!("entry[{i}].block"), off + 8, 4));
        }
        Target::BlockBitmap(_) | Target::InodeBitmap(_) => {
            // Set bits in the first used bytes are the interesting ones.
            let used: Vec<usize> = (0..BLOCK_SIZE).filter(|&i| bytes[i] != 0).collect();
            let i = if !used.is_empty() && rng.chance(70) {
                used[rng.index(used.len())]
            } else {
                rng.index(BLOCK_SIZE)
            };
            v.push(field(format!("byte {i}"), i, 1));
        }
        Target::XattrBlock(_) => {
            v.push(field("magic", 0, 4));
            v.push(field("refcount", 4, 4));
            v.push(field("used", 8, 4));
            let off = 32 + 4 * rng.index((BLOCK_SIZE - 32) / 4);
            v.push(field(format!("entry word {off}"), off, 4));
        }
        Target::JournalSuper(_) => {
            fields!(JournalSuperBlock, v; block_size: 4, max_len: 4, first: 8, start: 8,
                sequence: 8, errno: 4, features: 4, head: 8);
        }
        Target::JournalBlock(_, kind) => {
            v.push(field("header.magic", 0, 4));
            v.push(field("header.block_type", 4, 4));
            v.push(field("header.sequence", 8, 8));
            match kind {
                JT_DESCRIPTOR => {
                    v.push(field("count", offset_of!(JournalDescriptor, count), 4));
                    let i = rng.index(4);
                    let off = offset_of!(JournalDescriptor, tags) + i * size_of::<JournalTag>();
                    v.push(field(format!("tag[{i}].target"), off, 8));
                    v.push(field(format!("tag[{i}].flags"), off + 8, 4));
                }
                JT_REVOKE => {
                    v.push(field("count", offset_of!(JournalRevoke, count), 4));
                    let i = rng.index(4);
                    v.push(field(
                        format!("record[{i}]"),
                        offset_of!(JournalRevoke, blocks) + 8 * i,
                        8,
                    ));
                }
                _ => {
                    v.push(field(
                        "commit_sec",
                        offset_of!(JournalCommit, commit_sec),
                        8,
                    ));
                    v.push(field(
                        "commit_nsec",
                        offset_of!(JournalCommit, commit_nsec),
                        4,
                    ));
                }
            }
        }
        Target::JournalData { .. } => {
            // A logged metadata block: its words are pointers, counts and sizes alike.
            let off = 8 * rng.index(BLOCK_SIZE / 8);
            v.push(field(format!("word {off}"), off, 8));
        }
    }
    v
}

/// A value for a field of `width` bytes that sits on some boundary of the image.
fn boundary_value(img: &Image, targets: &[Target], old: u64, width: usize, rng: &mut Rng) -> u64 {
    let geo = &img.geo;
    let blocks = geo.blocks_count();
    let inodes = u64::from(geo.inodes_count());
    let max = if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let candidates = [
        0,
        1,
        2,
        max,
        max >> 1,
        (max >> 1) + 1,
        old.wrapping_add(1),
        old.wrapping_sub(1),
        old ^ (1 << rng.below(8 * width as u64)),
        blocks.wrapping_sub(1),
        blocks,
        blocks.wrapping_add(1),
        geo.first_group_block(),
        geo.journal_start(),
        geo.gdt_start(),
        inodes,
        inodes.wrapping_add(1),
        11,
        rng.below(blocks),
        rng.below(inodes + 2),
        rng.next(),
    ];
    let v = match rng.below(candidates.len() as u64 + 1) as usize {
        // Another structure's block: the module must not treat it as this one's.
        i if i == candidates.len() => {
            extent(img, targets[rng.index(targets.len())]).map_or(0, |(b, _, _)| b)
        }
        i => candidates[i],
    };
    v & max
}

fn read_le(bytes: &[u8]) -> u64 {
    let mut v = [0u8; 8];
    v[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(v)
}

/// Applies 1 to 4 seeded mutations to `img`, returning one line per mutation.
pub fn mutate(img: &Image, seed: u64) -> Result<Vec<String>, String> {
    let targets = survey(img)?;
    let mut rng = Rng::new(seed);
    // Kinds are picked first, so the few superblock or journal structures are hit as
    // often as the many inodes.
    let mut kinds: Vec<&str> = targets.iter().map(Target::kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let n = match rng.below(8) {
        0..=3 => 1,
        4..=5 => 2,
        6 => 3,
        _ => 4,
    };
    let mut log = Vec::new();
    let mut journal_touched = false;
    for _ in 0..n {
        let kind = kinds[rng.index(kinds.len())];
        let of_kind: Vec<Target> = targets
            .iter()
            .copied()
            .filter(|t| t.kind() == kind)
            .collect();
        let t = of_kind[rng.index(of_kind.len())];
        let (b, off, len) = extent(img, t)?;
        let mut block = img.read_block(b)?;
        let bytes = &mut block[off..off + len];
        let what = match rng.below(10) {
            0..=1 => {
                let flips = 1 + rng.below(8);
                for _ in 0..flips {
                    let bit = rng.below(8 * len as u64);
                    bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
                }
                format!("{flips} bit(s) flipped")
            }
            2..=3 => {
                let run = 1 + rng.index(16);
                let at = rng.index(len - run);
                let fill = rng.below(3);
                for byte in &mut bytes[at..at + run] {
                    *byte = match fill {
                        0 => 0,
                        1 => 0xFF,
                        _ => rng.next() as u8,
                    };
                }
                format!("{run} byte(s) at {at} overwritten")
            }
            _ => {
                let fields = fields_of(t, bytes, &mut rng);
                let f = &fields[rng.index(fields.len())];
                let old = read_le(&bytes[f.offset..f.offset + f.width]);
                let new = boundary_value(img, &targets, old, f.width, &mut rng);
                bytes[f.offset..f.offset + f.width].copy_from_slice(&new.to_le_bytes()[..f.width]);
                format!("{} {old:#x} -> {new:#x}", f.name)
            }
        };
        img.write_block(b, &block)?;
        let sealed = rng.chance(85);
        if sealed {
            seal(img, t)?;
            journal_touched |= matches!(
                t,
                Target::JournalSuper(_) | Target::JournalBlock(..) | Target::JournalData { .. }
            );
        }
        log.push(format!(
            "{t:?}: {what}{}",
            if sealed { ", checksums recomputed" } else { "" }
        ));
    }
    if journal_touched {
        reseal_journal(img, &targets)?;
    }
    Ok(log)
}

/// Recomputes the checksum(s) covering target `t` (the journal's are done by
/// [`reseal_journal`], which needs the whole log).
pub fn seal(img: &Image, t: Target) -> Result<(), String> {
    let seed = img.geo.checksum_seed();
    match t {
        Target::Super => img.patch_superblock(|sb| sb.update_checksum()),
        Target::GroupDesc(g) => img.patch_group_desc(g, |d| d.update_checksum(seed, g)),
        Target::BlockBitmap(g) | Target::InodeBitmap(g) => {
            let (b, _, _) = extent(img, t)?;
            let c = bitmap_checksum(seed, g, &img.read_block(b)?);
            img.patch_group_desc(g, |d| {
                if matches!(t, Target::BlockBitmap(_)) {
                    d.block_bitmap_checksum.set(c);
                } else {
                    d.inode_bitmap_checksum.set(c);
                }
                d.update_checksum(seed, g);
            })
        }
        Target::Inode(ino) => {
            let mut raw = img.raw_inode(ino)?;
            set_inode_checksum(seed, ino, &mut raw).map_err(|e| e.msg().to_string())?;
            img.write_inode(ino, &mut raw, false)
        }
        Target::Indirect {
            block,
            ino,
            generation,
            ..
        } => patch(img, block, |b| {
            IndirectBlock::from_block_mut(b).update_checksum(seed, ino, generation)
        }),
        Target::DirBlock {
            block,
            ino,
            generation,
        } => patch(img, block, |b| {
            set_dir_block_checksum(b, seed, ino, generation)
        }),
        Target::DirIndex {
            block,
            ino,
            generation,
        } => patch(img, block, |b| set_index_checksum(b, seed, ino, generation)),
        Target::XattrBlock(block) => patch(img, block, |b| {
            XattrBlock::from_block_mut(b).update_checksum(seed, block)
        }),
        Target::JournalSuper(_) | Target::JournalBlock(..) | Target::JournalData { .. } => Ok(()),
    }
}

fn patch(img: &Image, b: u64, edit: impl FnOnce(&mut Block)) -> Result<(), String> {
    let mut block = img.read_block(b)?;
    edit(&mut block);
    img.write_block(b, &block)
}

/// Makes the journal's checksums agree with its contents again: the journal superblock's,
/// and along the live log found by [`survey`] before the mutations (`targets`), each
/// descriptor's tag checksums over its logged blocks, every descriptor, revoke and commit
/// block's own checksum, and each commit's transaction checksum.
pub fn reseal_journal(img: &Image, targets: &[Target]) -> Result<(), String> {
    let seed = img.geo.checksum_seed();
    let jstart = img.geo.journal_start();
    patch(img, jstart, |b| set_journal_block_checksum(seed, b))?;
    let mut txn = TransactionChecksum::new(seed);
    for &t in targets {
        let Target::JournalBlock(b, kind) = t else {
            continue;
        };
        let mut block = img.read_block(b)?;
        match kind {
            JT_DESCRIPTOR => {
                let sequence = header_of(&block).2;
                let d = JournalDescriptor::from_block_mut(&mut block);
                for &data in targets {
                    let Target::JournalData {
                        block: at,
                        descriptor,
                        tag,
                    } = data
                    else {
                        continue;
                    };
                    let Some(tag) = d.tags.get_mut(tag).filter(|_| descriptor == b) else {
                        continue;
                    };
                    let mut logged = img.read_block(at)?;
                    if tag.flags.get() & TAG_FLAG_ESCAPED != 0 {
                        unescape(&mut logged);
                    }
                    tag.checksum
                        .set(journal_data_checksum(seed, sequence, &logged));
                }
                set_journal_block_checksum(seed, &mut block);
                txn.add_metadata_block(&block);
            }
            JT_REVOKE => {
                set_journal_block_checksum(seed, &mut block);
                txn.add_metadata_block(&block);
            }
            _ => {
                JournalCommit::from_block_mut(&mut block)
                    .transaction_checksum
                    .set(txn.value());
                set_journal_block_checksum(seed, &mut block);
                txn = TransactionChecksum::new(seed);
            }
        }
        img.write_block(b, &block)?;
    }
    Ok(())
}
