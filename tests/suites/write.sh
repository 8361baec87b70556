#!/usr/bin/env bash
# write: the write path. Big sequential files (2 MiB, 1 GiB) verified after drop_caches,
# remount and module reload; block reuse (statfs back to exactly the empty value after
# creating and deleting 2000 files, twice); ENOSPC; 4 and 8 parallel writers; sparse files
# up to 16 GiB (holes, SEEK_DATA/SEEK_HOLE, st_blocks); fragmentation of the 1 GiB file
# and the device reads its cold random reads cost; then a second boot on the same image verifies everything again.
#
# FSTYP (default aegisfs) is the filesystem under test: `FSTYP=ext4 tests/run write`
# proves the tests themselves on ext4.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init write
fstyp=${FSTYP:-aegisfs}

share=$work/share
mkdir -p "$share"
image=$work/write.img
truncate -s 4G "$image"

cases=$work/cases
printf '%s\n' mkfs-mount block-reuse write-2m write-1g verify-drop-caches verify-remount \
    cold-random-reads fragmentation sparse-write sparse-data sparse-holes sparse-seek sparse-blocks \
    sparse-remount parallel-4 parallel-8 reload-verify enospc umount > "$cases"
# suite_vm's fsck -n only checks AegisFS disks.
[ "$fstyp" != aegisfs ] || printf '%s\n' fsck-vdb fsck-vdc >> "$cases"
suite_vm "$cases" -- --disk "$image" --disk 256M --share "$share" --timeout 1800 -- \
    "$top/tests/guest/write.py" "$fstyp" main /share

# The second boot: the same image, nothing but what the first one left. Its results are
# renamed reboot-* (the vm and fsck cases would otherwise repeat the first boot's names).
if [ -s "$share/manifest" ]; then
    cases2=$work/cases2
    printf 'reboot-%s\n' mount names two-mib one-gib sparse statfs umount > "$cases2"
    [ "$fstyp" != aegisfs ] || echo fsck-vdb >> "$cases2"
    suite_vm "$cases2" -- --disk "$image" --share "$share" --timeout 600 -- \
        "$top/tests/guest/write.py" "$fstyp" reboot /share |
        sed -u -E "s#^((not )?ok write)/(vm|fsck-vd[a-z])#\1/reboot-\3#"
else
    echo "not ok write/reboot: the first boot left no manifest"
fi
