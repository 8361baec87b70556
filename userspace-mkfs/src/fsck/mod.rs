//! fsck.aegisfs: checks and repairs an AegisFS filesystem, in the manner of e2fsck.
//!
//! `run` takes the arguments after the program name and its streams, and returns the
//! fsck(8) exit status (a sum of the conditions below).

pub mod check;
pub mod dev;
pub mod journal;
pub mod ui;

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::mounts::find_mount;
use crate::progress::Bar;
use check::{Checker, Outcome};
use dev::Device;
use ui::{Mode, Progress, Stop, Ui};

pub const PROG: &str = "fsck.aegisfs";

/// No errors.
pub const EXIT_OK: i32 = 0;
/// Errors were corrected.
pub const EXIT_NONDESTRUCT: i32 = 1;
/// Errors were corrected; reboot advised. Unused: fsck never repairs a mounted filesystem,
/// so no running kernel holds stale metadata afterwards.
pub const EXIT_REBOOT: i32 = 2;
/// Errors left uncorrected.
pub const EXIT_UNCORRECTED: i32 = 4;
/// Operational error.
pub const EXIT_ERROR: i32 = 8;
/// Usage or syntax error.
pub const EXIT_USAGE: i32 = 16;
/// Cancelled by the user.
pub const EXIT_CANCELLED: i32 = 32;

pub const USAGE: &str = "\
Usage: fsck.aegisfs [-n | -y | -p | -a] [-f] [-v] [-C fd] DEVICE

Check an AegisFS filesystem on DEVICE (a block device or a regular file) and repair
it: replay its journal, then check the superblock, group descriptors, bitmaps,
inodes, block maps, directories and link counts. DEVICE must not be mounted
(with -n a mounted one is checked read-only).

Options:
  -n        check only: open the device read-only and answer no to every fix
  -y        answer yes to every fix
  -p, -a    preen: fix what is safe without asking, stop at anything else
  -f        check even if the filesystem is marked clean
  -v        verbose summary
  -C fd     progress: a bar on the terminal for fd 0, e2fsck-style lines for fd > 0
  -t TYPE   accepted for compatibility with fsck(8) (must be aegisfs if given)
  -V        print the version and exit
  -h        print this help and exit
Without -n, -y or -p fsck asks before each fix (stdin must be a terminal).

Exit status, the sum of: 0 no errors, 1 errors corrected, 4 errors left
uncorrected, 8 operational error, 16 usage error, 32 cancelled.
";

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub mode: Option<Mode>,
    pub force: bool,
    pub verbose: bool,
    pub progress_fd: Option<i32>,
    pub device: PathBuf,
}

fn set_mode(mode: &mut Option<Mode>, m: Mode) -> Result<(), String> {
    match mode {
        Some(old) if *old != m => {
            Err("only one of the options -p/-a, -n or -y may be specified".into())
        }
        _ => {
            *mode = Some(m);
            Ok(())
        }
    }
}

