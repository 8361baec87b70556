// Directory blocks (docs/format.md, "Directories"): a validating entry iterator, in-place
// editing (add, remove, retarget) and a builder for new blocks.
//
// Entries fill bytes `0..4084`; the 12-byte tail at `4084..4096` holds the checksum.

use crate::checksum::dir_block_checksum;
use crate::disk::{
    BLOCK_SIZE, DIR_CHECKSUM_OFFSET, DIR_ENTRY_HEADER_SIZE, DIR_TAIL_FILE_TYPE, DIR_TAIL_OFFSET,
    DIR_TAIL_SIZE, FIRST_INO, FT_DIR, FT_MAX, NAME_MAX, ROOT_INO,
};
use crate::error::{FormatError, Result};
use crate::geometry::Geometry;

/// Smallest `rec_len` of an entry with a name of `name_len` bytes: `8 + name_len` rounded
/// up to a multiple of 4.
pub const fn min_rec_len(name_len: usize) -> usize {
    (DIR_ENTRY_HEADER_SIZE + name_len + 3) & !3
}

/// One record of a directory block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// Byte offset of the record in the block.
    pub offset: usize,
    /// Inode number; 0 for an unused record.
    pub ino: u32,
    /// Record length.
    pub rec_len: usize,
    /// The name (empty for an unused record).
    pub name: &'a [u8],
    /// `FT_*`.
    pub file_type: u8,
}

impl DirEntry<'_> {
    /// True for a record that names an inode.
    pub fn is_used(&self) -> bool {
        self.ino != 0
    }

    /// Bytes this record could give to a new entry after its own (all of it if unused).
    pub fn free_space(&self) -> usize {
        if self.is_used() {
            self.rec_len.saturating_sub(min_rec_len(self.name.len()))
        } else {
            self.rec_len
        }
    }
}

fn read_u32(block: &[u8; BLOCK_SIZE], off: usize) -> Option<u32> {
    match block.get(off..off.checked_add(4)?) {
        Some(&[a, b, c, d]) => Some(u32::from_le_bytes([a, b, c, d])),
        _ => None,
    }
}

fn read_u16(block: &[u8; BLOCK_SIZE], off: usize) -> Option<u16> {
    match block.get(off..off.checked_add(2)?) {
        Some(&[a, b]) => Some(u16::from_le_bytes([a, b])),
        _ => None,
    }
}

fn write_header(
    block: &mut [u8; BLOCK_SIZE],
    off: usize,
    ino: u32,
    rec_len: usize,
    name_len: u8,
    ft: u8,
) -> Result<()> {
    let rec = u16::try_from(rec_len).map_err(|_| FormatError::DirRecLen)?;
    let h = block
        .get_mut(off..off + DIR_ENTRY_HEADER_SIZE)
        .ok_or(FormatError::DirRecLen)?;
    let [i0, i1, i2, i3] = ino.to_le_bytes();
    let [r0, r1] = rec.to_le_bytes();
    h.copy_from_slice(&[i0, i1, i2, i3, r0, r1, name_len, ft]);
    Ok(())
}

/// Checks that the tail is well formed.
pub fn check_tail(block: &[u8; BLOCK_SIZE]) -> Result<()> {
    let ok = read_u32(block, DIR_TAIL_OFFSET) == Some(0)
        && read_u16(block, DIR_TAIL_OFFSET + 4) == Some(DIR_TAIL_SIZE as u16)
        && block.get(DIR_TAIL_OFFSET + 6) == Some(&0)
        && block.get(DIR_TAIL_OFFSET + 7) == Some(&DIR_TAIL_FILE_TYPE);
    if ok {
        Ok(())
    } else {
        Err(FormatError::DirTail)
    }
}

/// Checks the tail and checksum of a block of directory `dir_ino`/`dir_generation`.
pub fn verify_dir_block_checksum(
    block: &[u8; BLOCK_SIZE],
    seed: u32,
    dir_ino: u32,
    dir_generation: u32,
) -> Result<()> {
    check_tail(block)?;
    if read_u32(block, DIR_CHECKSUM_OFFSET)
        == Some(dir_block_checksum(seed, dir_ino, dir_generation, block))
    {
        Ok(())
    } else {
        Err(FormatError::DirChecksum)
    }
}

