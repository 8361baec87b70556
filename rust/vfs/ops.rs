// SPDX-License-Identifier: GPL-2.0

//! The operation tables AegisFS gives the VFS, and the C-callable functions in them.
//!
//! Each function turns its raw arguments into the safe types of this layer and forwards to
//! the filesystem logic in `crate::fs`.

use super::buffer::MapBuffer;
use super::ffi;
use super::fs_type;
use super::inode::{AegisInode, Inode};
use super::super_block::SuperBlock;
use crate::disk::Timestamp;
use crate::fs;
use core::ptr::{null_mut, NonNull};
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
        put_super: Some(put_super),
        statfs: Some(statfs),
        show_options: Some(show_options),
        ..pin_init::zeroed()
    });

// `fsync` has nothing to write on a read-only filesystem, but must succeed; leases are
// refused unless the filesystem offers `setlease`.
pub(super) static FILE_OPS: Table<bindings::file_operations> = Table(bindings::file_operations {
    open: Some(bindings::generic_file_open),
    llseek: Some(file_llseek),
    read_iter: Some(bindings::generic_file_read_iter),
    mmap_prepare: Some(bindings::generic_file_readonly_mmap_prepare),
    splice_read: Some(bindings::filemap_splice_read),
    fsync: Some(bindings::noop_fsync),
    setlease: Some(ffi::generic_setlease),
    ..pin_init::zeroed()
});

pub(super) static DIR_OPS: Table<bindings::file_operations> = Table(bindings::file_operations {
    llseek: Some(bindings::generic_file_llseek),
    read: Some(bindings::generic_read_dir),
    iterate_shared: Some(iterate_shared),
    fsync: Some(bindings::noop_fsync),
    setlease: Some(ffi::generic_setlease),
    ..pin_init::zeroed()
});

pub(super) static ADDRESS_SPACE_OPS: Table<bindings::address_space_operations> =
    Table(bindings::address_space_operations {
        read_folio: Some(read_folio),
        readahead: Some(readahead),
        bmap: Some(bmap),
        ..pin_init::zeroed()
    });

pub(super) static FILE_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        getattr: Some(getattr),
        fileattr_get: Some(fileattr_get),
        fiemap: Some(fiemap),
        ..pin_init::zeroed()
    });

pub(super) static DIR_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        lookup: Some(lookup),
        getattr: Some(getattr),
        fileattr_get: Some(fileattr_get),
        ..pin_init::zeroed()
    });

pub(super) static FAST_SYMLINK_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        get_link: Some(bindings::simple_get_link),
        getattr: Some(getattr),
        ..pin_init::zeroed()
    });

pub(super) static SLOW_SYMLINK_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        get_link: Some(bindings::page_get_link),
        getattr: Some(getattr),
        ..pin_init::zeroed()
    });

pub(super) static SPECIAL_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        getattr: Some(getattr),
        ..pin_init::zeroed()
    });

