// SPDX-License-Identifier: GPL-2.0

//! Registration of the filesystem type, the inode cache, and the mount entry points.

use super::ffi;
use super::inode::AegisInode;
use super::log::device_err;
use super::ops;
use super::super_block::{Device, SuperBlock};
use crate::fs;
use crate::fs::inode::InodeInfo;
use crate::fs::superblock::SbInfo;
use core::mem::offset_of;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::bindings;
use kernel::ffi::{c_int, c_ulong};
use kernel::prelude::*;
use kernel::str::CStrExt;
use kernel::types::Opaque;
use kernel::ThisModule;

/// Values of `aegisfs_vfs_fc_acl` and `aegisfs_vfs_fc_discard` (`AEGISFS_ACL_*` in
/// helpers.h): the `acl`/`noacl` and `discard`/`nodiscard` mount options.
const AEGISFS_ACL_UNSET: u32 = 0;
const AEGISFS_ACL_ON: u32 = 1;
const AEGISFS_ACL_OFF: u32 = 2;
/// Values of `aegisfs_vfs_fc_data_err` (`AEGISFS_DATA_ERR_*` in helpers.h): not given,
/// `data_err=abort` (`data_err=ignore` is 1).
const AEGISFS_DATA_ERR_UNSET: u32 = 0;
const AEGISFS_DATA_ERR_ABORT: u32 = 2;
/// Value of `aegisfs_vfs_fc_commit` for `commit=0` (`AEGISFS_COMMIT_DEFAULT` in helpers.h):
/// the default interval; 0 is "not given".
const AEGISFS_COMMIT_DEFAULT: u32 = u32::MAX;

/// The `commit=` seconds from `aegisfs_vfs_fc_commit`: 0 when not given.
fn commit_seconds(raw: u32) -> u32 {
    match raw {
        AEGISFS_COMMIT_DEFAULT => fs::journal::default_commit_seconds(),
        seconds => seconds,
    }
}

/// The filesystem type and the inode cache.
///
/// The type lives in static storage because lockdep requires the lock class keys inside
/// `file_system_type` to be static; the inode cache pointer sits next to it so that
/// `alloc_inode` can find it from any superblock.
struct FsTypeStorage {
    fs_type: Opaque<bindings::file_system_type>,
    inode_cache: AtomicPtr<bindings::kmem_cache>,
}

// SAFETY: `fs_type` is written only by `Registration::new` before the type is registered (a
// single module init), and afterwards only by the VFS under its own locks; `inode_cache` is
// atomic.
unsafe impl Sync for FsTypeStorage {}

static STORAGE: FsTypeStorage = FsTypeStorage {
    fs_type: Opaque::zeroed(),
    inode_cache: AtomicPtr::new(null_mut()),
};

/// The inode cache, while the filesystem is registered.
pub(super) fn inode_cache() -> Option<NonNull<bindings::kmem_cache>> {
    NonNull::new(STORAGE.inode_cache.load(Ordering::Acquire))
}

/// Makes AegisFS mountable while it exists.
///
/// # Invariants
///
/// While a `Registration` exists, the inode cache exists and the filesystem type is
/// registered.
pub(crate) struct Registration {
    _private: (),
}

impl Registration {
    /// Creates the inode cache and registers the filesystem type.
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        let size = u32::try_from(size_of::<AegisInode>())?;
        // Fast symlink targets are copied to user space straight from the inode object.
        let link_offset =
            u32::try_from(offset_of!(AegisInode, info) + offset_of!(InodeInfo, link))?;
        let link_size = u32::try_from(InodeInfo::LINK_BUFFER_SIZE)?;
        // SAFETY: `init_once` matches the constructor signature and initialises objects of
        // `size` bytes, the size of `AegisInode`.
        let cache = unsafe {
            ffi::aegisfs_vfs_inode_cache_create(size, link_offset, link_size, Some(ops::init_once))
        };
        if cache.is_null() {
            return Err(ENOMEM);
        }
        if STORAGE
            .inode_cache
            .compare_exchange(null_mut(), cache, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `cache` was just created and is not used by anything.
            unsafe { bindings::kmem_cache_destroy(cache) };
            return Err(EBUSY);
        }
        let fs_type = STORAGE.fs_type.get();
        // SAFETY: Only one registration exists (checked above), and the type is not
        // registered yet, so nothing else accesses it.
        let ret = unsafe {
            (*fs_type).name = c"aegisfs".as_char_ptr();
            (*fs_type).owner = module.as_ptr();
            // Every inode operation passes the mount's idmapping on to the VFS helpers.
            (*fs_type).fs_flags = (bindings::FS_REQUIRES_DEV | bindings::FS_ALLOW_IDMAP) as c_int;
            (*fs_type).init_fs_context = Some(ffi::aegisfs_vfs_init_fs_context);
            (*fs_type).parameters = &raw const ffi::aegisfs_fs_parameters;
            (*fs_type).kill_sb = Some(kill_sb);
            bindings::register_filesystem(fs_type)
        };
        if ret != 0 {
            STORAGE.inode_cache.store(null_mut(), Ordering::Release);
            // SAFETY: No superblock could use the cache: registration failed.
            unsafe { bindings::kmem_cache_destroy(cache) };
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: The cache exists and the type is registered.
        Ok(Self { _private: () })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the type is registered. The module cannot be
        // unloaded while mounted, so no superblock exists.
        unsafe { bindings::unregister_filesystem(STORAGE.fs_type.get()) };
        let cache = STORAGE.inode_cache.swap(null_mut(), Ordering::AcqRel);
        // SAFETY: Inodes are freed after an RCU grace period; wait for those callbacks
        // before destroying the cache they return objects to.
        unsafe {
            bindings::rcu_barrier();
            bindings::kmem_cache_destroy(cache);
        }
    }
}

