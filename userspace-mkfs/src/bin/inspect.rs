//! aegisfs-inspect: show the structures of an AegisFS filesystem (see `aegisfs_tools::inspect`).

fn main() {
    aegisfs_tools::tool::main(aegisfs_tools::inspect::run)
}
