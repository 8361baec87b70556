#!/usr/bin/env bash
# trim: FITRIM (batched discard, fstrim) and the discard mount option on disks that accept
# discard: trimmed byte counts, ext4's argument checks and errnos (EINVAL, EFAULT, EPERM,
# EOPNOTSUPP without discard, EROFS with norecovery), data intact after deleting files and
# trimming, the discarded blocks reading back as zeros, blocks freed by an uncommitted
# transaction left alone (shutdown and journal replay bring the file back), FITRIM in a
# loop while files are written, fsync'ed and deleted, writes during a slow discard placed
# elsewhere or waiting for it, -o discard (after the commit only, with and without a
# journal), fsck clean; afterwards the host checks that the deleted data no longer takes
# space in the sparse image file. Cases: tests/README.md.
#
# FSTYP (default aegisfs) is the filesystem under test: `FSTYP=ext4 tests/run trim`.
# TRIM_SECONDS (default 20): how long the concurrent case runs.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init trim
fstyp=${FSTYP:-aegisfs}

cases=$work/cases
printf '%s\n' mkfs-mount discard-visible fstrim fitrim-ioctl fitrim-errors data-intact \
    zeroes uncommitted concurrent ro discard-option discard-uncommitted discard-concurrent \
    discard-nojournal discard-race race enospc-wait sparse thin-journal no-discard umount fsck > "$cases"
# suite_vm's fsck -n only checks AegisFS disks.
[ "$fstyp" != aegisfs ] || printf '%s\n' fsck-vdb fsck-vdc >> "$cases"
# /dev/vdc is a file of our own: its allocated size is checked once the guest is done.
sparse=$work/vdc.img
truncate -s 256M "$sparse"
suite_vm "$cases" -- --disk 512M --disk "$sparse" --timeout 600 -- \
    "$top/tests/guest/trim.py" "$fstyp" "${TRIM_SECONDS:-20}"

# The guest wrote a 160 MiB file on /dev/vdc, deleted it and ran fstrim: the image keeps
# only the filesystem's metadata.
allocated=$(( $(stat -c '%b * %B' "$sparse") ))
echo "# trim: /dev/vdc image: $((allocated / 1048576)) MiB allocated after the sparse case"
if [ "$allocated" -lt $((64 * 1048576)) ]; then
    echo "ok trim/sparse-host"
else
    echo "not ok trim/sparse-host: the image of /dev/vdc has $allocated bytes allocated," \
        "more than 64 MiB after 160 MiB were deleted and trimmed"
fi
