// Extended attributes (docs/format.md, "Extended attributes"): entries in an inode's inline
// area (bytes 0x100..inode_size) and in one xattr block per inode, their validation and
// in-place editing, and the value format of POSIX ACLs.
//
// An area is a byte slice and its used length: entries fill `0..used` back to back and the
// bytes from `used` on are zero. Editing keeps that shape (removal moves the later entries
// down), so an area never has holes and every rule can be checked in one pass.

use crate::crc32c::crc32c;
use crate::disk::{Inode, BLOCK_SIZE, INODE_BASE_SIZE};
use crate::error::{FormatError, Result};
use core::mem::{offset_of, size_of};
use zerocopy::little_endian::U32;

/// Name index of `user.` attributes.
pub const XATTR_INDEX_USER: u8 = 1;
/// Name index of `system.posix_acl_access` (the name suffix is empty).
pub const XATTR_INDEX_POSIX_ACL_ACCESS: u8 = 2;
/// Name index of `system.posix_acl_default` (the name suffix is empty).
pub const XATTR_INDEX_POSIX_ACL_DEFAULT: u8 = 3;
/// Name index of `trusted.` attributes.
pub const XATTR_INDEX_TRUSTED: u8 = 4;
/// Name index of `security.` attributes.
pub const XATTR_INDEX_SECURITY: u8 = 6;

/// Bytes before an entry's name: `name_index`, `name_len`, `value_len` (u16).
pub const XATTR_ENTRY_HEADER_SIZE: usize = 4;
/// Offset of the inline area in an inode (it runs to `inode_size`).
pub const XATTR_INLINE_OFFSET: usize = INODE_BASE_SIZE;
/// `magic` of an xattr block: the bytes "AEAX" on disk.
pub const XATTR_BLOCK_MAGIC: u32 = 0x5841_4541;
/// Size of the xattr block header; entries start right after it.
pub const XATTR_BLOCK_HEADER_SIZE: usize = 32;
/// Offset of the checksum in an xattr block.
pub const XATTR_BLOCK_CHECKSUM_OFFSET: usize = 0x1C;
/// Bytes of entries an xattr block can hold.
pub const XATTR_BLOCK_AREA_SIZE: usize = BLOCK_SIZE - XATTR_BLOCK_HEADER_SIZE;

/// The header of an xattr block.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct XattrBlockHeader {
    /// [`XATTR_BLOCK_MAGIC`].
    pub magic: U32,
    /// Inodes sharing the block: 1 (sharing is reserved for a later version).
    pub refcount: U32,
    /// Bytes of entries after the header.
    pub used: U32,
    /// Zero.
    pub reserved: [u8; 16],
    /// Checksum of the block.
    pub checksum: U32,
}

const _: () = {
    assert!(size_of::<XattrBlockHeader>() == XATTR_BLOCK_HEADER_SIZE);
    assert!(offset_of!(XattrBlockHeader, refcount) == 0x04);
    assert!(offset_of!(XattrBlockHeader, used) == 0x08);
    assert!(offset_of!(XattrBlockHeader, reserved) == 0x0C);
    assert!(offset_of!(XattrBlockHeader, checksum) == XATTR_BLOCK_CHECKSUM_OFFSET);
};

/// Whether `index` is a name index this version defines.
pub fn is_known_index(index: u8) -> bool {
    matches!(
        index,
        XATTR_INDEX_USER
            | XATTR_INDEX_POSIX_ACL_ACCESS
            | XATTR_INDEX_POSIX_ACL_DEFAULT
            | XATTR_INDEX_TRUSTED
            | XATTR_INDEX_SECURITY
    )
}

/// Whether `index` names a POSIX ACL (whose name suffix is empty).
pub fn is_acl_index(index: u8) -> bool {
    matches!(
        index,
        XATTR_INDEX_POSIX_ACL_ACCESS | XATTR_INDEX_POSIX_ACL_DEFAULT
    )
}

/// The full-name prefix of a name index (`user.`, `system.posix_acl_access`, ...), empty
/// for an unknown index.
pub fn index_prefix(index: u8) -> &'static str {
    match index {
        XATTR_INDEX_USER => "user.",
        XATTR_INDEX_POSIX_ACL_ACCESS => "system.posix_acl_access",
        XATTR_INDEX_POSIX_ACL_DEFAULT => "system.posix_acl_default",
        XATTR_INDEX_TRUSTED => "trusted.",
        XATTR_INDEX_SECURITY => "security.",
        _ => "",
    }
}

