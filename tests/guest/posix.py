#!/usr/bin/env python3
"""Guest half of tests/suites/posix.sh: POSIX namespace and attribute operations on a
read-write filesystem, each with exact results and exact errnos.

  posix.py FSTYP     /dev/vdb gets FSTYP (the filesystem under test), /dev/vdc ext4 (the
                     reference of the compare-ext4 case)
"""

import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402
from fsx import MIB, case, expect, expect_errno, note  # noqa: E402

DEV, REF_DEV = "/dev/vdb", "/dev/vdc"
MNT, REF = "/mnt/posix", "/mnt/ref"
BLK = 4096

AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 1, 2, 0x10
FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE = 0x08, 0x20
SYS_renameat2 = 316  # x86_64

libc = fsx.libc
libc.syscall.restype = ctypes.c_long
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]

# Largest file size (s_maxbytes) per filesystem type, 4 KiB blocks.
MAXBYTES = {
    "aegisfs": 547612569600,  # 12 + 511 + 511^2 + 511^3 blocks
    "ext4": ((1 << 32) - 1) * BLK,  # extent-mapped files: 2^32 - 1 blocks
}


def oserror():
    e = ctypes.get_errno()
    return OSError(e, os.strerror(e))


def renameat2(old, new, flags):
    rc = libc.syscall(ctypes.c_long(SYS_renameat2), ctypes.c_int(AT_FDCWD), os.fsencode(old),
                      ctypes.c_int(AT_FDCWD), os.fsencode(new), ctypes.c_uint(flags))
    if rc != 0:
        raise oserror()


def linkat_fd(fd, new):
    """linkat(AT_FDCWD, "/proc/self/fd/FD", AT_FDCWD, NEW, AT_SYMLINK_FOLLOW): gives an
    O_TMPFILE file a name."""
    if libc.linkat(AT_FDCWD, f"/proc/self/fd/{fd}".encode(), AT_FDCWD, os.fsencode(new), 0x400) != 0:
        raise oserror()


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        raise oserror()


MS_RDONLY = fsx.MS_RDONLY


def remount_flags(flags):
    fsx.remount_flags(MNT, flags)


def append(p, data):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def d(*parts):
    return os.path.join(MNT, *parts)


def fresh(name):
    p = d(name)
    os.mkdir(p)
    return p


def put(p, data, mode=0o644):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        n = 0
        while n < len(data):
            n += os.write(fd, data[n:])
    finally:
        os.close(fd)


def get(p, off=0, n=-1):
    with open(p, "rb") as f:
        f.seek(off)
        return f.read(n)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def nlink(p):
    return os.lstat(p).st_nlink


def eq(got, want, what):
    expect(got == want, f"{what}: {got!r}, expected {want!r}")


def remount(opts=None):
    fsx.umount(MNT)
    fsx.mount(DEV, MNT, opts)


# ---- namespace ---------------------------------------------------------------------------


def t_create():
    top = fresh("create")
    p = os.path.join(top, "f")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    os.close(fd)
    st = os.stat(p)
    eq(stat.S_IFMT(st.st_mode), stat.S_IFREG, "type")
    eq(stat.S_IMODE(st.st_mode), 0o640, "mode (umask 022)")
    eq((st.st_size, st.st_nlink, st.st_blocks), (0, 1, 0), "size, nlink, blocks")
    expect_errno("EEXIST", os.open, p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, what="O_CREAT|O_EXCL")
    expect_errno("ENOENT", os.open, os.path.join(top, "missing"), os.O_RDONLY)
    expect_errno("ENOENT", os.open, os.path.join(top, "nodir", "f"), os.O_WRONLY | os.O_CREAT)
    expect_errno("ENOTDIR", os.open, os.path.join(p, "f"), os.O_WRONLY | os.O_CREAT)
    expect_errno("EISDIR", os.open, top, os.O_WRONLY)
    expect_errno("ENOTDIR", os.open, p, os.O_RDONLY | os.O_DIRECTORY)
    # O_CREAT without O_EXCL opens the existing file, O_TRUNC empties it.
    put(p, b"abc")
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o600))
    eq(get(p), b"abc", "content after O_CREAT on an existing file")
    eq(stat.S_IMODE(os.stat(p).st_mode), 0o640, "mode after O_CREAT on an existing file")
    os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
    eq(os.stat(p).st_size, 0, "size after O_TRUNC")


def t_mkdir_rmdir():
    top = fresh("mkdir")
    parent_links = nlink(top)
    eq(parent_links, 2, "nlink of a new directory")
    a = os.path.join(top, "a")
    os.mkdir(a, 0o750)
    st = os.stat(a)
    eq((stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_nlink), (stat.S_IFDIR, 0o750, 2), "new dir")
    eq(nlink(top), 3, "parent nlink after mkdir")
    eq(os.stat(os.path.join(a, "..")).st_ino, os.stat(top).st_ino, "'..' inode")
    eq(os.stat(os.path.join(a, ".")).st_ino, st.st_ino, "'.' inode")
    expect_errno("EEXIST", os.mkdir, a)
    os.mkdir(os.path.join(a, "sub"))
    eq(nlink(a), 3, "nlink with a subdirectory")
    put(os.path.join(a, "f"), b"x")
    eq(nlink(a), 3, "nlink with a file added")
    expect_errno("ENOTEMPTY", os.rmdir, a)
    expect_errno("ENOTDIR", os.rmdir, os.path.join(a, "f"))
    expect_errno("EINVAL", os.rmdir, os.path.join(a, "sub", "."))
    expect_errno("ENOENT", os.rmdir, os.path.join(a, "nothing"))
    expect_errno("EISDIR", os.unlink, os.path.join(a, "sub"))
    expect_errno("ENOTDIR", os.mkdir, os.path.join(a, "f", "x"))
    os.rmdir(os.path.join(a, "sub"))
    eq(nlink(a), 2, "nlink after rmdir of the subdirectory")
    os.unlink(os.path.join(a, "f"))
    os.rmdir(a)
    eq(nlink(top), 2, "parent nlink after rmdir")
    expect_errno("ENOENT", os.stat, a)
    eq(os.listdir(top), [], "listing")


def t_link():
    top = fresh("link")
    f = os.path.join(top, "f")
    put(f, b"linked data")
    os.link(f, os.path.join(top, "g"))
    os.mkdir(os.path.join(top, "sub"))
    os.link(f, os.path.join(top, "sub", "h"))
    eq(nlink(f), 3, "nlink after two links")
    eq(os.stat(os.path.join(top, "sub", "h")).st_ino, os.stat(f).st_ino, "same inode")
    eq(get(os.path.join(top, "sub", "h")), b"linked data", "content through a link")
    expect_errno("EEXIST", os.link, f, os.path.join(top, "g"))
    expect_errno("EPERM", os.link, os.path.join(top, "sub"), os.path.join(top, "dirlink"))
    expect_errno("ENOENT", os.link, os.path.join(top, "missing"), os.path.join(top, "x"))
    os.unlink(f)
    eq(nlink(os.path.join(top, "g")), 2, "nlink after unlinking one name")
    os.unlink(os.path.join(top, "g"))
    eq(nlink(os.path.join(top, "sub", "h")), 1, "nlink of the last name")
    eq(get(os.path.join(top, "sub", "h")), b"linked data", "content of the last name")
    expect_errno("ENOENT", os.unlink, f)


def t_symlink():
    top = fresh("symlink")
    put(os.path.join(top, "target"), b"via link")
    for n in (1, 60, 119, 120, 121, 500, 4095):
        t = ("abcdefghij" * 410)[:n]
        p = os.path.join(top, f"l{n}")
        os.symlink(t, p)
        eq(os.readlink(p), t, f"readlink of a {n}-byte target")
        st = os.lstat(p)
        eq((stat.S_IFMT(st.st_mode), st.st_size), (stat.S_IFLNK, n), f"{n}-byte symlink type, size")
    expect_errno("ENAMETOOLONG", os.symlink, "a" * 4096, os.path.join(top, "l4096"))
    expect_errno("ENOENT", os.lstat, os.path.join(top, "l4096"))
    os.symlink("target", os.path.join(top, "rel"))
    eq(get(os.path.join(top, "rel")), b"via link", "read through a symlink")
    os.symlink("nowhere", os.path.join(top, "dangling"))
    expect_errno("ENOENT", os.stat, os.path.join(top, "dangling"))
    expect_errno("EEXIST", os.symlink, "x", os.path.join(top, "rel"))
    expect_errno("EINVAL", os.readlink, os.path.join(top, "target"))
    os.symlink("loop2", os.path.join(top, "loop1"))
    os.symlink("loop1", os.path.join(top, "loop2"))
    expect_errno("ELOOP", os.stat, os.path.join(top, "loop1"))
    remount()
    for n in (1, 120, 121, 4095):
        eq(os.readlink(os.path.join(top, f"l{n}")), ("abcdefghij" * 410)[:n], f"readlink {n} after remount")


def t_mknod():
    top = fresh("mknod")
    os.umask(0)
    try:
        mknod_in(top)
    finally:
        os.umask(0o022)


