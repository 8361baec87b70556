//! What mkfs.aegisfs, fsck.aegisfs and aegisfs-inspect share around their work: the
//! environment they run in, the `main` of their binaries, and the answers to `--help`,
//! `--version` and usage errors.

use std::ffi::OsString;
use std::fmt::Display;
use std::io::{BufRead, IsTerminal, Write};

use crate::mounts::MountSources;

/// What a tool talks to besides its device: output streams, stdin (mkfs asks on it before
/// overwriting, whatever it is; fsck before a fix, only when it is a terminal), whether
/// stdout is a terminal (fsck's progress bar), and where mounts are looked up.
pub struct Env<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub stdin: &'a mut dyn BufRead,
    pub stdin_is_tty: bool,
    pub stdout_is_tty: bool,
    pub mounts: MountSources,
}

/// What a tool's command line asks for: its work with options `T`, or `--help`, or
/// `--version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<T> {
    Run(T),
    Help,
    Version,
}

impl Env<'_> {
    /// Answers `--help`, `--version` and a command line error (with `usage_status`); returns
    /// the options to run with, or the exit status to end with.
    pub fn command<T, E: Display>(
        &mut self,
        prog: &str,
        usage: &str,
        parsed: Result<Command<T>, E>,
        usage_status: i32,
    ) -> Result<T, i32> {
        match parsed {
            Ok(Command::Run(opts)) => Ok(opts),
            Ok(Command::Help) => {
                self.help(usage);
                Err(0)
            }
            Ok(Command::Version) => {
                self.version(prog);
                Err(0)
            }
            Err(e) => {
                self.usage_error(prog, e, usage);
                Err(usage_status)
            }
        }
    }

    /// `--help`: the usage on stdout.
    pub fn help(&mut self, usage: &str) {
        let _ = self.stdout.write_all(usage.as_bytes());
    }

    /// `--version`: `PROG VERSION` on stdout.
    pub fn version(&mut self, prog: &str) {
        let _ = writeln!(self.stdout, "{prog} {}", env!("CARGO_PKG_VERSION"));
    }

    /// `PROG: MESSAGE` on stderr.
    pub fn error(&mut self, prog: &str, msg: impl Display) {
        let _ = writeln!(self.stderr, "{prog}: {msg}");
    }

    /// A bad command line: the message, then the usage, on stderr.
    pub fn usage_error(&mut self, prog: &str, msg: impl Display, usage: &str) {
        self.error(prog, msg);
        let _ = self.stderr.write_all(usage.as_bytes());
    }
}

/// The `main` of every binary: runs `run` with the process's arguments (after the
/// program name), standard streams and mount table, and exits with its status.
pub fn main(run: fn(&[OsString], &mut Env) -> i32) -> ! {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let stdin = std::io::stdin();
    let stdin_is_tty = stdin.is_terminal();
    let stdout_is_tty = std::io::stdout().is_terminal();
    let mut stdin = stdin.lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut env = Env {
        stdout: &mut stdout,
        stderr: &mut stderr,
        stdin: &mut stdin,
        stdin_is_tty,
        stdout_is_tty,
        mounts: MountSources::default(),
    };
    let status = run(&args, &mut env);
    drop(env);
    std::process::exit(status);
}
