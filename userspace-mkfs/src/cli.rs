//! Command line of mkfs.aegisfs: util-linux/mke2fs style short options with clustering
//! (`-fq`, `-Lname`, `-L name`), a few long options, then `DEVICE [SIZE]`.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use aegisfs_format::disk::{BLOCK_SIZE_U64, FIRST_INO, MAX_JOURNAL_BLOCKS, MIN_JOURNAL_BLOCKS};
pub use aegisfs_format::geometry::InodeSpec;
use aegisfs_format::geometry::{MAX_INODE_RATIO, MIN_INODE_RATIO};

use crate::size::{parse_fs_size, parse_percent_hundredths, parse_u64};
pub use crate::tool::Command;

/// Filesystem blocks per MiB (`-J` counts MiB).
pub const BLOCKS_PER_MIB: u64 = (1 << 20) / BLOCK_SIZE_U64;

/// Longest label in bytes (the 64-byte field keeps a terminating NUL).
pub const MAX_LABEL_BYTES: usize = 63;

/// Default percentage of data blocks reserved for the superuser, in hundredths (ext4: 5%).
pub const DEFAULT_RESERVED_HUNDREDTHS: u64 = 500;

/// The largest `-m` value accepted (mke2fs also refuses more than 50%).
pub const MAX_RESERVED_HUNDREDTHS: u64 = 5000;

pub const USAGE: &str = "\
Usage: mkfs.aegisfs [options] DEVICE [SIZE]

Create an AegisFS filesystem on DEVICE (a block device or a regular file).
SIZE is a count of 1 KiB blocks (of -b blocks if -b is given) or a number with
a K/M/G/T (binary) suffix; without it the whole device (or the file's current
length) is used.

Options:
  -f, -F, --force        do not ask, overwrite existing data
  -n, --dry-run          print the layout, write nothing
  -L, --label LABEL      volume label (at most 63 bytes)
  -U, --uuid UUID        explicit UUID, 'random' (default), 'time' or 'clear'
  -N, --inodes COUNT     number of inodes (rounded up to fill the groups)
  -i, --bytes-per-inode N  one inode per N bytes of space (default 16384)
  -I, --inode-size N     inode size: 256, 512 (default) or 1024; 512 and 1024 keep
                         small extended attributes in the inode
  -J, --journal [size=]MiB  journal size in MiB, 0 for no journal
  -m, --reserved PERCENT blocks reserved for the superuser (default 5)
  -d, --root-dir DIR     copy the contents of DIR into the new filesystem, with
                         extended attributes and POSIX ACLs
  -O, --features LIST    comma-separated features to set, or to clear with a
                         leading '^': dir_index (hash-indexed directories, default on)
  -b, --block-size 4096  block size (only 4096 is supported)
  -t, --type aegisfs     filesystem type (only aegisfs)
  -q, --quiet            print nothing but errors
  -v, --verbose          print more detail
  -V, --version          print the version and exit
  -h, --help             print this help and exit

Exit status: 0 success, 1 usage error, 8 operational error.
";

/// How the filesystem UUID is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UuidChoice {
    Random,
    Clear,
    Explicit([u8; 16]),
}

/// A parsed request to format a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub device: PathBuf,
    /// Requested filesystem size in bytes (the trailing SIZE argument).
    pub size_bytes: Option<u64>,
    pub force: bool,
    pub dry_run: bool,
    pub quiet: bool,
    pub verbose: bool,
    pub label: Vec<u8>,
    pub uuid: UuidChoice,
    pub inodes: Option<InodeSpec>,
    pub inode_size: Option<u16>,
    pub journal_mib: Option<u64>,
    pub reserved_hundredths: u64,
    pub root_dir: Option<PathBuf>,
    /// `-b`: only 4096, but like mke2fs it makes a suffix-less SIZE count such blocks.
    pub block_size: Option<u64>,
    /// `DIR_INDEX`: directories may be hash-indexed (`-O ^dir_index` turns it off).
    pub dir_index: bool,
}

/// A command line error: the message is printed with the usage text and exit status 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Short options that take a value, and the long names mapped onto short ones.
const WITH_VALUE: &[u8] = b"LUNiIJmdbtO";
const LONG: &[(&str, u8)] = &[
    ("force", b'f'),
    ("dry-run", b'n'),
    ("label", b'L'),
    ("uuid", b'U'),
    ("inodes", b'N'),
    ("bytes-per-inode", b'i'),
    ("inode-size", b'I'),
    ("journal", b'J'),
    ("reserved", b'm'),
    ("root-dir", b'd'),
    ("block-size", b'b'),
    ("type", b't'),
    ("features", b'O'),
    ("quiet", b'q'),
    ("verbose", b'v'),
    ("version", b'V'),
    ("help", b'h'),
];

