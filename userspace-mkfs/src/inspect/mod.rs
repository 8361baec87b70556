//! aegisfs-inspect: a read-only view of an AegisFS filesystem, in the manner of dumpe2fs
//! and debugfs: the superblock, the groups, free space fragmentation, an inode and its
//! block map, a directory and its index, the journal's transactions.
//!
//! The device is opened read-only and nothing is ever written. Every value read from it is
//! checked before it is used: what fails a check is printed with a `BAD` marker and the
//! exit status is then 1; a structure too damaged to go on with is an error (exit 1).

mod dir;
mod freefrag;
mod groups;
mod inode;
mod journal;
mod superblock;

use std::ffi::OsString;
use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;

use aegisfs_format::disk::SuperBlock;
use aegisfs_format::geometry::Geometry;

use crate::fsck::dev::{Block, Device};
use crate::fsck::ui::Stop;
use crate::mounts::find_mount;
use crate::progress::Bar;
pub use crate::tool::{Command, Env};

pub const PROG: &str = "aegisfs-inspect";

/// Everything printed, nothing found wrong.
pub const EXIT_OK: i32 = 0;
/// Something was marked BAD, or a structure is too damaged to show.
pub const EXIT_CORRUPT: i32 = 1;
/// Usage or syntax error.
pub const EXIT_USAGE: i32 = 2;
/// The device could not be opened or read.
pub const EXIT_ERROR: i32 = 4;

pub const USAGE: &str = "\
Usage: aegisfs-inspect [-q] DEVICE [COMMAND]

Show the on-disk structures of an AegisFS filesystem. DEVICE (a block device or
an image file) is opened read-only; nothing is ever written.

Commands:
  super          every superblock field (the default)
  groups         each group's layout, descriptor, free counts and checksums
  freefrag       free space fragmentation: a histogram of free extent sizes
  inode INO|PATH an inode's fields and block map (PATH is absolute: /a/b)
  dir INO|PATH   a directory's entries and, if indexed, its index
  journal        the journal superblock and the transactions recovery would see

Options:
  -q, --quiet    no progress bar
  -V, --version  print the version and exit
  -h, --help     print this help and exit

Exit status: 0 nothing wrong, 1 something marked BAD or unusable, 2 usage error,
4 the device cannot be read.
";

/// What to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    Super,
    Groups,
    Freefrag,
    Inode(Target),
    Dir(Target),
    Journal,
}

/// An inode named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Ino(u32),
    /// An absolute path, looked up from the root directory.
    Path(String),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub quiet: bool,
    pub device: PathBuf,
    pub view: View,
}

fn parse_target(cmd: &str, arg: Option<&OsString>) -> Result<Target, String> {
    let arg = arg.ok_or_else(|| format!("'{cmd}' needs an inode number or a path"))?;
    let s = arg
        .to_str()
        .ok_or_else(|| format!("'{}' is not valid UTF-8", arg.to_string_lossy()))?;
    if s.starts_with('/') {
        return Ok(Target::Path(s.to_string()));
    }
    s.parse()
        .ok()
        .filter(|&ino| ino > 0)
        .map(Target::Ino)
        .ok_or_else(|| format!("'{s}' is neither an inode number nor an absolute path"))
}

/// Parses the arguments after the program name: options anywhere before `--`, then
/// `DEVICE [COMMAND [ARG]]`.
pub fn parse_args(args: &[OsString]) -> Result<Command<Options>, String> {
    let mut quiet = false;
    let mut operands: Vec<&OsString> = Vec::new();
    let mut only_operands = false;
    for arg in args {
        let s = arg.to_string_lossy();
        if only_operands || !s.starts_with('-') || s == "-" {
            operands.push(arg);
            continue;
        }
        match s.as_ref() {
            "--" => only_operands = true,
            "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            "--quiet" => quiet = true,
            _ if s.starts_with("--") => return Err(format!("unknown option '{s}'")),
            _ => {
                for c in s[1..].chars() {
                    match c {
                        'q' => quiet = true,
                        'h' => return Ok(Command::Help),
                        'V' => return Ok(Command::Version),
                        _ => return Err(format!("invalid option -- '{c}'")),
                    }
                }
            }
        }
    }
    let mut operands = operands.into_iter();
    let device = PathBuf::from(operands.next().ok_or("no device given")?);
    let cmd = operands.next().map(|c| c.to_string_lossy().into_owned());
    let view = match cmd.as_deref() {
        None | Some("super") => View::Super,
        Some("groups") => View::Groups,
        Some("freefrag") => View::Freefrag,
        Some("journal") => View::Journal,
        Some(c @ "inode") => View::Inode(parse_target(c, operands.next())?),
        Some(c @ "dir") => View::Dir(parse_target(c, operands.next())?),
        Some(c) => return Err(format!("unknown command '{c}'")),
    };
    if let Some(extra) = operands.next() {
        return Err(format!(
            "unexpected extra argument '{}'",
            extra.to_string_lossy()
        ));
    }
    Ok(Command::Run(Options {
        quiet,
        device,
        view,
    }))
}

