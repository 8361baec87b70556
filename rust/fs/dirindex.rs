// SPDX-License-Identifier: GPL-2.0

//! Hash-indexed directories (docs/format.md, "Indexed directories"): finding the leaf of a
//! name, adding entries with leaf and node splits, and `readdir` in hash order.
//!
//! `readdir` positions of an indexed directory: byte offsets below 4096 for the head
//! (block 0, as in linear directories), then `4096 + hash` for the entries of the leaves
//! (`4096 + (hash >> 32)` for callers that need 32-bit positions), so a position stays
//! valid when leaves split and entries move. Entries whose positions are equal come out
//! together or again.

use super::blockmap::{self, DirMap};
use super::dir::{block_count, modify_block, DirBlock, EntryPos};
use super::superblock::inode_corruption;
use crate::dir::{add_entry, init_dir_block, min_rec_len, retain_entries, set_dir_block_checksum};
use crate::dirindex::{
    copy_upper_half, init_index_block, insert_index_entry, leaf_split_hash, name_hash,
    set_index_checksum, truncate_index_block, IndexBlock, IndexEntry, FIRST_INDEXED_BLOCK,
    HASH_LIMIT, INDEX_MAX_LEVEL, INDEX_ROOT_BLOCK, MAX_LEAF_ENTRIES, MIN_INDEXED_BLOCKS,
};
use crate::disk::{BLOCK_SIZE, BLOCK_SIZE_U64};
use crate::error::FormatError;
use crate::vfs::buffer::{BufferHead, Verified};
use crate::vfs::inode::Inode;
use crate::vfs::ops::DirEmitter;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// First `readdir` position of the leaves' entries (the head's offsets are below it).
const HASH_POS_BASE: u64 = BLOCK_SIZE_U64;
/// End-of-directory position for 64-bit callers.
const EOF_POS: i64 = i64::MAX;
/// End-of-directory position for 32-bit callers.
const EOF_POS_32: i64 = i32::MAX as i64;
/// Index levels below and including the root.
const MAX_DEPTH: usize = INDEX_MAX_LEVEL as usize + 1;

/// Whether `dir` is indexed.
pub(crate) fn is_indexed(dir: &Inode) -> bool {
    dir.info().dir_indexed.load(Ordering::Relaxed)
}

/// The hash key of indexed directory `dir`, after checking that the filesystem allows
/// indexes and that `dir` is long enough to have one.
fn hash_key(dir: &Inode) -> Result<[u8; 16]> {
    let key = dir.sb().info().geometry().dir_hash_key().copied();
    match key {
        Some(key) if block_count(dir) >= MIN_INDEXED_BLOCKS => Ok(key),
        _ => Err(inode_corruption(dir, FormatError::DirIndexRange.msg())),
    }
}

/// Reads index block `index` of `dir` (of `blocks` blocks), validated once per read from
/// the device.
fn read_index(dir: &Inode, map: &mut DirMap<'_>, index: u64, blocks: u64) -> Result<BufferHead> {
    let sb = dir.sb();
    let bh = sb.bread(map.block(index)?)?;
    if !bh.is_verified(Verified::DirIndex) {
        IndexBlock::validate(
            bh.data(),
            sb.info().geometry().checksum_seed(),
            dir.ino(),
            dir.info().generation,
            blocks,
        )
        .map_err(|e| inode_corruption(dir, e.msg()))?;
        bh.set_verified(Verified::DirIndex);
    }
    Ok(bh)
}

/// The structure of an index block [`read_index`] returned (validated when it was read,
/// changed since only by this module, which keeps it valid).
fn index_view<'a>(dir: &Inode, bh: &'a BufferHead) -> Result<IndexBlock<'a>> {
    IndexBlock::revalidated(bh.data()).map_err(|e| inode_corruption(dir, e.msg()))
}

/// The way from the root to a leaf.
struct Descent {
    /// `(directory block, entry)` of each index block, the root first.
    path: [(u64, usize); MAX_DEPTH],
    /// Whether each index block of `path` is full (an insert would split it).
    full: [bool; MAX_DEPTH],
    depth: usize,
    /// The root's level.
    root_level: u8,
    /// The leaf's directory block and hash range.
    leaf: u64,
    lo: u64,
    hi: u64,
}

