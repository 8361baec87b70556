// SPDX-License-Identifier: GPL-2.0

//! Inodes: reading them from the inode table into the inode cache, writing them back, and
//! deleting them when the last link and the last user are gone.

use super::alloc;
use super::blockmap;
use super::dirindex::HeadNames;
use super::superblock::corruption;
use crate::checksum::set_inode_checksum;
use crate::disk::{
    Inode as DiskInode, Timestamp, FIRST_INO, FT_DIR, FT_REG, FT_SYMLINK, INLINE_DATA_MAX,
    INODE_FLAGS_USER, INODE_FLAG_APPEND, INODE_FLAG_DIRSYNC, INODE_FLAG_IMMUTABLE,
    INODE_FLAG_INDEX, INODE_FLAG_NOATIME, INODE_FLAG_SYNC, N_DIRECT, ROOT_INO, S_IFDIR, S_IFLNK,
    S_IFMT, S_IFREG,
};
use crate::inode::TimeField;
use crate::vfs::buffer::BufferHead;
use crate::vfs::inode::{Iget, Inode, InodeAttrs, InodeFlags, InodeKind, InodeRef, NewInode};
use crate::vfs::log::device_err;
use crate::vfs::super_block::SuperBlock;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::SetOnce;

/// Blocks allocated ahead for a file written sequentially, not yet mapped: logical blocks
/// `lblk..lblk + count` will use disk blocks `pblk..pblk + count`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Prealloc {
    pub(crate) lblk: u64,
    pub(crate) pblk: u64,
    pub(crate) count: u64,
}

/// An inode's block pointers and allocation state, under its block map lock.
#[derive(Clone, Copy)]
pub(crate) struct BlockPtrs {
    /// Direct block pointers (validated when used).
    pub(crate) direct: [u64; N_DIRECT],
    /// Roots of the single, double and triple indirect trees (validated when used).
    pub(crate) roots: [u64; 3],
    /// Where the next data block should go: right after the last one allocated.
    pub(crate) goal: u64,
    /// The logical block after the last one allocated (sequential writes are detected by
    /// it and get a [`Prealloc`]).
    pub(crate) next_lblk: u64,
    pub(crate) prealloc: Prealloc,
    /// The pointers changed: the inode must be logged once the lock is released.
    pub(crate) changed: bool,
}

impl BlockPtrs {
    pub(crate) const fn empty() -> Self {
        Self {
            direct: [0; N_DIRECT],
            roots: [0; 3],
            goal: 0,
            next_lblk: 0,
            prealloc: Prealloc {
                lblk: 0,
                pblk: 0,
                count: 0,
            },
            changed: false,
        }
    }
}

/// What AegisFS keeps about an inode besides the VFS fields and the block pointers.
pub(crate) struct InodeInfo {
    /// Part of the checksums of the inode's indirect and directory blocks.
    pub(crate) generation: u32,
    /// Whether data pointers may carry the UNWRITTEN bit (regular files only).
    pub(crate) unwritten_ok: bool,
    /// Whether the target is inline ([`InodeInfo::link`]): a fast symlink.
    pub(crate) inline_link: bool,
    /// The inode flags users see (`FS_*_FL` numbering), for `FS_IOC_GETFLAGS`.
    pub(crate) user_flags: AtomicU32,
    /// A directory with a hash index (`INDEX` flag); set under the directory's lock.
    pub(crate) dir_indexed: AtomicBool,
    /// The names an indexed directory's head may hold, once a lookup has read the head.
    pub(crate) head_names: SetOnce<KBox<HeadNames>>,
    /// Creation time, for `statx` birth time.
    pub(crate) crtime: Timestamp,
    /// A fast symlink's target, NUL terminated (`i_link` points here).
    pub(crate) link: [u8; InodeInfo::LINK_BUFFER_SIZE],
    /// Directory block where the last lookup found its name: lookups in `readdir` order
    /// (like `ls -l`) then find the next name without scanning the directory from the start.
    pub(crate) lookup_start: AtomicU64,
    /// Whether corruption in the inode's blocks was already logged.
    pub(crate) corruption_reported: AtomicBool,
    /// The last transaction that changed the inode, and the last that changed it in a way
    /// `fdatasync` must wait for (not only timestamps).
    pub(crate) sync_seq: AtomicU64,
    pub(crate) datasync_seq: AtomicU64,
    /// The transaction whose ordered data list holds the inode.
    pub(crate) ordered_seq: AtomicU64,
    /// Its last name was removed (it is not a temporary file, which `linkat` may name):
    /// nothing can read its data after a crash, so the data need not precede any commit.
    pub(crate) unlinked: AtomicBool,
    /// The allocation flags saved by the handle `write_begin` leaves open for `write_end`.
    pub(crate) write_nofs: AtomicU32,
    /// The buffered write in progress (from `write_begin` to `write_end`, under the inode
    /// lock): the blocks it overwrites whole end before `write_whole_end`, and
    /// `fresh_start..fresh_end` were allocated by it, on disk from `fresh_block` on, ahead
    /// of the page cache's `get_block` calls for them (see
    /// [`crate::fs::file::get_block_write`]).
    pub(crate) write_whole_end: AtomicU64,
    pub(crate) fresh_block: AtomicU64,
    pub(crate) fresh_start: AtomicU64,
    pub(crate) fresh_end: AtomicU64,
}

