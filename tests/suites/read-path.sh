#!/usr/bin/env bash
# read-path: a host tree (files of boundary sizes up to 1 GiB + 1, sparse files with data in
# every block-map level and past 4 GiB, a 10 000-entry directory, symlinks, modes, owners,
# nanosecond timestamps, extended attributes and POSIX ACLs) is made into an image with
# `mkfs.aegisfs -d` and checked in the guest against manifests made on the host: data byte
# for byte (sha256) and holes as zeros, readdir, readlink, stat fields, every xattr and ACL
# (and an ACL's effect on permission checks), statfs (expected figures from
# aegisfs-testimage), EROFS on writes to a read-only mount (a read-write mount works),
# and the data segments from lseek(SEEK_DATA/SEEK_HOLE) and FIEMAP.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init read-path

# Bump when the tree below changes: the tree and its data manifest are cached under it.
tree_version=4
tree_cache=$cache/read-path-tree-v$tree_version
check=$top/tests/guest/check.py
GiB=$((1 << 30))

fill() { "$testimage" fill "$@"; }

make_tree() {
    local t=$1/tree man=$1/data.manifest
    mkdir -p "$t"/{files,sparse,bigdir,links,meta,xattr} "$1/links"
    : > "$man"

    # Boundary sizes: one block, the 12 direct blocks, the single indirect range (ends at
    # 523 blocks), 2 MiB + 1, and 1 GiB + 1 (its tail lies in the triple indirect range).
    # Before the sequential read, two-byte reads across each mapping boundary inside the
    # file and its last byte; files up to the double indirect start are also read by mmap.
    local spec case size b
    local -a extra
    for spec in 0:0 1:1 4095:4095 4096:4096 48k:49152 48k+1:49153 2m+1:2097153 \
        single-end:$((523 * 4096)) double-start:$((523 * 4096 + 1)) 1g+1:$((GiB + 1)); do
        case=file-${spec%%:*} size=${spec#*:} extra=()
        : > "$t/files/f-$size"
        [ "$size" = 0 ] || fill "$t/files/f-$size" 0 "$size" "$size"
        for b in 4096 49152 $((523 * 4096)) $((261644 * 4096)) $GiB; do
            [ $((b + 1)) -gt "$size" ] || extra+=("probe:$((b - 1)):2")
        done
        [ "$size" = 0 ] || extra+=("probe:$((size - 1)):1")
        [ "$size" = 0 ] || [ "$size" -gt $((523 * 4096 + 1)) ] || extra+=(mmap)
        python3 "$check" manifest "$case" "$t" "files/f-$size" "${extra[@]}" "0:$size" >> "$man"
    done

    # Sparse files: NAME SIZE then data extents OFFSET:LENGTH (sorted); the rest are holes.
    # The block-map levels start at logical blocks 12 (single), 523 (double) and 261644
    # (triple); extents sit on and across those boundaries, at 1 GiB, around 4 GiB (32-bit
    # byte offsets) and at 16 GiB.
    local -a sparse=(
        "levels $((GiB + 50 * 4096 + 123)) 0:4096 $((11 * 4096 + 100)):200 $((12 * 4096)):4096
            $((522 * 4096)):8192 $((1000 * 4096 + 5)):12288 $(((523 + 511) * 4096 - 10)):20
            $((261643 * 4096)):8192 $((GiB - 3000)):10000 $(((261644 + 511) * 4096 - 1)):2
            $((GiB + 50 * 4096 + 123 - 5000)):5000"
        "far $((16 * GiB + 8193)) $(((261644 + 511 * 511) * 4096)):4096
            $((4 * GiB - 2048)):4096 $((16 * GiB)):100 $((16 * GiB + 8192)):1"
        "holes-only $((300 << 20))"
        "hole-tail $((10 * 1048576 + 7)) mmap 0:5000"
        "tail-only $((600 * 4096 + 17)) mmap $((599 * 4096)):4113"
    )
    local line name ext seed=1
    for line in "${sparse[@]}"; do
        read -r name size ext <<<"$(echo $line)"
        : > "$t/sparse/$name"
        truncate -s "$size" "$t/sparse/$name"
        for e in $ext; do
            [ "$e" = mmap ] || fill "$t/sparse/$name" "${e%:*}" "${e#*:}" $((seed++))
        done
        # shellcheck disable=SC2086
        python3 "$check" manifest "sparse-$name" "$t" "sparse/$name" $ext >> "$man"
    done

    # 10 000 names of 1 to 255 bytes (mostly long, so the directory needs more than the 523
    # blocks the direct and single indirect pointers map), some with spaces and UTF-8.
    python3 - "$t/bigdir" "$1/bigdir.names" <<'EOF'
import os, sys
d, out = sys.argv[1], sys.argv[2]
alpha = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,=+~"
names = [b"x", b"yz", b"-", b"..."]
i = 0
while len(names) < 10000:
    n = b"%05d-" % i + (alpha * 8)[i % len(alpha):][: 180 + (i * 37) % 70]
    if i % 10 == 0:
        n = n[:10] + "é→ü".encode() + n[10:]
    names.append(n[:255])
    i += 1
for n in names:
    os.close(os.open(os.path.join(os.fsencode(d), n), os.O_CREAT | os.O_WRONLY, 0o644))
with open(out, "wb") as f:
    f.write(b"\0".join(names) + b"\0")
EOF

    # Symlink targets: inline up to 120 bytes, one data block above; 4095 is the maximum.
    # The expected targets are kept next to the tree as plain files.
    local len target
    for len in 1 60 120 121 4095; do
        target=$(python3 -c "import sys; n=int(sys.argv[1]); print(('../sub/dir-%d/' % n * 400)[:n])" $len)
        ln -s "$target" "$t/links/len-$len"
        printf '%s' "$target" > "$1/links/len-$len"
    done
    ln -s ../files/f-4096 "$t/links/to-file"
    printf '%s' ../files/f-4096 > "$1/links/to-file"
    ln -s "no such target" "$t/links/dangling"
    printf '%s' "no such target" > "$1/links/dangling"

    # Modes and owners (chown before chmod: chown clears setuid/setgid).
    local m
    for m in setuid:4755 setgid:2711 all-bits:7777 no-bits:0000 plain:0644; do
        echo "${m%%:*}" > "$t/meta/${m%%:*}"
        chown 1234:5678 "$t/meta/${m%%:*}"
        chmod "${m#*:}" "$t/meta/${m%%:*}"
    done
    echo big > "$t/meta/big-ids"
    chown 4000000000:3000000000 "$t/meta/big-ids"
    chmod 0640 "$t/meta/big-ids"
    mkdir "$t/meta/sticky-dir" "$t/meta/setgid-dir" "$t/meta/empty-dir"
    chown 1234:5678 "$t/meta/setgid-dir"
    chmod 1777 "$t/meta/sticky-dir"
    chmod 2750 "$t/meta/setgid-dir"
    echo linked > "$t/meta/hard-a"
    ln "$t/meta/hard-a" "$t/meta/hard-b"
    ln -s plain "$t/meta/symlink"
    chown -h 1234:5678 "$t/meta/symlink"

    # Extended attributes (read back in the guest: check.py xattrs): inline, in the xattr
    # block, many spilling from one into the other, on a directory, a symlink, a FIFO and a
    # hard-linked file; POSIX ACLs in the VFS xattr form (uid 1000 may read acl-file, 1001
    # may not), a default ACL and one inherited from it.
    python3 - "$t/xattr" <<'EOF'
import os, struct, sys
d = sys.argv[1]
def acl(*entries):
    named = (2, 8)
    return struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", t, p, i if t in named else 0xFFFFFFFF) for t, p, i in entries)
def data(n, seed):
    return bytes((i * 31 + seed) & 0xFF for i in range(n))
def new(name, contents=b""):
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.write(contents)
    return p
os.setxattr(d, "user.dir", b"on the directory")
p = new("small", b"small")
os.setxattr(p, "user.colour", b"blue")
os.setxattr(p, "trusted.t", b"\0\1\2\xff")
p = new("big", data(10000, 1))
os.setxattr(p, "user.small", b"x")
os.setxattr(p, "user.large", data(3000, 2))
p = new("many")
for i in range(40):
    os.setxattr(p, "user.attribute-%02d" % i, data(10 + i, i))
p = new("empty-value")
os.setxattr(p, "user.empty", b"")
p = new("hard-a", b"linked")
os.setxattr(p, "user.linked", b"one inode")
os.link(p, os.path.join(d, "hard-b"))
os.symlink("small", os.path.join(d, "symlink"))
os.setxattr(os.path.join(d, "symlink"), "trusted.link", b"not the target", follow_symlinks=False)
os.mkfifo(os.path.join(d, "fifo"), 0o644)
os.setxattr(os.path.join(d, "fifo"), "trusted.fifo", b"f")
p = new("acl-file", b"acl")
os.chmod(p, 0o640)
os.setxattr(p, "system.posix_acl_access",
            acl((1, 6, 0), (2, 4, 1000), (4, 0, 0), (0x10, 4, 0), (0x20, 0, 0)))
os.mkdir(os.path.join(d, "acl-dir"))
default = acl((1, 7, 0), (2, 7, 1234), (4, 5, 0), (0x10, 7, 0), (0x20, 5, 0))
os.setxattr(os.path.join(d, "acl-dir"), "system.posix_acl_default", default)
new("acl-dir/inherits", b"i")
EOF
    # What the guest must read back.
    python3 "$check" xattrs "$t" xattr > "$1/xattrs.expected"

    # Timestamps: mtimes before 1970, at 0, past 2038, with 1 and 999 999 999 ns. Atimes are
    # in the future (past 2100): with relatime the host would move an atime that is not
    # newer than mtime and ctime when mkfs reads the entry.
    local -a mtimes=(-86400.5 0 2147483648.000000001 1700000000.999999999 1234567890.123456789
        4102444799.000000007 -1.000000001)
    local k=0 p
    for p in "$t"/meta/* "$t"/links/* "$t/meta" "$t/links"; do
        touch -h -m -d "@${mtimes[k % ${#mtimes[@]}]}" "$p"
        touch -h -a -d "@$((4102444800 + k * 86400 * 365)).$(printf '%09d' $((k * 123456789 % 1000000000)))" "$p"
        k=$((k + 1))
    done
}

# Suites may run concurrently: one of them builds the tree, the others wait for it.
exec 9> "$cache/read-path-tree.lock"
flock 9
if [ ! -f "$tree_cache/done" ]; then
    echo "# read-path: generating the test tree (once per tree version)" >&2
    rm -rf "$tree_cache" "$tree_cache.tmp"
    mkdir -p "$tree_cache.tmp"
    make_tree "$tree_cache.tmp"
    mv "$tree_cache.tmp" "$tree_cache"
    touch "$tree_cache/done"
fi
flock -u 9
tree=$tree_cache/tree

# What the guest compares: flags (a: atime, s: size comparable), then `stat -c` fields.
share=$work/share
mkdir -p "$share"
cp "$tree_cache/data.manifest" "$tree_cache/bigdir.names" "$tree_cache/xattrs.expected" "$share/"
cp -r "$tree_cache/links" "$share/links"
# The data segments of the regular files as mkfs -d stores them (from the host file's
# SEEK_DATA/SEEK_HOLE, widened to whole blocks), for the guest's lseek and FIEMAP checks.
(cd "$tree" && python3 "$check" segments . files/* sparse/*) > "$share/segments.expected"
(
    cd "$tree"
    for p in meta/* links/* meta links; do
        printf 'a%s|' "$([ -d "$p" ] && [ ! -L "$p" ] || echo s)"
        TZ=UTC stat -c '%n|%f|%u|%g|%s|%h|%.9X|%.9Y|%.9Z|%x|%y|%z' -- "$p"
    done
    for p in files/* sparse/* files sparse bigdir; do
        printf '%s|' "$([ -d "$p" ] || echo s)"
        TZ=UTC stat -c '%n|%f|%u|%g|%s|%h|%.9X|%.9Y|%.9Z|%x|%y|%z' -- "$p"
    done
) > "$share/meta.expected"

image=$work/read-path.img
truncate -s 1536M "$image"
start=$SECONDS
"$mkfs" -q -f -L read-path -d "$tree" "$image" || die "mkfs.aegisfs -d failed"
echo "# read-path: mkfs -d took $((SECONDS - start)) s" >&2
"$testimage" statfs "$image" > "$share/statfs.expected" || die "aegisfs-testimage statfs failed"

cases=$work/cases
{
    printf '%s\n' rw-mount mount
    cut -d' ' -f1 "$tree_cache/data.manifest"
    cut -d' ' -f1 "$share/segments.expected" | tr / - | sed 's/^/seek-/'
    cut -d' ' -f1 "$share/segments.expected" | tr / - | sed 's/^/fiemap-/'
    printf '%s\n' parallel-read readdir readdir-small-buffer readdir-dots lookup lookup-missing symlink-follow
    for l in "$tree_cache"/links/*; do echo "symlink-${l##*/}"; done
    printf '%s\n' mode owner size nlink atime mtime ctime xattrs xattr-acl-allows xattr-acl-denies \
        statfs
    printf 'erofs-%s\n' create open-write truncate touch chmod chown mkdir rm rmdir rename \
        link symlink mkfifo tools
    printf '%s\n' umount fsck-vdb
} > "$cases"

suite_vm "$cases" -- --disk "$image" --share "$share" --timeout 900 -- \
    "$top/tests/guest/read-path.sh" /share
