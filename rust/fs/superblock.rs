// SPDX-License-Identifier: GPL-2.0

//! Mounting: the superblock and group descriptors, statfs and mount options.

use super::alloc::{Reservation, Trims};
use super::inode::iget;
use super::journal::recovery::{recover, JournalArea};
use super::journal::{default_commit_seconds, Journal};
use crate::disk::{
    GroupDesc, SuperBlock as DiskSuperBlock, ERRORS_CONTINUE, ERRORS_PANIC, ERRORS_REMOUNT_RO,
    FEATURE_INCOMPAT_RECOVER, MAX_FILE_SIZE, ROOT_INO, STATE_CLEAN, STATE_ERRORS, S_IFDIR, S_IFMT,
};
use crate::error::FormatError;
use crate::geometry::{fsid, Geometry};
use crate::vfs::inode::{Inode, InodeRef};
use crate::vfs::log::{device_err, device_warn};
use crate::vfs::super_block::{Device, SuperBlock};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// `f_type` of `statfs` and `s_magic`: "AEGI" read as a big-endian word.
pub(crate) const MAGIC_NUMBER: u32 = 0x4145_4749;

/// What the filesystem keeps in memory while mounted.
pub(crate) struct SbInfo {
    geometry: Geometry,
    uuid: [u8; 16],
    reserved_blocks: u64,
    /// Free blocks and inodes: the sums of the group descriptors' counts, less what
    /// allocations in progress have claimed.
    pub(crate) free_blocks: AtomicU64,
    pub(crate) free_inodes: AtomicU64,
    /// Whether the superblock's counts on disk are stale (written by `sync_fs`).
    dirty: AtomicBool,
    /// Set by `FS_IOC_SHUTDOWN`: every later change and data access fails with EIO.
    shutdown: AtomicBool,
    /// Corruption found since the superblock was last written (recorded there next time).
    errors_pending: AtomicU32,
    /// The journal (none for a filesystem made without one, or mounted `norecovery`).
    journal: Option<Pin<KBox<Journal>>>,
    /// The orphan list in order from the superblock's `last_orphan`.
    orphans: Pin<KBox<Mutex<KVec<u32>>>>,
    /// Blocks held in memory for files written sequentially.
    reservations: Pin<KBox<Mutex<KVec<Reservation>>>>,
    /// Free blocks held in memory while FITRIM discards them.
    trims: Pin<KBox<Trims>>,
    /// Mounted with `norecovery` and the filesystem has a journal: the bitmaps may miss what
    /// the log holds, so FITRIM is refused.
    norecovery: bool,
    /// The `discard` mount option: freed blocks are discarded once their transaction is
    /// committed (at once without a journal).
    discard: AtomicBool,
    /// `data_err=abort`: a file data block that ordered mode could not write before a commit
    /// aborts the journal. Otherwise (`data_err=ignore`, the default, as in ext4) the error
    /// stays for `fsync` to report and the metadata commits.
    data_err_abort: AtomicBool,
    /// Mounted with `norecovery` while the journal needed recovery: read-only for good.
    unrecovered: bool,
    /// `errors_behavior` of the superblock.
    default_errors: u32,
    /// Current `errors=` behaviour (1 continue, 2 remount-ro, 3 panic).
    errors: AtomicU32,
}

impl SbInfo {
    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    pub(crate) fn uuid(&self) -> [u8; 16] {
        self.uuid
    }

    /// `s_maxbytes`: the format's limit, within what `loff_t` holds.
    pub(crate) fn max_bytes(&self) -> i64 {
        i64::try_from(MAX_FILE_SIZE).unwrap_or(i64::MAX)
    }

    pub(crate) fn orphans(&self) -> &Mutex<KVec<u32>> {
        &self.orphans
    }

    pub(crate) fn reservations(&self) -> &Mutex<KVec<Reservation>> {
        &self.reservations
    }

    pub(crate) fn trims(&self) -> &Trims {
        &self.trims
    }

    /// Whether the filesystem has a journal and was mounted with `norecovery`.
    pub(crate) fn norecovery(&self) -> bool {
        self.norecovery
    }