/// Descends from the root of `dir` (of `blocks` blocks) to the leaf whose range holds
/// `hash`, checking that each index block fits where it is found.
fn descend(dir: &Inode, map: &mut DirMap<'_>, hash: u64, blocks: u64) -> Result<Descent> {
    let mut d = Descent {
        path: [(0, 0); MAX_DEPTH],
        full: [false; MAX_DEPTH],
        depth: 0,
        root_level: 0,
        leaf: 0,
        lo: 0,
        hi: HASH_LIMIT,
    };
    let mut index = INDEX_ROOT_BLOCK;
    let mut level = None;
    // Each step goes one level down from at most INDEX_MAX_LEVEL.
    for slot in 0..MAX_DEPTH {
        let bh = read_index(dir, map, index, blocks)?;
        let node = index_view(dir, &bh)?;
        let first = node.entry(0).map(|e| e.hash);
        if level.is_some_and(|l| node.level() != l) || first != Some(d.lo) {
            return Err(inode_corruption(dir, FormatError::DirIndex.msg()));
        }
        let i = node.child_for(hash);
        let child = node.entry(i).ok_or(EUCLEAN)?;
        d.hi = node.range_end(i, d.hi);
        d.lo = child.hash;
        d.path[slot] = (index, i);
        d.full[slot] = node.is_full();
        d.depth = slot + 1;
        if slot == 0 {
            d.root_level = node.level();
        }
        if node.level() == 0 {
            d.leaf = u64::from(child.block);
            return Ok(d);
        }
        level = Some(node.level() - 1);
        index = u64::from(child.block);
    }
    Err(inode_corruption(dir, FormatError::DirIndex.msg()))
}

/// Bits of a [`HeadNames`] filter; a name sets two, chosen by 12-bit parts of its hash.
const HEAD_FILTER_BITS: usize = 4096;

/// Which names the head of an indexed directory may hold: a Bloom filter of their hashes,
/// made when the directory is first searched after it was read or indexed. With the ~250
/// short names a full head holds, about 1 in 70 absent names is a false hit (the head is
/// then searched in vain); a name in the head is never missed. The filter stays right for
/// as long as the directory lives: this module adds no name to the head of an indexed
/// directory ([`super::dir::add`]), and a name removed from the head only leaves its bits.
pub(crate) struct HeadNames {
    bits: [u64; HEAD_FILTER_BITS / 64],
}

impl HeadNames {
    fn positions(hash: u64) -> [usize; 2] {
        let mask = (HEAD_FILTER_BITS - 1) as u64;
        [(hash & mask) as usize, ((hash >> 12) & mask) as usize]
    }

    fn insert(&mut self, hash: u64) {
        for bit in Self::positions(hash) {
            if let Some(word) = self.bits.get_mut(bit / 64) {
                *word |= 1 << (bit % 64);
            }
        }
    }

    fn may_hold(&self, hash: u64) -> bool {
        Self::positions(hash).iter().all(|&bit| {
            self.bits
                .get(bit / 64)
                .is_some_and(|word| word & (1 << (bit % 64)) != 0)
        })
    }
}

/// Whether the head of indexed directory `dir` may hold the name of hash `hash`. The
/// caller holds the directory's lock, shared or exclusive, so that the head does not
/// change while its filter is made.
fn head_may_hold(dir: &Inode, map: &mut DirMap<'_>, key: &[u8; 16], hash: u64) -> Result<bool> {
    let names = &dir.info().head_names;
    if let Some(filter) = names.as_ref() {
        return Ok(filter.may_hold(hash));
    }
    let empty = HeadNames {
        bits: [0; HEAD_FILTER_BITS / 64],
    };
    // Without memory for the filter, the head is searched every time.
    let Ok(mut filter) = KBox::new(empty, GFP_KERNEL) else {
        return Ok(true);
    };
    let head = DirBlock::read(dir, map, 0)?;
    for entry in head.entries() {
        let entry = entry.map_err(|e| inode_corruption(dir, e.msg()))?;
        if entry.ino != 0 {
            filter.insert(name_hash(key, entry.name));
        }
    }
    let may = filter.may_hold(hash);
    // Another lookup may have made it first: both filters are the same.
    names.populate(filter);
    Ok(may)
}

/// Finds the used entry `name` in indexed directory `dir`: in the head when its filter
/// allows, else in the leaf of the name's hash.
pub(crate) fn find(dir: &Inode, name: &[u8]) -> Result<Option<EntryPos>> {
    let key = hash_key(dir)?;
    let hash = name_hash(&key, name);
    let mut map = DirMap::new(dir);
    if head_may_hold(dir, &mut map, &key, hash)? {
        if let Some((offset, ino)) = DirBlock::read(dir, &mut map, 0)?.find_pos(name) {
            return Ok(Some(EntryPos {
                index: 0,
                offset,
                ino,
            }));
        }
    }
    let blocks = block_count(dir);
    let d = descend(dir, &mut map, hash, blocks)?;
    let leaf = DirBlock::read(dir, &mut map, d.leaf)?;
    Ok(leaf.find_pos(name).map(|(offset, ino)| EntryPos {
        index: d.leaf,
        offset,
        ino,
    }))
}

