// Directory blocks (docs/format.md, "Directories"): a validating entry iterator, in-place
// editing (add, remove, retarget) and a builder for new blocks.
//
// Entries fill bytes `0..4084`; the 12-byte tail at `4084..4096` holds the checksum.

use crate::checksum::{dir_block_checksum, patch_checksum};
use crate::crc32c::crc32c;
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
    names: bool,
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
    if names {
        check_name(name)?;
    }
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
    /// Whether names are checked (not when editing a block validated when it was read).
    names: bool,
    done: bool,
}

impl<'a> Iterator for DirIter<'a> {
    type Item = Result<DirEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= DIR_TAIL_OFFSET {
            return None;
        }
        match parse_at(self.block, self.pos, self.inodes_count, self.names) {
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
        names: true,
        done: false,
    })
}

/// Like [`iter_dir_block`] for a block whose tail and checksum were already verified (for
/// example when it was read and is cached): checks every record, not the checksum.
pub fn iter_verified_dir_block<'a>(block: &'a [u8; BLOCK_SIZE], geo: &Geometry) -> DirIter<'a> {
    DirIter {
        block,
        pos: 0,
        inodes_count: Some(geo.inodes_count()),
        names: true,
        done: false,
    }
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

/// Records of a block without checksum, inode-range or name checks (for editing a block
/// that was validated when read): the record structure is still checked, so that a walk
/// never leaves the block.
fn records(block: &[u8; BLOCK_SIZE]) -> DirIter<'_> {
    DirIter {
        block,
        pos: 0,
        inodes_count: None,
        names: false,
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

/// The bytes `start..end` of a directory block that a change rewrote, with the CRC32C
/// (from 0) of what they held before: enough to patch the block's checksum
/// ([`patch_dir_block_checksum`]) rather than rehash the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirChange {
    /// The offset of the record the change added or changed.
    pub entry: usize,
    start: usize,
    end: usize,
    old_crc: u32,
}

impl DirChange {
    /// Notes bytes `start..end`, about to change for the record at `entry`.
    fn before(block: &[u8; BLOCK_SIZE], entry: usize, start: usize, end: usize) -> Self {
        Self {
            entry,
            start,
            end,
            old_crc: crc32c(0, block.get(start..end).unwrap_or(&[])),
        }
    }
}

/// Patches the checksum of a block whose checksum was correct before `change`; `false`
/// (nothing written) if the change reaches past the covered bytes.
pub fn patch_dir_block_checksum(block: &mut [u8; BLOCK_SIZE], change: &DirChange) -> bool {
    if change.end > DIR_TAIL_OFFSET {
        return false;
    }
    let (Some(changed), Some(sum)) = (
        block.get(change.start..change.end),
        read_u32(block, DIR_CHECKSUM_OFFSET),
    ) else {
        return false;
    };
    let delta_crc = change.old_crc ^ crc32c(0, changed);
    let after = (DIR_TAIL_OFFSET - change.end) as u32;
    let sum = patch_checksum(sum, delta_crc, after);
    match block.get_mut(DIR_CHECKSUM_OFFSET..DIR_CHECKSUM_OFFSET + 4) {
        Some(field) => {
            field.copy_from_slice(&sum.to_le_bytes());
            true
        }
        None => false,
    }
}

/// Adds an entry `name` -> `ino` of type `file_type` to a block, ext2 style: into the first
/// unused record big enough, or by splitting the first used record with enough slack.
/// Returns the bytes changed (`entry` is the new record's offset), or `None` if the block
/// has no room. The checksum is not updated. Fails on a malformed block or invalid
/// arguments.
pub fn add_entry(
    block: &mut [u8; BLOCK_SIZE],
    ino: u32,
    name: &[u8],
    file_type: u8,
) -> Result<Option<DirChange>> {
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
    // A used record keeps what its name needs and gives the rest to the new one.
    let keep = if old_ino == 0 {
        0
    } else {
        min_rec_len(old_name_len)
    };
    let (new_off, new_rec) = (off + keep, rec_len - keep);
    let change = DirChange::before(
        block,
        new_off,
        off,
        new_off + DIR_ENTRY_HEADER_SIZE + name.len(),
    );
    if keep > 0 {
        let old_nl = u8::try_from(old_name_len).map_err(|_| FormatError::DirName)?;
        let old_ft = *block.get(off + 7).ok_or(FormatError::DirRecLen)?;
        write_header(block, off, old_ino, keep, old_nl, old_ft)?;
    }
    // check_name bounds the length to 255.
    let nl = name.len() as u8;
    write_header(block, new_off, ino, new_rec, nl, file_type)?;
    let dst = block
        .get_mut(new_off + DIR_ENTRY_HEADER_SIZE..new_off + DIR_ENTRY_HEADER_SIZE + name.len())
        .ok_or(FormatError::DirRecLen)?;
    dst.copy_from_slice(name);
    Ok(Some(change))
}