impl InodeInfo {
    pub(crate) const LINK_BUFFER_SIZE: usize = INLINE_DATA_MAX + 1;

    /// The state of a freshly allocated inode, before it is read.
    pub(crate) fn empty() -> Self {
        Self {
            generation: 0,
            unwritten_ok: false,
            inline_link: false,
            user_flags: AtomicU32::new(0),
            dir_indexed: AtomicBool::new(false),
            head_names: SetOnce::new(),
            crtime: Timestamp::new(0, 0),
            link: [0; Self::LINK_BUFFER_SIZE],
            lookup_start: AtomicU64::new(0),
            corruption_reported: AtomicBool::new(false),
            sync_seq: AtomicU64::new(0),
            datasync_seq: AtomicU64::new(0),
            ordered_seq: AtomicU64::new(0),
            unlinked: AtomicBool::new(false),
            write_nofs: AtomicU32::new(0),
            write_whole_end: AtomicU64::new(0),
            fresh_block: AtomicU64::new(0),
            fresh_start: AtomicU64::new(0),
            fresh_end: AtomicU64::new(0),
        }
    }
}

/// Returns inode `ino`, reading and validating it if it is not cached.
pub(crate) fn iget(sb: &SuperBlock, ino: u32) -> Result<InodeRef> {
    match sb.iget(ino)? {
        Iget::Cached(inode) => Ok(inode),
        Iget::New(new) => read_inode(new, false),
    }
}

/// Bytes of the largest inode slot (`inode_size` 1024).
pub(super) const SLOT_MAX: usize = crate::disk::INODE_BASE_SIZE * 4;

/// Copies the inode slot at byte `offset` of inode table block `bh` into `dst`, which is as
/// long as a slot (EUCLEAN when the slot is not inside the block).
pub(super) fn copy_slot(bh: &BufferHead, offset: usize, dst: &mut [u8]) -> Result {
    bh.read_locked(|data| {
        offset
            .checked_add(dst.len())
            .and_then(|end| data.get(offset..end))
            .map(|slot| dst.copy_from_slice(slot))
    })
    .ok_or(EUCLEAN)
}

/// Returns the inode a file handle names (NFS export, `open_by_handle_at`): inode `ino` if
/// it is in use and has generation `generation` (0: any, as for the parent of a handle
/// that carries none), else ESTALE.
///
/// The number comes from user space or the network, so nothing about it is trusted: a
/// number out of range, a reserved inode, a free inode or a deleted one is ESTALE, not
/// corruption, and nothing is read before the inode bitmap says the inode is in use. A
/// file deleted while still open stays in the cache with its links at 0 and is returned,
/// as ext4 does; its number cannot be reused while it is cached.
pub(crate) fn iget_handle(sb: &SuperBlock, ino: u64, generation: u32) -> Result<InodeRef> {
    let ino = u32::try_from(ino).map_err(|_| ESTALE)?;
    if (ino < FIRST_INO && ino != ROOT_INO) || ino > sb.info().geometry().inodes_count() {
        return Err(ESTALE);
    }
    let inode = match sb.iget(ino)? {
        Iget::Cached(inode) => inode,
        Iget::New(new) => read_inode(new, true)?,
    };
    if generation != 0 && inode.info().generation != generation {
        return Err(ESTALE);
    }
    Ok(inode)
}

