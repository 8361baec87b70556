#!/bin/bash
# Guest half of tests/suites/install.sh: installs the tree `make install DESTDIR=...` staged
# (shared at /share) into this guest's root, then uses AegisFS as a user would: nothing is
# loaded by hand, the tools are found by mkfs(8) and fsck(8).
#   install.sh KERNEL_RELEASE VERSION
set -u
suite=install
. "$(dirname "$0")/lib.sh"
release=$1 version=$2
dev=/dev/vdb mnt=/mnt/install

# CASE COMMAND...: ok when COMMAND succeeds, else not ok with its output; stops the script
# when a later case depends on this one (DEPENDS=1).
step() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$name"; return 0; fi
    fail "$name" "$(tail -n 3 <<<"$out" | tr '\n' ' ')"
    return 1
}

# Through tar: /lib may be a symbolic link to usr/lib (merged /usr), which stays one.
copy() { tar -C /share -cf - . | tar -C / -xf - --keep-directory-symlink; }
step copy copy || exit 0
grep -q "^aegisfs " /proc/modules && { fail depmod "aegisfs loaded before the test"; exit 0; }
depmod_alias() {
    depmod -a "$release" || return 1
    # The alias `mount -t` asks modprobe for.
    modprobe -n -v fs-aegisfs | grep -q "extra/aegisfs.ko" ||
        { echo "modprobe -n fs-aegisfs: $(modprobe -n -v fs-aegisfs 2>&1)"; return 1; }
}
step depmod depmod_alias || exit 0

step mkfs-t mkfs -t aegisfs -q -f -L installed "$dev" || exit 0

mount_autoload() {
    mkdir -p "$mnt"
    mount -t aegisfs "$dev" "$mnt" || return 1
    grep -q "^aegisfs " /proc/modules || { echo "mounted, but aegisfs is not in /proc/modules"; return 1; }
    grep -q " $mnt aegisfs " /proc/mounts || { echo "not in /proc/mounts"; return 1; }
}
step mount-autoload mount_autoload || exit 0

write_read() {
    head -c 3000000 /dev/urandom > /tmp/data
    cp /tmp/data "$mnt/data"
    sync
    echo 3 > /proc/sys/vm/drop_caches
    cmp /tmp/data "$mnt/data" || return 1
    umount "$mnt"
}
step write-read write_read || exit 0

fsck_t() {
    local out status
    out=$(fsck -t aegisfs -n "$dev" 2>&1)
    status=$?
    [ $status = 0 ] || { echo "fsck -t aegisfs -n exited $status: $out"; return 1; }
    grep -q "fsck.aegisfs" <<<"$(fsck -t aegisfs -N "$dev" 2>&1)" ||
        { echo "fsck -N does not run fsck.aegisfs: $(fsck -t aegisfs -N "$dev" 2>&1)"; return 1; }
}
step fsck-t fsck_t

# The installed inspector reads what the kernel wrote, and a journal it left to replay.
inspect() {
    local out
    out=$(aegisfs-inspect "$dev" super) || { echo "super: $out"; return 1; }
    grep -qE "^Label: +\"installed\"$" <<<"$out" || { echo "no label in: $out"; return 1; }
    out=$(aegisfs-inspect "$dev" inode /data) || { echo "inode /data: $out"; return 1; }
    grep -qx "Size: 3000000 bytes" <<<"$out" || { echo "inode /data: $out"; return 1; }
    mount -t aegisfs "$dev" "$mnt" || return 1
    echo after > "$mnt/after" || return 1
    # FS_IOC_SHUTDOWN, LOGFLUSH: the journal is committed, nothing is checkpointed.
    python3 -c 'import fcntl, os, struct, sys; fcntl.ioctl(os.open(sys.argv[1], os.O_RDONLY), 0x8004587D, struct.pack("I", 1))' "$mnt" ||
        return 1
    umount "$mnt" || return 1
    out=$(aegisfs-inspect -q "$dev" journal) || { echo "journal: $out"; return 1; }
    grep -qE "^Recovery would replay [1-9][0-9]* transaction" <<<"$out" && grep -qx "  replayed: yes" <<<"$out" ||
        { echo "no transaction to replay in: $out"; return 1; }
    mount -t aegisfs "$dev" "$mnt" && umount "$mnt" || return 1
    out=$(aegisfs-inspect "$dev" journal) || { echo "journal after the replay: $out"; return 1; }
    grep -q "^Log: empty" <<<"$out" || { echo "journal not empty after the replay: $out"; return 1; }
}
step inspect inspect

modinfo_name() {
    [ "$(modinfo -F version aegisfs)" = "$version" ] || { echo "modinfo aegisfs: $(modinfo aegisfs 2>&1)"; return 1; }
    modinfo -n aegisfs | grep -q "^/lib/modules/$release/extra/aegisfs.ko" ||
        { echo "modinfo -n: $(modinfo -n aegisfs)"; return 1; }
}
step modinfo-by-name modinfo_name

modprobe_r() {
    modprobe -r aegisfs || return 1
    ! grep -q "^aegisfs " /proc/modules || { echo "still loaded after modprobe -r"; return 1; }
}
step modprobe-r modprobe_r

# /proc/mounts shows commit= only when it differs from the default, which the parameter sets.
commit_parameter() {
    local opts
    modprobe aegisfs commit_interval=7 || return 1
    mount -t aegisfs -o commit=5 "$dev" "$mnt" || return 1
    opts=$(awk -v m="$mnt" '$2 == m {print $4}' /proc/mounts)
    grep -q "commit=5" <<<"$opts" || { echo "commit=5 with a default of 7, but the options are $opts"; return 1; }
    mount -o remount,commit=0 "$mnt" || return 1
    opts=$(awk -v m="$mnt" '$2 == m {print $4}' /proc/mounts)
    ! grep -q "commit=" <<<"$opts" || { echo "commit=0 (the default, 7) shown as $opts"; return 1; }
    mount -o remount,commit=7 "$mnt" || return 1
    opts=$(awk -v m="$mnt" '$2 == m {print $4}' /proc/mounts)
    ! grep -q "commit=" <<<"$opts" || { echo "commit=7 (the default) shown as $opts"; return 1; }
    umount "$mnt" && modprobe -r aegisfs
}
step commit-parameter commit_parameter
exit 0
