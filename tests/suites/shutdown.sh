#!/usr/bin/env bash
# shutdown: FS_IOC_SHUTDOWN (flags 0 = default, flush everything; 1 = logflush, commit the
# journal; 2 = nologflush, stop at once), each on a fresh mkfs of a 1 GiB /dev/vdb: a writer
# child (fsync'ed files recorded, closed-unsynced files recorded, churn) is shut down after
# a seeded random delay; afterwards writes, creates, mkdir, fsync ... and reads fail with
# EIO; umount, mount (journal replay), every fsync'ed file exact (default: and every file
# closed before the ioctl; logflush: those exist, empty or exact), umount, fsck -n clean.
# Then: EPERM for a non-root user, EINVAL for an unknown flag.
#
#   FSTYP=ext4 tests/run shutdown     prove it on ext4 (default FSTYP aegisfs)
#   SHUTDOWN_SEED=N                   repeat the delays and the writer's choices
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init shutdown
fstyp=${FSTYP:-aegisfs}
seed=${SHUTDOWN_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "# shutdown: FSTYP=$fstyp seed $seed (SHUTDOWN_SEED=$seed repeats it)"

cases=$work/cases
for flag in default logflush nologflush; do
    printf "$flag-%s\n" mkfs shutdown eio eio-other read umount mount fsynced
    [ $flag = nologflush ] || echo "$flag-closed"
    echo "$flag-fsck"
done > "$cases"
printf '%s\n' eperm bad-flag eperm-fsck ro-device orphans-ro orphans-ro-device device-removed data-error data-error-abort fsync-error-heal >> "$cases"
# suite_vm's fsck -n only checks AegisFS disks.
[ "$fstyp" != aegisfs ] || echo fsck-vdb >> "$cases"
suite_vm "$cases" -- --disk 1G --timeout 300 -- "$top/tests/guest/shutdown.py" "$fstyp" "$seed"
