#!/usr/bin/env python3
"""Guest half of tests/suites/xattr.sh: extended attributes and POSIX ACLs with exact
results and errnos, the same on ext4 (`FSTYP=ext4`) and on AegisFS.

  xattr.py FSTYP     /dev/vdb gets FSTYP; /dev/vdc is ext2 for the noacl case when FSTYP is
                     ext4 (which has no noacl option in Linux 7.3)

Each case works in its own directory of the mounted filesystem. Values are checked byte
for byte, lists as sets, errnos exactly; ACLs through the raw system.posix_acl_* values
(decoded here) and through getfacl. Non-root checks run as uid/gid 1000 and 1001.
"""

import ctypes
import errno
import fcntl
import json
import os
import random
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402
from check import (FIEMAP_EXTENT_DATA_INLINE, FIEMAP_EXTENT_LAST,  # noqa: E402
                   FIEMAP_EXTENT_NOT_ALIGNED, FIEMAP_FLAG_XATTR, fiemap)
from fsx import Fail, case, expect, expect_errno, note  # noqa: E402

DEV, MNT = "/dev/vdb", "/mnt/xattr"
XATTR_CREATE, XATTR_REPLACE = 1, 2
FS_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
USER, OTHER_USER = 1000, 1001
ACCESS, DEFAULT = "system.posix_acl_access", "system.posix_acl_default"
# ACL tags (linux/posix_acl.h) and the xattr form of an ACL (version 2).
USER_OBJ, NAMED_USER, GROUP_OBJ, NAMED_GROUP, MASK, OTHER = 1, 2, 4, 8, 0x10, 0x20
# Python names errno 95 ENOTSUP (the same number as EOPNOTSUPP on Linux).
OPNOTSUPP = fsx.err_name(errno.EOPNOTSUPP)
# Linux 7.3's ext4 always has ACLs (no noacl option): its noacl case runs on ext2.
NOACL_REF_DEV, NOACL_REF_MNT = "/dev/vdc", "/mnt/noacl-ref"

libc = fsx.libc
libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.getxattr.restype = ctypes.c_ssize_t
libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.listxattr.restype = ctypes.c_ssize_t


def d(*parts):
    return os.path.join(MNT, *parts)


def fresh(name):
    p = d(name)
    os.mkdir(p)
    return p


def touch(p, mode=0o644):
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    return p


def eq(got, want, what):
    expect(got == want, f"{what}: {got!r}, expected {want!r}")


def names(p, follow=True):
    return set(os.listxattr(p, follow_symlinks=follow))


def raw_getxattr(p, name, size):
    """getxattr(2) with a SIZE-byte buffer: (return value, errno name or None)."""
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.getxattr(p.encode(), name.encode(), buf if size else None, size)
    return (n, None) if n >= 0 else (n, fsx.err_name(ctypes.get_errno()))


def raw_listxattr(p, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.listxattr(p.encode(), buf if size else None, size)
    return (n, None) if n >= 0 else (n, fsx.err_name(ctypes.get_errno()))


def remount(opts=None):
    fsx.umount(MNT)
    fsx.mount(DEV, MNT, opts)


def blocks(p):
    return os.lstat(p).st_blocks


def free_blocks():
    os.sync()
    return os.statvfs(MNT).f_bfree


def acl_entries(p, name=ACCESS):
    """The entries of an ACL as the VFS returns it: sorted (tag, perm, id) tuples."""
    v = os.getxattr(p, name)
    version, = struct.unpack_from("<I", v)
    expect(version == 2 and (len(v) - 4) % 8 == 0, f"{p} {name}: bad ACL value {v.hex()}")
    out = []
    for off in range(4, len(v), 8):
        tag, perm, eid = struct.unpack_from("<HHI", v, off)
        out.append((tag, perm, eid if tag in (NAMED_USER, NAMED_GROUP) else None))
    return out


def acl(*entries):
    return [(t, p, i if t in (NAMED_USER, NAMED_GROUP) else None) for t, p, i in entries]


def base(u, g, o, m=None):
    e = [(USER_OBJ, u, None), (GROUP_OBJ, g, None)]
    if m is not None:
        e.append((MASK, m, None))
    e.append((OTHER, o, None))
    return e


def setfacl(*args):
    return fsx.run("setfacl", *args)


def getfacl(p):
    """getfacl's lines without comments, numeric ids, whitespace runs made one space."""
    return [" ".join(line.split()) for line in fsx.run("getfacl", "-cnp", p).splitlines() if line.strip()]


def shutdown(path, flag):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, FS_IOC_SHUTDOWN, struct.pack("I", flag))
    finally:
        os.close(fd)


def fsck():
    cmd = ["fsck", "-t", fsx.FSTYP, "-n"] + (["-f"] if fsx.FSTYP.startswith("ext") else []) + [DEV]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    expect(r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}: {r.stdout.strip()[-400:]}")


# ---- plain attributes ------------------------------------------------------------------


def t_namespaces():
    top = fresh("ns")
    f = touch(os.path.join(top, "f"), 0o644)
    want = {"user.colour": b"blue", "trusted.t": b"\x00\x01binary\xff", "security.s": b"label"}
    for k, v in want.items():
        os.setxattr(f, k, v)
    for k, v in want.items():
        eq(os.getxattr(f, k), v, f"getxattr {k}")
    eq(names(f), set(want), "listxattr as root")
    # trusted.* is listed only to CAP_SYS_ADMIN; the others to anyone who can read the file.
    got = fsx.as_user(lambda: ",".join(sorted(os.listxattr(f))))
    eq(got, "security.s,user.colour", "listxattr as uid 1000")
    eq(fsx.as_user(lambda: os.getxattr(f, "user.colour").decode()), "blue", "getxattr as uid 1000")
    eq(fsx.as_user(lambda: os.getxattr(f, "trusted.t")), "ENODATA", "trusted.t as uid 1000")
    eq(fsx.as_user(lambda: os.setxattr(f, "user.x", b"1")), "EACCES", "setxattr on root's 0644 file")
    eq(fsx.as_user(lambda: os.setxattr(f, "trusted.x", b"1")), "EPERM", "trusted.x as uid 1000")
    for k in want:
        os.removexattr(f, k)
        expect_errno("ENODATA", os.getxattr, f, k)
    eq(names(f), set(), "listxattr after removing everything")
    expect_errno(OPNOTSUPP, os.setxattr, f, "foo.bar", b"1")
    expect_errno(OPNOTSUPP, os.getxattr, f, "foo.bar")


