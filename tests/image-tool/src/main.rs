//! aegisfs-testimage: test helper for the in-guest suites.
//!
//!   aegisfs-testimage corrupt IMAGE KIND [ARGS]   apply one corruption (see `corrupt::Kind`)
//!   aegisfs-testimage statfs IMAGE                the `stat -f -c '%S %b %f %a %c %d %l %i'`
//!                                                 line the module must produce
//!   aegisfs-testimage fill FILE OFFSET LEN SEED   write LEN pseudo-random bytes at OFFSET
//!   aegisfs-testimage survey IMAGE                how many metadata structures of each kind
//!                                                 the fuzzer finds (see `fuzz`)
//!   aegisfs-testimage mutate IMAGE SEED [DELTA]   apply the fuzzer's mutations for SEED; the
//!                                                 blocks they changed also go to DELTA (for
//!                                                 each: block number, u64 LE, then its 4096
//!                                                 bytes), to be applied to another copy

mod corrupt;
mod fill;
mod fuzz;
mod image;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::process::ExitCode;

use image::Image;

const USAGE: &str = "\
usage: aegisfs-testimage corrupt IMAGE KIND [ARGS]
       aegisfs-testimage statfs IMAGE
       aegisfs-testimage fill FILE OFFSET LEN SEED
       aegisfs-testimage survey IMAGE
       aegisfs-testimage mutate IMAGE SEED [DELTA]
corruption kinds: bad-magic, sb-checksum, blocks-count, incompat-feature BIT,
  ro-compat-feature BIT, compat-feature BIT, gd-checksum GROUP, block-pointer PATH,
  dir-rec-len DIR VALUE|past-tail, indirect-loop PATH LEVEL, inode-checksum PATH,
  indirect-checksum PATH LEVEL, dir-checksum DIR, inode-bitmap-checksum GROUP,
  unwritten PATH (every direct and single indirect data pointer; valid for a regular file),
  unwritten-indirect PATH LEVEL, xattr-checksum PATH, xattr-inline PATH";

fn number(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

/// The statfs line as `stat -f -c '%S %b %f %a %c %d %l %i'` prints it; coreutils shows
/// `f_fsid` as `val[0] << 32 | val[1]` in hex.
pub fn statfs_line(img: &Image) -> Result<String, String> {
    let (s, fsid) = img.statfs()?;
    Ok(format!(
        "{} {} {} {} {} {} {} {:x}",
        s.bsize,
        s.blocks,
        s.bfree,
        s.bavail,
        s.files,
        s.ffree,
        s.namelen,
        u64::from(fsid[0]) << 32 | u64::from(fsid[1])
    ))
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("corrupt") if args.len() >= 3 => {
            let kind = corrupt::Kind::parse(&args[2..])?;
            let img = Image::open(Path::new(&args[1]))?;
            println!("{}", corrupt::apply(&img, &kind)?);
            Ok(())
        }
        Some("statfs") if args.len() == 2 => {
            println!("{}", statfs_line(&Image::open(Path::new(&args[1]))?)?);
            Ok(())
        }
        Some("fill") if args.len() == 5 => fill::fill(
            Path::new(&args[1]),
            number(&args[2])?,
            number(&args[3])?,
            number(&args[4])?,
        ),
        Some("survey") if args.len() == 2 => {
            let targets = fuzz::survey(&Image::open(Path::new(&args[1]))?)?;
            let mut kinds: Vec<&str> = targets.iter().map(fuzz::Target::kind).collect();
            kinds.sort_unstable();
            let mut i = 0;
            while i < kinds.len() {
                let n = kinds[i..].iter().take_while(|&&k| k == kinds[i]).count();
                println!("{} {n}", kinds[i]);
                i += n;
            }
            Ok(())
        }
        Some("mutate") if (3..=4).contains(&args.len()) => {
            let img = Image::open(Path::new(&args[1]))?;
            for line in fuzz::mutate(&img, number(&args[2])?)? {
                println!("{line}");
            }
            if let Some(delta) = args.get(3) {
                let mut out = Vec::new();
                for b in img.written() {
                    out.extend_from_slice(&b.to_le_bytes());
                    out.extend_from_slice(&img.read_block(b)?);
                }
                std::fs::write(delta, out).map_err(|e| format!("{delta}: {e}"))?;
            }
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aegisfs-testimage: {e}");
            ExitCode::FAILURE
        }
    }
}