/// Writes the tail and the checksum of a block of directory `dir_ino`/`dir_generation`.
pub fn set_dir_block_checksum(
    block: &mut [u8; BLOCK_SIZE],
    seed: u32,
    dir_ino: u32,
    dir_generation: u32,
) {
    let c = dir_block_checksum(seed, dir_ino, dir_generation, block);
    let mut tail = [0u8; DIR_TAIL_SIZE];
    tail[4] = DIR_TAIL_SIZE as u8;
    tail[7] = DIR_TAIL_FILE_TYPE;
    tail[8..].copy_from_slice(&c.to_le_bytes());
    if let Some(t) = block.get_mut(DIR_TAIL_OFFSET..) {
        t.copy_from_slice(&tail);
    }
}

/// Parses the record at `off` and checks it against the structural rules (and, with
/// `inodes_count`, the inode number).
fn parse_at(
    block: &[u8; BLOCK_SIZE],
    off: usize,
    inodes_count: Option<u32>,
) -> Result<DirEntry<'_>> {
    if off + DIR_ENTRY_HEADER_SIZE > DIR_TAIL_OFFSET {
        return Err(FormatError::DirRecLen);
    }
    let ino = read_u32(block, off).ok_or(FormatError::DirRecLen)?;
    let rec_len = usize::from(read_u16(block, off + 4).ok_or(FormatError::DirRecLen)?);
    let name_len = usize::from(*block.get(off + 6).ok_or(FormatError::DirRecLen)?);
    let file_type = *block.get(off + 7).ok_or(FormatError::DirRecLen)?;
    if rec_len < DIR_ENTRY_HEADER_SIZE
        || !rec_len.is_multiple_of(4)
        || rec_len < min_rec_len(name_len)
        || off + rec_len > DIR_TAIL_OFFSET
    {
        return Err(FormatError::DirRecLen);
    }
    if file_type > FT_MAX {
        return Err(FormatError::DirFileType);
    }
    if ino == 0 {
        return Ok(DirEntry {
            offset: off,
            ino,
            rec_len,
            name: &[],
            file_type,
        });
    }
    if let Some(count) = inodes_count {
        if ino > count || ino == 1 || (ino > ROOT_INO && ino < FIRST_INO) {
            return Err(FormatError::DirInode);
        }
    }
    let name = block
        .get(off + DIR_ENTRY_HEADER_SIZE..off + DIR_ENTRY_HEADER_SIZE + name_len)
        .ok_or(FormatError::DirRecLen)?;
    check_name(name)?;
    Ok(DirEntry {
        offset: off,
        ino,
        rec_len,
        name,
        file_type,
    })
}

/// Checks a name for a directory entry: 1..=255 bytes, no `/` and no NUL.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX || name.contains(&b'/') || name.contains(&0) {
        Err(FormatError::DirName)
    } else {
        Ok(())
    }
}

/// Validating iterator over the records of a directory block, in order. It yields
/// `Err` once on the first malformed record and then stops.
pub struct DirIter<'a> {
    block: &'a [u8; BLOCK_SIZE],
    pos: usize,
    inodes_count: Option<u32>,
    done: bool,
}

impl<'a> Iterator for DirIter<'a> {
    type Item = Result<DirEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= DIR_TAIL_OFFSET {
            return None;
        }
        match parse_at(self.block, self.pos, self.inodes_count) {
            Ok(e) => {
                self.pos += e.rec_len;
                Some(Ok(e))
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

/// Verifies the tail and checksum of a block of directory `dir_ino`/`dir_generation`, then
/// returns an iterator over its records that checks each one: `rec_len` at least 8, a
/// multiple of 4, large enough for the name and not crossing byte 4084; used records with
/// a name of 1..=255 bytes without `/` or NUL and an inode in `1..=inodes_count` that is
/// not reserved (1, 3..=10); `file_type` at most 7.
pub fn iter_dir_block<'a>(
    block: &'a [u8; BLOCK_SIZE],
    geo: &Geometry,
    dir_ino: u32,
    dir_generation: u32,
) -> Result<DirIter<'a>> {
    verify_dir_block_checksum(block, geo.checksum_seed(), dir_ino, dir_generation)?;
    Ok(DirIter {
        block,
        pos: 0,
        inodes_count: Some(geo.inodes_count()),
        done: false,
    })
}

/// Fully validates a directory block (checksum, tail and every record).
pub fn validate_dir_block(
    block: &[u8; BLOCK_SIZE],
    geo: &Geometry,
    dir_ino: u32,
    dir_generation: u32,
) -> Result<()> {
    for e in iter_dir_block(block, geo, dir_ino, dir_generation)? {
        e?;
    }
    Ok(())
}

/// Records of a block without checksum or inode-range checks (for editing a block that was
/// validated when read).
fn records(block: &[u8; BLOCK_SIZE]) -> DirIter<'_> {
    DirIter {
        block,
        pos: 0,
        inodes_count: None,
        done: false,
    }
}

