#!/usr/bin/env bash
# logwrites: crash consistency at every flush. The workload of tests/guest/powercut_work.py
# runs on a dm-log-writes device (/dev/vdb, log on /dev/vdc) with a mark per fsync'ed
# record; tests/guest/logreplay.py then replays the log onto /dev/vdd up to FLUSH/FUA
# points and checks a dm-snapshot of each: mount (journal replay), every file fsync'ed
# before that point exact, umount, fsck -n clean. Finally the fully replayed vdd must equal
# vdb.
#
#   FSTYP=ext4 tests/run logwrites         prove it on ext4 (default FSTYP aegisfs)
#   LOGWRITES_POINTS=0                     check every flush/FUA point (make crash-test);
#                                          default 20 spread over the log, the end included
#   LOGWRITES_OPS=N                        workload steps (default 150)
#   LOGWRITES_SEED=N                       repeat a workload
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init logwrites
fstyp=${FSTYP:-aegisfs}
points=${LOGWRITES_POINTS:-20}
ops=${LOGWRITES_OPS:-150}
seed=${LOGWRITES_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "# logwrites: FSTYP=$fstyp LOGWRITES_OPS=$ops LOGWRITES_POINTS=$points seed $seed (LOGWRITES_SEED=$seed repeats it)"
timeout=900
[ "$points" != 0 ] || timeout=$((6 * 3600))

cases=$work/cases
printf '%s\n' record replay end replay-identical > "$cases"
# The guest checks with fsck itself, at every point.
suite_fsck=0
suite_vm "$cases" -- --disk 256M --disk 1G --disk 256M --disk 256M --timeout "$timeout" -- \
    "$top/tests/guest/logwrites.py" "$fstyp" "$seed" "$ops" "$points"
