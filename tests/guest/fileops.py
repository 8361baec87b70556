#!/usr/bin/env python3
"""Guest half of tests/suites/fileops.sh: O_DIRECT, fallocate and inode flags on /dev/vdb.

Every case prints `ok fileops/<case>` or `not ok fileops/<case>: <reason>`. Files keep their
expected contents in EXPECT, which every verification (after drop_caches, after a remount)
compares against buffered reads, with the size and st_blocks where those are exact.
"""

import ctypes
import errno
import fcntl
import mmap
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check import FIEMAP_EXTENT_LAST, FIEMAP_EXTENT_UNWRITTEN, fiemap  # noqa: E402
from fsx import (  # noqa: E402
    FL_APPEND, FL_COMPR, FL_DIRSYNC, FL_IMMUTABLE, FL_NOATIME, FL_NODUMP, FL_SYNC, getflags,
    setflags,
)

SUITE = "fileops"
DEV = "/dev/vdb"
MNT = "/mnt/fileops"
BS = 4096
MIB = 1 << 20

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20

FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
XFLAG_NOATIME = 0x40

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]

# name -> (expected bytes, expected st_blocks in 512-byte units or None)
EXPECT = {}


class Fail(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Fail(msg)


def case(name, fn):
    try:
        fn()
        print(f"ok {SUITE}/{name}", flush=True)
    except Fail as e:
        print(f"not ok {SUITE}/{name}: {e}", flush=True)
    except OSError as e:
        print(f"not ok {SUITE}/{name}: unexpected {e!r}", flush=True)


def path(name):
    return os.path.join(MNT, name)


def pattern(seed, size):
    out = bytearray()
    block = 0
    while len(out) < size:
        out += struct.pack("<QQ", seed, block) * (BS // 16)
        block += 1
    return bytearray(out[:size])


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def fallocate_errno(fd, mode, off, length):
    try:
        fallocate(fd, mode, off, length)
        return 0
    except OSError as e:
        return e.errno


def dio_buf(data):
    """A page-aligned buffer holding `data` (length a multiple of 512)."""
    buf = mmap.mmap(-1, max(len(data), BS))
    buf[: len(data)] = bytes(data)
    return buf


def dio_write(name, off, data, create=False):
    flags = os.O_WRONLY | os.O_DIRECT | (os.O_CREAT if create else 0)
    fd = os.open(path(name), flags, 0o644)
    try:
        buf = dio_buf(data)
        n = os.pwritev(fd, [memoryview(buf)[: len(data)]], off)
        expect(n == len(data), f"O_DIRECT write of {len(data)} at {off} wrote {n}")
    finally:
        os.close(fd)


def dio_read(name, off, length):
    fd = os.open(path(name), os.O_RDONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, max(length, BS))
        n = os.preadv(fd, [memoryview(buf)[:length]], off)
        return bytes(buf[:n])
    finally:
        os.close(fd)


def put(exp, off, data):
    if len(exp) < off:
        exp += bytes(off - len(exp))
    exp[off : off + len(data)] = data


def blocks(name):
    return os.stat(path(name)).st_blocks


def verify(name):
    want, want_blocks = EXPECT[name]
    with open(path(name), "rb") as f:
        got = f.read()
    st = os.stat(path(name))
    expect(st.st_size == len(want), f"{name}: size {st.st_size}, want {len(want)}")
    if got != want:
        first = next(i for i in range(len(want)) if got[i] != want[i])
        raise Fail(f"{name}: contents differ first at byte {first}")
    if want_blocks is not None:
        expect(st.st_blocks == want_blocks, f"{name}: st_blocks {st.st_blocks}, want {want_blocks}")


def verify_all():
    for name in sorted(EXPECT):
        verify(name)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def remount():
    subprocess.run(["umount", MNT], check=True)
    subprocess.run(["mount", "-t", "aegisfs", DEV, MNT], check=True)


def seek(name, off, whence):
    fd = os.open(path(name), os.O_RDONLY)
    try:
        return os.lseek(fd, off, whence)
    except OSError as e:
        return -e.errno
    finally:
        os.close(fd)


def statfs_free():
    st = os.statvfs(MNT)
    return st.f_bfree


# ---- O_DIRECT ----

def dio_write_read():
    data = pattern(1, MIB)
    dio_write("dio", 0, data, create=True)
    expect(dio_read("dio", 0, MIB) == bytes(data), "O_DIRECT read back differs")
    exp = bytearray(data)
    EXPECT["dio"] = (exp, MIB // 512 + 8)  # 256 data blocks + 1 indirect
    verify("dio")


def dio_extend():
    # Extending past EOF with a gap: the gap is a hole, the size follows the write.
    data = pattern(2, 64 * 1024)
    dio_write("dio", 4 * MIB, data)
    exp, _ = EXPECT["dio"]
    put(exp, 4 * MIB, data)
    # 272 data blocks; the single indirect block, the double indirect and its first two
    # children (logical blocks 1024..1039 cross from the first into the second).
    EXPECT["dio"] = (exp, (256 + 16 + 4) * 8)
    expect(os.stat(path("dio")).st_size == 4 * MIB + 64 * 1024, "size not extended")
    expect(dio_read("dio", 2 * MIB, 8192) == bytes(8192), "hole does not read zeros")
    expect(seek("dio", MIB, os.SEEK_DATA) == 4 * MIB, "SEEK_DATA does not skip the hole")
    verify("dio")


def dio_hole():
    # Into the hole inside the size, and a 512-byte aligned piece inside a new block.
    data = pattern(3, 16 * 1024)
    dio_write("dio", 2 * MIB, data)
    part = pattern(4, 1024)
    dio_write("dio", 3 * MIB + 512, part)
    exp, _ = EXPECT["dio"]
    put(exp, 2 * MIB, data)
    put(exp, 3 * MIB + 512, part)
    EXPECT["dio"] = (exp, (256 + 16 + 4 + 1 + 4) * 8)
    got = dio_read("dio", 3 * MIB, BS)
    expect(got == bytes(exp[3 * MIB : 3 * MIB + BS]), "partial block not zero-filled around the write")
    expect(dio_read("dio", 2 * MIB, 16 * 1024) == bytes(data), "O_DIRECT read of the filled hole differs")
    verify("dio")


def dio_overwrite_unaligned():
    # Overwrite of written blocks, 512-byte aligned: the rest of the block stays.
    data = pattern(5, 1536)
    dio_write("dio", 8192 + 512, data)
    exp, blk = EXPECT["dio"]
    put(exp, 8192 + 512, data)
    verify("dio")


def dio_coherence():
    # Buffered data not yet written back is seen by O_DIRECT reads, and O_DIRECT writes
    # replace what the page cache holds.
    buffered = pattern(6, 3 * BS)
    fd = os.open(path("dio"), os.O_WRONLY)
    os.pwrite(fd, buffered, 16 * BS)
    os.close(fd)
    expect(dio_read("dio", 16 * BS, 3 * BS) == bytes(buffered), "O_DIRECT read missed buffered data")
    with open(path("dio"), "rb") as f:
        f.read()  # cache it all
    direct = pattern(7, 2 * BS)
    dio_write("dio", 17 * BS, direct)
    exp, _ = EXPECT["dio"]
    put(exp, 16 * BS, buffered)
    put(exp, 17 * BS, direct)
    verify("dio")


def dio_unwritten():
    fd = os.open(path("dio-prealloc"), os.O_RDWR | os.O_CREAT, 0o644)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 32 * BS)
    os.close(fd)
    expect(os.stat(path("dio-prealloc")).st_size == 0, "KEEP_SIZE changed the size")
    data = pattern(8, 8 * BS)
    dio_write("dio-prealloc", 4 * BS, data)
    exp = bytearray(12 * BS)
    put(exp, 4 * BS, data)
    # 32 blocks: 12 direct, 20 under the single indirect block.
    EXPECT["dio-prealloc"] = (exp, 33 * 8)
    expect(dio_read("dio-prealloc", 0, 12 * BS) == bytes(exp), "O_DIRECT read over UNWRITTEN blocks differs")
    expect(seek("dio-prealloc", 0, os.SEEK_DATA) == 4 * BS, "SEEK_DATA does not find the written part")
    expect(seek("dio-prealloc", 4 * BS, os.SEEK_HOLE) == 12 * BS, "SEEK_HOLE after the written part")
    verify("dio-prealloc")


def fio(*args):
    job = [
        "fio", "--name=fileops", f"--filename={path('fio')}", "--size=8m", "--bs=4k",
        "--randseed=7", "--verify=crc32c", "--verify_fatal=1", "--output-format=terse",
    ]
    r = subprocess.run(job + list(args), capture_output=True, text=True)
    expect(r.returncode == 0, f"fio {' '.join(args)}: {(r.stderr or r.stdout).strip()[-300:]}")


def dio_fio():
    # Asynchronous O_DIRECT random writes (libaio, 8 in flight) into the file fio lays out
    # with fallocate, verified directly, then through the page cache after drop_caches.
    fio("--rw=randwrite", "--direct=1", "--ioengine=libaio", "--iodepth=8", "--do_verify=1")
    drop_caches()
    fio("--rw=randwrite", "--direct=0", "--verify_only")
    expect(os.stat(path("fio")).st_size == 8 * MIB, "fio file size")
    # 2048 data blocks and 5 indirect blocks (1 single, 1 double with 3 children).
    expect(blocks("fio") == (2048 + 5) * 8, f"fio file st_blocks {blocks('fio')}")


def dio_drop_caches():
    drop_caches()
    verify_all()


# ---- fallocate ----

def falloc_mode0():
    fd = os.open(path("fa0"), os.O_RDWR | os.O_CREAT, 0o644)
    fallocate(fd, 0, 0, MIB + 100)
    os.close(fd)
    st = os.stat(path("fa0"))
    expect(st.st_size == MIB + 100, f"size {st.st_size}")
    # 257 data blocks and one indirect block.
    expect(st.st_blocks == 258 * 8, f"st_blocks {st.st_blocks}")
    expect(seek("fa0", 0, os.SEEK_DATA) == -errno.ENXIO, "UNWRITTEN blocks are not a hole to SEEK_DATA")
    expect(seek("fa0", 0, os.SEEK_HOLE) == 0, "SEEK_HOLE")
    EXPECT["fa0"] = (bytearray(MIB + 100), 258 * 8)
    verify("fa0")
    # A buffered write into the preallocated range: the rest of the block stays zero.
    fd = os.open(path("fa0"), os.O_WRONLY)
    os.pwrite(fd, b"hello", 5 * BS + 10)
    os.close(fd)
    exp, _ = EXPECT["fa0"]
    put(exp, 5 * BS + 10, b"hello")
    verify("fa0")
    drop_caches()
    verify("fa0")
    expect(seek("fa0", 0, os.SEEK_DATA) == 5 * BS, "SEEK_DATA to the written block")
    # Again over allocated blocks: nothing changes but the size.
    fd = os.open(path("fa0"), os.O_RDWR)
    fallocate(fd, 0, 0, 2 * BS)
    os.close(fd)
    verify("fa0")


def extents(name):
    """FIEMAP of `name` as (start, length, unwritten) triples, logically adjacent extents
    of one kind merged (where the blocks lie on the disk does not matter here)."""
    fd = os.open(path(name), os.O_RDONLY)
    try:
        out = []
        for lo, _, ln, fl in fiemap(fd):
            unwritten = bool(fl & FIEMAP_EXTENT_UNWRITTEN)
            if out and out[-1][0] + out[-1][1] == lo and out[-1][2] == unwritten:
                out[-1] = (out[-1][0], out[-1][1] + ln, unwritten)
            else:
                out.append((lo, ln, unwritten))
        return out
    finally:
        os.close(fd)


def falloc_keep_size():
    data = pattern(9, 2 * BS)
    with open(path("fak"), "wb") as f:
        f.write(data)
    fd = os.open(path("fak"), os.O_RDWR)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 64 * BS)
    os.close(fd)
    # 64 blocks, 12 direct and 52 under an indirect block.
    EXPECT["fak"] = (bytearray(data), 65 * 8)
    verify("fak")
    # FIEMAP reports the preallocated blocks past the size, as UNWRITTEN.
    fd = os.open(path("fak"), os.O_RDONLY)
    try:
        last = fiemap(fd)[-1][3]
    finally:
        os.close(fd)
    expect(last & FIEMAP_EXTENT_LAST, "the last extent is not marked LAST")
    ext = extents("fak")
    expect(ext == [(0, 2 * BS, False), (2 * BS, 62 * BS, True)], f"extents: {ext}")
    # Appending uses the preallocated blocks.
    more = pattern(10, 3 * BS)
    with open(path("fak"), "ab") as f:
        f.write(more)
    exp, _ = EXPECT["fak"]
    exp += more
    verify("fak")
    # Truncating frees what lies past the size, preallocated blocks included.
    os.truncate(path("fak"), 4 * BS)
    del exp[4 * BS :]
    EXPECT["fak"] = (exp, 4 * 8)
    verify("fak")


def falloc_truncate_same():
    # xfstests generic/092: a truncate to the current size frees what was preallocated past
    # it; a truncate up keeps it.
    data = pattern(12, 2 * BS)
    with open(path("fat"), "wb") as f:
        f.write(data)
    fd = os.open(path("fat"), os.O_RDWR)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 10 * BS)
    os.close(fd)
    EXPECT["fat"] = (bytearray(data), 10 * 8)
    verify("fat")
    os.truncate(path("fat"), 2 * BS)
    EXPECT["fat"] = (bytearray(data), 2 * 8)
    verify("fat")
    ext = extents("fat")
    expect(ext == [(0, 2 * BS, False)], f"extents after the truncate to the size: {ext}")
    fd = os.open(path("fat"), os.O_RDWR)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 2 * BS, 8 * BS)
    os.close(fd)
    os.truncate(path("fat"), 5 * BS)
    EXPECT["fat"] = (bytearray(data) + bytes(3 * BS), 10 * 8)
    verify("fat")
    ext = extents("fat")
    expect(ext == [(0, 2 * BS, False), (2 * BS, 8 * BS, True)], f"extents after the truncate up: {ext}")
    # Truncated to its size again, the file keeps its UNWRITTEN blocks inside the size.
    os.truncate(path("fat"), 5 * BS)
    EXPECT["fat"] = (bytearray(data) + bytes(3 * BS), 5 * 8)
    verify("fat")
    ext = extents("fat")
    expect(ext == [(0, 2 * BS, False), (2 * BS, 3 * BS, True)], f"extents after the truncate to the new size: {ext}")
    # Once more, and on an empty file: nothing changes.
    os.truncate(path("fat"), 5 * BS)
    verify("fat")
    open(path("fat-empty"), "wb").close()
    os.truncate(path("fat-empty"), 0)
    EXPECT["fat-empty"] = (bytearray(), 0)
    verify("fat-empty")


