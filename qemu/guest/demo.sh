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

explain "Format $disk (1 GiB) with the sample tree the host put in /share/sample"
step mkfs.aegisfs -f -L demo -d /share/sample "$disk"

explain "Load the kernel module and mount the filesystem"
step insmod "$AEGISFS_KO"
step grep aegisfs /proc/filesystems
step mkdir -p "$mnt"
step mount -t aegisfs "$disk" "$mnt"
step findmnt "$mnt"

explain "Look around: the tree mkfs copied in, read back through the module"
step ls -la "$mnt" "$mnt/docs"
step cat "$mnt/README.txt"
step cat "$mnt/notes-link"
step tail -n 3 "$mnt/data/numbers.txt"

explain "Every byte matches what the host generated"
step_sh "cd $mnt && sha256sum -c /share/sample.sha256"

explain "A large file: 96 MiB of random data, in few extents (blocks are allocated in runs)"
step dd if=/dev/urandom of="$mnt/big" bs=1M count=96 status=none
step_sh "sha256sum $mnt/big | tee /tmp/big.sha256"
step filefrag "$mnt/big"
step stat -c "%n: %s bytes, %b blocks of 512 bytes" "$mnt/big"

explain "A sparse file: 400 GiB long, two blocks on disk (holes read as zeros)"
step truncate -s 400G "$mnt/sparse"
step_sh "printf 'the end' | dd of=$mnt/sparse bs=1 seek=\$((400 * 1024 * 1024 * 1024 - 7)) conv=notrunc status=none"
step_sh "printf 'start' | dd of=$mnt/sparse conv=notrunc status=none"
step ls -lsh "$mnt/sparse"
step_sh "du -h --apparent-size $mnt/sparse; du -h $mnt/sparse"
step_sh "tail -c 7 $mnt/sparse; echo"
explain "The largest AegisFS file is 547 612 569 600 bytes (about 498 GiB): one byte more is EFBIG"
step_sh "truncate -s 547612569601 $mnt/too-big || echo '=> refused, as expected'"

explain "statfs: sizes and free space as df and stat -f see them"
step df -h "$mnt"
step df -i "$mnt"
step stat -f "$mnt"

explain "A crash: new files, then the filesystem is shut down as if the power went"
explain "(FS_IOC_SHUTDOWN with LOGFLUSH: the journal is committed, nothing is written home)"
step mkdir "$mnt/after"
step_sh "seq 1 50000 > $mnt/after/counted.txt && sha256sum $mnt/after/counted.txt > /tmp/counted.sha256"
step mv "$mnt/README.txt" "$mnt/after/README.txt"
step_sh "python3 -c 'import fcntl, os, struct; fd = os.open(\"$mnt\", os.O_RDONLY); fcntl.ioctl(fd, 0x8004587D, struct.pack(\"I\", 1))'"
step_sh "ls $mnt || echo '=> the filesystem is down: every access fails with EIO'"
step umount "$mnt"
explain "What the next mount will find in the journal (aegisfs-inspect reads, never writes)"
step_sh "aegisfs-inspect -q $disk journal | grep -E '^(Transaction|  replayed|Recovery)' | tail -n 6"
explain "Mount again: the journal is replayed, and everything committed is back"
step mount -t aegisfs "$disk" "$mnt"
step_sh "dmesg | grep -E '] aegisfs[: ]' | tail -n 4"
step ls -la "$mnt/after"
step sha256sum -c /tmp/counted.sha256 /tmp/big.sha256

explain "Unmount and unload"
step umount "$mnt"
step rmmod aegisfs
if command -v fsck.aegisfs > /dev/null; then
    explain "Check the unmounted filesystem: a full read-only check finds it clean"
    step fsck -t aegisfs -f -n "$disk"
fi

echo
echo "### Done: AegisFS was formatted, mounted, filled with a large and a sparse file,"
echo "### crashed, replayed, checked clean, unmounted and unloaded."
