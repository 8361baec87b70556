#!/usr/bin/env bash
# fileops: O_DIRECT (iomap: aligned and 512-byte aligned writes, extending writes, writes
# into holes and into preallocated blocks, coherence with the page cache), fallocate (mode
# 0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE, the refused modes, EFBIG, ENOSPC with exact block
# counts), and inode flags through FS_IOC_SETFLAGS / FS_IOC_FSSETXATTR (+i, +a, +A, +S, +d,
# +D, the capability check) and statx attributes; contents, sizes, st_blocks and SEEK_DATA/SEEK_HOLE are checked
# after drop_caches and after remounts, and fsck -n must find the filesystem clean.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init fileops

cases=$work/cases
printf '%s\n' insmod mkfs-mount dio-write-read dio-extend dio-hole \
    dio-overwrite-unaligned dio-coherence dio-unwritten dio-fio dio-drop-caches \
    falloc-mode0 falloc-keep-size falloc-punch falloc-zero falloc-errors falloc-enospc \
    verify-remount chattr-immutable chattr-append chattr-flags flags-remount statx-attributes umount \
    fsck-vdb > "$cases"
suite_vm "$cases" -- --disk 512M --timeout 300 -- "$top/tests/guest/fileops.sh"