/// Inode table blocks read at once when an inode's block is not cached: 512 inodes, as
/// many as ext4's default `inode_readahead_blks` (32) reads of its 256-byte inodes. A cold
/// `stat` of 100 000 files took 11 % less time than with 32 blocks; 128 gained nothing
/// more.
const INODE_TABLE_READAHEAD: u64 = 64;

/// Reads and validates a new inode. With `handle` (the number came from a file handle,
/// [`iget_handle`]), a free or deleted inode is ESTALE rather than corruption.
fn read_inode(new: NewInode, handle: bool) -> Result<InodeRef> {
    let sb = new.sb();
    let ino = new.ino();
    let geo = sb.info().geometry();
    let loc = geo
        .inode_location(ino)
        .map_err(|e| corruption(sb, ino, e.msg()))?;
    if !alloc::inode_in_use(sb, loc.group, loc.index)? {
        if handle {
            return Err(ESTALE);
        }
        return Err(corruption(
            sb,
            ino,
            "directory entry refers to a free inode",
        ));
    }
    // Inodes are mostly looked up near each other (a directory's files were made one after
    // another): a read of the table reads the next blocks of the group along, as ext4 does.
    let table_end = geo
        .inode_table_block(loc.group)
        .map_or(loc.block, |t| t + geo.inode_table_blocks());
    let count = table_end
        .saturating_sub(loc.block)
        .clamp(1, INODE_TABLE_READAHEAD);
    let bh = sb.bread_ahead(loc.block, count as u32)?;
    let mut raw = [0u8; SLOT_MAX];
    let size = usize::from(geo.inode_size());
    let raw = raw.get_mut(..size).ok_or(EUCLEAN)?;
    copy_slot(&bh, loc.offset, raw)?;
    drop(bh);
    if handle {
        // A slot being handed to a new file is zeroed before the inode is set up: a
        // handle of the number's previous user is stale, like one of a deleted file.
        let slot = DiskInode::from_slot(raw).map_err(|_| EUCLEAN)?;
        if slot.mode.get() == 0 && slot.links_count.get() == 0 {
            return Err(ESTALE);
        }
    }
    let disk = DiskInode::validate(ino, raw, geo).map_err(|e| corruption(sb, ino, e.msg()))?;
    let nlink = disk.links_count.get();
    // A handle to a deleted file, even one still on the orphan list (deleted while open,
    // not yet freed), is stale.
    if nlink == 0 && handle {
        return Err(ESTALE);
    }
    // Only an orphan (deleted while open when the system stopped) may have no links.
    if nlink == 0 && !sb.info().orphans().lock().contains(&ino) {
        return Err(corruption(sb, ino, "deleted inode is still referenced"));
    }

    let mut info = InodeInfo::empty();
    info.generation = disk.generation.get();
    let mut map = BlockPtrs::empty();
    for (dst, src) in map.direct.iter_mut().zip(disk.direct.iter()) {
        *dst = src.get();
    }
    map.roots = [
        disk.indirect.get(),
        disk.double_indirect.get(),
        disk.triple_indirect.get(),
    ];
    info.crtime = disk.crtime();
    info.user_flags = AtomicU32::new(disk.flags.get() & INODE_FLAGS_USER);
    // The format allows the flag on directories only.
    info.dir_indexed = AtomicBool::new(disk.flags.get() & INODE_FLAG_INDEX != 0);

    let kind = match disk.file_type() {
        Some(FT_REG) => InodeKind::Regular,
        Some(FT_DIR) => InodeKind::Directory,
        Some(FT_SYMLINK) => match disk.inline_data() {
            Some(target) => {
                for (dst, src) in info.link.iter_mut().zip(target) {
                    *dst = *src;
                }
                info.inline_link = true;
                map = BlockPtrs::empty();
                InodeKind::FastSymlink
            }
            None => InodeKind::SlowSymlink,
        },
        _ => InodeKind::Special {
            rdev: disk.rdev.get(),
        },
    };
    info.unwritten_ok = kind == InodeKind::Regular;

    let flags = disk.flags.get();
    let attrs = InodeAttrs {
        mode: disk.mode.get(),
        uid: disk.uid.get(),
        gid: disk.gid.get(),
        nlink,
        size: disk.size.get(),
        // Validated to at most MAX_INODE_BLOCKS, so this does not saturate in practice.
        blocks_512: disk.blocks.get().saturating_mul(8),
        atime: disk.atime(),
        mtime: disk.mtime(),
        ctime: disk.ctime(),
        generation: info.generation,
        flags: InodeFlags {
            immutable: flags & INODE_FLAG_IMMUTABLE != 0,
            append: flags & INODE_FLAG_APPEND != 0,
            noatime: flags & INODE_FLAG_NOATIME != 0,
            sync: flags & INODE_FLAG_SYNC != 0,
            dirsync: flags & INODE_FLAG_DIRSYNC != 0,
        },
    };
    Ok(new.init(&attrs, info, map, kind))
}

