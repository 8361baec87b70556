// SPDX-License-Identifier: GPL-2.0
/*
 * C half of the AegisFS VFS layer.
 *
 * The kernel crate's bindings have no symbols for static inline functions and leave the
 * fs_context and fs_parser types opaque, so this file wraps the inlines the Rust side needs
 * and holds the mount-option table and fs_context operations. Everything else lives in Rust.
 */

#include <linux/blkdev.h>
#include <linux/buffer_head.h>
#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/exportfs.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/fiemap.h>
#include <linux/fileattr.h>
#include <linux/freezer.h>
#include <linux/iomap.h>
#include <linux/kdev_t.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/pagemap.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/xattr.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/swap.h>
#include <linux/workqueue.h>
#include <linux/writeback.h>

#include "helpers.h"

/* The Rust module! macro has no version field; Kbuild passes the workspace's version. */
MODULE_VERSION(AEGISFS_VERSION);

/* Buffer state bits of our own: the checksum of the block was verified for this kind. */
#define AEGISFS_BH_VERIFIED_FIRST BH_PrivateStart
#define AEGISFS_BH_VERIFIED_KINDS 6
/* Journal state bits of a metadata buffer, after the verified bits (rust/vfs/buffer.rs,
 * JournalFlag: running, checkpoint, freed). */
#define AEGISFS_BH_JOURNAL_FIRST (AEGISFS_BH_VERIFIED_FIRST + AEGISFS_BH_VERIFIED_KINDS)
#define AEGISFS_BH_JOURNAL_BITS 3

/* Values of errors=, equal to the superblock's errors_behavior. */
static const struct constant_table aegisfs_param_errors[] = {
	{ "continue",	1 },
	{ "remount-ro",	2 },
	{ "panic",	3 },
	{}
};

/* Values of data_err=: AEGISFS_DATA_ERR_* in helpers.h. */
static const struct constant_table aegisfs_param_data_err[] = {
	{ "ignore",	AEGISFS_DATA_ERR_IGNORE },
	{ "abort",	AEGISFS_DATA_ERR_ABORT },
	{}
};

enum {
	AEGISFS_OPT_ERRORS, AEGISFS_OPT_COMMIT, AEGISFS_OPT_NORECOVERY, AEGISFS_OPT_ACL,
	AEGISFS_OPT_DISCARD, AEGISFS_OPT_DATA_ERR,
};

const struct fs_parameter_spec aegisfs_fs_parameters[] = {
	fsparam_enum("errors", AEGISFS_OPT_ERRORS, aegisfs_param_errors),
	fsparam_u32("commit", AEGISFS_OPT_COMMIT),
	fsparam_flag("norecovery", AEGISFS_OPT_NORECOVERY),
	fsparam_flag("noload", AEGISFS_OPT_NORECOVERY),
	fsparam_flag_no("acl", AEGISFS_OPT_ACL),
	fsparam_flag_no("discard", AEGISFS_OPT_DISCARD),
	fsparam_enum("data_err", AEGISFS_OPT_DATA_ERR, aegisfs_param_data_err),
	{}
};

/* fc->fs_private: the options given; 0 for each one that was not. */
struct aegisfs_mount_options {
	u32 errors;
	u32 commit;
	bool norecovery;
	u32 acl;	/* AEGISFS_ACL_* */
	u32 discard;	/* AEGISFS_ACL_* values as well */
	u32 data_err;	/* AEGISFS_DATA_ERR_* */
};

static void aegisfs_free_fc(struct fs_context *fc)
{
	kfree(fc->fs_private);
}

static int aegisfs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct aegisfs_mount_options *opts = fc->fs_private;
	struct fs_parse_result result;
	int opt;

	opt = fs_parse(fc, aegisfs_fs_parameters, param, &result);
	if (opt < 0)
		return opt;
	switch (opt) {
	case AEGISFS_OPT_ERRORS:
		opts->errors = result.uint_32;
		break;
	case AEGISFS_OPT_COMMIT:
		/* commit=0 means the default, as in ext4 (0 itself: not given). */
		opts->commit = result.uint_32 ? result.uint_32 : AEGISFS_COMMIT_DEFAULT;
		break;
	case AEGISFS_OPT_NORECOVERY:
		opts->norecovery = true;
		break;
	case AEGISFS_OPT_ACL:
		opts->acl = result.negated ? AEGISFS_ACL_OFF : AEGISFS_ACL_ON;
		break;
	case AEGISFS_OPT_DISCARD:
		opts->discard = result.negated ? AEGISFS_ACL_OFF : AEGISFS_ACL_ON;
		break;
	case AEGISFS_OPT_DATA_ERR:
		opts->data_err = result.uint_32;
		break;
	}
	return 0;
}

static int aegisfs_get_tree(struct fs_context *fc)
{
	return get_tree_bdev(fc, aegisfs_fill_super);
}

static const struct fs_context_operations aegisfs_context_ops = {
	.free		= aegisfs_free_fc,
	.parse_param	= aegisfs_parse_param,
	.get_tree	= aegisfs_get_tree,
	.reconfigure	= aegisfs_reconfigure,
};

int aegisfs_vfs_init_fs_context(struct fs_context *fc)
{
	fc->fs_private = kzalloc(sizeof(struct aegisfs_mount_options), GFP_KERNEL);
	if (!fc->fs_private)
		return -ENOMEM;
	fc->ops = &aegisfs_context_ops;
	return 0;
}

u32 aegisfs_vfs_fc_errors(const struct fs_context *fc)
{
	const struct aegisfs_mount_options *opts = fc->fs_private;

	return opts->errors;
}

