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
  check.py seek SUITE SEGMENTS ROOT        SEEK_DATA/SEEK_HOLE walks of the files in SEGMENTS
                                           must give exactly their data segments, and ENXIO
                                           where POSIX says so
  check.py fiemap SUITE SEGMENTS ROOT [DEV]
                                           FS_IOC_FIEMAP extents must cover exactly the data
                                           segments; with DEV (the device, for its group
                                           layout) those of files/ must be exactly where
                                           mkfs -d writes a file in one piece
  check.py unwritten SUITE CASE PATH       every block of PATH is UNWRITTEN: no SEEK_DATA,
                                           FIEMAP extents all flagged UNWRITTEN
  check.py xattrs-check SUITE CASE EXPECTED ROOT DIR
                                           the extended attributes under ROOT/DIR (POSIX
                                           ACLs included) must be exactly those in EXPECTED
  check.py access SUITE CASE UID PATH WANT opening PATH for reading as UID (gid UID, no
                                           supplementary groups) gives WANT: ok or an errno

On the host:
  check.py manifest CASE TREE PATH OFF:LEN...
                                           print the manifest line for TREE/PATH whose data
                                           lies in the given extents (the rest is holes)
  check.py segments TREE PATH...           print `PATH SIZE START:END...` lines: the data
                                           segments of each file as mkfs -d stores them
                                           (host SEEK_DATA ranges widened to 4 KiB blocks)
  check.py xattrs ROOT DIR                 print `PATH NAME HEX-VALUE` for every extended
                                           attribute of DIR and everything under it
                                           (symlinks not followed), sorted
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
    elif op == "seek-data":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.lseek(fd, 0, os.SEEK_DATA)
        finally:
            os.close(fd)
    elif op == "fiemap":
        fd = os.open(path, os.O_RDONLY)
        try:
            fiemap(fd)
        finally:
            os.close(fd)
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


BLOCK = 4096


def cmd_segments(tree, *paths):
    for path in paths:
        full = os.path.join(tree, path)
        size = os.stat(full).st_size
        fd = os.open(full, os.O_RDONLY)
        blocks = []
        pos = 0
        try:
            while pos < size:
                try:
                    start = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError as e:
                    if e.errno != errno.ENXIO:
                        raise
                    break
                end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
                first, last = start // BLOCK, -(-end // BLOCK)
                if blocks and blocks[-1][1] >= first:
                    blocks[-1][1] = max(blocks[-1][1], last)
                else:
                    blocks.append([first, last])
                pos = end
        finally:
            os.close(fd)
        segs = [f"{a * BLOCK}:{min(b * BLOCK, size)}" for a, b in blocks]
        print(path, size, *segs)


def xattr_lines(root, directory):
    """`PATH NAME HEX` lines of every xattr under root/directory (sorted, symlinks not
    followed); an ACL reads back in the VFS xattr form on either side."""
    paths = [directory]
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, directory)):
        rel = os.path.relpath(dirpath, root)
        paths += [os.path.join(rel, n) for n in dirnames + filenames]
    lines = []
    for rel in sorted(set(paths)):
        full = os.path.join(root, rel)
        for name in os.listxattr(full, follow_symlinks=False):
            value = os.getxattr(full, name, follow_symlinks=False)
            lines.append(f"{rel} {name} {value.hex() or '-'}")
    return sorted(lines)


def cmd_xattrs(root, directory):
    for line in xattr_lines(root, directory):
        print(line)


def cmd_xattrs_check(suite, case, expected, root, directory):
    try:
        with open(expected) as f:
            want = sorted(line.rstrip("\n") for line in f if line.strip())
        got = xattr_lines(root, directory)
    except OSError as e:
        report(suite, case, f"{type(e).__name__}: {e}")
        return
    if got == want:
        report(suite, case)
        return
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))

    def short(line):
        return line[:120] + ("..." if len(line) > 120 else "")

    report(
        suite,
        case,
        f"{len(got)} attributes, {len(want)} expected; first missing: "
        f"{short(missing[0]) if missing else '-'}; first unexpected: "
        f"{short(extra[0]) if extra else '-'}",
    )


def cmd_access(suite, case, uid, path, want):
    uid = int(uid)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.close(os.open(path, os.O_RDONLY))
        except OSError as e:
            code = e.errno
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    got = "ok" if code == 0 else err_name(code)
    report(suite, case, None if got == want else f"open as uid {uid} gave {got}, expected {want}")


