#!/usr/bin/env bash
# stress: fio writers with crc32c verification (sequential and random, verified again after
# a remount), then a seeded random workload of namespace and data operations checked
# against an in-memory model (contents, sizes, names, link counts, exact errnos), with the
# whole tree compared every 300 operations, after remounts and at the end; then writers
# racing to be the first users of bitmaps just read again from the disk; then the
# parallel stress (tests/guest/pstress.py): six model-checked workers, a syncer, a reader
# and read-only remounts at once, the final tree compared with the models.
#
#   FSTYP             filesystem under test (default aegisfs; ext4 proves the tests)
#   STRESS_SECONDS    length of the model workload (default 120)
#   STRESS_SEED       replay a run (the seed is printed as a "# " note and in failures)
#   STRESS_PARALLEL_SECONDS  length of the parallel stress (default 60)
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init stress
fstyp=${FSTYP:-aegisfs}
seconds=${STRESS_SECONDS:-120}
seed=${STRESS_SEED:-}
parallel=${STRESS_PARALLEL_SECONDS:-60}

cases=$work/cases
printf '%s\n' mkfs-mount fio fio-remount model bitmap-first-read parallel umount > "$cases"
# suite_vm's fsck -n only checks AegisFS disks.
[ "$fstyp" != aegisfs ] || echo fsck-vdb >> "$cases"
suite_vm "$cases" -- --disk 2G --timeout $((600 + 2 * seconds + 3 * parallel)) -- \
    "$top/tests/guest/stress.py" "$fstyp" "$seconds" "$seed" "$parallel"
