#!/usr/bin/env bash
# fuzz: hostile images. A corpus of real images made by the module (empty, populated, large
# indexed directories, every mapping level, a dirty journal with orphans; cached in
# build/fuzz/corpus) is mutated image by image (aegisfs-testimage mutate: random bits and
# bytes, and boundary values in the fields of every metadata structure, checksums
# recomputed). On the host each mutated image is shown by every view of aegisfs-inspect,
# then goes through fsck.aegisfs -fn and -fy, after which -fn must find it clean, every run
# ending within the step timeout and without a crash. In the guest each is mounted and worked on (tests/guest/fuzz.py): a kernel report,
# a hang or a VM crash fails the image. A failed image's reproducer is saved in
# build/fuzz/failures/ (the mutated image, its mutations, the log), and a new VM goes on
# with the next image.
#
#   FUZZ_IMAGES=N      images (default 40: the fixed set of `make test`)
#   FUZZ_SEED=S        seed (default 1); image I is mutated with seed S*2^32+I
#   FUZZ_BATCH=N       images per boot (default 500)
#   FUZZ_TIMEOUT=SECS  each step of an image (fsck, mount, workload, umount) must end within
#                      this (default 60; the guest's times AEGISFS_VM_TIME_SCALE)
#   FUZZ_NEW_CORPUS=1  make the corpus again
#   make fuzz N=10000 [SEED=S] [FUZZ_KERNEL=test]   the same on the debug kernel
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init fuzz
images=${FUZZ_IMAGES:-40}
seed=${FUZZ_SEED:-1}
batch=${FUZZ_BATCH:-500}
step=$((${FUZZ_TIMEOUT:-60} * ${AEGISFS_VM_TIME_SCALE:-1}))
fuzzdir=$build/fuzz
corpus=$fuzzdir/corpus
failures=$fuzzdir/failures
names=(empty populated bigdir deep dirty)
sizes=(32M 64M 64M 64M 64M)
echo "# fuzz: $images images, FUZZ_SEED=$seed"

if [ "${FUZZ_NEW_CORPUS:-0}" = 1 ] || [ ! -e "$corpus/done" ]; then
    rm -rf "$corpus"
    mkdir -p "$corpus"
    disks=()
    for i in "${!names[@]}"; do
        truncate -s "${sizes[$i]}" "$corpus/${names[$i]}.img"
        disks+=(--disk "$corpus/${names[$i]}.img")
    done
    suite_fsck=0
    printf 'corpus-%s\n' "${names[@]}" > "$work/corpus.cases"
    suite_vm "$work/corpus.cases" -- "${disks[@]}" --timeout 900 -- "$top/tests/guest/fuzz.py" corpus
    [ "$(grep -cE "^ok fuzz/corpus-" "$work/vm.log")" != "${#names[@]}" ] || touch "$corpus/done"
    [ -e "$corpus/done" ] || { echo "# fuzz: no corpus, no fuzzing"; exit 0; }
fi

# The corpus must hold every kind of structure the mutations aim at.
kinds=$(for n in "${names[@]}"; do "$testimage" survey "$corpus/$n.img"; done |
    awk '{n[$1] += $2} END {for (k in n) print k, n[k]}' | sort)
echo "# fuzz: corpus structures: $(tr '\n' ',' <<<"$kinds" | sed 's/,$//; s/,/, /g')"
missing=()
for k in superblock group-desc block-bitmap inode-bitmap inode indirect-1 indirect-2 \
    indirect-3 dir-block dir-index xattr-block journal-super journal-descriptor \
    journal-commit journal-revoke journal-data; do
    grep -q "^$k " <<<"$kinds" || missing+=("$k")