/// Parses the arguments after the program name.
pub fn parse_args(args: &[OsString]) -> Result<Command<Box<Options>>, UsageError> {
    let opts = Options {
        device: PathBuf::new(),
        size_bytes: None,
        force: false,
        dry_run: false,
        quiet: false,
        verbose: false,
        label: Vec::new(),
        uuid: UuidChoice::Random,
        inodes: None,
        inode_size: None,
        journal_mib: None,
        reserved_hundredths: DEFAULT_RESERVED_HUNDREDTHS,
        root_dir: None,
        block_size: None,
        dir_index: true,
    };
    let mut p = Parser {
        opts,
        version: false,
        help: false,
        inode_count: None,
        inode_ratio: None,
    };
    let mut positional: Vec<OsString> = Vec::new();

    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        i += 1;
        if arg == b"--" {
            positional.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix(b"--") {
            let long =
                std::str::from_utf8(long).map_err(|_| UsageError("invalid option".to_string()))?;
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(OsString::from(v))),
                None => (long, None),
            };
            let short = LONG
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, s)| s)
                .ok_or_else(|| UsageError(format!("unrecognized option '--{name}'")))?;
            let value = if WITH_VALUE.contains(&short) {
                match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = args.get(i).cloned().ok_or_else(|| {
                            UsageError(format!("option '--{name}' requires an argument"))
                        })?;
                        i += 1;
                        Some(v)
                    }
                }
            } else if inline.is_some() {
                return Err(UsageError(format!(
                    "option '--{name}' doesn't allow an argument"
                )));
            } else {
                None
            };
            p.apply(short, value)?;
            continue;
        }
        if arg.len() > 1 && arg[0] == b'-' {
            let mut j = 1;
            while j < arg.len() {
                let short = arg[j];
                j += 1;
                if WITH_VALUE.contains(&short) {
                    let value = if j < arg.len() {
                        OsString::from_vec(arg[j..].to_vec())
                    } else {
                        let v = args.get(i).cloned().ok_or_else(|| {
                            UsageError(format!(
                                "option requires an argument -- '{}'",
                                short as char
                            ))
                        })?;
                        i += 1;
                        v
                    };
                    p.apply(short, Some(value))?;
                    break;
                }
                p.apply(short, None)?;
            }
            continue;
        }
        positional.push(args[i - 1].clone());
    }

    if p.help {
        return Ok(Command::Help);
    }
    if p.version {
        return Ok(Command::Version);
    }
    let mut opts = p.opts;
    opts.inodes = match (p.inode_count, p.inode_ratio) {
        (Some(_), Some(_)) => {
            return Err(UsageError(
                "options -N and -i cannot be used together".to_string(),
            ))
        }
        (Some(n), None) => Some(InodeSpec::Count(n)),
        (None, Some(r)) => Some(InodeSpec::Ratio(r)),
        (None, None) => None,
    };
    match positional.len() {
        0 => return Err(UsageError("no device specified".to_string())),
        1 | 2 => {}
        _ => {
            return Err(UsageError(format!(
                "too many arguments: '{}'",
                positional[2].to_string_lossy()
            )))
        }
    }
    opts.device = PathBuf::from(&positional[0]);
    if opts.device.as_os_str().is_empty() {
        return Err(UsageError("empty device name".to_string()));
    }
    if let Some(size) = positional.get(1) {
        let size = size.to_str().ok_or_else(|| {
            UsageError(format!(
                "invalid filesystem size '{}'",
                size.to_string_lossy()
            ))
        })?;
        let unit = opts.block_size.unwrap_or(1024);
        opts.size_bytes = Some(parse_fs_size(size, unit).map_err(UsageError)?);
    }
    Ok(Command::Run(Box::new(opts)))
}

fn utf8_value(opt: u8, value: &OsString) -> Result<&str, UsageError> {
    value.to_str().ok_or_else(|| {
        UsageError(format!(
            "invalid value '{}' for option -{}",
            value.to_string_lossy(),
            opt as char
        ))
    })
}

