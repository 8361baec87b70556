//! `inode`: every field of an inode, its inline xattr area and xattr block, and its block
//! map as extents of logical to physical blocks with the holes between them, and the
//! indirect blocks of the tree with their checksums.

use crate::format_ext::file_type_name;
use aegisfs_format::blockmap::{BlockPtr, DIND_START, IND_START, TIND_START};
use aegisfs_format::checksum::verify_inode_checksum;
use aegisfs_format::disk::{
    bitmap_test, IndirectBlock, Inode, BLOCK_SIZE_U64, FT_BLKDEV, FT_CHRDEV, FT_REG, FT_SYMLINK,
    INODE_BASE_SIZE, INODE_FLAG_APPEND, INODE_FLAG_DIRSYNC, INODE_FLAG_IMMUTABLE, INODE_FLAG_INDEX,
    INODE_FLAG_INLINE_DATA, INODE_FLAG_NOATIME, INODE_FLAG_NODUMP, INODE_FLAG_SYNC, PTRS_PER_BLOCK,
    PTRS_PER_BLOCK_U64,
};
use aegisfs_format::geometry::Geometry;
use aegisfs_format::xattr::{entries, index_prefix, inline_area, XattrBlock};

use super::superblock::flag_names;
use super::{corrupt, escape_name, utc, Inspector, Res, Target};

const FLAGS: &[(u64, &str)] = &[
    (INODE_FLAG_SYNC as u64, "sync"),
    (INODE_FLAG_IMMUTABLE as u64, "immutable"),
    (INODE_FLAG_APPEND as u64, "append"),
    (INODE_FLAG_NODUMP as u64, "nodump"),
    (INODE_FLAG_NOATIME as u64, "noatime"),
    (INODE_FLAG_INDEX as u64, "index"),
    (INODE_FLAG_DIRSYNC as u64, "dirsync"),
    (INODE_FLAG_INLINE_DATA as u64, "inline_data"),
];

/// A run of logical blocks mapped to consecutive physical blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Extent {
    pub lblk: u64,
    pub phys: u64,
    pub len: u64,
    pub unwritten: bool,
}

/// An indirect block of the tree.
pub(super) struct TreeNode {
    /// 1 for a block of data pointers, 2 and 3 above it.
    level: u8,
    block: u64,
    /// First logical block it covers.
    first: u64,
    checksum_ok: bool,
}

/// A block map as read: the extents in logical order, the tree's indirect blocks, and
/// the pointers that failed a check (logical block or tree position, why).
#[derive(Default)]
pub(super) struct Mapping {
    pub extents: Vec<Extent>,
    nodes: Vec<TreeNode>,
    bad: Vec<String>,
}

impl Mapping {
    fn push(&mut self, lblk: u64, p: BlockPtr) {
        if let Some(last) = self.extents.last_mut() {
            if last.lblk + last.len == lblk
                && last.phys + last.len == p.block
                && last.unwritten == p.unwritten
            {
                last.len += 1;
                return;
            }
        }
        self.extents.push(Extent {
            lblk,
            phys: p.block,
            len: 1,
            unwritten: p.unwritten,
        });
    }

    /// The physical block of logical block `lblk`, if mapped.
    pub fn phys(&self, lblk: u64) -> Option<u64> {
        let i = self.extents.partition_point(|e| e.lblk + e.len <= lblk);
        self.extents
            .get(i)
            .filter(|e| e.lblk <= lblk)
            .map(|e| e.phys + (lblk - e.lblk))
    }

    /// Problems found while reading the map.
    pub fn problems(&self) -> &[String] {
        &self.bad
    }
}

