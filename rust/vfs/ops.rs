// SPDX-License-Identifier: GPL-2.0

//! The operation tables AegisFS gives the VFS, and the C-callable functions in them.
//!
//! Each function turns its raw arguments into the safe types of this layer and forwards to
//! the filesystem logic in `crate::fs`. The ioctl entry points are in `ioctl`, `FIEMAP` in
//! `fiemap`.

use super::buffer::MapBuffer;
use super::ffi;
use super::fiemap;
use super::fs_type;
use super::inode::{AegisInode, Inode};
use super::ioctl;
use super::namei_ops;
use super::super_block::SuperBlock;
use super::xattr;
use crate::disk::{Timestamp, INODE_FLAG_NODUMP};
use crate::fs;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::Ordering;
use kernel::bindings;
use kernel::ffi::{c_int, c_long, c_uint, c_void};
use kernel::prelude::*;
use kernel::str::CStrExt;
use kernel::types::Opaque;

/// An operation table in static storage.
#[repr(transparent)]
pub(crate) struct Table<T>(pub(crate) T);

// SAFETY: The tables are never written; the kernel only reads them.
unsafe impl<T> Sync for Table<T> {}

pub(super) static SUPER_OPS: Table<bindings::super_operations> =
    Table(bindings::super_operations {
        alloc_inode: Some(alloc_inode),
        free_inode: Some(free_inode),
        dirty_inode: Some(dirty_inode),
        write_inode: Some(write_inode),
        evict_inode: Some(evict_inode),
        put_super: Some(put_super),
        freeze_fs: Some(freeze_fs),
        unfreeze_fs: Some(unfreeze_fs),
        shutdown: Some(shutdown),
        sync_fs: Some(sync_fs),
        statfs: Some(statfs),
        show_options: Some(show_options),
        ..pin_init::zeroed()
    });

// Leases are refused unless the filesystem offers `setlease`.
pub(super) static FILE_OPS: Table<bindings::file_operations> = Table(bindings::file_operations {
    open: Some(file_open),
    release: Some(release),
    llseek: Some(file_llseek),
    read_iter: Some(file_read_iter),
    write_iter: Some(file_write_iter),
    unlocked_ioctl: Some(ioctl::ioctl),
    fallocate: Some(fallocate),
    mmap_prepare: Some(ffi::aegisfs_vfs_mmap_prepare),
    splice_read: Some(bindings::filemap_splice_read),
    splice_write: Some(bindings::iter_file_splice_write),
    fsync: Some(fsync),
    setlease: Some(ffi::generic_setlease),
    ..pin_init::zeroed()
});

pub(super) static DIR_OPS: Table<bindings::file_operations> = Table(bindings::file_operations {
    open: Some(dir_open),
    llseek: Some(dir_llseek),
    read: Some(bindings::generic_read_dir),
    iterate_shared: Some(iterate_shared),
    unlocked_ioctl: Some(ioctl::ioctl),
    fsync: Some(fsync),
    setlease: Some(ffi::generic_setlease),
    ..pin_init::zeroed()
});

pub(super) static ADDRESS_SPACE_OPS: Table<bindings::address_space_operations> =
    Table(bindings::address_space_operations {
        dirty_folio: Some(ffi::block_dirty_folio),
        invalidate_folio: Some(ffi::block_invalidate_folio),
        read_folio: Some(read_folio),
        readahead: Some(readahead),
        write_begin: Some(write_begin),
        write_end: Some(write_end),
        writepages: Some(writepages),
        bmap: Some(bmap),
        is_partially_uptodate: Some(ffi::block_is_partially_uptodate),
        error_remove_folio: Some(ffi::generic_error_remove_folio),
        // Compaction moves cached folios (their buffer heads with them), as in ext2 and ext4.
        migrate_folio: Some(ffi::aegisfs_vfs_migrate_folio),
        // Swap files (swapon): the blocks through a report-only iomap, as in ext4.
        swap_activate: Some(ffi::aegisfs_vfs_swap_activate),
        ..pin_init::zeroed()
    });

pub(super) static FILE_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        getattr: Some(getattr),
        setattr: Some(setattr),
        fileattr_get: Some(ioctl::fileattr_get),
        fileattr_set: Some(ioctl::fileattr_set),
        fiemap: Some(fiemap::fiemap),
        listxattr: Some(xattr::listxattr),
        get_inode_acl: Some(xattr::get_inode_acl),
        set_acl: Some(xattr::set_acl),
        ..pin_init::zeroed()
    });

pub(super) static DIR_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        lookup: Some(namei_ops::lookup),
        create: Some(namei_ops::create),
        link: Some(namei_ops::link),
        unlink: Some(namei_ops::unlink),
        symlink: Some(namei_ops::symlink),
        mkdir: Some(namei_ops::mkdir),
        rmdir: Some(namei_ops::rmdir),
        mknod: Some(namei_ops::mknod),
        rename: Some(namei_ops::rename),
        tmpfile: Some(namei_ops::tmpfile),
        getattr: Some(getattr),
        setattr: Some(setattr),
        fileattr_get: Some(ioctl::fileattr_get),
        fileattr_set: Some(ioctl::fileattr_set),
        listxattr: Some(xattr::listxattr),
        get_inode_acl: Some(xattr::get_inode_acl),
        set_acl: Some(xattr::set_acl),
        ..pin_init::zeroed()
    });

