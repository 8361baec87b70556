"""Parallel stress for tests/guest/stress.py (case `parallel`): processes that share one
filesystem for SECONDS, each with an exact model of what it owns, and a final check of
the whole tree against the union of the models after a remount.

- WORKERS workers, each owning its directories par/wN/d0..d2 and the names starting with
  "wN-" in the shared directories par/s0..s3 (contended by everyone): create with data,
  pwrite, append, truncate, rename across its directories (over an existing file of its
  own too), hard link, unlink, mkdir/rmdir/rename of subdirectories, fsync/fdatasync, and
  a full read of one of its files compared with the model (any mismatch fails at once).
  Every call's outcome is predicted: success, or EROFS while the filesystem is read-only;
  any other error fails the worker.
- a syncer: sync, syncfs, fsync of directories, at random moments;
- a remounter: `mount -o remount,ro` every 1 to 3 s and read-write again after a moment,
  plus drop_caches now and then, so that the workers reread from disk. A remount is
  refused (EBUSY, as on ext4) while any file is open for writing, so during each attempt
  the workers only rename, link, unlink, make and remove directories, truncate and read,
  racing with it;
- a reader: reads files of every worker while they change (results not checked: the
  files change under it; the kernel must just stay sane).
At the end every worker writes its model; the filesystem is remounted and every path
under par/ must be exactly in a model (same content, same link count), and every model
entry on disk.
"""

import errno
import hashlib
import json
import os
import random
import subprocess
import time
import traceback

import fsx

WORKERS = 6
SHARED = 4
MAX_FILE = 192 * 1024
QUIET = "/tmp/pstress-quiet"


