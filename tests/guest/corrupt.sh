#!/bin/bash
# Guest half of tests/suites/corrupt.sh: each line of /share/cases names a corrupted image
# attached as a disk and what must happen with it (see that suite).
set -u
suite=corrupt
share=${1:-/share}
here=$(dirname "$0")
mnt=/mnt/corrupt
. "$here/lib.sh"

insmod "$AEGISFS_KO" || { echo "corrupt: insmod failed" >&2; exit 1; }
mkdir -p "$mnt"
want_sum=$(cat "$share/control.sha256")

# Kernel reports that must never appear, whatever the image holds.
bad_report='BUG|WARNING|Oops|Call Trace|general protection|panicked|UBSAN|stall|lockdep'

# Checks the kernel log lines since the last `dmesg -C` that start with `aegisfs (vdX): `
# (the module's whole prefix: nothing may stand before it): all must read $3, and there must be
# at least one and at most $4 (default 1) of them; none when $3 is empty.
check_log() {
    local name=$1 dev=$2 want=$3 max=${4:-1} lines n
    lines=$(dmesg --notime | grep "^aegisfs (${dev#/dev/}): ")
    n=$(grep -c . <<<"$lines")
    if dmesg --notime | grep -qE "$bad_report"; then
        fail "$name-log" "kernel report: $(dmesg --notime | grep -m1 -E "$bad_report")"
    elif [ -z "$want" ]; then
        if [ "$n" = 0 ]; then ok "$name-log"; else fail "$name-log" "unexpected: $(head -n1 <<<"$lines")"; fi
    elif [ "$n" = 0 ]; then
        fail "$name-log" "no 'aegisfs (${dev#/dev/}): ' line"
    elif [ "$n" -gt "$max" ]; then
        fail "$name-log" "$n 'aegisfs (${dev#/dev/}): ' lines, expected at most $max: $(sort -u <<<"$lines" | head -n2 | tr '\n' ' ')"
    elif [ "$(sort -u <<<"$lines")" != "aegisfs (${dev#/dev/}): $want" ]; then
        fail "$name-log" "got '$(sort -u <<<"$lines" | head -n1)', expected 'aegisfs (${dev#/dev/}): $want'"
    else
        ok "$name-log"
    fi
}

# The undamaged control file still reads correctly and the filesystem unmounts.
check_intact() {
    local name=$1 sum out
    sum=$(sha256sum < "$mnt/files/control" 2>&1 | cut -d' ' -f1)
    if [ "$sum" != "$want_sum" ]; then
        fail "$name-intact" "control file: $sum"
        umount "$mnt" 2>/dev/null
    elif ! out=$(umount "$mnt" 2>&1); then
        fail "$name-intact" "umount: $out"
    elif grep -q " $mnt " /proc/mounts; then
        fail "$name-intact" "still mounted after umount"
    else
        ok "$name-intact"
    fi
}

while IFS='|' read -r name dev action want msg path logpath; do
    [ -n "$name" ] || continue
    dmesg -C
    got=$(check mount "$dev" "$mnt")
    case $action in
    mount-fails)
        if [ "$got" = "$want" ]; then ok "$name"
        else fail "$name" "mount gave $got, expected $want"; fi
        [ "$got" != ok ] || umount "$mnt"
        check_log "$name" "$dev" "$msg"
        ;;
    mounts)
        if [ "$got" != ok ]; then
            fail "$name" "mount gave $got"
            continue
        fi
        ok "$name"
        check_intact "$name"
        check_log "$name" "$dev" ""
        ;;
    zeros)
        if [ "$got" != ok ]; then
            fail "$name" "mount gave $got"
            continue
        fi
        # The whole file reads as zeros, has its size, and FIBMAP maps nothing.
        if out=$(python3 - "$mnt/$path" "$want" <<'PY' 2>&1
import fcntl, os, struct, sys
path, size = sys.argv[1], int(sys.argv[2])
st = os.stat(path)
if st.st_size != size:
    sys.exit(f"size {st.st_size}, expected {size}")
with open(path, "rb") as f:
    data = f.read()
    if len(data) != size or data != bytes(size):
        sys.exit(f"read {len(data)} bytes, not all zeros")
    for blk in range((size + 4095) // 4096):
        got = struct.unpack("i", fcntl.ioctl(f.fileno(), 1, struct.pack("i", blk)))[0]
        if got != 0:
            sys.exit(f"FIBMAP of block {blk} gave {got}, expected 0")
PY
        ); then
            ok "$name"
        else
            fail "$name" "$(tail -n1 <<<"$out")"
        fi
        # UNWRITTEN blocks are holes for SEEK_DATA/SEEK_HOLE; FIEMAP flags them.
        check unwritten "$suite" "$name-map" "$mnt/$path"
        check_intact "$name"
        check_log "$name" "$dev" ""
        ;;
    read | list | stat | seek-data | fiemap)
        if [ "$got" != ok ]; then
            fail "$name" "mount gave $got"
            continue
        fi
        ino=$(check ino "$mnt/$logpath")
        op=$action
        [ "$action" = list ] && op=listdir
        check errno "$suite" "$name" "$want" "$op" "$mnt/$path"
        # A second attempt fails the same way (nothing half-cached from the first).
        check errno "$suite" "$name-again" "$want" "$op" "$mnt/$path"
        check_intact "$name"
        # Blocks of a cached inode are reported once; an inode that cannot be read is
        # reported by each of the two failed lookups.
        check_log "$name" "$dev" "inode $ino: $msg" 2
        ;;
    *)
        fail "$name" "bad case line"
        ;;
    esac
    # What the kernel refuses, fsck must find too: 4 (errors left) or 8 (unusable); what
    # it accepts as valid (zeros) fsck must find clean.
    if [ "$action" = zeros ]; then
        out=$(fsck -t aegisfs -n "$dev" 2>&1)
        rc=$?
        if [ "$rc" = 0 ]; then ok "$name-fsck"
        else fail "$name-fsck" "fsck -n exited $rc: $(tail -n 2 <<<"$out" | tr '\n' ' ')"; fi
    elif [ "$action" != mounts ]; then
        out=$(fsck -t aegisfs -n "$dev" 2>&1)
        rc=$?
        case $rc in
        4 | 8) ok "$name-fsck" ;;
        *) fail "$name-fsck" "fsck -n exited $rc: $(tail -n 2 <<<"$out" | tr '\n' ' ')" ;;
        esac
    fi
done < "$share/cases"

if out=$(rmmod aegisfs 2>&1); then ok rmmod; else fail rmmod "$out"; fi
exit 0
