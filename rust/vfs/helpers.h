/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Functions of helpers.c that the Rust side of the AegisFS VFS layer calls
 * (declared again in rust/vfs/ffi.rs), and the Rust functions helpers.c calls.
 */
#ifndef AEGISFS_VFS_HELPERS_H
#define AEGISFS_VFS_HELPERS_H

#include <linux/types.h>
#include <linux/fs.h>

struct buffer_head;
struct dentry;
struct dir_context;
struct fiemap_extent_info;
struct folio;
struct fs_context;
struct fs_parameter_spec;
struct inode;
struct kmem_cache;
struct kstatfs;
struct super_block;
struct mapping_metadata_bhs;
struct mnt_idmap;
struct rw_semaphore;
struct writeback_control;
struct file;
struct swap_info_struct;

#define AEGISFS_BLOCK_BITS 12

/* The kinds of aegisfs_iomap_extent. */
#define AEGISFS_MAP_HOLE	0
#define AEGISFS_MAP_MAPPED	1
#define AEGISFS_MAP_UNWRITTEN	2

/* A mapping for iomap (rust/vfs/ops.rs IomapExtent): @count blocks from the asked-for
 * logical block, on disk from @pblk (unless a hole); @new when just allocated. */
struct aegisfs_iomap_extent {
	u64 pblk;
	u64 count;
	u32 kind;
	bool new;
};

/* Values of aegisfs_vfs_fc_acl() and aegisfs_vfs_fc_discard(): acl / noacl, discard /
 * nodiscard. */
#define AEGISFS_ACL_UNSET	0
#define AEGISFS_ACL_ON		1
#define AEGISFS_ACL_OFF		2

/* Values of aegisfs_vfs_fc_data_err(): unset, data_err=ignore, data_err=abort. */
#define AEGISFS_DATA_ERR_IGNORE	1
#define AEGISFS_DATA_ERR_ABORT	2

/* Value of aegisfs_vfs_fc_commit() for commit=0, the default interval (0: not given). */
#define AEGISFS_COMMIT_DEFAULT	0xffffffffU

/* On-disk xattr name indexes (docs/format.md "Extended attributes"). */
#define AEGISFS_XATTR_INDEX_USER		1
#define AEGISFS_XATTR_INDEX_POSIX_ACL_ACCESS	2
#define AEGISFS_XATTR_INDEX_POSIX_ACL_DEFAULT	3
#define AEGISFS_XATTR_INDEX_TRUSTED		4
#define AEGISFS_XATTR_INDEX_SECURITY		6

/* A POSIX ACL entry as stored (rust/vfs/xattr.rs AclEntryRaw). */
struct aegisfs_acl_entry {
	u16 tag;
	u16 perm;
	u32 id;
};

struct posix_acl;

/* rust/vfs/xattr.rs */
int aegisfs_xattr_get(struct inode *inode, int index, const u8 *name, size_t name_len,
	void *buffer, size_t size);
int aegisfs_xattr_set(struct inode *inode, int index, const u8 *name, size_t name_len,
	const void *value, size_t size, int flags);

void aegisfs_vfs_sb_init_xattr(struct super_block *sb, bool acl);
void aegisfs_vfs_sb_init_export(struct super_block *sb);
void aegisfs_vfs_set_posixacl(struct super_block *sb, bool acl);
bool aegisfs_vfs_posixacl(const struct super_block *sb);
u32 aegisfs_vfs_fc_acl(const struct fs_context *fc);
u32 aegisfs_vfs_fc_discard(const struct fs_context *fc);
u32 aegisfs_vfs_fc_data_err(const struct fs_context *fc);
u32 aegisfs_vfs_fiemap_flags(const struct fiemap_extent_info *fieinfo);
const char *aegisfs_vfs_xattr_list_prefix(struct dentry *dentry, int index);
struct posix_acl *aegisfs_vfs_acl_from_entries(const struct aegisfs_acl_entry *entries,
	u32 count);
u32 aegisfs_vfs_acl_count(const struct posix_acl *acl);
void aegisfs_vfs_acl_to_entries(const struct posix_acl *acl, struct aegisfs_acl_entry *out);
void aegisfs_vfs_acl_release(struct posix_acl *acl);
int aegisfs_vfs_acl_create(struct inode *dir, struct inode *inode,
	struct posix_acl **default_acl, struct posix_acl **acl);
int aegisfs_vfs_acl_update_mode(struct mnt_idmap *idmap, struct inode *inode, u16 *mode,
	struct posix_acl **acl);
int aegisfs_vfs_acl_chmod(struct mnt_idmap *idmap, struct dentry *dentry);

/* rust/vfs/ops.rs */
int aegisfs_dio_write_done(struct inode *inode, loff_t pos, ssize_t size, bool unwritten);
int aegisfs_iomap_map(struct inode *inode, u64 lblk, u64 max, bool write,
	struct aegisfs_iomap_extent *ext);
void aegisfs_write_failed(struct inode *inode, loff_t end);

