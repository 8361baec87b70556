#!/usr/bin/env python3
"""In-guest checks shared by the AegisFS suites; every check prints its own TAP-like line.

  check.py data SUITE MANIFEST ROOT        verify files against a host-made manifest
  check.py names SUITE CASE DIR LIST       readdir of DIR must give exactly the NUL-separated
                                           names in LIST, all as regular files
  check.py getdents SUITE CASE DIR LIST BUFSIZE
                                           the same with "." and "..", read by getdents64
                                           with a small buffer
  check.py lookup SUITE CASE DIR LIST      every name in LIST looked up: distinct empty files
  check.py errno SUITE CASE ERRNO OP PATH [PATH2]
                                           OP on PATH must fail with exactly ERRNO
  check.py meta SUITE EXPECTED GOT         compare `stat -c` lines made on the host and in the
                                           guest, one case per attribute
  check.py mount DEV DIR [rw]              mount(2) aegisfs read-only (read-write with rw);
                                           prints "ok" or the errno name
  check.py ino PATH                        inode number of PATH from its directory entry

On the host:
  check.py manifest CASE TREE PATH OFF:LEN...
                                           print the manifest line for TREE/PATH whose data
                                           lies in the given extents (the rest is holes)
"""

import ctypes
import errno
import hashlib
import mmap
import os
import stat
import sys

CHUNK = 1 << 20


def report(suite, case, reason=None):
    if reason is None:
        print(f"ok {suite}/{case}", flush=True)
    else:
        print(f"not ok {suite}/{case}: {reason}", flush=True)


def err_name(num):
    return errno.errorcode.get(num, str(num))


def sha256_range(fd, offset, length):
    h = hashlib.sha256()
    while length > 0:
        buf = os.pread(fd, min(CHUNK, length), offset)
        if not buf:
            raise EOFError(f"short read at {offset}")
        h.update(buf)
        offset += len(buf)
        length -= len(buf)
    return h.hexdigest()


def first_nonzero(fd, offset, length):
    """Offset of the first non-zero byte in the range, or None when it is all zeros."""
    zero = bytes(CHUNK)
    while length > 0:
        want = min(CHUNK, length)
        buf = os.pread(fd, want, offset)
        if len(buf) != want:
            raise EOFError(f"short read at {offset}")
        if buf != zero[:want]:
            return offset + next(i for i, b in enumerate(buf) if b)
        offset += want
        length -= want
    return None


def check_file(root, fields):
    """One manifest line: `CASE PATH SIZE` followed by `data:OFF:LEN:SHA256` and
    `zero:OFF:LEN` items. Returns None when everything matches, else the first problem."""
    path = os.path.join(root, fields[1])
    size = int(fields[2])
    st = os.stat(path)
    if st.st_size != size:
        return f"size {st.st_size}, expected {size}"
    fd = os.open(path, os.O_RDONLY)
    try:
        for item in fields[3:]:
            kind, rest = item.split(":", 1)
            if kind == "data":
                off, length, want = rest.split(":")
                got = sha256_range(fd, int(off), int(length))
                if got != want:
                    return f"sha256 of bytes {off}+{length} is {got}, expected {want}"
            elif kind == "mmap":
                # Through page faults instead of read(2).
                with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
                    got = hashlib.sha256(m).hexdigest()
                if got != rest:
                    return f"sha256 through mmap is {got}, expected {rest}"
            elif kind == "zero":
                off, length = (int(x) for x in rest.split(":"))
                bad = first_nonzero(fd, off, length)
                if bad is not None:
                    return f"hole byte {bad} is not zero"
            else:
                return f"bad manifest item {item}"
        # Reading at or past the end must return nothing.
        tail = os.pread(fd, 4096, size)
        if tail:
            return f"read at EOF returned {len(tail)} bytes"
    finally:
        os.close(fd)
    return None


def cmd_data(suite, manifest, root):
    with open(manifest) as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            try:
                problem = check_file(root, fields)
            except (OSError, EOFError) as e:
                problem = f"{type(e).__name__}: {e}"
            report(suite, fields[0], problem)


# Holes up to this size are checked completely; longer ones at their start, middle and end.
HOLE_FULL = 1 << 30
HOLE_SAMPLE = 1 << 20