/// Makes `dir`, a linear directory of one full block, indexed: an empty root in block 1
/// and an empty leaf in block 2.
pub(crate) fn convert(dir: &Inode) -> Result {
    let sb = dir.sb();
    let seed = sb.info().geometry().checksum_seed();
    let generation = dir.info().generation;
    let blocks = allocate(dir, 1, 2)?;
    let [root, leaf] = [blocks[0], blocks[1]];
    let root_bh = sb.new_block(root)?;
    super::journal::modify(sb, &root_bh, Some(dir), |data| {
        let first = IndexEntry {
            hash: 0,
            block: FIRST_INDEXED_BLOCK as u32,
        };
        let result = init_index_block(data, 0, &[first]);
        set_index_checksum(data, seed, dir.ino(), generation);
        result
    })
    .map_err(|e| inode_corruption(dir, e.msg()))?;
    let leaf_bh = sb.new_block(leaf)?;
    super::journal::modify(sb, &leaf_bh, Some(dir), |data| {
        init_dir_block(data);
        set_dir_block_checksum(data, seed, dir.ino(), generation);
    });
    dir.set_size(MIN_INDEXED_BLOCKS * BLOCK_SIZE_U64);
    dir.info().dir_indexed.store(true, Ordering::Relaxed);
    dir.mark_dirty();
    Ok(())
}

/// Maps `count` new blocks of `dir` from directory block `first` (its current end) and
/// returns their device blocks; on failure none stays mapped. The size is the caller's.
fn allocate(dir: &Inode, first: u64, count: usize) -> Result<[u64; 2 * MAX_DEPTH]> {
    let mut out = [0u64; 2 * MAX_DEPTH];
    if count > out.len() {
        return Err(EINVAL);
    }
    let mut done = 0usize;
    while done < count {
        let want = (count - done) as u64;
        let mapped = match blockmap::get_blocks(dir, first + done as u64, want, true) {
            Ok(Some(mapped)) => mapped,
            failed => {
                if done > 0 {
                    let mut map = dir.map_write();
                    let freed = blockmap::free_range(dir, &mut map, first, first + done as u64);
                    blockmap::finish_changes(dir, map);
                    freed?;
                }
                return Err(failed.err().unwrap_or(EIO));
            }
        };
        for (slot, device) in out
            .iter_mut()
            .skip(done)
            .zip(mapped.start..mapped.start + mapped.count.min(want))
        {
            *slot = device;
            done += 1;
        }
    }
    Ok(out)
}

/// Adds `name` -> `ino` to the leaf of its hash in indexed directory `dir` (never to the
/// head, whose [`HeadNames`] filter would then miss it).
pub(crate) fn add(dir: &Inode, name: &[u8], ino: u32, file_type: u8) -> Result {
    let key = hash_key(dir)?;
    let hash = name_hash(&key, name);
    let blocks = block_count(dir);
    let mut map = DirMap::new(dir);
    let d = descend(dir, &mut map, hash, blocks)?;
    let leaf = DirBlock::read(dir, &mut map, d.leaf)?;
    let need = min_rec_len(name.len());
    if leaf.has_room(need) {
        drop(leaf);
        return modify_block(dir, d.leaf, |data| {
            add_entry(data, ino, name, file_type)?
                .ok_or(FormatError::DirRecLen)
                .map(Some)
        });
    }
    // Where the leaf splits, decided before anything changes.
    let mut sizes = KVec::with_capacity(MAX_LEAF_ENTRIES + 1, GFP_KERNEL)?;
    for entry in leaf.entries() {
        let entry = entry.map_err(|e| inode_corruption(dir, e.msg()))?;
        if entry.ino != 0 {
            let len = min_rec_len(entry.name.len()) as u16;
            sizes.push((name_hash(&key, entry.name), len), GFP_KERNEL)?;
        }
    }
    sizes.push((hash, need as u16), GFP_KERNEL)?;
    let split = leaf_split_hash(&mut sizes).ok_or(ENOSPC)?;
    drop(sizes);
    drop(leaf);

    // Full index blocks from the bottom up split too; a full root first moves down.
    let full = d.full[..d.depth].iter().rev().take_while(|&&f| f).count();
    let root_grows = full == d.depth;
    if root_grows && d.root_level >= INDEX_MAX_LEVEL {
        return Err(ENOSPC);
    }
    drop(map);
    let count = 1 + full + usize::from(root_grows);
    let new = allocate(dir, blocks, count)?;
    dir.set_size((blocks + count as u64) * BLOCK_SIZE_U64);
    dir.mark_dirty();
    let mut grow = Growth {
        dir,
        blocks: blocks + count as u64,
        next: blocks,
        new,
        used: 0,
    };

    let new_leaf = grow.take()?;
    split_leaf(&grow, d.leaf, new_leaf, split, &key)?;
    let target = if hash >= split { new_leaf.0 } else { d.leaf };
    modify_block(dir, target, |data| {
        add_entry(data, ino, name, file_type)?
            .ok_or(FormatError::DirRecLen)
            .map(Some)
    })?;
    let entry = IndexEntry {
        hash: split,
        block: block_u32(new_leaf.0)?,
    };
    insert(&mut grow, &d.path[..d.depth], entry)
}

