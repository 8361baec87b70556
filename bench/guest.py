#!/usr/bin/env python3
"""Guest half of `make bench` (bench/run): runs each workload on every target, fresh, in
an order that rotates from one repetition to the next, and appends one JSON line per
measurement to /share/results.jsonl.

  guest.py /share      the settings are /share/settings.json (written by bench/run)

Targets: aegisfs, ext4, ext2 (each on its own disk, made afresh for every workload), and
raw (the block device itself, for the workloads that need no filesystem). Before a target
runs a workload its disk is discarded whole, so every run starts from the same empty disk.
"""

import json
import os
import signal
import subprocess
import sys
import time

MNT = "/mnt/bench"
MIB = 1 << 20


class StepFailed(Exception):
    """A step failed or ran past the time limit: the rest of the workload is skipped."""


def sh(*cmd, timeout=None):
    """Runs CMD; its output is discarded unless it fails."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    if p.returncode != 0:
        raise StepFailed(f"{' '.join(cmd)}: exit {p.returncode}: {p.stdout.decode(errors='replace')[-300:]}")
    return p.stdout


def fio_iops(direction, *args, timeout):
    """Operations per second of one 4 KiB fio job (psync, the same random offsets on every
    target), as fio counts them: its own start-up is not in them."""
    out = sh("fio", "--name=bench", "--ioengine=psync", "--bs=4k", "--randrepeat=1",
             "--output-format=json", *args, timeout=timeout)
    return float(json.loads(out[out.index(b"{"):])["jobs"][0][direction]["iops"])


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class Bench:
    def __init__(self, share):
        self.share = share
        with open(os.path.join(share, "settings.json")) as f:
            self.s = json.load(f)
        self.disks = self.s["disks"]  # target -> device
        self.out = open(os.path.join(share, "results.jsonl"), "a")
        self.rep = 0

    # ---- targets ------------------------------------------------------------------------

    def fresh(self, target):
        """The target's empty disk, with a new filesystem mounted on MNT (not for raw)."""
        dev = self.disks[target]
        if os.path.ismount(MNT):
            sh("umount", MNT)
        sh("blkdiscard", "-f", dev)
        if target == "raw":
            return dev
        mkfs = {
            "aegisfs": ["mkfs.aegisfs", "-q", "-f", dev],
            # ext4's defaults; only the zeroing that mke2fs would otherwise leave to a
            # kernel thread after the mount is done now, so that it cannot run during a
            # measurement.
            "ext4": ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev],
            "ext2": ["mkfs.ext2", "-q", "-F", dev],
        }[target]
        sh(*mkfs)
        os.makedirs(MNT, exist_ok=True)
        sh("mount", "-t", target, dev, MNT)
        return MNT

    def cold(self, target):
        """Empties the caches before a cold step. A filesystem is also unmounted and mounted
        again: a journal keeps the metadata buffers of recent transactions pinned until
        they are checkpointed, so dropping the caches alone would leave them cached (ext4's
        and AegisFS's alike)."""
        if target == "raw":
            drop_caches()
            return
        sh("umount", MNT)
        drop_caches()
        sh("mount", "-t", target, self.disks[target], MNT)

    def done(self, target):
        if target != "raw" and os.path.ismount(MNT):
            sh("umount", MNT)

    def timed(self, workload, target, metric, unit, amount, fn):
        """Runs FN(timeout) within the step time limit and records AMOUNT per second (for a
        unit per second), or the seconds themselves (unit "s"), or what FN returns when it
        returns a number (fio's own count of operations per second)."""
        limit = self.s["step_timeout"]
        start = time.monotonic()
        try:
            measured = fn(limit)
        except subprocess.TimeoutExpired:
            self.record(workload, target, metric, unit, None, f"longer than {limit} s")
            raise StepFailed(f"{metric} timed out") from None
        except StepFailed as e:
            self.record(workload, target, metric, unit, None, str(e)[:200])
            raise
        seconds = time.monotonic() - start
        if isinstance(measured, float):
            value = measured
        else:
            value = seconds if unit == "s" else amount / seconds
        self.record(workload, target, metric, unit, value, None, seconds)

    def record(self, workload, target, metric, unit, value, error, seconds=None):
        line = {"rep": self.rep, "workload": workload, "target": target, "metric": metric,
                "unit": unit, "value": value, "seconds": seconds, "error": error}
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()
        shown = error or (f"{value:.3f} {unit}" if unit != "s" else f"{value:.3f} s")
        print(f"# bench: rep {self.rep} {workload} {target} {metric}: {shown}", flush=True)

    # ---- workloads ----------------------------------------------------------------------

    def io(self, target):
        """1-4: sequential write of a big file + fsync, its cold sequential read; 4 KiB
        random writes with fsync after each to a second file; 4 KiB random reads, cold, of
        the big file. On raw the two files are the device's first bytes and the bytes after."""
        w = "io"
        base = self.fresh(target)
        mib, small, n = self.s["seq_mib"], self.s["rand_file_mib"], self.s["rand_ios"]
        if target == "raw":
            big, rnd, rnd_mib = base, base, mib
        else:
            big, rnd, rnd_mib = os.path.join(base, "big"), os.path.join(base, "rand"), 0
        self.timed(w, target, "seq-write", "MiB/s", mib, lambda timeout: sh(
            "dd", "if=/dev/zero", f"of={big}", "bs=1M", f"count={mib}", "conv=fsync,notrunc",
            "status=none", timeout=timeout))
        self.cold(target)
        self.timed(w, target, "seq-read", "MiB/s", mib, lambda timeout: sh(
            "dd", f"if={big}", "of=/dev/null", "bs=1M", f"count={mib}", "status=none",
            timeout=timeout))
        # The random-write file is laid down first (not measured): the writes overwrite it.
        sh("dd", "if=/dev/zero", f"of={rnd}", "bs=1M", f"count={small}", f"seek={rnd_mib}",
           "conv=fsync,notrunc", "status=none")
        self.timed(w, target, "rand-write-fsync", "ops/s", n, lambda timeout: fio_iops(
            "write", f"--filename={rnd}", "--rw=randwrite", "--fsync=1",
            f"--offset={rnd_mib}M", f"--size={small}M", f"--io_size={n * 4}k", timeout=timeout))
        self.cold(target)
        self.timed(w, target, "rand-read", "ops/s", n, lambda timeout: fio_iops(
            "read", f"--filename={big}", "--rw=randread", f"--size={mib}M",
            f"--io_size={n * 4}k", timeout=timeout))
        self.done(target)

    def files(self, target):
        """5: empty files in one directory: create + sync, stat all (cold), unlink + sync.
        ext2 makes fewer (bench/run, BENCH_EXT2_FILES)."""
        w = "files"
        d = os.path.join(self.fresh(target), "d")
        os.mkdir(d)
        n = str(self.s["ext2_files"] if target == "ext2" else self.s["files"])
        tool = "aegisfs-bench-files"
        self.timed(w, target, "create", "s", None,
                   lambda timeout: (sh(tool, "create", d, n, timeout=timeout), sh("sync")))
        self.cold(target)
        self.timed(w, target, "stat", "s", None,
                   lambda timeout: sh(tool, "stat", d, n, timeout=timeout))
        self.timed(w, target, "unlink", "s", None,
                   lambda timeout: (sh(tool, "unlink", d, n, timeout=timeout), sh("sync")))
        self.done(target)

    def tree(self, target):
        """6: unpack the source tree + sync, `find | wc -l` and `du -s` cold, `rm -rf` + sync."""
        w = "tree"
        base = self.fresh(target)
        top = os.path.join(base, "src")
        os.mkdir(top)
        self.timed(w, target, "untar", "s", None,
                   lambda timeout: (sh("tar", "-xf", self.tar, "-C", top, timeout=timeout),
                                    sh("sync")))
        self.cold(target)
        self.timed(w, target, "find", "s", None,
                   lambda timeout: sh("sh", "-c", f"find {top} | wc -l", timeout=timeout))
        self.cold(target)
        self.timed(w, target, "du", "s", None,
                   lambda timeout: sh("du", "-s", top, timeout=timeout))
        self.timed(w, target, "rm", "s", None,
                   lambda timeout: (sh("rm", "-rf", top, timeout=timeout), sh("sync")))
        self.done(target)

    def parallel(self, target):
        """7: 4 fio jobs each writing its own file (raw: its own quarter) sequentially, fsync
        at the end; MiB/s of all of them together."""
        w = "parallel"
        base = self.fresh(target)
        jobs, mib = self.s["par_jobs"], self.s["par_mib"]
        where = ([f"--filename={base}", f"--offset_increment={mib}M"] if target == "raw"
                 else [f"--directory={base}"])
        self.timed(w, target, "parallel-write", "MiB/s", jobs * mib,
                   lambda timeout: sh("fio", "--name=par", "--ioengine=psync", "--rw=write",
                                      "--bs=1M", f"--size={mib}M", f"--numjobs={jobs}",
                                      "--end_fsync=1", "--group_reporting", *where,
                                      timeout=timeout))
        self.done(target)

    # ---- the run ------------------------------------------------------------------------

    def run(self):
        self.tar = "/dev/shm/tree.tar"
        sh("cp", os.path.join(self.share, "tree.tar"), self.tar)
        workloads = {"io": (self.io, True), "files": (self.files, False),
                     "tree": (self.tree, False), "parallel": (self.parallel, True)}
        fs_targets = [t for t in ("aegisfs", "ext4", "ext2") if t in self.disks]
        for rep in range(self.s["reps"]):
            self.rep = rep
            for k, name in enumerate(self.s["workloads"]):
                fn, raw_too = workloads[name]
                targets = fs_targets + (["raw"] if raw_too and "raw" in self.disks else [])
                # Each target goes first in turn, so a slow start (or a noisy neighbour)
                # does not always fall on the same one.
                shift = (rep + k) % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    try:
                        fn(target)
                    except (StepFailed, OSError) as e:
                        print(f"# bench: rep {rep} {name} {target}: {e}", flush=True)
                        if os.path.ismount(MNT):
                            subprocess.run(["umount", "-l", MNT])
        with open(os.path.join(self.share, "done"), "w") as f:
            f.write("ok\n")


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    bench = Bench(sys.argv[1])
    if "aegisfs" in bench.disks:
        with open("/proc/filesystems") as f:
            if not any(line.split()[-1] == "aegisfs" for line in f if line.strip()):
                sh("insmod", os.environ["AEGISFS_KO"])
    bench.run()


if __name__ == "__main__":
    main()