/// Makes `block` an empty directory block: one unused record over `0..4084` and a tail
/// (checksum not yet set).
pub fn init_dir_block(block: &mut [u8; BLOCK_SIZE]) {
    block.fill(0);
    // Offset 0 with rec_len 4084 always fits.
    let _ = write_header(block, 0, 0, DIR_TAIL_OFFSET, 0, 0);
    set_dir_block_checksum(block, 0, 0, 0);
}

/// Makes `block` the first block of a new directory: `.` (`dir_ino`) and `..`
/// (`parent_ino`) over `0..4084` and a tail (checksum not yet set).
pub fn init_first_dir_block(
    block: &mut [u8; BLOCK_SIZE],
    dir_ino: u32,
    parent_ino: u32,
) -> Result<()> {
    init_dir_block(block);
    write_header(block, 0, dir_ino, min_rec_len(1), 1, FT_DIR)?;
    if let Some(n) = block.get_mut(DIR_ENTRY_HEADER_SIZE) {
        *n = b'.';
    }
    let off = min_rec_len(1);
    write_header(block, off, parent_ino, DIR_TAIL_OFFSET - off, 2, FT_DIR)?;
    if let Some(n) = block.get_mut(off + DIR_ENTRY_HEADER_SIZE..off + DIR_ENTRY_HEADER_SIZE + 2) {
        n.copy_from_slice(b"..");
    }
    Ok(())
}

/// Adds an entry `name` -> `ino` of type `file_type` to a block, ext2 style: into the first
/// unused record big enough, or by splitting the first used record with enough slack.
/// Returns the new record's offset, or `None` if the block has no room. The checksum is
/// not updated. Fails on a malformed block or invalid arguments.
pub fn add_entry(
    block: &mut [u8; BLOCK_SIZE],
    ino: u32,
    name: &[u8],
    file_type: u8,
) -> Result<Option<usize>> {
    check_name(name)?;
    if ino == 0 {
        return Err(FormatError::DirInode);
    }
    if file_type > FT_MAX {
        return Err(FormatError::DirFileType);
    }
    let need = min_rec_len(name.len());
    let mut slot = None;
    for e in records(block) {
        let e = e?;
        if e.free_space() >= need {
            slot = Some((e.offset, e.ino, e.rec_len, e.name.len()));
            break;
        }
    }
    let Some((off, old_ino, rec_len, old_name_len)) = slot else {
        return Ok(None);
    };
    let (new_off, new_rec) = if old_ino == 0 {
        (off, rec_len)
    } else {
        let keep = min_rec_len(old_name_len);
        let old_nl = u8::try_from(old_name_len).map_err(|_| FormatError::DirName)?;
        let old_ft = *block.get(off + 7).ok_or(FormatError::DirRecLen)?;
        write_header(block, off, old_ino, keep, old_nl, old_ft)?;
        (off + keep, rec_len - keep)
    };
    // check_name bounds the length to 255.
    let nl = name.len() as u8;
    write_header(block, new_off, ino, new_rec, nl, file_type)?;
    let dst = block
        .get_mut(new_off + DIR_ENTRY_HEADER_SIZE..new_off + DIR_ENTRY_HEADER_SIZE + name.len())
        .ok_or(FormatError::DirRecLen)?;
    dst.copy_from_slice(name);
    Ok(Some(new_off))
}