done
if [ ${#missing[@]} = 0 ]; then
    echo "ok fuzz/corpus-kinds"
else
    echo "not ok fuzz/corpus-kinds: no ${missing[*]} in the corpus"
fi

mkdir -p "$work/disks" "$work/deltas" "$failures"
disks=()
for n in "${names[@]}"; do
    cp --sparse=always "$corpus/$n.img" "$work/disks/"
    disks+=(--disk "$work/disks/$n.img")
done
img=$work/image

# save_failure I WHY: the reproducer of image I.
save_failure() {
    local i=$1 why=$2 name=${names[$(($1 % ${#names[@]}))]}
    local out=$failures/$name-$(((seed << 32) | i))
    cp --sparse=always "$corpus/$name.img" "$out.img"
    {
        echo "image $i: corpus $name, aegisfs-testimage mutate IMAGE $(((seed << 32) | i))"
        echo "why: $why"
        "$testimage" mutate "$out.img" "$(((seed << 32) | i))"
    } > "$out.txt"
    [ ! -e "$work/boot.log" ] || cp "$work/boot.log" "$out.log"
    echo "# fuzz: reproducer: ${out#"$top"/}.img (mutations and log beside it)"
}

# tool_run TOOL ARGS: runs the tool TOOL with ARGS; sets $rc, $tool_out, and $crash to why
# the run is a failure (a hang, a signal, a Rust panic), empty if it is not.
tool_run() {
    local tool=$1
    shift
    set +e
    tool_out=$(timeout -s KILL "${FUZZ_TIMEOUT:-60}" "$release/$tool" "$@" 2>&1)
    rc=$?
    set -e
    crash=
    if [ $rc = 137 ]; then
        crash="$tool $* did not finish in ${FUZZ_TIMEOUT:-60} s"
    elif [ $rc -ge 101 ] || grep -q "panicked at" <<<"$tool_out"; then
        crash="$tool $* crashed (exit $rc): $(tail -n 2 <<<"$tool_out" | tr '\n' ' ')"
    fi
}

# fsck_run ARGS: fsck.aegisfs ARGS on the image.
fsck_run() { tool_run fsck.aegisfs "$@" "$img"; }

# Every view of aegisfs-inspect, with the root, lost+found and the first files as inodes.
inspect_views=(super groups freefrag journal "dir 2" "dir 11" "inode 2" "inode 11" "inode 12"
    "inode 13" "inode 14" "inode 15" "inode 16" "inode 17")

# inspect_image: each view of the image; sets $crash as tool_run does, also for an exit
# status the inspector does not give for a damaged image (0 nothing wrong, 1 damage shown,
# 4 unreadable).
inspect_image() {
    local view
    for view in "${inspect_views[@]}"; do
        # shellcheck disable=SC2086 # a view is a command and its argument
        tool_run aegisfs-inspect -q "$img" $view
        [ -n "$crash" ] || [ $rc = 0 ] || [ $rc = 1 ] || [ $rc = 4 ] ||
            crash="aegisfs-inspect $view exited $rc: $(tail -n 2 <<<"$tool_out" | tr '\n' ' ')"
        [ -z "$crash" ] || return 0
    done
}

# mutate_batch FIRST END: the deltas of images FIRST..END-1, each image checked by fsck.
mutate_batch() {
    local i name mseed
    for ((i = $1; i < $2; i++)); do
        [ ! -e "$work/deltas/$i.delta" ] || continue
        name=${names[$((i % ${#names[@]}))]}
        mseed=$(((seed << 32) | i))
        cp --sparse=always "$corpus/$name.img" "$img"
        "$testimage" mutate "$img" "$mseed" "$work/deltas/$i.delta" > /dev/null
        inspect_image
        if [ -n "$crash" ]; then
            echo "not ok fuzz/inspect-$i: $name seed $mseed: $crash"
            save_failure "$i" "$crash"
            inspect_failed=$((inspect_failed + 1))
        fi
        fsck_run -fn
        if [ -z "$crash" ]; then
            fsck_run -fy
            local repaired=$rc
            [ -n "$crash" ] || fsck_run -fn
            # Exit 8 twice: a superblock fsck cannot use (there is no backup to repair from).
            if [ -z "$crash" ] && [ $rc != 0 ] && ! { [ $repaired = 8 ] && [ $rc = 8 ]; }; then
                crash="fsck -fy left errors (fsck -fn exit $rc): $(grep "Fix?" <<<"$tool_out" | head -n 3 | tr '\n' ' ')"
            fi
        fi
        if [ -n "$crash" ]; then
            echo "not ok fuzz/fsck-$i: $name seed $mseed: $crash"
            save_failure "$i" "$crash"
            fsck_failed=$((fsck_failed + 1))
        fi
    done
}

start=$SECONDS
next=0
failed=0
fsck_failed=0
inspect_failed=0
mounted=0
refused=0
kernel_time=0
boots=0
while [ "$next" -lt "$images" ]; do
    end=$((next + batch < images ? next + batch : images))
    rm -f "$work/boot.log"
    mutate_batch "$next" "$end"
    : > "$work/progress"
    boots=$((boots + 1))
    set +e
    "$top/qemu/vm" --share "$work" "${disks[@]}" --timeout $((300 + (end - next) * 20)) -- \
        "$top/tests/guest/fuzz.py" run "$next" "$end" "$step" 2>&1 |
        tee "$work/boot.log" | grep --line-buffered -E "^((not )?ok fuzz/|# fuzz: (image|seconds))"
    status=${PIPESTATUS[0]}
    set -e
    read -r m r t < <(grep -oE "^# fuzz: counts [0-9 ]+" "$work/boot.log" | awk '{print $4, $5, $6}') || true
    mounted=$((mounted + ${m:-0}))
    refused=$((refused + ${r:-0}))
    kernel_time=$((kernel_time + ${t:-0}))
    last=$(tail -n 1 "$work/progress")
    case "$last" in
    "end $((end - 1)) ok")
        if [ "$status" != 0 ]; then
            echo "not ok fuzz/vm-$boots: qemu/vm exited $status after the last image: $(grep -vE "^(not )?ok " "$work/boot.log" | tail -n 3 | tr '\n' ' ')"
            cp "$work/boot.log" "$build/tests/fuzz.vm.log"
            failed=$((failed + 1))
        fi
        next=$end
        ;;
    "end "*" fail")
        i=${last#end }
        i=${i% fail}
        save_failure "$i" "$(grep -m1 "^not ok fuzz/image-$i:" "$work/boot.log")"
        failed=$((failed + 1))
        next=$((i + 1))
        ;;
    "begin "*)
        i=${last#begin }
        why="the VM ended during the image (qemu/vm status $status): $(grep -vE "^(not )?ok |^# " "$work/boot.log" | grep -E "BUG|WARNING|panic|Oops|KASAN|UBSAN|blocked|stall|timeout" | head -n 3 | tr '\n' ' ')"
        echo "not ok fuzz/image-$i: ${names[$((i % ${#names[@]}))]} seed $(((seed << 32) | i)): $why"
        save_failure "$i" "$why"
        failed=$((failed + 1))
        next=$((i + 1))
        ;;
    *)
        echo "not ok fuzz/vm-$boots: the guest stopped (qemu/vm status $status) after \"${last:-nothing}\": $(grep -vE "^(not )?ok " "$work/boot.log" | tail -n 3 | tr '\n' ' ')"
        cp "$work/boot.log" "$build/tests/fuzz.vm.log"
        exit 0
        ;;
    esac
    for ((i = next - batch; i < next; i++)); do rm -f "$work/deltas/$i.delta"; done
done
echo "# fuzz: $images images in $((SECONDS - start)) s ($boots boots, ${kernel_time} s in mounts and workloads): $mounted mounted, $refused refused at mount; $failed kernel failures, $fsck_failed fsck failures, $inspect_failed inspector failures"
[ "$fsck_failed" != 0 ] || echo "ok fuzz/fsck"
[ "$inspect_failed" != 0 ] || echo "ok fuzz/inspect"
[ "$failed" != 0 ] || echo "ok fuzz/kernel"