class Worker:
    def __init__(self, root, w, seed):
        self.root, self.w = root, w
        self.rng = random.Random(seed * 1000 + w)
        self.own = [os.path.join(root, f"w{w}", f"d{i}") for i in range(3)]
        self.shared = [os.path.join(root, f"s{i}") for i in range(SHARED)]
        self.names = {}  # path -> file id
        self.data = {}  # file id -> bytearray
        self.subdirs = set()
        self.next_id = 0
        self.ops = self.erofs = 0
        self.current = None  # the file the step picked, for a failure's message

    def new_name(self):
        d = self.rng.choice(self.own + self.shared + sorted(self.subdirs))
        return os.path.join(d, f"w{self.w}-{self.rng.randrange(60)}")

    def payload(self, n):
        return self.rng.randbytes(n) if self.rng.random() < 0.3 else bytes([self.rng.randrange(256)]) * n

    def pick(self):
        return self.rng.choice(sorted(self.names)) if self.names else None

    def step(self):
        r = self.rng.random()
        p = self.current = self.pick()
        if os.path.exists(QUIET) and p is not None:
            # No descriptor open for writing: only calls that hold write access for their
            # own duration, so that a read-only remount can win the race against them.
            r = self.rng.choice([0.35, 0.45, 0.52, 0.60, 0.70, 0.80])
        if r < 0.18 or p is None:
            self.create(self.new_name())
        elif r < 0.30:
            self.pwrite(p)
        elif r < 0.38:
            self.truncate(p)
        elif r < 0.50:
            self.rename(p, self.new_name())
        elif r < 0.56:
            self.link(p, self.new_name())
        elif r < 0.66:
            self.unlink(p)
        elif r < 0.74:
            self.subdir()
        elif r < 0.90:
            self.verify(p)
        else:
            self.sync_one(p)
        self.ops += 1

    def create(self, path):
        if path in self.names:
            return
        data = self.payload(self.rng.randrange(MAX_FILE))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        fid = self.next_id
        self.next_id += 1
        self.names[path] = fid
        self.data[fid] = bytearray()
        try:
            os.write(fd, data)
            self.data[fid][:] = data
            if self.rng.random() < 0.2:
                os.fsync(fd)
        finally:
            os.close(fd)

    def pwrite(self, path):
        fid = self.names[path]
        cur = self.data[fid]
        off = self.rng.randrange(len(cur) + 4096) if self.rng.random() < 0.7 else len(cur)
        data = self.payload(self.rng.randrange(1, 64 * 1024))
        if off + len(data) > MAX_FILE:
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, off)
        finally:
            os.close(fd)
        if off > len(cur):
            cur.extend(bytes(off - len(cur)))
        cur[off:off + len(data)] = data

    def truncate(self, path):
        cur = self.data[self.names[path]]
        size = self.rng.choice([0, self.rng.randrange(MAX_FILE), len(cur) // 2])
        os.truncate(path, size)
        if size < len(cur):
            del cur[size:]
        else:
            cur.extend(bytes(size - len(cur)))

    def rename(self, src, dst):
        # Two names of one inode: rename does nothing at all (POSIX), not worth a case.
        if self.names.get(dst) == self.names[src]:
            return
        os.rename(src, dst)
        self.names[dst] = self.names.pop(src)
        self.drop_unreferenced()

    def link(self, src, dst):
        if dst in self.names:
            return
        os.link(src, dst)
        self.names[dst] = self.names[src]

    def unlink(self, path):
        os.unlink(path)
        del self.names[path]
        self.drop_unreferenced()

    def drop_unreferenced(self):
        live = set(self.names.values())
        for fid in [f for f in self.data if f not in live]:
            del self.data[fid]

    def subdir(self):
        if self.subdirs and self.rng.random() < 0.5:
            d = self.rng.choice(sorted(self.subdirs))
            if any(os.path.dirname(p) == d for p in self.names):
                # Move it, with its files, to another of its own directories.
                new = os.path.join(self.rng.choice(self.own), f"sub{self.rng.randrange(1000)}")
                if new in self.subdirs:
                    return
                os.rename(d, new)
                self.subdirs.discard(d)
                self.subdirs.add(new)
                self.names = {(os.path.join(new, os.path.basename(p)) if os.path.dirname(p) == d else p): f
                              for p, f in self.names.items()}
            else:
                os.rmdir(d)
                self.subdirs.discard(d)
        else:
            d = os.path.join(self.rng.choice(self.own), f"sub{self.rng.randrange(1000)}")
            if d in self.subdirs:
                return
            os.mkdir(d)
            self.subdirs.add(d)

    def verify(self, path):
        with open(path, "rb") as f:
            got = f.read()
        want = self.data[self.names[path]]
        if got != want:
            raise fsx.Fail(f"worker {self.w}: {path}: {len(got)} bytes read, model has {len(want)}"
                           f" (first difference at {next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))})")

    def sync_one(self, path):
        fd = os.open(path, os.O_WRONLY)
        try:
            (os.fsync if self.rng.random() < 0.5 else os.fdatasync)(fd)
        finally:
            os.close(fd)

    def model(self):
        return {"files": {p: hashlib.sha256(self.data[f]).hexdigest() for p, f in self.names.items()},
                "nlink": {p: sum(1 for g in self.names.values() if g == f) for p, f in self.names.items()},
                "dirs": sorted(self.subdirs)}


def run_worker(root, w, seed, deadline, out):
    wk = Worker(root, w, seed)
    status = "ok"
    try:
        for d in wk.own:
            os.makedirs(d, exist_ok=True)
        while time.time() < deadline:
            try:
                wk.step()
            except OSError as e:
                # Read-only for a moment: nothing happened, as the model assumes.
                if e.errno != errno.EROFS:
                    raise
                wk.erofs += 1
                time.sleep(0.02)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        # Calls like write and fsync name no file: say which call and which file.
        here = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
        where = f" (in {here[-1].name}, pstress.py:{here[-1].lineno}, picked {wk.current})" if here else ""
        status = f"{type(e).__name__}: {e}{where}"
    with open(out, "w") as f:
        json.dump({"status": status, "ops": wk.ops, "erofs": wk.erofs, **wk.model()}, f)


def run_syncer(mnt, seed, deadline):
    rng = random.Random(seed ^ 0x5A5A)
    while time.time() < deadline:
        time.sleep(rng.uniform(0.05, 0.5))
        choice = rng.randrange(3)
        try:
            if choice == 0:
                os.sync()
            else:
                fd = os.open(mnt if choice == 1 else os.path.join(mnt, f"s{rng.randrange(SHARED)}"),
                             os.O_RDONLY | os.O_DIRECTORY)
                try:
                    fsx.syncfs(fd) if choice == 1 else os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError:
            pass


def run_reader(root, seed, deadline):
    rng = random.Random(seed ^ 0xA5A5)
    while time.time() < deadline:
        for d, _, files in os.walk(root):
            for name in files:
                if rng.random() < 0.2:
                    try:
                        with open(os.path.join(d, name), "rb") as f:
                            f.read()
                    except OSError:
                        pass
            if time.time() >= deadline:
                return


def remounter(mnt, seed, deadline):
    """Runs in the parent: returns (read-only windows, EBUSY refusals). A remount is
    refused while a file is open for writing, so for each attempt the workers are asked
    (QUIET) to do only namespace operations, truncates and reads, which race with it."""
    rng = random.Random(seed ^ 0x33)
    windows = busy = 0
    while time.time() < deadline - 2:
        time.sleep(rng.uniform(1, 3))
        open(QUIET, "w").close()
        try:
            for _ in range(20):
                p = subprocess.run(["mount", "-o", "remount,ro", mnt], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
                if p.returncode == 0:
                    windows += 1
                    time.sleep(rng.uniform(0.2, 0.8))
                    fsx.run("mount", "-o", "remount,rw", mnt)
                    break
                fsx.expect("busy" in p.stdout.lower(), f"remount,ro failed: {p.stdout.strip()}")
                busy += 1
        finally:
            os.unlink(QUIET)
        if rng.random() < 0.3:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3")
    return windows, busy


def check_tree(root, models):
    want_files, want_nlink, want_dirs = {}, {}, set()
    for w, m in enumerate(models):
        want_files.update(m["files"])
        want_nlink.update(m["nlink"])
        want_dirs.update(m["dirs"])
        want_dirs.update(os.path.join(root, f"w{w}", f"d{i}") for i in range(3))
        want_dirs.add(os.path.join(root, f"w{w}"))
    want_dirs.update(os.path.join(root, f"s{i}") for i in range(SHARED))
    got_files, got_dirs = {}, set()
    for d, dirs, files in os.walk(root):
        got_dirs.update(os.path.join(d, x) for x in dirs)
        for name in files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            fsx.expect(st.st_nlink == want_nlink.get(p, -1),
                       f"{p}: {st.st_nlink} links, model {want_nlink.get(p, 'no such file')}")
            with open(p, "rb") as f:
                got_files[p] = hashlib.sha256(f.read()).hexdigest()
    fsx.expect(got_dirs == want_dirs, f"directories: extra {sorted(got_dirs - want_dirs)[:5]}, missing {sorted(want_dirs - got_dirs)[:5]}")
    extra = sorted(set(got_files) - set(want_files))
    missing = sorted(set(want_files) - set(got_files))
    fsx.expect(not extra and not missing, f"files: extra {extra[:5]}, missing {missing[:5]}")
    bad = [p for p in want_files if got_files[p] != want_files[p]]
    fsx.expect(not bad, f"{len(bad)} files differ from the model: {bad[:5]}")
    return len(got_files), len(got_dirs)


def parallel(dev, mnt, seconds, seed):
    root = os.path.join(mnt, "par")
    os.makedirs(root)
    for i in range(SHARED):
        os.mkdir(os.path.join(root, f"s{i}"))
    deadline = time.time() + seconds
    outs = [f"/tmp/pstress-{w}.json" for w in range(WORKERS)]
    pids = []
    for w in range(WORKERS):
        pids.append(fsx.child(run_worker, root, w, seed, deadline, outs[w]))
    pids.append(fsx.child(run_syncer, mnt, seed, deadline))
    pids.append(fsx.child(run_reader, root, seed, deadline))
    try:
        windows, busy = remounter(mnt, seed, deadline)
    finally:
        for pid in pids:
            os.waitpid(pid, 0)
    models = []
    for out in outs:
        with open(out) as f:
            models.append(json.load(f))
    for w, m in enumerate(models):
        fsx.expect(m["status"] == "ok", f"worker {w} (after {m['ops']} operations): {m['status']}")
    fsx.umount(mnt)
    fsx.mount(dev, mnt)
    files, dirs = check_tree(root, models)
    fsx.note(f"parallel: {sum(m['ops'] for m in models)} operations by {WORKERS} workers in {seconds} s, "
             f"{sum(m['erofs'] for m in models)} EROFS during {windows} read-only windows "
             f"({busy} remounts refused busy); final tree {files} files, {dirs} directories = model")


FIRST_READ_WRITERS = 8


def first_read_writer(fd, gate, release):
    """Waits at GATE until the parent closes RELEASE, then allocates blocks: a write to
    FD."""
    os.close(release)
    os.read(gate, 1)
    os.write(fd, b"b" * 8192)


def first_reads(mnt, rounds):
    """The first use of a bitmap after it was read again from the disk, by many writers at
    once: each round checkpoints everything (read-only remount), drops the caches, and
    lets FIRST_READ_WRITERS tasks allocate blocks for files of one directory (so in one
    group) at the same moment. The first reader checks the bitmap against the checksum in
    the group descriptor; a writer that changed both meanwhile must not make it see a
    mismatch (it did: a descriptor read before the bitmap was compared with a bitmap
    changed since)."""
    root = os.path.join(mnt, "first-read")
    os.mkdir(root)
    files = [os.path.join(root, f"f{c}") for c in range(FIRST_READ_WRITERS)]
    for rnd in range(rounds):
        for f in files:
            open(f, "w").close()
        fsx.remount_flags(mnt, fsx.MS_RDONLY)
        fsx.remount_flags(mnt, 0)
        fsx.drop_caches()
        gate, release = os.pipe()
        pids = []
        for f in files:
            fd = os.open(f, os.O_WRONLY)
            pids.append(fsx.child(first_read_writer, fd, gate, release))
            os.close(fd)
        os.close(gate)
        os.close(release)
        failed = sum(os.waitpid(pid, 0)[1] != 0 for pid in pids)
        fsx.expect(failed == 0, f"round {rnd}: {failed} of {FIRST_READ_WRITERS} writers failed")
        # Committed first: a commit in flight holds the files it writes, and the
        # read-only remount would be refused (EBUSY) until it ended.
        os.sync()
        for f in files:
            os.unlink(f)