/// Called by `get_tree_bdev` to read the filesystem from the device.
///
/// # Safety
///
/// `sb` must be a new AegisFS superblock with an open block device, and `fc` its mount
/// context.
#[no_mangle]
unsafe extern "C" fn aegisfs_fill_super(
    sb: *mut bindings::super_block,
    fc: *mut bindings::fs_context,
) -> c_int {
    // SAFETY: The caller guarantees `sb` and `fc`.
    match unsafe { fill_super(sb, fc) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// As for [`aegisfs_fill_super`].
unsafe fn fill_super(sb: *mut bindings::super_block, fc: *mut bindings::fs_context) -> Result {
    // SAFETY: The caller guarantees `sb` is a live AegisFS superblock.
    let dev = unsafe { Device::from_raw(sb) };
    // SAFETY: `sb` is live and being set up by us.
    if unsafe { bindings::sb_set_blocksize(sb, 4096) } == 0 {
        device_err!(dev.name(), "device does not support 4096-byte blocks");
        return Err(EINVAL);
    }
    // SAFETY: The caller guarantees `fc` is the mount context.
    let (read_only, opts) = unsafe {
        (
            ffi::aegisfs_vfs_fc_is_rdonly(fc),
            fs::superblock::MountOptions {
                errors: ffi::aegisfs_vfs_fc_errors(fc),
                commit: commit_seconds(ffi::aegisfs_vfs_fc_commit(fc)),
                norecovery: ffi::aegisfs_vfs_fc_norecovery(fc),
                discard: ffi::aegisfs_vfs_fc_discard(fc) == AEGISFS_ACL_ON,
                data_err_abort: ffi::aegisfs_vfs_fc_data_err(fc) == AEGISFS_DATA_ERR_ABORT,
            },
        )
    };
    let info = fs::superblock::load(dev, opts, read_only)?;
    let uuid = info.uuid();
    let max_bytes = info.max_bytes();
    let info = KBox::new(info, GFP_KERNEL)?;
    // SAFETY: `sb` is live and not visible to others until `fill_super` returns. `SUPER_OPS`
    // is static. `s_fs_info` is freed by `kill_sb`, also when this function fails.
    unsafe {
        (*sb).s_magic = fs::superblock::MAGIC_NUMBER as c_ulong;
        (*sb).s_op = &ops::SUPER_OPS.0;
        (*sb).s_maxbytes = max_bytes;
        (*sb).s_time_gran = 1;
        (*sb).s_time_min = i64::MIN;
        (*sb).s_time_max = i64::MAX;
        // Data goes out through `mpage` and buffer heads, which tag each bio with the
        // cgroup that dirtied the folio, so writeback may be charged per cgroup.
        (*sb).s_iflags |= bindings::SB_I_CGROUPWB as c_ulong;
        ffi::aegisfs_vfs_set_uuid(sb, uuid.as_ptr());
        (*sb).s_fs_info = KBox::into_raw(info).cast();
    }
    // SAFETY: The caller guarantees `fc`; the superblock is still ours alone and has no
    // inode yet (inodes take `IOP_XATTR` from `s_xattr` when they are allocated).
    unsafe {
        let acl = ffi::aegisfs_vfs_fc_acl(fc) != AEGISFS_ACL_OFF;
        ffi::aegisfs_vfs_sb_init_xattr(sb, acl);
    }
    // SAFETY: The superblock is still ours alone; the export operations are static and
    // their callbacks need the private data set above.
    unsafe { ffi::aegisfs_vfs_sb_init_export(sb) };
    // SAFETY: `s_fs_info` now points to a valid `SbInfo` that lives until `kill_sb`.
    let sb = unsafe { SuperBlock::from_raw(sb) };
    if opts.discard {
        fs::superblock::set_discard(sb, true);
    }
    let root = fs::superblock::root_inode(sb)?;
    // SAFETY: `root` is a live inode; `d_make_root` takes our reference, also on failure.
    let dentry = unsafe { bindings::d_make_root(root.into_raw()) };
    if dentry.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: The superblock is still ours alone.
    unsafe { (*sb.as_ptr()).s_root = dentry };
    if !read_only {
        fs::superblock::write_super(sb, fs::superblock::SuperState::Mounting, true)?;
        fs::orphan::process(sb)?;
    } else if fs::orphan::head(sb)? != 0 && fs::orphan::read_only_may_process(sb) {
        process_orphans_read_only(sb)?;
    }
    Ok(())
}

/// Finishes the orphan list at a read-only mount, as ext4 does, so that a crash's unlinked
/// open files do not keep their blocks until a read-write mount: the superblock is
/// writable for as long as that takes.
fn process_orphans_read_only(sb: &SuperBlock) -> Result {
    // SAFETY: `fill_super` has not returned: the superblock is ours alone, so nothing
    // sees `SB_RDONLY` change.
    unsafe { ffi::aegisfs_vfs_set_rdonly(sb.as_ptr(), false) };
    let result = fs::orphan::process_read_only(sb);
    // SAFETY: As above.
    unsafe { ffi::aegisfs_vfs_set_rdonly(sb.as_ptr(), true) };
    result
}

/// Called for `mount -o remount`.
///
/// # Safety
///
/// `fc` must be a reconfiguration context of a mounted AegisFS filesystem.
#[no_mangle]
unsafe extern "C" fn aegisfs_reconfigure(fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: The caller guarantees `fc` reconfigures a mounted AegisFS superblock, whose
    // private data is set.
    let (sb, read_only, errors, commit, acl, discard, data_err) = unsafe {
        (
            SuperBlock::from_raw(ffi::aegisfs_vfs_fc_reconfigure_sb(fc)),
            ffi::aegisfs_vfs_fc_is_rdonly(fc),
            ffi::aegisfs_vfs_fc_errors(fc),
            ffi::aegisfs_vfs_fc_commit(fc),
            ffi::aegisfs_vfs_fc_acl(fc),
            ffi::aegisfs_vfs_fc_discard(fc),
            ffi::aegisfs_vfs_fc_data_err(fc),
        )
    };
    if acl != AEGISFS_ACL_UNSET {
        // SAFETY: The superblock is mounted and the VFS holds `s_umount`, under which it
        // changes `s_flags` too.
        unsafe { ffi::aegisfs_vfs_set_posixacl(sb.as_ptr(), acl == AEGISFS_ACL_ON) };
    }
    if discard != AEGISFS_ACL_UNSET {
        fs::superblock::set_discard(sb, discard == AEGISFS_ACL_ON);
    }
    if data_err != AEGISFS_DATA_ERR_UNSET {
        sb.info()
            .set_data_err_abort(data_err == AEGISFS_DATA_ERR_ABORT);
    }
    if commit != 0 {
        if let Some(journal) = sb.info().journal() {
            journal.set_interval(commit_seconds(commit));
        }
    }
    // Everything dirty reaches the disk before the superblock is marked clean.
    if read_only && !sb.is_read_only() {
        // SAFETY: The superblock is live and mounted; the VFS holds `s_umount`.
        let ret = unsafe { bindings::sync_filesystem(sb.as_ptr()) };
        if ret != 0 {
            return ret;
        }
    }
    match fs::superblock::reconfigure(sb, errors, read_only) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `sb` must be an AegisFS superblock being shut down.
unsafe extern "C" fn kill_sb(sb: *mut bindings::super_block) {
    // SAFETY: The caller guarantees `sb` is live until `kill_block_super` returns.
    let info = unsafe { (*sb).s_fs_info }.cast::<SbInfo>();
    // SAFETY: As above; this releases every inode and the block device.
    unsafe { bindings::kill_block_super(sb) };
    if !info.is_null() {
        // SAFETY: `fill_super` stored a `KBox<SbInfo>` here; nothing uses it any more.
        drop(unsafe { KBox::from_raw(info) });
    }
}