/// Why a view could not be shown in full.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A structure too damaged to go on with (exit 1).
    Corrupt(String),
    /// The device could not be read, or the output written (exit 4).
    Io(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Failure {
        Failure::Io(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Io(format!("cannot write the output: {e}"))
    }
}

impl From<Stop> for Failure {
    fn from(s: Stop) -> Failure {
        match s {
            Stop::Error(e) => Failure::Io(e),
            other => Failure::Io(format!("internal error: unexpected {other:?}")),
        }
    }
}

pub(crate) type Res<T> = Result<T, Failure>;

/// A corruption failure from a message.
pub(crate) fn corrupt<T>(msg: impl Display) -> Res<T> {
    Err(Failure::Corrupt(msg.to_string()))
}

/// The device being inspected and where the view goes.
pub(crate) struct Inspector<'a> {
    dev: Device,
    out: &'a mut dyn Write,
    /// Drawn while a long scan runs (stdout a terminal, no `-q`).
    bar: Option<Bar>,
    /// Values printed with a `BAD` marker.
    problems: u64,
}

impl Inspector<'_> {
    fn read(&self, b: u64) -> Res<Box<Block>> {
        Ok(self.dev.read_new(b)?)
    }

    /// Notes a value that fails a check and returns the marker printed after it.
    fn bad(&mut self) -> &'static str {
        self.problems += 1;
        "BAD"
    }

    /// `ok`, or `BAD` (counted) when `good` is false.
    fn verdict(&mut self, good: bool) -> &'static str {
        if good {
            "ok"
        } else {
            self.bad()
        }
    }

    fn progress(&mut self, cur: u64, max: u64) {
        if let Some(bar) = &mut self.bar {
            bar.update(self.out, cur, max, "");
        }
    }

    fn clear_progress(&mut self) {
        if let Some(bar) = &mut self.bar {
            bar.clear(self.out);
        }
    }

    /// The superblock's geometry; a superblock that fails validation leaves nothing else
    /// to trust.
    fn geometry(&self) -> Res<Geometry> {
        let block0 = self.read(0)?;
        SuperBlock::in_block(&block0)
            .validate(self.dev.blocks)
            .or_else(|e| {
                corrupt(format_args!(
                    "the superblock is unusable: {} (the 'super' command shows its fields)",
                    e.msg()
                ))
            })
    }
}

/// Runs aegisfs-inspect with the arguments after the program name; returns the exit
/// status.
pub fn run(args: &[OsString], env: &mut Env) -> i32 {
    let opts = match env.command(PROG, USAGE, parse_args(args), EXIT_USAGE) {
        Ok(opts) => opts,
        Err(status) => return status,
    };
    let name = opts.device.display().to_string();
    match find_mount(&opts.device, &env.mounts) {
        Ok(Some(why)) => env.error(
            PROG,
            format_args!("warning: {why}; what is shown may be stale or inconsistent"),
        ),
        Ok(None) => {}
        Err(e) => env.error(
            PROG,
            format_args!("warning: cannot tell whether {name} is mounted: {e}"),
        ),
    }
    let dev = match Device::open(&opts.device, false) {
        Ok(d) => d,
        Err(e) => {
            env.error(PROG, e);
            return EXIT_ERROR;
        }
    };
    let mut ins = Inspector {
        dev,
        out: env.stdout,
        bar: (env.stdout_is_tty && !opts.quiet).then(|| Bar::new(&name)),
        problems: 0,
    };
    let result = match &opts.view {
        View::Super => superblock::show(&mut ins),
        View::Groups => groups::show(&mut ins),
        View::Freefrag => freefrag::show(&mut ins),
        View::Inode(t) => inode::show(&mut ins, t),
        View::Dir(t) => dir::show(&mut ins, t),
        View::Journal => journal::show(&mut ins),
    };
    ins.clear_progress();
    let problems = ins.problems;
    match result {
        Err(Failure::Io(e)) => {
            env.error(PROG, format_args!("{name}: {e}"));
            EXIT_ERROR
        }
        Err(Failure::Corrupt(e)) => {
            env.error(PROG, format_args!("{name}: {e}"));
            EXIT_CORRUPT
        }
        Ok(()) if problems > 0 => {
            env.error(PROG, format_args!("{name}: {problems} value(s) marked BAD"));
            EXIT_CORRUPT
        }
        Ok(()) => EXIT_OK,
    }
}

