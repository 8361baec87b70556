//! mkfs.aegisfs: create an AegisFS filesystem (see `aegisfs_tools::mkfs`).

fn main() {
    aegisfs_tools::tool::main(aegisfs_tools::mkfs::run)
}
