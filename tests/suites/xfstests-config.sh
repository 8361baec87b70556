#!/usr/bin/env bash
# Suite "xfstests-config": the xfstests runner's choices, without a guest or xfstests.
# Against a stand-in xfstests tree (only group.list files), `xfstests-config/run --list`
# must pick the tests TESTS, GROUP and SHARD name the way xfstests' check does, refuse bad
# arguments with exit 2, leave out the tests of the exclude file (aegisfs only) and the
# tests a resumed run already has a result for; every line of the real exclude file must
# name a test and give a reason. The results of a stand-in run must merge into one xunit
# file and come out of xfstests-config/report as the expected Markdown rows (a test the
# guest's watchdog stopped says so).
# Prints one `ok xfstests-config/<case>` or `not ok xfstests-config/<case>: <reason>` per case.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
mkdir -p "$build/tests"
work=$(mktemp -d "$build/tests/xfstests-config.XXXXXX")
[ "${AEGISFS_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

ok() { echo "ok xfstests-config/$1"; }
not_ok() { echo "not ok xfstests-config/$1: $2"; }

# expect CASE WANTED GOT: compare two texts.
expect() {
    if [ "$2" = "$3" ]; then ok "$1"
    else not_ok "$1" "expected [$(tr '\n' ' ' <<<"$2")] got [$(tr '\n' ' ' <<<"$3")]"; fi
}

# A copy of xfstests-config/, so that cases can give it an exclude file of their own; its
# results go to $work/build.
conf=$work/xfstests-config
cp -r "$top/xfstests-config" "$conf"
export BUILD=$work/build
tree=$work/xfstests
mkdir -p "$tree/tests/generic" "$tree/tests/ext4" "$tree/tests/xfs" "$tree/ltp"
touch "$tree/check" "$tree/ltp/fsstress"
cat > "$tree/tests/generic/group.list" <<'EOF'
# QA groups control file, as `make` writes it
001 auto quick rw
002 auto quick
003 auto # quick after the comment does not count
010 auto quick
011 auto
EOF
echo "001 auto quick" > "$tree/tests/ext4/group.list"
echo "001 auto quick" > "$tree/tests/xfs/group.list"
: > "$conf/exclude"

# list [VAR=VALUE...]: the tests a run would start (stdout of run --list).
list() {
    env XFSTESTS_DIR="$tree" "$@" "$conf/run" --list 2>/dev/null
}
# status [VAR=VALUE...]: the exit status of run --list.
status() {
    env XFSTESTS_DIR="$tree" "$@" "$conf/run" --list > /dev/null 2>&1
    echo $?
}

expect tests "generic/001
generic/002
generic/010
generic/011" "$(list TESTS="generic/01? generic/00[12] generic/010")"
expect group-aegisfs "generic/001
generic/002
generic/010" "$(list GROUP=quick)"
expect group-ext4 "ext4/001
generic/001
generic/002
generic/010" "$(list GROUP=quick FSTYP=ext4)"
expect group-of-dir "xfs/001" "$(list GROUP=xfs/quick)"
expect tests-and-groups "generic/001
generic/002
generic/003
generic/010
generic/011" "$(list GROUP=auto TESTS=generic/002)"
shards=$(for i in 1 2 3; do list GROUP=auto SHARD=$i/3 | tr '\n' ' '; echo; done)
expect shard "generic/001 generic/010 
generic/002 generic/011 
generic/003 " "$shards"

bad=()
for args in "TESTS=generic/999" "GROUP=nosuchgroup" "TESTS=" "SHARD=0/2 GROUP=auto" \
    "SHARD=3/2 GROUP=auto" "SHARD=1 GROUP=auto" "FSTYP=xfs GROUP=auto" \
    "RUN_ID=../x GROUP=auto" "XFSTESTS_TEST_TIMEOUT=0 GROUP=auto"; do
    # shellcheck disable=SC2086 # one VAR=VALUE per word
    s=$(status $args)
    [ "$s" = 2 ] || bad+=("$args: exit $s")
done
s=$(env -u XFSTESTS_DIR GROUP=auto "$conf/run" --list > /dev/null 2>&1; echo $?)
[ "$s" = 2 ] || bad+=("no XFSTESTS_DIR: exit $s")
s=$(XFSTESTS_DIR=$work GROUP=auto "$conf/run" --list > /dev/null 2>&1; echo $?)
[ "$s" = 2 ] || bad+=("XFSTESTS_DIR not a built tree: exit $s")
s=$(XFSTESTS_DIR=$tree GROUP=auto "$conf/run" --list generic/001 > /dev/null 2>&1; echo $?)
[ "$s" = 2 ] || bad+=("a test as an argument: exit $s")
if [ ${#bad[@]} = 0 ]; then ok usage-errors
else not_ok usage-errors "$(IFS=';'; echo "${bad[*]}")"; fi

printf '%s\n' "# a comment" "" "generic/002   # needs what AegisFS lacks" > "$conf/exclude"
expect exclude-aegisfs "generic/001
generic/010
generic/002 excluded" "$(list GROUP=quick)"
expect exclude-not-ext4 "ext4/001
generic/001
generic/002
generic/010" "$(list GROUP=quick FSTYP=ext4)"
bad=()
for line in "generic/002" "generic/002 #" "generic/002 needs nothing" \
    "generic/002 generic/010 # two" "generic/999 # not in the tree"; do
    printf '%s\n' "$line" > "$conf/exclude"
    s=$(status GROUP=quick)
    [ "$s" = 2 ] || bad+=("'$line': exit $s")
done
if [ ${#bad[@]} = 0 ]; then ok exclude-malformed
else not_ok exclude-malformed "$(IFS=';'; echo "${bad[*]}")"; fi

# The real exclude file, against a tree that has every test it names: each line must
# parse, with a reason.
cp "$top/xfstests-config/exclude" "$conf/exclude"
named=$(sed -e 's/#.*//' "$conf/exclude" | awk 'NF {print $1}')
for t in $named; do
    d=${t%%/*}
    mkdir -p "$tree/tests/$d"
    echo "${t#*/} auto" >> "$tree/tests/$d/group.list"
done
if out=$(XFSTESTS_DIR=$tree TESTS=generic/001 "$conf/run" --list 2>&1); then
    ok exclude-file
else
    not_ok exclude-file "$(tail -n 1 <<<"$out")"
fi
: > "$conf/exclude"

# A resumed run: three tests have results (one lost when its guest died), one has none.
run_dir=$BUILD/xfstests/aegisfs/r1
mkdir -p "$run_dir/xunit"
cat > "$run_dir/xunit/boot-1.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" name="xfstests" failures="1" skipped="1" tests="3" time="12">
	<properties>
		<property name="KERNEL" value="7.3.4"/>
	</properties>
	<testcase classname="xfstests.global" name="generic/001" time="7">
	</testcase>
	<testcase classname="xfstests.global" name="generic/002" time="5">
		<failure message="- output mismatch (see /share/generic/002.out.bad)" type="TestFail" />
	</testcase>
	<testcase classname="xfstests.global" name="generic/003" time="0">
		<skipped message="xfs_io falloc  failed (old kernel/wrong fs?)" />
	</testcase>
</testsuite>
EOF
cat > "$run_dir/run.json" <<'EOF'
{"fstyp": "aegisfs", "created": "2026-01-01 00:00:00 +0000", "excluded": [],
 "tests": ["generic/001", "generic/002", "generic/003", "generic/010", "generic/011"],
 "boots": [{"boot": 1, "accel": "tcg", "smp": 2, "mem_mib": 2048, "disk_gib": 10,
            "seconds": 100, "aegisfs": "abc1234", "xfstests": "v2026.01.05"}]}
EOF
PYTHONPATH=$conf python3 -c 'import results, sys; results.write_lost(sys.argv[1], "generic/010", "lost: the guest timed out in this test")' \
    "$run_dir/xunit/boot-1.lost.xml"
expect resume "generic/011" "$(list GROUP=auto RUN_ID=r1)"
# A runner killed during its first boot left check's result.xml, not yet kept in xunit/:
# its tests count as done, for --list as for the resumed run.
killed=$BUILD/xfstests/aegisfs/killed
mkdir -p "$killed/xunit"
sed -e '/generic\/003/,/<\/testcase>/d' "$run_dir/xunit/boot-1.xml" > "$killed/result.xml"
expect resume-killed "$(printf '%s\n' generic/003 generic/010 generic/011)" "$(list GROUP=auto RUN_ID=killed)"
mkdir -p "$run_dir/generic"
echo "stopped by the watchdog after 30 s" > "$run_dir/generic/002.watchdog"
# The kernel console of that boot: when check started each test, then the end.
cat > "$run_dir/boot-1.console" <<'EOF2'
[    2.100000] Run /sbin/aegisfs-init as init process
[   60.000000] run fstests generic/001 at 2026-01-01 00:01:00
[   70.500000] run fstests generic/002 at 2026-01-01 00:01:10
[   75.000000] aegisfs: a message of the module
[   80.000000] run fstests generic/003 at 2026-01-01 00:01:20
[   85.000000] run fstests generic/010 at 2026-01-01 00:01:25
[  100.000000] reboot: Power down
EOF2

PYTHONPATH=$conf python3 -c 'import results, sys; results.merge(sys.argv[1])' "$run_dir"
merged=$(python3 - "$run_dir/result.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
print(root.get("tests"), root.get("failures"), root.get("skipped"), root.get("time"),
      " ".join(c.get("name") for c in root.iter("testcase")),
      root.find("properties/property").get("value"))
EOF
)
expect merge "4 2 1 12 generic/001 generic/002 generic/003 generic/010 7.3.4" "$merged"

report=$("$conf/report" "$run_dir" 2>&1)
want="| aegisfs r1 | 2026-01-01 00:00:00 +0000 | 7.3.4 | abc1234 | v2026.01.05 | TCG, 2 CPUs, 2048 MiB, 2 x 10 GiB disks | 4 | 3 | 1 | 2 | 1 | 0 | 12 s | 10 s | 1, 100 s |
| generic/001 | pass, 7 s / 10 s |
| generic/002 | **fail**, 5 s / 9 s |
| generic/003 | not run, 0 s / 5 s |
| generic/010 | **fail**, 0 s / 15 s |
- generic/002 (aegisfs r1): stopped by the watchdog after 30 s; output mismatch
- generic/010 (aegisfs r1): lost: the guest timed out in this test
- generic/003 (aegisfs r1): xfs_io falloc  failed (old kernel/wrong fs?)"
expect report "$want" "$(grep -E '^(\| (aegisfs|generic)|- )' <<<"$report")"

# An archive of that run reports the same without its console and .full files, and a
# run copied back from it resumes where the run stopped.
echo "the failure's output" > "$run_dir/generic/002.out.bad"
echo "a large log" > "$run_dir/generic/002.full"
"$conf/archive" "$run_dir" "$work/kept/r1" > /dev/null
kept=$(cd "$work/kept/r1" && find . -type f | sort | tr '\n' ' ')
expect archive-files "./generic/002.out.bad ./generic/002.watchdog ./run.json ./walls.json ./xunit/boot-1.lost.xml ./xunit/boot-1.xml " "$kept"
expect archive-report "$want" "$("$conf/report" "$work/kept/r1" 2>&1 | grep -E '^(\| (aegisfs|generic)|- )')"
cp -r "$work/kept/r1" "$BUILD/xfstests/aegisfs/r2"
expect archive-resume "generic/011" "$(list GROUP=auto RUN_ID=r2)"
s=$("$conf/archive" "$work" "$work/kept/x" > /dev/null 2>&1; echo $?)
expect archive-not-a-run 2 "$s"
exit 0