/// Writes `inode` into its slot of the inode table; with `sync`, also its metadata buffers,
/// and waits for both.
pub(crate) fn write_inode(inode: &Inode, sync: bool) -> Result {
    let sb = inode.sb();
    let geo = sb.info().geometry();
    let ino = inode.ino();
    let loc = geo.inode_location(ino).map_err(|_| EUCLEAN)?;
    let size = usize::from(geo.inode_size());
    let info = inode.info();
    let map = *inode.map_read();
    let (uid, gid) = inode.owner();
    let [atime, mtime, ctime] = inode.times();
    let mode = inode.mode();
    let bh = sb.bread(loc.block)?;
    super::journal::modify(sb, &bh, None, |data| -> Result {
        let raw = data.get_mut(loc.offset..loc.offset + size).ok_or(EUCLEAN)?;
        let disk = DiskInode::from_slot_mut(raw).map_err(|_| EUCLEAN)?;
        disk.mode.set(mode);
        disk.uid.set(uid);
        disk.gid.set(gid);
        disk.links_count.set(inode.nlink());
        let index = if info.dir_indexed.load(Ordering::Relaxed) {
            INODE_FLAG_INDEX
        } else {
            0
        };
        disk.flags
            .set(info.user_flags.load(Ordering::Relaxed) & INODE_FLAGS_USER | index);
        disk.generation.set(info.generation);
        disk.set_time(TimeField::Atime, atime);
        disk.set_time(TimeField::Mtime, mtime);
        disk.set_time(TimeField::Ctime, ctime);
        disk.set_time(TimeField::Crtime, info.crtime);
        let special = !matches!(mode & S_IFMT, S_IFREG | S_IFDIR | S_IFLNK);
        disk.rdev.set(if special { inode.rdev() } else { 0 });
        if info.inline_link {
            let len = info
                .link
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(INLINE_DATA_MAX);
            disk.set_inline_data(info.link.get(..len).unwrap_or(&[]))
                .map_err(|_| EUCLEAN)?;
            // The target takes no block, but an xattr block counts.
            disk.blocks.set(inode.blocks_512() / 8);
        } else {
            disk.size.set(inode.size());
            disk.blocks.set(inode.blocks_512() / 8);
            for (dst, src) in disk.direct.iter_mut().zip(map.direct.iter()) {
                dst.set(*src);
            }
            disk.indirect.set(map.roots[0]);
            disk.double_indirect.set(map.roots[1]);
            disk.triple_indirect.set(map.roots[2]);
        }
        set_inode_checksum(geo.checksum_seed(), ino, raw).map_err(|_| EUCLEAN)
    })?;
    if sync {
        inode.sync_metadata_buffers()?;
        bh.sync()?;
    }
    Ok(())
}