/// Parses e2fsck-style options: clustered short flags, `-C` and `-t` with their value
/// attached or separate.
pub fn parse_args(args: &[OsString]) -> Result<Command<Options>, String> {
    let mut mode = None;
    let (mut force, mut verbose) = (false, false);
    let mut progress_fd = None;
    let mut device: Option<PathBuf> = None;
    let mut only_operands = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let s = arg.to_string_lossy();
        if only_operands || !s.starts_with('-') || s == "-" {
            if device.is_some() {
                return Err(format!("unexpected extra argument '{s}'"));
            }
            device = Some(PathBuf::from(arg));
            continue;
        }
        match s.as_ref() {
            "--" => {
                only_operands = true;
                continue;
            }
            "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            _ if s.starts_with("--") => return Err(format!("unknown option '{s}'")),
            _ => {}
        }
        let flags: Vec<char> = s[1..].chars().collect();
        let mut k = 0;
        while k < flags.len() {
            let c = flags[k];
            k += 1;
            match c {
                'n' => set_mode(&mut mode, Mode::ReadOnly)?,
                'y' => set_mode(&mut mode, Mode::Yes)?,
                'p' | 'a' => set_mode(&mut mode, Mode::Preen)?,
                'f' => force = true,
                'v' => verbose = true,
                'V' => return Ok(Command::Version),
                'h' => return Ok(Command::Help),
                'C' | 't' => {
                    let rest: String = flags[k..].iter().collect();
                    k = flags.len();
                    let value = if !rest.is_empty() {
                        rest
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].to_string_lossy().into_owned()
                    } else {
                        return Err(format!("option -{c} needs a value"));
                    };
                    if c == 'C' {
                        let fd: i32 = value
                            .parse()
                            .ok()
                            .filter(|&fd| fd >= 0)
                            .ok_or_else(|| format!("invalid progress descriptor '{value}'"))?;
                        progress_fd = Some(fd);
                    } else if value != "aegisfs" {
                        return Err(format!("this is the aegisfs checker, not '{value}'"));
                    }
                }
                _ => return Err(format!("invalid option -- '{c}'")),
            }
        }
    }
    let device = device.ok_or("no device given")?;
    Ok(Command::Run(Options {
        mode,
        force,
        verbose,
        progress_fd,
        device,
    }))
}

pub use crate::tool::{Command, Env};

/// Runs fsck with the arguments after the program name; returns the exit status.
pub fn run(args: &[OsString], env: &mut Env) -> i32 {
    let opts = match env.command(PROG, USAGE, parse_args(args), EXIT_USAGE) {
        Ok(opts) => opts,
        Err(status) => return status,
    };
    let mode = match opts.mode {
        Some(m) => m,
        None if env.stdin_is_tty => Mode::Ask,
        None => {
            let _ = writeln!(
                env.stderr,
                "{PROG}: need a terminal for interactive repairs; use -n, -y or -p"
            );
            return EXIT_USAGE;
        }
    };
    let name = opts.device.display().to_string();
    match find_mount(&opts.device, &env.mounts) {
        Ok(Some(why)) if mode != Mode::ReadOnly => {
            let _ = writeln!(
                env.stderr,
                "{PROG}: {why}: will not repair a mounted filesystem (use -n to check it)"
            );
            return EXIT_ERROR;
        }
        Ok(Some(why)) => {
            let _ = writeln!(
                env.stderr,
                "{PROG}: warning: {why}; a read-only check of a mounted filesystem may report \
                 errors that are not there"
            );
        }
        Ok(None) => {}
        Err(e) => {
            env.error(PROG, e);
            return EXIT_ERROR;
        }
    }
    let dev = match Device::open(&opts.device, mode != Mode::ReadOnly) {
        Ok(d) => d,
        Err(e) => {
            env.error(PROG, e);
            return EXIT_ERROR;
        }
    };
    let progress = match opts.progress_fd {
        Some(0) if env.stdout_is_tty => Progress::Bar(Bar::new(&name)),
        Some(0) | None => Progress::None,
        // SAFETY: the caller handed this descriptor to us for progress output (fsck(8)
        // -C fd); it is owned from here on and closed at exit.
        Some(fd) => Progress::Fd(unsafe { File::from_raw_fd(fd) }),
    };
    ui::install_cancel_handler();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut ui = Ui::new(env.stdout, env.stdin, mode, name.clone(), progress);
    let result = check(dev, &mut ui, opts.force, now);
    ui.clear_bar();
    let (fixed, left) = (ui.fixed, ui.left);
    let out = &mut *ui.out;
    let mut status = EXIT_OK;
    match result {
        Ok(o) => print_summary(out, &name, &o, opts.verbose, mode == Mode::Preen),
        Err(Stop::Error(e)) => {
            env.error(PROG, format_args!("{name}: {e}"));
            return EXIT_ERROR;
        }
        Err(Stop::Restart) => {
            env.error(
                PROG,
                format_args!("{name}: internal error: unhandled restart"),
            );
            return EXIT_ERROR;
        }
        Err(Stop::Preen) => status |= EXIT_UNCORRECTED,
        Err(Stop::Cancelled) => {
            let _ = writeln!(out, "{name}: check cancelled by the user");
            status |= EXIT_CANCELLED;
        }
    }
    if fixed > 0 {
        status |= EXIT_NONDESTRUCT;
        if mode != Mode::Preen {
            let _ = writeln!(out, "\n{name}: ***** FILE SYSTEM WAS MODIFIED *****");
        }
    }
    if left > 0 {
        status |= EXIT_UNCORRECTED;
        if mode != Mode::Preen {
            let _ = writeln!(
                out,
                "\n{name}: ********** WARNING: Filesystem still has errors **********"
            );
        }
    }
    status
}

