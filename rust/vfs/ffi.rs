// SPDX-License-Identifier: GPL-2.0

//! C functions absent from `kernel::bindings`: exported kernel functions, and the wrappers
//! and tables of `helpers.c` (static inlines and the fs_context types bindgen leaves opaque).

use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_uint, c_void};

// Kernel structs that bindgen made opaque (or that contain opaque members) are zero-sized
// in Rust; only pointers to them cross the boundary, so their layout does not matter.
#[allow(improper_ctypes)]
unsafe extern "C" {
    // Exported by the kernel.
    pub(crate) fn crc32c(crc: u32, p: *const c_void, len: usize) -> u32;
    pub(crate) fn mpage_read_folio(
        folio: *mut bindings::folio,
        get_block: bindings::get_block_t,
    ) -> c_int;
    pub(crate) fn mpage_readahead(
        rac: *mut bindings::readahead_control,
        get_block: bindings::get_block_t,
    );
    pub(crate) fn fileattr_fill_flags(fa: *mut bindings::file_kattr, flags: u32);
    pub(crate) fn generic_setlease(
        file: *mut bindings::file,
        arg: c_int,
        lease: *mut *mut bindings::file_lease,
        private: *mut *mut c_void,
    ) -> c_int;
    pub(crate) fn generic_block_bmap(
        mapping: *mut bindings::address_space,
        block: bindings::sector_t,
        get_block: bindings::get_block_t,
    ) -> bindings::sector_t;
    pub(crate) fn fiemap_prep(
        inode: *mut bindings::inode,
        fieinfo: *mut bindings::fiemap_extent_info,
        start: u64,
        len: *mut u64,
        supported_flags: u32,
    ) -> c_int;
    pub(crate) fn fiemap_fill_next_extent(
        fieinfo: *mut bindings::fiemap_extent_info,
        logical: u64,
        phys: u64,
        len: u64,
        flags: u32,
    ) -> c_int;
    pub(crate) fn __seq_puts(m: *mut bindings::seq_file, s: *const c_char);
    pub(crate) fn aegisfs_vfs_write_begin(
        iocb: *const bindings::kiocb,
        mapping: *mut bindings::address_space,
        pos: bindings::loff_t,
        len: c_uint,
        foliop: *mut *mut bindings::folio,
        get_block: bindings::get_block_t,
    ) -> c_int;
    pub(crate) fn generic_write_end(
        iocb: *const bindings::kiocb,
        mapping: *mut bindings::address_space,
        pos: bindings::loff_t,
        len: c_uint,
        copied: c_uint,
        folio: *mut bindings::folio,
        fsdata: *mut c_void,
    ) -> c_int;
    pub(crate) fn __mpage_writepages(
        mapping: *mut bindings::address_space,
        wbc: *mut bindings::writeback_control,
        get_block: bindings::get_block_t,
        write_folio: *const c_void,
    ) -> c_int;
    pub(crate) fn block_dirty_folio(
        mapping: *mut bindings::address_space,
        folio: *mut bindings::folio,
    ) -> bool;
    pub(crate) fn block_invalidate_folio(folio: *mut bindings::folio, offset: usize, len: usize);
    pub(crate) fn block_is_partially_uptodate(
        folio: *mut bindings::folio,
        from: usize,
        count: usize,
    ) -> bool;
    pub(crate) fn generic_error_remove_folio(
        mapping: *mut bindings::address_space,
        folio: *mut bindings::folio,
    ) -> c_int;
    pub(crate) fn set_cached_acl(
        inode: *mut bindings::inode,
        type_: c_int,
        acl: *mut bindings::posix_acl,
    );

    // rust/vfs/helpers.c
    pub(crate) static aegisfs_fs_parameters: bindings::fs_parameter_spec;
    pub(crate) fn aegisfs_vfs_init_fs_context(fc: *mut bindings::fs_context) -> c_int;
    pub(crate) fn aegisfs_vfs_fc_errors(fc: *const bindings::fs_context) -> u32;
    pub(crate) fn aegisfs_vfs_fc_commit(fc: *const bindings::fs_context) -> u32;
    pub(crate) fn aegisfs_vfs_fc_norecovery(fc: *const bindings::fs_context) -> bool;
    pub(crate) fn aegisfs_vfs_timer_cancel(timer: *mut c_void);
    pub(crate) fn aegisfs_vfs_fc_is_rdonly(fc: *const bindings::fs_context) -> bool;
    pub(crate) fn aegisfs_vfs_fc_reconfigure_sb(
        fc: *const bindings::fs_context,
    ) -> *mut bindings::super_block;
    pub(crate) fn aegisfs_vfs_inode_cache_create(
        size: c_uint,
        useroffset: c_uint,
        usersize: c_uint,
        ctor: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> *mut bindings::kmem_cache;
    pub(crate) fn aegisfs_vfs_alloc_inode(
        sb: *mut bindings::super_block,
        cache: *mut bindings::kmem_cache,
    ) -> *mut c_void;
    pub(crate) fn aegisfs_vfs_device_bytes(sb: *mut bindings::super_block) -> u64;
    pub(crate) fn aegisfs_vfs_set_uuid(sb: *mut bindings::super_block, uuid: *const u8);
    pub(crate) fn aegisfs_vfs_sb_bread(
        sb: *mut bindings::super_block,
        block: u64,
    ) -> *mut bindings::buffer_head;
    pub(crate) fn aegisfs_vfs_brelse(bh: *mut bindings::buffer_head);
    pub(crate) fn aegisfs_vfs_bh_data(bh: *const bindings::buffer_head) -> *const u8;
    pub(crate) fn aegisfs_vfs_bh_size(bh: *const bindings::buffer_head) -> u64;
    pub(crate) fn aegisfs_vfs_bh_folio_end(bh: *const bindings::buffer_head) -> u64;
    pub(crate) fn aegisfs_vfs_migrate_folio(
        mapping: *mut bindings::address_space,
        dst: *mut bindings::folio,
        src: *mut bindings::folio,
        mode: bindings::migrate_mode,
    ) -> c_int;
    pub(crate) fn aegisfs_vfs_set_large_folios(inode: *mut bindings::inode);
    pub(crate) fn aegisfs_vfs_map_bh(
        bh: *mut bindings::buffer_head,
        sb: *mut bindings::super_block,
        block: u64,
        size: u64,
    );
    pub(crate) fn aegisfs_vfs_buffer_verified(bh: *mut bindings::buffer_head, kind: c_uint)
        -> bool;
    pub(crate) fn aegisfs_vfs_set_buffer_verified(bh: *mut bindings::buffer_head, kind: c_uint);
    pub(crate) fn aegisfs_vfs_set_owner(inode: *mut bindings::inode, uid: u32, gid: u32);
    pub(crate) fn aegisfs_vfs_set_times(
        inode: *mut bindings::inode,
        atime: i64,
        atime_nsec: u32,
        mtime: i64,
        mtime_nsec: u32,
        ctime: i64,
        ctime_nsec: u32,
    );
    pub(crate) fn aegisfs_vfs_set_size(inode: *mut bindings::inode, size: i64);
    pub(crate) fn aegisfs_vfs_init_special(inode: *mut bindings::inode, mode: u16, rdev: u32);
    pub(crate) fn aegisfs_vfs_dir_hash32(file: *mut bindings::file) -> bool;
    pub(crate) fn aegisfs_vfs_dir_emit(
        ctx: *mut bindings::dir_context,
        name: *const u8,
        name_len: c_int,
        ino: u64,
        file_type: c_uint,
    ) -> bool;
    pub(crate) fn aegisfs_vfs_inode_is_new(inode: *mut bindings::inode) -> bool;
    pub(crate) fn aegisfs_vfs_cond_resched();
    pub(crate) fn aegisfs_vfs_folio_blocks(
        folio: *mut bindings::folio,
        first: *mut u64,
        count: *mut u64,
    ) -> *mut bindings::inode;
    pub(crate) fn aegisfs_vfs_set_link(inode: *mut bindings::inode, link: *mut c_char);
    pub(crate) fn aegisfs_vfs_dentry_name(
        dentry: *const bindings::dentry,
        len: *mut u32,
    ) -> *const u8;
    pub(crate) fn aegisfs_vfs_sb_getblk_zeroed(
        sb: *mut bindings::super_block,
        block: u64,
    ) -> *mut bindings::buffer_head;
    pub(crate) fn aegisfs_vfs_lock_buffer(bh: *mut bindings::buffer_head);
    pub(crate) fn aegisfs_vfs_unlock_buffer(bh: *mut bindings::buffer_head);
    pub(crate) fn aegisfs_vfs_dirty_buffer(
        bh: *mut bindings::buffer_head,
        mmb: *mut bindings::mapping_metadata_bhs,
    );
    pub(crate) fn aegisfs_vfs_sync_buffer(bh: *mut bindings::buffer_head) -> c_int;
    pub(crate) fn aegisfs_vfs_forget_block(sb: *mut bindings::super_block, block: u64);
    pub(crate) fn aegisfs_vfs_block_cached(sb: *mut bindings::super_block, block: u64) -> bool;
    pub(crate) fn aegisfs_vfs_breadahead(sb: *mut bindings::super_block, first: u64, count: u32);
    pub(crate) fn aegisfs_vfs_sb_bread_ahead(
        sb: *mut bindings::super_block,
        block: u64,
        count: u32,
    ) -> *mut bindings::buffer_head;
    pub(crate) fn aegisfs_vfs_set_buffer_new(bh: *mut bindings::buffer_head);
    pub(crate) fn aegisfs_vfs_inode_init_once(
        inode: *mut bindings::inode,
        map_lock: *mut bindings::rw_semaphore,
        xattr_lock: *mut bindings::rw_semaphore,
    );
    pub(crate) fn aegisfs_vfs_mmb_init(
        mmb: *mut bindings::mapping_metadata_bhs,
        inode: *mut bindings::inode,
    );
    pub(crate) fn aegisfs_vfs_mmb_sync(mmb: *mut bindings::mapping_metadata_bhs) -> c_int;
    pub(crate) fn aegisfs_vfs_mmb_invalidate(mmb: *mut bindings::mapping_metadata_bhs);
    pub(crate) fn aegisfs_vfs_rwsem_lock(sem: *mut bindings::rw_semaphore, write: bool);
    pub(crate) fn aegisfs_vfs_rwsem_unlock(sem: *mut bindings::rw_semaphore, write: bool);
    pub(crate) fn aegisfs_vfs_get_owner(
        inode: *const bindings::inode,
        uid: *mut u32,
        gid: *mut u32,
    );
    pub(crate) fn aegisfs_vfs_get_times(
        inode: *const bindings::inode,
        sec: *mut i64,
        nsec: *mut u32,
    );
    pub(crate) fn aegisfs_vfs_encode_rdev(inode: *const bindings::inode) -> u32;
    pub(crate) fn aegisfs_vfs_mark_inode_dirty(inode: *mut bindings::inode);
    pub(crate) fn aegisfs_vfs_touch(inode: *mut bindings::inode, mtime: bool);
    pub(crate) fn aegisfs_vfs_new_inode(
        sb: *mut bindings::super_block,
        idmap: *mut bindings::mnt_idmap,
        dir: *const bindings::inode,
        mode: u16,
    ) -> *mut bindings::inode;
    pub(crate) fn aegisfs_vfs_insert_inode(inode: *mut bindings::inode, ino: u64) -> c_int;
    pub(crate) fn aegisfs_vfs_wbc_sync(wbc: *const bindings::writeback_control) -> bool;
    pub(crate) fn aegisfs_vfs_writecount(inode: *const bindings::inode) -> c_int;
    pub(crate) fn aegisfs_vfs_capable_resource() -> bool;
    pub(crate) fn aegisfs_vfs_set_rdonly(sb: *mut bindings::super_block, rdonly: bool);
    pub(crate) fn aegisfs_vfs_sb_rdonly(sb: *const bindings::super_block) -> bool;
    pub(crate) fn aegisfs_vfs_filemap_invalidate(inode: *mut bindings::inode, lock: bool);
    pub(crate) fn aegisfs_vfs_finish_open_simple(file: *mut bindings::file) -> c_int;
    pub(crate) fn aegisfs_vfs_file_writable(file: *const bindings::file) -> bool;
    pub(crate) fn aegisfs_vfs_bh_flag(
        bh: *mut bindings::buffer_head,
        bit: c_uint,
        op: c_int,
    ) -> bool;
    pub(crate) fn aegisfs_vfs_get_bh(bh: *mut bindings::buffer_head);
    pub(crate) fn aegisfs_vfs_bh_blocknr(bh: *const bindings::buffer_head) -> u64;
    pub(crate) fn aegisfs_vfs_submit_write(bh: *mut bindings::buffer_head, flush_fua: bool);
    pub(crate) fn aegisfs_vfs_wait_write(bh: *mut bindings::buffer_head) -> c_int;
    pub(crate) fn aegisfs_vfs_issue_flush(sb: *mut bindings::super_block) -> c_int;
    pub(crate) fn aegisfs_vfs_bdev_read_only(sb: *mut bindings::super_block) -> bool;
    pub(crate) fn aegisfs_vfs_discard_granularity(sb: *mut bindings::super_block) -> u32;
    pub(crate) fn aegisfs_vfs_issue_discard(
        sb: *mut bindings::super_block,
        block: u64,
        count: u64,
    ) -> c_int;
    pub(crate) fn aegisfs_vfs_should_stop() -> bool;
    pub(crate) fn aegisfs_vfs_journal_info() -> *mut c_void;
    pub(crate) fn aegisfs_vfs_set_journal_info(info: *mut c_void);
    pub(crate) fn aegisfs_vfs_igrab(inode: *mut bindings::inode) -> *mut bindings::inode;
    pub(crate) fn aegisfs_vfs_write_ordered_data(inode: *mut bindings::inode) -> c_int;
    pub(crate) fn aegisfs_vfs_timer_new(sb: *mut bindings::super_block) -> *mut c_void;
    pub(crate) fn aegisfs_vfs_timer_arm(timer: *mut c_void, ms: c_uint);
    pub(crate) fn aegisfs_vfs_timer_free(timer: *mut c_void);
    pub(crate) fn aegisfs_vfs_nofs_save() -> c_uint;
    pub(crate) fn aegisfs_vfs_nofs_restore(flags: c_uint);
    pub(crate) fn aegisfs_vfs_capable_admin() -> bool;
    pub(crate) fn aegisfs_vfs_start_intwrite(sb: *mut bindings::super_block);
    pub(crate) fn aegisfs_vfs_end_intwrite(sb: *mut bindings::super_block);
    pub(crate) fn aegisfs_vfs_mmap_prepare(desc: *mut bindings::vm_area_desc) -> c_int;
    pub(crate) fn aegisfs_vfs_block_page_mkwrite(
        vma: *mut bindings::vm_area_struct,
        vmf: *mut bindings::vm_fault,
    ) -> c_int;
    pub(crate) fn aegisfs_vfs_fill_statfs(
        buf: *mut bindings::kstatfs,
        magic: u64,
        blocks: u64,
        bfree: u64,
        bavail: u64,
        files: u64,
        ffree: u64,
        fsid_low: u32,
        fsid_high: u32,
    );
    pub(crate) fn aegisfs_vfs_inode_lock(inode: *mut bindings::inode, lock: bool);
    pub(crate) fn aegisfs_vfs_inode_lock_shared(inode: *mut bindings::inode, lock: bool);
    pub(crate) fn aegisfs_vfs_fileattr_flags(
        fa: *const bindings::file_kattr,
        flags: *mut u32,
    ) -> c_int;
    pub(crate) fn aegisfs_vfs_zero_cached(
        inode: *mut bindings::inode,
        pos: bindings::loff_t,
        len: c_uint,
        get_block: bindings::get_block_t,
    ) -> c_int;
    pub(crate) fn aegisfs_vfs_file_open(
        inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> c_int;
    pub(crate) fn aegisfs_vfs_swap_activate(
        sis: *mut bindings::swap_info_struct,
        file: *mut bindings::file,
        span: *mut bindings::sector_t,
    ) -> c_int;
    pub(crate) fn aegisfs_vfs_dio_read(
        iocb: *mut bindings::kiocb,
        to: *mut bindings::iov_iter,
    ) -> isize;
    pub(crate) fn aegisfs_vfs_dio_write(
        iocb: *mut bindings::kiocb,
        from: *mut bindings::iov_iter,
    ) -> isize;
    pub(crate) fn aegisfs_vfs_sb_init_xattr(sb: *mut bindings::super_block, acl: bool);
    pub(crate) fn aegisfs_vfs_sb_init_export(sb: *mut bindings::super_block);
    pub(crate) fn aegisfs_vfs_set_posixacl(sb: *mut bindings::super_block, acl: bool);
    pub(crate) fn aegisfs_vfs_posixacl(sb: *const bindings::super_block) -> bool;
    pub(crate) fn aegisfs_vfs_fc_acl(fc: *const bindings::fs_context) -> u32;
    pub(crate) fn aegisfs_vfs_fc_discard(fc: *const bindings::fs_context) -> u32;
    pub(crate) fn aegisfs_vfs_fc_data_err(fc: *const bindings::fs_context) -> u32;
    pub(crate) fn aegisfs_vfs_fiemap_flags(fieinfo: *const bindings::fiemap_extent_info) -> u32;
    pub(crate) fn aegisfs_vfs_xattr_list_prefix(
        dentry: *mut bindings::dentry,
        index: c_int,
    ) -> *const c_char;
    pub(crate) fn aegisfs_vfs_acl_from_entries(
        entries: *const super::xattr::AclEntryRaw,
        count: u32,
    ) -> *mut bindings::posix_acl;
    pub(crate) fn aegisfs_vfs_acl_count(acl: *const bindings::posix_acl) -> u32;
    pub(crate) fn aegisfs_vfs_acl_to_entries(
        acl: *const bindings::posix_acl,
        out: *mut super::xattr::AclEntryRaw,
    );
    pub(crate) fn aegisfs_vfs_acl_release(acl: *mut bindings::posix_acl);
    pub(crate) fn aegisfs_vfs_acl_create(
        dir: *mut bindings::inode,
        inode: *mut bindings::inode,
        default_acl: *mut *mut bindings::posix_acl,
        acl: *mut *mut bindings::posix_acl,
    ) -> c_int;
    pub(crate) fn aegisfs_vfs_acl_update_mode(
        idmap: *mut bindings::mnt_idmap,
        inode: *mut bindings::inode,
        mode: *mut u16,
        acl: *mut *mut bindings::posix_acl,
    ) -> c_int;
    pub(crate) fn aegisfs_vfs_acl_chmod(
        idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
    ) -> c_int;
}