def cmd_manifest(case, tree, path, *extents):
    """EXTENTS are OFF:LEN data ranges; `probe:OFF:LEN` adds a range checked first (before
    the pages around it are cached by the sequential checks) and `mmap` a whole-file check
    through a mapping."""
    size = os.stat(os.path.join(tree, path)).st_size
    fd = os.open(os.path.join(tree, path), os.O_RDONLY)
    items = []
    for ext in extents:
        if ext.startswith("probe:"):
            off, length = (int(x) for x in ext[6:].split(":"))
            items.append(f"data:{off}:{length}:{sha256_range(fd, off, length)}")
        elif ext == "mmap":
            items.append(f"mmap:{sha256_range(fd, 0, size)}")
    extents = [e for e in extents if not e.startswith("probe:") and e != "mmap"]
    pos = 0

    def hole(start, end):
        if end - start <= HOLE_FULL:
            if end > start:
                items.append(f"zero:{start}:{end - start}")
            return
        middle = (start + end) // 2 // HOLE_SAMPLE * HOLE_SAMPLE
        for off in (start, middle, end - HOLE_SAMPLE):
            items.append(f"zero:{off}:{HOLE_SAMPLE}")

    for ext in extents:
        off, length = (int(x) for x in ext.split(":"))
        if off < pos or off + length > size:
            raise SystemExit(f"{path}: extents must be sorted, disjoint and inside the file")
        hole(pos, off)
        items.append(f"data:{off}:{length}:{sha256_range(fd, off, length)}")
        pos = off + length
    hole(pos, size)
    os.close(fd)
    print(case, path, size, *items)


def cmd_names(suite, case, directory, listfile):
    with open(listfile, "rb") as f:
        want = [n for n in f.read().split(b"\0") if n]
    try:
        entries = list(os.scandir(os.fsencode(directory)))
    except OSError as e:
        report(suite, case, f"scandir: {err_name(e.errno)}")
        return
    names = [e.name for e in entries]
    if len(names) != len(want):
        report(suite, case, f"{len(names)} entries, expected {len(want)}")
        return
    if sorted(names) != sorted(want):
        missing = sorted(set(want) - set(names))[:3]
        extra = sorted(set(names) - set(want))[:3]
        report(suite, case, f"names differ: missing {missing} extra {extra}")
        return
    # d_type from readdir, without a stat: every entry here is a regular file.
    wrong = [e.name for e in entries if not e.is_file(follow_symlinks=False)]
    if wrong:
        report(suite, case, f"{len(wrong)} entries without DT_REG, e.g. {wrong[0]!r}")
        return
    report(suite, case)


def cmd_lookup(suite, case, directory, listfile):
    """Every name in LIST resolves by lookup (lstat) to a distinct empty regular file."""
    with open(listfile, "rb") as f:
        want = [n for n in f.read().split(b"\0") if n]
    inodes = set()
    for name in want:
        try:
            st = os.lstat(os.path.join(os.fsencode(directory), name))
        except OSError as e:
            report(suite, case, f"lstat {name!r}: {err_name(e.errno)}")
            return
        if not stat.S_ISREG(st.st_mode) or st.st_size != 0:
            report(suite, case, f"{name!r}: mode {st.st_mode:o} size {st.st_size}")
            return
        inodes.add(st.st_ino)
    if len(inodes) != len(want):
        report(suite, case, f"{len(want)} names but {len(inodes)} distinct inodes")
    else:
        report(suite, case)


def getdents(directory, bufsize):
    """All (name, d_type) of DIR via raw getdents64 calls with a BUFSIZE-byte buffer, so that
    a small buffer makes the filesystem resume at (almost) every entry."""
    libc = ctypes.CDLL(None, use_errno=True)
    sys_getdents64 = 217  # x86_64
    buf = ctypes.create_string_buffer(bufsize)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    names = []
    calls = 0
    try:
        while True:
            n = libc.syscall(sys_getdents64, fd, buf, bufsize)
            calls += 1
            if n < 0:
                raise OSError(ctypes.get_errno(), "getdents64")
            if n == 0:
                return names, calls
            raw = buf.raw[:n]
            pos = 0
            while pos < n:
                reclen = int.from_bytes(raw[pos + 16:pos + 18], "little")
                name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0]
                names.append((name, raw[pos + 18]))
                pos += reclen
    finally:
        os.close(fd)


def cmd_getdents(suite, case, directory, listfile, bufsize):
    with open(listfile, "rb") as f:
        want = sorted([n for n in f.read().split(b"\0") if n] + [b".", b".."])
    try:
        entries, calls = getdents(directory, int(bufsize))
    except OSError as e:
        report(suite, case, f"getdents64: {err_name(e.errno)}")
        return
    names = [n for n, _ in entries]
    dt_dir, dt_reg = 4, 8
    wrong = [(n, t) for n, t in entries if t != (dt_dir if n in (b".", b"..") else dt_reg)]
    if sorted(names) != want:
        dup = len(names) - len(set(names))
        report(suite, case, f"{len(names)} names ({dup} repeated), expected {len(want)}")
    elif wrong:
        report(suite, case, f"{len(wrong)} entries with a wrong d_type, e.g. {wrong[0]}")
    elif calls < len(want) // 2:
        report(suite, case, f"only {calls} calls: the buffer did not force resuming")
    else:
        report(suite, case)