/* rust/vfs/fs_type.rs */
int aegisfs_fill_super(struct super_block *sb, struct fs_context *fc);
int aegisfs_reconfigure(struct fs_context *fc);

extern const struct fs_parameter_spec aegisfs_fs_parameters[];

int aegisfs_vfs_init_fs_context(struct fs_context *fc);
u32 aegisfs_vfs_fc_errors(const struct fs_context *fc);
bool aegisfs_vfs_fc_is_rdonly(const struct fs_context *fc);
u32 aegisfs_vfs_fc_commit(const struct fs_context *fc);
bool aegisfs_vfs_fc_norecovery(const struct fs_context *fc);
struct super_block *aegisfs_vfs_fc_reconfigure_sb(const struct fs_context *fc);
struct kmem_cache *aegisfs_vfs_inode_cache_create(unsigned int size, unsigned int useroffset,
	unsigned int usersize, void (*ctor)(void *));
void *aegisfs_vfs_alloc_inode(struct super_block *sb, struct kmem_cache *cache);
u64 aegisfs_vfs_device_bytes(struct super_block *sb);
void aegisfs_vfs_set_uuid(struct super_block *sb, const u8 *uuid);
struct buffer_head *aegisfs_vfs_sb_bread(struct super_block *sb, u64 block);
void aegisfs_vfs_brelse(struct buffer_head *bh);
const u8 *aegisfs_vfs_bh_data(const struct buffer_head *bh);
u64 aegisfs_vfs_bh_size(const struct buffer_head *bh);
u64 aegisfs_vfs_bh_folio_end(const struct buffer_head *bh);
int aegisfs_vfs_migrate_folio(struct address_space *mapping, struct folio *dst,
	struct folio *src, enum migrate_mode mode);
int aegisfs_vfs_write_begin(const struct kiocb *iocb, struct address_space *mapping, loff_t pos,
	unsigned int len, struct folio **foliop, get_block_t *get_block);
void aegisfs_vfs_set_large_folios(struct inode *inode);
void aegisfs_vfs_map_bh(struct buffer_head *bh, struct super_block *sb, u64 block, u64 size);
bool aegisfs_vfs_buffer_verified(struct buffer_head *bh, unsigned int kind);
void aegisfs_vfs_set_buffer_verified(struct buffer_head *bh, unsigned int kind);
void aegisfs_vfs_set_owner(struct inode *inode, u32 uid, u32 gid);
void aegisfs_vfs_set_times(struct inode *inode, s64 atime, u32 atime_nsec, s64 mtime,
	u32 mtime_nsec, s64 ctime, u32 ctime_nsec);
void aegisfs_vfs_set_size(struct inode *inode, s64 size);
void aegisfs_vfs_init_special(struct inode *inode, u16 mode, u32 encoded_rdev);
bool aegisfs_vfs_dir_hash32(struct file *file);
bool aegisfs_vfs_dir_emit(struct dir_context *ctx, const u8 *name, int name_len, u64 ino,
	unsigned int type);
void aegisfs_vfs_set_link(struct inode *inode, char *link);
const u8 *aegisfs_vfs_dentry_name(const struct dentry *dentry, u32 *len);
void aegisfs_vfs_fill_statfs(struct kstatfs *buf, u64 magic, u64 blocks, u64 bfree, u64 bavail,
	u64 files, u64 ffree, u32 fsid_low, u32 fsid_high);
bool aegisfs_vfs_inode_is_new(struct inode *inode);
struct inode *aegisfs_vfs_folio_blocks(struct folio *folio, u64 *first, u64 *count);
void aegisfs_vfs_cond_resched(void);
struct buffer_head *aegisfs_vfs_sb_getblk_zeroed(struct super_block *sb, u64 block);
void aegisfs_vfs_lock_buffer(struct buffer_head *bh);
void aegisfs_vfs_unlock_buffer(struct buffer_head *bh);
void aegisfs_vfs_dirty_buffer(struct buffer_head *bh, struct mapping_metadata_bhs *mmb);
int aegisfs_vfs_sync_buffer(struct buffer_head *bh);
void aegisfs_vfs_forget_block(struct super_block *sb, u64 block);
bool aegisfs_vfs_block_cached(struct super_block *sb, u64 block);
void aegisfs_vfs_breadahead(struct super_block *sb, u64 first, u32 count);
struct buffer_head *aegisfs_vfs_sb_bread_ahead(struct super_block *sb, u64 block, u32 count);
void aegisfs_vfs_set_buffer_new(struct buffer_head *bh);
void aegisfs_vfs_inode_init_once(struct inode *inode, struct rw_semaphore *map_lock,
	struct rw_semaphore *xattr_lock);