/// Whether `name` is a valid suffix for `index`: empty for the ACL indexes, 1 to 255 bytes
/// for the others.
pub fn is_valid_name(index: u8, name: &[u8]) -> bool {
    if is_acl_index(index) {
        name.is_empty()
    } else {
        is_known_index(index) && !name.is_empty() && name.len() <= usize::from(u8::MAX)
    }
}

/// Bytes an entry with a name of `name_len` and a value of `value_len` bytes takes:
/// header, name and value rounded up to a multiple of 4.
pub const fn entry_size(name_len: usize, value_len: usize) -> usize {
    (XATTR_ENTRY_HEADER_SIZE + name_len + value_len + 3) & !3
}

/// One entry of an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XattrEntry<'a> {
    /// Byte offset of the entry in the area.
    pub offset: usize,
    /// Bytes the entry takes, padding included.
    pub size: usize,
    /// Name index.
    pub index: u8,
    /// Name suffix (after the index's prefix).
    pub name: &'a [u8],
    /// Value.
    pub value: &'a [u8],
}

/// Parses the entry at `off` of an area whose entries end at `end`: it must lie inside
/// `0..end` and its padding must be zero.
fn parse_at(area: &[u8], off: usize, end: usize) -> Result<XattrEntry<'_>> {
    let bad = FormatError::XattrEntry;
    let header = off
        .checked_add(XATTR_ENTRY_HEADER_SIZE)
        .and_then(|h| area.get(off..h))
        .ok_or(bad)?;
    let (index, name_len, value_len) = match header {
        &[i, n, v0, v1] => (i, usize::from(n), usize::from(u16::from_le_bytes([v0, v1]))),
        _ => return Err(bad),
    };
    let size = entry_size(name_len, value_len);
    let stop = off.checked_add(size).filter(|&s| s <= end).ok_or(bad)?;
    let name_start = off + XATTR_ENTRY_HEADER_SIZE;
    let value_start = name_start + name_len;
    let pad_start = value_start + value_len;
    let name = area.get(name_start..value_start).ok_or(bad)?;
    let value = area.get(value_start..pad_start).ok_or(bad)?;
    let pad = area.get(pad_start..stop).ok_or(bad)?;
    if pad.iter().any(|&b| b != 0) {
        return Err(bad);
    }
    Ok(XattrEntry {
        offset: off,
        size,
        index,
        name,
        value,
    })
}

/// Iterator over the entries of an area; after the first error it ends.
pub struct XattrIter<'a> {
    area: &'a [u8],
    pos: usize,
    end: usize,
    done: bool,
}

