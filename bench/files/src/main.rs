//! aegisfs-bench-files: the metadata workload of `make bench`, in a compiled program so that
//! the time measured is the filesystem's, not an interpreter's.
//!
//!   aegisfs-bench-files create DIR N   create empty files DIR/f0000000 .. N-1 (mode 0644)
//!   aegisfs-bench-files stat DIR N     stat each of them by name
//!   aegisfs-bench-files unlink DIR N   unlink each of them
//!
//! Names are visited in a fixed shuffled order (the same for every filesystem), so that no
//! filesystem gains from names arriving in the order it stores them.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: aegisfs-bench-files create|stat|unlink DIR N";

/// The order in which the files are visited: 0..n shuffled by a fixed xorshift generator.
fn order(n: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n).collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..v.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn name(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("f{i:07}"))
}

fn run(op: &str, dir: &Path, n: u32) -> Result<(), String> {
    for i in order(n) {
        let path = name(dir, i);
        let done = match op {
            "create" => OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
                .map(drop),
            "stat" => fs::symlink_metadata(&path).map(drop),
            "unlink" => fs::remove_file(&path),
            _ => return Err(USAGE.to_string()),
        };
        done.map_err(|e| format!("{op} {}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, dir, n] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<u32>() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(op, Path::new(dir), n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aegisfs-bench-files: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_visits_every_file_once() {
        let mut v = order(1000);
        assert_ne!(v, (0..1000).collect::<Vec<_>>(), "not shuffled");
        v.sort_unstable();
        assert_eq!(v, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn create_stat_unlink() {
        let dir = std::env::temp_dir().join(format!("aegisfs-bench-files-{}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        run("create", &dir, 50).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 50);
        assert!(
            run("create", &dir, 50).is_err(),
            "create_new must refuse an existing file"
        );
        run("stat", &dir, 50).unwrap();
        run("unlink", &dir, 50).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        assert!(run("stat", &dir, 1).is_err());
        assert!(run("frob", &dir, 1).is_err());
        fs::remove_dir(&dir).unwrap();
    }
}