def t_flags():
    f = touch(os.path.join(fresh("flags"), "f"))
    expect_errno("ENODATA", os.setxattr, f, "user.a", b"1", XATTR_REPLACE)
    expect_errno("ENODATA", os.getxattr, f, "user.a")
    os.setxattr(f, "user.a", b"1", XATTR_CREATE)
    expect_errno("EEXIST", os.setxattr, f, "user.a", b"2", XATTR_CREATE)
    eq(os.getxattr(f, "user.a"), b"1", "value after a refused XATTR_CREATE")
    os.setxattr(f, "user.a", b"22", XATTR_REPLACE)
    eq(os.getxattr(f, "user.a"), b"22", "value after XATTR_REPLACE")
    os.setxattr(f, "user.a", b"333")
    eq(os.getxattr(f, "user.a"), b"333", "value after a plain set")
    os.removexattr(f, "user.a")
    expect_errno("ENODATA", os.removexattr, f, "user.a")
    expect_errno("ENODATA", os.getxattr, f, "user.a")


def t_errors():
    f = touch(os.path.join(fresh("errors"), "f"))
    os.setxattr(f, "user.v", b"0123456789")
    eq(raw_getxattr(f, "user.v", 0), (10, None), "getxattr with size 0 (the length)")
    eq(raw_getxattr(f, "user.v", 9)[1], "ERANGE", "getxattr into 9 bytes")
    eq(raw_getxattr(f, "user.v", 10)[0], 10, "getxattr into 10 bytes")
    eq(raw_getxattr(f, "user.none", 0)[1], "ENODATA", "getxattr of a missing name")
    need = len(b"user.v\0")
    eq(raw_listxattr(f, 0), (need, None), "listxattr with size 0")
    eq(raw_listxattr(f, need - 1)[1], "ERANGE", "listxattr one byte short")
    eq(raw_listxattr(f, need)[0], need, "listxattr exact size")
    # The VFS limits: names of 255 bytes, values of 65536.
    os.setxattr(f, "user." + "n" * 250, b"x")
    eq(os.getxattr(f, "user." + "n" * 250), b"x", "255-byte name")
    expect_errno("ERANGE", os.setxattr, f, "user." + "n" * 251, b"x")
    expect_errno("ERANGE", os.getxattr, f, "user." + "n" * 251)
    expect_errno("E2BIG", os.setxattr, f, "user.big", b"v" * 65537)
    # 64 KiB is within the VFS limit but larger than any xattr block of 4 KiB.
    expect_errno("ENOSPC", os.setxattr, f, "user.big", b"v" * 65536)
    expect_errno("ENODATA", os.getxattr, f, "user.big")
    expect_errno("EINVAL", os.setxattr, f, "user.", b"x")
    os.setxattr(f, "user.empty", b"")
    eq(os.getxattr(f, "user.empty"), b"", "empty value")
    eq(names(f), {"user.v", "user." + "n" * 250, "user.empty"}, "listxattr")


def t_ctime():
    f = touch(os.path.join(fresh("ctime"), "f"))
    os.utime(f, (1000000000, 1000000000))
    before = os.stat(f)
    time.sleep(0.05)
    os.setxattr(f, "user.t", b"1")
    after = os.stat(f)
    expect(after.st_ctime_ns > before.st_ctime_ns, "ctime unchanged by setxattr")
    eq(after.st_mtime_ns, before.st_mtime_ns, "mtime after setxattr")
    time.sleep(0.05)
    os.removexattr(f, "user.t")
    expect(os.stat(f).st_ctime_ns > after.st_ctime_ns, "ctime unchanged by removexattr")


def t_many():
    top = fresh("many")
    f = touch(os.path.join(top, "f"))
    eq(blocks(f), 0, "st_blocks of an empty file")
    os.setxattr(f, "user.small", b"s")
    eq(blocks(f), 0, "st_blocks with one small attribute (kept in the inode)")
    # 60 attributes of 20 bytes: more than the inode holds, less than inode + one block.
    want = {f"user.attr{i:03}": os.urandom(20) for i in range(60)}
    want["user.small"] = b"s"
    for k, v in want.items():
        os.setxattr(f, k, v)
    eq(blocks(f), 8, "st_blocks with the attributes spilled into one xattr block")
    eq(names(f), set(want), "listxattr of 61 attributes")
    for k, v in want.items():
        eq(os.getxattr(f, k), v, f"getxattr {k}")
    # Replace each with a different length, then read them all again.
    for i, k in enumerate(sorted(want)):
        want[k] = bytes([i]) * (i % 7)
        os.setxattr(f, k, want[k], XATTR_REPLACE)
    for k, v in want.items():
        eq(os.getxattr(f, k), v, f"getxattr {k} after replacing")
    for k in list(want):
        if k != "user.small":
            os.removexattr(f, k)
    eq(names(f), {"user.small"}, "listxattr after removing 60")
    eq(blocks(f), 0, "st_blocks once the xattr block is empty")