def falloc_punch():
    data = pattern(11, 64 * BS)
    with open(path("fap"), "wb") as f:
        f.write(data)
    os.sync()
    before = blocks("fap")
    expect(before == 65 * 8, f"st_blocks {before} before punching")
    fd = os.open(path("fap"), os.O_RDWR)
    off, length = 3 * BS + 100, 5 * BS
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, length)
    exp = bytearray(data)
    put(exp, off, bytes(length))
    # Blocks 4..7 are freed; 3 and 8 are zeroed in part.
    EXPECT["fap"] = (exp, before - 4 * 8)
    verify("fap")
    expect(seek("fap", 0, os.SEEK_HOLE) == 4 * BS, "SEEK_HOLE at the punched blocks")
    expect(seek("fap", 4 * BS, os.SEEK_DATA) == 8 * BS, "SEEK_DATA after the punched blocks")
    # A hole inside one block only zeroes.
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 20 * BS + 10, 100)
    put(exp, 20 * BS + 10, bytes(100))
    # The whole indirect range: its data blocks and the indirect block go.
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 12 * BS, 200 * BS)
    put(exp, 12 * BS, bytes(52 * BS))
    os.close(fd)
    EXPECT["fap"] = (exp, (12 - 4) * 8)
    verify("fap")
    drop_caches()
    verify("fap")
    expect(os.stat(path("fap")).st_size == 64 * BS, "punching changed the size")