u32 aegisfs_vfs_fc_commit(const struct fs_context *fc)
{
	const struct aegisfs_mount_options *opts = fc->fs_private;

	return opts->commit;
}

bool aegisfs_vfs_fc_norecovery(const struct fs_context *fc)
{
	const struct aegisfs_mount_options *opts = fc->fs_private;

	return opts->norecovery;
}

u32 aegisfs_vfs_fc_acl(const struct fs_context *fc)
{
	const struct aegisfs_mount_options *opts = fc->fs_private;

	return opts->acl;
}

u32 aegisfs_vfs_fc_discard(const struct fs_context *fc)
{
	const struct aegisfs_mount_options *opts = fc->fs_private;

	return opts->discard;
}

u32 aegisfs_vfs_fc_data_err(const struct fs_context *fc)
{
	const struct aegisfs_mount_options *opts = fc->fs_private;

	return opts->data_err;
}

bool aegisfs_vfs_fc_is_rdonly(const struct fs_context *fc)
{
	return fc->sb_flags & SB_RDONLY;
}

struct super_block *aegisfs_vfs_fc_reconfigure_sb(const struct fs_context *fc)
{
	return fc->root->d_sb;
}

struct kmem_cache *aegisfs_vfs_inode_cache_create(unsigned int size, unsigned int useroffset,
						  unsigned int usersize, void (*ctor)(void *))
{
	return kmem_cache_create_usercopy("aegisfs_inode_cache", size, 0,
					  SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT,
					  useroffset, usersize, ctor);
}

void *aegisfs_vfs_alloc_inode(struct super_block *sb, struct kmem_cache *cache)
{
	return alloc_inode_sb(sb, cache, GFP_KERNEL);
}

u64 aegisfs_vfs_device_bytes(struct super_block *sb)
{
	return bdev_nr_bytes(sb->s_bdev);
}

void aegisfs_vfs_set_uuid(struct super_block *sb, const u8 *uuid)
{
	super_set_uuid(sb, uuid, 16);
}

struct buffer_head *aegisfs_vfs_sb_bread(struct super_block *sb, u64 block)
{
	return sb_bread(sb, block);
}

void aegisfs_vfs_brelse(struct buffer_head *bh)
{
	brelse(bh);
}

const u8 *aegisfs_vfs_bh_data(const struct buffer_head *bh)
{
	return (const u8 *)bh->b_data;
}

u64 aegisfs_vfs_bh_size(const struct buffer_head *bh)
{
	return bh->b_size;
}

/* buffer_migrate_folio(), which is a macro for NULL without CONFIG_MIGRATION (where
 * nothing migrates folios, so this is never called). */
int aegisfs_vfs_migrate_folio(struct address_space *mapping, struct folio *dst,
			      struct folio *src, enum migrate_mode mode)
{
#ifdef CONFIG_MIGRATION
	return buffer_migrate_folio(mapping, dst, src, mode);
#else
	return -EINVAL;
#endif
}

/* The block after the last one of the folio @bh belongs to (0 without a folio). */
u64 aegisfs_vfs_bh_folio_end(const struct buffer_head *bh)
{
	if (!bh->b_folio)
		return 0;
	return (folio_pos(bh->b_folio) + folio_size(bh->b_folio)) >> AEGISFS_BLOCK_BITS;
}

/* Regular files are cached in folios of any size the page cache can give, so that a
 * large write takes one write_begin (one handle, one allocation) per folio. */
void aegisfs_vfs_set_large_folios(struct inode *inode)
{
	mapping_set_large_folios(inode->i_mapping);
}

void aegisfs_vfs_map_bh(struct buffer_head *bh, struct super_block *sb, u64 block, u64 size)
{
	map_bh(bh, sb, block);
	bh->b_size = size;
}

bool aegisfs_vfs_buffer_verified(struct buffer_head *bh, unsigned int kind)
{
	if (kind >= AEGISFS_BH_VERIFIED_KINDS)
		return false;
	return test_bit(AEGISFS_BH_VERIFIED_FIRST + kind, &bh->b_state);
}

void aegisfs_vfs_set_buffer_verified(struct buffer_head *bh, unsigned int kind)
{
	if (kind < AEGISFS_BH_VERIFIED_KINDS)
		set_bit(AEGISFS_BH_VERIFIED_FIRST + kind, &bh->b_state);
}

void aegisfs_vfs_set_owner(struct inode *inode, u32 uid, u32 gid)
{
	i_uid_write(inode, uid);
	i_gid_write(inode, gid);
}

void aegisfs_vfs_set_times(struct inode *inode, s64 atime, u32 atime_nsec, s64 mtime,
			   u32 mtime_nsec, s64 ctime, u32 ctime_nsec)
{
	inode_set_atime(inode, atime, atime_nsec);
	inode_set_mtime(inode, mtime, mtime_nsec);
	inode_set_ctime(inode, ctime, ctime_nsec);
}

void aegisfs_vfs_set_size(struct inode *inode, s64 size)
{
	i_size_write(inode, size);
}

void aegisfs_vfs_init_special(struct inode *inode, u16 mode, u32 encoded_rdev)
{
	init_special_inode(inode, mode, new_decode_dev(encoded_rdev));
}

bool aegisfs_vfs_dir_emit(struct dir_context *ctx, const u8 *name, int name_len, u64 ino,
			  unsigned int type)
{
	return dir_emit(ctx, name, name_len, ino, type);
}

/*
 * Whether readdir positions of this open directory must fit 32 bits: nfsd says so in the
 * file mode, otherwise a compat (32-bit) system call does.
 */
bool aegisfs_vfs_dir_hash32(struct file *file)
{
	if (file->f_mode & FMODE_32BITHASH)
		return true;
	if (file->f_mode & FMODE_64BITHASH)
		return false;
#ifdef CONFIG_COMPAT
	return in_compat_syscall();
#else
	return BITS_PER_LONG == 32;
#endif
}