def t_large():
    f = touch(os.path.join(fresh("large"), "f"))
    big = os.urandom(4000)
    os.setxattr(f, "user.big", big)
    eq(os.getxattr(f, "user.big"), big, "4000-byte value")
    eq(blocks(f), 8, "st_blocks with a 4000-byte value")
    expect_errno("ENOSPC", os.setxattr, f, "user.big2", big)
    expect_errno("ENODATA", os.getxattr, f, "user.big2")
    expect_errno("ENOSPC", os.setxattr, f, "user.huge", os.urandom(8192))
    # Replacing the value with a larger one that no longer fits leaves the old one.
    expect_errno("ENOSPC", os.setxattr, f, "user.big", os.urandom(5000))
    eq(os.getxattr(f, "user.big"), big, "value after a refused larger replacement")


def xattr_extents(p, start=0, length=(1 << 64) - 1, count=8):
    """(logical, physical, length, flags) of each extent FIEMAP_FLAG_XATTR reports for P."""
    fd = os.open(p, os.O_RDONLY)
    try:
        return fiemap(fd, start, length, flags=FIEMAP_FLAG_XATTR, count=count)
    finally:
        os.close(fd)


def device_bytes(start, length):
    """Bytes START..START+LENGTH of DEV, read past the filesystem after a sync."""
    os.sync()
    with open(DEV, "rb") as f:
        f.seek(start)
        return f.read(length)


