#!/usr/bin/env bash
# staledata: no file ever shows another file's old data. A persistent image /dev/vdb is
# first filled with files whose every block says SECRET, which are then deleted; then
# STALEDATA_CUTS times a boot appends to, truncates and extends files until it is killed
# (qemu/vm --kill-after) at a seeded random moment 3..10 s (times AEGISFS_VM_TIME_SCALE: on
# a slower kernel the workload starts later) after its script started, and
# the next boot checks what the power cut left: every block of every file zeros or exactly
# what was written there, never SECRET; fsck -n clean. Cases: tests/guest/staledata.py.
#
#   FSTYP=ext4 tests/run staledata    the same on ext4 (default FSTYP aegisfs)
#   STALEDATA_SEED=N                  replay the same cut times and workload
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init staledata
fstyp=${FSTYP:-aegisfs}
cuts=${STALEDATA_CUTS:-3}
seed=${STALEDATA_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
scale=${AEGISFS_VM_TIME_SCALE:-1}
echo "# staledata: FSTYP=$fstyp STALEDATA_CUTS=$cuts, seed $seed (STALEDATA_SEED=$seed repeats it)"

image=$work/fs.img
truncate -s 256M "$image"

# boot N MODE [qemu/vm options]: the guest's results streamed, qemu/vm's status in $status.
boot() {
    local n=$1 mode=$2
    shift 2
    set +e
    "$top/qemu/vm" --disk "$image" --timeout 600 "$@" -- \
        "$top/tests/guest/staledata.py" "$fstyp" "$n" "$((seed * 1000 + n))" "$mode" 2>&1 |
        tee "$work/boot.log" | grep --line-buffered -E "^((not )?ok staledata/|# )"
    status=${PIPESTATUS[0]}
    set -e
    cat "$work/boot.log" >> "$work/vm.log"
}

# The guest's last words when a boot ended otherwise than expected.
last_words() {
    grep -vE "^(not )?ok " "$work/boot.log" | tail -n 3 | tr '\n' ' '
}

boot 1 prep
if [ "$status" != 0 ]; then
    echo "not ok staledata/prep-vm: qemu/vm exited $status: $(last_words)"
    exit 0
fi
stopped=0
for ((n = 1; n <= cuts; n++)); do
    t=$(python3 -c "import random; print(round(random.Random($seed * 1000 + $n).uniform(3 * $scale, 10 * $scale), 2))")
    boot "$((2 * n))" run --kill-after "$t"
    if [ "$status" != 137 ]; then
        echo "not ok staledata/cut-$n: qemu/vm exited $status, not 137 (the power cut at $t s): $(last_words)"
        stopped=1
        break
    fi
    echo "ok staledata/cut-$n"
    echo "# staledata: cut $n at $t s: $(grep -oE "[0-9]+ operations in [0-9]+ s" "$work/boot.log" | tail -n 1)"
    boot "$((2 * n + 1))" check
    if [ "$status" != 0 ]; then
        grep -q "^not ok staledata/" "$work/boot.log" ||
            echo "not ok staledata/check-$n: qemu/vm exited $status: $(last_words)"
        stopped=1
        break
    fi
done
if [ $stopped = 1 ]; then
    cp "$work/vm.log" "$build/tests/staledata.vm.log"
    echo "# staledata: stopped early (seed $seed); log in build/tests/staledata.vm.log"
fi