/// Options seen so far.
struct Parser {
    opts: Options,
    version: bool,
    help: bool,
    inode_count: Option<u32>,
    inode_ratio: Option<u64>,
}

impl Parser {
    fn apply(&mut self, short: u8, value: Option<OsString>) -> Result<(), UsageError> {
        let opts = &mut self.opts;
        let name = format!("-{}", short as char);
        let value = value.unwrap_or_default();
        match short {
            b'f' | b'F' => opts.force = true,
            b'n' => opts.dry_run = true,
            b'q' => opts.quiet = true,
            b'v' => opts.verbose = true,
            b'V' => self.version = true,
            b'h' => self.help = true,
            b'L' => {
                let label = value.as_bytes();
                if label.len() > MAX_LABEL_BYTES {
                    return Err(UsageError(format!(
                        "label is {} bytes long, at most {MAX_LABEL_BYTES} are allowed",
                        label.len()
                    )));
                }
                if std::str::from_utf8(label).is_err() || label.contains(&0) {
                    return Err(UsageError(
                        "label must be UTF-8 without NUL bytes".to_string(),
                    ));
                }
                opts.label = label.to_vec();
            }
            b'U' => opts.uuid = parse_uuid_choice(utf8_value(short, &value)?)?,
            b'N' => {
                let n = parse_u64(&name, utf8_value(short, &value)?).map_err(UsageError)?;
                match u32::try_from(n) {
                    Ok(n) if n >= FIRST_INO => self.inode_count = Some(n),
                    _ => {
                        return Err(UsageError(format!(
                            "invalid inode count '{n}': must be between {FIRST_INO} and {}",
                            u32::MAX
                        )))
                    }
                }
            }
            b'i' => {
                let r = parse_u64(&name, utf8_value(short, &value)?).map_err(UsageError)?;
                if !(MIN_INODE_RATIO..=MAX_INODE_RATIO).contains(&r) {
                    return Err(UsageError(format!(
                        "invalid bytes-per-inode '{r}': must be between {MIN_INODE_RATIO} and \
                     {MAX_INODE_RATIO}"
                    )));
                }
                self.inode_ratio = Some(r);
            }
            b'I' => {
                let s = parse_u64(&name, utf8_value(short, &value)?).map_err(UsageError)?;
                if !matches!(s, 256 | 512 | 1024) {
                    return Err(UsageError(format!(
                        "invalid inode size '{s}': must be 256, 512 or 1024"
                    )));
                }
                opts.inode_size = Some(s as u16);
            }
            b'J' => {
                let v = utf8_value(short, &value)?;
                let size = v.strip_prefix("size=").unwrap_or(v);
                let mib = parse_u64(&name, size).map_err(|_| {
                    UsageError(format!(
                        "invalid journal option '{v}': expected size=MiB or MiB"
                    ))
                })?;
                let min_mib = MIN_JOURNAL_BLOCKS / BLOCKS_PER_MIB;
                let max_mib = MAX_JOURNAL_BLOCKS / BLOCKS_PER_MIB;
                if mib != 0 && !(min_mib..=max_mib).contains(&mib) {
                    return Err(UsageError(format!(
                        "invalid journal size {mib} MiB: must be 0 (no journal) or \
                     {min_mib}..={max_mib} MiB"
                    )));
                }
                opts.journal_mib = Some(mib);
            }
            b'm' => {
                let p = parse_percent_hundredths(&name, utf8_value(short, &value)?)
                    .map_err(UsageError)?;
                if p > MAX_RESERVED_HUNDREDTHS {
                    return Err(UsageError(format!(
                        "invalid reserved blocks percent '{}': at most 50",
                        value.to_string_lossy()
                    )));
                }
                opts.reserved_hundredths = p;
            }
            b'd' => {
                if value.is_empty() {
                    return Err(UsageError("option -d requires a directory".to_string()));
                }
                opts.root_dir = Some(PathBuf::from(value));
            }
            b'b' => {
                let b = parse_u64(&name, utf8_value(short, &value)?).map_err(UsageError)?;
                if b != BLOCK_SIZE_U64 {
                    return Err(UsageError(format!(
                        "block size {b} is not supported: AegisFS uses 4096"
                    )));
                }
                opts.block_size = Some(b);
            }
            b'O' => {
                for (feature, on) in parse_features(utf8_value(short, &value)?)? {
                    match feature {
                        Feature::DirIndex => opts.dir_index = on,
                    }
                }
            }
            b't' => {
                if value.as_bytes() != b"aegisfs" {
                    return Err(UsageError(format!(
                        "filesystem type '{}' is not supported: only aegisfs",
                        value.to_string_lossy()
                    )));
                }
            }
            other => {
                return Err(UsageError(format!(
                    "invalid option -- '{}'",
                    (other as char).escape_default()
                )))
            }
        }
        Ok(())
    }
}