fn block_u32(index: u64) -> Result<u32> {
    u32::try_from(index).map_err(|_| EFBIG)
}

/// New blocks of a directory being grown by a split, handed out in order.
struct Growth<'a> {
    dir: &'a Inode,
    /// The directory's blocks after the growth.
    blocks: u64,
    /// Directory block of the next new block.
    next: u64,
    new: [u64; 2 * MAX_DEPTH],
    used: usize,
}

impl Growth<'_> {
    /// The next new block: `(directory block, device block)`.
    fn take(&mut self) -> Result<(u64, u64)> {
        let device = *self.new.get(self.used).ok_or(EINVAL)?;
        let index = self.next;
        self.used += 1;
        self.next += 1;
        Ok((index, device))
    }
}

/// Moves the entries of leaf `old` whose hash is `split` or more into new leaf `new`.
fn split_leaf(grow: &Growth<'_>, old: u64, new: (u64, u64), split: u64, key: &[u8; 16]) -> Result {
    let dir = grow.dir;
    let sb = dir.sb();
    let seed = sb.info().geometry().checksum_seed();
    let generation = dir.info().generation;
    let mut map = DirMap::new(dir);
    let old_leaf = DirBlock::read(dir, &mut map, old)?;
    let new_bh = sb.new_block(new.1)?;
    super::journal::modify(sb, &new_bh, Some(dir), |data| {
        data.copy_from_slice(old_leaf.data());
        let result = retain_entries(data, |name| name_hash(key, name) >= split);
        set_dir_block_checksum(data, seed, dir.ino(), generation);
        result
    })
    .map_err(|e| inode_corruption(dir, e.msg()))?;
    drop(old_leaf);
    modify_block(dir, old, |data| {
        retain_entries(data, |name| name_hash(key, name) < split).map(|()| None)
    })
}

/// Changes index block `index` of the directory with `f` and updates its checksum.
fn modify_index(
    dir: &Inode,
    bh: &BufferHead,
    f: impl FnOnce(&mut [u8; BLOCK_SIZE]) -> crate::error::Result<()>,
) -> Result {
    let seed = dir.sb().info().geometry().checksum_seed();
    let generation = dir.info().generation;
    super::journal::modify(dir.sb(), bh, Some(dir), |data| {
        let result = f(data);
        set_index_checksum(data, seed, dir.ino(), generation);
        result
    })
    .map_err(|e| inode_corruption(dir, e.msg()))
}

/// A new index block of the directory, filled by `f`.
fn new_index(
    grow: &mut Growth<'_>,
    f: impl FnOnce(&mut [u8; BLOCK_SIZE]) -> crate::error::Result<()>,
) -> Result<(u64, BufferHead)> {
    let (index, device) = grow.take()?;
    let bh = grow.dir.sb().new_block(device)?;
    modify_index(grow.dir, &bh, f)?;
    Ok((index, bh))
}

