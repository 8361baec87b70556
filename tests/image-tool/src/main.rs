//! aegisfs-testimage: test helper for the in-guest suites.
//!
//!   aegisfs-testimage corrupt IMAGE KIND [ARGS]   apply one corruption (see `corrupt::Kind`)
//!   aegisfs-testimage statfs IMAGE                the `stat -f -c '%S %b %f %a %c %d %l %i'`
//!                                                 line the module must produce
//!   aegisfs-testimage fill FILE OFFSET LEN SEED   write LEN pseudo-random bytes at OFFSET

mod corrupt;
mod fill;
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