/* A target with a NUL byte (only in a damaged image) is cut there, as readlink would. */
void aegisfs_vfs_set_link(struct inode *inode, char *link)
{
	inode_set_cached_link(inode, link, strlen(link));
}

const u8 *aegisfs_vfs_dentry_name(const struct dentry *dentry, u32 *len)
{
	*len = dentry->d_name.len;
	return dentry->d_name.name;
}

void aegisfs_vfs_fill_statfs(struct kstatfs *buf, u64 magic, u64 blocks, u64 bfree, u64 bavail,
			     u64 files, u64 ffree, u32 fsid_low, u32 fsid_high)
{
	buf->f_type = magic;
	buf->f_bsize = 4096;
	buf->f_blocks = blocks;
	buf->f_bfree = bfree;
	buf->f_bavail = bavail;
	buf->f_files = files;
	buf->f_ffree = ffree;
	buf->f_namelen = 255;
	buf->f_fsid.val[0] = fsid_low;
	buf->f_fsid.val[1] = fsid_high;
}

bool aegisfs_vfs_inode_is_new(struct inode *inode)
{
	return inode_state_read_once(inode) & I_NEW;
}

struct inode *aegisfs_vfs_folio_blocks(struct folio *folio, u64 *first, u64 *count)
{
	*first = folio_pos(folio) >> 12;
	*count = folio_size(folio) >> 12;
	return folio->mapping->host;
}

void aegisfs_vfs_cond_resched(void)
{
	cond_resched();
}

struct buffer_head *aegisfs_vfs_sb_getblk_zeroed(struct super_block *sb, u64 block)
{
	struct buffer_head *bh = sb_getblk(sb, block);

	if (!bh)
		return NULL;
	lock_buffer(bh);
	memset(bh->b_data, 0, bh->b_size);
	set_buffer_uptodate(bh);
	unlock_buffer(bh);
	aegisfs_vfs_clear_buffer_verified(bh);
	return bh;
}

void aegisfs_vfs_lock_buffer(struct buffer_head *bh)
{
	lock_buffer(bh);
}

void aegisfs_vfs_unlock_buffer(struct buffer_head *bh)
{
	unlock_buffer(bh);
}

/* With an inode's list (@mmb), fsync of that inode writes the buffer too. */
void aegisfs_vfs_dirty_buffer(struct buffer_head *bh, struct mapping_metadata_bhs *mmb)
{
	if (mmb)
		mmb_mark_buffer_dirty(bh, mmb);
	else
		mark_buffer_dirty(bh);
}

int aegisfs_vfs_sync_buffer(struct buffer_head *bh)
{
	return sync_dirty_buffer(bh);
}

/* A freed metadata block: drop a dirty cached copy so that it is never written over the
 * block's next user. */
void aegisfs_vfs_forget_block(struct super_block *sb, u64 block)
{
	struct buffer_head *bh = sb_find_get_block(sb, block);

	if (bh) {
		/* The journal's "freed" bit: the checkpoint must not write it home. */
		set_bit(AEGISFS_BH_JOURNAL_FIRST + 2, &bh->b_state);
		bforget(bh);
	}
}

/* Whether a read of the block would find it in the buffer cache, up to date. */
bool aegisfs_vfs_block_cached(struct super_block *sb, u64 block)
{
	struct buffer_head *bh = sb_find_get_block(sb, block);
	bool cached = bh && buffer_uptodate(bh);

	brelse(bh);
	return cached;
}

/* Starts reading blocks first..first + count - 1 that are not cached, in one plug so that
 * neighbours merge into large requests; nobody waits for them. */
void aegisfs_vfs_breadahead(struct super_block *sb, u64 first, u32 count)
{
	struct blk_plug plug;
	u32 i;

	blk_start_plug(&plug);
	for (i = 0; i < count; i++)
		sb_breadahead(sb, first + i);
	blk_finish_plug(&plug);
}

/* sb_bread() of @block that, when the block is neither cached nor being read, first starts
 * reading it and the @count - 1 blocks after it together (a read already in flight is
 * waited for, not started again). */
struct buffer_head *aegisfs_vfs_sb_bread_ahead(struct super_block *sb, u64 block, u32 count)
{
	struct buffer_head *bh = sb_getblk(sb, block);

	if (!bh)
		return NULL;
	if (!buffer_uptodate(bh) && !buffer_locked(bh))
		aegisfs_vfs_breadahead(sb, block, count);
	if (bh_read(bh, 0) < 0) {
		brelse(bh);
		return NULL;
	}
	return bh;
}

void aegisfs_vfs_set_buffer_new(struct buffer_head *bh)
{
	set_buffer_new(bh);
}

void aegisfs_vfs_inode_init_once(struct inode *inode, struct rw_semaphore *map_lock,
				 struct rw_semaphore *xattr_lock)
{
	inode_init_once(inode);
	init_rwsem(map_lock);
	init_rwsem(xattr_lock);
}

void aegisfs_vfs_mmb_init(struct mapping_metadata_bhs *mmb, struct inode *inode)
{
	mmb_init(mmb, &inode->i_data);
}

int aegisfs_vfs_mmb_sync(struct mapping_metadata_bhs *mmb)
{
	return mmb_sync(mmb);
}

void aegisfs_vfs_mmb_invalidate(struct mapping_metadata_bhs *mmb)
{
	mmb_invalidate(mmb);
}

void aegisfs_vfs_rwsem_lock(struct rw_semaphore *sem, bool write)
{
	if (write)
		down_write(sem);
	else
		down_read(sem);
}

