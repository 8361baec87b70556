//! fsck.aegisfs: check and repair an AegisFS filesystem (see `aegisfs_tools::fsck`).

fn main() {
    aegisfs_tools::tool::main(aegisfs_tools::fsck::run)
}
