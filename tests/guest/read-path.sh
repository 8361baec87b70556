#!/bin/bash
# Guest half of tests/suites/read-path.sh: mounts the image on /dev/vdb read-only and checks
# it against what the host recorded in /share (see that suite for the files).
set -u
suite=read-path
share=${1:-/share}
here=$(dirname "$0")
mnt=/mnt/aegisfs
. "$here/lib.sh"

insmod "$AEGISFS_KO" || { echo "read-path: insmod failed" >&2; exit 1; }
mkdir -p "$mnt"
# A read-write mount(2) works (and changes nothing the checks below look at); the checks
# then run on a read-only mount, where every change must fail with EROFS.
got=$(check mount /dev/vdb "$mnt" rw)
if [ "$got" = ok ] && grep -qE "^/dev/vdb $mnt aegisfs rw[ ,]" /proc/mounts; then ok rw-mount
else fail rw-mount "mount(2) without MS_RDONLY gave $got: $(grep " $mnt " /proc/mounts)"; fi
[ "$got" != ok ] || umount "$mnt"
if ! out=$(mount -t aegisfs -o ro /dev/vdb "$mnt" 2>&1); then
    fail mount "$out"
    exit 0
fi
ok mount

start=$SECONDS
check data "$suite" "$share/data.manifest" "$mnt"
echo "# read-path: data checks took $((SECONDS - start)) s" >&2

# Data and holes as SEEK_DATA/SEEK_HOLE and FIEMAP report them, against the host's segments.
start=$SECONDS
check seek "$suite" "$share/segments.expected" "$mnt"
check fiemap "$suite" "$share/segments.expected" "$mnt" /dev/vdb
echo "# read-path: seek and fiemap checks took $((SECONDS - start)) s" >&2

# Four readers at once, each reading the same files in a different order, on a cold cache
# (and a listing of the big directory alongside).
echo 3 > /proc/sys/vm/drop_caches
files=(f-49153 f-2097153 f-2142208 f-2142209)
for r in 0 1 2 3; do
    (
        for k in 0 1 2 3; do
            f=${files[(k + r) % 4]}
            want=$(awk -v p="files/$f" '$2 == p {n = split($NF, a, ":"); print a[n]}' "$share/data.manifest")
            got=$(sha256sum < "$mnt/files/$f" | cut -d' ' -f1)
            [ "$got" = "$want" ] || echo "reader $r: $f has sha256 $got"
        done
    ) > "/tmp/reader.$r" 2>&1 &
done
ls -f "$mnt/bigdir" > /tmp/listing &
wait
problems=$(cat /tmp/reader.*)
if [ -n "$problems" ]; then fail parallel-read "$(head -n1 <<<"$problems")"
elif [ "$(wc -l < /tmp/listing)" != 10002 ]; then fail parallel-read "listing has $(wc -l < /tmp/listing) lines"
else ok parallel-read; fi

check names "$suite" readdir "$mnt/bigdir" "$share/bigdir.names"
# A 280-byte buffer holds one long entry: the directory position is resumed at nearly
# every entry.
check getdents "$suite" readdir-small-buffer "$mnt/bigdir" "$share/bigdir.names" 280
# getdents must also return "." and ".." exactly once each.
dots=$(ls -f -a "$mnt/bigdir" | grep -cxE '\.|\.\.')
if [ "$dots" = 2 ]; then ok readdir-dots; else fail readdir-dots "$dots dot entries, expected 2"; fi

check lookup "$suite" lookup "$mnt/bigdir" "$share/bigdir.names"
check errno "$suite" lookup-missing ENOENT stat "$mnt/bigdir/no-such-entry"

for want in "$share"/links/*; do
    name=${want##*/}
    if ! got=$(readlink -n "$mnt/links/$name" | od -An -tx1 | tr -d ' \n'); then
        fail "symlink-$name" "readlink failed"
    elif [ "$got" = "$(od -An -tx1 < "$want" | tr -d ' \n')" ]; then
        ok "symlink-$name"
    else
        fail "symlink-$name" "target differs ($(readlink -n "$mnt/links/$name" | wc -c) bytes, expected $(wc -c < "$want"))"
    fi
done
# Following a symlink reaches the file it names.
if cmp -s "$mnt/links/to-file" "$mnt/files/f-4096"; then ok symlink-follow
else fail symlink-follow "contents via the link differ"; fi

mapfile -t paths < <(cut -d'|' -f2 "$share/meta.expected")
(cd "$mnt" && TZ=UTC stat -c '%n|%f|%u|%g|%s|%h|%.9X|%.9Y|%.9Z|%x|%y|%z' -- "${paths[@]}") > /tmp/meta.got
check meta "$suite" "$share/meta.expected" /tmp/meta.got

# Extended attributes and ACLs as mkfs -d copied them, and the ACL at work: uid 1000 has a
# named read entry on acl-file, 1001 falls to "other" (nothing).
check xattrs-check "$suite" xattrs "$share/xattrs.expected" "$mnt" xattr
check access "$suite" xattr-acl-allows 1000 "$mnt/xattr/acl-file" ok
check access "$suite" xattr-acl-denies 1001 "$mnt/xattr/acl-file" EACCES

got=$(stat -f -c '%S %b %f %a %c %d %l %i' "$mnt")
want=$(cat "$share/statfs.expected")
if [ "$got" = "$want" ]; then ok statfs; else fail statfs "got '$got', expected '$want'"; fi

check errno "$suite" erofs-create EROFS create "$mnt/files/new-file"
check errno "$suite" erofs-open-write EROFS open-write "$mnt/files/f-4096"
check errno "$suite" erofs-truncate EROFS truncate "$mnt/files/f-4096"
check errno "$suite" erofs-touch EROFS utime "$mnt/files/f-4096"
check errno "$suite" erofs-chmod EROFS chmod "$mnt/files/f-4096"
check errno "$suite" erofs-chown EROFS chown "$mnt/files/f-4096"
check errno "$suite" erofs-mkdir EROFS mkdir "$mnt/new-dir"
check errno "$suite" erofs-rm EROFS unlink "$mnt/files/f-1"
check errno "$suite" erofs-rmdir EROFS rmdir "$mnt/meta/empty-dir"
check errno "$suite" erofs-rename EROFS rename "$mnt/files/f-1" "$mnt/files/f-1.renamed"
check errno "$suite" erofs-link EROFS link "$mnt/files/f-1" "$mnt/files/f-1.link"
check errno "$suite" erofs-symlink EROFS symlink "$mnt/files/new-link"
check errno "$suite" erofs-mkfifo EROFS mknod "$mnt/files/new-fifo"
# The shell tools fail too, and nothing appeared or disappeared.
if touch "$mnt/touched" 2>/dev/null || mkdir "$mnt/made" 2>/dev/null \
        || rm -f "$mnt/files/f-1" 2>/dev/null; then
    fail erofs-tools "touch, mkdir or rm succeeded"
elif [ -e "$mnt/touched" ] || [ -e "$mnt/made" ] || [ ! -e "$mnt/files/f-1" ]; then
    fail erofs-tools "the tree changed"
else
    ok erofs-tools
fi

if out=$(umount "$mnt" 2>&1); then
    if grep -q " $mnt " /proc/mounts; then fail umount "still in /proc/mounts"; else ok umount; fi
else
    fail umount "$out"
fi
rmmod aegisfs || echo "read-path: rmmod failed" >&2
exit 0