impl<'a> Iterator for XattrIter<'a> {
    type Item = Result<XattrEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.end {
            return None;
        }
        if self.end > self.area.len() || !self.end.is_multiple_of(4) {
            self.done = true;
            return Some(Err(FormatError::XattrArea));
        }
        match parse_at(self.area, self.pos, self.end) {
            Ok(e) => {
                self.pos += e.size;
                Some(Ok(e))
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

/// The entries of `area` whose used length is `used`, parsed one by one (bounds and padding
/// only; [`validate_area`] checks the other rules). A used length that is not a multiple of
/// 4 inside the area yields `XattrArea`.
pub fn entries(area: &[u8], used: usize) -> XattrIter<'_> {
    XattrIter {
        area,
        pos: 0,
        end: used,
        done: false,
    }
}

/// Checks an area: `used` a multiple of 4 within the area, zero bytes after it, every entry
/// inside `0..used` with zero padding, a known index with a valid name, well-formed ACL
/// values, and no index and name twice.
pub fn validate_area(area: &[u8], used: usize) -> Result<()> {
    if used > area.len() || !used.is_multiple_of(4) {
        return Err(FormatError::XattrArea);
    }
    if area.get(used..).is_some_and(|t| t.iter().any(|&b| b != 0)) {
        return Err(FormatError::XattrArea);
    }
    for (i, e) in entries(area, used).enumerate() {
        let e = e?;
        if !is_valid_name(e.index, e.name) {
            return Err(FormatError::XattrName);
        }
        if is_acl_index(e.index) {
            validate_acl(e.value)?;
        }
        // Areas hold at most 1016 entries (4 bytes each at least), so this stays cheap.
        for other in entries(area, used).skip(i + 1) {
            let other = other?;
            if other.index == e.index && other.name == e.name {
                return Err(FormatError::XattrDuplicate);
            }
        }
    }
    Ok(())
}

/// Checks that no index and name is in both areas of an inode (each already valid).
pub fn check_disjoint(
    inline: &[u8],
    inline_used: usize,
    block: &[u8],
    block_used: usize,
) -> Result<()> {
    for e in entries(inline, inline_used) {
        let e = e?;
        if find(block, block_used, e.index, e.name)?.is_some() {
            return Err(FormatError::XattrDuplicate);
        }
    }
    Ok(())
}

/// The entry with `index` and `name`, if the area has one.
pub fn find<'a>(
    area: &'a [u8],
    used: usize,
    index: u8,
    name: &[u8],
) -> Result<Option<XattrEntry<'a>>> {
    for e in entries(area, used) {
        let e = e?;
        if e.index == index && e.name == name {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Removes the entry with `index` and `name`: the entries after it move down and the freed
/// bytes become zero. Returns the new used length, `None` if there is no such entry.
pub fn remove(area: &mut [u8], used: usize, index: u8, name: &[u8]) -> Result<Option<usize>> {
    let Some(e) = find(area, used, index, name)? else {
        return Ok(None);
    };
    let (off, size) = (e.offset, e.size);
    // `find` checked `off + size <= used <= area.len()`.
    area.copy_within(off + size..used, off);
    let new_used = used - size;
    if let Some(tail) = area.get_mut(new_used..used) {
        tail.fill(0);
    }
    Ok(Some(new_used))
}

/// Whether an entry of `name_len` and `value_len` bytes fits after `used` bytes of an area of
/// `area_len` bytes.
pub fn fits(area_len: usize, used: usize, name_len: usize, value_len: usize) -> bool {
    value_len <= usize::from(u16::MAX)
        && used
            .checked_add(entry_size(name_len, value_len))
            .is_some_and(|end| end <= area_len)
}

/// Appends an entry (the caller removed any entry with the same index and name). Returns
/// the new used length, `None` when it does not fit; `XattrName` for an invalid name.
pub fn insert(
    area: &mut [u8],
    used: usize,
    index: u8,
    name: &[u8],
    value: &[u8],
) -> Result<Option<usize>> {
    if !is_valid_name(index, name) {
        return Err(FormatError::XattrName);
    }
    if !used.is_multiple_of(4) || !fits(area.len(), used, name.len(), value.len()) {
        return Ok(None);
    }
    let size = entry_size(name.len(), value.len());
    let entry = area
        .get_mut(used..used + size)
        .ok_or(FormatError::BufferSize)?;
    entry.fill(0);
    // Both lengths were checked against u8 and u16 above.
    let [v0, v1] = (value.len() as u16).to_le_bytes();
    let (header, rest) = entry.split_at_mut(XATTR_ENTRY_HEADER_SIZE);
    header.copy_from_slice(&[index, name.len() as u8, v0, v1]);
    let (name_dst, rest) = rest.split_at_mut(name.len());
    name_dst.copy_from_slice(name);
    if let Some(value_dst) = rest.get_mut(..value.len()) {
        value_dst.copy_from_slice(value);
    }
    Ok(Some(used + size))
}

// ----- the inline area -----

/// The inline area of an inode's `inode_size` bytes `raw` (empty for 256-byte inodes).
pub fn inline_area(raw: &[u8]) -> &[u8] {
    raw.get(XATTR_INLINE_OFFSET..).unwrap_or(&[])
}

/// The inline area of `raw`, mutable.
pub fn inline_area_mut(raw: &mut [u8]) -> &mut [u8] {
    raw.get_mut(XATTR_INLINE_OFFSET..).unwrap_or(&mut [])
}

/// Bytes of entries in the inline area: the inode's `extra_size`.
pub fn inline_used(raw: &[u8]) -> usize {
    Inode::from_slot(raw).map_or(0, |i| usize::from(i.extra_size.get()))
}

/// Checks the inline area of an inode's `raw` bytes ([`validate_area`] with `extra_size`).
pub fn validate_inline(raw: &[u8]) -> Result<()> {
    validate_area(inline_area(raw), inline_used(raw))
}

// ----- xattr blocks -----

/// An xattr block: the header, then the entry area.
#[derive(
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
#[repr(C)]
pub struct XattrBlock {
    /// The header.
    pub header: XattrBlockHeader,
    /// Entries in `0..header.used`, zeros after.
    pub area: [u8; XATTR_BLOCK_AREA_SIZE],
}

const _: () = assert!(size_of::<XattrBlock>() == BLOCK_SIZE);

impl XattrBlock {
    /// A block viewed as an xattr block.
    pub fn from_block(block: &[u8; BLOCK_SIZE]) -> &XattrBlock {
        zerocopy::transmute_ref!(block)
    }

    /// A block viewed as an xattr block, mutable.
    pub fn from_block_mut(block: &mut [u8; BLOCK_SIZE]) -> &mut XattrBlock {
        zerocopy::transmute_mut!(block)
    }

    /// The block's bytes.
    pub fn as_bytes(&self) -> &[u8; BLOCK_SIZE] {
        zerocopy::transmute_ref!(self)
    }

    /// The used length as stored (validate first).
    pub fn used(&self) -> usize {
        usize::try_from(self.header.used.get()).unwrap_or(usize::MAX)
    }

    /// Sets the used length (at most [`XATTR_BLOCK_AREA_SIZE`]).
    pub fn set_used(&mut self, used: usize) {
        let used = u32::try_from(used.min(XATTR_BLOCK_AREA_SIZE)).unwrap_or(0);
        self.header.used.set(used);
    }

    /// Makes the block an empty xattr block (the checksum is set once it is filled).
    pub fn init(&mut self) {
        self.area.fill(0);
        self.header.magic.set(XATTR_BLOCK_MAGIC);
        self.header.refcount.set(1);
        self.header.used.set(0);
        self.header.reserved.fill(0);
        self.header.checksum.set(0);
    }

    /// The checksum block number `block_nr` with these contents should have:
    /// `crc32c(seed, block_nr as u64 LE, the block with its checksum field zeroed)`.
    pub fn compute_checksum(&self, seed: u32, block_nr: u64) -> u32 {
        let (head, tail) = self.as_bytes().split_at(XATTR_BLOCK_CHECKSUM_OFFSET);
        let crc = crc32c(crc32c(seed, &block_nr.to_le_bytes()), head);
        let crc = crc32c(crc, &[0; 4]);
        crc32c(crc, tail.get(4..).unwrap_or(&[]))
    }

    /// Stores the checksum of the block as block number `block_nr`.
    pub fn update_checksum(&mut self, seed: u32, block_nr: u64) {
        let c = self.compute_checksum(seed, block_nr);
        self.header.checksum.set(c);
    }

    /// Checks the block as xattr block `block_nr`: checksum, magic, refcount 1, reserved
    /// bytes zero, then its entries ([`validate_area`]).
    pub fn validate(&self, seed: u32, block_nr: u64) -> Result<()> {
        let h = &self.header;
        if h.checksum.get() != self.compute_checksum(seed, block_nr) {
            return Err(FormatError::XattrBlockChecksum);
        }
        if h.magic.get() != XATTR_BLOCK_MAGIC
            || h.refcount.get() != 1
            || h.reserved.iter().any(|&b| b != 0)
        {
            return Err(FormatError::XattrBlockHeader);
        }
        validate_area(&self.area, self.used())
    }
}

// ----- POSIX ACL values -----

/// Version word at the start of an ACL value.
pub const ACL_VERSION: u32 = 1;
/// Bytes of the ACL version header.
pub const ACL_HEADER_SIZE: usize = 4;
/// Bytes of an ACL entry.
pub const ACL_ENTRY_SIZE: usize = 8;
/// ACL tag: the owner.
pub const ACL_USER_OBJ: u16 = 0x01;
/// ACL tag: a user (by id).
pub const ACL_USER: u16 = 0x02;
/// ACL tag: the owning group.
pub const ACL_GROUP_OBJ: u16 = 0x04;
/// ACL tag: a group (by id).
pub const ACL_GROUP: u16 = 0x08;
/// ACL tag: the mask.
pub const ACL_MASK: u16 = 0x10;
/// ACL tag: others.
pub const ACL_OTHER: u16 = 0x20;

/// One ACL entry: a tag, permission bits (read 4, write 2, execute 1) and the user or group
/// id of `ACL_USER` and `ACL_GROUP` entries (0 for the others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AclEntry {
    pub tag: u16,
    pub perm: u16,
    pub id: u32,
}

/// Bytes of an ACL value with `count` entries.
pub const fn acl_value_len(count: usize) -> usize {
    ACL_HEADER_SIZE + count * ACL_ENTRY_SIZE
}

fn acl_entry_at(value: &[u8], i: usize) -> Option<AclEntry> {
    let off = ACL_HEADER_SIZE.checked_add(i.checked_mul(ACL_ENTRY_SIZE)?)?;
    match value.get(off..off.checked_add(ACL_ENTRY_SIZE)?)? {
        &[t0, t1, p0, p1, i0, i1, i2, i3] => Some(AclEntry {
            tag: u16::from_le_bytes([t0, t1]),
            perm: u16::from_le_bytes([p0, p1]),
            id: u32::from_le_bytes([i0, i1, i2, i3]),
        }),
        _ => None,
    }
}

/// Checks an ACL value: version 1, a whole number of entries, known tags, permissions of at
/// most `rwx`, id 0 except for `ACL_USER` and `ACL_GROUP`. Returns the entry count.
pub fn validate_acl(value: &[u8]) -> Result<usize> {
    let bad = FormatError::XattrAcl;
    let version = match value.get(..ACL_HEADER_SIZE) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => return Err(bad),
    };
    let body = value.len() - ACL_HEADER_SIZE;
    if version != ACL_VERSION || !body.is_multiple_of(ACL_ENTRY_SIZE) {
        return Err(bad);
    }
    let count = body / ACL_ENTRY_SIZE;
    for i in 0..count {
        let e = acl_entry_at(value, i).ok_or(bad)?;
        let named = matches!(e.tag, ACL_USER | ACL_GROUP);
        let known = named || matches!(e.tag, ACL_USER_OBJ | ACL_GROUP_OBJ | ACL_MASK | ACL_OTHER);
        if !known || e.perm & !7 != 0 || (!named && e.id != 0) {
            return Err(bad);
        }
    }
    Ok(count)
}

/// The entries of an ACL value, after [`validate_acl`].
pub fn acl_entries(value: &[u8]) -> Result<impl Iterator<Item = AclEntry> + '_> {
    let count = validate_acl(value)?;
    Ok((0..count).filter_map(move |i| acl_entry_at(value, i)))
}

