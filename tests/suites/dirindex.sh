#!/usr/bin/env bash
# dirindex: big directories, hash-indexed on AegisFS (docs/format.md, "Indexed
# directories"): 6000 long names growing the index root to a second level, exact listings,
# lookups and errnos, a cold stat of them all (the inode table read ahead), deleting and
# refilling, readdir positions that stay valid while leaves split (telldir/seekdir), names
# kept in the head block, `.` and `..`, a filesystem made without DIR_INDEX, and a
# corrupted index (EUCLEAN and a log line, then fsck repairing it). Cases:
# tests/guest/dirindex.py.
#
# FSTYP (default aegisfs) is the filesystem under test: `FSTYP=ext4 tests/run dirindex`.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init dirindex
fstyp=${FSTYP:-aegisfs}

cases=$work/cases
printf '%s\n' mkfs-mount grow cold-stat shrink-refill readdir-stable head dot-dotdot linear \
    corrupt-index umount > "$cases"
# suite_vm's fsck -n only checks AegisFS disks.
[ "$fstyp" != aegisfs ] || printf '%s\n' fsck-vdb fsck-vdc >> "$cases"
suite_vm "$cases" -- --disk 512M --disk 512M --timeout 900 -- \
    "$top/tests/guest/dirindex.py" "$fstyp"
