//! Pass 1B: blocks claimed by more than one pointer get a private copy.

use aegisfs_format::blockmap::BlockPtr;
use aegisfs_format::checksum::set_inode_checksum;
use aegisfs_format::disk::{IndirectBlock, Inode, PTRS_PER_BLOCK};
use aegisfs_format::xattr::XattrBlock;

use super::{span, Checker, DirBlock, Dup, Loc, XATTR_LBLK};
use crate::fsck::ui::{check_cancel, Res, Stop};

impl<'u, 'o> Checker<'u, 'o> {
    pub(super) fn pass1b(&mut self) -> Res<()> {
        let dups = std::mem::take(&mut self.dups);
        for d in &dups {
            check_cancel()?;
            let Some(new) = self.clone_tree(d, d.block, d.level, d.lblk)? else {
                self.ui.unfixable(&format!(
                    "No free block to clone block {} of inode {}",
                    d.block, d.ino
                ));
                continue;
            };
            let new = BlockPtr {
                block: new,
                unwritten: d.unwritten,
            }
            .encode();
            match d.loc {
                Loc::Indirect { block, index } => {
                    let mut blk = self.dev.read_new(block)?;
                    let ib = IndirectBlock::from_block_mut(&mut blk);
                    ib.set_ptr(index, new);
                    ib.update_checksum(self.seed, d.ino, d.generation);
                    self.dev.write(block, &blk)?;
                }
                loc => {
                    let mut raw = self.read_inode(d.ino)?;
                    let i =
                        Inode::from_slot_mut(&mut raw).map_err(|e| Stop::Error(e.msg().into()))?;
                    match loc {
                        Loc::Direct(k) => {
                            i.set_direct_ptr(k, new);
                        }
                        Loc::Root(depth) => {
                            i.set_tree_root(depth, new);
                        }
                        _ => i.xattr_block.set(new),
                    }
                    set_inode_checksum(self.seed, d.ino, &mut raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?;
                    self.write_inode(d.ino, &raw)?;
                }
            }
        }
        Ok(())
    }

    /// Copies the subtree at `p` into newly allocated blocks owned by `d.ino`; returns
    /// the new root, or `None` when the filesystem is full.
    fn clone_tree(&mut self, d: &Dup, p: u64, level: u8, first: u64) -> Res<Option<u64>> {
        let Some(new) = self.alloc() else {
            return Ok(None);
        };
        let mut blk = self.dev.read_new(p)?;
        if level == 0 {
            if first == XATTR_LBLK {
                // Its checksum covers its block number.
                XattrBlock::from_block_mut(&mut blk).update_checksum(self.seed, new);
            } else if d.is_dir {
                self.seal_dir_block_copy(&mut blk, d.ino, d.generation, first);
                self.dblist.push(DirBlock {
                    ino: d.ino,
                    lblk: first,
                    block: new,
                });
            }
        } else {
            for i in 0..PTRS_PER_BLOCK {
                let raw = IndirectBlock::from_block(&blk).ptr(i).unwrap_or(0);
                if raw == 0 {
                    continue;
                }
                // Pass 1 cleared the UNWRITTEN bit where it is not allowed (or was told
                // not to): only a leaf of a regular file keeps it in the copy.
                let c = BlockPtr::decode(raw);
                let cf = first + i as u64 * span(level - 1);
                let copy = if self.geo.is_data_block(c.block) {
                    self.clone_tree(d, c.block, level - 1, cf)?
                } else {
                    None
                };
                let copy = copy.map_or(0, |block| {
                    BlockPtr {
                        block,
                        unwritten: c.unwritten && level == 1 && !d.is_dir,
                    }
                    .encode()
                });
                IndirectBlock::from_block_mut(&mut blk).set_ptr(i, copy);
            }
            IndirectBlock::from_block_mut(&mut blk).update_checksum(self.seed, d.ino, d.generation);
        }
        self.dev.write(new, &blk)?;
        Ok(Some(new))
    }
}