/// Removes the record at `offset`: merged into the previous record, or marked unused if
/// it is the first. The checksum is not updated. Fails if no record starts at `offset`.
pub fn remove_entry(block: &mut [u8; BLOCK_SIZE], offset: usize) -> Result<()> {
    let mut prev: Option<DirEntry<'_>> = None;
    let mut found = None;
    for e in records(block) {
        let e = e?;
        if e.offset == offset {
            found = Some((prev.map(|p| (p.offset, p.rec_len)), e.rec_len));
            break;
        }
        if e.offset > offset {
            break;
        }
        prev = Some(e);
    }
    match found {
        Some((Some((p_off, p_len)), len)) => {
            let rec = u16::try_from(p_len + len).map_err(|_| FormatError::DirRecLen)?;
            let f = block
                .get_mut(p_off + 4..p_off + 6)
                .ok_or(FormatError::DirRecLen)?;
            f.copy_from_slice(&rec.to_le_bytes());
            Ok(())
        }
        Some((None, _)) => {
            let f = block
                .get_mut(offset..offset + 4)
                .ok_or(FormatError::DirRecLen)?;
            f.fill(0);
            Ok(())
        }
        None => Err(FormatError::DirRecLen),
    }
}

/// Points the used record at `offset` to `ino` with type `file_type` (rename over an
/// existing name, `..` of a moved directory). The checksum is not updated.
pub fn set_entry_inode(
    block: &mut [u8; BLOCK_SIZE],
    offset: usize,
    ino: u32,
    file_type: u8,
) -> Result<()> {
    if ino == 0 {
        return Err(FormatError::DirInode);
    }
    if file_type > FT_MAX {
        return Err(FormatError::DirFileType);
    }
    let found = records(block).any(|e| matches!(e, Ok(e) if e.offset == offset && e.is_used()));
    if !found {
        return Err(FormatError::DirRecLen);
    }
    let h = block
        .get_mut(offset..offset + DIR_ENTRY_HEADER_SIZE)
        .ok_or(FormatError::DirRecLen)?;
    h.get_mut(..4)
        .ok_or(FormatError::DirRecLen)?
        .copy_from_slice(&ino.to_le_bytes());
    if let Some(ft) = h.get_mut(7) {
        *ft = file_type;
    }
    Ok(())
}

/// Looks up `name` among the used records of a block already validated with
/// [`iter_dir_block`]; returns the record. Fails on a malformed block.
pub fn find_entry<'a>(block: &'a [u8; BLOCK_SIZE], name: &[u8]) -> Result<Option<DirEntry<'a>>> {
    for e in records(block) {
        let e = e?;
        if e.is_used() && e.name == name {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// True if the block holds no used records other than `.` and `..`.
pub fn is_empty_dir_block(block: &[u8; BLOCK_SIZE]) -> Result<bool> {
    for e in records(block) {
        let e = e?;
        if e.is_used() && e.name != b"." && e.name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Builds a new directory block (mkfs, fsck): starts empty or with `.`/`..`, takes entries,
/// and finishes with the checksum.
pub struct DirBlockBuilder<'a> {
    block: &'a mut [u8; BLOCK_SIZE],
}

impl<'a> DirBlockBuilder<'a> {
    /// Starts an empty block.
    pub fn new(block: &'a mut [u8; BLOCK_SIZE]) -> Self {
        init_dir_block(block);
        Self { block }
    }

    /// Starts the first block of directory `dir_ino` with `.` and `..` (`parent_ino`).
    pub fn new_first(
        block: &'a mut [u8; BLOCK_SIZE],
        dir_ino: u32,
        parent_ino: u32,
    ) -> Result<Self> {
        init_first_dir_block(block, dir_ino, parent_ino)?;
        Ok(Self { block })
    }

    /// Adds an entry; `Ok(false)` when the block is full.
    pub fn try_add(&mut self, ino: u32, name: &[u8], file_type: u8) -> Result<bool> {
        Ok(add_entry(self.block, ino, name, file_type)?.is_some())
    }

    /// Writes the tail checksum for directory `dir_ino`/`dir_generation`.
    pub fn finalize(self, seed: u32, dir_ino: u32, dir_generation: u32) {
        set_dir_block_checksum(self.block, seed, dir_ino, dir_generation);
    }
}
