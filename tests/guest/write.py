#!/usr/bin/env python3
"""Guest half of tests/suites/write.sh: the write path of a read-write filesystem.

  write.py FSTYP main SHARE     /dev/vdb (a few GiB, an image file the host keeps) and
                                /dev/vdc (small, for ENOSPC): every case, then leaves the
                                files listed in SHARE/manifest on /dev/vdb
  write.py FSTYP reboot SHARE   the next boot on the same /dev/vdb: everything in
                                SHARE/manifest still reads back, statfs unchanged

FSTYP is the filesystem under test (aegisfs, or ext4 to prove the tests themselves).
"""

import multiprocessing
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402
from fsx import MIB, Fail, case, expect, note  # noqa: E402

GIB = 1 << 30
DEV, SMALL = "/dev/vdb", "/dev/vdc"
MNT, MNT_SMALL = "/mnt/write", "/mnt/enospc"

# What the later cases (and the next boot) verify: name -> (seed, [(off, len)...], size)
# and the sha256 of each extent as written (name -> [sha...]; verify() computes missing ones
# from the stream).
files = {}
shas = {}


def path(name):
    return os.path.join(MNT, name)


def verify(name):
    seed, extents, size = files[name]
    p = path(name)
    st = os.stat(p)
    expect(st.st_size == size, f"{name}: size {st.st_size}, expected {size}")
    known = shas.get(name) or [None] * len(extents)
    for (off, length), want in zip(extents, known):
        got = fsx.sha_range(p, off, length)
        want = want or fsx.expected(seed, off, length)
        expect(got == want, f"{name}: sha256 of bytes {off}+{length} is {got}, expected {want}")


def verify_all(names=None):
    for name in names or list(files):
        verify(name)


def remount():
    fsx.umount(MNT)
    fsx.mount(DEV, MNT)


# ---- (b) block reuse -------------------------------------------------------------------


def block_reuse(start):
    top = path("reuse")
    for rnd in range(2):
        os.mkdir(top)
        small = []
        for i in range(2000):
            d = os.path.join(top, f"d{i % 20:02d}")
            if i < 20:
                os.mkdir(d)
            # One stream for all of them (a new seed costs a 1 MiB random block).
            size = (i * 7919) % 16384
            p = os.path.join(d, f"f{i:04d}")
            data = fsx.gen(1000 + rnd, i * 16384, size)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            expect(os.write(fd, data) == size, f"{p}: short write")
            os.close(fd)
            small.append((p, data))
        big = []
        for i, size in enumerate((MIB + 1, 9 * MIB + 4095, 40 * MIB + 7)):
            p = os.path.join(top, f"big{i}")
            fsx.write_file(p, 3000 + i, size)
            big.append((p, 3000 + i, size))
        os.sync()
        used = fsx.statfs(MNT)
        expect(used != start, f"round {rnd}: statfs unchanged after writing 2000 files ({used})")
        for p, data in small[::7]:
            with open(p, "rb") as f:
                expect(f.read() == data, f"{p}: content differs from what was written")
        for p, seed, size in big:
            fsx.check_data(p, seed, 0, size)
        shutil.rmtree(top)
        os.sync()
        after = fsx.statfs(MNT)
        expect(after == start, f"round {rnd}: statfs '{after}' after deleting everything, expected '{start}' (blocks free avail inodes ifree)")


# ---- (i) a write whose buffer faults part way --------------------------------------------


