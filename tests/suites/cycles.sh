#!/usr/bin/env bash
# cycles: insmod, 100 mount/umount cycles of one image each reading a file and checking
# its sha256, rmmod (refused while mounted), 20 insmod/rmmod cycles; afterwards the module
# is gone from /proc/modules and /proc/filesystems and no aegisfs cache remains in
# /proc/slabinfo; a last load still mounts and reads.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init cycles

tree=$work/tree
share=$work/share
mkdir -p "$tree" "$share"
# Files mapped by direct blocks only, through the single and through the double indirect.
"$testimage" fill "$tree/direct" 0 30000 11
"$testimage" fill "$tree/single" 0 $((1048576 + 7)) 12
"$testimage" fill "$tree/double" 0 $((3 * 1048576 + 5)) 13
(cd "$tree" && sha256sum direct single double) | sed 's/  / /' > "$share/sums"

image=$work/cycles.img
truncate -s 64M "$image"
"$mkfs" -q -f -L cycles -d "$tree" "$image" || die "mkfs.aegisfs -d failed"

cases=$work/cases
printf '%s\n' insmod slab-cache-loaded rmmod-busy mount-cycles refcount rmmod reload-cycles \
    gone slab-cache-gone reload-mount fsck-vdb > "$cases"
suite_vm "$cases" -- --disk "$image" --share "$share" --timeout 600 -- \
    "$top/tests/guest/cycles.sh" /share 100 20