/// Removes the record at `offset`: merged into the previous record, or marked unused if
/// it is the first. Returns the bytes changed; the checksum is not updated. Fails if no
/// record starts at `offset`.
pub fn remove_entry(block: &mut [u8; BLOCK_SIZE], offset: usize) -> Result<DirChange> {
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
            let change = DirChange::before(block, p_off, p_off + 4, p_off + 6);
            let f = block
                .get_mut(p_off + 4..p_off + 6)
                .ok_or(FormatError::DirRecLen)?;
            f.copy_from_slice(&rec.to_le_bytes());
            Ok(change)
        }
        Some((None, _)) => {
            let change = DirChange::before(block, offset, offset, offset + 4);
            let f = block
                .get_mut(offset..offset + 4)
                .ok_or(FormatError::DirRecLen)?;
            f.fill(0);
            Ok(change)
        }
        None => Err(FormatError::DirRecLen),
    }
}

/// Keeps only the used records whose name `keep` accepts, moved to the start of the block
/// in their order with no slack between them; the space after them becomes the last
/// record's slack (or one unused record) and is zeroed. The checksum is not updated.
/// Fails on a malformed block.
pub fn retain_entries(
    block: &mut [u8; BLOCK_SIZE],
    mut keep: impl FnMut(&[u8]) -> bool,
) -> Result<()> {
    for e in records(block) {
        e?;
    }
    let mut read = 0;
    let mut write = 0;
    let mut last = None;
    while read < DIR_TAIL_OFFSET {
        let ino = read_u32(block, read).ok_or(FormatError::DirRecLen)?;
        let rec_len = usize::from(read_u16(block, read + 4).ok_or(FormatError::DirRecLen)?);
        let name_len = usize::from(*block.get(read + 6).ok_or(FormatError::DirRecLen)?);
        // The walk above proved every record well formed; this keeps the loop finite anyway.
        if rec_len < DIR_ENTRY_HEADER_SIZE {
            return Err(FormatError::DirRecLen);
        }
        let end = read + DIR_ENTRY_HEADER_SIZE + name_len;
        if ino != 0
            && keep(
                block
                    .get(read + DIR_ENTRY_HEADER_SIZE..end)
                    .ok_or(FormatError::DirRecLen)?,
            )
        {
            let len = min_rec_len(name_len);
            // `write <= read`: the move never overwrites a record not yet read.
            block.copy_within(read..end, write);
            let rec = u16::try_from(len).map_err(|_| FormatError::DirRecLen)?;
            block
                .get_mut(write + 4..write + 6)
                .ok_or(FormatError::DirRecLen)?
                .copy_from_slice(&rec.to_le_bytes());
            last = Some(write);
            write += len;
        }
        read += rec_len;
    }
    block
        .get_mut(write..DIR_TAIL_OFFSET)
        .ok_or(FormatError::DirRecLen)?
        .fill(0);
    match last {
        Some(off) => {
            let rec = u16::try_from(DIR_TAIL_OFFSET - off).map_err(|_| FormatError::DirRecLen)?;
            block
                .get_mut(off + 4..off + 6)
                .ok_or(FormatError::DirRecLen)?
                .copy_from_slice(&rec.to_le_bytes());
            Ok(())
        }
        None => write_header(block, 0, 0, DIR_TAIL_OFFSET, 0, 0),
    }
}

