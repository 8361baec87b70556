//! fsck.aegisfs: check and repair an AegisFS filesystem (see `aegisfs_tools::fsck`).

use std::ffi::OsString;
use std::io::IsTerminal;

use aegisfs_tools::fsck::{run, Env};
use aegisfs_tools::mounts::MountSources;

fn main() {
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