fn errno(result: Result) -> c_int {
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
    unsafe { bindings::inode_init_once(Opaque::cast_into(&raw const (*aegis).vfs_inode)) }
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
    // slab constructor initialised its `vfs_inode`.
    unsafe {
        (&raw mut (*aegis).info).write(fs::inode::InodeInfo::empty());
        Opaque::cast_into(&raw const (*aegis).vfs_inode)
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
    // SAFETY: `inode` came from `alloc_inode`, so it is embedded in an object of `cache`.
    unsafe { bindings::kmem_cache_free(cache.as_ptr(), AegisInode::from_vfs(inode).cast()) }
}

/// # Safety
///
/// `sb` must be an AegisFS superblock being unmounted (its inodes are already evicted).
unsafe extern "C" fn put_super(sb: *mut bindings::super_block) {
    // Drop the device's cached blocks: their buffers carry our "checksum verified" bits,
    // which must not survive into the next mount (the device may be written in between).
    // SAFETY: The caller guarantees `sb` is live; its block device is open until
    // `kill_block_super` returns.
    unsafe { bindings::invalidate_bdev((*sb).s_bdev) }
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
    if let Some(option) = fs::superblock::show_errors_option(sb) {
        // SAFETY: `seq` is valid; `option` is a NUL-terminated static string.
        unsafe { ffi::__seq_puts(seq, option.as_char_ptr()) };
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
}

impl DirEmitter {
    /// The position: the byte offset in the directory of the next entry to emit.
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
    // INVARIANT: `ctx` is valid for this call.
    let mut emitter = DirEmitter { ctx };
    errno(fs::dir::iterate(inode, &mut emitter))
}

/// # Safety
///
/// `dir` must be a live AegisFS directory inode and `dentry` a valid negative dentry.
unsafe extern "C" fn lookup(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    _flags: c_uint,
) -> *mut bindings::dentry {
    // SAFETY: The caller guarantees `dir` is a live AegisFS inode.
    let dir = unsafe { Inode::from_raw(dir) };
    let mut len = 0u32;
    // SAFETY: The caller guarantees `dentry` is valid; its name is stable during lookup.
    let name = unsafe { ffi::aegisfs_vfs_dentry_name(dentry, &mut len) };
    // SAFETY: `d_name.name` is valid for `d_name.len` bytes.
    let name = unsafe { core::slice::from_raw_parts(name, len as usize) };
    let inode = match fs::namei::lookup(dir, name) {
        Ok(Some(inode)) => inode.into_raw(),
        Ok(None) => null_mut(),
        // SAFETY: `ERR_PTR` only encodes the error number.
        Err(e) => return unsafe { bindings::ERR_PTR(e.to_errno() as c_long) }.cast(),
    };
    // SAFETY: `dentry` is valid; `d_splice_alias` takes over our reference on `inode`.
    unsafe { bindings::d_splice_alias(inode, dentry) }
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
    // SAFETY: `stat` is valid for writes.
    unsafe {
        (*stat).btime = bindings::timespec64 {
            tv_sec: sec,
            tv_nsec: c_long::try_from(nsec).unwrap_or(0),
        };
        (*stat).result_mask |= bindings::STATX_BTIME;
    }
    0
}

/// `FS_IOC_GETFLAGS` and `FS_IOC_FSGETXATTR`: the inode flags.
///
/// # Safety
///
/// Called by the VFS with a positive dentry of an AegisFS file or directory and a valid
/// `file_kattr`.
unsafe extern "C" fn fileattr_get(
    dentry: *mut bindings::dentry,
    fa: *mut bindings::file_kattr,
) -> c_int {
    // SAFETY: The caller guarantees the dentry is positive, with a live AegisFS inode.
    let inode = unsafe { Inode::from_raw((*dentry).d_inode) };
    // SAFETY: The caller guarantees `fa` is valid for writes.
    unsafe { ffi::fileattr_fill_flags(fa, inode.info().user_flags) };
    0
}

/// The `get_block` callback of the page cache: maps logical blocks of a file to disk blocks.
///
/// # Safety
///
/// `inode` must be a live AegisFS inode and `bh` a valid buffer head to map.
unsafe extern "C" fn get_block(
    inode: *mut bindings::inode,
    block: bindings::sector_t,
    bh: *mut bindings::buffer_head,
    create: c_int,
) -> c_int {
    if create != 0 {
        return EROFS.to_errno();
    }
    // SAFETY: The caller guarantees `inode` is a live AegisFS inode.
    let inode = unsafe { Inode::from_raw(inode) };
    // SAFETY: The caller guarantees `bh` is valid during this call.
    let Some(mut map) = (unsafe { MapBuffer::from_raw(bh) }) else {
        return EINVAL.to_errno();
    };
    match fs::blockmap::map_blocks(inode, block, map.wanted_blocks()) {
        Ok(Some(run)) => {
            // SAFETY: The superblock is the live one the inode belongs to.
            unsafe { map.map(inode.sb().as_ptr(), run.start, run.count) };
            0
        }
        Ok(None) => 0,
        Err(e) => e.to_errno(),
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

/// `FIEMAP` flags (include/uapi/linux/fiemap.h).
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;

/// `FS_IOC_FIEMAP`: the extents of a regular file from the block map. `FIEMAP_FLAG_SYNC`
/// has nothing to write on a read-only filesystem; other flags are refused by
/// `fiemap_prep`.
///
/// # Safety
///
/// Called by the VFS with a live AegisFS regular file inode and a valid `fieinfo`.
unsafe extern "C" fn fiemap(
    vfs_inode: *mut bindings::inode,
    fieinfo: *mut bindings::fiemap_extent_info,
    start: u64,
    len: u64,
) -> c_int {
    let mut len = len;
    // SAFETY: The caller passes a live inode and a valid `fieinfo`; `len` is a local.
    let ret = unsafe { ffi::fiemap_prep(vfs_inode, fieinfo, start, &mut len, FIEMAP_FLAG_SYNC) };
    if ret != 0 {
        return ret;
    }
    // SAFETY: The caller guarantees `vfs_inode` is a live AegisFS inode.
    let inode = unsafe { Inode::from_raw(vfs_inode) };
    let block = crate::disk::BLOCK_SIZE_U64;
    errno(fs::blockmap::fiemap(inode, start, len, |ext, last| {
        let mut flags = 0;
        if ext.unwritten {
            flags |= FIEMAP_EXTENT_UNWRITTEN;
        }
        if last {
            flags |= FIEMAP_EXTENT_LAST;
        }
        // SAFETY: `fieinfo` is valid for this call; the kernel copies the extent to user
        // space.
        let ret = unsafe {
            ffi::fiemap_fill_next_extent(
                fieinfo,
                ext.lblk.saturating_mul(block),
                ext.pblk.saturating_mul(block),
                ext.count.saturating_mul(block),
                flags,
            )
        };
        if ret < 0 {
            Err(Error::from_errno(ret))
        } else {
            Ok(ret == 1)
        }
    }))
}