pub(super) static FAST_SYMLINK_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        get_link: Some(bindings::simple_get_link),
        getattr: Some(getattr),
        setattr: Some(setattr),
        listxattr: Some(xattr::listxattr),
        ..pin_init::zeroed()
    });

pub(super) static SLOW_SYMLINK_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        get_link: Some(bindings::page_get_link),
        getattr: Some(getattr),
        setattr: Some(setattr),
        listxattr: Some(xattr::listxattr),
        ..pin_init::zeroed()
    });

pub(super) static SPECIAL_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        getattr: Some(getattr),
        setattr: Some(setattr),
        listxattr: Some(xattr::listxattr),
        get_inode_acl: Some(xattr::get_inode_acl),
        set_acl: Some(xattr::set_acl),
        ..pin_init::zeroed()
    });

pub(super) fn errno(result: Result) -> c_int {
    match result {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Slab constructor of the inode cache: runs once per object, not per allocation.
///
/// # Safety
///
/// `object` must point to an uninitialised `AegisInode` of the inode cache.
pub(super) unsafe extern "C" fn init_once(object: *mut c_void) {
    let aegis = object.cast::<AegisInode>();
    // SAFETY: The caller guarantees `object` is an `AegisInode`-sized slab object.
    unsafe {
        ffi::aegisfs_vfs_inode_init_once(
            Opaque::cast_into(&raw const (*aegis).vfs_inode),
            (*aegis).map_lock.get(),
            (*aegis).xattr_lock.get(),
        )
    }
}

/// # Safety
///
/// `sb` must be a live AegisFS superblock (the VFS calls this from `new_inode`/`iget`).
unsafe extern "C" fn alloc_inode(sb: *mut bindings::super_block) -> *mut bindings::inode {
    let Some(cache) = fs_type::inode_cache() else {
        return null_mut();
    };
    // SAFETY: `sb` is live and `cache` is the inode cache, alive while the filesystem is
    // registered (which it is while a superblock exists).
    let aegis = unsafe { ffi::aegisfs_vfs_alloc_inode(sb, cache.as_ptr()) }.cast::<AegisInode>();
    if aegis.is_null() {
        return null_mut();
    }
    // SAFETY: `aegis` is a fresh object of the inode cache, so it is valid for writes; the
    // slab constructor initialised its `vfs_inode` and `map_lock`.
    unsafe {
        (&raw mut (*aegis).info).write(fs::inode::InodeInfo::empty());
        (*aegis).map.get().write(fs::inode::BlockPtrs::empty());
        let vfs_inode = Opaque::cast_into(&raw const (*aegis).vfs_inode);
        ffi::aegisfs_vfs_mmb_init((*aegis).mmb.get(), vfs_inode);
        vfs_inode
    }
}

/// # Safety
///
/// `inode` must be an inode `alloc_inode` returned, no longer used (called after an RCU
/// grace period).
unsafe extern "C" fn free_inode(inode: *mut bindings::inode) {
    let Some(cache) = fs_type::inode_cache() else {
        return;
    };
    // SAFETY: `inode` came from `alloc_inode`, so it is embedded in an object of `cache`
    // whose `info` `alloc_inode` (or `fill`, over the empty one) initialised; nobody uses
    // the inode any more, so its `info` may be dropped and the object freed.
    unsafe {
        let aegis = AegisInode::from_vfs(inode);
        core::ptr::drop_in_place(&raw mut (*aegis).info);
        bindings::kmem_cache_free(cache.as_ptr(), aegis.cast())
    }
}

/// # Safety
///
/// `sb` must be an AegisFS superblock being unmounted (its inodes are already evicted).
unsafe extern "C" fn put_super(sb: *mut bindings::super_block) {
    // SAFETY: The caller guarantees `sb` is a mounted AegisFS superblock; its private data
    // lives until `kill_sb`.
    let sbr = unsafe { SuperBlock::from_raw(sb) };
    fs::journal::stop_timer(sbr);
    // After a shutdown the disk is left as it was: the next mount recovers.
    if !sbr.is_read_only() && !sbr.info().is_shutdown() {
        let flushed = fs::journal::flush(sbr);
        if let Err(e) = flushed.and_then(|()| {
            fs::superblock::write_super(sbr, fs::superblock::SuperState::Clean, true)
        }) {
            super::log::device_err!(
                sbr.name(),
                "error {} writing the superblock at unmount",
                e.to_errno()
            );
        }
    }
    // Drop the device's cached blocks: their buffers carry our "checksum verified" bits,
    // which must not survive into the next mount (the device may be written in between).
    // SAFETY: The caller guarantees `sb` is live; its block device is open until
    // `kill_block_super` returns.
    unsafe { bindings::invalidate_bdev((*sb).s_bdev) }
}

/// # Safety
///
/// `inode` must be a live AegisFS inode being written back with `wbc`.
unsafe extern "C" fn write_inode(
    inode: *mut bindings::inode,
    wbc: *mut bindings::writeback_control,
) -> c_int {
    // SAFETY: The caller guarantees `inode` is a live, set-up AegisFS inode and `wbc` valid.
    let (inode, sync) = unsafe { (Inode::from_raw(inode), ffi::aegisfs_vfs_wbc_sync(wbc)) };
    errno(fs::inode::write_back(inode, sync))
}

/// # Safety
///
/// `inode` must be a live AegisFS inode the VFS is marking dirty.
unsafe extern "C" fn dirty_inode(inode: *mut bindings::inode, flags: c_int) {
    // SAFETY: The caller guarantees `inode` is a live AegisFS inode; inodes are marked dirty
    // only once they are set up.
    let inode = unsafe { Inode::from_raw(inode) };
    let datasync = flags as u32 & bindings::inode_state_flags_enum_I_DIRTY_DATASYNC != 0;
    fs::inode::dirtied(inode, datasync);
}

/// # Safety
///
/// `inode` must be an AegisFS inode being evicted (no other user left).
unsafe extern "C" fn evict_inode(vfs_inode: *mut bindings::inode) {
    // SAFETY: The caller guarantees the inode is being evicted; its page cache may go.
    unsafe { bindings::truncate_inode_pages_final(&raw mut (*vfs_inode).i_data) };
    // SAFETY: The inode is live until `clear_inode`; it was set up by `NewInode` (or is
    // bad, which `evict` checks first).
    let inode = unsafe { Inode::from_raw(vfs_inode) };
    // A deletion writes: it waits while the filesystem is frozen, as other writers do.
    // SAFETY: As above.
    let sb = unsafe { (*vfs_inode).i_sb };
    let delete = inode.nlink() == 0;
    if delete {
        // SAFETY: `sb` is the inode's live superblock.
        unsafe { ffi::aegisfs_vfs_start_intwrite(sb) };
    }
    fs::inode::evict(inode);
    if delete {
        // SAFETY: Pairs with the `aegisfs_vfs_start_intwrite` above.
        unsafe { ffi::aegisfs_vfs_end_intwrite(sb) };
    }
    // SAFETY: As above; the metadata buffer list is ours.
    unsafe {
        ffi::aegisfs_vfs_mmb_invalidate(inode.mmb_ptr());
        bindings::clear_inode(vfs_inode);
    }
}

/// # Safety
///
/// `sb` must be a mounted AegisFS superblock.
unsafe extern "C" fn sync_fs(sb: *mut bindings::super_block, wait: c_int) -> c_int {
    // SAFETY: The caller guarantees `sb` is a mounted AegisFS superblock.
    let sb = unsafe { SuperBlock::from_raw(sb) };
    if sb.is_read_only() {
        return 0;
    }
    if let Err(e) = fs::superblock::write_super(sb, fs::superblock::SuperState::Counts, wait != 0) {
        return e.to_errno();
    }
    if wait != 0 {
        return errno(fs::journal::commit(sb));
    }
    0
}

/// `freeze_fs`: called once the VFS has stopped writers and synced the filesystem.
///
/// # Safety
///
/// `sb` must be a mounted, read-write AegisFS superblock.
unsafe extern "C" fn freeze_fs(sb: *mut bindings::super_block) -> c_int {
    // SAFETY: The caller guarantees `sb` is a mounted AegisFS superblock.
    errno(fs::superblock::freeze(unsafe { SuperBlock::from_raw(sb) }))
}

/// `unfreeze_fs`: the reverse of [`freeze_fs`], before writers start again.
///
/// # Safety
///
/// `sb` must be a mounted AegisFS superblock that [`freeze_fs`] froze.
unsafe extern "C" fn unfreeze_fs(sb: *mut bindings::super_block) -> c_int {
    // SAFETY: The caller guarantees `sb` is a mounted AegisFS superblock.
    errno(fs::superblock::unfreeze(unsafe {
        SuperBlock::from_raw(sb)
    }))
}

/// `shutdown`: the block device went away under the mounted filesystem.
///
/// # Safety
///
/// `sb` must be a mounted AegisFS superblock.
unsafe extern "C" fn shutdown(sb: *mut bindings::super_block) {
    // SAFETY: The caller guarantees `sb` is a mounted AegisFS superblock.
    fs::superblock::device_removed(unsafe { SuperBlock::from_raw(sb) });
}

/// # Safety
///
/// `dentry` must be a live dentry of a mounted AegisFS filesystem and `buf` valid for writes.
unsafe extern "C" fn statfs(dentry: *mut bindings::dentry, buf: *mut bindings::kstatfs) -> c_int {
    // SAFETY: The caller guarantees `dentry` is live; its superblock is a mounted AegisFS one.
    let sb = unsafe { SuperBlock::from_raw((*dentry).d_sb) };
    let st = fs::superblock::statfs(sb);
    // SAFETY: The caller guarantees `buf` is valid for writes.
    unsafe {
        ffi::aegisfs_vfs_fill_statfs(
            buf,
            u64::from(fs::superblock::MAGIC_NUMBER),
            st.blocks,
            st.bfree,
            st.bavail,
            st.files,
            st.ffree,
            st.fsid[0],
            st.fsid[1],
        )
    };
    0
}

/// # Safety
///
/// `seq` must be a valid seq_file and `root` the root dentry of a mounted AegisFS filesystem.
unsafe extern "C" fn show_options(
    seq: *mut bindings::seq_file,
    root: *mut bindings::dentry,
) -> c_int {
    // SAFETY: The caller guarantees `root` is live; its superblock is a mounted AegisFS one.
    let sb = unsafe { SuperBlock::from_raw((*root).d_sb) };
    // SAFETY: The superblock is mounted.
    if !unsafe { ffi::aegisfs_vfs_posixacl(sb.as_ptr()) } {
        // SAFETY: `seq` is valid; the option is a NUL-terminated static string.
        unsafe { ffi::__seq_puts(seq, c",noacl".as_char_ptr()) };
    }
    if sb.info().discard() {
        // SAFETY: `seq` is valid; the option is a NUL-terminated static string.
        unsafe { ffi::__seq_puts(seq, c",discard".as_char_ptr()) };
    }
    if sb.info().data_err_abort() {
        // SAFETY: `seq` is valid; the option is a NUL-terminated static string.
        unsafe { ffi::__seq_puts(seq, c",data_err=abort".as_char_ptr()) };
    }
    if let Some(option) = fs::superblock::show_errors_option(sb) {
        // SAFETY: `seq` is valid; `option` is a NUL-terminated static string.
        unsafe { ffi::__seq_puts(seq, option.as_char_ptr()) };
    }
    if let Some(seconds) = fs::superblock::show_commit_option(sb) {
        // ",commit=" and up to 20 digits, NUL terminated.
        let mut text = [0u8; 32];
        let prefix = b",commit=";
        text[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 20];
        let mut n = seconds;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 || len == digits.len() {
                break;
            }
        }
        for (i, d) in digits[..len].iter().rev().enumerate() {
            text[prefix.len() + i] = *d;
        }
        // SAFETY: `seq` is valid; `text` is NUL terminated (its last bytes stay 0).
        unsafe { ffi::__seq_puts(seq, text.as_ptr().cast()) };
    }
    0
}

/// Linux `DT_*` values by AegisFS file type (`FT_*`, 0..=7).
const DT_BY_FILE_TYPE: [u8; 8] = [0, 8, 4, 2, 6, 1, 12, 10];

/// A `readdir` in progress: the position and the callback that takes entries.
///
/// # Invariants
///
/// `ctx` is the valid `dir_context` of the running `iterate_shared` call.
pub(crate) struct DirEmitter {
    ctx: NonNull<bindings::dir_context>,
    hash32: bool,
}

impl DirEmitter {
    /// Whether positions must fit in 32 bits (a 32-bit caller, or nfsd asking for it).
    pub(crate) fn hash32(&self) -> bool {
        self.hash32
    }

    /// The position of the next entry to emit (`fs::dir` says what positions are).
    pub(crate) fn pos(&self) -> i64 {
        // SAFETY: By the type invariants `ctx` is valid.
        unsafe { (*self.ctx.as_ptr()).pos }
    }

    pub(crate) fn set_pos(&mut self, pos: i64) {
        // SAFETY: By the type invariants `ctx` is valid and ours to update.
        unsafe { (*self.ctx.as_ptr()).pos = pos }
    }

    /// Emits an entry at the current position; false when the caller's buffer is full.
    pub(crate) fn emit(&mut self, name: &[u8], ino: u32, file_type: u8) -> bool {
        let dt = DT_BY_FILE_TYPE
            .get(usize::from(file_type))
            .copied()
            .unwrap_or(0);
        let Ok(len) = c_int::try_from(name.len()) else {
            return false;
        };
        // SAFETY: By the type invariants `ctx` is valid; `name` is valid for `len` bytes.
        unsafe {
            ffi::aegisfs_vfs_dir_emit(
                self.ctx.as_ptr(),
                name.as_ptr(),
                len,
                u64::from(ino),
                c_uint::from(dt),
            )
        }
    }
}

/// # Safety
///
/// `file` must be an open AegisFS directory and `ctx` a valid `dir_context`.
unsafe extern "C" fn iterate_shared(
    file: *mut bindings::file,
    ctx: *mut bindings::dir_context,
) -> c_int {
    let Some(ctx) = NonNull::new(ctx) else {
        return EINVAL.to_errno();
    };
    // SAFETY: The caller guarantees `file` is an open AegisFS directory; its inode is live
    // while the file is open.
    let inode = unsafe { Inode::from_raw((*file).f_inode) };
    // SAFETY: The caller passes an open file.
    let hash32 = unsafe { ffi::aegisfs_vfs_dir_hash32(file) };
    // INVARIANT: `ctx` is valid for this call.
    let mut emitter = DirEmitter { ctx, hash32 };
    errno(fs::dir::iterate(inode, &mut emitter))
}

/// # Safety
///
/// Called by the VFS: `path` is a valid path to an AegisFS inode and `stat` valid for writes.
unsafe extern "C" fn getattr(
    idmap: *mut bindings::mnt_idmap,
    path: *const bindings::path,
    stat: *mut bindings::kstat,
    request_mask: u32,
    _query_flags: c_uint,
) -> c_int {
    // SAFETY: The caller guarantees `path` is valid; its dentry is positive.
    let vfs_inode = unsafe { (*(*path).dentry).d_inode };
    // SAFETY: `vfs_inode` is a live AegisFS inode; `stat` is valid for writes.
    unsafe {
        bindings::generic_fillattr(idmap, request_mask, vfs_inode, stat);
        bindings::generic_fill_statx_attr(vfs_inode, stat);
    }
    // SAFETY: `vfs_inode` is a live AegisFS inode that was set up by `NewInode::init`.
    let inode = unsafe { Inode::from_raw(vfs_inode) };
    let Timestamp { sec, nsec } = inode.info().crtime;
    // `generic_fill_statx_attr` reports immutable and append-only from `i_flags`; nodump
    // lives only in AegisFS's own flags (ext4 reports it the same way).
    let nodump = inode.info().user_flags.load(Ordering::Relaxed) & INODE_FLAG_NODUMP != 0;
    // SAFETY: `stat` is valid for writes.
    unsafe {
        (*stat).attributes_mask |= u64::from(bindings::STATX_ATTR_NODUMP);
        if nodump {
            (*stat).attributes |= u64::from(bindings::STATX_ATTR_NODUMP);
        }
        (*stat).btime = bindings::timespec64 {
            tv_sec: sec,
            tv_nsec: c_long::try_from(nsec).unwrap_or(0),
        };
        (*stat).result_mask |= bindings::STATX_BTIME;
    }
    0
}

/// `read_iter` of a regular file: `O_DIRECT` through iomap, the rest through the page
/// cache.
///
/// # Safety
///
/// Called by the VFS with a valid `kiocb` of an open AegisFS regular file and `iov_iter`.
unsafe extern "C" fn file_read_iter(
    iocb: *mut bindings::kiocb,
    to: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: The caller passes a valid `kiocb` of an open AegisFS file, whose inode is
    // live while it is open.
    let (direct, inode) = unsafe {
        (
            (*iocb).ki_flags as u32 & bindings::IOCB_DIRECT != 0,
            Inode::from_raw((*(*iocb).ki_filp).f_inode),
        )
    };
    if inode.sb().info().is_shutdown() {
        return EIO.to_errno() as isize;
    }
    if direct {
        // SAFETY: The caller passes valid arguments of an AegisFS regular file, whose iomap
        // operations `aegisfs_vfs_dio_read` uses.
        unsafe { ffi::aegisfs_vfs_dio_read(iocb, to) }
    } else {
        // SAFETY: The caller passes valid arguments.
        unsafe { bindings::generic_file_read_iter(iocb, to) }
    }
}

/// `write_iter` of a regular file: `O_DIRECT` through iomap (falling back to the page
/// cache for what it cannot write directly), the rest through the page cache.
///
/// # Safety
///
/// As for [`file_read_iter`].
unsafe extern "C" fn file_write_iter(
    iocb: *mut bindings::kiocb,
    from: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: The caller passes a valid `kiocb` of an open AegisFS file, whose inode is
    // live while it is open.
    let (direct, inode) = unsafe {
        (
            (*iocb).ki_flags as u32 & bindings::IOCB_DIRECT != 0,
            Inode::from_raw((*(*iocb).ki_filp).f_inode),
        )
    };
    if let Err(e) = fs::file::check_write(inode) {
        return e.to_errno() as isize;
    }
    if direct {
        // SAFETY: As in `file_read_iter`.
        unsafe { ffi::aegisfs_vfs_dio_write(iocb, from) }
    } else {
        // SAFETY: The caller passes valid arguments.
        unsafe { bindings::generic_file_write_iter(iocb, from) }
    }
}

/// A mapping for iomap, as `helpers.c` reads it (`struct aegisfs_iomap_extent`).
#[repr(C)]
pub(crate) struct IomapExtent {
    pblk: u64,
    count: u64,
    kind: u32,
    new: bool,
}

/// `kind` values of [`IomapExtent`] (`AEGISFS_MAP_*` in helpers.h).
const MAP_HOLE: u32 = 0;
const MAP_MAPPED: u32 = 1;
const MAP_UNWRITTEN: u32 = 2;

/// `iomap_begin` of direct I/O and of swapon (called by `helpers.c`): maps logical block
/// `lblk` and up to `max` - 1 following blocks, allocating for a write (never for swapon,
/// which only reports).
///
/// # Safety
///
/// `inode` must be a live AegisFS regular file inode under direct I/O or being activated as
/// swap, and `ext` valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn aegisfs_iomap_map(
    inode: *mut bindings::inode,
    lblk: u64,
    max: u64,
    write: bool,
    ext: *mut IomapExtent,
) -> c_int {
    // SAFETY: The caller guarantees `inode` is a live AegisFS inode.
    let inode = unsafe { Inode::from_raw(inode) };
    match fs::file::iomap_map(inode, lblk, max, write) {
        Ok(m) => {
            let kind = match m.kind {
                fs::file::IoMapKind::Hole => MAP_HOLE,
                fs::file::IoMapKind::Mapped => MAP_MAPPED,
                fs::file::IoMapKind::Unwritten => MAP_UNWRITTEN,
            };
            // SAFETY: The caller guarantees `ext` is valid for writes.
            unsafe {
                ext.write(IomapExtent {
                    pblk: m.pblk,
                    count: m.count,
                    kind,
                    new: m.new,
                })
            };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// After a direct write that failed or wrote less than it mapped (called by `helpers.c`):
/// blocks allocated past the size are freed again.
///
/// # Safety
///
/// `inode` must be a live AegisFS regular file inode, locked by the writer.
#[no_mangle]
pub(crate) unsafe extern "C" fn aegisfs_write_failed(
    inode: *mut bindings::inode,
    end: bindings::loff_t,
) {
    // SAFETY: The caller guarantees `inode` is a live AegisFS inode.
    let inode = unsafe { Inode::from_raw(inode) };
    fs::file::write_failed(inode, u64::try_from(end).unwrap_or(0));
}

/// `fallocate` of a regular file.
///
/// # Safety
///
/// Called by the VFS (`vfs_fallocate`, which checked the mode, the range and the file) with
/// an AegisFS regular file open for writing.
unsafe extern "C" fn fallocate(
    file: *mut bindings::file,
    mode: c_int,
    offset: bindings::loff_t,
    len: bindings::loff_t,
) -> c_long {
    // SAFETY: The caller passes an open file; its inode is live while it is open.
    let inode = unsafe { Inode::from_raw((*file).f_inode) };
    let _lock = inode.lock();
    let modified = || {
        // SAFETY: `file` is the open file; we hold its inode's lock, as `file_modified`
        // requires.
        let ret = unsafe { bindings::file_modified(file) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    };
    let mode = u32::try_from(mode).unwrap_or(u32::MAX);
    errno(fs::file::fallocate(inode, mode, offset, len, modified)) as c_long
}

/// The `get_block` callback of the page cache: maps logical blocks of a file to disk blocks.
///
/// # Safety
///
/// `inode` must be a live AegisFS inode and `bh` a valid buffer head to map.
pub(super) unsafe extern "C" fn get_block(
    inode: *mut bindings::inode,
    block: bindings::sector_t,
    bh: *mut bindings::buffer_head,
    create: c_int,
) -> c_int {
    // SAFETY: The caller's guarantees are those `map_buffer` needs.
    unsafe {
        map_buffer(inode, bh, |inode, map| {
            fs::blockmap::get_blocks(inode, block, map.wanted_blocks(), create != 0)
        })
    }
}

/// Maps `bh` to what `lookup` finds for the inode and the buffer (`None`: a hole, left
/// unmapped), as a `get_block` callback must.
///
/// # Safety
///
/// As for [`get_block`].
unsafe fn map_buffer(
    inode: *mut bindings::inode,
    bh: *mut bindings::buffer_head,
    lookup: impl FnOnce(&Inode, &MapBuffer) -> Result<Option<fs::blockmap::Mapped>>,
) -> c_int {
    // SAFETY: The caller guarantees `inode` is a live AegisFS inode.
    let inode = unsafe { Inode::from_raw(inode) };
    // SAFETY: The caller guarantees `bh` is valid during this call.
    let Some(mut map) = (unsafe { MapBuffer::from_raw(bh) }) else {
        return EINVAL.to_errno();
    };
    match lookup(inode, &map) {
        Ok(Some(run)) => {
            // SAFETY: The superblock is the live one the inode belongs to.
            unsafe { map.map(inode.sb().as_ptr(), run.start, run.count, run.new) };
            0
        }
        Ok(None) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The `get_block` of `write_begin`: as [`get_block`], but a hole is allocated together
/// with the holes after it that the write covers whole in the buffer's folio
/// ([`fs::file::get_block_write`]).
///
/// # Safety
///
/// As for [`get_block`].
unsafe extern "C" fn get_block_write(
    inode: *mut bindings::inode,
    block: bindings::sector_t,
    bh: *mut bindings::buffer_head,
    create: c_int,
) -> c_int {
    if create == 0 {
        // SAFETY: The caller's guarantees are those of `get_block`.
        return unsafe { get_block(inode, block, bh, create) };
    }
    // SAFETY: The caller's guarantees are those `map_buffer` needs.
    unsafe {
        map_buffer(inode, bh, |inode, map| {
            fs::file::get_block_write(inode, block, map.folio_end_block())
        })
    }
}

/// # Safety
///
/// Called by the page cache with a locked folio of an AegisFS file.
unsafe extern "C" fn read_folio(_file: *mut bindings::file, folio: *mut bindings::folio) -> c_int {
    let (mut first, mut count) = (0u64, 0u64);
    // SAFETY: The caller passes a locked folio of an AegisFS file, so its mapping and host
    // inode are live.
    let inode =
        unsafe { Inode::from_raw(ffi::aegisfs_vfs_folio_blocks(folio, &mut first, &mut count)) };
    // mpage turns a `get_block` failure into a folio that is simply not up to date, which
    // `read()` reports as EIO; checking the mapping first returns the real error instead.
    if let Err(e) = fs::blockmap::check_range(inode, first, count) {
        // SAFETY: `read_folio` must unlock the folio when it fails.
        unsafe { bindings::folio_unlock(folio) };
        return e.to_errno();
    }
    // SAFETY: The caller passes a locked folio; `get_block` matches `get_block_t`.
    unsafe { ffi::mpage_read_folio(folio, Some(get_block)) }
}

/// # Safety
///
/// Called by the page cache with a valid readahead request of an AegisFS file.
unsafe extern "C" fn readahead(rac: *mut bindings::readahead_control) {
    // SAFETY: The caller passes a valid request; `get_block` matches `get_block_t`.
    unsafe { ffi::mpage_readahead(rac, Some(get_block)) }
}

/// `FIBMAP`: the disk block of a logical block (0 for a hole or an error).
///
/// # Safety
///
/// Called by the VFS with the mapping of a live AegisFS file.
unsafe extern "C" fn bmap(
    mapping: *mut bindings::address_space,
    block: bindings::sector_t,
) -> bindings::sector_t {
    // SAFETY: The caller passes a live mapping; `get_block` matches `get_block_t`.
    unsafe { ffi::generic_block_bmap(mapping, block, Some(get_block)) }
}

/// `lseek` of a directory: any position up to the end-of-directory position of indexed
/// directories (`fs::dirindex`), which is also where `SEEK_END` goes, since their positions
/// are hashes, not bytes.
///
/// # Safety
///
/// Called by the VFS with an open AegisFS directory.
unsafe extern "C" fn dir_llseek(
    file: *mut bindings::file,
    offset: bindings::loff_t,
    whence: c_int,
) -> bindings::loff_t {
    // SAFETY: The caller passes an open file.
    let end = if unsafe { ffi::aegisfs_vfs_dir_hash32(file) } {
        bindings::loff_t::from(i32::MAX)
    } else {
        bindings::loff_t::MAX
    };
    // SAFETY: The caller passes an open file, whose position we may set.
    unsafe { bindings::generic_file_llseek_size(file, offset, whence, end, end) }
}

/// `lseek` of a regular file: `SEEK_DATA` and `SEEK_HOLE` from the block map, the other
/// whences as `generic_file_llseek` does them.
///
/// # Safety
///
/// Called by the VFS with an open AegisFS regular file.
unsafe extern "C" fn file_llseek(
    file: *mut bindings::file,
    offset: bindings::loff_t,
    whence: c_int,
) -> bindings::loff_t {
    let data = match u32::try_from(whence) {
        Ok(bindings::SEEK_DATA) => true,
        Ok(bindings::SEEK_HOLE) => false,
        // SAFETY: The caller passes an open file.
        _ => return unsafe { bindings::generic_file_llseek(file, offset, whence) },
    };
    // SAFETY: The caller passes an open AegisFS file; its inode and superblock are live
    // while it is open.
    let (vfs_inode, maxbytes) = unsafe {
        let vfs_inode = (*file).f_inode;
        (vfs_inode, (*(*vfs_inode).i_sb).s_maxbytes)
    };
    // SAFETY: `vfs_inode` is the live AegisFS inode of the open file.
    let inode = unsafe { Inode::from_raw(vfs_inode) };
    match fs::blockmap::seek_data_hole(inode, offset, data) {
        // SAFETY: The caller passes an open file, whose position we may set.
        Ok(pos) => unsafe { bindings::vfs_setpos(file, pos, maxbytes) },
        Err(e) => bindings::loff_t::from(e.to_errno()),
    }
}

/// # Safety
///
/// Called by the VFS with an AegisFS regular file being closed.
unsafe extern "C" fn release(vfs_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: The caller passes the file's live inode and the file.
    let (inode, writable) = unsafe {
        (
            Inode::from_raw(vfs_inode),
            ffi::aegisfs_vfs_file_writable(file),
        )
    };
    // `i_writecount` still counts this file.
    if writable && inode.writers() == 1 {
        return errno(fs::file::release(inode));
    }
    0
}

/// # Safety
///
/// Called by the page cache for a buffered write to an AegisFS file.
unsafe extern "C" fn write_begin(
    iocb: *const bindings::kiocb,
    mapping: *mut bindings::address_space,
    pos: bindings::loff_t,
    len: c_uint,
    foliop: *mut *mut bindings::folio,
    _fsdata: *mut *mut c_void,
) -> c_int {
    // SAFETY: The mapping's host is the live AegisFS inode being written.
    let inode = unsafe { Inode::from_raw((*mapping).host) };
    let end = u64::try_from(pos)
        .unwrap_or(0)
        .saturating_add(u64::from(len));
    errno(fs::file::write_begin(inode, end, || {
        // SAFETY: The caller passes valid arguments; `get_block_write` matches `get_block_t`.
        let ret = unsafe {
            ffi::aegisfs_vfs_write_begin(iocb, mapping, pos, len, foliop, Some(get_block_write))
        };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }))
}

/// # Safety
///
/// Called by the page cache after copying data into a folio `write_begin` returned.
unsafe extern "C" fn write_end(
    iocb: *const bindings::kiocb,
    mapping: *mut bindings::address_space,
    pos: bindings::loff_t,
    len: c_uint,
    copied: c_uint,
    folio: *mut bindings::folio,
    fsdata: *mut c_void,
) -> c_int {
    // SAFETY: The caller passes valid arguments.
    let ret = unsafe { ffi::generic_write_end(iocb, mapping, pos, len, copied, folio, fsdata) };
    // SAFETY: The mapping's host is the live AegisFS inode being written.
    let inode = unsafe { Inode::from_raw((*mapping).host) };
    let end = u64::try_from(pos)
        .unwrap_or(0)
        .saturating_add(u64::from(len));
    fs::file::write_end(inode, end, ret < 0 || (ret as c_uint) < len);
    ret
}

/// # Safety
///
/// Called by writeback with the mapping of an AegisFS file.
unsafe extern "C" fn writepages(
    mapping: *mut bindings::address_space,
    wbc: *mut bindings::writeback_control,
) -> c_int {
    // SAFETY: The mapping's host is a live AegisFS inode.
    if unsafe { Inode::from_raw((*mapping).host) }
        .sb()
        .info()
        .is_shutdown()
    {
        return EIO.to_errno();
    }
    // SAFETY: The caller passes valid arguments; `get_block` matches `get_block_t`.
    unsafe { ffi::__mpage_writepages(mapping, wbc, Some(get_block), core::ptr::null()) }
}

/// `ATTR_MODE` and `ATTR_SIZE` of `iattr.ia_valid`.
const ATTR_MODE: c_uint = 1 << 0;
const ATTR_SIZE: c_uint = 1 << 3;

/// # Safety
///
/// Called by the VFS with a positive AegisFS dentry and a valid `iattr`.
unsafe extern "C" fn setattr(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    iattr: *mut bindings::iattr,
) -> c_int {
    // SAFETY: The caller passes a positive dentry of a mounted AegisFS filesystem.
    if unsafe { SuperBlock::from_raw((*dentry).d_sb) }
        .info()
        .is_shutdown()
    {
        return EIO.to_errno();
    }
    // SAFETY: The caller passes valid arguments.
    let ret = unsafe { bindings::setattr_prepare(idmap, dentry, iattr) };
    if ret != 0 {
        return ret;
    }
    // SAFETY: The dentry is positive with a live AegisFS inode; `iattr` is valid.
    let (vfs_inode, valid, size) =
        unsafe { ((*dentry).d_inode, (*iattr).ia_valid, (*iattr).ia_size) };
    // SAFETY: As above.
    let inode = unsafe { Inode::from_raw(vfs_inode) };
    if valid & ATTR_SIZE != 0 {
        let Ok(size) = u64::try_from(size) else {
            return EINVAL.to_errno();
        };
        if let Err(e) = fs::file::set_size(inode, size) {
            return e.to_errno();
        }
    }
    // SAFETY: The caller passes valid arguments.
    unsafe { bindings::setattr_copy(idmap, vfs_inode, iattr) };
    inode.mark_dirty();
    if valid & ATTR_MODE != 0 {
        // SAFETY: The VFS holds the inode lock of the positive `dentry` during `setattr`.
        return unsafe { xattr::chmod_acl(idmap, dentry) };
    }
    0
}

/// `fsync` and `fdatasync` of files and directories.
///
/// # Safety
///
/// Called by the VFS with an open AegisFS file.
unsafe extern "C" fn fsync(
    file: *mut bindings::file,
    start: bindings::loff_t,
    end: bindings::loff_t,
    datasync: c_int,
) -> c_int {
    // SAFETY: The caller passes an open file.
    let ret = unsafe { bindings::file_write_and_wait_range(file, start, end) };
    if ret != 0 {
        return ret;
    }
    // SAFETY: The file is open, so its inode is a live AegisFS inode.
    let inode = unsafe { Inode::from_raw((*file).f_inode) };
    if let Err(e) = fs::inode::sync(inode, datasync != 0) {
        return e.to_errno();
    }
    // SAFETY: The caller passes an open file.
    unsafe { bindings::file_check_and_advance_wb_err(file) }
}

/// `open` of a regular file: EIO after a shutdown.
///
/// # Safety
///
/// Called by the VFS with a live AegisFS inode and the file being opened.
unsafe extern "C" fn file_open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: The caller passes a live AegisFS inode.
    if unsafe { Inode::from_raw(inode) }.sb().info().is_shutdown() {
        return EIO.to_errno();
    }
    // SAFETY: The caller passes valid arguments.
    unsafe { ffi::aegisfs_vfs_file_open(inode, file) }
}

/// `open` of a directory: EIO after a shutdown.
///
/// # Safety
///
/// As for [`file_open`].
unsafe extern "C" fn dir_open(inode: *mut bindings::inode, _file: *mut bindings::file) -> c_int {
    // SAFETY: The caller passes a live AegisFS inode.
    if unsafe { Inode::from_raw(inode) }.sb().info().is_shutdown() {
        return EIO.to_errno();
    }
    0
}

/// `page_mkwrite` of a shared writable mapping (called by `helpers.c` with the fault and
/// invalidate locks taken): gives the page its blocks in a handle, so that writeback never
/// allocates.
///
/// # Safety
///
/// `inode` must be the live AegisFS inode of the mapping of `vma`, and `vmf` its fault.
#[no_mangle]
unsafe extern "C" fn aegisfs_page_mkwrite_blocks(
    inode: *mut bindings::inode,
    vma: *mut bindings::vm_area_struct,
    vmf: *mut bindings::vm_fault,
) -> c_int {
    // SAFETY: The caller guarantees `inode` is live.
    let inode = unsafe { Inode::from_raw(inode) };
    let sb = inode.sb();
    if sb.info().is_shutdown() {
        return EIO.to_errno();
    }
    let handle = match fs::journal::start(sb) {
        Ok(handle) => handle,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: The caller passes the fault of a mapping of this inode.
    let ret = unsafe { ffi::aegisfs_vfs_block_page_mkwrite(vma, vmf) };
    drop(handle);
    ret
}

/// `get_block` for the C side (`block_page_mkwrite`).
///
/// # Safety
///
/// As for [`get_block`].
#[no_mangle]
unsafe extern "C" fn aegisfs_get_block(
    inode: *mut bindings::inode,
    block: bindings::sector_t,
    bh: *mut bindings::buffer_head,
    create: c_int,
) -> c_int {
    // SAFETY: The caller's guarantees are those of `get_block`.
    unsafe { get_block(inode, block, bh, create) }
}

/// Completion of an `O_DIRECT` write (called by `helpers.c`): converts the UNWRITTEN blocks
/// it wrote and grows the size.
///
/// # Safety
///
/// `inode` must be the live AegisFS inode the write went to.
#[no_mangle]
unsafe extern "C" fn aegisfs_dio_write_done(
    inode: *mut bindings::inode,
    pos: bindings::loff_t,
    size: isize,
    unwritten: bool,
) -> c_int {
    // SAFETY: The caller guarantees `inode` is live.
    let inode = unsafe { Inode::from_raw(inode) };
    let (Ok(pos), Ok(size)) = (u64::try_from(pos), u64::try_from(size)) else {
        return EINVAL.to_errno();
    };
    errno(fs::file::dio_write_done(inode, pos, size, unwritten))
}