def short_copy():
    """A 4 MiB write into a hole from a buffer whose last 3 MiB are not mapped copies 1
    MiB: the blocks the filesystem allocated for the rest of the write must read as zeros,
    not as what a deleted file left in them (AegisFS allocates a folio's blocks at once)."""
    import ctypes
    from check import fiemap
    old, new = path("short-old"), path("short-new")
    size = 8 * MIB
    with open(old, "wb") as f:
        f.write(b"\xab" * size)
        os.fsync(f.fileno())
        old_blocks = {(ph, ln) for _, ph, ln, _ in fiemap(f.fileno())}
    os.unlink(old)
    os.sync()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.pwrite.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    libc.pwrite.restype = ctypes.c_ssize_t
    # PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
    buf = libc.mmap(None, 4 * MIB, 3, 0x22, -1, 0)
    expect(buf not in (None, ctypes.c_void_p(-1).value), "mmap failed")
    ctypes.memset(buf, 0x5A, MIB)
    expect(libc.munmap(buf + MIB, 3 * MIB) == 0, "munmap failed")
    fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        n = libc.pwrite(fd, buf, 4 * MIB, MIB)
        expect(n == MIB, f"pwrite from a buffer with 1 MiB mapped returned {n}, expected {MIB}")
        want = bytes(MIB) + b"\x5a" * MIB + bytes(size - 2 * MIB)
        expect(os.pread(fd, size, 0) == want, "after a short write the file is not its data "
               "and zeros (cached)")
        os.fsync(fd)
        new_blocks = {(ph, ln) for _, ph, ln, _ in fiemap(fd)}
    finally:
        os.close(fd)
        libc.munmap(buf, MIB)
    fsx.drop_caches()
    with open(new, "rb") as f:
        expect(f.read() == want, "after a short write the file is not its data and zeros "
               "(from the disk)")
    reused = any(a < b + bl and b < a + al for a, al in old_blocks for b, bl in new_blocks)
    note(f"short-copy: the new file's blocks {'reuse' if reused else 'do not reuse'} the "
         "deleted file's")
    os.unlink(new)


# ---- (j) truncate inside a large folio --------------------------------------------------


def truncate_in_folio():
    """A file read back in 1 MiB preads is cached in multi-page folios without buffer heads
    (readahead); a truncate to the middle of a block that is not in the first page of its
    folio must zero that block's tail on the disk, and an append there must land in that
    block, wherever the block sits in its folio."""
    size = 4 * MIB
    for i, cut in enumerate((3811045, 2 * MIB + 5 * fsx.BLOCK + 100, 1234567)):
        p = path(f"cut-{i}")
        data = fsx.gen(400 + i, 0, size)
        with open(p, "wb") as f:
            f.write(data)
        remount()
        fd = os.open(p, os.O_RDWR)
        try:
            got = b"".join(os.pread(fd, MIB, off) for off in range(0, size, MIB))
            expect(got == data, f"{p}: content differs from what was written")
            os.ftruncate(fd, cut)
            tail = fsx.gen(500 + i, 0, 200000)
            expect(os.pwrite(fd, tail, cut) == len(tail), f"{p}: short write")
        finally:
            os.close(fd)
        want = data[:cut] + tail
        remount()
        with open(p, "rb") as f:
            got = f.read()
        bad = next((j for j in range(len(want)) if j >= len(got) or got[j] != want[j]), None)
        expect(bad is None, f"{p}: cut at {cut}, then appended: byte {bad} differs after a remount")
        os.unlink(p)


# ---- (a) big sequential files ----------------------------------------------------------


def write_seq(name, seed, size):
    t = time.time()
    shas[name] = [fsx.write_file(path(name), seed, size)]
    files[name] = (seed, [(0, size)], size)
    took = time.time() - t
    if size >= 64 * MIB:
        note(f"{name}: {size >> 20} MiB written in {took:.1f} s")


def drop_caches_verify():
    fsx.drop_caches()
    verify_all(["two-mib", "one-gib"])


def remount_verify():
    remount()
    verify_all(["two-mib", "one-gib"])