def run_op(op, path, path2):
    if op == "create":
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    elif op == "open-write":
        os.close(os.open(path, os.O_WRONLY))
    elif op == "truncate":
        os.truncate(path, 0)
    elif op == "utime":
        os.utime(path, None)
    elif op == "chmod":
        os.chmod(path, 0o600)
    elif op == "chown":
        os.chown(path, 1, 1)
    elif op == "mkdir":
        os.mkdir(path)
    elif op == "rmdir":
        os.rmdir(path)
    elif op == "unlink":
        os.unlink(path)
    elif op == "rename":
        os.rename(path, path2)
    elif op == "link":
        os.link(path, path2)
    elif op == "symlink":
        os.symlink("target", path)
    elif op == "mknod":
        os.mkfifo(path)
    elif op == "stat":
        os.stat(path)
    elif op == "lstat":
        os.lstat(path)
    elif op == "read":
        with open(path, "rb") as f:
            while f.read(CHUNK):
                pass
    elif op == "listdir":
        os.listdir(path)
    elif op == "readlink":
        os.readlink(path)
    else:
        raise SystemExit(f"unknown op {op}")


def cmd_errno(suite, case, want, op, path, path2=None):
    want_num = getattr(errno, want) if not want.isdigit() else int(want)
    try:
        run_op(op, path, path2)
    except OSError as e:
        if e.errno == want_num:
            report(suite, case)
        else:
            report(suite, case, f"{op} failed with {err_name(e.errno)}, expected {want}")
        return
    report(suite, case, f"{op} succeeded, expected {want}")


# Fields of the `stat -c` lines after the leading flags and the name. The flags say which
# optional attributes are comparable for that entry: `a` atime (the host updates atimes that
# are not in the future when mkfs reads them), `s` size (directory sizes are per filesystem).
META_CASES = [
    ("mode", [0]),
    ("owner", [1, 2]),
    ("size", [3]),
    ("nlink", [4]),
    ("atime", [5, 8]),
    ("mtime", [6, 9]),
    ("ctime", [7, 10]),
]


def cmd_meta(suite, expected, got):
    with open(expected) as f:
        want = [line.rstrip("\n").split("|") for line in f if line.strip()]
    with open(got) as f:
        have = [line.rstrip("\n").split("|") for line in f if line.strip()]
    have_by_name = {fields[0]: fields[1:] for fields in have}
    for case, idx in META_CASES:
        problems = []
        for fields in want:
            flag, name, values = fields[0], fields[1], fields[2:]
            if (case == "atime" and "a" not in flag) or (case == "size" and "s" not in flag):
                continue
            g = have_by_name.get(name)
            if g is None:
                problems.append(f"{name}: no stat output")
                continue
            w = [values[i] for i in idx]
            h = [g[i] for i in idx]
            if w != h:
                problems.append(f"{name}: {' '.join(h)}, expected {' '.join(w)}")
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            report(suite, case, problems[0] + more)
        else:
            report(suite, case)


def cmd_mount(dev, directory, mode="ro"):
    libc = ctypes.CDLL(None, use_errno=True)
    flags = 1 if mode == "ro" else 0  # MS_RDONLY
    rc = libc.mount(dev.encode(), directory.encode(), b"aegisfs", flags, None)
    print("ok" if rc == 0 else err_name(ctypes.get_errno()))


def cmd_ino(path):
    """The inode number from readdir (d_ino): no read of the inode itself."""
    parent, name = os.path.split(path)
    print(next(e.inode() for e in os.scandir(parent) if e.name == name))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "data":
        cmd_data(*args)
    elif cmd == "manifest":
        cmd_manifest(*args)
    elif cmd == "lookup":
        cmd_lookup(*args)
    elif cmd == "getdents":
        cmd_getdents(*args)
    elif cmd == "names":
        cmd_names(*args)
    elif cmd == "errno":
        cmd_errno(*args)
    elif cmd == "meta":
        cmd_meta(*args)
    elif cmd == "ino":
        cmd_ino(*args)
    elif cmd == "mount":
        cmd_mount(*args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
