#!/usr/bin/env python3
"""Guest half of tests/suites/logwrites.sh: every write of the workload recorded with
dm-log-writes, then replayed (tests/guest/logreplay.py) up to flush/FUA points, each
checked like the state after a power cut there.

  logwrites.py FSTYP SEED OPS POINTS

/dev/vdb: the filesystem, under the dm-log-writes device `lw` that logs to /dev/vdc.
/dev/vdd: the replay target (same size as vdb, all zeros). /dev/vde: the copy-on-write
store of a transient dm-snapshot of /dev/vdd, so the check's own mount (the journal replay)
and fsck write to the snapshot, never to vdd, and the replay continues forward.

The workload (powercut_work.Workload, OPS steps) gives each record a mark: after the
fsync's of a write-once file or an append returned, `dmsetup message lw 0 mark rN`; a
deletion's record is marked before the unlink. The records and their marks are kept in
/tmp/logwrites-records. At a point (the log entry index P of a FLUSH or FUA, or the end),
every record whose mark comes before P holds. POINTS caps how many points are checked
(spread over the log, the last flush and the end always included); 0 checks all.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402
import logreplay  # noqa: E402
import powercut_work as pw  # noqa: E402

DEV, LOG, TARGET, COW = "/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde"
LW, SNAP = "lw", "lwsnap"
MNT, CHECK = "/mnt/logwrites", "/mnt/check"
RECORDS = "/tmp/logwrites-records"


def sectors(dev):
    return int(fsx.run("blockdev", "--getsz", dev).strip())


def dm_create(name, table):
    fsx.run("dmsetup", "create", name, "--table", table)
    return f"/dev/mapper/{name}"


def fsck_cmd(dev):
    return ["fsck", "-t", fsx.FSTYP, "-n"] + (["-f"] if fsx.FSTYP.startswith("ext") else []) + [dev]


def mkfs(dev):
    if fsx.FSTYP.startswith("ext"):
        # nodiscard: the whole-device discard would only add a big entry to the log.
        fsx.run("mkfs", "-t", fsx.FSTYP, "-q", "-F", "-E",
                "lazy_itable_init=0,lazy_journal_init=0,nodiscard", dev)
    else:
        fsx.mkfs(dev, "logwrites")


records = []  # (mark, record)


def record_workload(seed, ops):
    dev = dm_create(LW, f"0 {sectors(DEV)} log-writes {DEV} {LOG}")
    mkfs(dev)
    fsx.mount(dev, MNT)
    pw.layout(MNT)
    fsx.run("dmsetup", "message", LW, "0", "mark", "mkfs")
    f = open(RECORDS, "w")

    def commit(rec):
        mark = f"r{len(records)}"
        fsx.run("dmsetup", "message", LW, "0", "mark", mark)
        records.append((mark, rec))
        f.write(f"{mark} {rec}\n")
        f.flush()

    work = pw.Workload(MNT, pw.make_rng(seed), commit, 1, {}, max_size=512 * 1024,
                       cap=12 * pw.MIB)
    work.start()
    for _ in range(ops):
        work.step()
    os.close(work.grow_fd)
    f.close()
    fsx.umount(MNT)
    status = fsx.run("dmsetup", "status", LW).split()
    fsx.run("dmsetup", "remove", LW)
    fsx.note(f"workload: {ops} steps, {len(records)} records, {work.fsyncs} fsync'ed; "
             f"dm-log-writes status {' '.join(status[3:])}")


def choose_points(log, cap):
    marks = log.marks()
    fsx.expect("mkfs" in marks, f"no mkfs mark in the log (marks: {list(marks)[:5]})")
    missing = [m for m, _ in records if m not in marks]
    fsx.expect(not missing, f"marks missing from the log: {missing[:5]}")
    start = marks["mkfs"]
    flushes = [e.index for e in log.entries[start:] if e.flags & (logreplay.FLUSH | logreplay.FUA)]
    fsx.expect(flushes, "no FLUSH or FUA entry after the mkfs mark")
    chosen = flushes
    if cap and len(flushes) > cap - 1:
        k = cap - 1
        chosen = sorted({flushes[round(j * (len(flushes) - 1) / max(1, k - 1))] for j in range(k)})
    end = len(log.entries) - 1
    fsx.note(f"log: {len(log.entries)} entries, {len(flushes)} FLUSH/FUA points after mkfs "
             f"(entry {start}); checking {len(chosen)} of them and the end (entry {end})")
    return chosen + [end], marks


def check_point(idx, marks, tag):
    """Snapshot of the replayed /dev/vdd: mount, verify, umount, fsck -n."""
    state = {}
    for mark, rec in records:
        if marks[mark] < idx:
            pw.apply(state, rec)
    # The snapshot's first chunk would otherwise hold a stale header (transient: no
    # header is read, but be sure).
    with open(COW, "r+b") as f:
        f.write(bytes(65536))
    snap = dm_create(SNAP, f"0 {sectors(TARGET)} snapshot {TARGET} {COW} N 8")
    try:
        fsx.mount(snap, CHECK)
        try:
            problems = pw.verify(CHECK, state)
        finally:
            fsx.umount(CHECK)
        fsx.expect(not problems, f"{tag}: {len(problems)} of {len(state)} fsync'ed files differ: "
                   + "; ".join(problems[:4]))
        p = subprocess.run(fsck_cmd(snap), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        fsx.expect(p.returncode == 0, f"{tag}: fsck -n exited {p.returncode}: {p.stdout.strip()[-300:]}")
    finally:
        fsx.run("dmsetup", "remove", SNAP, check=False)
    return len(state)


def replay_and_check(cap):
    log = logreplay.Log(LOG)
    points, marks = choose_points(log, cap)
    rep = logreplay.Replayer(log, TARGET)
    t = time.time()
    checked = 0
    for n, idx in enumerate(points):
        e = log.entries[idx]
        name = "end" if n == len(points) - 1 else f"point-{idx}"
        tag = f"entry {idx} ({e.flag_text()})"

        def one():
            rep.replay_to(idx)
            return check_point(idx, marks, tag)

        if fsx.case(name, one):
            checked += 1
    fsx.note(f"replayed and checked {checked} of {len(points)} points in {time.time() - t:.0f} s")


def main():
    fsx.init("logwrites", sys.argv)
    seed, ops, cap = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    fsx.load()
    if not fsx.case("record", record_workload, seed, ops):
        subprocess.run(["dmsetup", "remove", "-f", LW])
        return 1
    fsx.case("replay", replay_and_check, cap)

    def identical():
        # The replayer's own check: after every entry, vdd is exactly what vdb became.
        with open(DEV, "rb") as a, open(TARGET, "rb") as b:
            off = 0
            while True:
                x, y = a.read(4 * pw.MIB), b.read(4 * pw.MIB)
                if x != y:
                    at = off + next((i for i, (u, v) in enumerate(zip(x, y)) if u != v),
                                    min(len(x), len(y)))
                    raise fsx.Fail(f"after the whole log, {TARGET} differs from {DEV} at byte {at}")
                if not x:
                    break
                off += len(x)

    fsx.case("replay-identical", identical)
    return 0


if __name__ == "__main__":
    sys.exit(main())