    /// Whether a failed ordered-data write aborts the journal (`data_err=abort`).
    pub(crate) fn data_err_abort(&self) -> bool {
        self.data_err_abort.load(Ordering::Relaxed)
    }

    /// `data_err=abort` (true) or `data_err=ignore` given at a remount.
    pub(crate) fn set_data_err_abort(&self, abort: bool) {
        self.data_err_abort.store(abort, Ordering::Relaxed);
    }

    /// Whether freed blocks are discarded (the `discard` mount option).
    pub(crate) fn discard(&self) -> bool {
        self.discard.load(Ordering::Relaxed)
    }

    pub(crate) fn journal(&self) -> Option<&Journal> {
        self.journal.as_deref()
    }

    pub(crate) fn reserved_blocks(&self) -> u64 {
        self.reserved_blocks
    }

    /// Whether the filesystem was shut down (`FS_IOC_SHUTDOWN`).
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Notes that the free counts changed.
    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    fn errors(&self) -> u32 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// Logs a problem with the superblock or group descriptors and returns its errno:
/// EUCLEAN for corruption, EINVAL for what is unsupported or not an AegisFS image.
fn mount_error(dev: &Device, err: FormatError) -> Error {
    device_err!(dev.name(), "{}", err.msg());
    if err.is_corruption() {
        EUCLEAN
    } else {
        EINVAL
    }
}

/// Whether corruption must stop the system: `errors=panic`, once mounted (a mount that
/// finds corruption just fails, so an untrusted image cannot panic the kernel that way).
fn must_panic(sb: &SuperBlock) -> bool {
    sb.info().errors() == ERRORS_PANIC && sb.is_mounted()
}

/// With `errors=remount-ro`, makes a mounted filesystem read-only after corruption, so
/// that nothing more is written on top of it. The error is recorded in the superblock at
/// its next write.
fn after_corruption(sb: &SuperBlock) {
    if sb.is_mounted() {
        sb.info().errors_pending.fetch_add(1, Ordering::Relaxed);
        sb.info().mark_dirty();
    }
    if sb.info().errors() == ERRORS_REMOUNT_RO && sb.is_mounted() && !sb.is_read_only() {
        device_err!(sb.name(), "remounting filesystem read-only");
        sb.force_read_only();
    }
}

/// Logs corruption found in inode `ino` (or its blocks) and returns EUCLEAN, after
/// panicking if mounted with `errors=panic`, or making the filesystem read-only with
/// `errors=remount-ro`.
pub(crate) fn corruption(sb: &SuperBlock, ino: u32, msg: &str) -> Error {
    if must_panic(sb) {
        sb.panic("inode", ino, msg);
    }
    device_err!(sb.name(), "inode {}: {}", ino, msg);
    after_corruption(sb);
    EUCLEAN
}

/// Like [`corruption`] for the metadata of group `group`.
pub(crate) fn group_corruption(sb: &SuperBlock, group: u32, msg: &str) -> Error {
    if must_panic(sb) {
        sb.panic("group", group, msg);
    }
    device_err!(sb.name(), "group {}: {}", group, msg);
    after_corruption(sb);
    EUCLEAN
}

/// Like [`corruption`] for a problem in the blocks of a cached inode: logged only the first
/// time, as every later access to the inode would find it again.
pub(crate) fn inode_corruption(inode: &Inode, msg: &str) -> Error {
    let sb = inode.sb();
    if inode
        .info()
        .corruption_reported
        .swap(true, Ordering::Relaxed)
        && !must_panic(sb)
    {
        return EUCLEAN;
    }
    corruption(sb, inode.ino(), msg)
}

/// Mount options (0 or false when not given).
#[derive(Clone, Copy)]
pub(crate) struct MountOptions {
    /// `errors=`.
    pub(crate) errors: u32,
    /// `commit=`, seconds.
    pub(crate) commit: u32,
    /// `norecovery` (or `noload`).
    pub(crate) norecovery: bool,
    /// `discard`.
    pub(crate) discard: bool,
    /// `data_err=abort`.
    pub(crate) data_err_abort: bool,
}

/// Clears the "needs recovery" flag of the superblock in block 0 after a replay.
fn clear_recover(dev: &Device) -> Result {
    let bh = dev.bread(0)?;
    bh.change(|block0| {
        let disk = DiskSuperBlock::in_block_mut(block0);
        disk.feature_incompat
            .set(disk.feature_incompat.get() & !FEATURE_INCOMPAT_RECOVER);
        disk.update_checksum();
    });
    bh.submit_write(true);
    bh.wait_write()
}

/// Reads and validates the superblock, replays the journal if it needs it, and reads and
/// validates every group descriptor of `dev`.
pub(crate) fn load(dev: &Device, opts: MountOptions, read_only: bool) -> Result<SbInfo> {
    let errors = opts.errors;
    let device_blocks = dev.blocks();
    if device_blocks == 0 {
        device_err!(dev.name(), "device is smaller than one block");
        return Err(EINVAL);
    }
    let block0 = dev.bread(0)?;
    let disk_sb = DiskSuperBlock::in_block(block0.data());
    let geometry = disk_sb
        .validate(device_blocks)
        .map_err(|e| mount_error(dev, e))?;
    let needs_recovery = disk_sb.needs_recovery();
    if needs_recovery && !opts.norecovery && dev.device_read_only() {
        // Replaying writes to the device, which the block layer would only warn about.
        device_err!(
            dev.name(),
            "the journal needs recovery but the device is read-only (mount with norecovery)"
        );
        return Err(EROFS);
    }
    if needs_recovery && opts.norecovery && !read_only {
        device_err!(dev.name(), "norecovery requires a read-only mount");
        return Err(EINVAL);
    }
    if disk_sb.has_errors() {
        device_warn!(
            dev.name(),
            "errors were recorded on this filesystem; run fsck.aegisfs"
        );
    } else if !disk_sb.is_clean() && geometry.journal_blocks() == 0 {
        device_warn!(
            dev.name(),
            "filesystem was not cleanly unmounted; run fsck.aegisfs"
        );
    }
    if !read_only && geometry.unknown_ro_compat() != 0 {
        device_err!(
            dev.name(),
            "unknown read-only compatible features {:#x}, mount read-only",
            geometry.unknown_ro_compat()
        );
        return Err(EROFS);
    }
    let default_errors = disk_sb.errors_behavior.get();
    let uuid = disk_sb.uuid;
    let reserved_blocks = disk_sb.reserved_blocks.get();
    drop(block0);

    let unrecovered = needs_recovery && opts.norecovery;
    let mut journal = None;
    if geometry.journal_blocks() > 0 && !unrecovered {
        let area = JournalArea {
            start: geometry.journal_start(),
            len: geometry.journal_blocks(),
            seed: geometry.checksum_seed(),
            fs_blocks: geometry.blocks_count(),
        };
        let sequence = recover(dev, &area)?;
        if needs_recovery {
            clear_recover(dev)?;
        }
        let commit = if opts.commit == 0 {
            default_commit_seconds()
        } else {
            opts.commit
        };
        journal = Some(Journal::new(
            dev, area.start, area.len, area.seed, sequence, commit,
        )?);
    } else if unrecovered {
        device_warn!(
            dev.name(),
            "norecovery: the journal is not replayed; the filesystem may be inconsistent"
        );
    }

    let groups = geometry.group_count();
    let (mut free_blocks, mut free_inodes) = (0u64, 0u64);
    let mut gdt_block: Option<(u64, crate::vfs::buffer::BufferHead)> = None;
    for g in 0..groups {
        let (block, _) = geometry
            .group_desc_location(g)
            .ok_or_else(|| mount_error(dev, FormatError::BadGdtLocation))?;
        let bh = match gdt_block.take() {
            Some((b, bh)) if b == block => bh,
            _ => dev.bread(block)?,
        };
        let desc = GroupDesc::in_block(bh.data(), g);
        desc.validate(g, &geometry).map_err(|e| {
            device_err!(dev.name(), "group {}: {}", g, e.msg());
            EUCLEAN
        })?;
        free_blocks = free_blocks.saturating_add(u64::from(desc.free_blocks.get()));
        free_inodes = free_inodes.saturating_add(u64::from(desc.free_inodes.get()));
        gdt_block = Some((block, bh));
    }

    let norecovery = opts.norecovery && geometry.journal_blocks() > 0;
    Ok(SbInfo {
        geometry,
        uuid,
        reserved_blocks,
        free_blocks: AtomicU64::new(free_blocks),
        free_inodes: AtomicU64::new(free_inodes),
        dirty: AtomicBool::new(false),
        shutdown: AtomicBool::new(false),
        errors_pending: AtomicU32::new(0),
        journal,
        reservations: KBox::pin_init(new_mutex!(KVec::new()), GFP_KERNEL)?,
        trims: KBox::pin_init(Trims::new(), GFP_KERNEL)?,
        norecovery,
        discard: AtomicBool::new(opts.discard),
        data_err_abort: AtomicBool::new(opts.data_err_abort),
        orphans: KBox::pin_init(new_mutex!(KVec::new()), GFP_KERNEL)?,
        unrecovered,
        default_errors,
        errors: AtomicU32::new(if errors == 0 { default_errors } else { errors }),
    })
}

/// The root directory.
pub(crate) fn root_inode(sb: &SuperBlock) -> Result<InodeRef> {
    let root = iget(sb, ROOT_INO)?;
    if root.mode() & S_IFMT != S_IFDIR {
        return Err(corruption(sb, ROOT_INO, "root inode is not a directory"));
    }
    Ok(root)
}

/// The figures of `statfs` (docs/format.md, "statfs").
pub(crate) struct StatFs {
    pub(crate) blocks: u64,
    pub(crate) bfree: u64,
    pub(crate) bavail: u64,
    pub(crate) files: u64,
    pub(crate) ffree: u64,
    pub(crate) fsid: [u32; 2],
}

pub(crate) fn statfs(sb: &SuperBlock) -> StatFs {
    let info = sb.info();
    let st = info.geometry.statfs(
        info.free_blocks.load(Ordering::Relaxed),
        info.free_inodes.load(Ordering::Relaxed),
        info.reserved_blocks,
    );
    StatFs {
        blocks: st.blocks,
        bfree: st.bfree,
        bavail: st.bavail,
        files: st.files,
        ffree: st.ffree,
        fsid: fsid(&info.uuid),
    }
}

/// Turns the `discard` mount option on or off (remount). Like ext4, a device that cannot
/// discard only gets a warning: nothing is discarded then.
pub(crate) fn set_discard(sb: &SuperBlock, on: bool) {
    if on && sb.discard_granularity().is_none() {
        device_warn!(
            sb.name(),
            "mounted with \"discard\", but the device does not support discard"
        );
    }
    sb.info().discard.store(on, Ordering::Relaxed);
}

/// The `commit=` option for `/proc/mounts`, when it is not the default.
pub(crate) fn show_commit_option(sb: &SuperBlock) -> Option<u64> {
    let seconds = sb.info().journal()?.interval_seconds();
    (seconds != u64::from(default_commit_seconds())).then_some(seconds)
}

/// The `errors=` option for `/proc/mounts`, when it differs from the superblock's default.
pub(crate) fn show_errors_option(sb: &SuperBlock) -> Option<&'static CStr> {
    let info = sb.info();
    let errors = info.errors();
    if errors == info.default_errors {
        return None;
    }
    match errors {
        ERRORS_CONTINUE => Some(c",errors=continue"),
        ERRORS_REMOUNT_RO => Some(c",errors=remount-ro"),
        ERRORS_PANIC => Some(c",errors=panic"),
        _ => None,
    }
}