void aegisfs_vfs_rwsem_unlock(struct rw_semaphore *sem, bool write)
{
	if (write)
		up_write(sem);
	else
		up_read(sem);
}

void aegisfs_vfs_get_owner(const struct inode *inode, u32 *uid, u32 *gid)
{
	*uid = i_uid_read(inode);
	*gid = i_gid_read(inode);
}

/* atime, mtime, ctime */
void aegisfs_vfs_get_times(const struct inode *inode, s64 *sec, u32 *nsec)
{
	struct timespec64 ts[3] = {
		inode_get_atime(inode), inode_get_mtime(inode), inode_get_ctime(inode),
	};
	int i;

	for (i = 0; i < 3; i++) {
		sec[i] = ts[i].tv_sec;
		nsec[i] = ts[i].tv_nsec;
	}
}

u32 aegisfs_vfs_encode_rdev(const struct inode *inode)
{
	return new_encode_dev(inode->i_rdev);
}

void aegisfs_vfs_mark_inode_dirty(struct inode *inode)
{
	mark_inode_dirty(inode);
}

/* ctime, and mtime with @mtime, to now. */
void aegisfs_vfs_touch(struct inode *inode, bool mtime)
{
	struct timespec64 now = inode_set_ctime_current(inode);

	if (mtime)
		inode_set_mtime_to_ts(inode, now);
}

/* A new in-memory inode owned as @dir and the caller's credentials make it. */
struct inode *aegisfs_vfs_new_inode(struct super_block *sb, struct mnt_idmap *idmap,
				    const struct inode *dir, u16 mode)
{
	struct inode *inode = new_inode(sb);

	if (inode)
		inode_init_owner(idmap, inode, dir, mode);
	return inode;
}

int aegisfs_vfs_insert_inode(struct inode *inode, u64 ino)
{
	inode->i_ino = ino;
	return insert_inode_locked(inode);
}

bool aegisfs_vfs_wbc_sync(const struct writeback_control *wbc)
{
	return wbc->sync_mode == WB_SYNC_ALL;
}

int aegisfs_vfs_writecount(const struct inode *inode)
{
	return atomic_read(&inode->i_writecount);
}

bool aegisfs_vfs_capable_resource(void)
{
	return capable(CAP_SYS_RESOURCE);
}

void aegisfs_vfs_set_rdonly(struct super_block *sb, bool rdonly)
{
	if (rdonly)
		sb->s_flags |= SB_RDONLY;
	else
		sb->s_flags &= ~SB_RDONLY;
}

bool aegisfs_vfs_sb_rdonly(const struct super_block *sb)
{
	return sb_rdonly(sb);
}

void aegisfs_vfs_filemap_invalidate(struct inode *inode, bool lock)
{
	if (lock)
		filemap_invalidate_lock(inode->i_mapping);
	else
		filemap_invalidate_unlock(inode->i_mapping);
}

int aegisfs_vfs_finish_open_simple(struct file *file)
{
	return finish_open_simple(file, 0);
}

bool aegisfs_vfs_file_writable(const struct file *file)
{
	return file->f_mode & FMODE_WRITE;
}

void aegisfs_vfs_clear_buffer_verified(struct buffer_head *bh)
{
	int kind;

	for (kind = 0; kind < AEGISFS_BH_VERIFIED_KINDS; kind++)
		clear_bit(AEGISFS_BH_VERIFIED_FIRST + kind, &bh->b_state);
}

void aegisfs_vfs_inode_lock(struct inode *inode, bool lock)
{
	if (lock)
		inode_lock(inode);
	else
		inode_unlock(inode);
}

void aegisfs_vfs_inode_lock_shared(struct inode *inode, bool lock)
{
	if (lock)
		inode_lock_shared(inode);
	else
		inode_unlock_shared(inode);
}

/* The flags of FS_IOC_SETFLAGS / FS_IOC_FSSETXATTR; EOPNOTSUPP for the fsxattr fields
 * AegisFS does not keep (extent size hints, project IDs, other xflags). */
int aegisfs_vfs_fileattr_flags(const struct file_kattr *fa, u32 *flags)
{
	if (fileattr_has_fsx(fa))
		return -EOPNOTSUPP;
	*flags = fa->flags;
	return 0;
}

/* block_write_begin() for large folios: the folio is as large as the write (and the page
 * cache) allows, and only its part of the write is prepared; the page cache copies into
 * it no more than fits. */
int aegisfs_vfs_write_begin(const struct kiocb *iocb, struct address_space *mapping, loff_t pos,
			    unsigned int len, struct folio **foliop, get_block_t *get_block)
{
	struct folio *folio;
	int ret;

	folio = write_begin_get_folio(iocb, mapping, pos >> PAGE_SHIFT, len);
	if (IS_ERR(folio))
		return PTR_ERR(folio);
	if (len > folio_next_pos(folio) - pos)
		len = folio_next_pos(folio) - pos;
	ret = __block_write_begin(folio, pos, len, get_block);
	if (ret) {
		folio_unlock(folio);
		folio_put(folio);
		return ret;
	}
	*foliop = folio;
	return 0;
}

/* Zeroes @len bytes from @pos (inside one block) in the page cache and dirties them. */
int aegisfs_vfs_zero_cached(struct inode *inode, loff_t pos, unsigned int len,
			    get_block_t *get_block)
{
	struct address_space *mapping = inode->i_mapping;
	struct folio *folio;
	int ret;

	ret = block_write_begin(mapping, pos, len, &folio, get_block);
	if (ret)
		return ret;
	folio_zero_range(folio, offset_in_folio(folio, pos), len);
	ret = generic_write_end(NULL, mapping, pos, len, len, folio, NULL);
	return ret < 0 ? ret : 0;
}