def t_fiemap():
    # FIEMAP_FLAG_XATTR tells where the attributes are (`filefrag -x`, `xfs_io fiemap -a`):
    # an inode's inline area as a DATA_INLINE extent, its xattr block as a block extent.
    top = fresh("fiemap")
    eq(xattr_extents(touch(os.path.join(top, "none"))), [], "extents of a file with no attribute")
    inline_value = b"an inline value 0123456789"
    small = touch(os.path.join(top, "small"))
    os.setxattr(small, "user.small", inline_value)
    ext = xattr_extents(small)
    eq([(lo, fl) for lo, _, _, fl in ext],
       [(0, FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_LAST)],
       "(logical, flags) of a small attribute's extents")
    # ext4's address leaves out where the inode sits in its table block: only that block
    # is sure to hold the value.
    at, length = ext[0][1:3] if fsx.FSTYP == "aegisfs" else (ext[0][1] // 4096 * 4096, 4096)
    expect(inline_value in device_bytes(at, length),
           f"bytes {at}..{at + length} of the inline extent do not hold the value")
    block_value = os.urandom(3000)
    big = touch(os.path.join(top, "big"))
    os.setxattr(big, "user.big", block_value)
    ext = xattr_extents(big)
    eq([(lo, ln, fl, ph % 4096) for lo, ph, ln, fl in ext], [(0, 4096, FIEMAP_EXTENT_LAST, 0)],
       "(logical, length, flags, physical % 4096) of a 3000-byte attribute's extents")
    expect(block_value in device_bytes(ext[0][1], 4096),
           f"the block at byte {ext[0][1]} does not hold the value")
    if fsx.FSTYP != "aegisfs":
        return
    # Both at once: the inline area, then the block after it (ext4 reports only the
    # inline area while it holds an attribute).
    os.setxattr(big, "user.small", inline_value)
    ext = xattr_extents(big)
    eq([(lo, fl) for lo, _, _, fl in ext],
       [(0, FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_NOT_ALIGNED), (ext[0][2], FIEMAP_EXTENT_LAST)],
       "(logical, flags) of the extents of an inline and a block attribute")
    expect(inline_value in device_bytes(ext[0][1], ext[0][2]), "the inline extent does not hold the value")
    expect(block_value in device_bytes(ext[1][1], ext[1][2]), "the block extent does not hold the value")
    eq(xattr_extents(big, ext[1][0], 1), ext[1:], "the extents of one byte of the block")
    eq(xattr_extents(big, count=1), ext[:1], "the extents with room for one")
    fsx.run("mount", "-o", "remount,ro", MNT)
    try:
        eq(xattr_extents(big), ext, "the extents on the filesystem mounted read-only")
    finally:
        fsx.run("mount", "-o", "remount,rw", MNT)


def t_enospc():
    top = fresh("enospc")
    f = touch(os.path.join(top, "f"))
    g = touch(os.path.join(top, "g"))
    os.setxattr(g, "user.other", b"untouched")
    stored = {}
    for i in range(20):
        v = bytes([i]) * 1000
        try:
            os.setxattr(f, f"user.k{i}", v)
        except OSError as e:
            eq(fsx.err_name(e.errno), "ENOSPC", f"setxattr of the {i + 1}th 1000-byte value")
            break
        stored[f"user.k{i}"] = v
    else:
        raise Fail("20 values of 1000 bytes fitted: no ENOSPC")
    note(f"{fsx.FSTYP}: {len(stored)} values of 1000 bytes fit one inode")
    expect(len(stored) >= 3, f"only {len(stored)} values of 1000 bytes fit")
    expect_errno("ENODATA", os.getxattr, f, f"user.k{len(stored)}")
    for k, v in stored.items():
        eq(os.getxattr(f, k), v, f"getxattr {k} after ENOSPC")
    eq(names(f), set(stored), "listxattr after ENOSPC")
    # Room again after a removal.
    os.removexattr(f, "user.k0")
    os.setxattr(f, "user.again", b"a" * 900)
    eq(os.getxattr(f, "user.again"), b"a" * 900, "set after making room")
    eq(os.getxattr(g, "user.other"), b"untouched", "another file")


def write_block(path):
    with open(path, "wb") as f:
        f.write(b"\xa5" * 4096)


def fill(top):
    """Fills the filesystem: preallocates one big file, then writes the last free blocks
    into one-block files (direct blocks: no indirect block needed), then syncs. Returns
    the files made."""
    made = [os.path.join(top, "big")]
    fd = os.open(made[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        off, chunk = 0, 1 << 30
        while chunk >= 4096:
            try:
                os.posix_fallocate(fd, off, chunk)
                off += chunk
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(fd)
    try:
        for i in range(1000):
            made.append(os.path.join(top, f"tail{i}"))
            write_block(made[-1])
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    os.sync()
    return made


def t_enospc_freed():
    """A full filesystem: a new directory's block and an xattr block can come from blocks
    an unlink just freed, which become usable only when their transaction commits (mkdir and
    setxattr commit and try again)."""
    top = fresh("enospc-freed")
    f = touch(os.path.join(top, "f"))
    spares = [os.path.join(top, f"spare{i}") for i in range(2)]
    for p in spares:
        write_block(p)
    made = spares + fill(top)
    sub = os.path.join(top, "sub")
    value = bytes(range(256)) * 11 + b"x" * 184  # 3000 bytes: only a block holds it
    try:
        expect_errno("ENOSPC", os.setxattr, f, "user.big", value)
        expect_errno("ENOSPC", os.mkdir, sub)
        os.unlink(made.pop(0))
        os.mkdir(sub)
        os.unlink(made.pop(0))
        os.setxattr(f, "user.big", value)
    finally:
        for p in made:
            if os.path.exists(p):
                os.unlink(p)
    eq(os.getxattr(f, "user.big"), value, "the value set right after the unlink")
    remount()
    eq(os.getxattr(f, "user.big"), value, "the value after a remount")
    expect(os.path.isdir(sub), "the directory made right after the unlink is gone")


def t_file_types():
    top = fresh("types")
    dd = os.path.join(top, "dir")
    os.mkdir(dd)
    os.setxattr(dd, "user.d", b"dir value")
    eq(os.getxattr(dd, "user.d"), b"dir value", "user. on a directory")
    os.setxattr(dd, "user.block", os.urandom(3000))
    eq(blocks(dd), 16, "st_blocks of a directory with an xattr block")
    ln = os.path.join(top, "ln")
    os.symlink("target-that-does-not-exist", ln)
    long_ln = os.path.join(top, "long")
    os.symlink("t" * 300, long_ln)
    for p in (ln, long_ln):
        # user.* only on regular files and directories (EPERM elsewhere), as in the VFS.
        expect_errno("EPERM", os.setxattr, p, "user.x", b"1", follow_symlinks=False)
        expect_errno("ENODATA", os.getxattr, p, "user.x", follow_symlinks=False)
        os.setxattr(p, "trusted.link", b"on the link", follow_symlinks=False)
        eq(os.getxattr(p, "trusted.link", follow_symlinks=False), b"on the link", f"trusted. on {p}")
        eq(names(p, follow=False), {"trusted.link"}, f"llistxattr {p}")
        os.setxattr(p, "trusted.blk", os.urandom(2000), follow_symlinks=False)
        eq(os.readlink(p), "target-that-does-not-exist" if p == ln else "t" * 300, "readlink")
    eq(blocks(ln), 8, "st_blocks of a fast symlink with an xattr block")
    chr_dev = os.path.join(top, "chr")
    os.mknod(chr_dev, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    fifo = os.path.join(top, "fifo")
    os.mkfifo(fifo)
    for p in (chr_dev, fifo):
        expect_errno("EPERM", os.setxattr, p, "user.x", b"1")
        os.setxattr(p, "security.sec", b"on a special file")
        os.setxattr(p, "trusted.blk", os.urandom(2000))
        eq(os.getxattr(p, "security.sec"), b"on a special file", f"security. on {p}")
        eq(names(p), {"security.sec", "trusted.blk"}, f"listxattr {p}")
        eq(blocks(p), 8, f"st_blocks of {p}")
    fsx.drop_caches()
    eq(os.getxattr(chr_dev, "security.sec"), b"on a special file", "after drop_caches")
    eq(os.getxattr(ln, "trusted.link", follow_symlinks=False), b"on the link", "after drop_caches")


def t_delete_frees():
    top = fresh("delete")
    start = free_blocks()
    files = []
    for i in range(4):
        f = touch(os.path.join(top, f"f{i}"))
        os.setxattr(f, "user.big", os.urandom(3000))
        files.append(f)
    sub = os.path.join(top, "sub")
    os.mkdir(sub)
    os.setxattr(sub, "user.big", os.urandom(3000))
    used = start - free_blocks()
    expect(used >= 5 + 1, f"5 xattr blocks and a directory block took {used} blocks")
    # Unlinked while open: the block goes at the last close.
    fd = os.open(files[0], os.O_RDONLY)
    for f in files:
        os.unlink(f)
    os.rmdir(sub)
    eq(start - free_blocks(), 1, "blocks still used with one file open (its xattr block)")
    os.close(fd)
    eq(free_blocks(), start, "free blocks after deleting every file")


# ---- persistence -----------------------------------------------------------------------


PERSIST = {
    "f": {"user.a": b"alpha", "trusted.b": b"\x00" * 100, "security.c": b"c"},
    "big": {"user.v": bytes(range(256)) * 15, "user.w": b"w"},
    "dir": {"user.d": b"directory"},
}


def t_persist_set():
    top = fresh("persist")
    for name, attrs in PERSIST.items():
        p = os.path.join(top, name)
        if name == "dir":
            os.mkdir(p)
        else:
            touch(p)
        for k, v in attrs.items():
            os.setxattr(p, k, v)


def check_persist(what):
    for name, attrs in PERSIST.items():
        p = d("persist", name)
        eq(names(p), set(attrs), f"listxattr {name} {what}")
        for k, v in attrs.items():
            eq(os.getxattr(p, k), v, f"{name} {k} {what}")


def t_persist_remount():
    remount()
    check_persist("after remount")
    fsx.drop_caches()
    check_persist("after drop_caches")


def t_crash():
    top = fresh("crash")
    synced = touch(os.path.join(top, "synced"))
    os.setxattr(synced, "user.s", b"fsynced")
    os.setxattr(synced, "user.big", b"B" * 3000)
    fsx.fsync_path(synced)
    committed = touch(os.path.join(top, "committed"))
    os.setxattr(committed, "user.c", b"committed by the shutdown")
    removed = touch(os.path.join(top, "removed"))
    os.setxattr(removed, "user.r", b"gone")
    fsx.fsync_path(removed)
    os.removexattr(removed, "user.r")
    # Flag 1 (LOGFLUSH): the journal is committed, nothing else written home.
    shutdown(MNT, 1)
    expect_errno("EIO", os.setxattr, synced, "user.after", b"1")
    expect_errno("EIO", os.getxattr, synced, "user.s")
    fsx.umount(MNT)
    fsx.mount(DEV, MNT)
    eq(os.getxattr(synced, "user.s"), b"fsynced", "fsync'ed attribute after the crash")
    eq(os.getxattr(synced, "user.big"), b"B" * 3000, "fsync'ed attribute in the block")
    eq(os.getxattr(committed, "user.c"), b"committed by the shutdown", "logged attribute")
    expect_errno("ENODATA", os.getxattr, removed, "user.r")
    expect_errno("ENODATA", os.getxattr, synced, "user.after")
    # Flag 2 (NOLOGFLUSH): only what fsync made durable survives.
    os.setxattr(synced, "user.s2", b"second")
    fsx.fsync_path(synced)
    shutdown(MNT, 2)
    fsx.umount(MNT)
    fsx.mount(DEV, MNT)
    eq(os.getxattr(synced, "user.s2"), b"second", "fsync'ed attribute after a NOLOGFLUSH shutdown")
    fsx.umount(MNT)
    fsck()
    fsx.mount(DEV, MNT)


def t_readonly():
    f = touch(os.path.join(fresh("ro"), "f"))
    os.setxattr(f, "user.ro", b"v")
    remount("ro")
    try:
        expect_errno("EROFS", os.setxattr, f, "user.ro", b"w")
        expect_errno("EROFS", os.removexattr, f, "user.ro")
        eq(os.getxattr(f, "user.ro"), b"v", "getxattr on a read-only mount")
    finally:
        remount()


# ---- POSIX ACLs --------------------------------------------------------------------------


def t_acl_access():
    top = fresh("acl")
    f = touch(os.path.join(top, "f"), 0o600)
    expect_errno("ENODATA", os.getxattr, f, ACCESS)
    eq(fsx.as_user(lambda: os.open(f, os.O_RDONLY)), "EACCES", "uid 1000 reads a 0600 file")
    setfacl("-m", f"u:{USER}:rw", f)
    eq(acl_entries(f), base(6, 0, 0, 6)[:1] + acl((NAMED_USER, 6, USER)) + base(6, 0, 0, 6)[1:],
       "access ACL")
    eq(stat.S_IMODE(os.stat(f).st_mode), 0o660, "mode with the mask as group bits")
    expect(ACCESS in names(f), "system.posix_acl_access not listed")
    eq(getfacl(f), ["user::rw-", f"user:{USER}:rw-", "group::---", "mask::rw-", "other::---"], "getfacl")
    fd = fsx.as_user(lambda: os.open(f, os.O_RDWR))
    expect(fd.isdigit(), f"uid 1000 opens for writing: {fd}")
    eq(fsx.as_user(lambda: os.open(f, os.O_RDONLY), uid=OTHER_USER, gid=OTHER_USER), "EACCES",
       "uid 1001 reads")
    # A group entry.
    setfacl("-m", f"g:{OTHER_USER}:r", f)
    fd = fsx.as_user(lambda: os.open(f, os.O_RDONLY), uid=OTHER_USER, gid=OTHER_USER)
    expect(fd.isdigit(), f"gid 1001 reads through its group entry: {fd}")
    eq(fsx.as_user(lambda: os.open(f, os.O_WRONLY), uid=OTHER_USER, gid=OTHER_USER), "EACCES",
       "gid 1001 writes")
    # An entry that takes away what the other class would give.
    # (With a mask of --- the kernel skips the ACL: the group bits must not be empty.)
    g = touch(os.path.join(top, "g"), 0o646)
    setfacl("-m", f"u:{USER}:---", g)
    eq(fsx.as_user(lambda: os.open(g, os.O_RDONLY)), "EACCES", "uid 1000 with a --- entry")
    fd = fsx.as_user(lambda: os.open(g, os.O_RDONLY), uid=OTHER_USER, gid=OTHER_USER)
    expect(fd.isdigit(), f"uid 1001 reads as other: {fd}")
    # Only the owner (or CAP_FOWNER) may change an ACL.
    eq(fsx.as_user(lambda: os.setxattr(f, ACCESS, os.getxattr(f, ACCESS))), "EPERM",
       "setting the ACL of root's file as uid 1000")
    setfacl("-b", f)
    expect_errno("ENODATA", os.getxattr, f, ACCESS)
    # The extended entries and the mask go; the group entry (---) gives the group bits.
    eq(stat.S_IMODE(os.stat(f).st_mode), 0o600, "mode after setfacl -b")
    eq(names(f), set(), "listxattr after setfacl -b")


def t_acl_equivalent():
    f = touch(os.path.join(fresh("acl-eq"), "f"), 0o600)
    # Only the three base entries: the mode says it all, so no ACL is stored.
    setfacl("--set", "u::rw,g::r,o::-", f)
    expect_errno("ENODATA", os.getxattr, f, ACCESS)
    eq(stat.S_IMODE(os.stat(f).st_mode), 0o640, "mode from an ACL equivalent to it")


def t_acl_default():
    top = fresh("acl-def")
    os.chmod(top, 0o755)
    plain = os.path.join(top, "plain")
    os.mkdir(plain)
    inherit = os.path.join(top, "inherit")
    os.mkdir(inherit)
    setfacl("-d", "-m", f"u:{USER}:rwx,g::rx,o::-", inherit)
    eq(acl_entries(inherit, DEFAULT), base(7, 5, 0, 7)[:1] + acl((NAMED_USER, 7, USER)) + base(7, 5, 0, 7)[1:],
       "default ACL")
    expect_errno("ENODATA", os.getxattr, inherit, ACCESS)
    expect(DEFAULT in names(inherit), "system.posix_acl_default not listed")
    old = os.umask(0o077)
    try:
        # Without a default ACL the umask applies.
        eq(stat.S_IMODE(os.stat(touch(os.path.join(plain, "f"), 0o666)).st_mode), 0o600, "umask 077")
        # With one it does not: the default ACL's masks apply instead.
        f = touch(os.path.join(inherit, "f"), 0o666)
        sub = os.path.join(inherit, "sub")
        os.mkdir(sub, 0o777)
    finally:
        os.umask(old)
    eq(acl_entries(f), base(6, 5, 0, 6)[:1] + acl((NAMED_USER, 7, USER)) + base(6, 5, 0, 6)[1:],
       "inherited access ACL of a file")
    eq(stat.S_IMODE(os.stat(f).st_mode), 0o660, "mode of a file under a default ACL")
    expect_errno("ENODATA", os.getxattr, f, DEFAULT)
    eq(acl_entries(sub, DEFAULT), acl_entries(inherit, DEFAULT), "a new directory inherits the default ACL")
    eq(stat.S_IMODE(os.stat(sub).st_mode), 0o770, "mode of a directory under a default ACL")
    eq(acl_entries(sub), base(7, 5, 0, 7)[:1] + acl((NAMED_USER, 7, USER)) + base(7, 5, 0, 7)[1:],
       "access ACL of the new directory")
    # Inheritance grants access: uid 1000 may create files in the 0770 root-owned directory.
    r = fsx.as_user(lambda: os.close(os.open(os.path.join(sub, "mine"), os.O_CREAT | os.O_WRONLY, 0o644)))
    eq(r, "None", "uid 1000 creates a file through the inherited ACL")
    eq(fsx.as_user(lambda: os.listdir(sub), uid=OTHER_USER, gid=OTHER_USER), "EACCES", "uid 1001 lists")
    # A default ACL only on directories.
    expect(subprocess.run(["setfacl", "-d", "-m", "u:1000:r", f], capture_output=True).returncode != 0,
           "setfacl -d on a file succeeded")
    expect_errno("EACCES", os.setxattr, f, DEFAULT, os.getxattr(inherit, DEFAULT))
    # Symlinks take no ACL and a new one inherits nothing.
    ln = os.path.join(inherit, "ln")
    os.symlink("f", ln)
    expect_errno(OPNOTSUPP, os.getxattr, ln, ACCESS, follow_symlinks=False)
    eq(names(ln, follow=False), set(), "listxattr of a symlink under a default ACL")
    # Devices and FIFOs inherit like files.
    fifo = os.path.join(inherit, "fifo")
    os.mkfifo(fifo, 0o666)
    eq(acl_entries(fifo)[1], (NAMED_USER, 7, USER), "inherited ACL of a FIFO")
    setfacl("-k", inherit)
    expect_errno("ENODATA", os.getxattr, inherit, DEFAULT)


def t_acl_chmod():
    f = touch(os.path.join(fresh("acl-chmod"), "f"), 0o600)
    setfacl("-m", f"u:{USER}:rwx", f)
    eq(stat.S_IMODE(os.stat(f).st_mode), 0o670, "mode after adding an rwx entry")
    fd = fsx.as_user(lambda: os.open(f, os.O_RDWR))
    expect(fd.isdigit(), f"uid 1000 writes before the chmod: {fd}")
    os.chmod(f, 0o640)
    entries = acl_entries(f)
    eq(entries, base(6, 0, 0, 4)[:1] + acl((NAMED_USER, 7, USER)) + base(6, 0, 0, 4)[1:],
       "ACL after chmod 0640 (the mask follows the group bits)")
    eq(fsx.as_user(lambda: os.open(f, os.O_RDWR)), "EACCES", "uid 1000 writes after the chmod")
    fd = fsx.as_user(lambda: os.open(f, os.O_RDONLY))
    expect(fd.isdigit(), f"uid 1000 still reads: {fd}")
    eq(getfacl(f), ["user::rw-", f"user:{USER}:rwx #effective:r--", "group::---", "mask::r--", "other::---"],
       "getfacl after chmod")
    remount()
    eq(acl_entries(f), entries, "ACL after remount")


def t_acl_persist():
    top = d("acl-def", "inherit", "sub")
    before = {p: getfacl(p) for p in (top, os.path.join(top, "mine"))}
    remount()
    fsx.drop_caches()
    for p, text in before.items():
        eq(getfacl(p), text, f"getfacl {p} after remount")


def t_noacl():
    if fsx.FSTYP == "ext4":
        note("ext4 has no noacl option in this kernel: the noacl case runs on ext2")
        fsx.mkfs(NOACL_REF_DEV, "noacl", fstyp="ext2")
        fsx.mount(NOACL_REF_DEV, NOACL_REF_MNT, fstyp="ext2")
        try:
            noacl_checks(NOACL_REF_DEV, NOACL_REF_MNT, "ext2")
        finally:
            fsx.umount(NOACL_REF_MNT)
    else:
        noacl_checks(DEV, MNT, fsx.FSTYP)


def noacl_checks(dev, mnt, fstyp):
    def again(opts=None):
        fsx.umount(mnt)
        fsx.mount(dev, mnt, opts, fstyp=fstyp)

    dd = os.path.join(mnt, "noacl")
    os.mkdir(dd)
    setfacl("-d", "-m", f"u:{USER}:rwx", dd)
    f = touch(os.path.join(dd, "with-acl"), 0o600)
    setfacl("-m", f"u:{USER}:rw", f)
    again("noacl")
    try:
        opts = next(line.split()[3] for line in open("/proc/mounts") if line.split()[1] == mnt)
        expect("noacl" in opts.split(","), f"/proc/mounts options {opts}")
        expect_errno(OPNOTSUPP, os.getxattr, f, ACCESS)
        expect_errno(OPNOTSUPP, os.setxattr, f, ACCESS, b"\x02\x00\x00\x00")
        eq(names(f), set(), "listxattr hides the ACL on a noacl mount")
        expect(subprocess.run(["setfacl", "-m", "u:1000:r", f], capture_output=True).returncode != 0,
               "setfacl succeeded on a noacl mount")
        # Mode bits alone decide: uid 1000 is "other" (---) for the root-owned 0670 file.
        eq(fsx.as_user(lambda: os.open(f, os.O_RDONLY)), "EACCES", "uid 1000 on a noacl mount")
        old = os.umask(0o027)
        try:
            g = touch(os.path.join(dd, "new"), 0o666)
        finally:
            os.umask(old)
        eq(stat.S_IMODE(os.stat(g).st_mode), 0o640, "umask applies on a noacl mount")
        os.setxattr(f, "user.still", b"works")
    finally:
        again()
    expect(ACCESS in names(f), "the ACL is back with acl")
    expect_errno("ENODATA", os.getxattr, g, ACCESS)
    eq(os.getxattr(f, "user.still"), b"works", "user. attribute set on the noacl mount")
    fd = fsx.as_user(lambda: os.open(f, os.O_RDWR))
    expect(fd.isdigit(), f"uid 1000 through the ACL again: {fd}")


def t_concurrent():
    """Four writers on the same files (inodes that share inode table blocks), each with its
    own names, while readers list and read them and chmod changes an ACL'd file's mode."""
    top = fresh("concurrent")
    files = [touch(os.path.join(top, f"f{i}")) for i in range(6)]
    acl_file = files[0]
    setfacl("-m", f"u:{USER}:rw", acl_file)
    workers = 4

    def writer(w):
        rng = random.Random(w)
        model = {}
        for step in range(250):
            f = rng.choice(files)
            name = f"user.w{w}.k{rng.randrange(6)}"
            if rng.random() < 0.3:
                try:
                    os.removexattr(f, name)
                    model.pop((f, name))
                except OSError as e:
                    if e.errno != errno.ENODATA or (f, name) in model:
                        return f"step {step}: removexattr {name}: {fsx.err_name(e.errno)}"
            else:
                # At most 24 names of up to 118 bytes per file: always room.
                v = bytes([w, step % 256]) * rng.randrange(1, 60)
                os.setxattr(f, name, v)
                model[(f, name)] = v
                if os.getxattr(f, name) != v:
                    return f"step {step}: {name} reads back wrong"
        return json.dumps(sorted((os.path.basename(f), n, v.hex()) for (f, n), v in model.items()))

    pids = []
    for w in range(workers):
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                out = writer(w)
            except BaseException as e:  # noqa: BLE001
                out = f"{type(e).__name__}: {e}"
            os.write(wfd, out.encode())
            os._exit(0)
        os.close(wfd)
        pids.append((pid, r))
    modes = [0o640, 0o660, 0o600, 0o670]
    for i in range(40):
        os.chmod(acl_file, modes[i % 4])
        for f in files:
            for n in os.listxattr(f):
                try:
                    os.getxattr(f, n)
                except OSError as e:
                    expect(e.errno == errno.ENODATA, f"getxattr {n} while writers run: {fsx.err_name(e.errno)}")
    want = set()
    for pid, r in pids:
        chunks = []
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            chunks.append(b)
        os.close(r)
        os.waitpid(pid, 0)
        out = b"".join(chunks).decode()
        expect(out.startswith("["), f"writer: {out[:200]}")
        want.update(tuple(t) for t in json.loads(out))
    got = set()
    for f in files:
        for n in os.listxattr(f):
            if n.startswith("user.w"):
                got.add((os.path.basename(f), n, os.getxattr(f, n).hex()))
    eq(len(got), len(want), "attributes left by the writers")
    expect(got == want, f"{len(got ^ want)} attributes differ from the writers' records")
    eq(stat.S_IMODE(os.stat(acl_file).st_mode), 0o670, "mode after the chmods")
    eq(acl_entries(acl_file)[1], (NAMED_USER, 6, USER), "the ACL entry after the chmods")
    remount()
    got_after = {(os.path.basename(f), n, os.getxattr(f, n).hex())
                 for f in files for n in os.listxattr(f) if n.startswith("user.w")}
    expect(got_after == want, "attributes after a remount differ")


LAYOUTS = [("256-nojournal", ["-I", "256", "-J", "0"]), ("1024", ["-I", "1024"])]


def t_layouts():
    """AegisFS only: 256-byte inodes (no inline area: every attribute in the block) on a
    filesystem without a journal, and 1024-byte inodes (768 inline bytes)."""
    dev, mnt = NOACL_REF_DEV, "/mnt/layout"
    for name, opts in LAYOUTS:
        fsx.run("mkfs.aegisfs", "-q", "-f", *opts, dev)
        fsx.mount(dev, mnt)
        try:
            start = os.statvfs(mnt).f_bfree
            f = touch(os.path.join(mnt, "f"))
            os.setxattr(f, "user.one", b"1")
            eq(blocks(f), 8 if name.startswith("256") else 0, f"{name}: st_blocks with one small attribute")
            want = {f"user.attr{i:03}": os.urandom(20) for i in range(60)}
            want["user.one"] = b"1"
            for k, v in want.items():
                os.setxattr(f, k, v)
            eq(blocks(f), 8, f"{name}: st_blocks with 61 attributes")
            setfacl("-m", f"u:{USER}:r", f)
            acl_before = acl_entries(f)
            d2 = os.path.join(mnt, "d")
            os.mkdir(d2)
            setfacl("-d", "-m", f"u:{USER}:rx", d2)
            g = touch(os.path.join(d2, "g"), 0o640)
            eq(acl_entries(g)[1], (NAMED_USER, 5, USER), f"{name}: inherited ACL")
            fsx.umount(mnt)
            fsx.mount(dev, mnt)
            for k, v in want.items():
                eq(os.getxattr(f, k), v, f"{name}: {k} after remount")
            eq(acl_entries(f), acl_before, f"{name}: ACL after remount")
            for k in want:
                os.removexattr(f, k)
            setfacl("-b", f)
            eq(names(f), set(), f"{name}: listxattr after removing everything")
            eq(blocks(f), 0, f"{name}: st_blocks after removing everything")
            os.unlink(g)
            os.rmdir(d2)
            os.unlink(f)
            os.sync()
            eq(os.statvfs(mnt).f_bfree, start, f"{name}: free blocks after deleting everything")
        finally:
            fsx.umount(mnt)
        fsx.run("fsck", "-t", "aegisfs", "-n", dev)


def kernel_lines():
    return [line for line in fsx.run("dmesg").splitlines() if "aegisfs (" in line]


def t_corrupt():
    """AegisFS only: a damaged xattr block and inline area (aegisfs-testimage) give EUCLEAN
    and one log line per inode, the rest keeps working, and fsck -y drops the damage."""
    top = fresh("corrupt")
    blk = touch(os.path.join(top, "blk"))
    os.setxattr(blk, "user.big", b"x" * 3000)
    inl = touch(os.path.join(top, "inline"))
    os.setxattr(inl, "user.a", b"1")
    good = touch(os.path.join(top, "good"))
    os.setxattr(good, "user.ok", b"fine")
    blk_ino, inl_ino = os.stat(blk).st_ino, os.stat(inl).st_ino
    fsx.umount(MNT)
    fsx.run("aegisfs-testimage", "corrupt", DEV, "xattr-checksum", "corrupt/blk")
    fsx.run("aegisfs-testimage", "corrupt", DEV, "xattr-inline", "corrupt/inline")
    fsx.run("dmesg", "-C")
    fsx.mount(DEV, MNT)
    for _ in range(2):
        expect_errno("EUCLEAN", os.getxattr, blk, "user.big")
        expect_errno("EUCLEAN", os.listxattr, blk)
        expect_errno("EUCLEAN", os.setxattr, blk, "user.new", b"1")
        expect_errno("EUCLEAN", os.getxattr, inl, "user.a")
        expect_errno("EUCLEAN", os.listxattr, inl)
    eq(os.getxattr(good, "user.ok"), b"fine", "an intact file's attribute")
    eq(os.stat(blk).st_size, 0, "stat of the file with the damaged block")
    lines = kernel_lines()
    want = [f"aegisfs (vdb): inode {blk_ino}: xattr block checksum mismatch",
            f"aegisfs (vdb): inode {inl_ino}: xattr area used length or tail invalid"]
    got = [w for w in want if sum(w in line for line in lines) == 1]
    expect(got == want and len(lines) == 2, f"kernel log: {lines}")
    fsx.umount(MNT)
    r = subprocess.run(["fsck", "-t", "aegisfs", "-n", DEV], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    eq(r.returncode, 4, f"fsck -n of the damaged filesystem: {r.stdout[-300:]}")
    r = subprocess.run(["fsck", "-t", "aegisfs", "-fy", DEV], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    eq(r.returncode, 1, f"fsck -fy: {r.stdout[-300:]}")
    fsck()
    fsx.mount(DEV, MNT)
    expect_errno("ENODATA", os.getxattr, blk, "user.big")
    expect_errno("ENODATA", os.getxattr, inl, "user.a")
    eq(os.getxattr(good, "user.ok"), b"fine", "the intact attribute after fsck")
    os.setxattr(blk, "user.new", b"works again")
    eq(os.getxattr(blk, "user.new"), b"works again", "set after the repair")


def main():
    fsx.init("xattr", sys.argv)
    t = time.time()
    fsx.load()
    os.umask(0o022)
    if not case("mkfs-mount", lambda: (fsx.mkfs(DEV, "xattr"), fsx.mount(DEV, MNT))):
        return
    fsx.run_cases(([("namespaces", t_namespaces), ("flags", t_flags), ("errors", t_errors),
                     ("ctime", t_ctime), ("many", t_many), ("large", t_large),
                     ("fiemap", t_fiemap),
                     ("enospc", t_enospc), ("enospc-freed", t_enospc_freed),
                     ("file-types", t_file_types),
                     ("delete-frees", t_delete_frees), ("persist-set", t_persist_set),
                     ("persist-remount", t_persist_remount), ("crash", t_crash),
                     ("readonly", t_readonly), ("acl-access", t_acl_access),
                     ("acl-equivalent", t_acl_equivalent), ("acl-default", t_acl_default),
                     ("acl-chmod", t_acl_chmod), ("acl-persist", t_acl_persist),
                     ("noacl", t_noacl), ("concurrent", t_concurrent)]
                    + ([("layouts", t_layouts), ("corrupt", t_corrupt)] if fsx.FSTYP == "aegisfs" else [])), DEV, MNT, t)


if __name__ == "__main__":
    main()