/// How a superblock write changes the mount state.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SuperState {
    /// Going read-write: counts a mount and clears the clean flag until unmount.
    Mounting,
    /// Only the free counts.
    Counts,
    /// Frozen with the journal checkpointed: the device needs no recovery (a snapshot of it
    /// mounts as is) until writes start again.
    Frozen,
    /// Thawed: writes may start, so the journal may need recovery again.
    Thawed,
    /// Unmounting or going read-only: sets the clean flag.
    Clean,
}

/// Puts the free counts and the write time into `disk`.
fn write_counts(info: &SbInfo, disk: &mut DiskSuperBlock, now: i64) {
    disk.free_blocks
        .set(info.free_blocks.load(Ordering::Relaxed));
    disk.free_inodes
        .set(u32::try_from(info.free_inodes.load(Ordering::Relaxed)).unwrap_or(u32::MAX));
    disk.write_time.set(now);
}

/// Records the errors found since the last superblock write into `disk`.
fn record_errors(info: &SbInfo, disk: &mut DiskSuperBlock, now: i64) {
    let errors = info.errors_pending.swap(0, Ordering::Relaxed);
    if errors == 0 {
        return;
    }
    disk.state.set(disk.state.get() | STATE_ERRORS);
    disk.error_count
        .set(disk.error_count.get().saturating_add(errors));
    if disk.first_error_time.get() == 0 {
        disk.first_error_time.set(now);
    }
    disk.last_error_time.set(now);
}