def falloc_zero():
    data = pattern(12, 16 * BS)
    with open(path("faz"), "wb") as f:
        f.write(data)
    fd = os.open(path("faz"), os.O_RDWR)
    off, length = BS + 7, 6 * BS
    fallocate(fd, FALLOC_FL_ZERO_RANGE, off, length)
    exp = bytearray(data)
    put(exp, off, bytes(length))
    EXPECT["faz"] = (exp, 17 * 8)
    verify("faz")
    # Whole blocks 2..6 are UNWRITTEN now: a hole to SEEK_DATA/SEEK_HOLE.
    expect(seek("faz", 0, os.SEEK_HOLE) == 2 * BS, "SEEK_HOLE at the zeroed blocks")
    expect(seek("faz", 2 * BS, os.SEEK_DATA) == 7 * BS, "SEEK_DATA after the zeroed blocks")
    # Past EOF, growing the size: allocated UNWRITTEN.
    fallocate(fd, FALLOC_FL_ZERO_RANGE, 16 * BS - 100, 4 * BS)
    put(exp, 16 * BS - 100, bytes(4 * BS))
    EXPECT["faz"] = (exp, 21 * 8)
    verify("faz")
    # With KEEP_SIZE past EOF: allocated, size unchanged.
    fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 24 * BS, 4 * BS)
    os.close(fd)
    EXPECT["faz"] = (exp, 25 * 8)
    verify("faz")
    drop_caches()
    verify("faz")


