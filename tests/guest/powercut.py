#!/usr/bin/env python3
"""Guest half of tests/suites/powercut.sh: one boot of the power-cut loop.

  powercut.py FSTYP BOOT SEED run     check what the last cut left, then run the workload
                                      until the host kills QEMU (--kill-after)
  powercut.py FSTYP BOOT SEED final   only the check

/dev/vdb is the filesystem (an image file the host keeps across boots), /dev/vdc the record
log (powercut_work.RecordLog). A log without the mkfs record (first boot, or a cut during
mkfs) means: mkfs now. Otherwise: mount (the journal replay), every record exact
(boot-N-verify), umount, `fsck -n` exits 0 (boot-N-fsck), mount again and continue.
Exits 1 after a failed check (the host stops the loop), 3 if nobody killed it in time.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402
import powercut_work as pw  # noqa: E402

DEV, LOG, MNT = "/dev/vdb", "/dev/vdc", "/mnt/powercut"


def fsck_cmd(dev):
    """`fsck -n`, forced for ext* (a clean ext4 is otherwise not checked at all)."""
    return ["fsck", "-t", fsx.FSTYP, "-n"] + (["-f"] if fsx.FSTYP.startswith("ext") else []) + [dev]


def check(boot, log):
    """Mount, verify, umount, fsck. Returns True when all passed."""
    state = {}
    for rec in log.records[1:]:
        pw.apply(state, rec)
    c = f"boot-{boot}"
    t = time.time()
    if not fsx.case(f"{c}-mount", fsx.mount, DEV, MNT):
        return False
    note_mount = time.time() - t

    def verify():
        problems = pw.verify(MNT, state)
        fsx.expect(not problems, f"{len(problems)} of {len(state)} fsync'ed files differ: "
                   + "; ".join(problems[:5]))
        xattrs = sum(1 for *_, x in state.values() if x)
        fsx.note(f"boot {boot}: {len(state)} files exact, {xattrs} with an xattr "
                 f"({len(log.records)} records, "
                 f"mount {note_mount:.1f} s, verify {time.time() - t:.1f} s)")

    good = fsx.case(f"{c}-verify", verify)
    if not fsx.case(f"{c}-umount", fsx.umount, MNT):
        return False

    def fsck():
        p = fsx.subprocess.run(fsck_cmd(DEV), stdout=fsx.subprocess.PIPE, stderr=fsx.subprocess.STDOUT, text=True)
        fsx.expect(p.returncode == 0, f"fsck -n exited {p.returncode}: {p.stdout.strip()[-400:]}")

    good = fsx.case(f"{c}-fsck", fsck) and good
    return good


def main():
    fsx.init("powercut", sys.argv)
    boot, seed, mode = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    fsx.load()
    log = pw.RecordLog(LOG)
    if not log.records or not log.records[0].startswith("M "):
        if mode == "final":
            fsx.fail(f"boot-{boot}-mount", "no mkfs record in the log: no boot got that far")
            return 1
        if not fsx.case(f"boot-{boot}-mkfs", fsx.mkfs, DEV, "powercut"):
            return 1
        fsx.mount(DEV, MNT)
        pw.layout(MNT)
        # Only a complete mkfs + layout is recorded (as record 0); a cut before repeats it.
        log.commit(f"M {fsx.FSTYP}")
    else:
        if not check(boot, log):
            fsx.note(f"boot {boot}: a check failed; stopping")
            return 1
        if mode == "final":
            return 0
        fsx.mount(DEV, MNT)
    state = {}
    for rec in log.records[1:]:
        pw.apply(state, rec)
    work = pw.Workload(MNT, pw.make_rng(seed), log.commit, boot, state)
    work.start()
    fsx.note(f"boot {boot}: workload started (seed {seed})")
    t = time.time()
    last = t
    while time.time() - t < 240:
        work.step()
        if time.time() - last >= 5:
            last = time.time()
            fsx.note(f"boot {boot}: {time.time() - t:.0f} s, {len(log.records)} records, {work.fsyncs} fsync'ed")
    fsx.note(f"boot {boot}: nobody cut the power within 240 s")
    return 3


if __name__ == "__main__":
    sys.exit(main())