/// Inserts `entry` after the entry `path` ends at, splitting full index blocks upwards.
fn insert(grow: &mut Growth<'_>, path: &[(u64, usize)], entry: IndexEntry) -> Result {
    let dir = grow.dir;
    let blocks = grow.blocks;
    let Some((&(index, pos), parents)) = path.split_last() else {
        return Err(EINVAL);
    };
    let mut map = DirMap::new(dir);
    let bh = read_index(dir, &mut map, index, blocks)?;
    let (full, level) = {
        let node = index_view(dir, &bh)?;
        (node.is_full(), node.level())
    };
    if !full {
        return modify_index(dir, &bh, |data| insert_index_entry(data, pos + 1, entry));
    }
    // A full root keeps its place: its entries move to a new node one level down, which
    // then splits like any other node.
    let root_path;
    let (node_bh, parents) = if parents.is_empty() {
        let (moved, moved_bh) = new_index(grow, |data| {
            data.copy_from_slice(bh.data());
            Ok(())
        })?;
        let down = IndexEntry {
            hash: 0,
            block: block_u32(moved)?,
        };
        modify_index(dir, &bh, |data| init_index_block(data, level + 1, &[down]))?;
        root_path = [(index, 0usize)];
        (moved_bh, &root_path[..])
    } else {
        (bh, parents)
    };
    let mut halves = (0, 0);
    let (upper, upper_bh) = new_index(grow, |data| {
        halves = copy_upper_half(node_bh.data(), data)?;
        Ok(())
    })?;
    let (kept, upper_first) = halves;
    modify_index(dir, &node_bh, |data| truncate_index_block(data, kept))?;
    if pos < kept {
        modify_index(dir, &node_bh, |data| {
            insert_index_entry(data, pos + 1, entry)
        })?;
    } else {
        modify_index(dir, &upper_bh, |data| {
            insert_index_entry(data, pos + 1 - kept, entry)
        })?;
    }
    let separator = IndexEntry {
        hash: upper_first,
        block: block_u32(upper)?,
    };
    insert(grow, parents, separator)
}

/// Whether indexed directory `dir` has no entries in its leaves.
pub(crate) fn leaves_empty(dir: &Inode) -> Result<bool> {
    hash_key(dir)?;
    let blocks = block_count(dir);
    let mut map = DirMap::new(dir);
    let mut start = 0;
    loop {
        crate::vfs::cond_resched();
        let d = descend(dir, &mut map, start, blocks)?;
        if !DirBlock::read(dir, &mut map, d.leaf)?.is_unused()? {
            return Ok(false);
        }
        if d.hi >= HASH_LIMIT {
            return Ok(true);
        }
        start = d.hi;
    }
}

fn position(hash: u64, hash32: bool) -> i64 {
    let pos = if hash32 { hash >> 32 } else { hash };
    // Below 2^62 + 4096.
    (HASH_POS_BASE + pos) as i64
}

/// `readdir` of the leaves of indexed directory `dir` from the emitter's position (at
/// least 4096).
pub(crate) fn iterate(dir: &Inode, emitter: &mut DirEmitter) -> Result {
    let hash32 = emitter.hash32();
    let eof = if hash32 { EOF_POS_32 } else { EOF_POS };
    let Ok(pos) = u64::try_from(emitter.pos()) else {
        return Ok(());
    };
    if emitter.pos() >= eof || pos < HASH_POS_BASE {
        return Ok(());
    }
    let key = hash_key(dir)?;
    let cookie = pos - HASH_POS_BASE;
    let mut start = if hash32 {
        cookie.checked_shl(32).filter(|_| cookie < 1 << 32)
    } else {
        Some(cookie)
    }
    .unwrap_or(HASH_LIMIT);
    let blocks = block_count(dir);
    let mut map = DirMap::new(dir);
    let mut found = KVec::with_capacity(MAX_LEAF_ENTRIES, GFP_KERNEL)?;
    while start < HASH_LIMIT {
        crate::vfs::cond_resched();
        let d = descend(dir, &mut map, start, blocks)?;
        let leaf = DirBlock::read(dir, &mut map, d.leaf)?;
        found.clear();
        for entry in leaf.entries() {
            let entry = entry.map_err(|e| inode_corruption(dir, e.msg()))?;
            if entry.ino == 0 {
                continue;
            }
            let hash = name_hash(&key, entry.name);
            if hash < d.lo || hash >= d.hi {
                return Err(inode_corruption(dir, FormatError::DirIndexRange.msg()));
            }
            if hash >= start {
                found.push((hash, entry.offset), GFP_KERNEL)?;
            }
        }
        found.sort_unstable();
        for &(hash, offset) in found.iter() {
            let (name, ino, file_type) = leaf.record(offset).ok_or(EUCLEAN)?;
            emitter.set_pos(position(hash, hash32));
            if !emitter.emit(name, ino, file_type) {
                return Ok(());
            }
            // Past it, so that an error further on cannot repeat it forever.
            emitter.set_pos(position(hash, hash32) + 1);
        }
        // In 32-bit positions this may step back into the last bucket: entries may come
        // again, but none is skipped.
        start = d.hi;
        if start < HASH_LIMIT {
            emitter.set_pos(position(start, hash32));
        }
    }
    emitter.set_pos(eof);
    Ok(())
}
