#!/usr/bin/env bash
# posix: POSIX namespace and attribute operations with exact results and errnos (create,
# mkdir/rmdir, link, symlink, mknod, O_TMPFILE, rename and renameat2 flags, name limits,
# big directories, chmod/chown and setuid clearing, permission bits and sticky directories
# for unprivileged users, utimes, truncate across the block map boundaries, unlinked open
# files, fallocate modes, EFBIG, O_DIRECT, mmap, sendfile/splice/copy_file_range, fsync,
# remount ro, atime options, mtime/ctime), file handles (name_to_handle_at /
# open_by_handle_at: NFS export), then the same tree built on the filesystem under test and
# on ext4 must look the same.
#
# FSTYP (default aegisfs) is the filesystem under test: `FSTYP=ext4 tests/run posix`.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init posix
fstyp=${FSTYP:-aegisfs}

cases=$work/cases
printf '%s\n' mkfs-mount handle-file handle-dir handle-stale handle-forged create mkdir-rmdir link symlink mknod tmpfile rename rename-dir \
    renameat2 names bigdir chmod-chown permissions utimes truncate unlinked-open fallocate fallocate-punch \
    fallocate-zero-range collapse-insert efbig odirect mmap copy swapfile swapfile-holes swapfile-unwritten sync remount-ro label-uuid freeze idmapped atime times compare-ext4 umount > "$cases"
# suite_vm's fsck -n only checks AegisFS disks (vdc is always the ext4 reference).
[ "$fstyp" != aegisfs ] || echo fsck-vdb >> "$cases"
suite_vm "$cases" -- --disk 2G --disk 512M --timeout 600 -- \
    "$top/tests/guest/posix.py" "$fstyp"