/// Writes the ACL value of `entries` into `out` (at least [`acl_value_len`] bytes); returns
/// its length. `XattrAcl` for an entry [`validate_acl`] would reject.
pub fn acl_encode(entries: impl Iterator<Item = AclEntry>, out: &mut [u8]) -> Result<usize> {
    let head = out
        .get_mut(..ACL_HEADER_SIZE)
        .ok_or(FormatError::BufferSize)?;
    head.copy_from_slice(&ACL_VERSION.to_le_bytes());
    let mut len = ACL_HEADER_SIZE;
    for e in entries {
        let slot = out
            .get_mut(len..len + ACL_ENTRY_SIZE)
            .ok_or(FormatError::BufferSize)?;
        let [t0, t1] = e.tag.to_le_bytes();
        let [p0, p1] = e.perm.to_le_bytes();
        let [i0, i1, i2, i3] = e.id.to_le_bytes();
        slot.copy_from_slice(&[t0, t1, p0, p1, i0, i1, i2, i3]);
        len += ACL_ENTRY_SIZE;
    }
    let value = out.get(..len).ok_or(FormatError::BufferSize)?;
    validate_acl(value)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::disk::S_IFREG;

    fn area_with(entries: &[(u8, &[u8], &[u8])], len: usize) -> (std::vec::Vec<u8>, usize) {
        let mut area = std::vec![0u8; len];
        let mut used = 0;
        for &(i, n, v) in entries {
            used = insert(&mut area, used, i, n, v).unwrap().unwrap();
        }
        (area, used)
    }

    fn acl(entries: &[AclEntry]) -> std::vec::Vec<u8> {
        let mut out = std::vec![0u8; acl_value_len(entries.len())];
        let n = acl_encode(entries.iter().copied(), &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn e(tag: u16, perm: u16, id: u32) -> AclEntry {
        AclEntry { tag, perm, id }
    }

    #[test]
    fn entry_layout() {
        let (area, used) = area_with(&[(XATTR_INDEX_USER, b"ab", b"xyz")], 64);
        assert_eq!(entry_size(2, 3), 12);
        assert_eq!(used, 12);
        assert_eq!(
            &area[..12],
            &[1, 2, 3, 0, b'a', b'b', b'x', b'y', b'z', 0, 0, 0]
        );
        assert!(area[12..].iter().all(|&b| b == 0));
        assert_eq!(validate_area(&area, used), Ok(()));
        let got = find(&area, used, XATTR_INDEX_USER, b"ab").unwrap().unwrap();
        assert_eq!((got.offset, got.size, got.value), (0, 12, &b"xyz"[..]));
        assert_eq!(find(&area, used, XATTR_INDEX_TRUSTED, b"ab"), Ok(None));
        // An entry exactly filling 4 bytes of header plus a multiple of 4.
        assert_eq!(entry_size(1, 3), 8);
        assert_eq!(entry_size(0, 0), 4);
    }

    #[test]
    fn insert_remove_keep_the_area_packed() {
        let (mut area, mut used) = area_with(
            &[
                (XATTR_INDEX_USER, b"one", b"1"),
                (XATTR_INDEX_TRUSTED, b"two", b"22"),
                (XATTR_INDEX_SECURITY, b"three", b""),
            ],
            256,
        );
        used = remove(&mut area, used, XATTR_INDEX_TRUSTED, b"two")
            .unwrap()
            .unwrap();
        assert_eq!(validate_area(&area, used), Ok(()));
        let names: std::vec::Vec<_> = entries(&area, used)
            .map(|e| e.unwrap().name.to_vec())
            .collect();
        assert_eq!(names, [b"one".to_vec(), b"three".to_vec()]);
        assert_eq!(
            remove(&mut area, used, XATTR_INDEX_TRUSTED, b"two"),
            Ok(None)
        );
        used = remove(&mut area, used, XATTR_INDEX_USER, b"one")
            .unwrap()
            .unwrap();
        used = remove(&mut area, used, XATTR_INDEX_SECURITY, b"three")
            .unwrap()
            .unwrap();
        assert_eq!(used, 0);
        assert!(area.iter().all(|&b| b == 0));
    }

    #[test]
    fn insert_limits() {
        let mut area = std::vec![0u8; 16];
        assert_eq!(
            insert(&mut area, 0, XATTR_INDEX_USER, b"a", &[7; 11]),
            Ok(Some(16))
        );
        assert_eq!(insert(&mut area, 16, XATTR_INDEX_USER, b"b", b""), Ok(None));
        let mut area = std::vec![0u8; 16];
        assert_eq!(
            insert(&mut area, 0, XATTR_INDEX_USER, b"a", &[7; 12]),
            Ok(None)
        );
        assert_eq!(
            insert(&mut area, 0, XATTR_INDEX_USER, b"", b"v"),
            Err(FormatError::XattrName)
        );
        assert_eq!(
            insert(&mut area, 0, XATTR_INDEX_POSIX_ACL_ACCESS, b"x", b"v"),
            Err(FormatError::XattrName)
        );
        assert_eq!(
            insert(&mut area, 0, 5, b"x", b"v"),
            Err(FormatError::XattrName)
        );
        assert!(!fits(usize::MAX, 0, 1, 65536));
        assert!(fits(XATTR_BLOCK_AREA_SIZE, 0, 4, XATTR_BLOCK_AREA_SIZE - 8));
        assert!(!fits(
            XATTR_BLOCK_AREA_SIZE,
            0,
            4,
            XATTR_BLOCK_AREA_SIZE - 7
        ));
    }

    #[test]
    fn every_area_rule() {
        use FormatError as E;
        let (good, used) = area_with(
            &[
                (XATTR_INDEX_USER, b"k", b"val"),
                (XATTR_INDEX_TRUSTED, b"k", b"v"),
            ],
            64,
        );
        assert_eq!(validate_area(&good, used), Ok(()));
        assert_eq!(validate_area(&good, used + 4), Err(E::XattrName));
        // Cut inside the last entry: the rest of it counts as bytes after the area.
        assert_eq!(validate_area(&good, used - 4), Err(E::XattrArea));
        assert_eq!(validate_area(&good, used - 2), Err(E::XattrArea));
        assert_eq!(validate_area(&good, 68), Err(E::XattrArea));
        // One byte changed: where, to what, and the rule it breaks.
        for (at, byte, err) in [
            (40, 1, E::XattrArea),
            (15, 9, E::XattrEntry),
            (2, 200, E::XattrEntry),
            (0, 5, E::XattrName),
            (0, 0, E::XattrName),
            (8, 1, E::XattrDuplicate),
        ] {
            let mut a = good.clone();
            a[at] = byte;
            assert_eq!(validate_area(&a, used), Err(err), "byte {at} = {byte}");
        }
        // An ACL index needs an empty name and a valid ACL value.
        let (acl_area, acl_used) = area_with(
            &[(
                XATTR_INDEX_POSIX_ACL_ACCESS,
                b"",
                &acl(&[e(ACL_USER_OBJ, 6, 0)]),
            )],
            64,
        );
        assert_eq!(validate_area(&acl_area, acl_used), Ok(()));
        let mut bad = acl_area.clone();
        bad[4] = 2;
        assert_eq!(validate_area(&bad, acl_used), Err(E::XattrAcl));
        let mut bad = acl_area;
        bad[1] = 1;
        assert_eq!(validate_area(&bad, acl_used), Err(E::XattrEntry));
        assert_eq!(validate_area(&[], 0), Ok(()));
        assert_eq!(entries(&good, 3).next(), Some(Err(E::XattrArea)));
        assert_eq!(entries(&good, 68).next(), Some(Err(E::XattrArea)));
    }

    #[test]
    fn disjoint_areas() {
        let (a, au) = area_with(&[(XATTR_INDEX_USER, b"x", b"1")], 64);
        let (b, bu) = area_with(&[(XATTR_INDEX_TRUSTED, b"x", b"1")], 64);
        assert_eq!(check_disjoint(&a, au, &b, bu), Ok(()));
        let (c, cu) = area_with(&[(XATTR_INDEX_USER, b"x", b"2")], 64);
        assert_eq!(
            check_disjoint(&a, au, &c, cu),
            Err(FormatError::XattrDuplicate)
        );
    }

    #[test]
    fn inline_area_of_an_inode() {
        let mut raw = std::vec![0u8; 512];
        {
            let i = Inode::from_slot_mut(&mut raw).unwrap();
            i.mode.set(S_IFREG | 0o644);
        }
        let used = insert(inline_area_mut(&mut raw), 0, XATTR_INDEX_USER, b"n", b"v")
            .unwrap()
            .unwrap();
        assert_eq!(inline_area(&raw).len(), 256);
        assert_eq!(validate_inline(&raw), Err(FormatError::XattrArea));
        Inode::from_slot_mut(&mut raw)
            .unwrap()
            .extra_size
            .set(used as u16);
        assert_eq!(inline_used(&raw), used);
        assert_eq!(validate_inline(&raw), Ok(()));
        assert_eq!(raw[0x100..0x106], [1, 1, 1, 0, b'n', b'v']);
        assert_eq!(inline_area(&raw[..256]).len(), 0);
        assert_eq!(validate_inline(&raw[..256]), Err(FormatError::XattrArea));
    }

    #[test]
    fn block_layout_and_checksum() {
        let mut block = [0xAAu8; BLOCK_SIZE];
        let x = XattrBlock::from_block_mut(&mut block);
        x.init();
        let used = x.used();
        let used = insert(&mut x.area, used, XATTR_INDEX_SECURITY, b"selinux", b"ctx")
            .unwrap()
            .unwrap();
        x.set_used(used);
        x.update_checksum(7, 1234);
        assert_eq!(&block[..4], b"AEAX");
        assert_eq!(block[4..12], [1, 0, 0, 0, 16, 0, 0, 0]);
        assert!(block[12..28].iter().all(|&b| b == 0));
        assert_eq!(block[0x20], XATTR_INDEX_SECURITY);
        assert!(block[0x30..].iter().all(|&b| b == 0));
        let mut manual = crc32c(7, &1234u64.to_le_bytes());
        manual = crc32c(manual, &block[..0x1C]);
        manual = crc32c(manual, &[0; 4]);
        manual = crc32c(manual, &block[0x20..]);
        assert_eq!(block[0x1C..0x20], manual.to_le_bytes());
        let x = XattrBlock::from_block(&block);
        assert_eq!(x.validate(7, 1234), Ok(()));
        assert_eq!(x.validate(7, 1235), Err(FormatError::XattrBlockChecksum));
        for bit in 0..BLOCK_SIZE * 8 {
            let mut c = block;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(
                XattrBlock::from_block(&c).validate(7, 1234).is_err(),
                "bit {bit}"
            );
        }
        let resealed = |f: &dyn Fn(&mut [u8; BLOCK_SIZE])| {
            let mut c = block;
            f(&mut c);
            XattrBlock::from_block_mut(&mut c).update_checksum(7, 1234);
            XattrBlock::from_block(&c).validate(7, 1234)
        };
        assert_eq!(resealed(&|_| {}), Ok(()));
        assert_eq!(resealed(&|c| c[0] = 0), Err(FormatError::XattrBlockHeader));
        assert_eq!(resealed(&|c| c[4] = 2), Err(FormatError::XattrBlockHeader));
        assert_eq!(
            resealed(&|c| c[0x10] = 1),
            Err(FormatError::XattrBlockHeader)
        );
        assert_eq!(resealed(&|c| c[8] = 0xFF), Err(FormatError::XattrArea));
        assert_eq!(resealed(&|c| c[4000] = 1), Err(FormatError::XattrArea));
        assert_eq!(resealed(&|c| c[8] = 20), Err(FormatError::XattrName));
        assert_eq!(resealed(&|c| c[0x22] = 200), Err(FormatError::XattrEntry));
    }

    #[test]
    fn acl_values() {
        let entries = [
            e(ACL_USER_OBJ, 7, 0),
            e(ACL_USER, 6, 1000),
            e(ACL_GROUP_OBJ, 5, 0),
            e(ACL_GROUP, 4, 4_000_000_000),
            e(ACL_MASK, 6, 0),
            e(ACL_OTHER, 0, 0),
        ];
        let value = acl(&entries);
        assert_eq!(value.len(), 52);
        assert_eq!(value[..12], [1, 0, 0, 0, 1, 0, 7, 0, 0, 0, 0, 0]);
        assert_eq!(value[12..20], [2, 0, 6, 0, 0xE8, 3, 0, 0]);
        assert_eq!(validate_acl(&value), Ok(6));
        assert!(acl_entries(&value).unwrap().eq(entries.iter().copied()));
        assert_eq!(validate_acl(&acl(&[])), Ok(0));
        let bad = |f: &dyn Fn(&mut std::vec::Vec<u8>)| {
            let mut v = value.clone();
            f(&mut v);
            validate_acl(&v)
        };
        assert_eq!(bad(&|v| v[0] = 2), Err(FormatError::XattrAcl));
        assert_eq!(bad(&|v| v.truncate(51)), Err(FormatError::XattrAcl));
        assert_eq!(bad(&|v| v.truncate(3)), Err(FormatError::XattrAcl));
        assert_eq!(bad(&|v| v[4] = 3), Err(FormatError::XattrAcl));
        assert_eq!(bad(&|v| v[6] = 8), Err(FormatError::XattrAcl));
        assert_eq!(bad(&|v| v[8] = 1), Err(FormatError::XattrAcl));
        let mut out = [0u8; 8];
        assert_eq!(
            acl_encode(entries.iter().copied(), &mut out),
            Err(FormatError::BufferSize)
        );
        let mut out = [0u8; 12];
        assert_eq!(
            acl_encode([e(0x40, 7, 0)].into_iter(), &mut out),
            Err(FormatError::XattrAcl)
        );
    }

    #[test]
    fn names_and_indexes() {
        assert!(is_valid_name(XATTR_INDEX_USER, b"x"));
        assert!(is_valid_name(XATTR_INDEX_SECURITY, &[b'x'; 255]));
        assert!(!is_valid_name(XATTR_INDEX_TRUSTED, &[b'x'; 256]));
        assert!(is_valid_name(XATTR_INDEX_POSIX_ACL_DEFAULT, b""));
        assert!(!is_valid_name(0, b"x") && !is_valid_name(5, b"x") && !is_valid_name(7, b"x"));
        assert_eq!(
            index_prefix(XATTR_INDEX_POSIX_ACL_ACCESS),
            "system.posix_acl_access"
        );
        assert_eq!(index_prefix(9), "");
    }

    #[test]
    fn parsing_never_panics_on_random_areas() {
        let mut next = crate::test_rng::xorshift64(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut area: std::vec::Vec<u8> = (0..len).map(|_| (next() % 7) as u8).collect();
            let used = (next() % 96) as usize;
            let _ = validate_area(&area, used);
            let _ = entries(&area, used).count();
            let _ = remove(&mut area, used, 1, b"\x01");
            let _ = insert(&mut area, used & !3, 1, b"a", b"bc");
            let _ = validate_acl(&area);
        }
    }
}
