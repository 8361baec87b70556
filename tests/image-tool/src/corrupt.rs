//! Targeted corruptions of a valid image. Each changes one thing and, unless the checksum
//! itself is the target, recomputes the checksum covering it, so exactly one check of the
//! reader is exercised.

use aegisfs_format::blockmap::PTR_UNWRITTEN;
use aegisfs_format::dir::set_dir_block_checksum;
use aegisfs_format::disk::{
    IndirectBlock, Inode, BLOCKS_PER_GROUP, DIR_CHECKSUM_OFFSET, DIR_TAIL_OFFSET, FT_REG,
    INODE_CHECKSUM_OFFSET, N_DIRECT, PTRS_PER_BLOCK,
};

use aegisfs_format::xattr::{inline_area_mut, inline_used, XATTR_BLOCK_CHECKSUM_OFFSET};

use crate::image::{ferr, Image};

/// What to corrupt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// First magic byte changed; superblock checksum recomputed.
    BadMagic,
    /// One bit of the stored superblock checksum flipped.
    SuperblockChecksum,
    /// `blocks_count` one block past the end of the device; the layout stays consistent
    /// (the last group grows) and the checksum is recomputed.
    BlocksCount,
    /// The given `feature_incompat` bit set; checksum recomputed.
    IncompatFeature(u32),
    /// The given `feature_ro_compat` bit set; checksum recomputed.
    RoCompatFeature(u32),
    /// The given `feature_compat` bit set; checksum recomputed.
    CompatFeature(u32),
    /// One bit of group descriptor `g`'s stored checksum flipped.
    GroupDescChecksum(u32),
    /// `direct[0]` of the file at the path set 1000 blocks past the end of the device;
    /// inode checksum recomputed.
    BlockPointer(String),
    /// `rec_len` of the first entry after `.` and `..` of the directory at the path set to
    /// the value; directory block checksum recomputed.
    DirRecLen(String, RecLen),
    /// Entry 0 of the file's indirect tree root at the given level (1 single, 2 double,
    /// 3 triple) pointed at that root itself; indirect block checksum recomputed.
    IndirectLoop(String, u8),
    /// One bit of the stored checksum of the inode at the path flipped.
    InodeChecksum(String),
    /// One bit of the stored checksum of the file's indirect tree root at the given level
    /// flipped.
    IndirectChecksum(String, u8),
    /// One bit of the stored checksum of the first block of the directory flipped.
    DirChecksum(String),
    /// One bit of the inode bitmap checksum kept in group descriptor `g` flipped; the
    /// descriptor checksum recomputed.
    InodeBitmapChecksum(u32),
    /// Not damage for a regular file: the UNWRITTEN bit (docs/format.md, "Block mapping")
    /// set on every non-zero `direct[]` pointer of the file and every entry of its single
    /// indirect block, which then read as zeros; checksums recomputed.
    Unwritten(String),
    /// The UNWRITTEN bit set on the file's indirect tree root at the given level (1 single,
    /// 2 double, 3 triple), where it is never allowed; inode checksum recomputed.
    UnwrittenIndirect(String, u8),
    /// One bit of the stored checksum of the file's xattr block flipped.
    XattrChecksum(String),
    /// The first byte after the entries of the file's inline xattr area set to 0xFF (bytes
    /// past the used length must be zero); inode checksum recomputed.
    XattrInline(String),
}

/// The bad `rec_len` of [`Kind::DirRecLen`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecLen {
    /// This exact value.
    Value(u16),
    /// Four bytes more than reaches the block tail, so the record crosses it.
    PastTail,
}

