#!/bin/bash
# Guest half of xfstests-config/run, started by qemu/vm with the run directory as /share:
# unpacks the xfstests tree the host left in /share/xfstests.tar, brings up the loopback
# interface, formats TEST_DEV, loads the module (aegisfs), then runs xfstests' ./check on
# the tests listed in /share/tests.todo with its results (check.log, result.xml,
# <test>.out.bad/.full/.dmesg) written straight into /share, so whatever finished
# survives a crash of the guest.
#
#   guest.sh FSTYP TEST_TIMEOUT
#
# A watchdog stops a test that runs longer than TEST_TIMEOUT seconds (SIGTERM, then
# SIGKILL to the test and everything it started; check records the test as failed and goes
# on). A test that cannot be killed (blocked in the kernel) or a check that starts no test
# for TEST_TIMEOUT seconds gets the kernel's blocked-task dump (SysRq w) and a reboot, which
# ends the guest: the host records the test that was running as lost and boots again for
# the rest.
# shellcheck source-path=SCRIPTDIR
set -u
fstyp=$1
test_timeout=$2
conf=$(cd "$(dirname "$0")" && pwd)
tree=/root/xfstests

export FSTYP=$fstyp HOST_OPTIONS=$conf/local.config RESULT_BASE=/share
# shellcheck source=local.config
. "$HOST_OPTIONS"

say() { echo "xfstests-guest: $*"; }

mkdir -p "$tree" "$TEST_DIR" "$SCRATCH_MNT"
# The lock tests' client and server talk over TCP on localhost.
busybox ip link set lo up || { say "cannot bring up the loopback interface"; exit 1; }
# The cgroup tests (generic/563: writeback accounting in the io controller) look for
# cgroup2 where systemd would have mounted it.
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup ||
    { say "cannot mount cgroup2"; exit 1; }
tar -xf /share/xfstests.tar -C "$tree" || { say "unpacking xfstests failed"; exit 1; }
if [ "$FSTYP" = aegisfs ]; then
    modprobe aegisfs || { say "modprobe aegisfs failed"; exit 1; }
fi
mkfs -t "$FSTYP" "$TEST_DEV" > /dev/null || { say "mkfs -t $FSTYP $TEST_DEV failed"; exit 1; }
exclude=()
[ "$FSTYP" != aegisfs ] || exclude=(-E "$conf/exclude")
mapfile -t tests < /share/tests.todo

# Every process below ROOT (ROOT included), from ps.
process_tree() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (p in parent) {
                for (q = p; q != "" && q > 1; q = parent[q])
                    if (q == root) { print p; break }
            }
        }'
}

# The test check is running now, as "PID TEST" (check starts each test as its own child,
# `bash ./tests/<dir>/<name>`, which ps may show with the absolute path), or nothing
# between tests.
running_test() {
    ps -o pid=,args= --ppid "$1" | awk '{
        for (i = 2; i <= NF; i++)
            if ($i ~ /(^|\/)tests\/[^\/]+\/[^\/]+$/) {
                n = split($i, part, "/")
                print $1, part[n - 1] "/" part[n]
                exit
            }
    }'
}

reboot_guest() {
    say "$1; dumping blocked tasks (SysRq w) and rebooting"
    echo w > /proc/sysrq-trigger
    sleep 10
    echo b > /proc/sysrq-trigger
}

stop_test() {
    local pid=$1 name=$2 sig
    say "$name still running after $test_timeout s; stopping it"
    # Check records the test as failed; this file tells the report why.
    echo "stopped by the watchdog after $test_timeout s" > "$RESULT_BASE/$name.watchdog"
    for sig in TERM KILL; do
        # shellcheck disable=SC2046 # one PID per word
        kill -s "$sig" $(process_tree "$pid") 2>/dev/null
        sleep 30
        kill -0 "$pid" 2>/dev/null || return
    done
    sleep 30
    ! kill -0 "$pid" 2>/dev/null || reboot_guest "$name cannot be killed"
}

watchdog() {
    local check=$1 seen="" since=$SECONDS now
    while kill -0 "$check" 2>/dev/null; do
        sleep 5
        now=$(running_test "$check")
        if [ "$now" != "$seen" ]; then
            seen=$now
            since=$SECONDS
        elif [ $((SECONDS - since)) -ge "$test_timeout" ]; then
            if [ -n "$now" ]; then
                stop_test "${now%% *}" "${now#* }"
            else
                reboot_guest "check started no test for $test_timeout s"
            fi
            since=$SECONDS
        fi
    done
}

cd "$tree" || exit 1
./check -R xunit "${exclude[@]}" "${tests[@]}" &
check=$!
watchdog "$check"
wait "$check"
