//! Building the new filesystem's contents: inodes, directories, file data and the group
//! metadata describing what was allocated.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::Path;

use aegisfs_format::checksum::set_inode_checksum;
use aegisfs_format::disk::{
    bitmap_set, Inode, SuperBlock, Timestamp, BLOCK_SIZE, BLOCK_SIZE_U64, FT_BLKDEV, FT_CHRDEV,
    FT_DIR, FT_FIFO, FT_REG, FT_SOCK, FT_SYMLINK, GROUP_DESC_SIZE, INLINE_DATA_MAX, LOST_FOUND_INO,
    ROOT_INO, SYMLINK_MAX, S_IFDIR,
};
use aegisfs_format::geometry::Geometry;
use aegisfs_format::inode::TimeField;
use aegisfs_format::journal::init_journal_superblock;
use aegisfs_format::xattr::{XattrBlock, XATTR_INLINE_OFFSET};

use crate::alloc::{BlockAllocator, InodeAllocator};
use crate::device::Target;
use crate::dirblocks::{dir_blocks, DirEntry};
use crate::filemap::{BlockSource, FileMap, Piece};
use crate::format_ext::{encode_dev, reserved_blocks};
use crate::rng::Rng;
use crate::sparse::{block_ranges, data_ranges};
use crate::writer::RunWriter;
use crate::xattrs;

/// Blocks given to `lost+found` up front (like mke2fs: 16 KiB), so fsck can reconnect
/// inodes without allocating.
pub const LOST_FOUND_BLOCKS: u64 = 4;

/// Permissions of the directories mkfs makes itself.
const ROOT_MODE: u16 = S_IFDIR | 0o755;
const LOST_FOUND_MODE: u16 = S_IFDIR | 0o700;

