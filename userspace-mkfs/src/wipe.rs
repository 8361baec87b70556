//! Detecting and erasing other filesystems' signatures so blkid and `fsck -t` see only
//! AegisFS afterwards.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::device::Target;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Byte ranges that hold the signatures mkfs erases: the first 64 KiB (ext2/3/4
/// superblock at 1 KiB, XFS at 0, AegisFS at 1 KiB, most other filesystems and partition
/// tables) and the btrfs superblock copies at 64 KiB, 64 MiB and 256 GiB.
pub const WIPE_RANGES: [(u64, u64); 4] = [
    (0, 64 * KIB),
    (64 * KIB, 4 * KIB),
    (64 * MIB, 4 * KIB),
    (256 * GIB, 4 * KIB),
];

/// Signatures mkfs knows itself: name, byte offset of the magic, magic bytes. libblkid
/// does not know AegisFS, and without util-linux these are all mkfs can see.
const SIGNATURES: &[(&str, u64, &[u8])] = &[
    ("ext2/ext3/ext4", 1024 + 0x38, &[0x53, 0xEF]),
    ("xfs", 0, b"XFSB"),
    ("btrfs", 64 * KIB + 0x40, b"_BHRfS_M"),
    ("aegisfs", 1024, b"AegisFS\0"),
];

/// What `target` already holds, as names for a question: an AegisFS signature, and what
/// libblkid recognizes (any filesystem, swap, partition tables, RAID and LVM members),
/// asked through `blkid -p`; when blkid cannot be run, the other [`SIGNATURES`].
pub fn detect(target: &Target, device_bytes: u64) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for &(name, offset, magic) in SIGNATURES {
        if offset + magic.len() as u64 > device_bytes {
            continue;
        }
        let mut buf = vec![0u8; magic.len()];
        target.read_at(&mut buf, offset)?;
        if buf == magic {
            found.push(name.to_string());
        }
    }
    if let Some(probed) = blkid_probe(&target.path) {
        found.retain(|f| f == "aegisfs");
        found.extend(probed);
    }
    Ok(found)
}

/// `blkid -p` (low-level probing, no cache) of `path`: `TYPE` and `PTTYPE` as names, or
/// `None` when blkid cannot be run or fails (exit 2 means it found nothing).
fn blkid_probe(path: &Path) -> Option<Vec<String>> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export", "--"])
        .arg(path)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    match out.status.code() {
        Some(0) => {}
        Some(2) => return Some(Vec::new()),
        _ => return None,
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter_map(|line| match line.split_once('=') {
                Some(("TYPE", t)) => Some(t.to_string()),
                Some(("PTTYPE", t)) => Some(format!("{t} partition table")),
                _ => None,
            })
            .collect(),
    )
}

/// Zeroes every non-zero [`WIPE_RANGES`] range inside the first `device_bytes` bytes.
/// Ranges already zero are not written, so a sparse image stays sparse.
pub fn wipe(target: &Target, device_bytes: u64) -> Result<(), String> {
    for &(offset, len) in &WIPE_RANGES {
        if offset >= device_bytes {
            continue;
        }
        let len = len.min(device_bytes - offset) as usize;
        let mut buf = vec![0u8; len];
        target.read_at(&mut buf, offset)?;
        if buf.iter().any(|&b| b != 0) {
            buf.fill(0);
            target.write_at(&buf, offset)?;
        }
    }
    Ok(())
}