/// Stops the filesystem for `FS_IOC_SHUTDOWN` (`flags`: 0 writes everything first, 1 commits
/// the journal first, 2 stops at once); later changes and data accesses fail with EIO, and the
/// next mount recovers from the journal.
pub(crate) fn shutdown(sb: &SuperBlock, flags: u32) -> Result {
    if flags > 2 {
        return Err(EINVAL);
    }
    let info = sb.info();
    if info.is_shutdown() {
        return Ok(());
    }
    if flags != 2 {
        // Best effort: the filesystem stops whether or not this works.
        let _ = super::journal::commit(sb);
    }
    info.shutdown.store(true, Ordering::Relaxed);
    super::journal::abort(sb);
    device_warn!(sb.name(), "shut down (flags {})", flags);
    Ok(())
}

/// The block device was removed while mounted (the VFS's `shutdown`): nothing can reach
/// the disk any more, so the filesystem stops at once, as `FS_IOC_SHUTDOWN` with flags 2
/// does (ext4 does the same); the next mount recovers from the journal.
pub(crate) fn device_removed(sb: &SuperBlock) {
    if !sb.info().is_shutdown() {
        device_err!(sb.name(), "block device removed while mounted");
    }
    // Flags 2 are valid, so this cannot fail.
    let _ = shutdown(sb, 2);
}