/* Regular files may be opened with O_DIRECT: it goes through iomap (below). */
int aegisfs_vfs_file_open(struct inode *inode, struct file *file)
{
	file->f_mode |= FMODE_CAN_ODIRECT;
	return generic_file_open(inode, file);
}

/*
 * Direct I/O through iomap. The mapping itself is decided by aegisfs_iomap_map()
 * (rust/vfs/ops.rs, forwarding to rust/fs/file.rs); this only fills struct iomap.
 */
static int aegisfs_iomap_begin(struct inode *inode, loff_t offset, loff_t length,
			       unsigned int flags, struct iomap *iomap, struct iomap *srcmap)
{
	u64 lblk = (u64)offset >> AEGISFS_BLOCK_BITS;
	u64 max = (((u64)offset + length + (1 << AEGISFS_BLOCK_BITS) - 1) >> AEGISFS_BLOCK_BITS) - lblk;
	struct aegisfs_iomap_extent ext = {};
	int ret;

	ret = aegisfs_iomap_map(inode, lblk, max, flags & IOMAP_WRITE, &ext);
	if (ret)
		return ret;
	if (!ext.count)
		return -EIO;
	iomap->flags = 0;
	/* A write across EOF changes the size at completion: dirty for O_DSYNC. */
	if ((flags & IOMAP_WRITE) && offset + length > i_size_read(inode))
		iomap->flags |= IOMAP_F_DIRTY;
	if (ext.new)
		iomap->flags |= IOMAP_F_NEW;
	iomap->offset = lblk << AEGISFS_BLOCK_BITS;
	iomap->length = ext.count << AEGISFS_BLOCK_BITS;
	iomap->bdev = inode->i_sb->s_bdev;
	switch (ext.kind) {
	case AEGISFS_MAP_MAPPED:
		iomap->type = IOMAP_MAPPED;
		iomap->addr = ext.pblk << AEGISFS_BLOCK_BITS;
		break;
	case AEGISFS_MAP_UNWRITTEN:
		iomap->type = IOMAP_UNWRITTEN;
		iomap->addr = ext.pblk << AEGISFS_BLOCK_BITS;
		break;
	default:
		iomap->type = IOMAP_HOLE;
		iomap->addr = IOMAP_NULL_ADDR;
		break;
	}
	return 0;
}

static int aegisfs_iomap_end(struct inode *inode, loff_t offset, loff_t length,
			     ssize_t written, unsigned int flags, struct iomap *iomap)
{
	/* Nothing written: fall back to buffered I/O, which may use the blocks. */
	if ((flags & IOMAP_DIRECT) && (flags & IOMAP_WRITE) && written == 0)
		return -ENOTBLK;
	if (iomap->type == IOMAP_MAPPED && written < length && (flags & IOMAP_WRITE))
		aegisfs_write_failed(inode, offset + length);
	return 0;
}

static const struct iomap_ops aegisfs_iomap_ops = {
	.iomap_begin	= aegisfs_iomap_begin,
	.iomap_end	= aegisfs_iomap_end,
};

/*
 * Swap files, as ext4 does them: iomap_swapfile_activate() walks the file through a
 * report-only mapping (never allocating: a hole stays a hole, UNWRITTEN blocks stay
 * UNWRITTEN) and hands the blocks to the swap code, which then reads and writes them on the
 * block device directly, bypassing the page cache and the journal. It refuses holes with
 * EINVAL ("has unallocated extents") and accepts UNWRITTEN extents (fallocate). While the
 * file is swap, S_SWAPFILE makes the VFS refuse what would move or free its blocks.
 */
static int aegisfs_iomap_begin_report(struct inode *inode, loff_t offset, loff_t length,
				      unsigned int flags, struct iomap *iomap,
				      struct iomap *srcmap)
{
	return aegisfs_iomap_begin(inode, offset, length, flags & ~IOMAP_WRITE, iomap, srcmap);
}

static const struct iomap_ops aegisfs_iomap_report_ops = {
	.iomap_begin	= aegisfs_iomap_begin_report,
};

int aegisfs_vfs_swap_activate(struct swap_info_struct *sis, struct file *file, sector_t *span)
{
	return iomap_swapfile_activate(sis, file, span, &aegisfs_iomap_report_ops);
}

/* O_DIRECT needs the position, length and memory aligned to the device's logical blocks. */
static bool aegisfs_dio_aligned(struct inode *inode, loff_t pos, struct iov_iter *iter)
{
	unsigned int mask = bdev_logical_block_size(inode->i_sb->s_bdev) - 1;

	return !((pos | iov_iter_count(iter) | iov_iter_alignment(iter)) & mask);
}

ssize_t aegisfs_vfs_dio_read(struct kiocb *iocb, struct iov_iter *to)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	ssize_t ret;

	if (!aegisfs_dio_aligned(inode, iocb->ki_pos, to))
		return -EINVAL;
	inode_lock_shared(inode);
	ret = iomap_dio_rw(iocb, to, &aegisfs_iomap_ops, NULL, 0, NULL, 0);
	inode_unlock_shared(inode);
	return ret;
}

static int aegisfs_dio_write_end_io(struct kiocb *iocb, ssize_t size, int error,
				    unsigned int flags)
{
	struct inode *inode = file_inode(iocb->ki_filp);

	if (error)
		return error;
	/*
	 * Extending writes run synchronously under the inode lock (IOMAP_DIO_FORCE_WAIT), so
	 * the size may change here, before iomap_dio_rw() invalidates the page cache.
	 */
	return aegisfs_dio_write_done(inode, iocb->ki_pos, size, flags & IOMAP_DIO_UNWRITTEN);
}

