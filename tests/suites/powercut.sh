#!/usr/bin/env bash
# powercut: crash consistency under real power cuts. A persistent image /dev/vdb and a
# record log /dev/vdc; each of POWERCUT_RUNS boots checks what the previous cut left (mount =
# journal replay, every fsync'ed file exact, fsck -n clean), runs the workload of
# tests/guest/powercut_work.py and is killed (qemu/vm --kill-after, SIGKILL of QEMU) at a
# seeded random moment POWERCUT_MIN..POWERCUT_MAX s (default 3..25, times
# AEGISFS_VM_TIME_SCALE: on a slower kernel the workload starts later) after the guest
# script started. A last boot only checks. The loop stops at the first failed check (the image is
# kept with AEGISFS_KEEP=1).
#
#   FSTYP=ext4 tests/run powercut          prove it on ext4 (default FSTYP aegisfs)
#   POWERCUT_RUNS=200 tests/run powercut   the long run (make crash-test)
#   POWERCUT_SEED=N                        replay the same cut times and workload
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init powercut
fstyp=${FSTYP:-aegisfs}
runs=${POWERCUT_RUNS:-3}
scale=${AEGISFS_VM_TIME_SCALE:-1}
lo=${POWERCUT_MIN:-$(awk -v s="$scale" 'BEGIN { print 3 * s }')}
hi=${POWERCUT_MAX:-$(awk -v s="$scale" 'BEGIN { print 25 * s }')}
seed=${POWERCUT_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "# powercut: FSTYP=$fstyp POWERCUT_RUNS=$runs cut ${lo}..${hi} s, seed $seed (POWERCUT_SEED=$seed repeats it)"

image=$work/fs.img
logimg=$work/records.img
truncate -s 1G "$image"
truncate -s 256M "$logimg"
log=$work/vm.log
: > "$log"

# boot N: qemu/vm status in $status, its output appended to $log, results streamed.
boot() {
    local n=$1 mode=$2
    shift 2
    set +e
    "$top/qemu/vm" --disk "$image" --disk "$logimg" --timeout 600 "$@" -- \
        "$top/tests/guest/powercut.py" "$fstyp" "$n" "$((seed * 1000 + n))" "$mode" 2>&1 |
        tee "$work/boot.log" | grep --line-buffered -E "^((not )?ok powercut/|# )"
    status=${PIPESTATUS[0]}
    set -e
    cat "$work/boot.log" >> "$log"
}

start=$SECONDS
cuts=0
in_workload=0
stopped=0
for ((n = 1; n <= runs; n++)); do
    t=$(python3 -c "import random; print(round(random.Random($seed * 1000 + $n).uniform($lo, $hi), 2))")
    boot "$n" run --kill-after "$t"
    # A guest that hung while booting never ran the workload: that boot is repeated (once),
    # since it says nothing about the filesystem.
    if [ "$status" = 124 ] && grep -q "the guest script never started" "$work/boot.log"; then
        echo "# powercut: boot $n: the guest hung before the script started; booting again"
        boot "$n" run --kill-after "$t"
    fi
    if [ "$status" = 137 ]; then
        cuts=$((cuts + 1))
        grep -q "^# powercut: boot $n: workload started" "$work/boot.log" && in_workload=$((in_workload + 1))
        echo "ok powercut/cut-$n"
        echo "# powercut: cut $n at $t s: $(grep -oE "boot $n: [0-9]+ s, [0-9]+ records, [0-9]+ fsync'ed" "$work/boot.log" | tail -n 1)"
    else
        echo "not ok powercut/cut-$n: qemu/vm exited $status, not 137 (the power cut at $t s); seed $seed: $(grep -vE "^(not )?ok " "$work/boot.log" | tail -n 3 | tr '\n' ' ')"
    fi
    if [ "$status" != 137 ] || grep -q "^not ok powercut/" "$work/boot.log"; then
        echo "# powercut: stopping after boot $n (seed $seed)"
        stopped=1
        break
    fi
done
if [ $stopped = 0 ]; then
    boot $((runs + 1)) final
    if [ "$status" = 0 ]; then
        echo "ok powercut/final"
    else
        echo "not ok powercut/final: qemu/vm exited $status: $(grep -vE "^(not )?ok " "$work/boot.log" | tail -n 3 | tr '\n' ' ')"
    fi
    for c in mount verify umount fsck; do
        grep -qE "^(not )?ok powercut/boot-$((runs + 1))-$c\b" "$work/boot.log" ||
            echo "not ok powercut/boot-$((runs + 1))-$c: no result from the guest"
    done
fi
[ $stopped = 0 ] || cp "$log" "$build/tests/powercut.vm.log"
echo "# powercut: $cuts cuts, $in_workload of them during the workload, $((SECONDS - start)) s (seed $seed)"