def falloc_errors():
    fd = os.open(path("fae"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # The empty file has no range to collapse and no offset to insert at.
        for mode, name, want in [
            (FALLOC_FL_COLLAPSE_RANGE, "COLLAPSE_RANGE", errno.EINVAL),
            (FALLOC_FL_INSERT_RANGE, "INSERT_RANGE", errno.EINVAL),
            (FALLOC_FL_PUNCH_HOLE, "PUNCH_HOLE without KEEP_SIZE", errno.EOPNOTSUPP),
        ]:
            e = fallocate_errno(fd, mode, 0, BS)
            expect(e == want, f"{name}: errno {e}")
        e = fallocate_errno(fd, 0, 1 << 62, BS)
        expect(e == errno.EFBIG, f"past s_maxbytes: errno {e}")
        e = fallocate_errno(fd, FALLOC_FL_KEEP_SIZE, 1 << 62, BS)
        expect(e == errno.EFBIG, f"KEEP_SIZE past s_maxbytes: errno {e}")
    finally:
        os.close(fd)
    EXPECT["fae"] = (bytearray(), 0)
    verify("fae")


def falloc_enospc():
    os.sync()
    free = statfs_free()
    fd = os.open(path("fa-big"), os.O_RDWR | os.O_CREAT, 0o644)
    e = fallocate_errno(fd, 0, 0, 1 << 30)
    expect(e == errno.ENOSPC, f"1 GiB on a 512 MiB filesystem: errno {e}")
    st = os.fstat(fd)
    expect(st.st_size == 0, f"failed fallocate changed the size to {st.st_size}")
    expect(st.st_blocks > 0, "nothing stayed allocated")
    used = free - statfs_free()
    expect(used * 8 == st.st_blocks, f"statfs says {used} blocks used, st_blocks {st.st_blocks}")
    e = fallocate_errno(fd, FALLOC_FL_KEEP_SIZE, 2 << 30, 16 * BS)
    expect(e == errno.ENOSPC, f"KEEP_SIZE on a full filesystem: errno {e}")
    os.close(fd)
    os.unlink(path("fa-big"))
    os.sync()
    expect(statfs_free() == free, f"{free - statfs_free()} blocks lost after unlink")


def verify_remount():
    remount()
    verify_all()


# ---- inode flags ----

def errno_of(fn):
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno


def chattr_immutable():
    p = path("immutable")
    with open(p, "wb") as f:
        f.write(b"keep me")
    fd_before = os.open(p, os.O_RDWR)
    setflags(p, getflags(p) | FL_IMMUTABLE)
    expect(getflags(p) & FL_IMMUTABLE, "GETFLAGS lost +i")
    for what, fn in [
        ("open for writing", lambda: os.close(os.open(p, os.O_WRONLY))),
        ("write through an older descriptor", lambda: os.pwrite(fd_before, b"x", 0)),
        ("truncate", lambda: os.truncate(p, 0)),
        ("unlink", lambda: os.unlink(p)),
        ("rename", lambda: os.rename(p, path("immutable2"))),
        ("chmod", lambda: os.chmod(p, 0o600)),
        ("fallocate", lambda: fallocate(fd_before, 0, 0, BS)),
        ("link", lambda: os.link(p, path("immutable-link"))),
    ]:
        e = errno_of(fn)
        expect(e == errno.EPERM, f"{what}: errno {e}")
    os.close(fd_before)
    EXPECT["immutable"] = (bytearray(b"keep me"), 8)
    verify("immutable")


def chattr_append():
    p = path("append")
    with open(p, "wb") as f:
        f.write(b"first\n")
    setflags(p, getflags(p) | FL_APPEND)
    for what, fn in [
        ("open without O_APPEND", lambda: os.close(os.open(p, os.O_WRONLY))),
        ("O_TRUNC", lambda: os.close(os.open(p, os.O_WRONLY | os.O_APPEND | os.O_TRUNC))),
        ("truncate", lambda: os.truncate(p, 0)),
        ("unlink", lambda: os.unlink(p)),
    ]:
        e = errno_of(fn)
        expect(e == errno.EPERM, f"{what}: errno {e}")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"second\n")
    e = fallocate_errno(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4)
    expect(e == errno.EPERM, f"punching an append-only file: errno {e}")
    e = fallocate_errno(fd, FALLOC_FL_KEEP_SIZE, 0, 4 * BS)
    expect(e == 0, f"preallocating an append-only file: errno {e}")
    os.close(fd)
    EXPECT["append"] = (bytearray(b"first\nsecond\n"), 4 * 8)
    verify("append")


def chattr_flags():
    d = path("flagdir")
    os.mkdir(d)
    f = os.path.join(d, "file")
    with open(f, "wb") as fh:
        fh.write(b"x")
    setflags(d, getflags(d) | FL_NOATIME | FL_SYNC | FL_NODUMP | FL_DIRSYNC)
    setflags(f, getflags(f) | FL_NOATIME | FL_NODUMP)
    got = getflags(d)
    want = FL_NOATIME | FL_SYNC | FL_NODUMP | FL_DIRSYNC
    expect(got == want, f"directory flags {got:#x}, want {want:#x}")
    expect(getflags(f) == FL_NOATIME | FL_NODUMP, f"file flags {getflags(f):#x}")
    # noatime: reading does not change atime.
    os.utime(f, (1000, 1000))
    with open(f, "rb") as fh:
        fh.read()
    expect(os.stat(f).st_atime == 1000, "read updated atime of a +A file")
    # New files inherit sync and noatime (like ext4).
    g = os.path.join(d, "child")
    open(g, "wb").close()
    expect(getflags(g) & (FL_SYNC | FL_NOATIME) == FL_SYNC | FL_NOATIME, f"child flags {getflags(g):#x}")
    e = errno_of(lambda: setflags(f, getflags(f) | FL_COMPR))
    expect(e == errno.EOPNOTSUPP, f"unsupported flag: errno {e}")
    # FS_IOC_FSGETXATTR / FSSETXATTR.
    fd = os.open(f, os.O_RDONLY)
    try:
        raw = bytearray(fcntl.ioctl(fd, FS_IOC_FSGETXATTR, bytes(28)))
        xflags = struct.unpack_from("<I", raw)[0]
        expect(xflags & XFLAG_NOATIME, f"FSGETXATTR xflags {xflags:#x}")
        struct.pack_into("<I", raw, 0, xflags & ~XFLAG_NOATIME)
        fcntl.ioctl(fd, FS_IOC_FSSETXATTR, bytes(raw))
    finally:
        os.close(fd)
    expect(getflags(f) == FL_NODUMP, f"after FSSETXATTR: {getflags(f):#x}")
    # lsattr/chattr, when the guest has them.
    if subprocess.run(["sh", "-c", "command -v chattr"], capture_output=True).returncode == 0:
        subprocess.run(["chattr", "+A", "-d", f], check=True)
        expect(getflags(f) == FL_NOATIME, f"after chattr: {getflags(f):#x}")
    # Without CAP_LINUX_IMMUTABLE the owner may not set +i or +a, but may set +A.
    os.chown(f, 65534, 65534)
    pid = os.fork()
    if pid == 0:
        os.setgid(65534)
        os.setuid(65534)
        codes = [errno_of(lambda: setflags(f, getflags(f) | fl)) for fl in (FL_IMMUTABLE, FL_APPEND, FL_SYNC)]
        os._exit(0 if codes == [errno.EPERM, errno.EPERM, 0] else 1)
    _, status = os.waitpid(pid, 0)
    expect(status == 0, "an unprivileged owner set +i/+a or could not set +S")
    expect(getflags(f) & (FL_IMMUTABLE | FL_APPEND) == 0, "flags set without the capability")


def flags_remount():
    remount()
    checks = [
        ("immutable", FL_IMMUTABLE),
        ("append", FL_APPEND),
        ("flagdir", FL_NOATIME | FL_SYNC | FL_NODUMP | FL_DIRSYNC),
    ]
    for name, want in checks:
        got = getflags(path(name))
        expect(got == want, f"{name}: flags {got:#x} after remount, want {want:#x}")
    e = errno_of(lambda: os.close(os.open(path("immutable"), os.O_WRONLY)))
    expect(e == errno.EPERM, f"+i lost its effect after remount: errno {e}")
    e = errno_of(lambda: os.close(os.open(path("append"), os.O_WRONLY)))
    expect(e == errno.EPERM, f"+a lost its effect after remount: errno {e}")
    # Clearing the flags makes the files ordinary again.
    for name in ("immutable", "append"):
        setflags(path(name), 0)
    with open(path("immutable"), "ab") as fh:
        fh.write(b"!")
    os.truncate(path("append"), 0)
    EXPECT["immutable"] = (bytearray(b"keep me!"), 8)
    EXPECT["append"] = (bytearray(), 0)
    verify_all()


STATX_ATTR_IMMUTABLE, STATX_ATTR_APPEND, STATX_ATTR_NODUMP = 0x10, 0x20, 0x40
AT_STATX_SYNC_AS_STAT = 0


def statx_attributes(p):
    """statx(2) of P: (stx_attributes, stx_attributes_mask)."""
    buf = ctypes.create_string_buffer(256)
    if libc.statx(-100, os.fsencode(p), AT_STATX_SYNC_AS_STAT, 0, buf) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), p)
    return struct.unpack_from("<Q", buf, 8)[0], struct.unpack_from("<Q", buf, 56)[0]