/// Points the used record at `offset` to `ino` with type `file_type` (rename over an
/// existing name, `..` of a moved directory). Returns the bytes changed; the checksum is
/// not updated.
pub fn set_entry_inode(
    block: &mut [u8; BLOCK_SIZE],
    offset: usize,
    ino: u32,
    file_type: u8,
) -> Result<DirChange> {
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
    let change = DirChange::before(block, offset, offset, offset + DIR_ENTRY_HEADER_SIZE);
    let h = block
        .get_mut(offset..offset + DIR_ENTRY_HEADER_SIZE)
        .ok_or(FormatError::DirRecLen)?;
    h.get_mut(..4)
        .ok_or(FormatError::DirRecLen)?
        .copy_from_slice(&ino.to_le_bytes());
    if let Some(ft) = h.get_mut(7) {
        *ft = file_type;
    }
    Ok(change)
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::disk::{FT_REG, FT_SYMLINK, LOST_FOUND_INO};
    use crate::geometry::InodeSpec;

    const SEED: u32 = 0x5EED_0001;

    fn geo() -> Geometry {
        let mut g = Geometry::plan(100_000, InodeSpec::default(), 256, None).unwrap();
        g.set_checksum_seed(SEED);
        g
    }

    fn collect<'a>(it: DirIter<'a>, out: &mut [Option<DirEntry<'a>>; 64]) -> Result<usize> {
        let mut n = 0;
        for e in it {
            out[n] = Some(e?);
            n += 1;
        }
        Ok(n)
    }

    /// Root-like block: `.`, `..`, `lost+found`, `file`, finalized.
    fn sample() -> [u8; BLOCK_SIZE] {
        let mut block = [0u8; BLOCK_SIZE];
        let mut b = DirBlockBuilder::new_first(&mut block, ROOT_INO, ROOT_INO).unwrap();
        assert!(b.try_add(LOST_FOUND_INO, b"lost+found", FT_DIR).unwrap());
        assert!(b.try_add(12, b"file", FT_REG).unwrap());
        b.finalize(SEED, ROOT_INO, 9);
        block
    }

    /// Re-finalizes a modified block so only the structural check can fail.
    fn resealed(mut block: [u8; BLOCK_SIZE]) -> [u8; BLOCK_SIZE] {
        set_dir_block_checksum(&mut block, SEED, ROOT_INO, 9);
        block
    }

    #[test]
    fn min_rec_len_values() {
        assert_eq!(min_rec_len(0), 8);
        assert_eq!(min_rec_len(1), 12);
        assert_eq!(min_rec_len(4), 12);
        assert_eq!(min_rec_len(5), 16);
        assert_eq!(min_rec_len(255), 264);
    }

    #[test]
    fn builder_round_trip() {
        let g = geo();
        let block = sample();
        assert_eq!(&block[4084..4092], &[0, 0, 0, 0, 12, 0, 0, 0xDE]);
        let mut out = [None; 64];
        let n = collect(iter_dir_block(&block, &g, ROOT_INO, 9).unwrap(), &mut out).unwrap();
        assert_eq!(n, 4);
        let e: [DirEntry<'_>; 4] = core::array::from_fn(|i| out[i].unwrap());
        assert_eq!(
            (e[0].offset, e[0].ino, e[0].rec_len, e[0].name),
            (0, 2, 12, &b"."[..])
        );
        assert_eq!(
            (e[1].offset, e[1].ino, e[1].rec_len, e[1].name),
            (12, 2, 12, &b".."[..])
        );
        assert_eq!(
            (e[2].offset, e[2].ino, e[2].name),
            (24, 11, &b"lost+found"[..])
        );
        assert_eq!(e[2].rec_len, 20);
        assert_eq!((e[3].offset, e[3].ino, e[3].name), (44, 12, &b"file"[..]));
        assert_eq!(e[3].rec_len, 4084 - 44);
        assert_eq!(e[3].file_type, FT_REG);
        assert_eq!(e.iter().map(|e| e.rec_len).sum::<usize>(), 4084);
        assert!(validate_dir_block(&block, &g, ROOT_INO, 9).is_ok());
        assert_eq!(
            find_entry(&block, b"file").unwrap().map(|e| e.ino),
            Some(12)
        );
        assert_eq!(find_entry(&block, b"nope").unwrap(), None);
        assert!(!is_empty_dir_block(&block).unwrap());

        let mut empty = [0u8; BLOCK_SIZE];
        DirBlockBuilder::new(&mut empty).finalize(SEED, 30, 1);
        let n = collect(iter_dir_block(&empty, &g, 30, 1).unwrap(), &mut out).unwrap();
        assert_eq!(n, 1);
        assert_eq!(out[0].map(|e| (e.ino, e.rec_len)), Some((0, 4084)));
        assert!(is_empty_dir_block(&empty).unwrap());
    }

    #[test]
    fn fill_until_full_then_remove_and_reuse() {
        let g = geo();
        let mut block = [0u8; BLOCK_SIZE];
        let mut b = DirBlockBuilder::new_first(&mut block, 20, ROOT_INO).unwrap();
        let mut name = [b'n'; 255];
        let mut added = 0u32;
        loop {
            name[0] = b'a' + (added % 26) as u8;
            name[1] = b'a' + (added / 26) as u8;
            if !b.try_add(100 + added, &name, FT_SYMLINK).unwrap() {
                break;
            }
            added += 1;
        }
        // (4084 - 24) / 264 = 15 entries of 255 bytes after `.` and `..`.
        assert_eq!(added, 15);
        // 100 bytes left: eight 12-byte records, then 4 bytes that fit nothing.
        assert!(b.try_add(500, b"tiny", FT_REG).unwrap());
        for k in 0..7u8 {
            assert!(b
                .try_add(501 + u32::from(k), &[b'0' + k; 4], FT_REG)
                .unwrap());
        }
        assert!(!b.try_add(510, b"x", FT_REG).unwrap());
        b.finalize(SEED, 20, 3);
        assert!(validate_dir_block(&block, &g, 20, 3).is_ok());
        assert!(is_empty_dir_block(&block).is_ok_and(|e| !e));

        let victim = find_entry(&block, b"tiny").unwrap().unwrap().offset;
        remove_entry(&mut block, victim).unwrap();
        let second = find_entry(&block, &name).unwrap();
        assert!(second.is_none());
        name[0] = b'a';
        name[1] = b'a';
        let first_big = find_entry(&block, &name).unwrap().unwrap().offset;
        remove_entry(&mut block, first_big).unwrap();
        assert_eq!(find_entry(&block, &name).unwrap(), None);
        set_dir_block_checksum(&mut block, SEED, 20, 3);
        assert!(validate_dir_block(&block, &g, 20, 3).is_ok());
        let off = add_entry(&mut block, 600, b"again", FT_REG).unwrap();
        // The freed space was merged into `..` (offset 12), which splits again at 24.
        assert_eq!(off.map(|c| c.entry), Some(24));
        assert!(remove_entry(&mut block, 5).is_err());
        assert_eq!(
            add_entry(&mut block, 0, b"x", FT_REG),
            Err(FormatError::DirInode)
        );
        assert_eq!(
            add_entry(&mut block, 7, b"a/b", FT_REG),
            Err(FormatError::DirName)
        );
        assert_eq!(
            add_entry(&mut block, 7, b"", FT_REG),
            Err(FormatError::DirName)
        );
        assert_eq!(
            add_entry(&mut block, 7, &[b'x'; 256], FT_REG),
            Err(FormatError::DirName)
        );
        assert_eq!(
            add_entry(&mut block, 7, b"x", 8),
            Err(FormatError::DirFileType)
        );
    }

    #[test]
    fn remove_first_entry_marks_unused_and_set_inode() {
        let g = geo();
        let mut block = [0u8; BLOCK_SIZE];
        let mut b = DirBlockBuilder::new(&mut block);
        assert!(b.try_add(30, b"first", FT_REG).unwrap());
        assert!(b.try_add(31, b"second", FT_REG).unwrap());
        b.finalize(SEED, 40, 0);
        remove_entry(&mut block, 0).unwrap();
        set_dir_block_checksum(&mut block, SEED, 40, 0);
        let mut out = [None; 64];
        let n = collect(iter_dir_block(&block, &g, 40, 0).unwrap(), &mut out).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            out[0].map(|e| (e.ino, e.is_used(), e.rec_len)),
            Some((0, false, 16))
        );
        assert_eq!(out[0].map(|e| e.free_space()), Some(16));
        let second = out[1].unwrap().offset;
        set_entry_inode(&mut block, second, 77, FT_SYMLINK).unwrap();
        assert_eq!(
            set_entry_inode(&mut block, 0, 77, FT_REG),
            Err(FormatError::DirRecLen)
        );
        assert_eq!(
            set_entry_inode(&mut block, 4, 77, FT_REG),
            Err(FormatError::DirRecLen)
        );
        let e = find_entry(&block, b"second").unwrap().unwrap();
        assert_eq!((e.ino, e.file_type), (77, FT_SYMLINK));
        assert_eq!(
            add_entry(&mut block, 32, b"third", FT_REG)
                .unwrap()
                .map(|c| c.entry),
            Some(0)
        );
    }

    #[test]
    fn patched_checksum_matches_rehashing() {
        let mut block = [0u8; BLOCK_SIZE];
        init_dir_block(&mut block);
        set_dir_block_checksum(&mut block, SEED, 9, 4);
        let mut rng = crate::test_rng::xorshift64(3);
        let (mut added, mut removed, mut set) = (0, 0, 0);
        for round in 0..3000u32 {
            let used: std::vec::Vec<usize> = records(&block)
                .filter_map(|e| e.ok().filter(|e| e.is_used()).map(|e| e.offset))
                .collect();
            let pick = used.get(rng() as usize % used.len().max(1)).copied();
            let change = match (rng() % 3, pick) {
                (1, Some(offset)) => {
                    removed += 1;
                    remove_entry(&mut block, offset).unwrap()
                }
                (2, Some(offset)) => {
                    set += 1;
                    set_entry_inode(&mut block, offset, 100 + round, FT_SYMLINK).unwrap()
                }
                _ => {
                    let name = std::format!("{:x}", rng() >> (rng() % 64));
                    match add_entry(&mut block, 100 + round, name.as_bytes(), FT_REG).unwrap() {
                        Some(change) => {
                            added += 1;
                            change
                        }
                        None => continue,
                    }
                }
            };
            assert!(patch_dir_block_checksum(&mut block, &change));
            assert!(
                verify_dir_block_checksum(&block, SEED, 9, 4).is_ok(),
                "{round}"
            );
        }
        assert!(added > 500 && removed > 500 && set > 500);
    }

    #[test]
    fn retain_entries_compacts_the_kept_records() {
        let g = geo();
        let mut block = [0u8; BLOCK_SIZE];
        let mut b = DirBlockBuilder::new(&mut block);
        for i in 0..40u32 {
            let name = [b'a' + (i % 26) as u8; 9];
            assert!(b
                .try_add(100 + i, &name[..1 + (i as usize % 9)], FT_REG)
                .unwrap());
        }
        b.finalize(SEED, 40, 0);
        // A hole in the middle, then keep the odd inodes only.
        let third = records(&block).nth(3).unwrap().unwrap().offset;
        remove_entry(&mut block, third).unwrap();
        let kept = |name: &[u8]| name.len().is_multiple_of(2);
        let expect: std::vec::Vec<(u32, usize)> = records(&block)
            .map(|e| e.unwrap())
            .filter(|e| e.is_used() && kept(e.name))
            .map(|e| (e.ino, e.name.len()))
            .collect();
        retain_entries(&mut block, kept).unwrap();
        set_dir_block_checksum(&mut block, SEED, 40, 0);
        let got: std::vec::Vec<_> = iter_dir_block(&block, &g, 40, 0)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(
            got.iter()
                .map(|e| (e.ino, e.name.len()))
                .collect::<std::vec::Vec<_>>(),
            expect
        );
        let mut off = 0;
        for e in &got[..got.len() - 1] {
            assert_eq!((e.offset, e.rec_len), (off, min_rec_len(e.name.len())));
            off += e.rec_len;
        }
        let last = got.last().unwrap();
        assert_eq!(last.offset + last.rec_len, DIR_TAIL_OFFSET);
        assert!(block[off + min_rec_len(last.name.len())..DIR_TAIL_OFFSET]
            .iter()
            .all(|&b| b == 0));
        retain_entries(&mut block, |_| false).unwrap();
        set_dir_block_checksum(&mut block, SEED, 40, 0);
        let only: std::vec::Vec<_> = iter_dir_block(&block, &g, 40, 0).unwrap().collect();
        assert_eq!(only.len(), 1);
        assert_eq!(
            only[0].map(|e| (e.ino, e.rec_len)),
            Ok((0, DIR_TAIL_OFFSET))
        );
    }

    #[test]
    fn rejects_each_corruption() {
        use FormatError as E;
        let g = geo();
        let good = sample();
        let first_err =
            |block: &[u8; BLOCK_SIZE]| -> Result<()> { validate_dir_block(block, &g, ROOT_INO, 9) };
        assert_eq!(first_err(&good), Ok(()));
        let mut c = good;
        c[100] ^= 1;
        assert_eq!(first_err(&c), Err(E::DirChecksum));
        assert_eq!(
            validate_dir_block(&good, &g, ROOT_INO, 8),
            Err(E::DirChecksum)
        );
        assert_eq!(validate_dir_block(&good, &g, 3, 9), Err(E::DirChecksum));
        for at in [4084, 4088, 4089, 4090, 4091] {
            let mut c = good;
            c[at] ^= 0x40;
            assert_eq!(first_err(&c), Err(E::DirTail), "tail byte {at}");
        }
        // Offsets: `.` 0, `..` 12, `lost+found` 24, `file` 44.
        let with = |f: &dyn Fn(&mut [u8; BLOCK_SIZE])| {
            let mut c = good;
            f(&mut c);
            first_err(&resealed(c))
        };
        assert_eq!(with(&|c| c[28] = 4), Err(E::DirRecLen));
        assert_eq!(with(&|c| c[28] = 18), Err(E::DirRecLen));
        assert_eq!(with(&|c| c[28] = 16), Err(E::DirRecLen));
        assert_eq!(
            with(&|c| c[48..50].copy_from_slice(&(4084 - 44 + 4u16).to_le_bytes())),
            Err(E::DirRecLen)
        );
        assert_eq!(
            with(&|c| c[48..50].copy_from_slice(&(4084 - 44 - 4u16).to_le_bytes())),
            Err(E::DirRecLen)
        );
        assert_eq!(with(&|c| c[4] = 0), Err(E::DirRecLen));
        assert_eq!(with(&|c| c[30] = 0), Err(E::DirName));
        assert_eq!(with(&|c| c[32] = b'/'), Err(E::DirName));
        assert_eq!(with(&|c| c[32] = 0), Err(E::DirName));
        assert_eq!(with(&|c| c[24] = 1), Err(E::DirInode));
        assert_eq!(with(&|c| c[24] = 3), Err(E::DirInode));
        assert_eq!(with(&|c| c[24] = 10), Err(E::DirInode));
        let too_big = g.inodes_count() + 1;
        assert_eq!(
            with(&|c| c[24..28].copy_from_slice(&too_big.to_le_bytes())),
            Err(E::DirInode)
        );
        assert_eq!(
            with(&|c| c[24..28].copy_from_slice(&g.inodes_count().to_le_bytes())),
            Ok(())
        );
        assert_eq!(with(&|c| c[31] = 8), Err(E::DirFileType));
        assert_eq!(with(&|c| c[31] = 0), Ok(()));
        // An unused record with a stale name keeps obeying the rec_len rule.
        assert_eq!(with(&|c| c[24..28].fill(0)), Ok(()));
        assert_eq!(
            with(&|c| {
                c[24..28].fill(0);
                c[30] = 200;
            }),
            Err(E::DirRecLen)
        );
        // The iterator reports the first bad record once, after the good ones.
        let mut c = good;
        c[31] = 9;
        let c = resealed(c);
        let mut it = iter_dir_block(&c, &g, ROOT_INO, 9).unwrap();
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next().unwrap().map(|_| ()), Err(E::DirFileType));
        assert!(it.next().is_none());
        let mut it = iter_verified_dir_block(&c, &g);
        assert_eq!(it.nth(2).map(|e| e.map(|_| ())), Some(Err(E::DirFileType)));
        let mut bad_sum = good;
        bad_sum[4092] ^= 1;
        assert_eq!(iter_verified_dir_block(&bad_sum, &g).count(), 4);
        assert!(iter_verified_dir_block(&bad_sum, &g).all(|e| e.is_ok()));
    }

    #[test]
    fn checksum_detects_every_bit_flip() {
        let g = geo();
        let good = sample();
        for bit in 0..BLOCK_SIZE * 8 {
            let mut c = good;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(
                validate_dir_block(&c, &g, ROOT_INO, 9).is_err(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn never_panics_on_random_blocks() {
        let g = geo();
        let mut next = crate::test_rng::xorshift64(0x9E37_79B9_7F4A_7C15);
        let good = sample();
        for round in 0..3000 {
            let mut c = good;
            for _ in 0..(next() % 6 + 1) {
                let at = (next() % 120) as usize;
                c[at] = next() as u8;
            }
            if round % 3 == 0 {
                for b in c[..4084].iter_mut() {
                    *b = next() as u8;
                }
            }
            let mut c = resealed(c);
            let mut total = 0;
            if let Ok(it) = iter_dir_block(&c, &g, ROOT_INO, 9) {
                for e in it.flatten() {
                    assert!(e.offset + e.rec_len <= DIR_TAIL_OFFSET);
                    total += e.rec_len;
                }
            }
            assert!(total <= DIR_TAIL_OFFSET);
            let _ = add_entry(&mut c, 50, b"probe", FT_REG);
            let _ = remove_entry(&mut c, (next() % 4096) as usize);
            let _ = set_entry_inode(&mut c, (next() % 4096) as usize, 51, FT_REG);
            let _ = find_entry(&c, b"probe");
            let _ = is_empty_dir_block(&c);
        }
    }
}
