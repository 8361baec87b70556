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

#[cfg(test)]
mod tests {
    use super::*;
    use aegisfs_format::dir::iter_dir_block;
    use aegisfs_format::disk::{FT_DIR, FT_REG};
    use aegisfs_format::geometry::{Geometry, InodeSpec};

    fn names(data: &[u8], geo: &Geometry, ino: u32, gen: u32) -> Vec<Vec<Vec<u8>>> {
        data.chunks(BLOCK_SIZE)
            .map(|b| {
                let b: &[u8; BLOCK_SIZE] = b.try_into().unwrap();
                iter_dir_block(b, geo, ino, gen)
                    .unwrap()
                    .map(|e| e.unwrap())
                    .filter(|e| e.is_used())
                    .map(|e| e.name.to_vec())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn packs_entries_into_checksummed_blocks() {
        let mut geo = Geometry::plan(40000, InodeSpec::default(), 256, Some(0)).unwrap();
        geo.set_checksum_seed(0x5eed);
        let entries: Vec<DirEntry> = (0..300)
            .map(|i| DirEntry {
                name: format!("name-{i:04}-{}", "x".repeat(20)).into_bytes(),
                ino: 100 + i,
                file_type: FT_REG,
            })
            .collect();
        let data = dir_blocks(12, 2, 77, 0x5eed, &entries, 1).unwrap();
        let blocks = names(&data, &geo, 12, 77);
        assert!(blocks.len() > 2);
        assert_eq!(blocks[0][0], b".");
        assert_eq!(blocks[0][1], b"..");
        let all: Vec<Vec<u8>> = blocks.concat();
        assert_eq!(all.len(), 302);
        assert_eq!(
            &all[2..],
            &entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>()[..]
        );
        // A wrong generation fails the checksum.
        let first: &[u8; BLOCK_SIZE] = data[..BLOCK_SIZE].try_into().unwrap();
        assert!(iter_dir_block(first, &geo, 12, 78).is_err());
    }

    #[test]
    fn pads_to_the_minimum_and_rejects_bad_names() {
        let mut geo = Geometry::plan(40000, InodeSpec::default(), 256, Some(0)).unwrap();
        geo.set_checksum_seed(1);
        let data = dir_blocks(11, 2, 5, 1, &[], 4).unwrap();
        assert_eq!(data.len(), 4 * BLOCK_SIZE);
        let blocks = names(&data, &geo, 11, 5);
        assert_eq!(blocks[0], vec![b".".to_vec(), b"..".to_vec()]);
        assert!(blocks[1..].iter().all(|b| b.is_empty()));
        let bad = DirEntry {
            name: b"a/b".to_vec(),
            ino: 12,
            file_type: FT_DIR,
        };
        assert!(dir_blocks(11, 2, 5, 1, &[bad], 1).is_err());
    }
}
