// SPDX-License-Identifier: GPL-2.0

//! The thin layer between the kernel's C VFS and AegisFS.
//!
//! This is the only place with `unsafe` code: it declares the C functions the kernel crate's
//! bindings lack (`ffi`), wraps kernel objects in safe types (`BufferHead`, `SuperBlock`,
//! `Inode`, ...) and holds the C-callable entry points that forward to the safe filesystem
//! logic in `crate::fs`.

pub(crate) mod buffer;
pub(crate) mod dentry;
mod export;
mod ffi;
mod fiemap;
pub(crate) mod fs_type;
pub(crate) mod inode;
mod ioctl;
pub(crate) mod log;
mod namei_ops;
pub(crate) mod ops;
pub(crate) mod super_block;
pub(crate) mod xattr;

/// Lets other tasks run during a long walk over cached blocks (a no-op on preemptible
/// kernels).
pub(crate) fn cond_resched() {
    // SAFETY: Called from process context without locks held (every caller is a VFS
    // operation that may sleep).
    unsafe { ffi::aegisfs_vfs_cond_resched() }
}

/// Whether a long operation (FITRIM) should stop early: the task got a fatal signal or is
/// being frozen.
pub(crate) fn should_stop() -> bool {
    // SAFETY: Only reads the current task's signal and freezer state.
    unsafe { ffi::aegisfs_vfs_should_stop() }
}

/// Whether the current task may use the reserved blocks (`CAP_SYS_RESOURCE`).
pub(crate) fn capable_resource() -> bool {
    // SAFETY: Only reads the current task's credentials.
    unsafe { ffi::aegisfs_vfs_capable_resource() }
}

/// The wall-clock time in seconds.
pub(crate) fn real_seconds() -> i64 {
    // SAFETY: Reads the clock; callable from any context.
    unsafe { kernel::bindings::ktime_get_real_seconds() }
}

/// Raw CRC32C update of `crc` with `data`, no inversion in or out: the kernel's
/// `crc32c()`, the same convention as `format/src/crc32c.rs`.
pub(crate) fn crc32c(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is a valid slice for `data.len()` bytes; `crc32c()` only reads them.
    unsafe { ffi::crc32c(crc, data.as_ptr().cast(), data.len()) }
}

/// A random 32-bit number (inode generations).
pub(crate) fn random_u32() -> u32 {
    // SAFETY: The kernel's random number generator may be called from any context.
    unsafe { kernel::bindings::get_random_u32() }
}

/// The marker of the journal handle the current task holds (0: none).
pub(crate) fn task_handle() -> usize {
    // SAFETY: Reads a field of the current task, which only this task writes.
    unsafe { ffi::aegisfs_vfs_journal_info() as usize }
}

/// Sets the marker of the journal handle the current task holds.
pub(crate) fn set_task_handle(marker: usize) {
    // SAFETY: Writes a field of the current task that only filesystems use, as a marker
    // that is never dereferenced.
    unsafe { ffi::aegisfs_vfs_set_journal_info(marker as *mut kernel::ffi::c_void) }
}

/// Makes the current task's allocations avoid filesystem reclaim until the returned
/// value is given to [`nofs_restore`] (a journal handle must not recurse into a filesystem).
pub(crate) fn nofs_save() -> u32 {
    // SAFETY: Changes only the current task's allocation flags.
    unsafe { ffi::aegisfs_vfs_nofs_save() }
}

/// Undoes [`nofs_save`].
pub(crate) fn nofs_restore(flags: u32) {
    // SAFETY: `flags` came from `nofs_save` in this task.
    unsafe { ffi::aegisfs_vfs_nofs_restore(flags) }
}