def mknod_in(top):
    os.mknod(os.path.join(top, "chr"), 0o620 | stat.S_IFCHR, os.makedev(4, 64))
    os.mknod(os.path.join(top, "blk"), 0o660 | stat.S_IFBLK, os.makedev(259, 70000))
    os.mknod(os.path.join(top, "fifo"), 0o644 | stat.S_IFIFO)
    os.mknod(os.path.join(top, "sock"), 0o755 | stat.S_IFSOCK)
    os.mkfifo(os.path.join(top, "fifo2"), 0o600)
    want = {"chr": (stat.S_IFCHR, 0o620, 4, 64), "blk": (stat.S_IFBLK, 0o660, 259, 70000),
            "fifo": (stat.S_IFIFO, 0o644, 0, 0), "sock": (stat.S_IFSOCK, 0o755, 0, 0),
            "fifo2": (stat.S_IFIFO, 0o600, 0, 0)}
    for rnd in ("", " after remount"):
        for name, w in want.items():
            st = os.lstat(os.path.join(top, name))
            got = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev))
            eq(got, w, f"{name}{rnd} (type, mode, major, minor)")
            eq(st.st_size, 0, f"{name} size")
        if not rnd:
            remount()
    expect_errno("EEXIST", os.mknod, os.path.join(top, "chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    # A fifo on this filesystem works as a pipe.
    p = os.path.join(top, "fifo")
    r = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(p, os.O_WRONLY)
    os.write(w, b"through the fifo")
    eq(os.read(r, 100), b"through the fifo", "fifo data")
    os.close(w)
    os.close(r)


def t_tmpfile():
    top = fresh("tmpfile")
    before = os.listdir(top)
    fd = os.open(top, os.O_TMPFILE | os.O_RDWR, 0o600)
    try:
        data = fsx.gen(5, 0, 100000)
        os.write(fd, data)
        eq(os.fstat(fd).st_nlink, 0, "nlink of an O_TMPFILE file")
        eq(os.listdir(top), before, "listing with an O_TMPFILE file open")
        linkat_fd(fd, os.path.join(top, "linked"))
        eq(os.fstat(fd).st_nlink, 1, "nlink after linkat")
    finally:
        os.close(fd)
    # O_EXCL forbids linking it.
    fd = os.open(top, os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
    try:
        expect_errno("ENOENT", linkat_fd, fd, os.path.join(top, "excl"))
    finally:
        os.close(fd)
    remount()
    eq(os.listdir(top), ["linked"], "listing after remount")
    eq(sha(get(os.path.join(top, "linked"))), sha(fsx.gen(5, 0, 100000)), "data of the linked tmpfile")
    eq(stat.S_IMODE(os.stat(os.path.join(top, "linked")).st_mode), 0o600, "mode")


def t_rename_basic():
    top = fresh("rename")
    a, b = os.path.join(top, "a"), os.path.join(top, "b")
    os.mkdir(a)
    os.mkdir(b)
    f1, f2 = os.path.join(a, "f1"), os.path.join(a, "f2")
    put(f1, b"one")
    put(f2, b"two")
    ino1 = os.stat(f1).st_ino
    os.rename(f1, f2)  # file over file
    eq((get(f2), os.stat(f2).st_ino), (b"one", ino1), "file over file")
    expect_errno("ENOENT", os.stat, f1)
    os.rename(f2, os.path.join(b, "moved"))  # across directories
    eq(get(os.path.join(b, "moved")), b"one", "cross-directory rename")
    eq(sorted(os.listdir(a)), [], "source dir after the move")
    f = os.path.join(b, "moved")
    e = os.path.join(top, "emptydir")
    os.mkdir(e)
    full = os.path.join(top, "fulldir")
    os.mkdir(full)
    put(os.path.join(full, "x"), b"")
    expect_errno("EISDIR", os.rename, f, e, what="file over empty dir")
    expect_errno("ENOTDIR", os.rename, e, f, what="dir over file")
    expect_errno("ENOTEMPTY", os.rename, e, full, what="dir over non-empty dir")
    expect_errno("EINVAL", os.rename, full, os.path.join(full, "inside"), what="dir into itself")
    deep = os.path.join(full, "s1", "s2")
    os.makedirs(deep)
    expect_errno("EINVAL", os.rename, full, os.path.join(deep, "x"), what="dir into its subdir")
    expect_errno("ENOENT", os.rename, os.path.join(top, "missing"), os.path.join(top, "y"))
    expect_errno("ENOTDIR", os.rename, f, os.path.join(f, "x"))
    # Dir over empty dir: the target's inode is replaced.
    src_ino = os.stat(full).st_ino
    links = nlink(top)
    os.rename(full, e)
    eq(os.stat(e).st_ino, src_ino, "dir over empty dir")
    eq(nlink(top), links - 1, "parent nlink after dir over empty dir")
    expect_errno("ENOENT", os.stat, full)
    # Same name: a no-op.
    os.rename(f, f)
    eq(get(f), b"one", "rename to itself")
    # Hard links to one inode: rename of one over the other is a no-op (POSIX).
    os.link(f, os.path.join(b, "hl"))
    os.rename(f, os.path.join(b, "hl"))
    eq(sorted(os.listdir(b)), ["hl", "moved"], "rename between two links of one inode")


def t_rename_dir():
    top = fresh("renamedir")
    p1, p2 = os.path.join(top, "p1"), os.path.join(top, "p2")
    os.mkdir(p1)
    os.mkdir(p2)
    sub = os.path.join(p1, "sub")
    os.mkdir(sub)
    put(os.path.join(sub, "f"), b"in sub")
    eq((nlink(p1), nlink(p2)), (3, 2), "parents' nlink before")
    os.rename(sub, os.path.join(p2, "sub2"))
    moved = os.path.join(p2, "sub2")
    eq((nlink(p1), nlink(p2)), (2, 3), "parents' nlink after moving the dir")
    eq(os.stat(os.path.join(moved, "..")).st_ino, os.stat(p2).st_ino, "'..' after the move")
    eq(get(os.path.join(moved, "f")), b"in sub", "content of the moved dir")
    remount()
    eq(os.stat(os.path.join(moved, "..")).st_ino, os.stat(p2).st_ino, "'..' after remount")
    eq((nlink(p1), nlink(p2), nlink(moved)), (2, 3, 2), "nlinks after remount")
    # Dir over empty dir in another parent.
    os.mkdir(os.path.join(p1, "empty"))
    os.rename(moved, os.path.join(p1, "empty"))
    eq((nlink(p1), nlink(p2)), (3, 2), "nlinks after dir over empty dir across parents")
    eq(os.stat(os.path.join(p1, "empty", "..")).st_ino, os.stat(p1).st_ino, "'..' after dir over empty dir")


def t_renameat2():
    top = fresh("renameat2")
    a, b = os.path.join(top, "a"), os.path.join(top, "b")
    os.mkdir(a)
    os.mkdir(b)
    put(os.path.join(a, "f"), b"file")
    put(os.path.join(a, "g"), b"gee")
    expect_errno("EEXIST", renameat2, os.path.join(a, "f"), os.path.join(a, "g"), RENAME_NOREPLACE)
    eq((get(os.path.join(a, "f")), get(os.path.join(a, "g"))), (b"file", b"gee"), "after refused NOREPLACE")
    renameat2(os.path.join(a, "f"), os.path.join(a, "h"), RENAME_NOREPLACE)
    eq(sorted(os.listdir(a)), ["g", "h"], "after NOREPLACE to a new name")
    # Exchange a file in a with a directory (with a child) in b.
    dd = os.path.join(b, "d")
    os.mkdir(dd)
    os.mkdir(os.path.join(dd, "child"))
    fino, dino = os.stat(os.path.join(a, "h")).st_ino, os.stat(dd).st_ino
    eq((nlink(a), nlink(b)), (2, 3), "nlinks before exchange")
    renameat2(os.path.join(a, "h"), dd, RENAME_EXCHANGE)
    eq(os.stat(os.path.join(a, "h")).st_ino, dino, "a/h is the directory")
    eq(os.stat(dd).st_ino, fino, "b/d is the file")
    eq(get(dd), b"file", "content of the exchanged file")
    eq((nlink(a), nlink(b)), (3, 2), "nlinks after exchange")
    eq(os.stat(os.path.join(a, "h", "..")).st_ino, os.stat(a).st_ino, "'..' of the exchanged dir")
    eq(os.listdir(os.path.join(a, "h")), ["child"], "the exchanged dir's content")
    expect_errno("ENOENT", renameat2, os.path.join(a, "g"), os.path.join(a, "none"), RENAME_EXCHANGE)
    expect_errno("EINVAL", renameat2, os.path.join(a, "g"), os.path.join(a, "h"), RENAME_EXCHANGE | RENAME_NOREPLACE)
    remount()
    eq((nlink(a), nlink(b)), (3, 2), "nlinks after remount")
    eq(os.stat(os.path.join(a, "h", "..")).st_ino, os.stat(a).st_ino, "'..' after remount")
    # Whiteout: the source name becomes a 0:0 character device.
    renameat2(os.path.join(a, "g"), os.path.join(b, "g2"), RENAME_WHITEOUT)
    st = os.lstat(os.path.join(a, "g"))
    eq((stat.S_IFMT(st.st_mode), st.st_rdev), (stat.S_IFCHR, 0), "whiteout (type, rdev)")
    eq(get(os.path.join(b, "g2")), b"gee", "whited-out file moved")
    remount()
    st = os.lstat(os.path.join(a, "g"))
    eq((stat.S_IFMT(st.st_mode), st.st_rdev), (stat.S_IFCHR, 0), "whiteout after remount")


def t_names():
    top = fresh("names")
    ok255 = os.path.join(top, "n" * 255)
    put(ok255, b"255")
    eq(get(ok255), b"255", "255-byte name")
    expect_errno("ENAMETOOLONG", os.open, os.path.join(top, "n" * 256), os.O_WRONLY | os.O_CREAT)
    expect_errno("ENAMETOOLONG", os.mkdir, os.path.join(top, "m" * 256))
    expect_errno("ENAMETOOLONG", os.stat, os.path.join(top, "n" * 256))
    # Every byte value but '/' and NUL, alone in a name (except '.') and all in one name.
    names = {b"n" + bytes([c]) for c in range(1, 256) if c != 0x2F}
    names |= {bytes([c]) for c in range(1, 256) if c not in (0x2F, 0x2E)}
    names.add(bytes(c for c in range(1, 256) if c != 0x2F))  # 254 bytes
    names.add(b"..." + b"\xff" * 200)
    tb = os.fsencode(top)
    for n in names:
        put(os.path.join(tb, n), n)
    for rnd in ("", " after remount"):
        got = set(os.listdir(tb)) - {b"n" * 255}
        eq(len(got), len(names), f"number of names{rnd}")
        expect(got == names, f"names differ{rnd}: {sorted(got ^ names)[:3]}")
        for n in names:
            expect(get(os.path.join(tb, n)) == n, f"content of {n!r}{rnd}")
        if not rnd:
            remount()


def t_bigdir():
    top = fresh("bigdir")
    tb = top

    def name(i):
        return f"entry-{i:05d}-" + "x" * (i % 200)

    n = 4000
    for i in range(n):
        os.close(os.open(os.path.join(tb, name(i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    want = {name(i) for i in range(n)}
    eq(set(os.listdir(tb)), want, "listing of 4000 entries")
    eq(len(os.listdir(tb)), n, "entries listed once")
    grown = os.stat(tb).st_size
    for i in range(0, n, 2):
        os.unlink(os.path.join(tb, name(i)))
    want = {name(i) for i in range(1, n, 2)}
    eq(set(os.listdir(tb)), want, "listing after deleting every other entry")
    # New entries reuse the freed space: the directory does not grow.
    for i in range(0, n, 2):
        os.mkdir(os.path.join(tb, "d" + name(i)[1:]))
        want.add("d" + name(i)[1:])
    refilled = os.stat(tb).st_size
    note(f"bigdir: directory size {grown} with 4000 entries, {refilled} after deleting 2000 and adding 2000")
    expect(refilled <= grown + grown // 4, f"directory grew from {grown} to {refilled} bytes: freed entries not reused")
    remount()
    listing = os.listdir(tb)
    eq(len(listing), len(want), "entries after remount")
    eq(set(listing), want, "listing after remount")
    eq(nlink(tb), 2 + n // 2, "nlink with 2000 subdirectories")
    for e in os.scandir(tb):
        expect(e.is_dir() == e.name.startswith("d"), f"d_type of {e.name}")
    for nm in listing:
        p = os.path.join(tb, nm)
        os.rmdir(p) if nm.startswith("d") else os.unlink(p)
    eq(os.listdir(tb), [], "listing after deleting everything")
    eq(nlink(tb), 2, "nlink when empty")
    os.rmdir(tb)


# ---- attributes --------------------------------------------------------------------------


def t_chmod_chown():
    top = fresh("chown")
    os.chmod(top, 0o777)
    f = os.path.join(top, "f")
    put(f, b"data")
    for m in (0o7777, 0o4755, 0o2755, 0o1755, 0, 0o644):
        os.chmod(f, m)
        eq(stat.S_IMODE(os.stat(f).st_mode), m, f"chmod {m:o}")
    os.chown(f, 1234, 5678)
    eq((os.stat(f).st_uid, os.stat(f).st_gid), (1234, 5678), "chown")
    os.chown(f, 4000000000, 3000000000)
    eq((os.stat(f).st_uid, os.stat(f).st_gid), (4000000000, 3000000000), "chown 32-bit ids")
    os.lchown(f, -1, 7)
    eq((os.stat(f).st_uid, os.stat(f).st_gid), (4000000000, 7), "chown of the group only")
    # chown clears setuid, and setgid when group-executable, even when root does it.
    os.chmod(f, 0o6755)
    os.chown(f, 1000, 1000)
    eq(stat.S_IMODE(os.stat(f).st_mode), 0o755, "mode after chown of a 6755 file")
    os.chmod(f, 0o2644)
    os.chown(f, 1001, 1001)
    eq(stat.S_IMODE(os.stat(f).st_mode), 0o2644, "mode after chown of a 2644 file (no group exec)")
    # A write by someone else than the owner clears setuid/setgid.
    g = os.path.join(top, "g")
    put(g, b"setuid")
    os.chmod(g, 0o6777)
    eq(fsx.as_user(lambda: append(g, b"more")), "4", "write as fsgqa")
    eq(stat.S_IMODE(os.stat(g).st_mode), 0o777, "mode after a write by another user")
    eq(get(g), b"setuidmore", "content")
    os.chmod(g, 0o6777)
    append(g, b"!")
    eq(stat.S_IMODE(os.stat(g).st_mode), 0o6777, "mode after a write by root (CAP_FSETID)")
    # Permissions are enforced for the other user.
    os.chmod(f, 0o600)
    os.chown(f, 0, 0)
    eq(fsx.as_user(lambda: os.open(f, os.O_RDONLY)), "EACCES", "open of a 0600 root file as fsgqa")
    eq(fsx.as_user(lambda: os.chmod(f, 0o777)), "EPERM", "chmod of a root file as fsgqa")
    eq(fsx.as_user(lambda: os.chown(g, 1000, 1000)), "EPERM", "chown as fsgqa")
    # setgid directories: new entries inherit the group, new subdirectories the bit.
    sg = os.path.join(top, "sgid")
    os.mkdir(sg)
    os.chown(sg, 0, 4242)
    os.chmod(sg, 0o2775)
    put(os.path.join(sg, "f"), b"")
    os.mkdir(os.path.join(sg, "d"))
    eq(os.stat(os.path.join(sg, "f")).st_gid, 4242, "group of a file in a setgid dir")
    st = os.stat(os.path.join(sg, "d"))
    eq((st.st_gid, bool(st.st_mode & stat.S_ISGID)), (4242, True), "subdir of a setgid dir")
    remount()
    eq(stat.S_IMODE(os.stat(g).st_mode), 0o6777, "mode after remount")
    eq((os.stat(f).st_uid, os.stat(f).st_gid), (0, 0), "owner after remount")


OTHER = 2000  # a second unprivileged user, beside fsgqa (uid 1000)


def as_uid(fn, uid=1000):
    """fsx.as_user with the user's own group."""
    return fsx.as_user(fn, uid=uid, gid=uid)


def t_permissions():
    top = fresh("perm")
    os.chmod(top, 0o755)
    # Directory bits: w+x to add or remove entries, x to reach them, r to list them.
    d = os.path.join(top, "d")
    os.mkdir(d)
    put(os.path.join(d, "in"), b"x")
    os.chmod(d, 0o755)
    eq(as_uid(lambda: put(os.path.join(d, "new"), b"")), "EACCES", "create in a 0755 root dir")
    eq(as_uid(lambda: os.unlink(os.path.join(d, "in"))), "EACCES", "unlink in a 0755 root dir")
    eq(as_uid(lambda: os.mkdir(os.path.join(d, "sub"))), "EACCES", "mkdir in a 0755 root dir")
    os.chmod(d, 0o700)
    eq(as_uid(lambda: os.stat(os.path.join(d, "in"))), "EACCES", "stat through a 0700 dir")
    eq(as_uid(lambda: os.listdir(d)), "EACCES", "list a 0700 dir")
    os.chmod(d, 0o711)
    eq(as_uid(lambda: os.stat(os.path.join(d, "in")).st_size), "1", "stat through a 0711 dir")
    eq(as_uid(lambda: os.listdir(d)), "EACCES", "list a 0711 dir")
    os.chmod(d, 0o733)
    eq(as_uid(lambda: put(os.path.join(d, "new"), b"") or "made"), "made", "create in a 0733 dir")
    eq(as_uid(lambda: os.listdir(d)), "EACCES", "list a 0733 dir")
    eq(os.stat(os.path.join(d, "new")).st_uid, 1000, "owner of the file made in it")
    # Sticky directory: only the file's owner, the directory's owner or root may remove or
    # rename an entry, even with write permission on the directory.
    sticky = os.path.join(top, "sticky")
    os.mkdir(sticky)
    os.chmod(sticky, 0o1777)
    mine = os.path.join(sticky, "mine")
    eq(as_uid(lambda: put(mine, b"1000's") or "ok"), "ok", "fsgqa creates in the sticky dir")
    eq(as_uid(lambda: put(os.path.join(sticky, "other"), b"") or "ok", OTHER), "ok",
       "uid 2000 creates in the sticky dir")
    eq(as_uid(lambda: os.unlink(mine), OTHER), "EPERM", "unlink of another's file in a sticky dir")
    eq(as_uid(lambda: os.rename(mine, os.path.join(sticky, "moved")), OTHER), "EPERM",
       "rename of another's file in a sticky dir")
    eq(as_uid(lambda: os.rename(os.path.join(sticky, "other"), mine), OTHER), "EPERM",
       "rename over another's file in a sticky dir")
    eq(as_uid(lambda: os.rmdir(sticky), OTHER), "EACCES", "rmdir of the sticky dir by uid 2000")
    eq(get(mine), b"1000's", "the file survived")
    eq(as_uid(lambda: os.rename(mine, os.path.join(sticky, "moved")) or "ok"), "ok",
       "the owner renames its own file")
    eq(as_uid(lambda: os.unlink(os.path.join(sticky, "moved")) or "ok"), "ok",
       "the owner unlinks its own file")
    os.chown(sticky, OTHER, OTHER)
    put(mine, b"root's")
    eq(as_uid(lambda: os.unlink(mine) or "ok", OTHER), "ok", "the directory's owner unlinks any file")
    eq(sorted(os.listdir(sticky)), ["other"], "sticky dir after the unlinks")
    # Immutable and append-only need CAP_LINUX_IMMUTABLE, even for the file's owner; other
    # flags need ownership.
    f = os.path.join(top, "flags")
    put(f, b"flags")
    os.chown(f, 1000, 1000)
    eq(as_uid(lambda: fsx.setflags(f, fsx.FL_IMMUTABLE)), "EPERM", "owner sets immutable")
    eq(as_uid(lambda: fsx.setflags(f, fsx.FL_APPEND)), "EPERM", "owner sets append-only")
    eq(as_uid(lambda: fsx.setflags(f, fsx.FL_NODUMP), OTHER), "EPERM", "another user sets nodump")
    eq(as_uid(lambda: fsx.setflags(f, fsx.FL_NODUMP) or "set"), "set", "owner sets nodump")
    eq(fsx.getflags(f) & (fsx.FL_IMMUTABLE | fsx.FL_APPEND | fsx.FL_NODUMP), fsx.FL_NODUMP,
       "flags after the attempts")
    fsx.setflags(f, fsx.FL_IMMUTABLE)
    eq(as_uid(lambda: fsx.setflags(f, 0)), "EPERM", "owner clears immutable")
    eq(as_uid(lambda: os.open(f, os.O_WRONLY)), "EPERM", "owner writes an immutable file")
    eq(as_uid(lambda: os.chmod(f, 0o600)), "EPERM", "owner chmods an immutable file")
    fsx.setflags(f, 0)
    remount()
    eq(os.stat(f).st_uid, 1000, "owner after remount")
    eq(as_uid(lambda: os.listdir(d)), "EACCES", "0733 dir still unlistable after remount")
    eq(stat.S_IMODE(os.stat(sticky).st_mode), 0o1777, "sticky bit after remount")


def t_utimes():
    top = fresh("utimes")
    f = os.path.join(top, "f")
    put(f, b"t")
    cases = [(1234567890_123456789, 1000000000_000000001), (0, 999999999),
             (-123456789_987654321, -1), (4102444800_999999999, 2147483648_500000000)]
    for a, m in cases:
        os.utime(f, ns=(a, m))
        st = os.stat(f)
        eq((st.st_atime_ns, st.st_mtime_ns), (a, m), "atime, mtime")
    os.symlink("f", os.path.join(top, "l"))
    os.utime(os.path.join(top, "l"), ns=(5_000000007, 6_000000008), follow_symlinks=False)
    st = os.lstat(os.path.join(top, "l"))
    eq((st.st_atime_ns, st.st_mtime_ns), (5_000000007, 6_000000008), "symlink times")
    eq(os.stat(f).st_mtime_ns, cases[-1][1], "target untouched")
    remount("noatime")
    st = os.stat(f)
    eq((st.st_atime_ns, st.st_mtime_ns), cases[-1], "after remount")
    st = os.lstat(os.path.join(top, "l"))
    eq((st.st_atime_ns, st.st_mtime_ns), (5_000000007, 6_000000008), "symlink times after remount")
    remount()


def t_truncate():
    top = fresh("truncate")
    f = os.path.join(top, "f")
    data = fsx.gen(9, 0, 3 * BLK)
    put(f, data)
    os.truncate(f, 5000)
    eq(os.stat(f).st_size, 5000, "size after shrinking")
    os.truncate(f, 3 * BLK)
    got = get(f)
    eq(len(got), 3 * BLK, "size after growing")
    expect(got[:5000] == data[:5000], "data before the cut changed")
    expect(got[5000:] == bytes(3 * BLK - 5000), "bytes after the cut are not zero after growing")
    # The same through remount (the zeroing reached the disk, not only the page cache).
    os.truncate(f, 100)
    fsx.drop_caches()
    os.truncate(f, 2 * BLK + 1)
    remount()
    got = get(f)
    expect(got[:100] == data[:100] and got[100:] == bytes(2 * BLK + 1 - 100), "tail after truncate 100, grow, remount")
    os.truncate(f, 0)
    eq((os.stat(f).st_size, os.stat(f).st_blocks), (0, 0), "size, blocks after truncate to 0")
    expect_errno("EINVAL", os.truncate, f, -1)
    expect_errno("EISDIR", os.truncate, top, 0)
    # Across the block map boundaries of AegisFS (direct, single, double, triple indirect).
    p = 511
    for lblk in (12, 12 + p, 12 + p + p * p):
        b = lblk * BLK
        g = os.path.join(top, f"b{lblk}")
        fd = os.open(g, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fsx.write_data(fd, lblk, b - 3 * BLK, 6 * BLK)
            blocks_full = os.fstat(fd).st_blocks
            for size in (b + BLK + 1, b + 1, b, b - 1, b - 2 * BLK):
                os.ftruncate(fd, size)
                eq(os.fstat(fd).st_size, size, f"size after truncate to {size}")
                keep = size - (b - 3 * BLK)
                got = os.pread(fd, 8 * BLK, b - 3 * BLK)
                expect(got == fsx.gen(lblk, b - 3 * BLK, keep), f"data below {size} changed (boundary block {lblk})")
            blocks_cut = os.fstat(fd).st_blocks
            expect(blocks_cut < blocks_full, f"st_blocks {blocks_cut} after truncating, {blocks_full} before")
            os.ftruncate(fd, b + 3 * BLK)
            got = os.pread(fd, 6 * BLK, b - 3 * BLK)
            expect(got == fsx.gen(lblk, b - 3 * BLK, BLK) + bytes(5 * BLK), f"regrown range at block {lblk} not zeros")
            os.ftruncate(fd, 0)
            eq(os.fstat(fd).st_blocks, 0, f"st_blocks after truncate to 0 (boundary {lblk})")
        finally:
            os.close(fd)


def t_unlinked_open():
    top = fresh("unlinked")
    os.sync()
    start = fsx.statfs(MNT)
    f = os.path.join(top, "f")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        want = fsx.write_data(fd, 11, 0, 16 * MIB)
        os.unlink(f)
        expect_errno("ENOENT", os.stat, f)
        eq(os.fstat(fd).st_nlink, 0, "nlink of the open unlinked file")
        fsx.write_data(fd, 11, 16 * MIB, 4 * MIB)
        os.fsync(fd)
        fsx.drop_caches()
        h = hashlib.sha256()
        for off in range(0, 20 * MIB, MIB):
            h.update(os.pread(fd, MIB, off))
        eq(h.hexdigest(), fsx.expected(11, 0, 20 * MIB), "sha256 of the unlinked file")
        del want
        held = os.statvfs(MNT).f_bfree
        expect(held < int(start.split()[1]) - 20 * MIB // BLK + 1, f"only {int(start.split()[1]) - held} blocks held by the open file")
    finally:
        os.close(fd)
    os.sync()
    eq(fsx.statfs(MNT), start, "statfs after the last close")


def t_fallocate():
    top = fresh("fallocate")
    f = os.path.join(top, "f")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fallocate(fd, 0, 0, MIB)
        st = os.fstat(fd)
        eq(st.st_size, MIB, "size after fallocate")
        expect(st.st_blocks >= MIB // 512, f"st_blocks {st.st_blocks} after fallocate of 1 MiB")
        eq(os.pread(fd, MIB, 0), bytes(MIB), "preallocated range reads zeros")
        fallocate(fd, FALLOC_FL_KEEP_SIZE, MIB, MIB)
        st = os.fstat(fd)
        eq(st.st_size, MIB, "size after KEEP_SIZE")
        expect(st.st_blocks >= 2 * MIB // 512, f"st_blocks {st.st_blocks} after KEEP_SIZE")
        eq(os.pread(fd, MIB, 0), bytes(MIB), "preallocated range reads zeros after KEEP_SIZE")
        # Writing into the preallocated blocks, and past EOF into the KEEP_SIZE ones.
        data = fsx.gen(12, 0, MIB + 5000)
        os.pwrite(fd, data[:300000], 0)
        os.pwrite(fd, data[MIB:], MIB)
        blocks = os.fstat(fd).st_blocks
        eq(os.fstat(fd).st_size, MIB + 5000, "size after writing past EOF into KEEP_SIZE blocks")
        os.fsync(fd)
    finally:
        os.close(fd)
    remount()
    want = data[:300000] + bytes(MIB - 300000) + data[MIB:]
    expect(get(f) == want, "content after remount")
    eq(os.stat(f).st_blocks, blocks, "st_blocks after remount")
    for flags, length, err in ((os.O_RDWR, 0, "EINVAL"), (os.O_RDONLY, BLK, "EBADF")):
        fd = os.open(f, flags)
        try:
            expect_errno(err, fallocate, fd, 0, 0, length, what=f"fallocate of {length} bytes (flags {flags})")
        finally:
            os.close(fd)


def data_file(name, seed, size):
    top = fresh(name)
    f = os.path.join(top, "f")
    fsx.write_file(f, seed, size, fsync=True)
    return f, fsx.gen(seed, 0, size)


def t_punch():
    f, want = data_file("punch", 17, MIB)
    fd = os.open(f, os.O_RDWR)
    try:
        before = os.fstat(fd).st_blocks
        expect_errno(fsx.err_name(errno.EOPNOTSUPP), fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, BLK, what="PUNCH_HOLE without KEEP_SIZE")
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * 1024, 256 * 1024)
        st = os.fstat(fd)
        eq(st.st_size, MIB, "size after punch")
        eq(before - st.st_blocks, 256 * 1024 // 512, "st_blocks freed by the punch")
        want = want[:65536] + bytes(256 * 1024) + want[65536 + 256 * 1024:]
        expect(os.pread(fd, MIB, 0) == want, "content after punching 64K+256K")
        # Unaligned punch: partial blocks are zeroed, whole ones freed.
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 500000, 10000)
        want = want[:500000] + bytes(10000) + want[510000:]
        expect(os.pread(fd, MIB, 0) == want, "content after an unaligned punch")
        eq(fsx.seek(fd, 65536, os.SEEK_HOLE), 65536, "SEEK_HOLE at the punched hole")
        eq(fsx.seek(fd, 65536, os.SEEK_DATA), 65536 + 256 * 1024, "SEEK_DATA after the punched hole")
        # Past EOF: nothing changes.
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * MIB, MIB)
        eq(os.fstat(fd).st_size, MIB, "size after a punch past EOF")
        os.fsync(fd)
    finally:
        os.close(fd)
    remount()
    expect(get(f) == want, "content after remount")


def t_collapse_insert():
    # 700 blocks: direct, single indirect and the start of the double indirect tree.
    size = 700 * BLK
    f, want = data_file("collapse", 19, size)
    fd = os.open(f, os.O_RDWR)

    def check(what):
        st = os.fstat(fd)
        eq(st.st_size, len(want), f"size after {what}")
        expect(os.pread(fd, len(want), 0) == want, f"content after {what}")

    def collapse(off, n):
        nonlocal want
        fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, off, n)
        want = want[:off] + want[off + n:]

    def insert(off, n):
        nonlocal want
        fallocate(fd, FALLOC_FL_INSERT_RANGE, off, n)
        want = want[:off] + bytes(n) + want[off:]

    try:
        blocks = os.fstat(fd).st_blocks
        collapse(5 * BLK, 20 * BLK)  # across the direct / single indirect boundary
        check("a collapse across the direct pointers' end")
        eq(blocks - os.fstat(fd).st_blocks, 20 * BLK // 512, "st_blocks freed by the collapse")
        insert(10 * BLK, 600 * BLK)  # moves the tail into the double indirect tree
        check("an insert into the double indirect range")
        eq(fsx.seek(fd, 10 * BLK, os.SEEK_HOLE), 10 * BLK, "SEEK_HOLE at the inserted range")
        eq(fsx.seek(fd, 10 * BLK, os.SEEK_DATA), 610 * BLK, "SEEK_DATA after the inserted range")
        collapse(300 * BLK, 200 * BLK)  # a collapse inside the inserted hole
        check("a collapse inside a hole")
        insert(0, BLK)
        collapse(len(want) - 2 * BLK, BLK)
        check("an insert at 0 and a collapse of the next-to-last block")
        # Preallocated (unwritten) blocks move too and still read as zeros.
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 50 * BLK, 8 * BLK)
        want = want[:50 * BLK] + bytes(8 * BLK) + want[58 * BLK:]
        collapse(20 * BLK, 4 * BLK)
        check("a collapse before preallocated blocks")
        for mode, off, n, what in [
            (FALLOC_FL_COLLAPSE_RANGE, 100, BLK, "an unaligned collapse"),
            (FALLOC_FL_INSERT_RANGE, BLK, 100, "an unaligned insert"),
            (FALLOC_FL_COLLAPSE_RANGE, len(want) - BLK, BLK, "a collapse reaching the end"),
            (FALLOC_FL_INSERT_RANGE, len(want), BLK, "an insert at the end"),
        ]:
            expect_errno("EINVAL", fallocate, fd, mode, off, n, what=what)
        expect_errno(fsx.err_name(errno.EOPNOTSUPP), fallocate, fd, FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, BLK, what="a collapse with KEEP_SIZE")
        expect_errno("EFBIG", fallocate, fd, FALLOC_FL_INSERT_RANGE, 0, MAXBYTES[fsx.FSTYP] // BLK * BLK, what="an insert past the maximum size")
        check("the rejected requests")
        os.fsync(fd)
    finally:
        os.close(fd)
    remount()
    expect(get(f) == want, "content after remount")


def t_zero_range():
    f, want = data_file("zerorange", 18, MIB)
    fd = os.open(f, os.O_RDWR)
    try:
        fallocate(fd, FALLOC_FL_ZERO_RANGE, 700000 + 100, 10000)
        want = want[:700100] + bytes(10000) + want[710100:]
        expect(os.pread(fd, MIB, 0) == want, "content after ZERO_RANGE")
        eq(os.fstat(fd).st_size, MIB, "size after ZERO_RANGE inside the file")
        fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, MIB - 10, 20010)
        eq(os.fstat(fd).st_size, MIB, "size after ZERO_RANGE | KEEP_SIZE past EOF")
        fallocate(fd, FALLOC_FL_ZERO_RANGE, MIB - 10, 20010)
        eq(os.fstat(fd).st_size, MIB + 20000, "size after ZERO_RANGE past EOF")
        want = want[:MIB - 10] + bytes(20010)
        expect(os.pread(fd, 2 * MIB, 0) == want, "content after ZERO_RANGE past EOF")
        os.fsync(fd)
    finally:
        os.close(fd)
    remount()
    expect(get(f) == want, "content after remount")


def t_efbig():
    top = fresh("efbig")
    limit = MAXBYTES.get(fsx.FSTYP)
    expect(limit, f"no s_maxbytes known for {fsx.FSTYP}")
    f = os.path.join(top, "f")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        eq(os.pwrite(fd, b"z", limit - 1), 1, "write of the last byte")
        eq(os.fstat(fd).st_size, limit, "size")
        eq(os.pread(fd, 2, limit - 1), b"z", "read of the last byte")
        expect_errno("EFBIG", os.pwrite, fd, b"y", limit, what="pwrite at s_maxbytes")
        expect_errno("EFBIG", os.ftruncate, fd, limit + 1, what="ftruncate past s_maxbytes")
        os.ftruncate(fd, limit)
        # A write that crosses the limit is cut short.
        eq(os.pwrite(fd, b"abcd", limit - 2), 2, "write across s_maxbytes")
        os.ftruncate(fd, 0)
        eq(os.fstat(fd).st_blocks, 0, "st_blocks after truncating the huge file")
    finally:
        os.close(fd)


def t_odirect():
    top = fresh("odirect")
    f = os.path.join(top, "f")
    data = fsx.gen(13, 0, 256 * 1024)
    buf = mmap.mmap(-1, len(data))  # page-aligned
    buf[:] = data
    fd = os.open(f, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        eq(os.pwritev(fd, [buf], 0), len(data), "O_DIRECT write")
        eq(os.pwritev(fd, [memoryview(buf)[:BLK]], 1 << 20), BLK, "O_DIRECT write past EOF")
        out = mmap.mmap(-1, len(data))
        eq(os.preadv(fd, [out], 0), len(data), "O_DIRECT read")
        expect(out[:] == data, "O_DIRECT read differs from what was written")
        expect_errno("EINVAL", os.pwrite, fd, data[:100], 1, what="unaligned O_DIRECT write")
    finally:
        os.close(fd)
    fsx.drop_caches()
    got = get(f)
    eq(len(got), (1 << 20) + BLK, "size")
    expect(got[:len(data)] == data and got[len(data):1 << 20] == bytes((1 << 20) - len(data))
           and got[1 << 20:] == data[:BLK], "buffered read of O_DIRECT data")


def t_mmap():
    top = fresh("mmap")
    f = os.path.join(top, "f")
    size = 5 * BLK + 123
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, size)
        data = fsx.gen(14, 0, size)
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[:] = data
            m.flush()
        eq(os.pread(fd, size + 10, 0), data, "read after msync")
    finally:
        os.close(fd)
    remount()
    eq(sha(get(f)), sha(data), "mmap-written data after remount")
    # A mapping of a file with a hole, written in the middle; the tail past EOF stays zero.
    g = os.path.join(top, "g")
    fd = os.open(g, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 64 * BLK + 10)
        with mmap.mmap(fd, 64 * BLK + 10) as m:
            m[40 * BLK:40 * BLK + 5] = b"hello"
            m.flush()
    finally:
        os.close(fd)
    remount()
    got = get(g)
    expect(len(got) == 64 * BLK + 10 and got[40 * BLK:40 * BLK + 5] == b"hello"
           and got.count(0) == len(got) - 5, "sparse mmap write after remount")


def t_copy():
    top = fresh("copy")
    src = os.path.join(top, "src")
    size = 5 * MIB + 17
    want = fsx.write_file(src, 15, size)
    fi = os.open(src, os.O_RDONLY)
    try:
        out = os.path.join(top, "sendfile")
        fo = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
        off = 0
        while off < size:
            n = os.sendfile(fo, fi, off, size - off)
            expect(n > 0, f"sendfile returned {n} at {off}")
            off += n
        os.close(fo)
        out2 = os.path.join(top, "splice")
        fo = os.open(out2, os.O_WRONLY | os.O_CREAT, 0o644)
        r, w = os.pipe()
        off = 0
        os.lseek(fi, 0, os.SEEK_SET)
        while off < size:
            n = os.splice(fi, w, min(65536, size - off))
            m = 0
            while m < n:
                m += os.splice(r, fo, n - m)
            off += n
        os.close(r)
        os.close(w)
        os.close(fo)
        out3 = os.path.join(top, "copy_file_range")
        fo = os.open(out3, os.O_WRONLY | os.O_CREAT, 0o644)
        off = 0
        while off < size:
            n = os.copy_file_range(fi, fo, size - off, off, off)
            expect(n > 0, f"copy_file_range returned {n} at {off}")
            off += n
        os.close(fo)
    finally:
        os.close(fi)
    remount()
    for p in (out, out2, out3):
        eq(fsx.sha_range(p, 0, size), want, f"sha256 of {os.path.basename(p)}")
        eq(os.stat(p).st_size, size, f"size of {os.path.basename(p)}")



# ---- swap files ----------------------------------------------------------------------------
# swapon(2) directly, for its exact errno: util-linux's swapon(8) refuses a file with holes
# itself (st_blocks against the size) before the kernel sees it. mkswap is util-linux's.

libc.swapon.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.swapoff.argtypes = [ctypes.c_char_p]
CGROUP = "/sys/fs/cgroup"
SWAP_MAGIC = b"AEGISWAP"


def swapon(p):
    if libc.swapon(os.fsencode(p), 0) != 0:
        raise oserror()


def swapoff(p):
    if libc.swapoff(os.fsencode(p)) != 0:
        raise oserror()


def proc_swaps():
    """/proc/swaps: {path: (type, size KiB, used KiB)}."""
    with open("/proc/swaps") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return {r[0]: (r[1], int(r[2]), int(r[3])) for r in rows}


def mkswap(p):
    os.chmod(p, 0o600)
    fsx.run("mkswap", "-q", p)


def swap_size_kib(size):
    """What /proc/swaps shows for a swap file of SIZE bytes made by mkswap: every whole page
    but the header."""
    return (size // BLK - 1) * BLK // 1024


def write_a(p, size):
    """A file of SIZE bytes 'a' (as xfstests' _format_swapfile writes them), fsync'ed."""
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        chunk = b"a" * MIB
        for off in range(0, size, MIB):
            os.pwrite(fd, chunk[:min(MIB, size - off)], off)
        os.fsync(fd)
    finally:
        os.close(fd)


def swapon_refused(p, want):
    """swapon of P fails with WANT, leaves nothing in /proc/swaps and the file writable."""
    expect_errno(want, swapon, p, what=f"swapon of {os.path.basename(p)}")
    expect(p not in proc_swaps(), f"{p} in /proc/swaps after a failed swapon")
    fd = os.open(p, os.O_WRONLY)
    try:
        eq(os.pwrite(fd, b"x", 4090), 1, "write after a failed swapon")
    finally:
        os.close(fd)


def swap_cycle(p, size):
    """swapon and swapoff of P (SIZE bytes, made by mkswap): the right size in /proc/swaps."""
    swapon(p)
    try:
        eq(proc_swaps().get(p), ("file", swap_size_kib(size), 0), f"/proc/swaps entry of {os.path.basename(p)}")
    finally:
        swapoff(p)
    expect(p not in proc_swaps(), f"{p} still in /proc/swaps after swapoff")


def swap_unit(i):
    return SWAP_MAGIC + i.to_bytes(8, "little")


def swap_page(i):
    return swap_unit(i) * (BLK // 16)


def fill_swap_page(buf, i):
    """Writes swap_page(I) into page I of BUF in place, doubling from its first 16 bytes: a
    page-sized copy in the heap could be swapped out too, and its heap page (a pattern's tail,
    then malloc's chunks) would look like a torn swap page in the file."""
    o = i * BLK
    buf[o:o + 16] = swap_unit(i)
    n = 16
    while n < BLK:
        buf.move(o + n, o, n)
        n *= 2


def holds_swap_page(view, i):
    """Whether page I of VIEW (a memoryview: compared in place, no copy) is swap_page(I)."""
    o = i * BLK
    return view[o:o + 16] == swap_unit(i) and view[o:o + BLK - 16] == view[o + 16:o + BLK]


def cgroup_child(name, controllers):
    """A cgroup NAME under CGROUP (cgroup2, mounted if it is not) with CONTROLLERS (e.g.
    "+memory +io") enabled for it. Returns (its directory, whether cgroup2 was mounted here)."""
    with open("/proc/mounts") as f:
        have = any(line.split()[1] == CGROUP and line.split()[2] == "cgroup2" for line in f)
    if not have:
        fsx.run("mount", "-t", "cgroup2", "none", CGROUP)
    with open(os.path.join(CGROUP, "cgroup.subtree_control"), "w") as f:
        f.write(f"{controllers}\n")
    cg = os.path.join(CGROUP, name)
    os.makedirs(cg, exist_ok=True)
    return cg, not have


def cgroup_setup(name, high):
    """A memory cgroup NAME with memory.high HIGH. Returns (its directory, whether cgroup2
    was mounted here). memory.high, not memory.max: over it the kernel reclaims and
    throttles but never OOM-kills, which memory.max did now and then when swap-out under
    TCG was slower than 16 reclaim rounds."""
    cg, mounted_here = cgroup_child(name, "+memory")
    with open(os.path.join(cg, "memory.high"), "w") as f:
        f.write(f"{high}\n")
    return cg, mounted_here


def swap_workload(cg, swapfile, pages, w):
    """Child: joins cgroup CG, fills PAGES pages with swap_page patterns (more than
    memory.high, so most go to swap), reports the cgroup's memory.swap.current and the swap
    file's used KiB, then checks every page (swapping them back in)."""
    try:
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write("0\n")
        buf = mmap.mmap(-1, pages * BLK)  # page-aligned: one pattern per page
        for i in range(pages):
            fill_swap_page(buf, i)
        with open(os.path.join(cg, "memory.swap.current")) as f:
            current = int(f.read())
        used = proc_swaps().get(swapfile, ("", 0, 0))[2]
        view = memoryview(buf)
        bad = sum(1 for i in range(pages) if not holds_swap_page(view, i))
        view.release()
        out = f"{current} {used} {bad}"
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        out = f"error {type(e).__name__}: {e}"
    os.write(w, out.encode())
    os._exit(0)


def runs_of(data, unit):
    """What each UNIT-byte piece of DATA holds, runs merged into [what, count] pairs: "#I"
    swap_page(I)'s bytes, "a" write_a's bytes, "0" zeroes, "?" anything else."""
    runs = []
    for o in range(0, len(data), unit):
        piece = data[o:o + unit]
        if piece[:8] == SWAP_MAGIC and piece == piece[:16] * (unit // 16):
            what = f"#{int.from_bytes(piece[8:16], 'little')}"
        elif piece == b"a" * unit:
            what = "a"
        elif piece == bytes(unit):
            what = "0"
        else:
            what = "?"
        if runs and runs[-1][0] == what:
            runs[-1][1] += 1
        else:
            runs.append([what, 1])
    return runs


def sectors_of(page):
    """How a torn page was torn: what each 512-byte sector holds (see runs_of), and for a
    mixed sector what each 16 bytes of it hold, in brackets."""
    out, o = [], 0
    for what, n in runs_of(page, 512):
        out.append(f"{what}x{n}")
        if what == "?":
            for i in range(n):
                sector = page[o + i * 512:o + (i + 1) * 512]
                out.append("[" + " ".join(f"{w}x{c}" for w, c in runs_of(sector, 16)) + "]")
        o += n * 512
    return " ".join(out)


def filled_prefix(page):
    """How many bytes of PAGE are swap_page(I)'s first bytes with only zeroes after them, I
    from the page's own header; 0 when it is not such a page."""
    want = swap_page(int.from_bytes(page[8:16], "little"))
    if page == want:
        return BLK
    k = next(i for i in range(BLK) if page[i] != want[i])
    return k if page[k:] == bytes(BLK - k) else 0


def swap_pages_in_file(p, size):
    """After swapoff: the whole pages of P (read O_DIRECT, as on disk) that hold a swap_page
    pattern, the pages that hold one only partly filled, and the number of pages that start
    like one but are neither (the first few noted sector by sector).

    A partly filled page is a stale slot, not a fault: fill_swap_page fills each page from
    zeroes upwards in steps, and reclaim may swap a page out between two steps; the write
    fault that follows frees that slot and the whole page later goes to another one.
    Anything else in a slot (other pages' sectors, the file's old bytes after a page's
    start) would be a misplaced or lost write: swap never writes a zero page, so zeroes can
    only come from the page itself."""
    buf = mmap.mmap(-1, MIB)
    found = partial = torn = 0
    fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
    try:
        for off in range(0, size, MIB):
            n = os.preadv(fd, [buf], off)
            for o in range(0, n, BLK):
                page = buf[o:o + BLK]
                if page[:8] != SWAP_MAGIC:
                    continue
                k = filled_prefix(page)
                if k == BLK:
                    found += 1
                elif k:
                    partial += 1
                    if partial <= 4:
                        note(f"swap page filled to byte {k} at file offset {off + o}")
                else:
                    torn += 1
                    if torn <= 4:
                        note(f"torn swap page at file offset {off + o}: {sectors_of(page)}")
    finally:
        os.close(fd)
        buf.close()
    return found, partial, torn


def t_swapfile():
    top = fresh("swapfile")
    f = os.path.join(top, "swap")
    size = 96 * MIB
    write_a(f, size)
    mkswap(f)
    expect(f not in proc_swaps(), f"{f} in /proc/swaps before swapon")
    swapon(f)
    try:
        eq(proc_swaps().get(f), ("file", swap_size_kib(size), 0), "/proc/swaps entry")
        expect_errno("EBUSY", swapon, f, what="second swapon")
        # While it is swap, nothing may change the file or its blocks (the VFS's S_SWAPFILE
        # checks, and AegisFS's own before the O_DIRECT alignment check).
        fd = os.open(f, os.O_RDWR)
        dfd = os.open(f, os.O_RDWR | os.O_DIRECT)
        src = os.open(f, os.O_RDONLY)
        buf = mmap.mmap(-1, BLK)
        try:
            expect_errno("ETXTBSY", os.pwrite, fd, b"x", 0, what="write")
            expect_errno("ETXTBSY", os.pwrite, fd, b"x", size, what="write past EOF")
            expect_errno("ETXTBSY", os.pwritev, dfd, [buf], BLK, what="O_DIRECT write")
            expect_errno("ETXTBSY", os.pwrite, dfd, b"x" * 100, 1, what="unaligned O_DIRECT write")
            expect_errno("ETXTBSY", os.ftruncate, fd, size - BLK, what="ftruncate smaller")
            expect_errno("ETXTBSY", os.ftruncate, fd, size, what="ftruncate to the same size")
            expect_errno("ETXTBSY", os.truncate, f, 0, what="truncate")
            expect_errno("ETXTBSY", os.open, f, os.O_WRONLY | os.O_TRUNC, what="open O_TRUNC")
            for mode, off, length in ((0, 0, BLK), (FALLOC_FL_KEEP_SIZE, size, MIB),
                                      (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, BLK, BLK),
                                      (FALLOC_FL_ZERO_RANGE, BLK, BLK),
                                      (FALLOC_FL_COLLAPSE_RANGE, BLK, BLK),
                                      (FALLOC_FL_INSERT_RANGE, BLK, BLK)):
                expect_errno("ETXTBSY", fallocate, fd, mode, off, length, what=f"fallocate mode {mode:#x}")
            expect_errno("ETXTBSY", mmap.mmap, fd, BLK, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                         what="shared writable mmap")
            expect_errno("ETXTBSY", os.copy_file_range, src, fd, BLK, 0, BLK, what="copy_file_range into it")
            expect_errno("ETXTBSY", os.sendfile, fd, src, 0, BLK, what="sendfile into it")
            with mmap.mmap(fd, BLK, mmap.MAP_SHARED, mmap.PROT_READ) as m:
                eq(m[BLK - 10:], b"SWAPSPACE2", "signature through a read-only mapping")
            eq(os.pread(fd, 10, BLK - 10), b"SWAPSPACE2", "signature read")
            eq(os.pread(fd, 4, BLK), b"aaaa", "data read")
        finally:
            buf.close()
            for x in (fd, dfd, src):
                os.close(x)
        expect_errno("EPERM", os.unlink, f, what="unlink")
        expect_errno("EPERM", os.rename, f, os.path.join(top, "moved"), what="rename")
        put(os.path.join(top, "other"), b"other")
        expect_errno("EPERM", os.rename, os.path.join(top, "other"), f, what="rename onto it")
        eq(os.stat(f).st_size, size, "size")
        # Real swapping: a process in a memory cgroup with memory.high 24 MiB fills 64 MiB.
        cg, mounted_here = cgroup_setup("posix-swap", 24 * MIB)
        try:
            pages = 64 * MIB // BLK
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                swap_workload(cg, f, pages, w)
            os.close(w)
            out = b""
            while chunk := os.read(r, 4096):
                out += chunk
            os.close(r)
            _, status = os.waitpid(pid, 0)
            words = out.decode().split()
            expect(status == 0 and len(words) == 3 and words[0] != "error",
                   f"swap workload (status {status}): {out.decode()!r}")
            current, used, bad = (int(x) for x in words)
            note(f"swapfile: {current // 1024} KiB of the cgroup in swap, {used} KiB used in the file")
            expect(current >= 16 * MIB, f"memory.swap.current {current}: the workload did not swap")
            expect(used >= 16 * 1024, f"{used} KiB of the swap file used")
            eq(bad, 0, "pages that came back from swap wrong")
        finally:
            os.rmdir(cg)
            if mounted_here:
                fsx.umount(CGROUP)
    finally:
        swapoff(f)
    expect(f not in proc_swaps(), "still in /proc/swaps after swapoff")
    # The pages went to the file's own blocks: they are there, whole, read past the cache.
    found, partial, torn = swap_pages_in_file(f, size)
    note(f"swapfile: {found} swapped-out pages found in the file, {partial} partly filled")
    expect(found >= 8 * MIB // BLK, f"only {found} swapped-out pages in the file's blocks")
    eq(torn, 0, "torn swap pages in the file")
    # After swapoff the file is an ordinary file again.
    fd = os.open(f, os.O_RDWR)
    try:
        eq(os.pwrite(fd, b"x", 0), 1, "write after swapoff")
        os.ftruncate(fd, MIB)
    finally:
        os.close(fd)
    os.unlink(f)
    eq(sorted(os.listdir(top)), ["other"], "listing after the unlink")


def t_swapfile_holes():
    top = fresh("swapfile-holes")
    fsx.run("dmesg", "-C")
    # All hole but the header mkswap writes.
    sparse = os.path.join(top, "sparse")
    fd = os.open(sparse, os.O_WRONLY | os.O_CREAT, 0o600)
    os.ftruncate(fd, MIB)
    os.close(fd)
    mkswap(sparse)
    swapon_refused(sparse, "EINVAL")
    # One block punched out of a written file.
    punched = os.path.join(top, "punched")
    write_a(punched, MIB)
    fd = os.open(punched, os.O_RDWR)
    try:
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MIB // 2, BLK)
    finally:
        os.close(fd)
    mkswap(punched)
    swapon_refused(punched, "EINVAL")
    # iomap_swapfile_activate's reason, for both (not the bmap path's "swapfile has holes").
    log = fsx.run("dmesg")
    for p in (sparse, punched):
        expect(f"swapon: file {p} has unallocated extents" in log, f"no 'has unallocated extents' line for {p}: {log[-300:]!r}")
    # A hole only in the last, partial page does not count: only whole pages are swap.
    tail = os.path.join(top, "tail")
    write_a(tail, MIB)
    os.truncate(tail, MIB + 2048)
    mkswap(tail)
    swap_cycle(tail, MIB + 2048)
    for p in (sparse, punched, tail):
        os.unlink(p)


def t_swapfile_unwritten():
    top = fresh("swapfile-unwritten")
    size = 4 * MIB
    # Preallocated: UNWRITTEN blocks but the header; swap takes them as they are.
    f = os.path.join(top, "falloc")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fallocate(fd, 0, 0, size)
    finally:
        os.close(fd)
    mkswap(f)
    swap_cycle(f, size)
    got = get(f)
    eq(got[BLK - 10:BLK], b"SWAPSPACE2", "signature after swapoff")
    expect(got[BLK:] == bytes(size - BLK), "the preallocated blocks read zeros after swapoff")
    # Written and UNWRITTEN blocks mixed (xfstests generic/496).
    g = os.path.join(top, "mixed")
    fd = os.open(g, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fallocate(fd, 0, 0, size)
        for off in range(BLK, size, 2 * BLK):
            os.pwrite(fd, b"X", off)
        os.fsync(fd)
    finally:
        os.close(fd)
    mkswap(g)
    swap_cycle(g, size)
    for p in (f, g):
        os.unlink(p)


def t_sync():
    top = fresh("sync")
    f = os.path.join(top, "f")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fsx.write_data(fd, 16, 0, MIB)
        os.fsync(fd)
        fsx.write_data(fd, 16, MIB, MIB)
        os.fdatasync(fd)
        fsx.syncfs(fd)
        os.sync()
    finally:
        os.close(fd)
    dfd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    fsx.drop_caches()
    fsx.check_data(f, 16, 0, 2 * MIB)


def io_stat(cg, dev):
    """The io.stat counters (rbytes, wbytes, ...) of cgroup directory CG for block device DEV;
    empty if the cgroup did no I/O to it."""
    rdev = os.stat(dev).st_rdev
    key = f"{os.major(rdev)}:{os.minor(rdev)}"
    with open(os.path.join(cg, "io.stat")) as f:
        for line in f:
            fields = line.split()
            if fields and fields[0] == key:
                return {k: int(v) for k, v in (kv.split("=") for kv in fields[1:])}
    return {}


def t_cgroup_writeback():
    # Writeback is charged to the cgroup that dirtied the pages, also when a process of
    # another cgroup starts it, as on ext4: an io.max limit on a cgroup must hold its
    # buffered writes too, whoever calls fsync or however late the flusher gets to them.
    size = 16 * MIB
    f = os.path.join(fresh("cgwb"), "f")
    cg, mounted_here = cgroup_child("posix-cgwb", "+memory +io")
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with open(os.path.join(cg, "cgroup.procs"), "w") as p:
                    p.write("0\n")
                fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o644)
                fsx.write_data(fd, 23, 0, size)
                os.close(fd)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        expect(os.waitstatus_to_exitcode(status) == 0, "the writer in the cgroup failed")
        # The root cgroup starts the writeback of what the cgroup left dirty.
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        wbytes = io_stat(cg, DEV).get("wbytes", 0)
        # The metadata goes out in the journal commit of the fsync: the root's.
        expect(size <= wbytes <= size + size // 20,
               f"the cgroup that dirtied {size} bytes was charged for {wbytes} bytes written")
    finally:
        os.rmdir(cg)
        if mounted_here:
            fsx.umount(CGROUP)
    fsx.drop_caches()
    fsx.check_data(f, 23, 0, size)


def t_remount_ro():
    top = fresh("ro")
    f = os.path.join(top, "f")
    put(f, b"before ro")
    fd = os.open(f, os.O_WRONLY)
    try:
        expect_errno("EBUSY", remount_flags, MS_RDONLY, what="remount ro with a file open for writing")
    finally:
        os.close(fd)
    # A file written and deleted just now is gone at its unlink, as on ext4: nothing (the
    # journal's list of files whose data goes before the commit) keeps it until the commit.
    # (Synced first: no commit is in flight, which holds its files while it writes them.)
    os.sync()
    gone = os.path.join(top, "gone")
    put(gone, b"g" * 65536)
    os.unlink(gone)
    remount_flags(MS_RDONLY)
    try:
        expect_errno("EROFS", os.open, os.path.join(top, "new"), os.O_WRONLY | os.O_CREAT)
        expect_errno("EROFS", os.open, f, os.O_WRONLY)
        expect_errno("EROFS", os.mkdir, os.path.join(top, "d"))
        expect_errno("EROFS", os.unlink, f)
        expect_errno("EROFS", os.rename, f, os.path.join(top, "g"))
        expect_errno("EROFS", os.chmod, f, 0o600)
        expect_errno("EROFS", os.truncate, f, 0)
        expect_errno("EROFS", os.utime, f, None)
        eq(get(f), b"before ro", "read while read-only")
        expect(os.statvfs(MNT).f_flag & os.ST_RDONLY, "statvfs without ST_RDONLY")
    finally:
        remount_flags(0)
    put(os.path.join(top, "new"), b"after rw")
    eq(get(os.path.join(top, "new")), b"after rw", "write after remount rw")
    remount()
    eq(sorted(os.listdir(top)), ["f", "new"], "listing after remount")


FS_IOC_GETFSLABEL, FS_IOC_SETFSLABEL = 0x81009431, 0x41009432
FS_IOC_GETFSUUID = 0x80111500  # struct fsuuid2: u8 len, u8 uuid[16]
# Longest label, and where the superblock keeps the UUID, per filesystem type.
LABEL_MAX = {"aegisfs": 63, "ext4": 16}
UUID_OFFSET = {"aegisfs": 1024 + 0xB0, "ext4": 1024 + 0x68}


def get_label():
    fd = os.open(MNT, os.O_RDONLY)
    try:
        buf = fcntl.ioctl(fd, FS_IOC_GETFSLABEL, bytes(256))
    finally:
        os.close(fd)
    return buf.split(b"\0", 1)[0]


def set_label(label):
    fd = os.open(MNT, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_SETFSLABEL, label.ljust(256, b"\0"))
    finally:
        os.close(fd)


def t_label_uuid():
    eq(get_label(), b"posix", "label made by mkfs")
    longest = b"L" * LABEL_MAX[fsx.FSTYP]
    set_label(longest)
    eq(get_label(), longest, "label after FS_IOC_SETFSLABEL")
    expect_errno("EINVAL", set_label, longest + b"x", what="label one byte too long")
    eq(fsx.as_user(lambda: set_label(b"user")), "EPERM", "FS_IOC_SETFSLABEL as a user")
    eq(fsx.as_user(get_label), str(longest), "FS_IOC_GETFSLABEL as a user")
    set_label(b"relabelled")
    remount()
    eq(get_label(), b"relabelled", "label after remount")
    remount_flags(MS_RDONLY)
    try:
        expect_errno("EROFS", set_label, b"ro", what="FS_IOC_SETFSLABEL read-only")
    finally:
        remount_flags(0)
    set_label(b"posix")
    fd = os.open(MNT, os.O_RDONLY)
    try:
        got = fcntl.ioctl(fd, FS_IOC_GETFSUUID, bytes(17))
    finally:
        os.close(fd)
    with open(DEV, "rb") as dev:
        dev.seek(UUID_OFFSET[fsx.FSTYP])
        on_disk = dev.read(16)
    eq(got[0], 16, "FS_IOC_GETFSUUID length")
    eq(got[1:], on_disk, "FS_IOC_GETFSUUID against the superblock")
    expect(on_disk != bytes(16), "mkfs left the UUID zero")


# The superblock's "journal needs recovery" flag: (offset, size, bit) per filesystem type.
RECOVER_FLAG = {"aegisfs": (1024 + 0x18, 8, 0x1), "ext4": (1024 + 0x60, 4, 0x4)}


def needs_recovery():
    off, size, bit = RECOVER_FLAG[fsx.FSTYP]
    with open(DEV, "rb") as dev:
        dev.seek(off)
        return int.from_bytes(dev.read(size), "little") & bit != 0


def t_freeze():
    top = fresh("freeze")
    f = os.path.join(top, "f")
    fsx.write_file(f, 41, 3 * MIB)
    for i in range(20):
        put(os.path.join(top, f"small{i}"), b"%d" % i)
    os.rename(os.path.join(top, "small0"), os.path.join(top, "renamed"))
    fsx.run("fsfreeze", "-f", MNT)
    pid = None
    try:
        pid = os.fork()
        if pid == 0:
            try:
                put(os.path.join(top, "during"), b"written after thaw")
            finally:
                os._exit(0)
        time.sleep(2)
        expect(os.waitpid(pid, os.WNOHANG)[0] == 0, "a create finished while frozen")
        expect(not needs_recovery(), "the frozen device still needs journal recovery")
        # What is on the device alone is the whole, consistent filesystem.
        fsx.fsck(DEV)
    finally:
        fsx.run("fsfreeze", "-u", MNT)
        if pid:
            os.waitpid(pid, 0)
    eq(get(os.path.join(top, "during")), b"written after thaw", "the create that waited")
    put(os.path.join(top, "after"), b"after thaw")
    os.sync()
    expect(needs_recovery(), "no recovery flag after the thaw")
    remount()
    fsx.check_data(f, 41, 0, 3 * MIB)
    eq(get(os.path.join(top, "renamed")), b"0", "file renamed before the freeze")
    eq(get(os.path.join(top, "after")), b"after thaw", "file written after the thaw")


SYS_open_tree, SYS_move_mount, SYS_mount_setattr = 428, 429, 442  # x86_64
OPEN_TREE_CLONE, AT_RECURSIVE, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x8000, 4
MOUNT_ATTR_IDMAP, CLONE_NEWUSER = 0x00100000, 0x10000000
IDMAP_BASE, IDMAP_COUNT = 10000, 65536


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def syscall(*args):
    ret = libc.syscall(*args)
    if ret < 0:
        raise oserror()
    return ret


def userns_fd(base, count):
    """An fd of a new user namespace whose ids 0..COUNT map to BASE..BASE+COUNT."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        ok = libc.unshare(CLONE_NEWUSER) == 0
        os.write(w, b"1" if ok else b"0")
        os.close(w)
        time.sleep(60)
        os._exit(0)
    os.close(w)
    try:
        expect(os.read(r, 1) == b"1", "unshare(CLONE_NEWUSER) failed")
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(f"0 {base} {count}\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
    finally:
        os.close(r)
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def idmapped_mount(src, dst):
    """Mounts a copy of mount SRC at DST with ids 0..65535 of the disk shown as
    IDMAP_BASE..IDMAP_BASE+65535 (open_tree, mount_setattr(MOUNT_ATTR_IDMAP), move_mount)."""
    ns = userns_fd(IDMAP_BASE, IDMAP_COUNT)
    tree = syscall(SYS_open_tree, -100, src.encode(), OPEN_TREE_CLONE | os.O_CLOEXEC)
    try:
        attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, ns)
        syscall(SYS_mount_setattr, tree, b"", 0x1000 | AT_RECURSIVE,  # AT_EMPTY_PATH
                ctypes.byref(attr), ctypes.sizeof(attr))
        os.makedirs(dst, exist_ok=True)
        syscall(SYS_move_mount, tree, b"", -100, dst.encode(), MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(tree)
        os.close(ns)


def t_idmapped():
    top = fresh("idmap")
    os.chmod(top, 0o777)
    put(os.path.join(top, "by-root"), b"root's")
    os.chown(os.path.join(top, "by-root"), 0, 0)
    view = "/mnt/idmapped"
    idmapped_mount(MNT, view)
    vtop = os.path.join(view, "idmap")
    try:
        st = os.stat(os.path.join(vtop, "by-root"))
        eq((st.st_uid, st.st_gid), (IDMAP_BASE, IDMAP_BASE), "owner of a root file seen through the idmapped mount")
        # Created through the mount by the user the disk's uid 5 appears as.
        mapped = IDMAP_BASE + 5

        def create():
            put(os.path.join(vtop, "by-mapped"), b"mapped user's")
            os.mkdir(os.path.join(vtop, "dir-mapped"))
            return "done"

        eq(fsx.as_user(create, mapped, mapped), "done", "create as a mapped user")
        for name in ("by-mapped", "dir-mapped"):
            st = os.stat(os.path.join(top, name))
            eq((st.st_uid, st.st_gid), (5, 5), f"on-disk owner of {name}")
            st = os.stat(os.path.join(vtop, name))
            eq((st.st_uid, st.st_gid), (mapped, mapped), f"owner of {name} through the mount")
        # Ids outside the mapping cannot be written through it.
        eq(fsx.as_user(lambda: put(os.path.join(vtop, "unmapped"), b"x"), 1000, 1000), "EOVERFLOW",
           "create as a user outside the mapping")
        os.chown(os.path.join(vtop, "by-root"), IDMAP_BASE + 7, IDMAP_BASE + 8)
        st = os.stat(os.path.join(top, "by-root"))
        eq((st.st_uid, st.st_gid), (7, 8), "on-disk owner after chown through the mount")
        expect_errno("EOVERFLOW", os.chown, os.path.join(vtop, "by-root"), 1000, 1000, what="chown to an unmapped id")
    finally:
        fsx.umount(view)
    remount()
    st = os.stat(os.path.join(top, "by-mapped"))
    eq((st.st_uid, st.st_gid), (5, 5), "on-disk owner after remount")


def t_atime():
    top = fresh("atime")
    f = os.path.join(top, "f")
    put(f, b"atime test")
    old_m = 1500000000_000000000
    # noatime: reads never update atime.
    remount("noatime")
    os.utime(f, ns=(old_m - 100, old_m))
    get(f)
    eq(os.stat(f).st_atime_ns, old_m - 100, "atime after a read with noatime")
    # relatime: updated when older than mtime or ctime (or a day old), then not again.
    remount("relatime")
    get(f)
    a1 = os.stat(f).st_atime_ns
    expect(a1 > time.time_ns() - 60 * 10**9, f"atime {a1} not updated by a read with relatime (atime < mtime)")
    time.sleep(0.05)
    get(f)
    eq(os.stat(f).st_atime_ns, a1, "atime after a second read with relatime")
    # strictatime: every read.
    remount("strictatime")
    get(f)
    expect(os.stat(f).st_atime_ns > a1, "atime not updated by a read with strictatime")
    remount()


def t_times():
    top = fresh("times")
    old = 1000000000_000000000
    now0 = time.time_ns() - 10**9  # coarse clock tolerance

    def fresh_times(p, what, m=True, c=True):
        st = os.lstat(p)
        if m:
            expect(st.st_mtime_ns >= now0, f"{what}: mtime {st.st_mtime_ns} not updated")
        else:
            eq(st.st_mtime_ns, old, f"{what}: mtime")
        if c:
            expect(st.st_ctime_ns >= now0, f"{what}: ctime {st.st_ctime_ns} not updated")

    def age(*ps):
        for p in ps:
            os.utime(p, ns=(old, old), follow_symlinks=False)
        for p in ps:
            # utime itself sets ctime to now; what matters below is mtime (and ctime >= now0).
            eq(os.lstat(p).st_mtime_ns, old, "aged mtime")

    f = os.path.join(top, "f")
    put(f, b"x")
    age(f)
    append(f, b"y")
    fresh_times(f, "file after write")
    age(f)
    os.chmod(f, 0o600)
    fresh_times(f, "file after chmod", m=False)
    age(f)
    os.truncate(f, 1)
    fresh_times(f, "file after truncate")
    a, b = os.path.join(top, "a"), os.path.join(top, "b")
    os.mkdir(a)
    os.mkdir(b)
    age(a, b)
    put(os.path.join(a, "n"), b"")
    fresh_times(a, "dir after create")
    age(a, b)
    os.rename(os.path.join(a, "n"), os.path.join(b, "n"))
    fresh_times(a, "source dir after rename")
    fresh_times(b, "target dir after rename")
    age(a, b, os.path.join(b, "n"))
    os.link(os.path.join(b, "n"), os.path.join(a, "l"))
    fresh_times(a, "dir after link")
    fresh_times(os.path.join(b, "n"), "file after link", m=False)
    age(a)
    os.unlink(os.path.join(a, "l"))
    fresh_times(a, "dir after unlink")
    age(a)
    os.symlink("t", os.path.join(a, "s"))
    fresh_times(a, "dir after symlink")
    age(a)
    os.mkdir(os.path.join(a, "sd"))
    fresh_times(a, "dir after mkdir")
    age(a)
    os.rmdir(os.path.join(a, "sd"))
    fresh_times(a, "dir after rmdir")
    age(a)
    os.listdir(a)
    eq(os.stat(a).st_mtime_ns, old, "dir mtime after a listing")


# ---- comparison with ext4 ----------------------------------------------------------------


# ---- file handles (name_to_handle_at / open_by_handle_at: NFS export) ---------------------

AT_HANDLE_CONNECTABLE = 0x002
MAX_HANDLE_SZ = 128
FILEID_INO32_GEN, FILEID_IS_CONNECTABLE, FILEID_IS_DIR = 1, 0x10000, 0x20000


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


def name_to_handle(path, flags=0):
    """name_to_handle_at(AT_FDCWD, PATH, ..., FLAGS) -> (handle_type, handle bytes)."""
    fh = FileHandle(MAX_HANDLE_SZ, 0)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), ctypes.byref(fh), ctypes.byref(mount_id), flags) != 0:
        raise oserror()
    return fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes])


def open_by_handle(handle, flags=os.O_RDONLY):
    """open_by_handle_at with a mount fd of MNT (opened for the call, so that it follows
    remounts); returns the fd."""
    kind, data = handle
    fh = FileHandle(len(data), kind)
    ctypes.memmove(fh.f_handle, data, len(data))
    mfd = os.open(MNT, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = libc.open_by_handle_at(mfd, ctypes.byref(fh), flags)
    finally:
        os.close(mfd)
    if fd < 0:
        raise oserror()
    return fd


def expect_stale(handle, flags=os.O_RDONLY, what=None):
    """open_by_handle_at must fail with ESTALE (an fd opened by mistake is closed, so that
    it does not keep the filesystem busy)."""
    def attempt():
        os.close(open_by_handle(handle, flags))
    expect_errno("ESTALE", attempt, what=what)


def read_by_handle(handle):
    fd = open_by_handle(handle)
    try:
        st = os.fstat(fd)
        return st.st_ino, os.pread(fd, st.st_size + 1, 0)
    finally:
        os.close(fd)


def path_by_handle(handle, flags=os.O_RDONLY):
    """The path the kernel gives the file opened by HANDLE (/proc/self/fd), and its ino."""
    fd = open_by_handle(handle, flags)
    try:
        return os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_ino
    finally:
        os.close(fd)


def handle_of_ino(ino, generation):
    """A FILEID_INO32_GEN handle made up from an inode number and a generation."""
    return FILEID_INO32_GEN, ino.to_bytes(4, "little") + generation.to_bytes(4, "little")


def fs_log_lines():
    """The kernel log lines of the filesystems' error reports."""
    marks = ("aegisfs (", "EXT4-fs error", "EXT4-fs warning")
    return [line for line in fsx.run("dmesg").splitlines() if any(m in line for m in marks)]


def t_handle_file():
    top = fresh("handle-file")
    f = os.path.join(top, "f")
    fsx.write_file(f, 70, 300000)
    want = get(f)
    ino = os.stat(f).st_ino
    h = name_to_handle(f)
    # Both filesystems encode the 32-bit inode number and generation (generic_encode_ino32_fh).
    eq((h[0], len(h[1])), (FILEID_INO32_GEN, 8), "handle type and size")
    eq(int.from_bytes(h[1][:4], "little"), ino, "inode number in the handle")
    for when in ("cached", "after drop_caches", "after umount and mount"):
        if when == "after drop_caches":
            fsx.drop_caches()
        elif when == "after umount and mount":
            remount()
            eq(name_to_handle(f), h, "handle encoded again after the remount (generation kept on disk)")
        got_ino, data = read_by_handle(h)
        eq(got_ino, ino, f"st_ino of the file opened by handle {when}")
        expect(data == want, f"data read through the handle {when} differs ({len(data)} bytes)")
    # Writing through a handle reaches the file.
    fd = open_by_handle(h, os.O_WRONLY)
    try:
        os.pwrite(fd, b"via handle", 0)
    finally:
        os.close(fd)
    eq(get(f, 0, 10), b"via handle", "data written through the handle")


def t_handle_dir():
    top = fresh("handle-dir")
    deep = os.path.join(top, "a", "b", "c")
    os.makedirs(deep)
    f = os.path.join(deep, "f")
    put(f, b"deep file")
    hd = name_to_handle(deep)
    hf = name_to_handle(f, AT_HANDLE_CONNECTABLE)
    eq(hd[0], FILEID_INO32_GEN, "type of a directory handle")
    eq(hf[0], FILEID_IS_CONNECTABLE | 2, "type of a connectable file handle (FILEID_INO32_GEN_PARENT)")
    expect_errno("ENOTDIR", lambda: os.close(open_by_handle(hf, os.O_RDONLY | os.O_DIRECTORY)),
                 what="O_DIRECTORY open of a file handle")
    for when in ("cached", "after drop_caches", "after umount and mount"):
        if when == "after drop_caches":
            fsx.drop_caches()
        elif when == "after umount and mount":
            remount()
        # A directory found by its handle is reconnected to the tree through `..`
        # (get_parent), so the kernel knows its path; so is a connectable file handle
        # (its parent from the handle, the name from the parent's entries).
        eq(path_by_handle(hd, os.O_RDONLY | os.O_DIRECTORY)[0], deep, f"path of the directory opened by handle {when}")
        fd = open_by_handle(hd, os.O_RDONLY | os.O_DIRECTORY)
        try:
            eq(os.listdir(fd), ["f"], f"listing through the directory handle {when}")
        finally:
            os.close(fd)
        eq(path_by_handle(hf)[0], f, f"path of the file opened by a connectable handle {when}")
        eq(read_by_handle(hf)[1], b"deep file", f"data through the connectable handle {when}")
    # Moved elsewhere: `..` now names the new parent.
    os.mkdir(os.path.join(top, "x"))
    moved = os.path.join(top, "x", "b2")
    os.rename(os.path.join(top, "a", "b"), moved)
    fsx.drop_caches()
    eq(path_by_handle(hd, os.O_RDONLY | os.O_DIRECTORY)[0], os.path.join(moved, "c"), "path of the directory after its parent moved")
    eq(path_by_handle(hf)[0], os.path.join(moved, "c", "f"), "path of the file after its grandparent moved")
    # A removed directory's handle is stale.
    gone = os.path.join(top, "gone")
    os.mkdir(gone)
    hg = name_to_handle(gone)
    os.rmdir(gone)
    expect_stale(hg, os.O_RDONLY | os.O_DIRECTORY, what="open of a removed directory's handle")
    fsx.drop_caches()
    expect_stale(hg, os.O_RDONLY | os.O_DIRECTORY, what="same after drop_caches")


def t_handle_stale():
    top = fresh("handle-stale")
    f = os.path.join(top, "f")
    put(f, b"first")
    ino = os.stat(f).st_ino
    h = name_to_handle(f)
    # Deleted while open: the open file is still reachable by its handle (as on ext4).
    fd = os.open(f, os.O_RDONLY)
    try:
        os.unlink(f)
        eq(read_by_handle(h), (ino, b"first"), "file deleted while open, through its handle")
    finally:
        os.close(fd)
    # Synced first, as xfstests' open_by_handle does: on AegisFS the running transaction
    # holds a reference to a file with newly written data until it commits, which keeps
    # the deleted file alive (as an open file would) until then.
    os.sync()
    expect_stale(h, what="open of a deleted file's handle")
    fsx.drop_caches()
    expect_stale(h, what="same after drop_caches")
    # The number taken by a new file (the lowest free one in the group, on both filesystems
    # the one just freed): the old handle names the new file's number with the old
    # generation, and must still be stale.
    reused = None
    extra = []
    for i in range(64):
        g = os.path.join(top, f"g{i}")
        put(g, b"second")
        if os.stat(g).st_ino == ino:
            reused = g
            break
        extra.append(g)
    if reused is None:
        note(f"handle-stale: inode {ino} not reused by 64 new files; reuse not checked")
    else:
        h2 = name_to_handle(reused)
        eq(h2[1][:4], h[1][:4], "inode number of the new file's handle")
        expect(h2 != h, "the new file has the old file's generation")
        for when in ("", " after drop_caches"):
            if when:
                fsx.drop_caches()
            expect_stale(h, what=f"open of the old handle of a reused inode number{when}")
            eq(read_by_handle(h2), (ino, b"second"), f"the new file through its handle{when}")
        note(f"handle-stale: inode {ino} reused after {len(extra)} other new files")
    remount()
    if reused is not None:
        expect_stale(h, what="old handle after umount and mount")
        eq(read_by_handle(h2), (ino, b"second"), "the new file through its handle after umount and mount")


def t_handle_forged():
    top = fresh("handle-forged")
    f = os.path.join(top, "f")
    put(f, b"x")
    kind, data = name_to_handle(f)
    gen = int.from_bytes(data[4:8], "little")
    root_gen = int.from_bytes(name_to_handle(MNT)[1][4:8], "little")
    files = os.statvfs(MNT).f_files
    fsx.drop_caches()
    before = fs_log_lines()
    bad = [(0, 0, "inode 0"), (1, 0, "inode 1"), (3, 0, "reserved inode 3"), (7, 12345, "reserved inode 7"),
           (files, 0, "last inode (free)"), (files - 5, 99, "a free inode"), (files + 1, 0, "past the last inode"),
           (0x7fffffff, 1, "inode 2^31 - 1"), (0xffffffff, 0xffffffff, "inode 2^32 - 1"),
           (os.stat(f).st_ino, gen ^ 1, "the file with a wrong generation"),
           (os.stat(f).st_ino + 1000, gen, "a free inode with the file's generation"),
           (2, root_gen ^ 0x80000000, "the root with a wrong generation")]
    for ino, g, what in bad:
        for flags in (os.O_RDONLY, os.O_RDONLY | os.O_DIRECTORY):
            expect_stale(handle_of_ino(ino, g), flags, what=f"open of a handle of {what}")
    # Right number, any generation (0, as for the parent part of a handle), and the root.
    eq(path_by_handle((kind, data[:4] + bytes(4)))[1], os.stat(f).st_ino, "handle with generation 0")
    eq(path_by_handle(handle_of_ino(2, root_gen), os.O_RDONLY | os.O_DIRECTORY)[0], MNT, "the root by its handle")
    # Malformed handles, decided before the filesystem is asked.
    expect_stale((kind, data[:4]), what="open of a 4-byte handle")
    expect_stale((0x7f, data), what="open of a handle of an unknown type")
    expect_errno("EINVAL", lambda: os.close(open_by_handle((kind | 0x40000, data))),
                 what="open of a handle with an unknown user flag")
    new = [line for line in fs_log_lines() if line not in before]
    expect(not new, f"kernel log lines: {new[:3]}")
    eq(get(f), b"x", "the file after the forged handles")


def build_tree(root):
    """The same tree on any filesystem: files of several sizes (one sparse), directories,
    symlinks, a hard link, a fifo and devices, modes, owners and nanosecond times."""
    os.mkdir(root)
    entries = []

    def add(rel):
        entries.append(os.path.join(root, rel))
        return os.path.join(root, rel)

    for i, size in enumerate((0, 1, 4095, 4096, 49152, 49153, 300000, 3 * MIB + 5)):
        fsx.write_file(add(f"file{i}"), 40 + i, size)
    fd = os.open(add("sparse"), os.O_WRONLY | os.O_CREAT, 0o644)
    fsx.write_data(fd, 50, 8192 + 7, 9000)
    fsx.write_data(fd, 51, 700 * BLK, 100)
    os.ftruncate(fd, 3 * MIB)
    os.close(fd)
    os.mkdir(add("dir"), 0o755)
    os.mkdir(add("dir/sub"), 0o700)
    os.mkdir(add("dir/sub/deeper"))
    for j in range(50):
        with open(add(f"dir/sub/n{j:02d}"), "wb") as f:
            f.write(bytes([j]) * j * 100)
    os.symlink("../file1", add("dir/rel-link"))
    os.symlink("/" + "long/" * 100, add("long-link"))
    os.link(os.path.join(root, "file2"), add("dir/hardlink"))
    os.mkfifo(add("fifo"), 0o640)
    os.mknod(add("chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    os.mknod(add("blk"), 0o600 | stat.S_IFBLK, os.makedev(8, 17))
    for n, (uid, gid, mode) in enumerate([(1000, 1000, 0o4755), (1234, 5678, 0o2750), (0, 0, 0o1777),
                                          (4000000000, 3000000000, 0o640), (65534, 65534, 0o000)]):
        p = add(f"owned{n}")
        fsx.write_file(p, 60 + n, 1000 * n)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
    os.chmod(os.path.join(root, "dir/sub"), 0o3771)
    # Times last, deepest first (entries change their directory's mtime).
    for k, p in enumerate(sorted(entries + [root], key=lambda p: -p.count("/"))):
        os.utime(p, ns=(1600000000_000000000 + k * 1000003, 1500000000_123456789 - k * 7777777),
                 follow_symlinks=False)


def describe(root):
    """path -> the `ls -l` / `stat -c` fields that must agree (no inode, block count, ctime;
    no directory size: directory formats differ)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            f = [stat.filemode(st.st_mode), st.st_nlink, st.st_uid, st.st_gid,
                 st.st_atime_ns, st.st_mtime_ns]
            if stat.S_ISDIR(st.st_mode):
                f.append(sorted(os.listdir(p)))
            else:
                f.append(st.st_size)
            if stat.S_ISLNK(st.st_mode):
                f.append(os.readlink(p))
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                f.append((os.major(st.st_rdev), os.minor(st.st_rdev)))
            out[rel] = f
    st = os.stat(root)
    out["."] = [stat.filemode(st.st_mode), st.st_nlink, st.st_atime_ns, st.st_mtime_ns]
    return out


def contents(root):
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(p).st_mode):
                out[os.path.relpath(p, root)] = fsx.sha_range(p, 0, os.lstat(p).st_size)
    return out


def t_compare_ext4():
    fsx.mkfs(REF_DEV, "reference", fstyp="ext4")
    # noatime on both: the listings and reads must not change the atimes being compared.
    fsx.mount(REF_DEV, REF, "noatime", fstyp="ext4")
    remount("noatime")
    try:
        mine, ref = d("tree"), os.path.join(REF, "tree")
        build_tree(mine)
        build_tree(ref)
        for when in ("", " after remount"):
            # Metadata first: reading the files could change atimes.
            dm, dr = describe(mine), describe(ref)
            eq(sorted(dm), sorted(dr), f"entries{when}")
            diff = [k for k in sorted(dr) if dm[k] != dr[k]]
            expect(not diff, f"{len(diff)} entries differ{when}, first {diff[:1]}: {dm[diff[0]] if diff else ''} vs ext4 {dr[diff[0]] if diff else ''}")
            cm, cr = contents(mine), contents(ref)
            diff = [k for k in sorted(cr) if cm.get(k) != cr[k]]
            expect(not diff and sorted(cm) == sorted(cr), f"sha256 of {diff[:3]} differ{when}")
            if not when:
                remount("noatime")
                fsx.umount(REF)
                fsx.mount(REF_DEV, REF, "noatime", fstyp="ext4")
    finally:
        fsx.umount(REF)
        remount()


def main():
    fsx.init("posix", sys.argv)
    t = time.time()
    fsx.load()
    os.umask(0o022)
    if not case("mkfs-mount", lambda: (fsx.mkfs(DEV, "posix"), fsx.mount(DEV, MNT))):
        return
    fsx.run_cases([("handle-file", t_handle_file), ("handle-dir", t_handle_dir),
                   ("handle-stale", t_handle_stale), ("handle-forged", t_handle_forged),
                   ("create", t_create), ("mkdir-rmdir", t_mkdir_rmdir), ("link", t_link),
                     ("symlink", t_symlink), ("mknod", t_mknod), ("tmpfile", t_tmpfile),
                     ("rename", t_rename_basic), ("rename-dir", t_rename_dir),
                     ("renameat2", t_renameat2), ("names", t_names), ("bigdir", t_bigdir),
                     ("chmod-chown", t_chmod_chown), ("permissions", t_permissions),
                     ("utimes", t_utimes),
                     ("truncate", t_truncate), ("unlinked-open", t_unlinked_open),
                     ("fallocate", t_fallocate), ("fallocate-punch", t_punch),
                     ("fallocate-zero-range", t_zero_range),
                     ("collapse-insert", t_collapse_insert), ("efbig", t_efbig), ("odirect", t_odirect),
                     ("mmap", t_mmap), ("copy", t_copy), ("swapfile", t_swapfile),
                     ("swapfile-holes", t_swapfile_holes),
                     ("swapfile-unwritten", t_swapfile_unwritten), ("sync", t_sync),
                     ("cgroup-writeback", t_cgroup_writeback),
                     ("remount-ro", t_remount_ro), ("label-uuid", t_label_uuid), ("freeze", t_freeze),
                     ("idmapped", t_idmapped),
                     ("atime", t_atime), ("times", t_times),
                     ("compare-ext4", t_compare_ext4)], DEV, MNT, t)


if __name__ == "__main__":
    main()