static const struct iomap_dio_ops aegisfs_dio_write_ops = {
	.end_io = aegisfs_dio_write_end_io,
};

ssize_t aegisfs_vfs_dio_write(struct kiocb *iocb, struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	loff_t offset = iocb->ki_pos;
	loff_t count = iov_iter_count(from);
	unsigned int flags = 0;
	ssize_t ret, status;

	if (!aegisfs_dio_aligned(inode, iocb->ki_pos, from))
		return -EINVAL;
	inode_lock(inode);
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out;
	ret = kiocb_modified(iocb);
	if (ret)
		goto out;
	offset = iocb->ki_pos;
	count = iov_iter_count(from);
	if (offset + count > i_size_read(inode) ||
	    !IS_ALIGNED(offset | iov_iter_alignment(from), 1 << AEGISFS_BLOCK_BITS))
		flags |= IOMAP_DIO_FORCE_WAIT;

	ret = iomap_dio_rw(iocb, from, &aegisfs_iomap_ops, &aegisfs_dio_write_ops, flags,
			   NULL, 0);
	/* -ENOTBLK: the rest goes through the page cache. */
	if (ret == -ENOTBLK)
		ret = 0;
	if (ret < 0 && ret != -EIOCBQUEUED)
		aegisfs_write_failed(inode, offset + count);

	if (ret >= 0 && iov_iter_count(from)) {
		loff_t pos = iocb->ki_pos, endbyte;
		int err;

		iocb->ki_flags &= ~IOCB_DIRECT;
		status = generic_perform_write(iocb, from);
		if (status < 0) {
			ret = status;
			goto out;
		}
		ret += status;
		endbyte = pos + status - 1;
		err = filemap_write_and_wait_range(inode->i_mapping, pos, endbyte);
		if (!err) {
			invalidate_mapping_pages(inode->i_mapping, pos >> PAGE_SHIFT,
						 endbyte >> PAGE_SHIFT);
			if (ret > 0)
				ret = generic_write_sync(iocb, ret);
		} else {
			ret = err;
		}
	}
out:
	inode_unlock(inode);
	return ret;
}


bool aegisfs_vfs_bh_flag(struct buffer_head *bh, unsigned int bit, int op)
{
	if (bit >= AEGISFS_BH_JOURNAL_BITS)
		return false;
	bit += AEGISFS_BH_JOURNAL_FIRST;
	if (op > 0)
		return test_and_set_bit(bit, &bh->b_state);
	if (op < 0)
		return test_and_clear_bit(bit, &bh->b_state);
	return test_bit(bit, &bh->b_state);
}

void aegisfs_vfs_get_bh(struct buffer_head *bh)
{
	get_bh(bh);
}

u64 aegisfs_vfs_bh_blocknr(const struct buffer_head *bh)
{
	return bh->b_blocknr;
}

/* Starts writing @bh to its block, whether dirty or not; with @flush_fua, after a cache flush
 * and with forced unit access (a commit record). aegisfs_vfs_wait_write() waits. */
void aegisfs_vfs_submit_write(struct buffer_head *bh, bool flush_fua)
{
	blk_opf_t opf = REQ_OP_WRITE | REQ_SYNC;

	if (flush_fua)
		opf |= REQ_PREFLUSH | REQ_FUA;
	lock_buffer(bh);
	clear_buffer_dirty(bh);
	bh_submit(bh, opf, bh_end_write);
}

int aegisfs_vfs_wait_write(struct buffer_head *bh)
{
	wait_on_buffer(bh);
	return buffer_uptodate(bh) && !buffer_write_io_error(bh) ? 0 : -EIO;
}

int aegisfs_vfs_issue_flush(struct super_block *sb)
{
	return blkdev_issue_flush(sb->s_bdev);
}

bool aegisfs_vfs_bdev_read_only(struct super_block *sb)
{
	return bdev_read_only(sb->s_bdev);
}

/* FITRIM: the device's discard granularity in bytes, 0 when it cannot discard at all. */
u32 aegisfs_vfs_discard_granularity(struct super_block *sb)
{
	if (!bdev_max_discard_sectors(sb->s_bdev))
		return 0;
	return max(bdev_discard_granularity(sb->s_bdev), 1U);
}

/* Discards `count` filesystem blocks from `block` and waits for the device. */
int aegisfs_vfs_issue_discard(struct super_block *sb, u64 block, u64 count)
{
	return sb_issue_discard(sb, block, count, GFP_NOFS, 0);
}

/* A long walk (FITRIM) stops for a fatal signal or the freezer, as ext4's does. */
bool aegisfs_vfs_should_stop(void)
{
	return fatal_signal_pending(current) || freezing(current);
}

void *aegisfs_vfs_journal_info(void)
{
	return current->journal_info;
}

void aegisfs_vfs_set_journal_info(void *info)
{
	current->journal_info = info;
}

struct inode *aegisfs_vfs_igrab(struct inode *inode)
{
	return igrab(inode);
}

/*
 * Ordered data before a commit: writes the file's dirty pages and waits for them. A write
 * error stays recorded in the mapping, where fsync finds it (jbd2 waits the same way).
 */
int aegisfs_vfs_write_ordered_data(struct inode *inode)
{
	struct address_space *mapping = inode->i_mapping;
	int err = filemap_fdatawrite(mapping);
	int wait_err = filemap_fdatawait_range_keep_errors(mapping, 0, LLONG_MAX);

	return err ? err : wait_err;
}

/* The journal's commit timer: a delayed work that calls aegisfs_commit_timer(sb). */
struct aegisfs_timer {
	struct delayed_work work;
	struct super_block *sb;
};

