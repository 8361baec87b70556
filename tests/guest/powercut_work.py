"""Shared by the crash-consistency suites (powercut, logwrites): the workload, its records
and their verification.

The workload mixes data and metadata. What it guarantees is recorded, each time only after
the fsync's that make it durable returned:
  F PATH SIZE SHA256 [XNAME XSHA256]
                       a write-once file: created, written (some with an xattr XNAME, a
                       value of up to 3000 bytes: in the inode or in an xattr block),
                       fsync'ed, its directory fsync'ed; from then on it must exist with
                       exactly this content (and this xattr)
  A PATH LEN SHA256    a growing file: appended to and fsync'ed; its first LEN bytes have
                       this sha256 (later, unsynced appends may or may not be there)
  D PATH               written just BEFORE the file is unlinked: from then on PATH may or
                       may not exist (nothing is checked)
Other churn is not recorded (only fsck judges it): small files created, renamed, truncated
and unlinked, directories made and removed, xattrs set and removed, in a per-boot directory
under c/.

Paths are relative to the mount point. The caller gives `commit(record)`, which makes the
record durable (powercut: a sector on the log disk written with O_DIRECT|O_DSYNC) or ties it
to a position in the write log (logwrites: a dm-log-writes mark).
"""

import errno
import hashlib
import mmap
import os
import random
import struct

import fsx

MIB = 1 << 20
DIRS = ["d0", "d1", "d2", "d3"]


def sha_file(path, length=None):
    h = hashlib.sha256()
    left = length
    with open(path, "rb") as f:
        while left is None or left > 0:
            buf = f.read(MIB if left is None else min(MIB, left))
            if not buf:
                break
            h.update(buf)
            if left is not None:
                left -= len(buf)
    return h.hexdigest(), (0 if left is None else left)


def layout(mnt):
    """The fixed directories, made durable (called right after mkfs)."""
    for d in DIRS + ["c", "g"]:
        os.mkdir(os.path.join(mnt, d))
    for d in DIRS + ["c", "g"]:
        fsx.fsync_path(os.path.join(mnt, d))
    fsx.fsync_path(mnt)


# ---- expectations ----------------------------------------------------------------------


def apply(state, rec):
    """Fold one record (a string) into STATE: path -> (kind, size, sha, (xname, xsha) or
    None)."""
    kind, path, *rest = rec.split()
    if kind in ("F", "A"):
        state[path] = (kind, int(rest[0]), rest[1], tuple(rest[2:4]) or None)
    elif kind == "D":
        state.pop(path, None)
    return state


def verify(mnt, state):
    """Every path in STATE as it must be; returns a list of problems."""
    problems = []
    for path, (kind, size, sha, xattr) in sorted(state.items()):
        p = os.path.join(mnt, path)
        try:
            st = os.stat(p)
        except OSError as e:
            problems.append(f"{path}: {os.strerror(e.errno)} (recorded {kind} {size})")
            continue
        if kind == "F" and st.st_size != size:
            problems.append(f"{path}: size {st.st_size}, fsync'ed with {size}")
            continue
        if kind == "A" and st.st_size < size:
            problems.append(f"{path}: size {st.st_size}, fsync'ed prefix {size}")
            continue
        got, short = sha_file(p, size)
        if short or got != sha:
            problems.append(f"{path}: sha256 of the first {size} bytes {got[:16]}..., fsync'ed {sha[:16]}...")
        if xattr:
            name, xsha = xattr
            try:
                got = hashlib.sha256(os.getxattr(p, name)).hexdigest()
            except OSError as e:
                problems.append(f"{path}: xattr {name}: {os.strerror(e.errno)}")
                continue
            if got != xsha:
                problems.append(f"{path}: xattr {name} sha256 {got[:16]}..., fsync'ed {xsha[:16]}...")
    return problems


# ---- the record log of the powercut suite ----------------------------------------------

REC_MAGIC = b"AEGISPC1"
SECTOR = 512


