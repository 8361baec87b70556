//! How fsck talks: problem reports and the fix decision for each (`-n` never fixes, `-y`
//! always does, `-p` fixes only what is safe without a human), progress, cancellation.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::progress::Bar;

/// Set by the SIGINT handler; polled between units of work.
pub static CANCELLED: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `-n`: report, change nothing.
    ReadOnly,
    /// `-y`: fix everything.
    Yes,
    /// `-p` / `-a`: fix what is safe, stop at anything else.
    Preen,
    /// No mode option: ask on the terminal.
    Ask,
}

/// Why a check stopped early.
#[derive(Debug)]
pub enum Stop {
    /// An I/O or other operational failure (exit 8).
    Error(String),
    /// Preen met a problem it may not fix alone (exit 4).
    Preen,
    /// SIGINT (exit 32).
    Cancelled,
    /// Internal to the checker, which then checks again from pass 1, reading every inode
    /// table block (never returned by `Checker::run`).
    Restart,
}

impl From<String> for Stop {
    fn from(e: String) -> Stop {
        Stop::Error(e)
    }
}

pub type Res<T> = Result<T, Stop>;

/// Where `-C` progress goes.
pub enum Progress {
    None,
    /// `-C 0` on a terminal: a bar redrawn on stdout.
    Bar(Bar),
    /// `-C fd`: `pass current max device` lines on that descriptor, as e2fsck writes them.
    Fd(std::fs::File),
}

pub struct Ui<'a> {
    pub out: &'a mut dyn Write,
    pub input: &'a mut dyn BufRead,
    pub mode: Mode,
    pub device: String,
    pub progress: Progress,
    /// Problems found (fixed or not).
    pub found: u64,
    /// Problems fixed.
    pub fixed: u64,
    /// Problems left.
    pub left: u64,
    /// Decisions being recorded, by message, while the check may still restart.
    recording: Option<HashMap<String, bool>>,
    /// Decisions of the check before a restart: a problem met again keeps its answer and
    /// is neither printed nor counted a second time.
    replay: HashMap<String, bool>,
}

impl<'a> Ui<'a> {
    pub fn new(
        out: &'a mut dyn Write,
        input: &'a mut dyn BufRead,
        mode: Mode,
        device: String,
        progress: Progress,
    ) -> Ui<'a> {
        Ui {
            out,
            input,
            mode,
            device,
            progress,
            found: 0,
            fixed: 0,
            left: 0,
            recording: None,
            replay: HashMap::new(),
        }
    }

    pub fn preen(&self) -> bool {
        self.mode == Mode::Preen
    }

    /// A line of information (not a problem); preen mode stays quiet.
    pub fn info(&mut self, msg: &str) {
        if !self.preen() {
            self.clear_bar();
            let _ = writeln!(self.out, "{msg}");
        }
    }

    /// A line printed in every mode, prefixed with the device in preen mode.
    pub fn say(&mut self, msg: &str) {
        self.clear_bar();
        if self.preen() {
            let _ = writeln!(self.out, "{}: {msg}", self.device);
        } else {
            let _ = writeln!(self.out, "{msg}");
        }
    }

    /// Starts recording decisions: the check may restart until [`Ui::settle`].
    pub fn record(&mut self) {
        self.recording = Some(HashMap::new());
    }

    /// The check restarts: the decisions recorded so far are replayed.
    pub fn restart(&mut self) {
        self.replay = self.recording.take().unwrap_or_default();
    }

    /// The check can no longer restart.
    pub fn settle(&mut self) {
        self.recording = None;
        self.replay = HashMap::new();
    }

    fn remember(&mut self, msg: &str, fix: bool) {
        if let Some(r) = &mut self.recording {
            r.insert(msg.to_string(), fix);
        }
    }

    /// Reports a problem and decides whether to fix it. `safe`: preen may fix it alone.
    pub fn problem(&mut self, msg: &str, safe: bool) -> Res<bool> {
        if let Some(&fix) = self.replay.get(msg) {
            return Ok(fix);
        }
        let fix = self.decide(msg, safe)?;
        self.remember(msg, fix);
        Ok(fix)
    }

    fn decide(&mut self, msg: &str, safe: bool) -> Res<bool> {
        self.clear_bar();
        self.found += 1;
        let fix = match self.mode {
            Mode::ReadOnly => {
                let _ = writeln!(self.out, "{msg}.  Fix? no");
                false
            }
            Mode::Yes => {
                let _ = writeln!(self.out, "{msg}.  Fix? yes");
                true
            }
            Mode::Preen if safe => {
                let _ = writeln!(self.out, "{}: {msg}.  FIXED.", self.device);
                true
            }
            Mode::Preen => {
                let _ = writeln!(
                    self.out,
                    "{dev}: {msg}.\n\n{dev}: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.\n\t\
                     (i.e., without -a or -p options)",
                    dev = self.device
                );
                self.left += 1;
                return Err(Stop::Preen);
            }
            Mode::Ask => self.ask(msg)?,
        };
        if fix {
            self.fixed += 1;
        } else {
            self.left += 1;
        }
        Ok(fix)
    }

    /// A problem nothing can fix here.
    pub fn unfixable(&mut self, msg: &str) {
        if self.replay.contains_key(msg) {
            return;
        }
        self.remember(msg, false);
        self.clear_bar();
        self.found += 1;
        self.left += 1;
        if self.preen() {
            let _ = writeln!(self.out, "{}: {msg}.", self.device);
        } else {
            let _ = writeln!(self.out, "{msg}.");
        }
    }

    fn ask(&mut self, msg: &str) -> Res<bool> {
        loop {
            let _ = write!(self.out, "{msg}.  Fix<y>? ");
            let _ = self.out.flush();
            let mut line = String::new();
            match self.input.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = writeln!(self.out, "no");
                    return Ok(false);
                }
                Ok(_) => {}
            }
            check_cancel()?;
            match line.trim() {
                "" | "y" | "Y" | "yes" => return Ok(true),
                "n" | "N" | "no" => return Ok(false),
                _ => {}
            }
        }
    }

    /// Progress of `pass` (1..=5): `cur` of `max` units done.
    pub fn progress(&mut self, pass: u8, cur: u64, max: u64) {
        match &mut self.progress {
            Progress::None => {}
            Progress::Fd(f) => {
                let _ = writeln!(f, "{pass} {cur} {max} {}", self.device);
            }
            Progress::Bar(bar) => bar.update(self.out, cur, max, &format!(" (pass {pass})")),
        }
    }

    /// Erases a progress bar before other output.
    pub fn clear_bar(&mut self) {
        if let Progress::Bar(bar) = &mut self.progress {
            bar.clear(self.out);
        }
    }
}

/// `Err(Stop::Cancelled)` once SIGINT was received.
pub fn check_cancel() -> Res<()> {
    if CANCELLED.load(Ordering::Relaxed) {
        Err(Stop::Cancelled)
    } else {
        Ok(())
    }
}

extern "C" fn on_sigint(_: libc::c_int) {
    CANCELLED.store(true, Ordering::Relaxed);
}

/// Makes SIGINT (and SIGTERM) cancel the check cleanly instead of killing it mid-write.
pub fn install_cancel_handler() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}