impl Kind {
    /// Parses `KIND [ARGS]` from the command line.
    pub fn parse(args: &[String]) -> Result<Kind, String> {
        let arg = |i: usize| {
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("{}: missing argument {i}", args[0]))
        };
        let num = |i: usize| -> Result<u32, String> {
            arg(i)?
                .parse()
                .map_err(|_| format!("{}: argument {i} is not a number", args[0]))
        };
        let want = |n: usize| {
            if args.len() == n + 1 {
                Ok(())
            } else {
                Err(format!("{} takes {n} argument(s)", args[0]))
            }
        };
        let kind = match args.first().map(String::as_str) {
            Some("bad-magic") => want(0).map(|_| Kind::BadMagic)?,
            Some("sb-checksum") => want(0).map(|_| Kind::SuperblockChecksum)?,
            Some("blocks-count") => want(0).map(|_| Kind::BlocksCount)?,
            Some("incompat-feature") => want(1).and(num(1).map(Kind::IncompatFeature))?,
            Some("ro-compat-feature") => want(1).and(num(1).map(Kind::RoCompatFeature))?,
            Some("compat-feature") => want(1).and(num(1).map(Kind::CompatFeature))?,
            Some("gd-checksum") => want(1).and(num(1).map(Kind::GroupDescChecksum))?,
            Some("block-pointer") => want(1).and(arg(1).map(Kind::BlockPointer))?,
            Some("dir-rec-len") => {
                want(2)?;
                let value = match arg(2)?.as_str() {
                    "past-tail" => RecLen::PastTail,
                    v => RecLen::Value(
                        v.parse()
                            .map_err(|_| "dir-rec-len: VALUE is a u16 or past-tail".to_string())?,
                    ),
                };
                Kind::DirRecLen(arg(1)?, value)
            }
            Some("unwritten") => want(1).and(arg(1).map(Kind::Unwritten))?,
            Some(name @ ("indirect-loop" | "indirect-checksum" | "unwritten-indirect")) => {
                want(2)?;
                let level = num(2)?;
                if !(1..=3).contains(&level) {
                    return Err(format!("{name}: LEVEL is 1, 2 or 3"));
                }
                if name == "indirect-loop" {
                    Kind::IndirectLoop(arg(1)?, level as u8)
                } else if name == "unwritten-indirect" {
                    Kind::UnwrittenIndirect(arg(1)?, level as u8)
                } else {
                    Kind::IndirectChecksum(arg(1)?, level as u8)
                }
            }
            Some("dir-checksum") => want(1).and(arg(1).map(Kind::DirChecksum))?,
            Some("inode-bitmap-checksum") => want(1).and(num(1).map(Kind::InodeBitmapChecksum))?,
            Some("inode-checksum") => want(1).and(arg(1).map(Kind::InodeChecksum))?,
            Some("xattr-checksum") => want(1).and(arg(1).map(Kind::XattrChecksum))?,
            Some("xattr-inline") => want(1).and(arg(1).map(Kind::XattrInline))?,
            _ => return Err(format!("unknown corruption {:?}", args.first())),
        };
        if let Kind::IncompatFeature(b) | Kind::RoCompatFeature(b) | Kind::CompatFeature(b) = kind {
            if b > 63 {
                return Err("feature bits are 0..=63".to_string());
            }
        }
        Ok(kind)
    }
}

