//! Laying out a whole directory (all its blocks) with the format crate's block builder.

use aegisfs_format::dir::{check_name, DirBlockBuilder};
use aegisfs_format::disk::BLOCK_SIZE;

/// One entry of a directory being built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u32,
    pub file_type: u8,
}

/// The blocks of directory `ino` (generation `generation`, parent `parent`): `.` and `..`
/// first, then `entries` in order, packed into as many blocks as needed but at least
/// `min_blocks`; every block checksummed.
pub fn dir_blocks(
    ino: u32,
    parent: u32,
    generation: u32,
    seed: u32,
    entries: &[DirEntry],
    min_blocks: u64,
) -> Result<Vec<u8>, String> {
    let fmt_err = |e: aegisfs_format::error::FormatError| e.msg().to_string();
    let mut out = Vec::with_capacity(BLOCK_SIZE);
    let mut block = [0u8; BLOCK_SIZE];
    let mut builder = DirBlockBuilder::new_first(&mut block, ino, parent).map_err(fmt_err)?;
    for e in entries {
        check_name(&e.name).map_err(|err| {
            format!(
                "invalid name {:?}: {}",
                String::from_utf8_lossy(&e.name),
                err.msg()
            )
        })?;
        if builder
            .try_add(e.ino, &e.name, e.file_type)
            .map_err(fmt_err)?
        {
            continue;
        }
        builder.finalize(seed, ino, generation);
        out.extend_from_slice(&block);
        builder = DirBlockBuilder::new(&mut block);
        if !builder
            .try_add(e.ino, &e.name, e.file_type)
            .map_err(fmt_err)?
        {
            return Err("a directory entry does not fit an empty block".to_string());
        }
    }
    builder.finalize(seed, ino, generation);
    out.extend_from_slice(&block);
    while ((out.len() / BLOCK_SIZE) as u64) < min_blocks {
        DirBlockBuilder::new(&mut block).finalize(seed, ino, generation);
        out.extend_from_slice(&block);
    }
    Ok(out)
}