def cold_random_reads():
    """Cold 4 KiB reads of one-gib, one in each of 64 ranges that different indirect blocks
    map, read what was written, and cost about one device read each: the indirect blocks
    below the double indirect block are read ahead together when it is first read, not one
    synchronous read per range (which made 129 or more)."""
    remount()
    fsx.drop_caches()
    seed = files["one-gib"][0]
    offsets = [(523 + k * 511 * 8 + 5) * fsx.BLOCK for k in range(64)]
    fd = os.open(path("one-gib"), os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        before = fsx.block_stat(DEV, 0)
        got = [os.pread(fd, fsx.BLOCK, off) for off in offsets]
        reads = fsx.block_stat(DEV, 0) - before
    finally:
        os.close(fd)
    for off, data in zip(offsets, got):
        want = fsx.gen(seed, off, fsx.BLOCK)
        expect(data == want, f"4 KiB at {off} differs from what was written")
    note(f"64 cold random reads of one-gib: {reads} device reads")
    expect(reads <= 96, f"64 cold random reads took {reads} device reads, more than 96")


# ---- (h) fragmentation -----------------------------------------------------------------


def indirect_blocks(n):
    """Block-map blocks an AegisFS file of N data blocks needs (12 direct pointers, 511
    pointers per indirect block)."""
    p = 511
    total = 0
    n -= 12
    if n > 0:
        total += 1
        n -= p
    if n > 0:
        d = min(n, p * p)
        total += 1 + -(-d // p)
        n -= d
    if n > 0:
        total += 1 + -(-n // (p * p)) + -(-n // p)
    return total


def fragmentation():
    out = fsx.run("filefrag", path("one-gib"))
    # "/mnt/write/one-gib: 9 extents found"
    count = int(out.rsplit(":", 1)[1].split()[0])
    bound = 64
    if fsx.FSTYP == "aegisfs":
        # An allocator that puts each indirect block next to the data it maps (as
        # mkfs.aegisfs -d does) breaks the physical run at each of them.
        bound += indirect_blocks(GIB // fsx.BLOCK)
    note(f"filefrag: one-gib (1 GiB, written sequentially) has {count} extents (bound {bound})")
    expect(count <= bound, f"1 GiB file in {count} extents, more than {bound}")


# ---- (e) sparse ------------------------------------------------------------------------

SPARSE = [(0, 5000), (GIB + 123, 5000), (2 * GIB, 5000), (5 * GIB, 5000), (16 * GIB + 1, 5000)]
SPARSE_SIZE = 16 * GIB + 1 + 5000


def sparse_write():
    fd = os.open(path("sparse"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for off, length in SPARSE:
            fsx.write_data(fd, 77, off, length)
    finally:
        os.close(fd)
    files["sparse"] = (77, SPARSE, SPARSE_SIZE)


def sparse_segments():
    segs = []
    for off, length in SPARSE:
        a = off // fsx.BLOCK * fsx.BLOCK
        b = min(-(-(off + length) // fsx.BLOCK) * fsx.BLOCK, SPARSE_SIZE)
        if segs and segs[-1][1] >= a:
            segs[-1][1] = b
        else:
            segs.append([a, b])
    return [tuple(s) for s in segs]


def sparse_holes():
    p = path("sparse")
    segs = sparse_segments()
    # The zeros inside the data blocks, around the data.
    for (off, length), (a, b) in zip(SPARSE, segs):
        for h0, h1 in ((a, off), (off + length, b)):
            if h1 > h0:
                got = fsx.sha_range(p, h0, h1 - h0)
                expect(got == fsx.zero_sha(h1 - h0), f"bytes {h0}+{h1 - h0} next to data are not zero")
    # 1 MiB at the start, the middle and the end of each hole.
    for (_, b), (a2, _) in zip(segs, segs[1:]):
        for h0 in sorted({b, (b + a2) // 2 // MIB * MIB, a2 - MIB}):
            got = fsx.sha_range(p, h0, MIB)
            expect(got == fsx.zero_sha(MIB), f"hole at {h0}+1MiB has sha256 {got}, not zeros")


def sparse_seek():
    segs = sparse_segments()
    fd = os.open(path("sparse"), os.O_RDONLY)
    try:
        got = []
        pos = 0
        while True:
            a = fsx.seek(fd, pos, os.SEEK_DATA)
            if a == "ENXIO":
                break
            expect(isinstance(a, int), f"SEEK_DATA from {pos}: {a}")
            b = fsx.seek(fd, a, os.SEEK_HOLE)
            expect(isinstance(b, int), f"SEEK_HOLE from {a}: {b}")
            got.append((a, b))
            pos = b
            if pos >= SPARSE_SIZE or len(got) > 20:
                break
        expect(got == segs, f"data segments {got}, expected {segs}")
        for off, want in ((1, 1), (8192, GIB), (GIB + 100, GIB + 100), (3 * GIB, 5 * GIB)):
            g = fsx.seek(fd, off, os.SEEK_DATA)
            expect(g == want, f"SEEK_DATA from {off}: {g}, expected {want}")
        for off, want in ((0, 8192), (GIB + 5000, GIB + 8192), (9 * GIB, 9 * GIB),
                          (16 * GIB + 2, SPARSE_SIZE)):
            g = fsx.seek(fd, off, os.SEEK_HOLE)
            expect(g == want, f"SEEK_HOLE from {off}: {g}, expected {want}")
        for whence in (os.SEEK_DATA, os.SEEK_HOLE):
            g = fsx.seek(fd, SPARSE_SIZE, whence)
            expect(g == "ENXIO", f"seek {whence} at EOF: {g}, expected ENXIO")
    finally:
        os.close(fd)


def sparse_blocks():
    st = os.stat(path("sparse"))
    expect(st.st_size == SPARSE_SIZE, f"size {st.st_size}, expected {SPARSE_SIZE}")
    # 10 data blocks, plus the block map (or extent tree): far below 64 blocks.
    note(f"sparse: {st.st_blocks} 512-byte blocks allocated for {len(SPARSE)} data ranges")
    expect(0 < st.st_blocks <= 64 * 8, f"st_blocks {st.st_blocks}, expected at most {64 * 8}")


# ---- (d) parallel writers --------------------------------------------------------------


def _writer(args):
    name, seed, size = args
    return name, fsx.write_file(path(name), seed, size)


def parallel(n, size, seed0):
    jobs = [(f"par{n}-{i}", seed0 + i, size) for i in range(n)]
    t = time.time()
    with multiprocessing.Pool(n) as pool:
        done = pool.map(_writer, jobs)
    expect(sorted(d[0] for d in done) == sorted(j[0] for j in jobs), f"writers finished: {done}")
    shas.update((name, [sha]) for name, sha in done)
    note(f"{n} parallel writers: {n} x {size >> 20} MiB in {time.time() - t:.1f} s")
    for name, seed, size in jobs:
        files[name] = (seed, [(0, size)], size)
    remount()
    names = [j[0] for j in jobs]
    verify_all(names)
    for name in names:
        os.unlink(path(name))
        del files[name], shas[name]


# ---- (f) module reload -----------------------------------------------------------------


def reload_verify():
    fsx.umount(MNT)
    if fsx.unload():
        fsx.load()
    else:
        note(f"{fsx.FSTYP} is built in: umount/mount only, no rmmod")
    fsx.mount(DEV, MNT)
    verify_all()


# ---- (c) ENOSPC ------------------------------------------------------------------------


def enospc():
    fsx.mkfs(SMALL, "enospc")
    fsx.mount(SMALL, MNT_SMALL)
    start = fsx.statfs(MNT_SMALL)
    written = {}
    for i in range(2):
        p = os.path.join(MNT_SMALL, f"f{i}")
        fsx.write_file(p, 500 + i, 64 * MIB, fsync=True)
        written[p] = (500 + i, 64 * MIB)
    # The last file grows by 1 MiB writes until the filesystem is full.
    p = os.path.join(MNT_SMALL, "f2")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pos = 0
    err = None
    try:
        while pos < 4 * 1024 * MIB:
            buf = fsx.gen(502, pos, MIB)
            try:
                pos += os.write(fd, buf)
            except OSError as e:
                err = fsx.err_name(e.errno)
                break
        os.fsync(fd)
    finally:
        os.close(fd)
    written[p] = (502, pos)
    full = fsx.statfs(MNT_SMALL)
    note(f"enospc: {pos} bytes in the last file; statfs when full '{full}' (start '{start}')")
    expect(err == "ENOSPC", f"the write at {pos} failed with {err}, expected ENOSPC")
    expect(os.statvfs(MNT_SMALL).f_bavail == 0, f"f_bavail not 0 when full: '{full}'")
    expect(pos >= 32 * MIB, f"only {pos} bytes fitted in the last file")
    ok_steps = ["errno"]
    fsx.umount(MNT_SMALL)
    fsx.mount(SMALL, MNT_SMALL)
    for q, (seed, length) in written.items():
        fsx.check_data(q, seed, 0, length)
    ok_steps.append("verify")
    for q in written:
        os.unlink(q)
    os.sync()
    after = fsx.statfs(MNT_SMALL)
    expect(after == start, f"statfs '{after}' after deleting everything, expected '{start}'")
    q = os.path.join(MNT_SMALL, "again")
    fsx.write_file(q, 503, 100 * MIB, fsync=True)
    fsx.check_data(q, 503, 0, 100 * MIB)
    os.unlink(q)
    os.sync()
    after = fsx.statfs(MNT_SMALL)
    expect(after == start, f"statfs '{after}' after writing and deleting again, expected '{start}'")
    fsx.umount(MNT_SMALL)


# ---- main and reboot -------------------------------------------------------------------


def main_run(share):
    fsx.load()
    if not case("mkfs-mount", lambda: (fsx.mkfs(DEV, "write"), fsx.mount(DEV, MNT))):
        return
    start = fsx.statfs(MNT)
    note(f"statfs of the empty filesystem: '{start}'")
    case("block-reuse", block_reuse, start)
    case("short-copy", short_copy)
    case("truncate-in-folio", truncate_in_folio)
    case("write-2m", write_seq, "two-mib", 1, 2 * MIB)
    if case("write-1g", write_seq, "one-gib", 2, GIB):
        case("verify-drop-caches", drop_caches_verify)
        case("verify-remount", remount_verify)
        case("cold-random-reads", cold_random_reads)
        case("fragmentation", fragmentation)
    case("sparse-write", sparse_write)
    if "sparse" in files:
        case("sparse-data", verify, "sparse")
        case("sparse-holes", sparse_holes)
        case("sparse-seek", sparse_seek)
        case("sparse-blocks", sparse_blocks)
        case("sparse-remount", lambda: (remount(), verify("sparse"), sparse_holes()))
    case("parallel-4", parallel, 4, 64 * MIB, 10)
    case("parallel-8", parallel, 8, 64 * MIB, 20)
    case("reload-verify", reload_verify)
    case("enospc", enospc)
    # For the next boot: the files and the statfs they leave.
    with open(os.path.join(share, "manifest"), "w") as f:
        for name, (seed, extents, size) in files.items():
            known = shas.get(name) or [fsx.expected(seed, o, n) for o, n in extents]
            items = " ".join(f"{o}:{n}:{h}" for (o, n), h in zip(extents, known))
            f.write(f"{name} {seed} {size} {items}\n")
    with open(os.path.join(share, "statfs"), "w") as f:
        f.write(fsx.statfs(MNT) + "\n")
    case("umount", fsx.umount, MNT)


def reboot_run(share):
    fsx.load()
    with open(os.path.join(share, "manifest")) as f:
        for line in f:
            name, seed, size, *ext = line.split()
            ext = [e.split(":") for e in ext]
            files[name] = (int(seed), [(int(o), int(n)) for o, n, _ in ext], int(size))
            shas[name] = [h for _, _, h in ext]
    with open(os.path.join(share, "statfs")) as f:
        before = f.read().strip()
    if not case("reboot-mount", fsx.mount, DEV, MNT):
        return
    expect_names = sorted(files) + ["lost+found"] if fsx.FSTYP in ("aegisfs", "ext4") else sorted(files)

    def names():
        got = sorted(os.listdir(MNT))
        expect(got == sorted(expect_names), f"root lists {got}, expected {sorted(expect_names)}")

    case("reboot-names", names)
    for name in sorted(files):
        case(f"reboot-{name}", verify, name)

    def same_statfs():
        now = fsx.statfs(MNT)
        expect(now == before, f"statfs '{now}', before the reboot '{before}'")

    case("reboot-statfs", same_statfs)
    case("reboot-umount", fsx.umount, MNT)


def main():
    fsx.init("write", sys.argv)
    mode, share = sys.argv[2], sys.argv[3]
    t = time.time()
    if mode == "main":
        main_run(share)
    else:
        reboot_run(share)
    note(f"{mode} run: {time.time() - t:.0f} s in the guest")


if __name__ == "__main__":
    main()