/// Walks the block map of inode `ino`. The tree is at most three levels deep, so even a
/// tree whose blocks point at each other ends; every pointer is checked against the
/// geometry before it is followed, and an indirect block with a bad checksum is shown
/// but not followed.
pub(super) fn block_map(ins: &Inspector, geo: &Geometry, ino: u32, i: &Inode) -> Res<Mapping> {
    let mut map = Mapping::default();
    if i.has_inline_data() {
        return Ok(map);
    }
    let regular = i.file_type() == Some(FT_REG);
    for (l, p) in i.direct.iter().enumerate() {
        match BlockPtr::check(p.get(), regular, geo) {
            Ok(Some(bp)) => map.push(l as u64, bp),
            Ok(None) => {}
            Err(e) => map.bad.push(format!(
                "logical block {l}: pointer 0x{:x}: {}",
                p.get(),
                e.msg()
            )),
        }
    }
    let walk = Walk {
        ins,
        geo,
        ino,
        generation: i.generation.get(),
        regular,
    };
    for (level, first) in [(1u8, IND_START), (2, DIND_START), (3, TIND_START)] {
        let root = i.tree_root(level).unwrap_or(0);
        match BlockPtr::check(root, false, geo) {
            Ok(Some(bp)) => walk.node(&mut map, bp.block, level, first)?,
            Ok(None) => {}
            Err(e) => map.bad.push(format!(
                "level-{level} tree root: pointer 0x{root:x}: {}",
                e.msg()
            )),
        }
    }
    Ok(map)
}

struct Walk<'a, 'o> {
    ins: &'a Inspector<'o>,
    geo: &'a Geometry,
    ino: u32,
    generation: u32,
    regular: bool,
}

impl Walk<'_, '_> {
    fn node(&self, map: &mut Mapping, block: u64, level: u8, first: u64) -> Res<()> {
        let raw = self.ins.read(block)?;
        let ib = IndirectBlock::from_block(&raw);
        let checksum_ok = ib
            .verify_checksum(self.geo.checksum_seed(), self.ino, self.generation)
            .is_ok();
        map.nodes.push(TreeNode {
            level,
            block,
            first,
            checksum_ok,
        });
        if !checksum_ok {
            return Ok(());
        }
        let span = PTRS_PER_BLOCK_U64.pow(u32::from(level) - 1);
        for k in 0..PTRS_PER_BLOCK {
            let lblk = first + k as u64 * span;
            let data = level == 1;
            match ib.checked_block_ptr(k, data && self.regular, self.geo) {
                Ok(Some(bp)) if data => map.push(lblk, bp),
                Ok(Some(bp)) => self.node(map, bp.block, level - 1, lblk)?,
                Ok(None) => {}
                Err(e) => map.bad.push(format!(
                    "indirect block {block} entry {k} (logical block {lblk}): pointer 0x{:x}: {}",
                    ib.ptr(k).unwrap_or(0),
                    e.msg()
                )),
            }
        }
        Ok(())
    }
}

/// The raw `inode_size` bytes of inode `ino`.
pub(super) fn read_raw(ins: &Inspector, geo: &Geometry, ino: u32) -> Res<Vec<u8>> {
    let loc = geo
        .inode_location(ino)
        .or_else(|e| corrupt(format_args!("inode {ino}: {}", e.msg())))?;
    let blk = ins.read(loc.block)?;
    match blk.get(loc.offset..loc.offset + usize::from(geo.inode_size())) {
        Some(raw) => Ok(raw.to_vec()),
        None => corrupt(format_args!("inode {ino}: slot outside its table block")),
    }
}

/// The inode number a command line target names.
pub(super) fn resolve(ins: &Inspector, geo: &Geometry, t: &Target) -> Res<u32> {
    match t {
        Target::Ino(ino) if geo.is_valid_ino(*ino) => Ok(*ino),
        Target::Ino(ino) => corrupt(format_args!(
            "inode {ino} does not exist (inodes are 1..={})",
            geo.inodes_count()
        )),
        Target::Path(p) => super::dir::lookup_path(ins, geo, p),
    }
}

