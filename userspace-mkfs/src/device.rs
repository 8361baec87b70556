//! The target of mkfs: a block device (opened exclusively, sized with BLKGETSIZE64) or a
//! regular image file (sized by the SIZE argument or its current length). [`open_sized`]
//! is the opening both tools share (fsck's is `fsck::dev`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// `_IOR(0x12, 114, size_t)`: the size of a block device in bytes.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
/// `_IO(0x12, 127)`: writes zeros over a byte range of a block device (not unmapping it).
const BLKZEROOUT: libc::c_ulong = 0x127f;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BlockDevice,
    RegularFile,
    /// A regular file that does not exist yet and will be created.
    Missing,
}

/// An opened (or, for [`Kind::Missing`], not yet created) target.
pub struct Target {
    pub path: PathBuf,
    pub kind: Kind,
    file: Option<File>,
    /// Current size in bytes of the device or file (0 for a missing file).
    pub current_bytes: u64,
}

fn context(path: &Path, what: &str, e: io::Error) -> String {
    format!("{}: {what}: {e}", path.display())
}

/// Opens `path` for formatting (read-only when `dry_run`). Block devices are opened with
/// `O_EXCL` so a device that is mounted or held by another user is refused.
pub fn open_target(path: &Path, dry_run: bool) -> Result<Target, String> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Target {
                path: path.to_path_buf(),
                kind: Kind::Missing,
                file: None,
                current_bytes: 0,
            })
        }
        Err(e) => return Err(context(path, "cannot stat", e)),
    };
    let (file, current_bytes) = open_sized(path, &meta, !dry_run, true)?;
    let kind = if meta.file_type().is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::RegularFile
    };
    Ok(Target {
        path: path.to_path_buf(),
        kind,
        file: Some(file),
        current_bytes,
    })
}

/// Opens `path`, a block device or regular file that `meta` describes, for reading (and
/// writing when `write`), and returns it with its size in bytes. A block device is opened
/// with `O_EXCL` when `exclusive`, so one that is mounted or held by another program is
/// refused, and is sized with BLKGETSIZE64.
pub fn open_sized(
    path: &Path,
    meta: &fs::Metadata,
    write: bool,
    exclusive: bool,
) -> Result<(File, u64), String> {
    let ft = meta.file_type();
    let is_block_device = ft.is_block_device();
    if !is_block_device && !ft.is_file() {
        return Err(format!(
            "{}: not a block device or regular file",
            path.display()
        ));
    }
    let mut oo = OpenOptions::new();
    oo.read(true).write(write);
    if exclusive && is_block_device {
        oo.custom_flags(libc::O_EXCL);
    }
    let file = oo.open(path).map_err(|e| {
        if is_block_device && e.raw_os_error() == Some(libc::EBUSY) {
            format!(
                "{}: device is in use (mounted, or held by another program)",
                path.display()
            )
        } else {
            context(path, "cannot open", e)
        }
    })?;
    let bytes = if is_block_device {
        block_device_size(&file)
            .map_err(|e| context(path, "cannot get the device size (BLKGETSIZE64)", e))?
    } else {
        meta.len()
    };
    Ok((file, bytes))
}

fn block_device_size(file: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `size`.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

impl Target {
    /// The size mkfs may use: the SIZE argument if given (it may not exceed a block
    /// device), else the device size or file length.
    pub fn usable_bytes(&self, requested: Option<u64>) -> Result<u64, String> {
        match (self.kind, requested) {
            (Kind::BlockDevice, Some(r)) if r > self.current_bytes => Err(format!(
                "{}: requested size {r} bytes is larger than the device ({} bytes)",
                self.path.display(),
                self.current_bytes
            )),
            (_, Some(r)) => Ok(r),
            (Kind::Missing, None) => Err(format!(
                "{}: no such file; give a SIZE to create an image file",
                self.path.display()
            )),
            (Kind::RegularFile, None) if self.current_bytes == 0 => Err(format!(
                "{}: the file is empty; give a SIZE",
                self.path.display()
            )),
            (_, None) => Ok(self.current_bytes),
        }
    }

    /// Creates a missing image file, and grows a regular file to `bytes` if it is shorter
    /// (growing leaves a hole, so nothing is written).
    pub fn prepare(&mut self, bytes: u64) -> Result<(), String> {
        match self.kind {
            Kind::Missing => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&self.path)
                    .map_err(|e| context(&self.path, "cannot create", e))?;
                file.set_len(bytes)
                    .map_err(|e| context(&self.path, "cannot set the file size", e))?;
                self.file = Some(file);
                self.kind = Kind::RegularFile;
                self.current_bytes = bytes;
            }
            Kind::RegularFile if self.current_bytes < bytes => {
                self.file()
                    .set_len(bytes)
                    .map_err(|e| context(&self.path, "cannot extend the file", e))?;
                self.current_bytes = bytes;
            }
            _ => {}
        }
        Ok(())
    }

    fn file(&self) -> &File {
        self.file.as_ref().expect("target is open")
    }

    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), String> {
        self.file().write_all_at(buf, offset).map_err(|e| {
            context(
                &self.path,
                &format!("write of {} bytes at {offset} failed", buf.len()),
                e,
            )
        })
    }

    /// Reads `buf.len()` bytes at `offset`; bytes past the end of the target read as zero.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), String> {
        let mut done = 0;
        while done < buf.len() {
            match self.file().read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    buf[done..].fill(0);
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(context(&self.path, "read failed", e)),
            }
        }
        Ok(())
    }

    /// Writes zeros over `len` bytes at `offset` of a block device, so that thin-provisioned
    /// storage (dm-thin, LVM thin volumes) backs them from now on and a later write there
    /// cannot fail for want of space (mke2fs writes its journal out for the same reason).
    /// A regular file is left as it is.
    pub fn provision(&self, offset: u64, len: u64) -> Result<(), String> {
        if self.kind != Kind::BlockDevice || len == 0 {
            return Ok(());
        }
        let range = [offset, len];
        // SAFETY: BLKZEROOUT reads two u64 (start and length in bytes) through the pointer,
        // which points at `range`.
        let r = unsafe { libc::ioctl(self.file().as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) };
        if r < 0 {
            return Err(context(
                &self.path,
                &format!("zeroing {len} bytes at {offset} (BLKZEROOUT) failed"),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Flushes everything to stable storage.
    pub fn sync(&self) -> Result<(), String> {
        self.file()
            .sync_all()
            .map_err(|e| context(&self.path, "fsync failed", e))
    }
}
