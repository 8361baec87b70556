#!/usr/bin/env python3
"""Guest half of tests/suites/stress.sh.

  stress.py FSTYP SECONDS [SEED [PARALLEL_SECONDS]]

fio with crc32c verification on /dev/vdb (sequential and random writers, verified again
after a remount), then a randomized, model-checked workload for SECONDS: a seeded RNG picks
create / write / truncate / rename / unlink / mkdir / rmdir / link / fsync / read
operations, an in-memory model predicts every result (data, sizes, names, link counts and
the exact errno of the ones that must fail), and the whole tree is compared with the model
every few hundred operations, after remounts and at the end. The seed is printed first and
in every failure: `STRESS_SEED=N tests/run stress` replays the same operations. Then the
parallel stress of pstress.py for PARALLEL_SECONDS (default 60): processes creating,
writing, renaming, truncating, unlinking, reading and syncing at once while the
filesystem is remounted read-only now and then, each checked against its own model, and
the final tree against all of them. Before it, `bitmap-first-read`: writers racing to
be the first users of bitmaps just read again from the disk.
"""

import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402
import pstress  # noqa: E402
from fsx import MIB, Fail, case, expect, note  # noqa: E402

DEV, MNT = "/dev/vdb", "/mnt/stress"


# ---- fio -----------------------------------------------------------------------------

FIO_JOBS = [
    # name, options, bytes per job, jobs
    ("seq-write", ["--rw=write", "--bs=256k", "--size=160m", "--fsync_on_close=1"], 160 * MIB, 2),
    ("rand-write", ["--rw=randwrite", "--bsrange=4k-64k", "--size=96m", "--fsync=64"], 96 * MIB, 3),
]


def fio(name, opts, size, jobs, verify_only=False):
    d = os.path.join(MNT, "fio")
    os.makedirs(d, exist_ok=True)
    cmd = ["fio", f"--name={name}", f"--directory={d}", "--ioengine=psync", f"--numjobs={jobs}",
           "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--randrepeat=1",
           "--group_reporting=0", "--output-format=json", *opts]
    if verify_only:
        cmd.append("--verify_only=1")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    expect(p.returncode == 0, f"fio {name} exited {p.returncode}: {(p.stderr or p.stdout).strip()[-300:]}")
    expect("verify" not in p.stderr.lower(), f"fio {name}: {p.stderr.strip()[-300:]}")
    out = p.stdout[p.stdout.index("{"):]
    res = json.loads(out)
    got = res["jobs"]
    expect(len(got) == jobs, f"fio {name}: {len(got)} job results, expected {jobs}")
    for j in got:
        expect(j["error"] == 0, f"fio {name}: job error {j['error']} ({fsx.err_name(j['error'])})")
        if not verify_only:
            expect(j["write"]["io_bytes"] == size, f"fio {name}: wrote {j['write']['io_bytes']}, expected {size}")
        # Every byte written is read back and checked (crc32c per block).
        expect(j["read"]["io_bytes"] == size, f"fio {name}: verified {j['read']['io_bytes']} bytes, expected {size}")
    return res


def fio_jobs():
    for name, opts, size, jobs in FIO_JOBS:
        t = time.time()
        fio(name, opts, size, jobs)
        note(f"fio {name}: {jobs} x {size >> 20} MiB written and verified in {time.time() - t:.0f} s")


def fio_remount():
    fsx.umount(MNT)
    fsx.mount(DEV, MNT)
    for name, opts, size, jobs in FIO_JOBS:
        fio(name, opts, size, jobs, verify_only=True)
    # Space comes back.
    before = os.statvfs(MNT).f_bfree
    shutil.rmtree(os.path.join(MNT, "fio"))
    os.sync()
    freed = os.statvfs(MNT).f_bfree - before
    want = sum(size * jobs for _, _, size, jobs in FIO_JOBS) // fsx.BLOCK
    expect(freed >= want, f"deleting the fio files freed {freed} blocks, expected at least {want}")


# ---- the model -----------------------------------------------------------------------

NAMES = ["a", "b", "c", "d", "e", "f", "g", "h"]
MAX_SIZE = 4 * MIB
MAX_ENTRIES = 300