/// The VFS marked `inode` dirty (`datasync`: not only its timestamps): with a journal, the
/// inode is copied into its inode table block in the running transaction now, so that it
/// commits with the changes that go with it.
pub(crate) fn dirtied(inode: &Inode, datasync: bool) {
    let sb = inode.sb();
    if sb.info().journal().is_none() || sb.is_read_only() || inode.ino() == 0 || inode.is_bad() {
        return;
    }
    let result = super::journal::start(sb).and_then(|_handle| write_inode(inode, false));
    match result {
        Ok(()) => {
            let sequence = super::journal::running_sequence(sb);
            inode.info().sync_seq.store(sequence, Ordering::Relaxed);
            if datasync {
                inode.info().datasync_seq.store(sequence, Ordering::Relaxed);
            }
        }
        // After a shutdown nothing is logged any more, by design.
        Err(_) if sb.info().is_shutdown() => {}
        Err(e) => device_err!(
            sb.name(),
            "inode {}: error {} logging it",
            inode.ino(),
            e.to_errno()
        ),
    }
}

/// `write_inode`: with a journal the inode is already in a transaction, which a
/// synchronous write commits; without one, the inode is written into its block.
pub(crate) fn write_back(inode: &Inode, sync: bool) -> Result {
    let sb = inode.sb();
    if sb.info().journal().is_none() {
        return write_inode(inode, sync);
    }
    if sync {
        super::journal::commit_sequence(sb, inode.info().sync_seq.load(Ordering::Relaxed))?;
    }
    Ok(())
}

/// `fsync`: the file's data is written; this makes its metadata durable (`datasync`: only
/// what reading the data needs).
pub(crate) fn sync(inode: &Inode, datasync: bool) -> Result {
    let sb = inode.sb();
    if sb.info().is_shutdown() {
        return Err(EIO);
    }
    if sb.info().journal().is_none() {
        write_inode(inode, true)?;
        return sb.flush();
    }
    let info = inode.info();
    let sequence = if datasync {
        info.datasync_seq.load(Ordering::Relaxed)
    } else {
        info.sync_seq.load(Ordering::Relaxed)
    };
    if !super::journal::commit_sequence(sb, sequence)? {
        // Nothing to commit, but the data just written may sit in the device's cache.
        sb.flush()?;
    }
    Ok(())
}

/// Called when the last reference to `inode` goes (its page cache is already gone): a file
/// without links is deleted, its blocks and inode number freed; otherwise only blocks
/// allocated ahead are given back.
pub(crate) fn evict(inode: &Inode) {
    let sb = inode.sb();
    if inode.is_bad() || inode.ino() == 0 {
        return;
    }
    let delete = inode.nlink() == 0 && !sb.is_read_only();
    let result = if delete {
        delete_inode(inode)
    } else {
        blockmap::discard_prealloc(inode, &mut inode.map_write())
    };
    if let Err(e) = result {
        if sb.info().is_shutdown() {
            // An unfinished deletion is left to the orphan list.
            return;
        }
        device_err!(
            sb.name(),
            "inode {}: error {} while {}",
            inode.ino(),
            e.to_errno(),
            if delete {
                "deleting it"
            } else {
                "releasing its reservation"
            }
        );
    }
}

fn delete_inode(inode: &Inode) -> Result {
    let sb = inode.sb();
    let dir = inode.mode() & S_IFMT == S_IFDIR;
    // Its own transactions: a large file takes several.
    if !inode.info().inline_link {
        blockmap::truncate_blocks(inode, 0)?;
    }
    let _handle = super::journal::start(sb)?;
    inode.set_size(0);
    super::xattr::delete(inode)?;
    write_inode(inode, false)?;
    alloc::free_inode(sb, inode.ino(), dir)?;
    super::orphan::remove(inode)
}

