//! Refusing to format something that is mounted: the mount table (`/proc/self/mounts`
//! format) is searched by device number and by path; a regular file is also looked up as
//! the backing file of a loop device whose device is mounted.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One line of a mount table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub source: String,
    pub target: String,
}

/// Undoes the octal escapes (`\040` for a space, ...) the kernel uses in mount tables.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a mount table; malformed lines are skipped.
pub fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let source = fields.next()?;
            let target = fields.next()?;
            Some(MountEntry {
                source: unescape(source),
                target: unescape(target),
            })
        })
        .collect()
}

/// Where mounts and loop devices are looked up (injectable for tests).
#[derive(Clone, Debug)]
pub struct MountSources {
    pub mounts: PathBuf,
    pub sys_block: PathBuf,
}

impl Default for MountSources {
    fn default() -> Self {
        MountSources {
            mounts: PathBuf::from("/proc/self/mounts"),
            sys_block: PathBuf::from("/sys/block"),
        }
    }
}

/// Returns a description of why `device` counts as mounted, or `None`.
pub fn find_mount(device: &Path, sources: &MountSources) -> Result<Option<String>, String> {
    let text = fs::read_to_string(&sources.mounts)
        .map_err(|e| format!("cannot read {}: {e}", sources.mounts.display()))?;
    let table = parse_mounts(&text);
    let meta = match fs::metadata(device) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    let canonical = fs::canonicalize(device).ok();

    let is_block = meta.file_type().is_block_device();
    let mut block_devs: Vec<(u64, String)> = Vec::new();
    if is_block {
        block_devs.push((meta.rdev(), device.display().to_string()));
    } else if meta.is_file() {
        block_devs.extend(loop_devices_backed_by(&meta, &sources.sys_block));
    }

    for entry in &table {
        let source = Path::new(&entry.source);
        if let Some(c) = &canonical {
            if fs::canonicalize(source).ok().as_ref() == Some(c) {
                return Ok(Some(format!(
                    "{} is mounted on {}",
                    device.display(),
                    entry.target
                )));
            }
        }
        if block_devs.is_empty() {
            continue;
        }
        let Ok(smeta) = fs::metadata(source) else {
            continue;
        };
        if !smeta.file_type().is_block_device() {
            continue;
        }
        if let Some((_, name)) = block_devs.iter().find(|(rdev, _)| *rdev == smeta.rdev()) {
            return Ok(Some(if name.as_str() == device.display().to_string() {
                format!("{} is mounted on {}", device.display(), entry.target)
            } else {
                format!(
                    "{} is attached to {name}, which is mounted on {}",
                    device.display(),
                    entry.target
                )
            }));
        }
    }
    Ok(None)
}

/// Loop devices (device number and name) whose backing file is the file described by
/// `file`.
fn loop_devices_backed_by(file: &fs::Metadata, sys_block: &Path) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    let Ok(dir) = fs::read_dir(sys_block) else {
        return found;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(backing) = fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let Ok(bmeta) = fs::metadata(backing.trim_end_matches('\n')) else {
            continue;
        };
        if bmeta.dev() != file.dev() || bmeta.ino() != file.ino() {
            continue;
        }
        let Ok(devno) = fs::read_to_string(entry.path().join("dev")) else {
            continue;
        };
        let Some((major, minor)) = devno.trim().split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
            continue;
        };
        found.push((libc::makedev(major, minor), format!("/dev/{name}")));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_fields() {
        let t = parse_mounts(
            "proc /proc proc rw 0 0\n/my\\040disk.img /mnt/a\\011b aegisfs rw 0 0\nbad\n",
        );
        assert_eq!(
            t,
            vec![
                MountEntry {
                    source: "proc".into(),
                    target: "/proc".into()
                },
                MountEntry {
                    source: "/my disk.img".into(),
                    target: "/mnt/a\tb".into()
                },
            ]
        );
    }

    #[test]
    fn trailing_backslash_is_kept() {
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\0401"), "a 1");
    }
}