/// Owner and times of an inode taken from the host (or chosen by mkfs).
#[derive(Clone, Copy, Debug)]
pub struct Attrs {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

impl Attrs {
    fn from_meta(m: &fs::Metadata) -> Attrs {
        let ts = |s: i64, ns: i64| Timestamp::new(s, ns.clamp(0, 999_999_999) as u32);
        Attrs {
            mode: m.mode() as u16,
            uid: m.uid(),
            gid: m.gid(),
            atime: ts(m.atime(), m.atime_nsec()),
            mtime: ts(m.mtime(), m.mtime_nsec()),
            ctime: ts(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Counts of what was created, for the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub specials: u64,
    pub hard_links: u64,
    /// Blocks of file and directory data written (indirect blocks not included).
    pub data_blocks: u64,
    /// Extended attributes copied (POSIX ACLs included) and xattr blocks written.
    pub xattrs: u64,
    pub xattr_blocks: u64,
    /// Host extended attributes not copied (no AegisFS namespace for them).
    pub xattrs_skipped: u64,
    /// `pwrite` calls and bytes for data, directory and indirect blocks.
    pub data_writes: u64,
    pub data_bytes: u64,
    pub free_blocks: u64,
    pub free_inodes: u32,
}

pub struct Builder<'a> {
    geo: Geometry,
    seed: u32,
    now: Timestamp,
    target: &'a Target,
    writer: RunWriter<'a>,
    blocks: BlockAllocator,
    inos: InodeAllocator,
    /// Inodes from 1 up to the highest one made, index `ino - 1`; reserved unused ones
    /// stay zero.
    inodes: Vec<Inode>,
    rng: Rng,
    /// Host (device, inode) of files with several links -> their inode here.
    links: HashMap<(u64, u64), u32>,
    /// Host (device, inode) of the image file being written, which `-d` must not copy.
    image: Option<(u64, u64)>,
    /// Inline xattr areas (`inode_size - 256` bytes) of the inodes that have entries there.
    inline_xattrs: HashMap<u32, Vec<u8>>,
    /// Where warnings go (stderr).
    warn: &'a mut dyn Write,
    pub stats: Stats,
}

/// Directory entry file type of a host file type.
fn file_type_of(ft: fs::FileType) -> Option<u8> {
    if ft.is_dir() {
        Some(FT_DIR)
    } else if ft.is_file() {
        Some(FT_REG)
    } else if ft.is_symlink() {
        Some(FT_SYMLINK)
    } else if ft.is_char_device() {
        Some(FT_CHRDEV)
    } else if ft.is_block_device() {
        Some(FT_BLKDEV)
    } else if ft.is_fifo() {
        Some(FT_FIFO)
    } else if ft.is_socket() {
        Some(FT_SOCK)
    } else {
        None
    }
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> String {
    format!("{}: {what}: {e}", path.display())
}

impl<'a> Builder<'a> {
    pub fn new(
        geo: &Geometry,
        seed: u32,
        now: Timestamp,
        target: &'a Target,
        rng: Rng,
        warn: &'a mut dyn Write,
    ) -> Builder<'a> {
        Builder {
            geo: *geo,
            seed,
            now,
            target,
            writer: RunWriter::new(target),
            blocks: BlockAllocator::new(geo),
            inos: InodeAllocator::new(geo),
            inodes: Vec::new(),
            rng,
            links: HashMap::new(),
            image: fs::metadata(&target.path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| (m.dev(), m.ino())),
            inline_xattrs: HashMap::new(),
            warn,
            stats: Stats::default(),
        }
    }

    /// A new in-memory inode `ino` with attributes `a`, one link, a random generation and
    /// crtime = mkfs time.
    fn new_inode(&mut self, ino: u32, a: &Attrs) -> &mut Inode {
        let idx = (ino - 1) as usize;
        if self.inodes.len() <= idx {
            self.inodes.resize_with(idx + 1, Inode::zeroed);
        }
        let generation = self.rng.next_u32();
        let now = self.now;
        let inode = &mut self.inodes[idx];
        *inode = Inode::zeroed();
        inode.mode.set(a.mode);
        inode.uid.set(a.uid);
        inode.gid.set(a.gid);
        inode.links_count.set(1);
        inode.generation.set(generation);
        inode.set_time(TimeField::Atime, a.atime);
        inode.set_time(TimeField::Mtime, a.mtime);
        inode.set_time(TimeField::Ctime, a.ctime);
        inode.set_time(TimeField::Crtime, now);
        inode
    }

    fn inode(&mut self, ino: u32) -> &mut Inode {
        &mut self.inodes[(ino - 1) as usize]
    }

    /// Makes the root directory and `lost+found`, copying the tree under `source` if given.
    pub fn populate(&mut self, source: Option<&Path>) -> Result<(), String> {
        let lost_found = self.inos.alloc(true)?;
        debug_assert_eq!(lost_found, LOST_FOUND_INO);
        self.inos.note_dir(ROOT_INO);
        let own = Attrs {
            mode: ROOT_MODE,
            // SAFETY: getuid/getgid cannot fail.
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            atime: self.now,
            mtime: self.now,
            ctime: self.now,
        };
        let root_attrs = match source {
            Some(dir) => {
                let m = fs::metadata(dir).map_err(|e| io_err(dir, "cannot stat", e))?;
                if !m.is_dir() {
                    return Err(format!("{}: not a directory", dir.display()));
                }
                Attrs::from_meta(&m)
            }
            None => own,
        };
        self.new_inode(ROOT_INO, &root_attrs);
        self.stats.dirs += 1;
        let mut entries = Vec::new();
        if let Some(dir) = source {
            entries = self.copy_children(dir, ROOT_INO)?;
        }
        if !entries.iter().any(|e| e.ino == LOST_FOUND_INO) {
            let lf_attrs = Attrs {
                mode: LOST_FOUND_MODE,
                uid: 0,
                gid: 0,
                ..own
            };
            self.new_inode(LOST_FOUND_INO, &lf_attrs);
            self.stats.dirs += 1;
            self.finish_dir(LOST_FOUND_INO, ROOT_INO, Vec::new(), LOST_FOUND_BLOCKS)?;
            let root_links = self.inode(ROOT_INO).links_count.get();
            self.inode(ROOT_INO).links_count.set(root_links + 1);
            entries.push(DirEntry {
                name: b"lost+found".to_vec(),
                ino: LOST_FOUND_INO,
                file_type: FT_DIR,
            });
            entries.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.finish_dir(ROOT_INO, ROOT_INO, entries, 1)?;
        match source {
            Some(dir) => self.copy_xattrs(dir, ROOT_INO),
            None => Ok(()),
        }
    }

    /// Copies the entries of host directory `dir` into new inodes and returns the entries
    /// for directory `dir_ino`, sorted by name. At the root, a source `lost+found`
    /// directory becomes the filesystem's `lost+found`.
    fn copy_children(&mut self, dir: &Path, dir_ino: u32) -> Result<Vec<DirEntry>, String> {
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .map_err(|e| io_err(dir, "cannot read directory", e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| io_err(dir, "cannot read directory", e))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(|e| io_err(&path, "cannot stat", e))?;
            let ft = file_type_of(meta.file_type())
                .ok_or_else(|| format!("{}: unsupported file type", path.display()))?;
            if self.image == Some((meta.dev(), meta.ino())) {
                return Err(format!(
                    "{}: the source contains the image being made",
                    path.display()
                ));
            }
            let attrs = Attrs::from_meta(&meta);
            let is_lost_found = dir_ino == ROOT_INO && name.as_bytes() == b"lost+found";
            if is_lost_found && ft != FT_DIR {
                return Err(format!(
                    "{}: lost+found in the source must be a directory",
                    path.display()
                ));
            }
            let ino = if is_lost_found {
                self.new_inode(LOST_FOUND_INO, &attrs);
                self.stats.dirs += 1;
                let children = self.copy_children(&path, LOST_FOUND_INO)?;
                self.finish_dir(LOST_FOUND_INO, dir_ino, children, LOST_FOUND_BLOCKS)?;
                self.copy_xattrs(&path, LOST_FOUND_INO)?;
                LOST_FOUND_INO
            } else if ft == FT_DIR {
                let ino = self.inos.alloc(true)?;
                self.new_inode(ino, &attrs);
                self.stats.dirs += 1;
                let children = self.copy_children(&path, ino)?;
                self.finish_dir(ino, dir_ino, children, 1)?;
                self.copy_xattrs(&path, ino)?;
                ino
            } else if let Some(&ino) = (meta.nlink() > 1)
                .then(|| self.links.get(&(meta.dev(), meta.ino())))
                .flatten()
            {
                let links = self.inode(ino).links_count.get();
                self.inode(ino).links_count.set(links + 1);
                self.stats.hard_links += 1;
                ino
            } else {
                let ino = self.inos.alloc(false)?;
                self.new_inode(ino, &attrs);
                if meta.nlink() > 1 {
                    self.links.insert((meta.dev(), meta.ino()), ino);
                }
                match ft {
                    FT_REG => self.copy_file(&path, &meta, ino)?,
                    FT_SYMLINK => self.copy_symlink(&path, ino)?,
                    FT_CHRDEV | FT_BLKDEV => {
                        let dev = meta.rdev();
                        let rdev = encode_dev(libc::major(dev), libc::minor(dev));
                        self.inode(ino).rdev.set(rdev);
                        self.stats.specials += 1;
                    }
                    _ => self.stats.specials += 1,
                }
                // Once per inode: further hard links find it in `links` above.
                self.copy_xattrs(&path, ino)?;
                ino
            };
            if ft == FT_DIR {
                let links = self.inode(dir_ino).links_count.get();
                self.inode(dir_ino).links_count.set(links + 1);
            }
            entries.push(DirEntry {
                name: name.as_bytes().to_vec(),
                ino,
                file_type: ft,
            });
        }
        Ok(entries)
    }

    /// Writes directory `ino`'s blocks (`.`, `..`, then `entries`; at least `min_blocks`
    /// blocks) and completes its inode.
    fn finish_dir(
        &mut self,
        ino: u32,
        parent: u32,
        entries: Vec<DirEntry>,
        min_blocks: u64,
    ) -> Result<(), String> {
        let generation = self.inode(ino).generation.get();
        let data = dir_blocks(ino, parent, generation, self.seed, &entries, min_blocks)?;
        let nblocks = (data.len() / BLOCK_SIZE) as u64;
        let map = FileMap::plan(&[(0, nblocks)], &mut self.blocks)?;
        self.write_map(&map, ino, generation, |buf, logical| {
            let start = (logical * BLOCK_SIZE_U64) as usize;
            buf.copy_from_slice(&data[start..start + buf.len()]);
            Ok(())
        })?;
        let inode = self.inode(ino);
        // A directory is linked from its parent and its own `.`; subdirectories' `..`
        // were counted as they were added.
        inode.links_count.set(inode.links_count.get() + 1);
        inode.size.set(nblocks * BLOCK_SIZE_U64);
        apply_map(inode, &map);
        Ok(())
    }

    /// Copies the extended attributes of host file `path` (not following a symlink) to
    /// inode `ino`, whose data is already mapped: inline while they fit, then in one xattr
    /// block taken from the allocator (docs/format.md "Extended attributes").
    fn copy_xattrs(&mut self, path: &Path, ino: u32) -> Result<(), String> {
        let host = xattrs::read_host(path)?;
        if host.is_empty() {
            return Ok(());
        }
        let mapped = xattrs::map_host(path, host)?;
        for name in &mapped.skipped {
            self.stats.xattrs_skipped += 1;
            let _ = writeln!(
                self.warn,
                "{}: warning: {}: extended attribute {} not copied: AegisFS has no namespace \
                 for it",
                crate::mkfs::PROG,
                path.display(),
                String::from_utf8_lossy(name)
            );
        }
        if mapped.attrs.is_empty() {
            return Ok(());
        }
        let inline_len = usize::from(self.geo.inode_size()) - XATTR_INLINE_OFFSET;
        let placed = xattrs::place(inline_len, &mapped.attrs)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.stats.xattrs += mapped.attrs.len() as u64;
        let block = match placed.block {
            Some(mut raw) => {
                let (phys, _) = self
                    .blocks
                    .alloc_run(1)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                XattrBlock::from_block_mut(&mut raw).update_checksum(self.seed, phys);
                self.writer.write_blocks(phys, &raw[..])?;
                self.stats.xattr_blocks += 1;
                phys
            }
            None => 0,
        };
        if placed.inline_used > 0 {
            self.inline_xattrs.insert(ino, placed.inline);
        }
        let inode = self.inode(ino);
        // At most `inode_size - 256` bytes.
        inode.extra_size.set(placed.inline_used as u16);
        if block != 0 {
            inode.xattr_block.set(block);
            inode.blocks.set(inode.blocks.get() + 1);
        }
        Ok(())
    }

    fn copy_symlink(&mut self, path: &Path, ino: u32) -> Result<(), String> {
        let target = fs::read_link(path).map_err(|e| io_err(path, "cannot read link", e))?;
        let target = target.as_os_str().as_bytes().to_vec();
        self.stats.symlinks += 1;
        if target.is_empty() || target.len() as u64 > SYMLINK_MAX {
            return Err(format!(
                "{}: symlink target of {} bytes is not supported (1..={SYMLINK_MAX})",
                path.display(),
                target.len()
            ));
        }
        if target.len() <= INLINE_DATA_MAX {
            return self
                .inode(ino)
                .set_inline_data(&target)
                .map_err(|e| format!("{}: {}", path.display(), e.msg()));
        }
        let generation = self.inode(ino).generation.get();
        let map = FileMap::plan(&[(0, 1)], &mut self.blocks)?;
        self.write_map(&map, ino, generation, |buf, _| {
            buf[..target.len()].copy_from_slice(&target);
            Ok(())
        })?;
        let inode = self.inode(ino);
        inode.size.set(target.len() as u64);
        apply_map(inode, &map);
        Ok(())
    }

    fn copy_file(&mut self, path: &Path, meta: &fs::Metadata, ino: u32) -> Result<(), String> {
        self.stats.files += 1;
        let len = meta.len();
        let file = File::open(path).map_err(|e| io_err(path, "cannot open", e))?;
        let ranges = data_ranges(&file, len).map_err(|e| io_err(path, "cannot map", e))?;
        let ranges = block_ranges(&ranges, BLOCK_SIZE_U64);
        let generation = self.inode(ino).generation.get();
        let map = FileMap::plan(&ranges, &mut self.blocks)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.write_map(&map, ino, generation, |buf, logical| {
            read_full(&file, buf, logical * BLOCK_SIZE_U64).map_err(|e| io_err(path, "read", e))
        })?;
        let inode = self.inode(ino);
        inode.size.set(len);
        apply_map(inode, &map);
        Ok(())
    }

    /// Writes every piece of `map`: data blocks filled by `fill(buf, first_logical)` and the
    /// indirect blocks.
    fn write_map(
        &mut self,
        map: &FileMap,
        ino: u32,
        generation: u32,
        mut fill: impl FnMut(&mut [u8], u64) -> Result<(), String>,
    ) -> Result<(), String> {
        for piece in &map.pieces {
            match *piece {
                Piece::Data {
                    phys,
                    logical,
                    count,
                } => {
                    self.stats.data_blocks += count;
                    let step = RunWriter::max_run_blocks();
                    let mut done = 0;
                    while done < count {
                        let n = step.min(count - done);
                        let buf = self.writer.reserve(phys + done, n as usize)?;
                        fill(buf, logical + done)?;
                        done += n;
                    }
                }
                Piece::Indirect { phys, key } => {
                    let raw = map.indirect_block(key, self.seed, ino, generation);
                    self.writer.write_blocks(phys, &raw)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the inode tables, bitmaps, group descriptors, journal superblock and finally
    /// the superblock, then syncs. Returns the final statistics. `progress(done, groups)`
    /// follows the groups' bitmaps, most of what a large filesystem takes.
    pub fn finish(
        mut self,
        uuid: &[u8; 16],
        label: &[u8],
        reserved_hundredths: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Stats, String> {
        self.writer.flush()?;
        self.stats.data_writes = self.writer.writes;
        self.stats.data_bytes = self.writer.bytes;
        let geo = self.geo;
        let isz = usize::from(geo.inode_size());
        let per_block = geo.inodes_per_block() as usize;

        // Inode tables: only the blocks holding used inodes.
        for g in 0..geo.group_count() {
            let used = self.inos.used_in_group(g) as usize;
            if used == 0 {
                break;
            }
            let blocks = used.div_ceil(per_block);
            let mut table = vec![0u8; blocks * BLOCK_SIZE];
            for index in 0..used {
                let ino = g * geo.inodes_per_group() + index as u32 + 1;
                let Some(inode) = self.inodes.get(ino as usize - 1) else {
                    continue;
                };
                if inode.mode.get() == 0 {
                    continue;
                }
                let slot = &mut table[index * isz..(index + 1) * isz];
                slot[..inode.as_bytes().len()].copy_from_slice(inode.as_bytes());
                if let Some(area) = self.inline_xattrs.get(&ino) {
                    slot[XATTR_INLINE_OFFSET..].copy_from_slice(area);
                }
                set_inode_checksum(self.seed, ino, slot).map_err(|e| e.msg().to_string())?;
            }
            let start = geo.inode_table_block(g).expect("group in range");
            self.writer.write_blocks(start, &table)?;
            self.writer.flush()?;
        }

        // Bitmaps and descriptors.
        let meta = geo.group_meta_blocks();
        let mut gdt = vec![0u8; geo.gdt_blocks() as usize * BLOCK_SIZE];
        let (mut free_blocks, mut free_inodes) = (0u64, 0u32);
        for g in 0..geo.group_count() {
            // A group's two bitmaps are adjacent: one write for both.
            let mut bitmaps = [0u8; 2 * BLOCK_SIZE];
            let (bb, ib) = bitmaps.split_at_mut(BLOCK_SIZE);
            let bb: &mut [u8; BLOCK_SIZE] = bb.try_into().expect("one block");
            let ib: &mut [u8; BLOCK_SIZE] = ib.try_into().expect("one block");
            geo.init_block_bitmap(g, bb).expect("group in range");
            geo.init_inode_bitmap(g, ib).expect("group in range");
            let used_blocks = self.blocks.used_in_group(g);
            for i in meta..meta + used_blocks {
                bitmap_set(bb, i as u32, true);
            }
            let used_inodes = self.inos.used_in_group(g);
            for i in 0..used_inodes {
                bitmap_set(ib, i, true);
            }
            let mut desc = geo.new_group_desc(g).expect("group in range");
            let group_free = geo.group_data_blocks(g).expect("group in range") - used_blocks;
            // A group has fewer than 32768 blocks.
            desc.free_blocks.set(group_free as u32);
            // Group 0's count includes the reserved inodes: numbers are handed out after
            // them.
            let group_free_inodes = geo.inodes_per_group() - used_inodes;
            desc.free_inodes.set(group_free_inodes);
            desc.used_dirs.set(self.inos.dirs_in_group(g));
            desc.set_block_bitmap_checksum(self.seed, g, bb);
            desc.set_inode_bitmap_checksum(self.seed, g, ib);
            desc.update_checksum(self.seed, g);
            let (block, offset) = geo.group_desc_location(g).expect("group in range");
            let at = (block - geo.gdt_start()) as usize * BLOCK_SIZE + offset;
            gdt[at..at + GROUP_DESC_SIZE].copy_from_slice(desc.as_bytes());
            free_blocks += group_free;
            free_inodes += group_free_inodes;
            self.target.write_at(
                &bitmaps,
                geo.block_bitmap_block(g).expect("group") * BLOCK_SIZE_U64,
            )?;
            progress(u64::from(g) + 1, u64::from(geo.group_count()));
        }
        self.target
            .write_at(&gdt, geo.gdt_start() * BLOCK_SIZE_U64)?;

        if geo.journal_blocks() > 0 {
            // The journal is written at every commit: on thin storage it must never need a
            // block the pool has run out of.
            self.target.provision(
                geo.journal_start() * BLOCK_SIZE_U64,
                geo.journal_blocks() * BLOCK_SIZE_U64,
            )?;
            let mut jsb = [0u8; BLOCK_SIZE];
            init_journal_superblock(&mut jsb, self.seed, geo.journal_blocks())
                .map_err(|e| e.msg().to_string())?;
            self.target
                .write_at(&jsb, geo.journal_start() * BLOCK_SIZE_U64)?;
        }

        let mut block0 = [0u8; BLOCK_SIZE];
        let sb = SuperBlock::in_block_mut(&mut block0);
        geo.fill_superblock(sb, uuid, label, self.now.sec)
            .map_err(|e| e.msg().to_string())?;
        sb.free_blocks.set(free_blocks);
        sb.free_inodes.set(free_inodes);
        sb.reserved_blocks
            .set(reserved_blocks(geo.data_blocks(), reserved_hundredths));
        sb.update_checksum();
        self.target.write_at(&block0, 0)?;
        self.target.sync()?;
        self.stats.free_blocks = free_blocks;
        self.stats.free_inodes = free_inodes;
        Ok(self.stats)
    }
}

/// Stores a planned block map in an inode.
fn apply_map(inode: &mut Inode, map: &FileMap) {
    for (i, &p) in map.direct.iter().enumerate() {
        inode.set_direct_ptr(i, p);
    }
    inode.set_tree_root(1, map.indirect);
    inode.set_tree_root(2, map.double_indirect);
    inode.set_tree_root(3, map.triple_indirect);
    inode.blocks.set(map.blocks);
}

/// Reads `buf.len()` bytes at `offset`; bytes past the end of the file read as zero (the
/// file may also have shrunk since it was measured).
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
