//! Finding the data ranges of a host file with `SEEK_DATA`/`SEEK_HOLE`, so holes in files
//! copied with `-d` stay holes. Zero bytes that are allocated on the host are data.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    // SAFETY: lseek on a valid descriptor has no memory effects.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// The byte ranges `[start, end)` of `file` (of length `len`) that hold data, in order.
/// Filesystems without `SEEK_DATA` support report the whole file as data.
pub fn data_ranges(file: &File, len: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut ranges = Vec::new();
    let mut pos = 0;
    while pos < len {
        let start = match seek(file, pos, libc::SEEK_DATA) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && pos == 0 => {
                return Ok(vec![(0, len)]);
            }
            Err(e) => return Err(e),
        };
        if start >= len {
            break;
        }
        let end = seek(file, start, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        if end <= start {
            break;
        }
        ranges.push((start, end));
        pos = end;
    }
    Ok(ranges)
}

/// Converts byte ranges to block ranges `[first, last)` of `block_size` blocks, merging
/// ranges that touch or share a block.
pub fn block_ranges(ranges: &[(u64, u64)], block_size: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(start, end) in ranges {
        let first = start / block_size;
        let last = end.div_ceil(block_size);
        match out.last_mut() {
            Some(prev) if prev.1 >= first => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn merges_blocks() {
        assert_eq!(
            block_ranges(&[(0, 1), (4095, 4097), (8192 * 3, 8192 * 3 + 1)], 4096),
            vec![(0, 2), (6, 7)]
        );
        assert_eq!(
            block_ranges(&[(4096, 8192), (8192, 12288)], 4096),
            vec![(1, 3)]
        );
        assert_eq!(block_ranges(&[], 4096), vec![]);
    }

    #[test]
    fn finds_holes_in_a_sparse_file() {
        let dir = std::env::temp_dir().join(format!("aegisfs-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mib = 1 << 20;
        f.write_all_at(b"x", 3 * mib).unwrap();
        f.set_len(8 * mib).unwrap();
        let ranges = data_ranges(&f, 8 * mib).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // Filesystems report data at their own granularity; the written byte must be
        // covered, and most of the file must be a hole.
        assert!(ranges.iter().any(|&(s, e)| s <= 3 * mib && 3 * mib < e));
        let data: u64 = ranges.iter().map(|(s, e)| e - s).sum();
        assert!(data <= mib, "{ranges:?}");
    }
}