static void aegisfs_timer_fn(struct work_struct *work)
{
	struct aegisfs_timer *t = container_of(to_delayed_work(work), struct aegisfs_timer, work);

	aegisfs_commit_timer(t->sb);
}

struct aegisfs_timer *aegisfs_vfs_timer_new(struct super_block *sb)
{
	struct aegisfs_timer *t = kzalloc(sizeof(*t), GFP_KERNEL);

	if (!t)
		return NULL;
	INIT_DELAYED_WORK(&t->work, aegisfs_timer_fn);
	t->sb = sb;
	return t;
}

void aegisfs_vfs_timer_arm(struct aegisfs_timer *t, unsigned int ms)
{
	queue_delayed_work(system_long_wq, &t->work, msecs_to_jiffies(ms));
}

void aegisfs_vfs_timer_free(struct aegisfs_timer *t)
{
	cancel_delayed_work_sync(&t->work);
	kfree(t);
}

unsigned int aegisfs_vfs_nofs_save(void)
{
	return memalloc_nofs_save();
}

void aegisfs_vfs_nofs_restore(unsigned int flags)
{
	memalloc_nofs_restore(flags);
}

void aegisfs_vfs_timer_cancel(struct aegisfs_timer *t)
{
	cancel_delayed_work_sync(&t->work);
}

bool aegisfs_vfs_capable_admin(void)
{
	return capable(CAP_SYS_ADMIN);
}

void aegisfs_vfs_start_intwrite(struct super_block *sb)
{
	sb_start_intwrite(sb);
}

void aegisfs_vfs_end_intwrite(struct super_block *sb)
{
	sb_end_intwrite(sb);
}

/* Shared writable mappings get their blocks when a page is first written (page_mkwrite),
 * so writeback never allocates (it may run while a journal commit waits for it). */
static vm_fault_t aegisfs_page_mkwrite(struct vm_fault *vmf)
{
	struct inode *inode = file_inode(vmf->vma->vm_file);
	int err;

	sb_start_pagefault(inode->i_sb);
	file_update_time(vmf->vma->vm_file);
	filemap_invalidate_lock_shared(inode->i_mapping);
	err = aegisfs_page_mkwrite_blocks(inode, vmf->vma, vmf);
	filemap_invalidate_unlock_shared(inode->i_mapping);
	sb_end_pagefault(inode->i_sb);
	return vmf_fs_error(err);
}

static const struct vm_operations_struct aegisfs_file_vm_ops = {
	.fault		= filemap_fault,
	.map_pages	= filemap_map_pages,
	.page_mkwrite	= aegisfs_page_mkwrite,
};

int aegisfs_vfs_mmap_prepare(struct vm_area_desc *desc)
{
	file_accessed(desc->file);
	desc->vm_ops = &aegisfs_file_vm_ops;
	return 0;
}

int aegisfs_vfs_block_page_mkwrite(struct vm_area_struct *vma, struct vm_fault *vmf)
{
	return block_page_mkwrite(vma, vmf, aegisfs_get_block);
}

/*
 * Extended attributes. The handlers carry the on-disk name index in ->flags and forward to
 * rust/vfs/xattr.rs; POSIX ACLs go through ->get_inode_acl and ->set_acl instead (the VFS
 * routes system.posix_acl_* there), so only listxattr meets their names.
 */
static int aegisfs_xattr_handler_get(const struct xattr_handler *handler, struct dentry *unused,
				     struct inode *inode, const char *name, void *buffer,
				     size_t size)
{
	return aegisfs_xattr_get(inode, handler->flags, (const u8 *)name, strlen(name), buffer,
				 size);
}

static int aegisfs_xattr_handler_set(const struct xattr_handler *handler,
				     struct mnt_idmap *idmap, struct dentry *unused,
				     struct inode *inode, const char *name, const void *value,
				     size_t size, int flags)
{
	return aegisfs_xattr_set(inode, handler->flags, (const u8 *)name, strlen(name), value,
				 size, flags);
}

/* As ext4: trusted.* names are listed only to CAP_SYS_ADMIN. */
static bool aegisfs_xattr_trusted_list(struct dentry *dentry)
{
	return capable(CAP_SYS_ADMIN);
}

static const struct xattr_handler aegisfs_xattr_user_handler = {
	.prefix	= XATTR_USER_PREFIX,
	.flags	= AEGISFS_XATTR_INDEX_USER,
	.get	= aegisfs_xattr_handler_get,
	.set	= aegisfs_xattr_handler_set,
};

static const struct xattr_handler aegisfs_xattr_trusted_handler = {
	.prefix	= XATTR_TRUSTED_PREFIX,
	.flags	= AEGISFS_XATTR_INDEX_TRUSTED,
	.list	= aegisfs_xattr_trusted_list,
	.get	= aegisfs_xattr_handler_get,
	.set	= aegisfs_xattr_handler_set,
};

static const struct xattr_handler aegisfs_xattr_security_handler = {
	.prefix	= XATTR_SECURITY_PREFIX,
	.flags	= AEGISFS_XATTR_INDEX_SECURITY,
	.get	= aegisfs_xattr_handler_get,
	.set	= aegisfs_xattr_handler_set,
};

static const struct xattr_handler * const aegisfs_xattr_handlers[] = {
	&aegisfs_xattr_user_handler,
	&aegisfs_xattr_trusted_handler,
	&aegisfs_xattr_security_handler,
	NULL
};

/* Before the first inode is read: xattr handlers, and POSIX ACLs unless mounted noacl. */
void aegisfs_vfs_sb_init_xattr(struct super_block *sb, bool acl)
{
	sb->s_xattr = aegisfs_xattr_handlers;
	aegisfs_vfs_set_posixacl(sb, acl);
}

