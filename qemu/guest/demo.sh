#!/bin/bash
# Guest half of qemu/demo.sh (`make run`): the AegisFS story, one echoed command at a time.
# Stops at the first failing command; qemu/vm passes its status back to make.
set -eu -o pipefail
disk=/dev/vdb
mnt=/mnt/aegisfs

step() {
    echo
    echo "aegisfs-demo# $*"
    "$@"
}
# For a pipeline or a cd: shown exactly as written, run by bash.
step_sh() {
    echo
    echo "aegisfs-demo# $1"
    bash -c "$1"
}
explain() {
    echo
    echo "### $*"
}

explain "Format $disk (256 MiB) with the sample tree the host put in /share/sample"
step mkfs.aegisfs -f -L demo -d /share/sample "$disk"

explain "Load the kernel module and mount the filesystem"
step insmod "$AEGISFS_KO"
step grep aegisfs /proc/filesystems
step mkdir -p "$mnt"
step mount -t aegisfs "$disk" "$mnt"
step findmnt "$mnt"

explain "Look around"
step ls -la "$mnt"
step ls -la "$mnt/docs" "$mnt/src" "$mnt/data"
step cat "$mnt/README.txt"
step cat "$mnt/notes-link"
step stat "$mnt/data/numbers.txt"
step tail -n 3 "$mnt/data/numbers.txt"
step df -h "$mnt"

explain "Every byte matches what the host generated"
step_sh "cd $mnt && sha256sum -c /share/sample.sha256"

explain "Unmount and unload"
step umount "$mnt"
step rmmod aegisfs
if command -v fsck.aegisfs > /dev/null; then
    explain "Check the unmounted filesystem (read-only check)"
    step fsck -t aegisfs -n "$disk"
fi
explain "What the module told the kernel log"
step_sh "dmesg | grep -E '] aegisfs[: ]'"

echo
echo "### Done: AegisFS was formatted, mounted, read, unmounted and unloaded."