/// The label, NUL padded (`FS_IOC_GETFSLABEL`).
pub(crate) fn label(sb: &SuperBlock) -> Result<[u8; 64]> {
    let bh = sb.bread(0)?;
    let mut label = [0u8; 64];
    bh.read_locked(|block0| {
        let name = DiskSuperBlock::in_block(block0).label_bytes();
        for (d, s) in label.iter_mut().zip(name) {
            *d = *s;
        }
    });
    Ok(label)
}

/// Sets the label (`FS_IOC_SETFSLABEL`): EINVAL unless it is UTF-8 of at most 63 bytes.
/// Block 0 changes in a transaction, like the orphan list head it also holds.
pub(crate) fn set_label(sb: &SuperBlock, label: &[u8]) -> Result {
    let mut disk_label = DiskSuperBlock::zeroed();
    disk_label.set_label(label).map_err(|_| EINVAL)?;
    let _handle = super::journal::start(sb)?;
    let bh = sb.bread(0)?;
    super::journal::modify(sb, &bh, None, |block0| {
        let disk = DiskSuperBlock::in_block_mut(block0);
        disk.label = disk_label.label;
        disk.update_checksum();
    });
    Ok(())
}

/// Writes the superblock: the free counts and, with `state`, the mount state; `wait`
/// writes it to the device before returning.
pub(crate) fn write_super(sb: &SuperBlock, state: SuperState, wait: bool) -> Result {
    let info = sb.info();
    if state == SuperState::Counts && !info.dirty.swap(false, Ordering::Relaxed) && !wait {
        return Ok(());
    }
    let now = crate::vfs::real_seconds();
    let bh = sb.bread(0)?;
    if state == SuperState::Counts && info.journal.is_some() {
        // Block 0 is journaled (it holds the orphan list head): counts go with a transaction.
        let _handle = super::journal::start(sb)?;
        super::journal::modify(sb, &bh, None, |block0| {
            let disk = DiskSuperBlock::in_block_mut(block0);
            write_counts(info, disk, now);
            record_errors(info, disk, now);
            disk.update_checksum();
        });
        return Ok(());
    }
    bh.modify(None, |block0| {
        let disk = DiskSuperBlock::in_block_mut(block0);
        write_counts(info, disk, now);
        let journaled = info.journal.is_some();
        match state {
            SuperState::Mounting => {
                if journaled {
                    disk.feature_incompat
                        .set(disk.feature_incompat.get() | FEATURE_INCOMPAT_RECOVER);
                }
                disk.state.set(disk.state.get() & !STATE_CLEAN);
                disk.mount_count
                    .set(disk.mount_count.get().saturating_add(1));
                disk.mount_time.set(now);
            }
            SuperState::Clean => {
                disk.feature_incompat
                    .set(disk.feature_incompat.get() & !FEATURE_INCOMPAT_RECOVER);
                disk.state.set(disk.state.get() | STATE_CLEAN);
            }
            SuperState::Frozen => {
                disk.feature_incompat
                    .set(disk.feature_incompat.get() & !FEATURE_INCOMPAT_RECOVER);
            }
            SuperState::Thawed => {
                if journaled {
                    disk.feature_incompat
                        .set(disk.feature_incompat.get() | FEATURE_INCOMPAT_RECOVER);
                }
            }
            SuperState::Counts => {}
        }
        record_errors(info, disk, now);
        disk.update_checksum();
    });
    if wait {
        bh.sync()?;
    }
    Ok(())
}