/// A filesystem feature `-O` can set or clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// `dir_index`: `DIR_INDEX`, hash-indexed directories.
    DirIndex,
}

/// Feature names as `-O` takes them (mke2fs's names).
const FEATURES: &[(&str, Feature)] = &[("dir_index", Feature::DirIndex)];

/// Parses an `-O` list the mke2fs way: names separated by commas (or blanks), each
/// optionally prefixed with `^` (or `-`) to clear it or `+` to set it, case-insensitive;
/// empty items are ignored. Returns each feature with whether it is to be set.
pub fn parse_features(list: &str) -> Result<Vec<(Feature, bool)>, UsageError> {
    let mut out = Vec::new();
    for item in list.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
        let (name, on) = match item.strip_prefix(['^', '-']) {
            Some(name) => (name, false),
            None => (item.strip_prefix('+').unwrap_or(item), true),
        };
        let feature = FEATURES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, f)| f)
            .ok_or_else(|| {
                let known: Vec<&str> = FEATURES.iter().map(|&(n, _)| n).collect();
                UsageError(format!(
                    "invalid filesystem feature '{item}' in -O: the features are {}",
                    known.join(", ")
                ))
            })?;
        out.push((feature, on));
    }
    Ok(out)
}

/// Parses `-U`: `random`/`time` (a new random UUID), `clear` (all zero) or a UUID written
/// as 32 hex digits with or without the usual dashes.
pub fn parse_uuid_choice(value: &str) -> Result<UuidChoice, UsageError> {
    match value {
        "random" | "time" => return Ok(UuidChoice::Random),
        "clear" => return Ok(UuidChoice::Clear),
        _ => {}
    }
    let bad = || UsageError(format!("invalid UUID '{value}'"));
    let dashed = value.len() == 36;
    if dashed {
        for (pos, c) in value.char_indices() {
            if matches!(pos, 8 | 13 | 18 | 23) != (c == '-') {
                return Err(bad());
            }
        }
    } else if value.len() != 32 {
        return Err(bad());
    }
    let hex: Vec<u8> = value.bytes().filter(|&b| b != b'-').collect();
    let mut uuid = [0u8; 16];
    for (k, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        uuid[k] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(UuidChoice::Explicit(uuid))
}

/// Formats a UUID the usual way (`8-4-4-4-12` lowercase hex).
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (k, b) in uuid.iter().enumerate() {
        if matches!(k, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command<Box<Options>>, UsageError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_args(&args)
    }

    fn format(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Command::Run(o)) => *o,
            other => panic!("expected a format command, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = format(&["img"]);
        assert_eq!(o.device, PathBuf::from("img"));
        assert_eq!(o.size_bytes, None);
        assert_eq!(o.uuid, UuidChoice::Random);
        assert_eq!(o.reserved_hundredths, 500);
        assert!(!o.force && !o.dry_run && !o.quiet);
        assert!(o.label.is_empty());
        assert!(o.dir_index);
    }

    #[test]
    fn feature_lists() {
        assert!(!format(&["-O", "^dir_index", "img"]).dir_index);
        assert!(!format(&["-O^dir_index", "img"]).dir_index);
        assert!(!format(&["--features=-DIR_INDEX", "img"]).dir_index);
        assert!(format(&["-O", "dir_index", "img"]).dir_index);
        // Later items and options win; empty items are ignored.
        assert!(format(&["-O", "^dir_index,,+dir_index", "img"]).dir_index);
        assert!(!format(&["-O", "dir_index", "-O", "^dir_index", "img"]).dir_index);
        assert!(format(&["-O", "", "img"]).dir_index);
        let unknown = "invalid filesystem feature 'extent' in -O: the features are dir_index";
        assert_eq!(
            parse(&["-O", "dir_index,extent", "img"]),
            Err(UsageError(unknown.to_string()))
        );
        assert!(parse(&["-O", "^", "img"]).is_err());
        assert!(parse(&["-O"]).is_err());
    }

    #[test]
    fn clustered_and_attached_values() {
        let o = format(&["-fqn", "-Lmy label", "-J", "size=8", "-m0.5", "img", "64M"]);
        assert!(o.force && o.quiet && o.dry_run);
        assert_eq!(o.label, b"my label");
        assert_eq!(o.journal_mib, Some(8));
        assert_eq!(o.reserved_hundredths, 50);
        assert_eq!(o.size_bytes, Some(64 << 20));
        let o = format(&["-J4", "-I", "512", "-N", "1000", "--", "-img", "65536"]);
        assert_eq!(o.journal_mib, Some(4));
        assert_eq!(o.inode_size, Some(512));
        assert_eq!(o.inodes, Some(InodeSpec::Count(1000)));
        assert_eq!(o.device, PathBuf::from("-img"));
        assert_eq!(o.size_bytes, Some(64 << 20));
    }

    #[test]
    fn long_options() {
        let o = format(&[
            "--force",
            "--label=x",
            "--bytes-per-inode",
            "8192",
            "--root-dir=src",
            "img",
        ]);
        assert!(o.force);
        assert_eq!(o.label, b"x");
        assert_eq!(o.inodes, Some(InodeSpec::Ratio(8192)));
        assert_eq!(o.root_dir, Some(PathBuf::from("src")));
        assert_eq!(parse(&["--version"]), Ok(Command::Version));
        assert_eq!(parse(&["--help", "img"]), Ok(Command::Help));
        assert!(parse(&["--force=1", "img"]).is_err());
        assert!(parse(&["--bogus", "img"]).is_err());
    }

    #[test]
    fn version_and_help_win() {
        assert_eq!(parse(&["-V"]), Ok(Command::Version));
        assert_eq!(parse(&["-q", "-V", "img"]), Ok(Command::Version));
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn uuid_forms() {
        let want = [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(
            parse_uuid_choice("01234567-89ab-cdef-0123-456789abcdef"),
            Ok(UuidChoice::Explicit(want))
        );
        assert_eq!(
            parse_uuid_choice("0123456789ABCDEF0123456789ABCDEF"),
            Ok(UuidChoice::Explicit(want))
        );
        assert_eq!(parse_uuid_choice("clear"), Ok(UuidChoice::Clear));
        assert_eq!(parse_uuid_choice("random"), Ok(UuidChoice::Random));
        assert!(parse_uuid_choice("0123456789-ab-cdef-0123-456789abcdef").is_err());
        assert!(parse_uuid_choice("01234567-89ab-cdef-0123-456789abcdeg").is_err());
        assert!(parse_uuid_choice("0123").is_err());
        assert_eq!(
            format_uuid(&want),
            "01234567-89ab-cdef-0123-456789abcdef".to_string()
        );
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["-L"]).is_err());
        assert!(parse(&["-L", &"x".repeat(64), "img"]).is_err());
        assert!(parse(&["-L", &"x".repeat(63), "img"]).is_ok());
        assert!(parse(&["-I", "128", "img"]).is_err());
        assert!(parse(&["-N", "0", "img"]).is_err());
        assert!(parse(&["-N", "10", "-i", "4096", "img"]).is_err());
        assert!(parse(&["-i", "100", "img"]).is_err());
        assert!(parse(&["-J", "size=x", "img"]).is_err());
        assert!(parse(&["-J", "3", "img"]).is_err());
        assert!(parse(&["-J", "0", "img"]).is_ok());
        assert!(parse(&["-J", "4", "img"]).is_ok());
        assert!(parse(&["-m", "51", "img"]).is_err());
        assert!(parse(&["-b", "1024", "img"]).is_err());
        assert!(parse(&["-t", "ext4", "img"]).is_err());
        assert!(parse(&["-x", "img"]).is_err());
        assert!(parse(&["img", "12Q"]).is_err());
        assert!(parse(&["img", "1", "2"]).is_err());
        assert!(parse(&["-b", "4096", "-t", "aegisfs", "img"]).is_ok());
    }

    #[test]
    fn block_size_sets_the_size_unit() {
        assert_eq!(
            format(&["-b", "4096", "img", "16384"]).size_bytes,
            Some(64 << 20)
        );
        assert_eq!(format(&["-b4096", "img", "64M"]).size_bytes, Some(64 << 20));
        assert_eq!(format(&["img", "16384"]).size_bytes, Some(16 << 20));
    }
}