pub(super) fn show(ins: &mut Inspector, t: &Target) -> Res<()> {
    let geo = ins.geometry()?;
    let ino = resolve(ins, &geo, t)?;
    let raw = read_raw(ins, &geo, ino)?;
    let Ok(i) = Inode::from_slot(&raw) else {
        return corrupt(format_args!("inode {ino}: slot too small"));
    };
    let seed = geo.checksum_seed();
    let (group, index) = geo
        .inode_group(ino)
        .or_else(|e| corrupt(format_args!("inode {ino}: {}", e.msg())))?;
    let ibm_block = geo.inode_bitmap_block(group).unwrap_or(0);
    let in_use = bitmap_test(&ins.read(ibm_block)?[..], index);
    let mode = i.mode.get();
    let ft = i.file_type();
    let o = &mut *ins.out;
    writeln!(o, "Inode: {ino} (group {group}, index {index})")?;
    writeln!(
        o,
        "In use (inode bitmap): {}",
        if in_use { "yes" } else { "no" }
    )?;
    writeln!(
        o,
        "Type: {}   Mode: 0{mode:06o} (permissions {:04o})",
        ft.map_or("invalid", file_type_name),
        mode & 0o7777
    )?;
    writeln!(o, "Owner: uid {}, gid {}", i.uid.get(), i.gid.get())?;
    writeln!(o, "Size: {} bytes", i.size.get())?;
    writeln!(
        o,
        "Blocks: {} (4096-byte blocks: data, indirect and xattr)",
        i.blocks.get()
    )?;
    writeln!(o, "Links: {}", i.links_count.get())?;
    writeln!(o, "Flags: {}", flag_names(u64::from(i.flags.get()), FLAGS))?;
    writeln!(o, "Generation: {}", i.generation.get())?;
    for (name, t) in [
        ("Access", i.atime()),
        ("Modify", i.mtime()),
        ("Change", i.ctime()),
        ("Create", i.crtime()),
    ] {
        writeln!(
            o,
            "{name} time: {}.{:09} ({})",
            t.sec,
            t.nsec,
            utc(t.sec, Some(t.nsec))
        )?;
    }
    if matches!(ft, Some(FT_CHRDEV | FT_BLKDEV)) {
        let rdev = i.rdev.get();
        let (major, minor) = (
            (rdev & 0xfff00) >> 8,
            (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
        );
        writeln!(o, "Device: {major}:{minor} (rdev 0x{rdev:x})")?;
    }
    if i.next_orphan.get() != 0 {
        writeln!(o, "Next orphan: inode {}", i.next_orphan.get())?;
    }
    let csum_ok = verify_inode_checksum(seed, ino, &raw).is_ok();
    let csum = ins.verdict(csum_ok);
    writeln!(ins.out, "Checksum: 0x{:08x} {csum}", i.checksum.get())?;
    let validity = match Inode::validate(ino, &raw, &geo) {
        Ok(_) => "ok".to_string(),
        // A free slot holds whatever was left there: only an inode in use must be valid.
        Err(e) if !in_use => format!("not valid ({}), but the slot is free", e.msg()),
        Err(e) => format!("{}: {}", ins.bad(), e.msg()),
    };
    writeln!(ins.out, "Validation: {validity}")?;
    show_xattrs(ins, &geo, &raw, i)?;
    if let Some(target) = i.inline_data() {
        writeln!(
            ins.out,
            "Fast symlink target ({} bytes inline): \"{}\"",
            target.len(),
            escape_name(target)
        )?;
        return Ok(());
    }
    if i.is_special() {
        return Ok(());
    }
    let map = block_map(ins, &geo, ino, i)?;
    if ft == Some(FT_SYMLINK) {
        if let Some(b) = map.phys(0) {
            let blk = ins.read(b)?;
            let len = usize::try_from(i.size.get()).unwrap_or(0).min(blk.len());
            writeln!(ins.out, "Symlink target: \"{}\"", escape_name(&blk[..len]))?;
        }
    }
    show_map(ins, i, &map)
}

fn show_xattrs(ins: &mut Inspector, geo: &Geometry, raw: &[u8], i: &Inode) -> Res<()> {
    let area = inline_area(raw);
    let used = usize::from(i.extra_size.get());
    if !area.is_empty() {
        writeln!(
            ins.out,
            "Inline xattr area: {used} of {} bytes used",
            raw.len() - INODE_BASE_SIZE
        )?;
        list_xattrs(ins, area, used)?;
    }
    let xb = i.xattr_block.get();
    if xb == 0 {
        writeln!(ins.out, "Xattr block: none")?;
        return Ok(());
    }
    if let Err(e) = geo.check_data_block(xb) {
        let bad = ins.bad();
        writeln!(ins.out, "Xattr block: {xb} {bad}: {}", e.msg())?;
        return Ok(());
    }
    let blk = ins.read(xb)?;
    let x = XattrBlock::from_block(&blk);
    match x.validate(geo.checksum_seed(), xb) {
        Ok(()) => {
            writeln!(ins.out, "Xattr block: {xb} ok, {} bytes used", x.used())?;
            list_xattrs(
                ins,
                &blk[aegisfs_format::xattr::XATTR_BLOCK_HEADER_SIZE..],
                x.used(),
            )
        }
        Err(e) => {
            let bad = ins.bad();
            writeln!(ins.out, "Xattr block: {xb} {bad}: {}", e.msg())?;
            Ok(())
        }
    }
}

/// The names and value sizes of the entries of an xattr area.
fn list_xattrs(ins: &mut Inspector, area: &[u8], used: usize) -> Res<()> {
    for e in entries(area, used) {
        match e {
            Ok(e) => writeln!(
                ins.out,
                "  xattr {}{} ({} bytes)",
                index_prefix(e.index),
                escape_name(e.name),
                e.value.len()
            )?,
            Err(err) => {
                let bad = ins.bad();
                writeln!(ins.out, "  xattr area {bad}: {}", err.msg())?;
                break;
            }
        }
    }
    Ok(())
}

fn show_map(ins: &mut Inspector, i: &Inode, map: &Mapping) -> Res<()> {
    let o = &mut *ins.out;
    let direct: Vec<String> = i.direct.iter().map(|p| p.get().to_string()).collect();
    writeln!(o, "Block pointers: direct [{}]", direct.join(" "))?;
    writeln!(
        o,
        "  indirect {}, double indirect {}, triple indirect {}",
        i.indirect.get(),
        i.double_indirect.get(),
        i.triple_indirect.get()
    )?;
    let mapped: u64 = map.extents.iter().map(|e| e.len).sum();
    writeln!(
        o,
        "Block map: {mapped} data block(s) in {} extent(s), {} indirect block(s)",
        map.extents.len(),
        map.nodes.len()
    )?;
    let size_blocks = i.size.get().div_ceil(BLOCK_SIZE_U64);
    let mut next = 0u64;
    for e in &map.extents {
        if e.lblk > next {
            writeln!(
                o,
                "  hole {next}..{} ({} blocks)",
                e.lblk - 1,
                e.lblk - next
            )?;
        }
        writeln!(
            o,
            "  data {}..{} -> {}..{} ({} blocks){}",
            e.lblk,
            e.lblk + e.len - 1,
            e.phys,
            e.phys + e.len - 1,
            e.len,
            if e.unwritten { " unwritten" } else { "" }
        )?;
        next = e.lblk + e.len;
    }
    if size_blocks > next {
        writeln!(
            o,
            "  hole {next}..{} ({} blocks, to the end of the file)",
            size_blocks - 1,
            size_blocks - next
        )?;
    }
    let names = ["", "indirect", "double indirect", "triple indirect"];
    for n in &map.nodes {
        let span = PTRS_PER_BLOCK_U64.pow(u32::from(n.level));
        let csum = if n.checksum_ok {
            "checksum ok".to_string()
        } else {
            "checksum BAD, not followed".to_string()
        };
        writeln!(
            ins.out,
            "  tree {} block {} covers {}..{} {csum}",
            names.get(usize::from(n.level)).unwrap_or(&"?"),
            n.block,
            n.first,
            n.first + span - 1
        )?;
    }
    ins.problems += map.nodes.iter().filter(|n| !n.checksum_ok).count() as u64;
    for why in map.problems() {
        let bad = ins.bad();
        writeln!(ins.out, "  {bad} {why}")?;
    }
    Ok(())
}