/// Applies `kind` to `img`; returns a one-line description of the change.
pub fn apply(img: &Image, kind: &Kind) -> Result<String, String> {
    match kind {
        Kind::BadMagic => {
            img.patch_superblock(|sb| {
                sb.magic[0] ^= 0x20;
                sb.update_checksum();
            })?;
            Ok("superblock magic[0] ^= 0x20, checksum recomputed".to_string())
        }
        Kind::SuperblockChecksum => {
            img.patch_superblock(|sb| sb.checksum.set(sb.checksum.get() ^ 1))?;
            Ok("superblock checksum bit 0 flipped".to_string())
        }
        Kind::BlocksCount => blocks_count(img),
        Kind::IncompatFeature(bit) => {
            img.patch_superblock(|sb| {
                sb.feature_incompat
                    .set(sb.feature_incompat.get() | 1 << bit);
                sb.update_checksum();
            })?;
            Ok(format!(
                "feature_incompat bit {bit} set, checksum recomputed"
            ))
        }
        Kind::RoCompatFeature(bit) => {
            img.patch_superblock(|sb| {
                sb.feature_ro_compat
                    .set(sb.feature_ro_compat.get() | 1 << bit);
                sb.update_checksum();
            })?;
            Ok(format!(
                "feature_ro_compat bit {bit} set, checksum recomputed"
            ))
        }
        Kind::CompatFeature(bit) => {
            img.patch_superblock(|sb| {
                sb.feature_compat.set(sb.feature_compat.get() | 1 << bit);
                sb.update_checksum();
            })?;
            Ok(format!("feature_compat bit {bit} set, checksum recomputed"))
        }
        Kind::GroupDescChecksum(g) => {
            if *g >= img.geo.group_count() {
                return Err(format!("no group {g}"));
            }
            img.patch_group_desc(*g, |d| d.checksum.set(d.checksum.get() ^ 1))?;
            Ok(format!("group descriptor {g} checksum bit 0 flipped"))
        }
        Kind::BlockPointer(path) => block_pointer(img, path),
        Kind::DirRecLen(path, value) => dir_rec_len(img, path, *value),
        Kind::IndirectLoop(path, level) => indirect_loop(img, path, *level),
        Kind::IndirectChecksum(path, level) => {
            let (ino, root) = tree_root(img, path, *level)?;
            let mut block = img.read_block(root)?;
            let ind = IndirectBlock::from_block_mut(&mut block);
            ind.checksum.set(ind.checksum.get() ^ 1);
            img.write_block(root, &block)?;
            Ok(format!(
                "{path}: inode {ino} level {level} indirect block {root} checksum bit 0 flipped"
            ))
        }
        Kind::DirChecksum(path) => {
            let dir = img.lookup(path)?;
            let raw = img.inode(dir)?;
            let b = img
                .map(dir, &raw, 0)?
                .data
                .ok_or_else(|| format!("{path}: no first block"))?;
            let mut block = img.read_block(b)?;
            block[DIR_CHECKSUM_OFFSET] ^= 1;
            img.write_block(b, &block)?;
            Ok(format!(
                "{path}: directory {dir} block {b} checksum bit 0 flipped"
            ))
        }
        Kind::InodeBitmapChecksum(g) => {
            if *g >= img.geo.group_count() {
                return Err(format!("no group {g}"));
            }
            let seed = img.geo.checksum_seed();
            img.patch_group_desc(*g, |d| {
                d.inode_bitmap_checksum
                    .set(d.inode_bitmap_checksum.get() ^ 1);
                d.update_checksum(seed, *g);
            })?;
            Ok(format!(
                "group descriptor {g}: inode bitmap checksum bit 0 flipped, descriptor \
                 checksum recomputed"
            ))
        }
        Kind::Unwritten(path) => unwritten(img, path),
        Kind::UnwrittenIndirect(path, level) => {
            let (ino, root) = tree_root(img, path, *level)?;
            let mut raw = img.inode(ino)?;
            let inode = Inode::from_slot_mut(&mut raw).map_err(|e| ferr(path, e))?;
            inode.set_tree_root(*level, root | PTR_UNWRITTEN);
            img.write_inode(ino, &mut raw, true)?;
            Ok(format!(
                "{path}: inode {ino} level {level} indirect root {root} marked unwritten, \
                 inode checksum recomputed"
            ))
        }
        Kind::InodeChecksum(path) => {
            let ino = img.lookup(path)?;
            let mut raw = img.inode(ino)?;
            raw[INODE_CHECKSUM_OFFSET] ^= 1;
            img.write_inode(ino, &mut raw, false)?;
            Ok(format!("{path}: inode {ino} checksum bit 0 flipped"))
        }
        Kind::XattrChecksum(path) => {
            let ino = img.lookup(path)?;
            let raw = img.inode(ino)?;
            let b = Inode::from_slot(&raw)
                .map_err(|e| ferr(path, e))?
                .xattr_block
                .get();
            if b == 0 {
                return Err(format!("{path}: inode {ino} has no xattr block"));
            }
            img.geo.check_data_block(b).map_err(|e| ferr(path, e))?;
            let mut block = img.read_block(b)?;
            block[XATTR_BLOCK_CHECKSUM_OFFSET] ^= 1;
            img.write_block(b, &block)?;
            Ok(format!(
                "{path}: inode {ino} xattr block {b} checksum bit 0 flipped"
            ))
        }
        Kind::XattrInline(path) => {
            let ino = img.lookup(path)?;
            let mut raw = img.inode(ino)?;
            let used = inline_used(&raw);
            let byte = inline_area_mut(&mut raw)
                .get_mut(used)
                .ok_or_else(|| format!("{path}: inode {ino} has no free inline xattr byte"))?;
            *byte = 0xFF;
            img.write_inode(ino, &mut raw, true)?;
            Ok(format!(
                "{path}: inode {ino} inline xattr byte {used} (after the entries) set to 0xff, \
                 inode checksum recomputed"
            ))
        }
    }
}

fn blocks_count(img: &Image) -> Result<String, String> {
    let geo = &img.geo;
    let new = img.device_blocks + 1;
    // Keep the group count: only the last group may grow, up to a full group.
    let last_start =
        geo.first_group_block() + u64::from(geo.group_count() - 1) * u64::from(BLOCKS_PER_GROUP);
    if new - last_start > u64::from(BLOCKS_PER_GROUP) {
        return Err(format!(
            "the last group cannot grow to {new} blocks: use an image whose last group is short"
        ));
    }
    let old = geo.blocks_count();
    img.patch_superblock(|sb| {
        sb.blocks_count.set(new);
        sb.update_checksum();
    })?;
    Ok(format!(
        "blocks_count {old} -> {new} (device has {} blocks), checksum recomputed",
        img.device_blocks
    ))
}

fn block_pointer(img: &Image, path: &str) -> Result<String, String> {
    let ino = img.lookup(path)?;
    let mut raw = img.inode(ino)?;
    let bad = img.device_blocks + 1000;
    let inode = Inode::from_slot_mut(&mut raw).map_err(|e| ferr(path, e))?;
    let old = inode.direct_ptr(0).unwrap_or(0);
    if old == 0 || inode.has_inline_data() {
        return Err(format!("{path}: inode {ino} has no direct[0] block"));
    }
    inode.set_direct_ptr(0, bad);
    img.write_inode(ino, &mut raw, true)?;
    Ok(format!(
        "{path}: inode {ino} direct[0] {old} -> {bad}, inode checksum recomputed"
    ))
}