class RecordLog:
    """Records on a raw disk, one 512-byte sector each from sector 1: magic, index, length,
    text, and the sha256 of all that in the last 32 bytes. A torn or unwritten sector ends
    the log; the next record goes there. Written with O_DIRECT|O_DSYNC, so a record is on
    the disk when commit() returns."""

    def __init__(self, dev):
        self.dev = dev
        self.records = []
        with open(dev, "rb") as f:
            while True:
                f.seek((1 + len(self.records)) * SECTOR)
                rec = self._parse(f.read(SECTOR), len(self.records))
                if rec is None:
                    break
                self.records.append(rec)
        self.fd = os.open(dev, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)
        self.buf = mmap.mmap(-1, SECTOR)  # page aligned, as O_DIRECT wants

    @staticmethod
    def _parse(sec, index):
        if len(sec) != SECTOR or sec[:8] != REC_MAGIC:
            return None
        n, length = struct.unpack_from("<QI", sec, 8)
        if n != index or length > SECTOR - 52:
            return None
        if hashlib.sha256(sec[:SECTOR - 32]).digest() != sec[SECTOR - 32:]:
            return None
        return sec[20:20 + length].decode()

    def commit(self, text):
        data = text.encode()
        assert len(data) <= SECTOR - 52, text
        body = REC_MAGIC + struct.pack("<QI", len(self.records), len(data)) + data
        body += bytes(SECTOR - 32 - len(body))
        self.buf.seek(0)
        self.buf.write(body + hashlib.sha256(body).digest())
        n = os.pwrite(self.fd, self.buf, (1 + len(self.records)) * SECTOR)
        if n != SECTOR:
            raise OSError(f"short record write: {n}")
        self.records.append(text)


# ---- the workload ----------------------------------------------------------------------


