#!/usr/bin/env bash
# bench: `make bench`'s machinery at a tiny size (one repetition, a few MiB, 500 files (300
# on ext2), the `mm` directory of the source tree): every workload gives a figure on every
# target, and the report and the chart are made. Says nothing about speed: that is
# `make bench`.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init bench

out=$work/out
set +e
BENCH_OUT=$out BENCH_REPS=1 BENCH_SEQ_MIB=32 BENCH_RAND_MIB=8 BENCH_RAND_IOS=64 \
    BENCH_FILES=500 BENCH_EXT2_FILES=300 BENCH_TREE=mm BENCH_PAR_MIB=8 BENCH_DISK_GIB=1 BENCH_STEP_TIMEOUT=300 \
    "$top/bench/run" > "$work/run.log" 2>&1
status=$?
set -e
if [ $status = 0 ]; then echo "ok bench/run"
else echo "not ok bench/run: bench/run exited $status: $(tail -n 3 "$work/run.log" | tr '\n' ' ')"; fi

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
want = {"io": ["seq-write", "seq-read", "rand-write-fsync", "rand-read"],
        "files": ["create", "stat", "unlink"], "tree": ["untar", "find", "du", "rm"],
        "parallel": ["parallel-write"]}
raw_too = {"io", "parallel"}
got = {}
try:
    with open(os.path.join(out, "results.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            got[(r["workload"], r["metric"], r["target"])] = r
except OSError as e:
    got = {}
    print(f"# bench: no results: {e}")
for w, metrics in want.items():
    for t in ("aegisfs", "ext4", "ext2") + (("raw",) if w in raw_too else ()):
        bad = []
        for m in metrics:
            r = got.get((w, m, t))
            if r is None:
                bad.append(f"{m}: no figure")
            elif r["value"] is None or not r["value"] > 0:
                bad.append(f"{m}: {r['error'] or r['value']}")
        case = f"{w}-{t}"
        print(f"ok bench/{case}" if not bad else f"not ok bench/{case}: {'; '.join(bad)}")
try:
    with open(os.path.join(out, "report.md")) as f:
        text = f.read()
    rows = [l for l in text.splitlines() if l.startswith("| ") and "x |" in l]
    # Every row of the table has the AegisFS/ext4 ratio; ext2's own file count is named.
    if len(rows) != 12:
        print(f"not ok bench/report: {len(rows)} rows with a ratio, expected 12")
    elif "500 files (ext2: 300," not in text:
        print("not ok bench/report: ext2's file count is not named")
    else:
        print("ok bench/report")
except OSError as e:
    print(f"not ok bench/report: {e}")
try:
    with open(os.path.join(out, "ratios.png"), "rb") as f:
        head = f.read(8)
    print("ok bench/chart" if head == b"\x89PNG\r\n\x1a\n" else "not ok bench/chart: not a PNG")
except OSError as e:
    print(f"not ok bench/chart: {e}")
PY
