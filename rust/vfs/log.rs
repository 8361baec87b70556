// SPDX-License-Identifier: GPL-2.0

//! Kernel log lines of the form `aegisfs (DEVICE): message`.
//!
//! The kernel crate's `pr_*!` macros put `aegisfs: ` in front of every line; AegisFS lines
//! name the device instead, like ext4's `EXT4-fs (vdb): ...`, so they are printed here.

use core::ffi::c_void;
use core::fmt;
use kernel::bindings;

/// Severity of a log line.
#[derive(Clone, Copy)]
pub(crate) enum Level {
    Error,
    Warning,
}

/// Prints `aegisfs (device): message` at `level`; `message` has no trailing newline.
pub(crate) fn device_line(level: Level, device: fmt::Arguments<'_>, message: fmt::Arguments<'_>) {
    let format: &'static [u8] = match level {
        Level::Error => b"\x013aegisfs (%pA): %pA\n\0",
        Level::Warning => b"\x014aegisfs (%pA): %pA\n\0",
    };
    // SAFETY: `format` is NUL-terminated and has exactly two `%pA` conversions, each given a
    // pointer to a `fmt::Arguments` that outlives the call, which is what the kernel's `%pA`
    // (`rust_fmt_argument`) expects.
    unsafe {
        bindings::_printk(
            format.as_ptr().cast(),
            core::ptr::from_ref(&device).cast::<c_void>(),
            core::ptr::from_ref(&message).cast::<c_void>(),
        );
    }
}

/// Logs an error about the device named `$dev` (a `&str`): `aegisfs ($dev): message`.
macro_rules! device_err {
    ($dev:expr, $($arg:tt)+) => {
        $crate::vfs::log::device_line(
            $crate::vfs::log::Level::Error,
            format_args!("{}", $dev),
            format_args!($($arg)+),
        )
    };
}

/// Logs a warning about the device named `$dev`.
macro_rules! device_warn {
    ($dev:expr, $($arg:tt)+) => {
        $crate::vfs::log::device_line(
            $crate::vfs::log::Level::Warning,
            format_args!("{}", $dev),
            format_args!($($arg)+),
        )
    };
}

pub(crate) use {device_err, device_warn};
