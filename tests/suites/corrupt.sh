#!/usr/bin/env bash
# corrupt: copies of one small image, each damaged in one place by aegisfs-testimage, are
# attached to one guest. Superblock and group descriptor damage must make mount(2) fail
# with the exact errno and exactly one `aegisfs (vdX): <reason>` kernel log line; unknown
# compat/ro_compat features must still mount (read-only); damage inside files and
# directories (block pointer past the device, indirect loops, bad rec_len, inode
# checksum) must fail that one operation with the exact errno, log the inode and reason,
# leave the rest readable and the filesystem unmountable, with no kernel report. Not all
# cases are damage: a file whose data pointers are marked UNWRITTEN (preallocated) must read
# as zeros with its size and leave fsck clean, while the bit on an indirect pointer is
# corruption.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init corrupt

tree=$work/tree
share=$work/share
mkdir -p "$tree/files" "$tree/dir" "$share"
fill() { "$testimage" fill "$@"; }
fill "$tree/files/control" 0 20000 1
fill "$tree/files/pointer" 0 10000 2
fill "$tree/files/loop1" 0 $((100 * 1024)) 3
fill "$tree/files/loop2" 0 $((3 * 1048576)) 4
# One block in the triple indirect range (logical block 261644), the rest holes.
fill "$tree/files/loop3" $((261644 * 4096)) 4096 5
fill "$tree/files/prealloc" 0 $((100 * 1024)) 6
echo checksum > "$tree/files/inode"
for n in a b c d e; do echo "$n" > "$tree/dir/$n"; done
sha256sum < "$tree/files/control" | cut -d' ' -f1 > "$share/control.sha256"

base=$work/base.img
truncate -s 64M "$base"
"$mkfs" -q -f -L corrupt -d "$tree" "$base" || die "mkfs.aegisfs -d failed"

# name|corruption|action|expected errno|expected log text|path|path of the inode the log
# names (default: path). Action `zeros` is not damage: the file at path must read as
# expected-errno-field bytes of zeros, FIBMAP must report no block, SEEK_DATA must find no
# data and FIEMAP must flag every extent UNWRITTEN, nothing may be logged and fsck -n must
# be clean. Actions `seek-data` (lseek SEEK_DATA from 0) and `fiemap` (FS_IOC_FIEMAP of
# the whole file) walk the block map and must fail like `read`.
# The errnos follow docs/format.md and the module: bad magic, geometry and unsupported
# features EINVAL; corruption (checksums, pointers, loops, records) EUCLEAN, also for file
# reads through the page cache.
cat > "$work/table" <<'EOF'
bad-magic|bad-magic|mount-fails|EINVAL|bad magic number (not an AegisFS filesystem)|
sb-checksum|sb-checksum|mount-fails|EUCLEAN|superblock checksum mismatch|
blocks-count|blocks-count|mount-fails|EINVAL|filesystem is larger than the device|
incompat-bit2|incompat-feature 2|mount-fails|EINVAL|unsupported incompatible features|
incompat-bit40|incompat-feature 40|mount-fails|EINVAL|unsupported incompatible features|
gd-checksum|gd-checksum 0|mount-fails|EUCLEAN|group 0: group descriptor checksum mismatch|
inode-bitmap-checksum|inode-bitmap-checksum 0|mount-fails|EUCLEAN|group 0: inode bitmap checksum mismatch|
ro-compat-unknown|ro-compat-feature 5|mounts||
compat-unknown|compat-feature 33|mounts||
block-pointer|block-pointer files/pointer|read|EUCLEAN|block pointer outside the data area|files/pointer
indirect-checksum|indirect-checksum files/loop2 2|read|EUCLEAN|indirect block checksum mismatch|files/loop2
dir-checksum|dir-checksum dir|list|EUCLEAN|directory block checksum mismatch|dir
rec-len-zero|dir-rec-len dir 0|list|EUCLEAN|directory entry record length invalid|dir
rec-len-past-tail|dir-rec-len dir past-tail|list|EUCLEAN|directory entry record length invalid|dir
lookup-bad-rec-len|dir-rec-len dir 0|stat|EUCLEAN|directory entry record length invalid|dir/e|dir
loop-single|indirect-loop files/loop1 1|read|EUCLEAN|indirect block loop|files/loop1
loop-double|indirect-loop files/loop2 2|read|EUCLEAN|indirect block loop|files/loop2
loop-triple|indirect-loop files/loop3 3|read|EUCLEAN|indirect block loop|files/loop3
inode-checksum|inode-checksum files/inode|stat|EUCLEAN|inode checksum mismatch|files/inode
unwritten|unwritten files/prealloc|zeros|102400||files/prealloc
unwritten-indirect|unwritten-indirect files/loop2 1|read|EUCLEAN|unwritten flag on a metadata or non-regular block pointer|files/loop2
seek-pointer|block-pointer files/pointer|seek-data|EUCLEAN|block pointer outside the data area|files/pointer
seek-loop-triple|indirect-loop files/loop3 3|seek-data|EUCLEAN|indirect block loop|files/loop3
fiemap-indirect-checksum|indirect-checksum files/loop2 2|fiemap|EUCLEAN|indirect block checksum mismatch|files/loop2
EOF

disks=()
cases=$work/cases
: > "$share/cases"
: > "$cases"
n=0
while IFS='|' read -r name corruption action want msg path logpath; do
    img=$work/$name.img
    cp --sparse=always "$base" "$img"
    # shellcheck disable=SC2086
    "$testimage" corrupt "$img" $corruption > "$work/$name.change" ||
        die "aegisfs-testimage corrupt $corruption failed"
    dev=/dev/vd$(printf "\\x$(printf %x $((98 + n)))")
    n=$((n + 1))
    disks+=(--disk "$img")
    echo "$name|$dev|$action|$want|$msg|$path|${logpath:-$path}" >> "$share/cases"
    case $action in
    mount-fails) printf '%s\n' "$name" "$name-log" "$name-fsck" ;;
    mounts) printf '%s\n' "$name" "$name-intact" "$name-log" ;;
    zeros) printf '%s\n' "$name" "$name-map" "$name-intact" "$name-log" "$name-fsck" ;;
    *) printf '%s\n' "$name" "$name-again" "$name-intact" "$name-log" "$name-fsck" ;;
    esac >> "$cases"
done < "$work/table"
echo rmmod >> "$cases"

# The images are damaged on purpose; the guest script checks that fsck finds each damage.
suite_fsck=0
suite_vm "$cases" -- "${disks[@]}" --share "$share" --timeout 600 -- \
    "$top/tests/guest/corrupt.sh" /share