void aegisfs_vfs_set_posixacl(struct super_block *sb, bool acl)
{
	if (acl)
		sb->s_flags |= SB_POSIXACL;
	else
		sb->s_flags &= ~SB_POSIXACL;
}

bool aegisfs_vfs_posixacl(const struct super_block *sb)
{
	return sb->s_flags & SB_POSIXACL;
}

/* The full-name prefix listxattr shows for on-disk name index @index, NULL when the caller
 * may not see such names (trusted.* without CAP_SYS_ADMIN, ACLs on a noacl mount). */
const char *aegisfs_vfs_xattr_list_prefix(struct dentry *dentry, int index)
{
	const struct xattr_handler *handler;

	switch (index) {
	case AEGISFS_XATTR_INDEX_USER:
		handler = &aegisfs_xattr_user_handler;
		break;
	case AEGISFS_XATTR_INDEX_POSIX_ACL_ACCESS:
		handler = &nop_posix_acl_access;
		break;
	case AEGISFS_XATTR_INDEX_POSIX_ACL_DEFAULT:
		handler = &nop_posix_acl_default;
		break;
	case AEGISFS_XATTR_INDEX_TRUSTED:
		handler = &aegisfs_xattr_trusted_handler;
		break;
	case AEGISFS_XATTR_INDEX_SECURITY:
		handler = &aegisfs_xattr_security_handler;
		break;
	default:
		return NULL;
	}
	if (!xattr_handler_can_list(handler, dentry))
		return NULL;
	return xattr_prefix(handler);
}

/*
 * POSIX ACLs: struct posix_acl is opaque to the Rust bindings, so its entries cross as
 * struct aegisfs_acl_entry with ids as the initial user namespace sees them (the on-disk
 * form, docs/format.md "POSIX ACL values").
 */
struct posix_acl *aegisfs_vfs_acl_from_entries(const struct aegisfs_acl_entry *entries,
					       u32 count)
{
	struct posix_acl *acl = posix_acl_alloc(count, GFP_NOFS);
	u32 i;

	if (!acl)
		return NULL;
	for (i = 0; i < count; i++) {
		struct posix_acl_entry *pa = &acl->a_entries[i];

		pa->e_tag = entries[i].tag;
		pa->e_perm = entries[i].perm;
		if (pa->e_tag == ACL_USER)
			pa->e_uid = make_kuid(&init_user_ns, entries[i].id);
		else if (pa->e_tag == ACL_GROUP)
			pa->e_gid = make_kgid(&init_user_ns, entries[i].id);
	}
	return acl;
}

u32 aegisfs_vfs_acl_count(const struct posix_acl *acl)
{
	return acl->a_count;
}

void aegisfs_vfs_acl_to_entries(const struct posix_acl *acl, struct aegisfs_acl_entry *out)
{
	u32 i;

	for (i = 0; i < acl->a_count; i++) {
		const struct posix_acl_entry *pa = &acl->a_entries[i];

		out[i].tag = pa->e_tag;
		out[i].perm = pa->e_perm;
		if (pa->e_tag == ACL_USER)
			out[i].id = from_kuid(&init_user_ns, pa->e_uid);
		else if (pa->e_tag == ACL_GROUP)
			out[i].id = from_kgid(&init_user_ns, pa->e_gid);
		else
			out[i].id = 0;
	}
}

void aegisfs_vfs_acl_release(struct posix_acl *acl)
{
	posix_acl_release(acl);
}

/* A new inode's mode and ACLs from its directory's default ACL, or the umask without one
 * (posix_acl_create). */
int aegisfs_vfs_acl_create(struct inode *dir, struct inode *inode, struct posix_acl **default_acl,
			   struct posix_acl **acl)
{
	return posix_acl_create(dir, &inode->i_mode, default_acl, acl);
}

/* set_acl of an access ACL: the mode it implies, and *acl NULL when the mode says it all. */
int aegisfs_vfs_acl_update_mode(struct mnt_idmap *idmap, struct inode *inode, u16 *mode,
				struct posix_acl **acl)
{
	umode_t m = inode->i_mode;
	int ret = posix_acl_update_mode(idmap, inode, &m, acl);

	*mode = m;
	return ret;
}

int aegisfs_vfs_acl_chmod(struct mnt_idmap *idmap, struct dentry *dentry)
{
	return posix_acl_chmod(idmap, dentry, d_inode(dentry)->i_mode);
}

/*
 * NFS export and open_by_handle_at, as ext2 does them: handles hold the 32-bit inode
 * number and generation (and the parent's, for connectable handles); the Rust side looks
 * an inode up by them (ESTALE when it is gone) and finds a directory's parent.
 */
static struct dentry *aegisfs_fh_to_dentry(struct super_block *sb, struct fid *fid,
	int fh_len, int fh_type)
{
	return generic_fh_to_dentry(sb, fid, fh_len, fh_type, aegisfs_nfs_get_inode);
}

static struct dentry *aegisfs_fh_to_parent(struct super_block *sb, struct fid *fid,
	int fh_len, int fh_type)
{
	return generic_fh_to_parent(sb, fid, fh_len, fh_type, aegisfs_nfs_get_inode);
}

static const struct export_operations aegisfs_export_ops = {
	.encode_fh	= generic_encode_ino32_fh,
	.fh_to_dentry	= aegisfs_fh_to_dentry,
	.fh_to_parent	= aegisfs_fh_to_parent,
	.get_parent	= aegisfs_get_parent,
};

void aegisfs_vfs_sb_init_export(struct super_block *sb)
{
	sb->s_export_op = &aegisfs_export_ops;
}

u32 aegisfs_vfs_fiemap_flags(const struct fiemap_extent_info *fieinfo)
{
	return fieinfo->fi_flags;
}