fn check(dev: Device, ui: &mut Ui, force: bool, now: i64) -> Result<Outcome, Stop> {
    let mut c = Checker::open(dev, ui, now)?;
    if c.may_skip(force) {
        return Ok(c.recorded_outcome());
    }
    c.run()
}

fn print_summary(out: &mut dyn Write, name: &str, o: &Outcome, verbose: bool, preen: bool) {
    if o.skipped_clean {
        let _ = writeln!(
            out,
            "{name}: clean, {}/{} files, {}/{} blocks",
            o.used_inodes, o.inodes, o.used_blocks, o.blocks
        );
        return;
    }
    let permille = (o.fragmented * 1000)
        .checked_div(o.used_inodes)
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{name}: {}/{} files ({}.{}% non-contiguous), {}/{} blocks, {} directories",
        o.used_inodes,
        o.inodes,
        permille / 10,
        permille % 10,
        o.used_blocks,
        o.blocks,
        o.directories
    );
    if verbose && !preen {
        let _ = writeln!(
            out,
            "\n{:>12} inodes used ({} directories)\n{:>12} non-contiguous files\n{:>12} blocks \
             used of {}",
            o.used_inodes, o.directories, o.fragmented, o.used_blocks, o.blocks
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command<Options>, String> {
        let v: Vec<OsString> = args.iter().map(Into::into).collect();
        parse_args(&v)
    }

    #[test]
    fn options() {
        assert_eq!(
            parse(&["-fyC0", "/dev/x"]),
            Ok(Command::Run(Options {
                mode: Some(Mode::Yes),
                force: true,
                verbose: false,
                progress_fd: Some(0),
                device: "/dev/x".into(),
            }))
        );
        assert_eq!(
            parse(&["-a", "-C", "5", "-t", "aegisfs", "-v", "--", "-dev"]),
            Ok(Command::Run(Options {
                mode: Some(Mode::Preen),
                force: false,
                verbose: true,
                progress_fd: Some(5),
                device: "-dev".into(),
            }))
        );
        // -a and -p are the same mode, so both may be given.
        assert!(parse(&["-a", "-p", "d"]).is_ok());
        assert_eq!(parse(&["-V"]), Ok(Command::Version));
        assert_eq!(parse(&["-h", "d"]), Ok(Command::Help));
    }

    #[test]
    fn usage_errors() {
        let conflict = "only one of the options -p/-a, -n or -y may be specified";
        assert_eq!(parse(&["-n", "-y", "d"]), Err(conflict.to_string()));
        assert_eq!(parse(&["-pn", "d"]), Err(conflict.to_string()));
        assert_eq!(parse(&["-n"]), Err("no device given".to_string()));
        assert_eq!(
            parse(&["-n", "a", "b"]),
            Err("unexpected extra argument 'b'".to_string())
        );
        assert_eq!(
            parse(&["-q", "d"]),
            Err("invalid option -- 'q'".to_string())
        );
        assert_eq!(parse(&["-C"]), Err("option -C needs a value".to_string()));
        assert_eq!(
            parse(&["-C", "x", "d"]),
            Err("invalid progress descriptor 'x'".to_string())
        );
        assert_eq!(
            parse(&["-t", "ext4", "d"]),
            Err("this is the aegisfs checker, not 'ext4'".to_string())
        );
        assert_eq!(
            parse(&["--bogus", "d"]),
            Err("unknown option '--bogus'".to_string())
        );
    }
}