/// `sec` seconds and `nsec` nanoseconds since the epoch as a UTC date and time
/// (`YYYY-MM-DD hh:mm:ss[.nnnnnnnnn] UTC`), proleptic Gregorian.
pub(crate) fn utc(sec: i64, nsec: Option<u32>) -> String {
    let days = sec.div_euclid(86_400);
    let secs = sec.rem_euclid(86_400);
    // Days since 0000-03-01, so that a leap day ends each 4-year cycle; eras are 400
    // years (146 097 days). i128 keeps every i64 second count in range.
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    let frac = nsec.map_or(String::new(), |n| format!(".{n:09}"));
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}{frac} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A name from disk for display: printable ASCII as is, every other byte as `\xNN`.
pub(crate) fn escape_name(name: &[u8]) -> String {
    name.iter()
        .map(|&b| match b {
            b'\\' => "\\\\".to_string(),
            0x21..=0x7E | b' ' => char::from(b).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

/// `blocks` 4096-byte blocks in binary units (`12.5 MiB`).
pub(crate) fn size_of_blocks(blocks: u64) -> String {
    human_bytes(u128::from(blocks) * 4096)
}

fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut whole = bytes;
    while whole >= 1024 && unit + 1 < UNITS.len() {
        whole /= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let scale = 1u128 << (10 * unit);
    let tenths = bytes * 10 / scale;
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command<Options>, String> {
        let v: Vec<OsString> = args.iter().map(Into::into).collect();
        parse_args(&v)
    }

    fn view(args: &[&str]) -> View {
        match parse(args) {
            Ok(Command::Run(o)) => o.view,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn commands_and_options() {
        assert_eq!(view(&["img"]), View::Super);
        assert_eq!(view(&["img", "super"]), View::Super);
        assert_eq!(view(&["-q", "img", "groups"]), View::Groups);
        assert_eq!(view(&["img", "freefrag", "-q"]), View::Freefrag);
        assert_eq!(view(&["img", "inode", "12"]), View::Inode(Target::Ino(12)));
        assert_eq!(
            view(&["img", "dir", "/a/b"]),
            View::Dir(Target::Path("/a/b".into()))
        );
        assert_eq!(view(&["--", "img", "journal"]), View::Journal);
        assert_eq!(parse(&["-qV"]), Ok(Command::Version));
        assert_eq!(parse(&["img", "-h"]), Ok(Command::Help));
        assert_eq!(parse(&["--version"]), Ok(Command::Version));
    }

    #[test]
    fn usage_errors() {
        let err = |a: &[&str]| parse(a).unwrap_err();
        assert_eq!(err(&[]), "no device given");
        assert_eq!(err(&["img", "frob"]), "unknown command 'frob'");
        assert_eq!(
            err(&["img", "inode"]),
            "'inode' needs an inode number or a path"
        );
        assert_eq!(
            err(&["img", "dir", "a/b"]),
            "'a/b' is neither an inode number nor an absolute path"
        );
        assert_eq!(
            err(&["img", "inode", "0"]),
            "'0' is neither an inode number nor an absolute path"
        );
        assert_eq!(err(&["img", "super", "x"]), "unexpected extra argument 'x'");
        assert_eq!(err(&["-x", "img"]), "invalid option -- 'x'");
        assert_eq!(err(&["--bogus", "img"]), "unknown option '--bogus'");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0, None), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400, None), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            utc(1_700_000_000, Some(5)),
            "2023-11-14 22:13:20.000000005 UTC"
        );
        assert_eq!(utc(-1, None), "1969-12-31 23:59:59 UTC");
        assert_eq!(utc(4_102_444_800, None), "2100-01-01 00:00:00 UTC");
        // Extremes do not overflow.
        assert!(utc(i64::MAX, Some(999_999_999)).ends_with(" UTC"));
        assert!(utc(i64::MIN, None).ends_with(" UTC"));
    }

    #[test]
    fn names_and_sizes() {
        assert_eq!(escape_name(b"a b\\\n\xff"), "a b\\\\\\x0a\\xff");
        assert_eq!(size_of_blocks(1), "4.0 KiB");
        assert_eq!(human_bytes(1000), "1000 B");
        assert_eq!(size_of_blocks(16384), "64.0 MiB");
        assert_eq!(size_of_blocks(3), "12.0 KiB");
    }
}