def read_segments(path):
    with open(path) as f:
        for line in f:
            fields = line.split()
            if fields:
                segs = [tuple(int(x) for x in s.split(":")) for s in fields[2:]]
                yield fields[0], int(fields[1]), segs


def seek(fd, offset, whence):
    """The new offset, or the errno name."""
    try:
        return os.lseek(fd, offset, whence)
    except OSError as e:
        return err_name(e.errno)


def seek_problem(fd, size, segs):
    got = []
    pos = 0
    while True:
        start = seek(fd, pos, os.SEEK_DATA)
        if start == "ENXIO":
            break
        if not isinstance(start, int) or start < pos or start >= size:
            return f"SEEK_DATA from {pos} gave {start}"
        end = seek(fd, start, os.SEEK_HOLE)
        if not isinstance(end, int) or end <= start or end > size:
            return f"SEEK_HOLE from {start} gave {end}"
        got.append((start, end))
        pos = end
        if pos >= size:
            break
    if got != segs:
        return f"segments {got[:4]}{'...' if len(got) > 4 else ''} ({len(got)}), expected {segs[:4]} ({len(segs)})"
    # Offsets inside data and holes: SEEK_DATA in data and SEEK_HOLE in a hole stay put.
    holes = []
    prev = 0
    for a, b in segs:
        if a > prev:
            holes.append((prev, a))
        prev = b
    if prev < size:
        holes.append((prev, size))
    for a, b in segs:
        for off in [o for o in sorted({a, a + 1, (a + b) // 2, b - 1}) if a <= o < b]:
            if seek(fd, off, os.SEEK_DATA) != off:
                return f"SEEK_DATA from {off} (data) gave {seek(fd, off, os.SEEK_DATA)}"
            if seek(fd, off, os.SEEK_HOLE) != b:
                return f"SEEK_HOLE from {off} (data up to {b}) gave {seek(fd, off, os.SEEK_HOLE)}"
    for a, b in holes:
        nxt = next((s for s, _ in segs if s >= b), "ENXIO")
        for off in [o for o in sorted({a, a + 1, (a + b) // 2, b - 1}) if a <= o < b]:
            if seek(fd, off, os.SEEK_HOLE) != off:
                return f"SEEK_HOLE from {off} (hole) gave {seek(fd, off, os.SEEK_HOLE)}"
            if seek(fd, off, os.SEEK_DATA) != nxt:
                return f"SEEK_DATA from {off} (hole up to {b}) gave {seek(fd, off, os.SEEK_DATA)}, expected {nxt}"
    # At and past EOF both fail with ENXIO (the virtual hole at EOF is only reached from
    # inside the file); so does a negative offset for SEEK_DATA.
    for off in (size, size + 1, size + (1 << 40)):
        for whence, name in ((os.SEEK_DATA, "SEEK_DATA"), (os.SEEK_HOLE, "SEEK_HOLE")):
            if seek(fd, off, whence) != "ENXIO":
                return f"{name} from {off} (EOF {size}) gave {seek(fd, off, whence)}, expected ENXIO"
    if seek(fd, -1, os.SEEK_DATA) != "ENXIO":
        return f"SEEK_DATA from -1 gave {seek(fd, -1, os.SEEK_DATA)}"
    # A failed seek leaves the position alone; a successful one moves it.
    os.lseek(fd, 7, os.SEEK_SET)
    seek(fd, size, os.SEEK_DATA)
    if os.lseek(fd, 0, os.SEEK_CUR) != 7:
        return "a failed SEEK_DATA moved the file position"
    if size and os.lseek(fd, 0, os.SEEK_HOLE) != os.lseek(fd, 0, os.SEEK_CUR):
        return "SEEK_HOLE did not set the file position"
    # The other whences still work (SEEK_END from the size).
    if size and os.lseek(fd, -1, os.SEEK_END) != size - 1:
        return "SEEK_END broken"
    return None


def cmd_seek(suite, segments, root):
    for path, size, segs in read_segments(segments):
        case = "seek-" + path.replace("/", "-")
        try:
            fd = os.open(os.path.join(root, path), os.O_RDONLY)
            try:
                report(suite, case, seek_problem(fd, size, segs))
            finally:
                os.close(fd)
        except OSError as e:
            report(suite, case, f"{type(e).__name__}: {e}")


FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_FLAG_XATTR = 0x2
FIEMAP_FLAG_CACHE = 0x4
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_NOT_ALIGNED = 0x100
FIEMAP_EXTENT_DATA_INLINE = 0x200
FIEMAP_EXTENT_UNWRITTEN = 0x800


def fiemap(fd, start=0, length=(1 << 64) - 1, flags=FIEMAP_FLAG_SYNC, count=4096):
    """(logical, physical, length, flags) of the extents FS_IOC_FIEMAP reports."""
    import fcntl
    import struct
    head = struct.pack("=QQIII4x", start, length, flags, 0, count)
    buf = bytearray(head + bytes(56 * count))
    fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
    mapped = struct.unpack_from("=I", buf, 20)[0]
    out = []
    for i in range(mapped):
        lo, ph, ln, _, _, fl = struct.unpack_from("=QQQQQI", buf, 32 + 56 * i)
        out.append((lo, ph, ln, fl))
    return out


def group_layout(dev):
    """(first_group_block, metadata blocks at the start of each group) from the
    superblock of DEV (docs/format.md)."""
    import struct
    with open(dev, "rb") as f:
        sb = f.read(2048)[1024:]
    first_group, per_group, inodes_per_group = struct.unpack_from("<QII", sb, 0x48)
    inode_size = struct.unpack_from("<H", sb, 0x5C)[0]
    return first_group, per_group, 2 + inodes_per_group * inode_size // BLOCK


def indirect_blocks_before(lblk):
    """Indirect blocks that mkfs -d writes just before data block LBLK: the new blocks of
    the block-map path of LBLK (the root and the inner levels start at the first block of
    their range, a new leaf every 511 blocks)."""
    p = 511
    if lblk < 12:
        return 0
    if lblk < 12 + p:
        return 1 if lblk == 12 else 0
    if lblk < 12 + p + p * p:
        r = lblk - 12 - p
        return 2 if r == 0 else (1 if r % p == 0 else 0)
    r = lblk - 12 - p - p * p
    return 3 if r == 0 else (2 if r % (p * p) == 0 else (1 if r % p == 0 else 0))


def contiguous_layout(layout, first_phys, nblocks):
    """The extents (logical, disk block, count) of a file of NBLOCKS blocks that mkfs -d
    wrote in one piece from disk block FIRST_PHYS: data in logical order, each indirect
    block just before the first data block it maps, the group metadata (bitmaps and inode
    table at each group start) skipped."""
    first_group, per_group, meta = layout
    phys = first_phys - 1
    out = []

    def alloc(p):
        p += 1
        while (p - first_group) % per_group < meta:
            p += 1
        return p

    for lblk in range(nblocks):
        for _ in range(indirect_blocks_before(lblk)):
            phys = alloc(phys)
        phys = alloc(phys)
        if out and out[-1][0] + out[-1][2] == lblk and out[-1][1] + out[-1][2] == phys:
            out[-1][2] += 1
        else:
            out.append([lblk, phys, 1])
    return [tuple(e) for e in out]


def fiemap_problem(fd, path, size, segs, layout):
    ext = fiemap(fd)
    if not segs:
        return f"{len(ext)} extents for a file without data" if ext else None
    blocks = [(a, -(-b // BLOCK) * BLOCK) for a, b in segs]
    merged = []
    for lo, ph, ln, fl in ext:
        if fl & ~FIEMAP_EXTENT_LAST:
            return f"extent at {lo} has flags {fl:#x}"
        if lo % BLOCK or ph % BLOCK or ln % BLOCK or not ln:
            return f"extent {lo}+{ln} at {ph} is not in whole blocks"
        if merged and merged[-1][1] == lo:
            merged[-1][1] = lo + ln
        elif merged and merged[-1][1] > lo:
            return f"extent at {lo} overlaps the one before"
        else:
            merged.append([lo, lo + ln])
    if [tuple(m) for m in merged] != blocks:
        return f"extents cover {merged[:4]} ({len(merged)}), expected {blocks[:4]} ({len(blocks)})"
    if [fl & FIEMAP_EXTENT_LAST for *_, fl in ext] != [0] * (len(ext) - 1) + [FIEMAP_EXTENT_LAST]:
        return "FIEMAP_EXTENT_LAST is not on exactly the last extent"
    # Each reported extent is a maximal contiguous run: the next one does not continue it.
    for (lo, ph, ln, _), (lo2, ph2, _, _) in zip(ext, ext[1:]):
        if lo + ln == lo2 and ph + ln == ph2:
            return f"extents at {lo} and {lo2} are contiguous but not merged"
    if path.startswith("files/") and layout is not None:
        want = contiguous_layout(layout, ext[0][1] // BLOCK, blocks[0][1] // BLOCK)
        got = [(lo // BLOCK, ph // BLOCK, ln // BLOCK) for lo, ph, ln, _ in ext]
        if got != want:
            diff = next(i for i, (g, w) in enumerate(zip(got + [None], want + [None])) if g != w)
            return (f"{len(got)} extents, expected {len(want)} for a contiguously written file; "
                    f"extent {diff} (logical block, disk block, blocks) is {got[diff:diff + 1]}, expected {want[diff:diff + 1]}")
    # A range in the middle: only the extents that overlap it, the first one covering its
    # start when that is data.
    a, b = blocks[len(blocks) // 2]
    want = [e for e in ext if e[0] < b and e[0] + e[2] > a]
    got = fiemap(fd, a, b - a)
    if got != want:
        return f"FIEMAP of {a}+{b - a} gave {got[:3]} ({len(got)}), expected {want[:3]} ({len(want)})"
    # Asking for at most one extent returns the first one.
    if fiemap(fd, count=1) != ext[:1]:
        return "FIEMAP with room for one extent did not return the first"
    # Unsupported flags are refused (FIEMAP_FLAG_CACHE preloads ext4's extent cache).
    try:
        fiemap(fd, flags=FIEMAP_FLAG_CACHE)
        return "FIEMAP_FLAG_CACHE accepted"
    except OSError as e:
        if e.errno != errno.EBADR:
            return f"FIEMAP_FLAG_CACHE failed with {err_name(e.errno)}, expected EBADR"
    return None


def cmd_fiemap(suite, segments, root, dev=None):
    layout = group_layout(dev) if dev else None
    for path, size, segs in read_segments(segments):
        case = "fiemap-" + path.replace("/", "-")
        try:
            fd = os.open(os.path.join(root, path), os.O_RDONLY)
            try:
                report(suite, case, fiemap_problem(fd, path, size, segs, layout))
            finally:
                os.close(fd)
        except OSError as e:
            report(suite, case, f"{type(e).__name__}: {e}")


def unwritten_problem(path):
    size = os.stat(path).st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in (0, 1, size // 2, size - 1):
            if seek(fd, off, os.SEEK_DATA) != "ENXIO":
                return f"SEEK_DATA from {off} gave {seek(fd, off, os.SEEK_DATA)}, expected ENXIO"
            if seek(fd, off, os.SEEK_HOLE) != off:
                return f"SEEK_HOLE from {off} gave {seek(fd, off, os.SEEK_HOLE)}, expected {off}"
        ext = fiemap(fd)
        if not ext:
            return "FIEMAP reported no extents"
        pos = 0
        for lo, ph, ln, fl in ext:
            if lo != pos or not ln:
                return f"extent at {lo}, expected {pos}"
            if not fl & FIEMAP_EXTENT_UNWRITTEN:
                return f"extent at {lo} has flags {fl:#x}, without UNWRITTEN"
            pos = lo + ln
        if pos != -(-size // BLOCK) * BLOCK:
            return f"extents end at {pos}, expected {size} rounded up to a block"
        if [fl & FIEMAP_EXTENT_LAST for *_, fl in ext] != [0] * (len(ext) - 1) + [FIEMAP_EXTENT_LAST]:
            return "FIEMAP_EXTENT_LAST is not on exactly the last extent"
    finally:
        os.close(fd)
    return None


def cmd_unwritten(suite, case, path):
    try:
        report(suite, case, unwritten_problem(path))
    except OSError as e:
        report(suite, case, f"{type(e).__name__}: {e}")


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
    elif cmd == "segments":
        cmd_segments(*args)
    elif cmd == "seek":
        cmd_seek(*args)
    elif cmd == "fiemap":
        cmd_fiemap(*args)
    elif cmd == "unwritten":
        cmd_unwritten(*args)
    elif cmd == "xattrs":
        cmd_xattrs(*args)
    elif cmd == "xattrs-check":
        cmd_xattrs_check(*args)
    elif cmd == "access":
        cmd_access(*args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
