#!/bin/bash
# Guest half of tests/suites/cycles.sh: module load/unload and mount/umount cycles on
# /dev/vdb; /share/sums lists "sha256 path" of files in the image.
set -u
suite=cycles
share=${1:-/share}
mounts=${2:-100}
reloads=${3:-20}
mnt=/mnt/cycles
. "$(dirname "$0")/lib.sh"
loaded() { grep -q '^aegisfs ' /proc/modules; }
registered() { grep -qw aegisfs /proc/filesystems; }
cache_lines() { grep -i aegisfs /proc/slabinfo; }

mapfile -t sums < "$share/sums"
mkdir -p "$mnt"

if out=$(insmod "$AEGISFS_KO" 2>&1) && loaded && registered; then ok insmod
else fail insmod "${out:-not in /proc/modules or /proc/filesystems}"; exit 0; fi

# The inode cache exists while the module is loaded (and is what must go away later).
caches=$(cache_lines | awk '{print $1}' | tr '\n' ' ')
if [ -n "$caches" ]; then ok slab-cache-loaded
else fail slab-cache-loaded "no aegisfs cache in /proc/slabinfo"; fi

# Each cycle mounts, checks one file (in turn: direct blocks only, single indirect,
# double indirect) and unmounts.
problem=
start=$SECONDS
for ((i = 0; i < mounts; i++)); do
    entry=${sums[i % ${#sums[@]}]}
    want=${entry%% *} path=${entry#* }
    if ! out=$(mount -t aegisfs -o ro /dev/vdb "$mnt" 2>&1); then
        problem="cycle $i: mount: $out"
        break
    fi
    got=$(sha256sum < "$mnt/$path" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        problem="cycle $i: $path has sha256 $got"
        umount "$mnt"
        break
    fi
    if [ $i = 0 ]; then
        # The module is pinned while mounted.
        if rmmod aegisfs 2>/dev/null || ! loaded; then
            fail rmmod-busy "rmmod succeeded with a mounted filesystem"
        else
            ok rmmod-busy
        fi
    fi
    if ! out=$(umount "$mnt" 2>&1); then
        problem="cycle $i: umount: $out"
        break
    fi
done
echo "# cycles: $i mount cycles in $((SECONDS - start)) s" >&2
if [ -z "$problem" ]; then ok mount-cycles; else fail mount-cycles "$problem"; fi
if grep -q " $mnt " /proc/mounts; then umount "$mnt"; fi

refs=$(awk '$1 == "aegisfs" {print $3}' /proc/modules)
if [ "$refs" = 0 ]; then ok refcount; else fail refcount "module use count $refs after the last umount"; fi

if out=$(rmmod aegisfs 2>&1) && ! loaded && ! registered && [ ! -e /sys/module/aegisfs ]; then
    ok rmmod
else
    fail rmmod "${out:-module or filesystem type still registered}"
fi

problem=
for ((i = 0; i < reloads; i++)); do
    if ! out=$(insmod "$AEGISFS_KO" 2>&1) || ! registered; then
        problem="load $i: insmod: ${out:-aegisfs not in /proc/filesystems}"
        break
    fi
    if ! out=$(rmmod aegisfs 2>&1) || loaded || registered; then
        problem="load $i: rmmod: ${out:-still loaded}"
        break
    fi
done
if [ -z "$problem" ]; then ok reload-cycles; else fail reload-cycles "$problem"; fi

# Nothing of the module may outlive it.
if loaded; then fail gone "aegisfs still in /proc/modules"; else ok gone; fi
left=$(cache_lines)
if [ -z "$left" ]; then ok slab-cache-gone; else fail slab-cache-gone "$left"; fi

# A fresh load after all that still mounts and reads.
entry=${sums[0]}
if insmod "$AEGISFS_KO" && mount -t aegisfs -o ro /dev/vdb "$mnt" &&
    [ "$(sha256sum < "$mnt/${entry#* }" | cut -d' ' -f1)" = "${entry%% *}" ] &&
    umount "$mnt" && rmmod aegisfs; then
    ok reload-mount
else
    fail reload-mount "load, mount, read, umount or rmmod failed"
fi
exit 0
