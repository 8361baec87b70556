//! Pass 4: reference counts.

use crate::format_ext::file_type_name;
use aegisfs_format::checksum::set_inode_checksum;
use aegisfs_format::disk::{Inode, FT_DIR};

use super::{Checker, ReadAhead, TYPE_BAD};
use crate::fsck::ui::{check_cancel, Res, Stop};

impl<'u, 'o> Checker<'u, 'o> {
    pub(super) fn pass4(&mut self) -> Res<()> {
        let count = self.geo.inodes_count();
        let mut ahead = ReadAhead::default();
        for ino in 1..=count {
            if ino % 4096 == 0 {
                check_cancel()?;
                self.ui.progress(4, u64::from(ino), u64::from(count));
            }
            let t = self.ftype_of(ino);
            if t == 0 || t == TYPE_BAD {
                continue;
            }
            let mut raw = self.read_inode_ahead(ino, &mut ahead)?;
            let links = Inode::from_slot(&raw).map_or(0, |i| i.links_count.get());
            let mut counted = self.refs.get(ino as usize).copied().unwrap_or(0);
            if counted == 0 && t != FT_DIR {
                if links == 0 {
                    let msg = format!(
                        "Inode {ino} has no links and no directory entry (a deleted file still \
                         allocated); release it"
                    );
                    if self.ui.problem(&msg, true)? {
                        self.release_inode(ino)?;
                    }
                    continue;
                }
                let msg = format!(
                    "Unattached inode {ino} ({}); connect it to /lost+found",
                    file_type_name(t)
                );
                if self.ui.problem(&msg, false)? {
                    match self.lost_found {
                        Some(lf) => {
                            if self.add_entry(lf, format!("#{ino}").as_bytes(), ino, t)? {
                                counted = 1;
                                self.add_ref(ino);
                            }
                        }
                        None => self
                            .ui
                            .unfixable(&format!("No /lost+found to reconnect inode {ino}")),
                    }
                }
                if counted == 0 {
                    continue;
                }
                raw = self.read_inode_ahead(ino, &mut ahead)?;
            }
            if links != counted {
                let msg = format!("Inode {ino} ref count is {links}, should be {counted}");
                if self.ui.problem(&msg, false)? {
                    Inode::from_slot_mut(&mut raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?
                        .links_count
                        .set(counted);
                    set_inode_checksum(self.seed, ino, &mut raw)
                        .map_err(|e| Stop::Error(e.msg().into()))?;
                    self.write_inode(ino, &raw)?;
                }
            }
        }
        let orphan = self.sb().last_orphan.get();
        if orphan != 0 {
            let msg =
                format!("Superblock orphan list is not empty (head inode {orphan}); clear it");
            if self.ui.problem(&msg, true)? {
                self.sb_mut().last_orphan.set(0);
            }
        }
        Ok(())
    }
}