/// Freezes the filesystem (`FIFREEZE`, device snapshots): everything committed is written
/// home and the log emptied, so the frozen device is consistent without replay.
pub(crate) fn freeze(sb: &SuperBlock) -> Result {
    if sb.info().is_shutdown() {
        return Err(EIO);
    }
    super::journal::flush(sb)?;
    write_super(sb, SuperState::Frozen, true)
}

/// Thaws the filesystem.
pub(crate) fn unfreeze(sb: &SuperBlock) -> Result {
    if sb.info().is_shutdown() {
        return Ok(());
    }
    write_super(sb, SuperState::Thawed, true)
}

/// Going read-only: the journal is checkpointed and the superblock marked clean, so the
/// device needs no recovery.
pub(crate) fn settle_read_only(sb: &SuperBlock) -> Result {
    super::journal::flush(sb)?;
    write_super(sb, SuperState::Clean, true)
}

/// Applies the options of a remount: `errors` (0 when not given) and read-only or
/// read-write. The VFS has written everything before a switch to read-only.
pub(crate) fn reconfigure(sb: &SuperBlock, errors: u32, read_only: bool) -> Result {
    let was_read_only = sb.is_read_only();
    if !read_only && was_read_only {
        if sb.info().unrecovered {
            device_err!(
                sb.name(),
                "mounted with norecovery: the journal must be replayed before writing"
            );
            return Err(EINVAL);
        }
        let geo = sb.info().geometry();
        if geo.unknown_ro_compat() != 0 {
            device_err!(
                sb.name(),
                "unknown read-only compatible features {:#x}, cannot remount read-write",
                geo.unknown_ro_compat()
            );
            return Err(EROFS);
        }
        write_super(sb, SuperState::Mounting, true)?;
    } else if read_only && !was_read_only {
        settle_read_only(sb)?;
    }
    if errors != 0 {
        sb.info().errors.store(errors, Ordering::Relaxed);
    }
    Ok(())
}