class Workload:
    def __init__(self, mnt, rng, commit, tag, state, max_size=2 * MIB, cap=96 * MIB):
        self.mnt, self.rng, self.commit, self.tag = mnt, rng, commit, tag
        self.max_size, self.cap = max_size, cap
        # Recorded write-once files still alive, oldest first, and their total size.
        self.alive = [(p, s) for p, (k, s, _, _) in state.items() if k == "F"]
        self.total = sum(s for _, s in self.alive)
        self.n = 0
        self.fsyncs = 0
        self.churn_files, self.churn_dirs = [], []
        self.cdir = os.path.join("c", f"b{tag}")
        self.grow = None
        self.old = state

    def p(self, rel):
        return os.path.join(self.mnt, rel)

    def start(self):
        """Per-boot set-up: older grow files go (recorded D first), older churn trees are
        removed, a new churn directory and grow file are made."""
        for path, (kind, *_) in sorted(self.old.items()):
            if kind == "A":
                self.commit(f"D {path}")
                os.unlink(self.p(path))
        for name in sorted(os.listdir(self.p("c"))):
            self._rmtree(os.path.join("c", name))
        os.mkdir(self.p(self.cdir))
        self.churn_dirs.append(self.cdir)
        self.grow = os.path.join("g", f"grow-{self.tag}")
        self.grow_fd = os.open(self.p(self.grow), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.grow_sha = hashlib.sha256()
        self.grow_len = 0
        os.fsync(self.grow_fd)
        fsx.fsync_path(self.p("g"))
        self.commit(f"A {self.grow} 0 {self.grow_sha.hexdigest()}")

    def _rmtree(self, rel):
        for root, dirs, files in os.walk(self.p(rel), topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        os.rmdir(self.p(rel))

    def size(self):
        r = self.rng.random()
        if r < 0.15:
            return self.rng.randrange(0, 4097)
        if r < 0.45:
            return self.rng.randrange(0, 65537)
        return self.rng.randrange(0, self.max_size + 1)

    def xattr_value(self):
        """Small values fit in the inode; larger ones need an xattr block."""
        if self.rng.random() < 0.5:
            return self.rng.randbytes(self.rng.randrange(1, 120))
        return self.rng.randbytes(self.rng.randrange(120, 3001))

    def write_once(self):
        self.n += 1
        d = self.rng.choice(DIRS)
        rel = os.path.join(d, f"f-{self.tag}-{self.n}")
        size = self.size()
        data = self.rng.randbytes(size)
        xattr = ""
        fd = os.open(self.p(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            done = 0
            while done < size:
                done += os.write(fd, data[done:done + MIB])
            if self.rng.random() < 0.3:
                name, value = f"user.pc{self.n}", self.xattr_value()
                os.setxattr(fd, name, value)
                xattr = f" {name} {hashlib.sha256(value).hexdigest()}"
            os.fsync(fd)
        finally:
            os.close(fd)
        fsx.fsync_path(self.p(d))
        self.fsyncs += 1
        self.commit(f"F {rel} {size} {hashlib.sha256(data).hexdigest()}{xattr}")
        self.alive.append((rel, size))
        self.total += size
        while self.total > self.cap and len(self.alive) > 1:
            old, s = self.alive.pop(0)
            self.commit(f"D {old}")
            os.unlink(self.p(old))
            self.total -= s

    def append(self):
        if self.grow_len > 32 * MIB:
            return
        data = self.rng.randbytes(self.rng.randrange(1, 256 * 1024))
        done = 0
        while done < len(data):
            done += os.write(self.grow_fd, data[done:])
        os.fsync(self.grow_fd)
        self.grow_sha.update(data)
        self.grow_len += len(data)
        self.fsyncs += 1
        self.commit(f"A {self.grow} {self.grow_len} {self.grow_sha.hexdigest()}")

    def churn(self):
        r = self.rng
        op = r.randrange(8)
        if op <= 1 or not self.churn_files:
            d = r.choice(self.churn_dirs)
            self.n += 1
            rel = os.path.join(d, f"t{self.n}")
            with open(self.p(rel), "wb") as f:
                f.write(r.randbytes(r.randrange(0, 65536)))
            self.churn_files.append(rel)
        elif op == 2:
            i = r.randrange(len(self.churn_files))
            self.n += 1
            new = os.path.join(r.choice(self.churn_dirs), f"r{self.n}")
            os.rename(self.p(self.churn_files[i]), self.p(new))
            self.churn_files[i] = new
        elif op == 3:
            rel = self.churn_files.pop(r.randrange(len(self.churn_files)))
            os.unlink(self.p(rel))
        elif op == 4:
            rel = r.choice(self.churn_files)
            os.truncate(self.p(rel), r.randrange(0, 200000))
        elif op == 5:
            # Set or replace one of a few xattrs, or remove one, on a churn file or dir.
            rel = r.choice(self.churn_files + self.churn_dirs)
            name = f"user.c{r.randrange(3)}"
            try:
                if r.random() < 0.7:
                    os.setxattr(self.p(rel), name, self.xattr_value())
                else:
                    os.removexattr(self.p(rel), name)
            except OSError as e:
                # ENOSPC: the values no longer fit in the inode and one xattr block.
                if e.errno not in (errno.ENODATA, errno.ENOSPC):
                    raise
        elif op == 6:
            if len(self.churn_dirs) < 20:
                self.n += 1
                rel = os.path.join(r.choice(self.churn_dirs), f"s{self.n}")
                os.mkdir(self.p(rel))
                self.churn_dirs.append(rel)
        else:
            # rmdir of a directory without subdirectories (its files go first).
            leaves = [d for d in self.churn_dirs[1:]
                      if not any(o.startswith(d + "/") for o in self.churn_dirs)]
            if leaves:
                d = r.choice(leaves)
                for f in [f for f in self.churn_files if os.path.dirname(f) == d]:
                    os.unlink(self.p(f))
                    self.churn_files.remove(f)
                os.rmdir(self.p(d))
                self.churn_dirs.remove(d)
        if r.random() < 0.05:
            fsx.fsync_path(self.p(self.cdir))

    def step(self):
        r = self.rng.random()
        if r < 0.4:
            self.write_once()
        elif r < 0.6:
            self.append()
        else:
            self.churn()


def make_rng(seed):
    return random.Random(seed)