class Node:
    __slots__ = ("id", "dir", "entries", "data", "nlink", "parent")

    def __init__(self, nid, is_dir, parent=None):
        self.id = nid
        self.dir = is_dir
        self.entries = {} if is_dir else None
        self.data = None if is_dir else bytearray()
        self.nlink = 0
        self.parent = parent


class Model:
    def __init__(self, rng, root, seed):
        self.rng = rng
        self.root_path = root
        self.seed = seed
        self.next_id = 1
        self.root = Node(0, True)
        self.ops = 0
        self.counts = {}
        self.stream = 0

    def new(self, is_dir, parent=None):
        n = Node(self.next_id, is_dir, parent)
        self.next_id += 1
        return n

    # paths are tuples of names from the root
    def real(self, path):
        return os.path.join(self.root_path, *path)

    def lookup(self, path):
        n = self.root
        for name in path:
            if not n.dir or name not in n.entries:
                return None
            n = n.entries[name]
        return n

    def walk(self):
        """(path, node) of every entry below the root, and the root itself."""
        out = [((), self.root)]
        stack = [((), self.root)]
        while stack:
            p, n = stack.pop()
            for name, c in n.entries.items():
                out.append((p + (name,), c))
                if c.dir:
                    stack.append((p + (name,), c))
        return out

    def pick_name(self):
        if self.rng.random() < 0.02:
            return "L" * self.rng.randint(200, 255)
        return self.rng.choice(NAMES)

    # ---- operations: each predicts the outcome and compares ---------------------------

    def outcome(self, what, fn, want):
        """Runs FN; WANT is None (must succeed) or an errno name (must fail with it)."""
        try:
            ret = fn()
            got = None
        except OSError as e:
            ret = None
            got = fsx.err_name(e.errno)
        if got != want:
            raise Fail(f"op {self.ops} {what}: {got or 'success'}, expected {want or 'success'}")
        return ret

    def op_create(self, entries, dirs):
        dp, dn = self.rng.choice(dirs)
        name = self.pick_name()
        path = dp + (name,)
        want = "EEXIST" if name in dn.entries else None

        def go():
            os.close(os.open(self.real(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

        self.outcome(f"create {path}", go, want)
        if want is None:
            n = self.new(False)
            n.nlink = 1
            dn.entries[name] = n

    def op_mkdir(self, entries, dirs):
        dp, dn = self.rng.choice(dirs)
        if len(dp) >= 4:
            return
        name = self.pick_name()
        path = dp + (name,)
        want = "EEXIST" if name in dn.entries else None
        self.outcome(f"mkdir {path}", lambda: os.mkdir(self.real(path)), want)
        if want is None:
            dn.entries[name] = self.new(True, dn)

    def files(self, entries):
        return [(p, n) for p, n in entries if not n.dir]

    def op_write(self, entries, dirs):
        fl = self.files(entries)
        if not fl:
            return
        path, n = self.rng.choice(fl)
        r = self.rng.random()
        length = self.rng.randint(1, 4096) if r < 0.5 else self.rng.randint(1, 256 * 1024)
        if self.rng.random() < 0.3:
            off = len(n.data)
        else:
            off = self.rng.randint(0, MAX_SIZE - length)
        pos = self.rng.randrange(0, 64 * MIB)
        data = fsx.gen(self.seed, pos, length)

        def go():
            fd = os.open(self.real(path), os.O_WRONLY)
            try:
                done = 0
                while done < length:
                    done += os.pwrite(fd, data[done:], off + done)
            finally:
                os.close(fd)

        self.outcome(f"write {path} {off}+{length}", go, None)
        if len(n.data) < off:
            n.data.extend(bytes(off - len(n.data)))
        n.data[off:off + length] = data

    def op_truncate(self, entries, dirs):
        fl = self.files(entries)
        if not fl:
            return
        path, n = self.rng.choice(fl)
        size = self.rng.choice([0, self.rng.randint(0, MAX_SIZE), max(0, len(n.data) - self.rng.randint(1, 9000)),
                                len(n.data) + self.rng.randint(1, 70000)])
        size = min(size, MAX_SIZE)
        self.outcome(f"truncate {path} {size}", lambda: os.truncate(self.real(path), size), None)
        if size < len(n.data):
            del n.data[size:]
        else:
            n.data.extend(bytes(size - len(n.data)))

    def op_read(self, entries, dirs):
        fl = self.files(entries)
        if not fl:
            return
        path, n = self.rng.choice(fl)
        off = self.rng.randint(0, len(n.data) + 10)
        length = self.rng.randint(1, 128 * 1024)

        def go():
            fd = os.open(self.real(path), os.O_RDONLY)
            try:
                return os.pread(fd, length, off)
            finally:
                os.close(fd)

        got = self.outcome(f"read {path}", go, None)
        want = bytes(n.data[off:off + length])
        expect(got == want, f"op {self.ops} read {path} {off}+{length}: {len(got)} bytes differ from the model ({len(want)} bytes)")

    def op_unlink(self, entries, dirs):
        path, n = self.rng.choice(entries[1:]) if len(entries) > 1 else (None, None)
        if path is None:
            return
        want = "EISDIR" if n.dir else None
        self.outcome(f"unlink {path}", lambda: os.unlink(self.real(path)), want)
        if want is None:
            del self.lookup(path[:-1]).entries[path[-1]]
            n.nlink -= 1

    def op_rmdir(self, entries, dirs):
        path, n = self.rng.choice(entries[1:]) if len(entries) > 1 else (None, None)
        if path is None:
            return
        want = "ENOTDIR" if not n.dir else ("ENOTEMPTY" if n.entries else None)
        self.outcome(f"rmdir {path}", lambda: os.rmdir(self.real(path)), want)
        if want is None:
            del self.lookup(path[:-1]).entries[path[-1]]

    def op_link(self, entries, dirs):
        if len(entries) < 2:
            return
        src, sn = self.rng.choice(entries[1:])
        dp, dn = self.rng.choice(dirs)
        name = self.pick_name()
        dst = dp + (name,)
        want = "EEXIST" if name in dn.entries else ("EPERM" if sn.dir else None)
        self.outcome(f"link {src} {dst}", lambda: os.link(self.real(src), self.real(dst)), want)
        if want is None:
            dn.entries[name] = sn
            sn.nlink += 1

    def op_rename(self, entries, dirs):
        if len(entries) < 2:
            return
        src, sn = self.rng.choice(entries[1:])
        dp, dn = self.rng.choice(dirs)
        name = self.rng.choice([self.pick_name(), src[-1]])
        dst = dp + (name,)
        tn = dn.entries.get(name)
        sparent = src[:-1]
        # The order of the checks in the kernel's renameat2.
        if sn.dir and dp[:len(src)] == src:
            want = "EINVAL"  # into itself
        elif tn is not None and sparent[:len(dst)] == dst:
            want = "ENOTEMPTY"  # the target is an ancestor of the source
        elif tn is sn:
            want = "same"
        elif tn is not None and sn.dir and not tn.dir:
            want = "ENOTDIR"
        elif tn is not None and not sn.dir and tn.dir:
            want = "EISDIR"
        elif tn is not None and tn.dir and tn.entries:
            want = "ENOTEMPTY"
        else:
            want = None
        self.outcome(f"rename {src} {dst}", lambda: os.rename(self.real(src), self.real(dst)),
                     None if want == "same" else want)
        if want is None:
            del self.lookup(sparent).entries[src[-1]]
            if tn is not None and not tn.dir:
                tn.nlink -= 1
            dn.entries[name] = sn
            if sn.dir:
                sn.parent = dn

    def op_fsync(self, entries, dirs):
        path, n = self.rng.choice(entries)

        def go():
            fd = os.open(self.real(path), os.O_RDONLY | (os.O_DIRECTORY if n.dir else 0))
            try:
                (os.fsync if self.rng.random() < 0.5 else os.fdatasync)(fd)
            finally:
                os.close(fd)

        self.outcome(f"fsync {path}", go, None)

    OPS = [("create", 14), ("mkdir", 5), ("write", 30), ("truncate", 6), ("read", 10),
           ("unlink", 8), ("rmdir", 4), ("link", 6), ("rename", 12), ("fsync", 3)]

    def step(self):
        entries = self.walk()
        dirs = [(p, n) for p, n in entries if n.dir]
        ops = self.OPS
        if len(entries) > MAX_ENTRIES:
            ops = [(o, w * (4 if o in ("unlink", "rmdir") else 1)) for o, w in ops if o not in ("create", "mkdir", "link")]
        total = sum(w for _, w in ops)
        r = self.rng.randrange(total)
        for name, w in ops:
            if r < w:
                break
            r -= w
        self.ops += 1
        self.counts[name] = self.counts.get(name, 0) + 1
        getattr(self, "op_" + name)(entries, dirs)

    # ---- the whole-tree comparison ----------------------------------------------------

    def compare(self, when):
        inos = {}
        for path, n in self.walk():
            real = self.real(path)
            st = os.lstat(real)
            where = f"{when}, after op {self.ops}: {'/'.join(path) or '/'}"
            if n.dir:
                expect(stat.S_ISDIR(st.st_mode), f"{where}: not a directory")
                got = sorted(os.listdir(real))
                want = sorted(n.entries)
                expect(got == want, f"{where}: lists {got}, model {want}")
                subdirs = sum(1 for c in n.entries.values() if c.dir)
                expect(st.st_nlink == 2 + subdirs, f"{where}: nlink {st.st_nlink}, model {2 + subdirs}")
                if path:
                    parent = os.lstat(os.path.join(real, ".."))
                    expect(parent.st_ino == os.lstat(self.real(path[:-1])).st_ino, f"{where}: '..' is not the parent")
            else:
                expect(stat.S_ISREG(st.st_mode), f"{where}: not a regular file")
                expect(st.st_size == len(n.data), f"{where}: size {st.st_size}, model {len(n.data)}")
                expect(st.st_nlink == n.nlink, f"{where}: nlink {st.st_nlink}, model {n.nlink}")
                got = fsx.sha_range(real, 0, st.st_size)
                want = hashlib.sha256(n.data).hexdigest()
                expect(got == want, f"{where}: sha256 {got}, model {want}")
            seen = inos.setdefault(n.id, st.st_ino)
            expect(seen == st.st_ino, f"{where}: inode {st.st_ino}, the same model node had inode {seen}")
        expect(len(set(inos.values())) == len(inos), f"{when}: distinct model nodes share an inode")


def model_run(seconds, seed):
    root = os.path.join(MNT, "model")
    os.mkdir(root)
    rng = random.Random(seed)
    m = Model(rng, root, seed)
    t = time.time()
    checks = 0
    try:
        while time.time() - t < seconds:
            for _ in range(300):
                m.step()
                if time.time() - t >= seconds:
                    break
            checks += 1
            m.compare(f"check {checks}")
            if checks % 4 == 0:
                fsx.umount(MNT)
                fsx.mount(DEV, MNT)
                m.compare(f"check {checks} after remount")
        m.compare("end")
        fsx.umount(MNT)
        fsx.drop_caches()
        fsx.mount(DEV, MNT)
        m.compare("end, after remount")
    except Fail as e:
        raise Fail(f"seed {seed}: {e}")
    except OSError as e:
        raise Fail(f"seed {seed}, op {m.ops}: {type(e).__name__}: {e}")
    files = sum(1 for _, n in m.walk() if not n.dir)
    note(f"model: {m.ops} ops in {time.time() - t:.0f} s ({', '.join(f'{k} {v}' for k, v in sorted(m.counts.items()))}); "
         f"{checks} checks; {files} files at the end")


def main():
    fsx.init("stress", sys.argv)
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 120
    seed = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else random.SystemRandom().randrange(1 << 32)
    note(f"seed {seed} (replay with STRESS_SEED={seed}), model workload {seconds} s")
    t = time.time()
    fsx.load()
    if not case("mkfs-mount", lambda: (fsx.mkfs(DEV, "stress"), fsx.mount(DEV, MNT))):
        return
    if case("fio", fio_jobs):
        case("fio-remount", fio_remount)
    case("model", model_run, seconds, seed)
    case("bitmap-first-read", pstress.first_reads, MNT, 300)
    parallel = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else 60
    case("parallel", pstress.parallel, DEV, MNT, parallel, seed)
    case("umount", fsx.umount, MNT)
    note(f"run: {time.time() - t:.0f} s in the guest")


if __name__ == "__main__":
    main()