void aegisfs_vfs_mmb_init(struct mapping_metadata_bhs *mmb, struct inode *inode);
int aegisfs_vfs_mmb_sync(struct mapping_metadata_bhs *mmb);
void aegisfs_vfs_mmb_invalidate(struct mapping_metadata_bhs *mmb);
void aegisfs_vfs_rwsem_lock(struct rw_semaphore *sem, bool write);
void aegisfs_vfs_rwsem_unlock(struct rw_semaphore *sem, bool write);
void aegisfs_vfs_get_owner(const struct inode *inode, u32 *uid, u32 *gid);
void aegisfs_vfs_get_times(const struct inode *inode, s64 *sec, u32 *nsec);
u32 aegisfs_vfs_encode_rdev(const struct inode *inode);
void aegisfs_vfs_mark_inode_dirty(struct inode *inode);
void aegisfs_vfs_touch(struct inode *inode, bool mtime);
struct inode *aegisfs_vfs_new_inode(struct super_block *sb, struct mnt_idmap *idmap,
	const struct inode *dir, u16 mode);
int aegisfs_vfs_insert_inode(struct inode *inode, u64 ino);
bool aegisfs_vfs_wbc_sync(const struct writeback_control *wbc);
int aegisfs_vfs_writecount(const struct inode *inode);
bool aegisfs_vfs_capable_resource(void);
void aegisfs_vfs_set_rdonly(struct super_block *sb, bool rdonly);
bool aegisfs_vfs_sb_rdonly(const struct super_block *sb);
void aegisfs_vfs_filemap_invalidate(struct inode *inode, bool lock);

struct kiocb;
struct iov_iter;
int aegisfs_vfs_finish_open_simple(struct file *file);
bool aegisfs_vfs_file_writable(const struct file *file);
void aegisfs_vfs_clear_buffer_verified(struct buffer_head *bh);
void aegisfs_vfs_inode_lock(struct inode *inode, bool lock);
void aegisfs_vfs_inode_lock_shared(struct inode *inode, bool lock);
struct file_kattr;
int aegisfs_vfs_fileattr_flags(const struct file_kattr *fa, u32 *flags);
int aegisfs_vfs_zero_cached(struct inode *inode, loff_t pos, unsigned int len,
	get_block_t *get_block);
int aegisfs_vfs_file_open(struct inode *inode, struct file *file);
int aegisfs_vfs_swap_activate(struct swap_info_struct *sis, struct file *file, sector_t *span);
ssize_t aegisfs_vfs_dio_read(struct kiocb *iocb, struct iov_iter *to);
ssize_t aegisfs_vfs_dio_write(struct kiocb *iocb, struct iov_iter *from);

struct aegisfs_timer;
bool aegisfs_vfs_bh_flag(struct buffer_head *bh, unsigned int bit, int op);
void aegisfs_vfs_get_bh(struct buffer_head *bh);
u64 aegisfs_vfs_bh_blocknr(const struct buffer_head *bh);
void aegisfs_vfs_submit_write(struct buffer_head *bh, bool flush_fua);
int aegisfs_vfs_wait_write(struct buffer_head *bh);
int aegisfs_vfs_issue_flush(struct super_block *sb);
bool aegisfs_vfs_bdev_read_only(struct super_block *sb);
u32 aegisfs_vfs_discard_granularity(struct super_block *sb);
int aegisfs_vfs_issue_discard(struct super_block *sb, u64 block, u64 count);
bool aegisfs_vfs_should_stop(void);
void *aegisfs_vfs_journal_info(void);
void aegisfs_vfs_set_journal_info(void *info);
struct inode *aegisfs_vfs_igrab(struct inode *inode);
int aegisfs_vfs_write_ordered_data(struct inode *inode);
struct aegisfs_timer *aegisfs_vfs_timer_new(struct super_block *sb);
void aegisfs_vfs_timer_arm(struct aegisfs_timer *t, unsigned int ms);
void aegisfs_vfs_timer_free(struct aegisfs_timer *t);
void aegisfs_vfs_timer_cancel(struct aegisfs_timer *t);
unsigned int aegisfs_vfs_nofs_save(void);
void aegisfs_vfs_nofs_restore(unsigned int flags);
bool aegisfs_vfs_capable_admin(void);
void aegisfs_vfs_start_intwrite(struct super_block *sb);
void aegisfs_vfs_end_intwrite(struct super_block *sb);
struct vm_area_desc;
struct vm_area_struct;
struct vm_fault;
int aegisfs_vfs_mmap_prepare(struct vm_area_desc *desc);
int aegisfs_vfs_block_page_mkwrite(struct vm_area_struct *vma, struct vm_fault *vmf);
/* rust/vfs/ops.rs */
int aegisfs_page_mkwrite_blocks(struct inode *inode, struct vm_area_struct *vma,
	struct vm_fault *vmf);
int aegisfs_get_block(struct inode *inode, sector_t block, struct buffer_head *bh, int create);
/* rust/vfs/super_block.rs */
void aegisfs_commit_timer(struct super_block *sb);
/* rust/vfs/export.rs */
struct inode *aegisfs_nfs_get_inode(struct super_block *sb, u64 ino, u32 generation);
struct dentry *aegisfs_get_parent(struct dentry *child);

#endif /* AEGISFS_VFS_HELPERS_H */