/// Creates the inode of a new file of `mode` in `dir` (with `nlink` links, `rdev` for
/// devices, `link` the target of a fast symlink): allocates its number near `dir` (spread
/// out for directories) and sets it up, `I_NEW` until the caller instantiates it.
pub(crate) fn new_inode(
    idmap: *mut kernel::bindings::mnt_idmap,
    dir: &Inode,
    mode: u16,
    rdev: u32,
    link: Option<&[u8]>,
) -> Result<NewInode> {
    let sb = dir.sb();
    let mut new = sb.new_inode(idmap, dir, mode)?;
    let acls = new.inherit_acls(dir)?;
    let mode = new.mode();
    let is_dir = mode & S_IFMT == S_IFDIR;
    let ino = alloc::alloc_inode(sb, dir, is_dir)?;
    if let Err(e) = new.insert(ino) {
        // The number is ours: nobody else has seen it.
        alloc::free_inode(sb, ino, is_dir)?;
        return Err(e);
    }
    let mut info = InodeInfo::empty();
    info.generation = kernel_random_u32();
    // Like ext4: a new file inherits these flags of its directory (`dirsync` only by
    // directories).
    let inherited = dir.info().user_flags.load(Ordering::Relaxed)
        & (INODE_FLAG_SYNC | INODE_FLAG_NOATIME | crate::disk::INODE_FLAG_NODUMP)
        | if is_dir {
            dir.info().user_flags.load(Ordering::Relaxed) & INODE_FLAG_DIRSYNC
        } else {
            0
        };
    info.user_flags = AtomicU32::new(inherited);
    // `setup` sets every time, the creation time too, to now.
    let now = Timestamp::default();
    let kind = match mode & S_IFMT {
        S_IFREG => InodeKind::Regular,
        S_IFDIR => InodeKind::Directory,
        S_IFLNK => match link {
            Some(target) if target.len() <= INLINE_DATA_MAX => {
                for (dst, src) in info.link.iter_mut().zip(target) {
                    *dst = *src;
                }
                info.inline_link = true;
                InodeKind::FastSymlink
            }
            _ => InodeKind::SlowSymlink,
        },
        _ => InodeKind::Special { rdev },
    };
    info.unwritten_ok = kind == InodeKind::Regular;
    let attrs = InodeAttrs {
        mode,
        uid: 0,
        gid: 0,
        nlink: if is_dir { 2 } else { 1 },
        size: if info.inline_link {
            link.map_or(0, |l| l.len() as u64)
        } else {
            0
        },
        blocks_512: 0,
        atime: now,
        mtime: now,
        ctime: now,
        generation: info.generation,
        flags: InodeFlags {
            immutable: false,
            append: false,
            noatime: inherited & INODE_FLAG_NOATIME != 0,
            sync: inherited & INODE_FLAG_SYNC != 0,
            dirsync: inherited & INODE_FLAG_DIRSYNC != 0,
        },
    };
    new.setup(&attrs, info, kind);
    super::acl::init(new.inode(), acls)?;
    Ok(new)
}

fn kernel_random_u32() -> u32 {
    crate::vfs::random_u32()
}

/// `FS_IOC_SETFLAGS` / `FS_IOC_FSSETXATTR` (the VFS holds the inode lock and checked the
/// capability to change the immutable and append-only flags): sets the user-visible flags,
/// EOPNOTSUPP for flags AegisFS does not keep.
pub(crate) fn set_user_flags(inode: &Inode, flags: u32) -> Result {
    if flags & !INODE_FLAGS_USER != 0 {
        return Err(EOPNOTSUPP);
    }
    inode.info().user_flags.store(flags, Ordering::Relaxed);
    inode.set_vfs_flags(InodeFlags {
        immutable: flags & INODE_FLAG_IMMUTABLE != 0,
        append: flags & INODE_FLAG_APPEND != 0,
        noatime: flags & INODE_FLAG_NOATIME != 0,
        sync: flags & INODE_FLAG_SYNC != 0,
        dirsync: flags & INODE_FLAG_DIRSYNC != 0,
    });
    inode.touch(false);
    inode.mark_dirty();
    Ok(())
}