fn dir_rec_len(img: &Image, path: &str, value: RecLen) -> Result<String, String> {
    let dir = img.lookup(path)?;
    let raw = img.inode(dir)?;
    let generation = Inode::from_slot(&raw)
        .map_err(|e| ferr(path, e))?
        .generation
        .get();
    // Entries of the first block, in order: ".", "..", then the victim.
    let entries = img.dir_entries(dir)?;
    let first_block = entries.first().map(|e| e.block);
    let victim = entries
        .into_iter()
        .filter(|e| Some(e.block) == first_block)
        .nth(2)
        .ok_or_else(|| format!("{path}: fewer than three entries in the first block"))?;
    let (b, off) = (victim.block, victim.offset);
    let new = match value {
        RecLen::Value(v) => v,
        // off is a multiple of 4 below 4084.
        RecLen::PastTail => (DIR_TAIL_OFFSET - off + 4) as u16,
    };
    let mut block = img.read_block(b)?;
    let old = u16::from_le_bytes([block[off + 4], block[off + 5]]);
    block[off + 4..off + 6].copy_from_slice(&new.to_le_bytes());
    set_dir_block_checksum(&mut block, img.geo.checksum_seed(), dir, generation);
    img.write_block(b, &block)?;
    Ok(format!(
        "{path}: block {b} offset {off} (entry {:?} -> inode {}) rec_len {old} -> {new}, \
         block checksum recomputed",
        String::from_utf8_lossy(&victim.name),
        victim.ino
    ))
}

/// The inode of `path` and its validated level-`level` indirect tree root.
fn tree_root(img: &Image, path: &str, level: u8) -> Result<(u32, u64), String> {
    let ino = img.lookup(path)?;
    let raw = img.inode(ino)?;
    let inode = Inode::from_slot(&raw).map_err(|e| ferr(path, e))?;
    let root = inode.tree_root(level).unwrap_or(0);
    if root == 0 {
        return Err(format!(
            "{path}: inode {ino} has no level {level} indirect block"
        ));
    }
    img.geo.check_data_block(root).map_err(|e| ferr(path, e))?;
    Ok((ino, root))
}

fn indirect_loop(img: &Image, path: &str, level: u8) -> Result<String, String> {
    let (ino, root) = tree_root(img, path, level)?;
    let raw = img.inode(ino)?;
    let generation = Inode::from_slot(&raw)
        .map_err(|e| ferr(path, e))?
        .generation
        .get();
    let mut block = img.read_block(root)?;
    let ind = IndirectBlock::from_block_mut(&mut block);
    let old = ind.ptr(0).unwrap_or(0);
    ind.set_ptr(0, root);
    ind.update_checksum(img.geo.checksum_seed(), ino, generation);
    img.write_block(root, &block)?;
    Ok(format!(
        "{path}: inode {ino} level {level} indirect block {root} entry 0 {old} -> {root}, \
         checksum recomputed"
    ))
}

fn unwritten(img: &Image, path: &str) -> Result<String, String> {
    let ino = img.lookup(path)?;
    let mut raw = img.inode(ino)?;
    let inode = Inode::from_slot_mut(&mut raw).map_err(|e| ferr(path, e))?;
    if inode.file_type() != Some(FT_REG) {
        return Err(format!("{path}: inode {ino} is not a regular file"));
    }
    let generation = inode.generation.get();
    let mut marked = 0;
    for d in 0..N_DIRECT {
        let p = inode.direct_ptr(d).unwrap_or(0);
        if p != 0 {
            inode.set_direct_ptr(d, p | PTR_UNWRITTEN);
            marked += 1;
        }
    }
    let root = inode.tree_root(1).unwrap_or(0);
    img.write_inode(ino, &mut raw, true)?;
    if root != 0 {
        img.geo.check_data_block(root).map_err(|e| ferr(path, e))?;
        let mut block = img.read_block(root)?;
        let ind = IndirectBlock::from_block_mut(&mut block);
        for i in 0..PTRS_PER_BLOCK {
            let p = ind.ptr(i).unwrap_or(0);
            if p != 0 {
                ind.set_ptr(i, p | PTR_UNWRITTEN);
                marked += 1;
            }
        }
        ind.update_checksum(img.geo.checksum_seed(), ino, generation);
        img.write_block(root, &block)?;
    }
    if marked == 0 {
        return Err(format!(
            "{path}: inode {ino} has no direct or single indirect data block"
        ));
    }
    Ok(format!(
        "{path}: inode {ino}: {marked} data pointers marked unwritten, checksums recomputed"
    ))
}