def statx_attributes_case():
    """statx reports the append-only, immutable and nodump flags in stx_attributes and all
    three in stx_attributes_mask, for every combination, as ext4 does (xfstests
    generic/424)."""
    f = path("statx")
    open(f, "wb").close()
    pairs = ((FL_APPEND, STATX_ATTR_APPEND), (FL_IMMUTABLE, STATX_ATTR_IMMUTABLE),
             (FL_NODUMP, STATX_ATTR_NODUMP))
    every = STATX_ATTR_APPEND | STATX_ATTR_IMMUTABLE | STATX_ATTR_NODUMP
    try:
        for combo in range(8):
            flags = sum(fl for i, (fl, _) in enumerate(pairs) if combo >> i & 1)
            want = sum(at for i, (_, at) in enumerate(pairs) if combo >> i & 1)
            setflags(f, flags)
            attrs, mask = statx_attributes(f)
            expect(mask & every == every, f"flags {flags:#x}: stx_attributes_mask {mask:#x}")
            expect(attrs & every == want, f"flags {flags:#x}: stx_attributes {attrs:#x}, want {want:#x}")
    finally:
        setflags(f, 0)
    os.unlink(f)


def main():
    os.makedirs(MNT, exist_ok=True)
    r = subprocess.run(["mkfs.aegisfs", "-q", "-f", DEV], capture_output=True, text=True)
    r2 = None
    if r.returncode == 0:
        r2 = subprocess.run(["mount", "-t", "aegisfs", DEV, MNT], capture_output=True, text=True)
    if r.returncode != 0 or r2.returncode != 0:
        print(f"not ok {SUITE}/mkfs-mount: {r.stderr} {r2.stderr if r2 else ''}".strip(), flush=True)
        return
    print(f"ok {SUITE}/mkfs-mount", flush=True)
    for name, fn in [
        ("dio-write-read", dio_write_read),
        ("dio-extend", dio_extend),
        ("dio-hole", dio_hole),
        ("dio-overwrite-unaligned", dio_overwrite_unaligned),
        ("dio-coherence", dio_coherence),
        ("dio-unwritten", dio_unwritten),
        ("dio-fio", dio_fio),
        ("dio-drop-caches", dio_drop_caches),
        ("falloc-mode0", falloc_mode0),
        ("falloc-keep-size", falloc_keep_size),
        ("falloc-truncate-same", falloc_truncate_same),
        ("falloc-punch", falloc_punch),
        ("falloc-zero", falloc_zero),
        ("falloc-errors", falloc_errors),
        ("falloc-enospc", falloc_enospc),
        ("verify-remount", verify_remount),
        ("chattr-immutable", chattr_immutable),
        ("chattr-append", chattr_append),
        ("chattr-flags", chattr_flags),
        ("flags-remount", flags_remount),
        ("statx-attributes", statx_attributes_case),
    ]:
        case(name, fn)
    r = subprocess.run(["umount", MNT], capture_output=True, text=True)
    if r.returncode == 0:
        print(f"ok {SUITE}/umount", flush=True)
    else:
        print(f"not ok {SUITE}/umount: {r.stderr.strip()}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
