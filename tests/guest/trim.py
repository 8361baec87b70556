#!/usr/bin/env python3
"""Guest half of tests/suites/trim.sh: FITRIM (batched discard, `fstrim`).

  trim.py FSTYP [SECONDS]     SECONDS: how long the concurrent case runs (default 20)

/dev/vdb (512 MiB) gets a fresh FSTYP; /dev/vdc (256 MiB, an image file the host half
inspects afterwards) gets one for the `race` and `sparse` cases each. The disks accept discard
(qemu/vm: discard=unmap), so discarded blocks become holes in the image files and read
back as zeros. Every number compared below is in bytes.

  mkfs-mount        mkfs and mount /dev/vdb
  discard-visible   the guest sees discard on the disk (discard_max_bytes > 0)
  fstrim            `fstrim -v` of the fresh filesystem: trims more than half of the free
                    space and no more than all of it (AegisFS: exactly the free blocks)
  fitrim-ioctl      FITRIM through ioctl(2) after a remount: whole range (start and minlen
                    come back unchanged, len is what was trimmed); the group-aligned range
                    128..256 MiB (at most 128 MiB); a one-block range (AegisFS: at most one
                    block; ext4 trims the free extent the range starts to its end)
  fitrim-errors     EINVAL for len 0 and len < block size, a start at or past the end of
                    the filesystem and 2^64-1, minlen > the filesystem and > a group (ext4's
                    limit; a group exactly is allowed); EFAULT for a bad pointer; EPERM as
                    uid 1000 (without CAP_SYS_ADMIN)
  data-intact       files written and fsync'ed, every other one deleted, sync, FITRIM (at
                    least the deleted blocks trimmed): the others intact at once, after
                    drop_caches and after a remount
  zeroes            a 32 MiB file's blocks (FIEMAP) hold its data on the raw device; it is
                    deleted, sync, FITRIM: those device ranges read back as zeros (O_DIRECT)
  uncommitted       mounted with commit=60, a file made durable, then unlinked without a
                    commit, FITRIM, FS_IOC_SHUTDOWN without flushing the log: after the
                    journal replay the file is back with its data (blocks freed by a
                    transaction that never committed were not discarded)
  concurrent        FITRIM in a loop while three writers create, fsync and delete files for
                    SECONDS: every live file's sha256 at once, after drop_caches and
                    after a remount
  ro                FITRIM on a read-only mount works (as on ext4); on a read-only mount with
                    norecovery it fails with EROFS (the bitmaps may miss what the journal
                    holds; xfstests generic/537)
  discard-option    mounted `-o discard,commit=60` (shown in /proc/mounts): an 8 MiB file's
                    data on the raw device, deleted, sync: its extents read zeros (within
                    10 s: ext4 discards from a worker); after
                    `remount,nodiscard` (gone from /proc/mounts) the same with another file
                    leaves the deleted data on the device
  discard-uncommitted  with `-o discard,commit=60`: a durable file unlinked without a
                    commit keeps its data on the device (2 s later); after FS_IOC_SHUTDOWN
                    without a log flush and the replay the file is back, on AegisFS with
                    its data (on ext4 only noted: its unmount may still run the commit
                    callback of the aborted transaction, which discards)
  discard-concurrent the writers of `concurrent` (SECONDS / 2, no FITRIM) with `-o discard`
  discard-nojournal /dev/vdc without a journal (AegisFS -J 0, ext4 ^has_journal), `-o
                    discard`: an 8 MiB file deleted, its extents read zeros; fsck clean
  discard-race      /dev/vdc with `-o discard,commit=60`: files p (1 MiB), x (64 MiB),
                    f (1 MiB); the device set to discard in 512-byte requests; a child
                    deletes x and syncs (the commit discards x's blocks, slowly); once 64
                    discards completed, a 4 MiB file is written and fsync'ed: x's discard
                    must still be going on then, and once it ended every file is intact
                    after drop_caches (AegisFS: the new file is outside x's blocks; ext4
                    frees them first and trims what is still free later)
  race              /dev/vdc: files p (1 MiB), x (96 MiB), f (1 MiB) written in a new
                    directory, x deleted: its longest run of blocks (at least 8 MiB) is the
                    hole. With the device discarding in 512-byte requests, a child runs
                    FITRIM of exactly the hole; once the device has completed 64 discards,
                    a 4 MiB file is written and fsync'ed in the directory (on AegisFS the
                    hole holds its first free blocks): its blocks (FIEMAP) must lie outside
                    the hole, FITRIM must still be running after the fsync, and once it
                    ended every file is intact after drop_caches
  thin-journal      a 1 GiB dm-thin volume (its pool on a loop device in tmpfs): after mkfs
                    the pool backs at least the 32 MiB journal (mkfs writes it out, as
                    mke2fs does)
  enospc-wait       /dev/vdc: an 8 MiB file, then a file filling the filesystem to ENOSPC; the
                    8 MiB file deleted, so its blocks are nearly all the free space, and
                    FITRIM of them running with 512-byte discards: writing and fsyncing
                    1 MiB waits for the discard instead of failing with ENOSPC (AegisFS;
                    ext4's result is noted)
  sparse            /dev/vdc: a 160 MiB file written, fsync'ed, deleted, sync, `fstrim -v`
                    trims at least 160 MiB; the host then checks the image file's allocated
                    size (`sparse-host`)
  no-discard        /dev/vdc with the device's discard turned off (discard_max_bytes 0):
                    FITRIM fails with EOPNOTSUPP, `fstrim` says "not supported"
  umount, fsck      umount both, `fsck -n` (-f for ext*) of each
"""

import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import random
import re
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402
from check import fiemap  # noqa: E402

DEV, MNT = "/dev/vdb", "/mnt/trim"
SPARSE_DEV, SPARSE_MNT = "/dev/vdc", "/mnt/trim-sparse"
FITRIM = 0xC0185879  # _IOWR('X', 121, struct fstrim_range)
FS_IOC_SHUTDOWN = 0x8004587D
MIB = fsx.MIB
BS = fsx.BLOCK
GROUP = 32768 * BS  # a group of 4 KiB blocks, ext4's and AegisFS's
U64_MAX = (1 << 64) - 1
TRIM_SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
WRITERS = 3

libc = ctypes.CDLL(None, use_errno=True)
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]


def fitrim(path, start=0, length=U64_MAX, minlen=0):
    """FITRIM on PATH's filesystem; returns the range the kernel wrote back."""
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(struct.pack("=QQQ", start, length, minlen))
        fcntl.ioctl(fd, FITRIM, buf)
        return struct.unpack("=QQQ", buf)
    finally:
        os.close(fd)


def trimmed(path, **kwargs):
    return fitrim(path, **kwargs)[1]


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


def fstrim_v(mnt):
    out = fsx.run("fstrim", "-v", mnt)
    m = re.search(r"\((\d+) bytes\) trimmed", out)
    fsx.expect(m, f"fstrim -v printed {out.strip()!r}")
    return int(m.group(1))


def remount(opts=None):
    fsx.umount(MNT)
    fsx.mount(DEV, MNT, opts)


def queue(dev, name):
    with open(f"/sys/block/{os.path.basename(dev)}/queue/{name}") as f:
        return int(f.read())


def set_queue(dev, name, value):
    with open(f"/sys/block/{os.path.basename(dev)}/queue/{name}", "w") as f:
        f.write(f"{value}\n")


def device_bytes(dev):
    with open(f"/sys/block/{os.path.basename(dev)}/size") as f:
        return int(f.read()) * 512


def raw_read(dev, off, length):
    """LENGTH bytes of DEV at OFF, read with O_DIRECT (not through the page cache)."""
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, length)
        n = os.preadv(fd, [buf], off)
        fsx.expect(n == length, f"{dev}: read {n} of {length} bytes at {off}")
        return bytes(buf)
    finally:
        os.close(fd)


# ---- cases ------------------------------------------------------------------------------


def mkfs_mount():
    fsx.load()
    fsx.mkfs(DEV)
    fsx.mount(DEV, MNT)


def discard_visible():
    for dev in (DEV, SPARSE_DEV):
        fsx.expect(queue(dev, "discard_max_bytes") > 0, f"{dev}: discard_max_bytes is 0")
    fsx.note(f"discard_granularity {queue(DEV, 'discard_granularity')}, "
             f"discard_max_bytes {queue(DEV, 'discard_max_bytes')}")


def fstrim():
    free = free_bytes(MNT)
    got = fstrim_v(MNT)
    fsx.note(f"fstrim -v of the fresh filesystem: {got} of {free} free bytes")
    fsx.expect(free // 2 < got <= free, f"fstrim trimmed {got} bytes, {free} are free")
    if fsx.FSTYP == "aegisfs":
        fsx.expect(got == free, f"fstrim trimmed {got} bytes, not every free block ({free})")


def fitrim_ioctl():
    # ext4 skips groups it trimmed since the mount; a remount forgets that.
    remount()
    free = free_bytes(MNT)
    start, length, minlen = fitrim(MNT)
    fsx.expect((start, minlen) == (0, 0), f"start/minlen came back as {start}/{minlen}")
    fsx.expect(free // 2 < length <= free, f"FITRIM trimmed {length} bytes, {free} are free")
    remount()
    start, length, minlen = fitrim(MNT, start=GROUP, length=GROUP)
    fsx.expect((start, minlen) == (GROUP, 0), f"start/minlen came back as {start}/{minlen}")
    fsx.expect(0 < length <= GROUP, f"FITRIM of 128..256 MiB trimmed {length} bytes")
    # ext4 discards a free extent that starts in the range up to its end, so it may report
    # more than the range; AegisFS stays inside it.
    remount()
    got = trimmed(MNT, start=300 * MIB, length=BS)
    fsx.note(f"FITRIM of the free block at 300 MiB: {got} bytes")
    fsx.expect(got <= BS or fsx.FSTYP != "aegisfs", f"FITRIM of one block trimmed {got} bytes")
    got = trimmed(MNT, start=300 * MIB + 1, length=BS + 7)
    fsx.expect(got <= BS or fsx.FSTYP != "aegisfs", f"FITRIM of an unaligned block trimmed {got} bytes")


def fitrim_errors():
    size = device_bytes(DEV)
    for what, kwargs in [
        ("len 0", dict(length=0)),
        ("len 4095", dict(length=BS - 1)),
        ("start at the device end", dict(start=size)),
        ("start past the end", dict(start=2 * size, length=MIB)),
        ("start 2^64-1", dict(start=U64_MAX)),
        ("start 2^64-1 with len", dict(start=U64_MAX, length=MIB)),
        ("minlen the filesystem size", dict(minlen=size)),
        ("minlen a group and a block", dict(minlen=GROUP + BS)),
        ("minlen 2^64-1", dict(minlen=U64_MAX)),
    ]:
        fsx.expect_errno("EINVAL", fitrim, MNT, what=f"FITRIM {what}", **kwargs)
    got = trimmed(MNT, minlen=GROUP)
    fsx.expect(got <= free_bytes(MNT), f"FITRIM with minlen a group trimmed {got} bytes")
    fd = os.open(MNT, os.O_RDONLY)
    try:
        ret = libc.ioctl(fd, FITRIM, ctypes.c_void_p(16))
        e = ctypes.get_errno()
    finally:
        os.close(fd)
    fsx.expect(ret == -1 and e == errno.EFAULT, f"FITRIM of a bad pointer: {ret}, {fsx.err_name(e)}")

    def as_user():
        return trimmed(MNT)

    got = fsx.as_user(as_user)
    fsx.expect(got == "EPERM", f"FITRIM as uid 1000: {got}, expected EPERM")


def no_discard():
    # Last, on /dev/vdc: the kernel cannot turn discard back on once it is off (with
    # discard_max_bytes 0 the granularity reads 0 and every new value is refused).
    fsx.mount(SPARSE_DEV, SPARSE_MNT)
    try:
        set_queue(SPARSE_DEV, "discard_max_bytes", 0)
        fsx.expect(queue(SPARSE_DEV, "discard_max_bytes") == 0, "discard_max_bytes is not 0")
        fsx.expect_errno(fsx.err_name(errno.EOPNOTSUPP), fitrim, SPARSE_MNT,
                         what="FITRIM without discard")
        out = fsx.run("fstrim", SPARSE_MNT, check=False)
        fsx.expect("not supported" in out, f"fstrim without discard printed {out.strip()!r}")
    finally:
        fsx.umount(SPARSE_MNT)


def data_intact():
    d = os.path.join(MNT, "intact")
    os.mkdir(d)
    rnd = random.Random(7)
    files = {}
    for i in range(48):
        size = rnd.choice([BS, 3 * BS + 17, 64 * 1024, 300 * 1024, MIB + 5, 2 * MIB])
        p = os.path.join(d, f"f{i:02d}")
        files[p] = (size, fsx.write_file(p, 100 + i, size, fsync=True))
    deleted = 0
    for i, p in enumerate(sorted(files)):
        if i % 2:
            deleted += files[p][0] // BS * BS
            os.unlink(p)
            del files[p]
    os.sync()
    got = trimmed(MNT)
    fsx.expect(got >= deleted, f"FITRIM trimmed {got} bytes after {deleted} were deleted")

    def verify(when):
        for p, (size, sha) in sorted(files.items()):
            got = fsx.sha_range(p, 0, size)
            fsx.expect(got == sha, f"{p} {when}: sha256 {got}, expected {sha}")

    verify("after FITRIM")
    fsx.drop_caches()
    verify("after drop_caches")
    remount()
    verify("after a remount")


def extents_of(path):
    """(file offset, device offset, length) of PATH's data extents."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return [(lo, ph, ln) for lo, ph, ln, _ in fiemap(fd)]
    finally:
        os.close(fd)


def expect_on_device(dev, extents, seed):
    """The device holds the data of stream SEED where EXTENTS say (1 MiB of each)."""
    for lo, ph, ln in extents:
        step = min(ln, MIB)
        got = hashlib.sha256(raw_read(dev, ph, step)).hexdigest()
        fsx.expect(got == fsx.expected(seed, lo, step), f"{dev} at {ph} does not hold file offset {lo}")


def expect_zeros(dev, extents, what):
    for lo, ph, ln in extents:
        pos = 0
        while pos < ln:
            step = min(ln - pos, 4 * MIB)
            data = raw_read(dev, ph + pos, step)
            if data.count(0) != step:
                first = next(i for i, b in enumerate(data) if b)
                raise fsx.Fail(f"{dev} byte {ph + pos + first} (file offset {lo + pos + first}) "
                               f"is not zero {what}")
            pos += step


def wait_zeros(dev, extents, what):
    """expect_zeros, allowing 10 s: ext4 discards from a worker after the commit."""
    deadline = time.time() + 10
    while True:
        try:
            expect_zeros(dev, extents, what)
            return
        except fsx.Fail:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def zeroes():
    p = os.path.join(MNT, "zeroes")
    size = 32 * MIB
    fsx.write_file(p, 9, size, fsync=True)
    extents = extents_of(p)
    fsx.expect(sum(ln for _, _, ln in extents) == size, f"FIEMAP extents {extents}")
    # The mapping is right: the device holds the file's data there.
    expect_on_device(DEV, extents, 9)
    os.unlink(p)
    os.sync()
    got = trimmed(MNT)
    fsx.expect(got >= size, f"FITRIM trimmed {got} bytes after a {size}-byte file was deleted")
    expect_zeros(DEV, extents, "after FITRIM")


def crash_and_remount():
    """FS_IOC_SHUTDOWN without a log flush (what survives is what a power cut would leave),
    then umount and mount again, which replays the journal."""
    fd = os.open(MNT, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_SHUTDOWN, struct.pack("=I", 2))  # NOLOGFLUSH
    finally:
        os.close(fd)
    fsx.umount(MNT)
    fsx.mount(DEV, MNT)


def uncommitted(opts="commit=60", trim=True):
    remount(opts)
    p = os.path.join(MNT, "uncommitted")
    size = 8 * MIB
    sha = fsx.write_file(p, 11, size, fsync=True)
    os.sync()
    os.unlink(p)
    # The unlink is in the running transaction (commit=60): its blocks are free in memory
    # but a crash now brings the file back, so they must not be discarded.
    if trim:
        fitrim(MNT)
    crash_and_remount()
    fsx.expect(os.path.exists(p), "the unlinked file is gone although the unlink never committed")
    fsx.check_data(p, 11, 0, size, sha=sha)
    os.unlink(p)
    os.sync()


def writer(d, n, seconds, records):
    """Child: creates, fsyncs and deletes files in D for SECONDS; appends `F path size
    sha` after each fsync and `D path` before each unlink to RECORDS."""
    rnd = random.Random(1000 + n)
    live = []
    end = time.time() + seconds
    i = 0
    with open(records, "a") as rec:
        while time.time() < end:
            p = os.path.join(d, f"f{i}")
            size = rnd.choice([BS, 5 * BS, 64 * 1024, 256 * 1024, MIB, 3 * MIB + 100, 6 * MIB])
            sha = fsx.write_file(p, 2000 + n * 100000 + i, size, fsync=True)
            rec.write(f"F {p} {size} {sha}\n")
            rec.flush()
            live.append(p)
            i += 1
            if len(live) > 24 or rnd.random() < 0.3:
                victim = live.pop(rnd.randrange(len(live)))
                rec.write(f"D {victim}\n")
                rec.flush()
                os.unlink(victim)


def trimmer(seconds, counter):
    """Child: FITRIM of the whole filesystem again and again for SECONDS; writes the number
    of calls and the bytes trimmed to COUNTER."""
    end = time.time() + seconds
    n = total = 0
    while time.time() < end:
        total += trimmed(MNT)
        n += 1
    with open(counter, "w") as f:
        f.write(f"{n} {total}\n")


def concurrent(name="concurrent", seconds=TRIM_SECONDS, trim=True):
    records = [f"/tmp/trim-writer-{n}" for n in range(WRITERS)]
    counter = "/tmp/trim-count"
    for f in records + [counter]:
        if os.path.exists(f):
            os.unlink(f)
    dirs = [os.path.join(MNT, f"{name}-w{n}") for n in range(WRITERS)]
    for d in dirs:
        os.mkdir(d)
    pids = [fsx.child(writer, dirs[n], n, seconds, records[n]) for n in range(WRITERS)]
    if trim:
        pids.append(fsx.child(trimmer, seconds, counter))
    else:
        with open(counter, "w") as f:
            f.write("0 0\n")
    failed = []
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            failed.append(pid)
    fsx.expect(not failed, f"{len(failed)} of the writers and the trimmer failed (see the notes)")
    files = {}
    for r in records:
        with open(r) as f:
            for line in f:
                parts = line.split()
                if parts[0] == "F":
                    files[parts[1]] = (int(parts[2]), parts[3])
                else:
                    files.pop(parts[1], None)
    with open(counter) as f:
        calls, total = map(int, f.read().split())
    fsx.note(f"{name}: {calls} FITRIM calls ({total} bytes) while {len(files)} files live")
    fsx.expect((calls >= 3 or not trim) and len(files) >= 4,
               f"only {calls} FITRIM calls, {len(files)} files")

    def verify(when):
        for p, (size, sha) in sorted(files.items()):
            got = fsx.sha_range(p, 0, size)
            fsx.expect(got == sha, f"{p} {when}: sha256 {got}, expected {sha}")

    verify("at once")
    fsx.drop_caches()
    verify("after drop_caches")
    remount()
    verify("after a remount")


def ro():
    fsx.umount(MNT)
    fsx.mount(DEV, MNT, "ro")
    try:
        got = trimmed(MNT)
        fsx.expect(got <= free_bytes(MNT), f"FITRIM on a read-only mount trimmed {got} bytes")
    finally:
        fsx.umount(MNT)
    fsx.mount(DEV, MNT, "ro,norecovery")
    try:
        fsx.expect_errno("EROFS", fitrim, MNT, what="FITRIM on a norecovery mount")
    finally:
        fsx.umount(MNT)
    fsx.mount(DEV, MNT)


def mount_options(mnt):
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == mnt:
                return fields[3].split(",")
    raise fsx.Fail(f"{mnt} is not mounted")


def discard_option():
    # commit=60: the discards come with the commits `sync` makes, not with the timer's.
    remount("discard,commit=60")
    fsx.expect("discard" in mount_options(MNT), f"options {mount_options(MNT)}")
    p = os.path.join(MNT, "online")
    fsx.write_file(p, 41, 8 * MIB, fsync=True)
    extents = extents_of(p)
    expect_on_device(DEV, extents, 41)
    os.unlink(p)
    os.sync()
    wait_zeros(DEV, extents, "after the delete was committed with -o discard")
    fsx.run("mount", "-o", "remount,nodiscard", MNT)
    fsx.expect("discard" not in mount_options(MNT), f"options {mount_options(MNT)}")
    fsx.write_file(p, 42, 8 * MIB, fsync=True)
    extents = extents_of(p)
    os.unlink(p)
    os.sync()
    # Without the option nothing is discarded: the deleted data is still on the device.
    expect_on_device(DEV, extents, 42)
    remount()


def discard_uncommitted():
    remount("discard,commit=60")
    p = os.path.join(MNT, "uncommitted")
    size = 8 * MIB
    sha = fsx.write_file(p, 12, size, fsync=True)
    os.sync()
    extents = extents_of(p)
    os.unlink(p)
    # The unlink is in the running transaction: nothing may be discarded yet.
    time.sleep(2)
    expect_on_device(DEV, extents, 12)
    crash_and_remount()
    fsx.expect(os.path.exists(p), "the unlinked file is gone although the unlink never committed")
    if fsx.FSTYP == "aegisfs":
        fsx.check_data(p, 12, 0, size, sha=sha)
    else:
        # ext4's unmount after the shutdown may still commit the aborted transaction and
        # run its commit callback, which discards what it freed (a real crash would not).
        got = fsx.sha_range(p, 0, size)
        fsx.note(f"discard-uncommitted: after the replay the file's data is "
                 f"{'intact' if got == sha else 'not intact'} on {fsx.FSTYP}")
    os.unlink(p)
    os.sync()


def discard_concurrent():
    remount("discard")
    concurrent("discard-concurrent", max(TRIM_SECONDS // 2, 5), trim=False)
    remount()


def discard_nojournal():
    if fsx.FSTYP == "aegisfs":
        fsx.run("mkfs", "-t", "aegisfs", "-q", "-f", "-J", "0", SPARSE_DEV)
    else:
        fsx.run("mkfs", "-t", fsx.FSTYP, "-q", "-F", "-O", "^has_journal", SPARSE_DEV)
    fsx.mount(SPARSE_DEV, SPARSE_MNT, "discard")
    try:
        p = os.path.join(SPARSE_MNT, "online")
        fsx.write_file(p, 43, 8 * MIB, fsync=True)
        extents = extents_of(p)
        expect_on_device(SPARSE_DEV, extents, 43)
        os.unlink(p)
        os.sync()
        wait_zeros(SPARSE_DEV, extents, "after the delete with -o discard and no journal")
    finally:
        fsx.umount(SPARSE_MNT)
    cmd = ["fsck", "-t", fsx.FSTYP, "-n"] + (["-f"] if fsx.FSTYP.startswith("ext") else [])
    fsx.run(*cmd, SPARSE_DEV)


def discards(dev):
    """Discard requests DEV completed so far."""
    return fsx.block_stat(dev, 11)


def physical(path):
    """The (device offset, length) of PATH's data extents."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return [(ph, ln) for _, ph, ln, _ in fiemap(fd)]
    finally:
        os.close(fd)


def wait_discards_settle(dev, quiet=1.0, limit=120):
    """Waits until DEV has completed no discard for QUIET seconds."""
    deadline = time.time() + limit
    last = discards(dev)
    while time.time() < deadline:
        time.sleep(quiet)
        now = discards(dev)
        if now == last:
            return
        last = now
    raise fsx.Fail(f"{dev} still discarding after {limit} s")


def unlink_and_sync(path):
    os.unlink(path)
    os.sync()


def discard_race():
    fsx.mkfs(SPARSE_DEV)
    fsx.mount(SPARSE_DEV, SPARSE_MNT, "discard,commit=60")
    try:
        d = os.path.join(SPARSE_MNT, "d")
        os.mkdir(d)
        files = {}
        # x big enough that discarding it in 512-byte requests surely outlasts writing and
        # syncing the new file (16 MiB did not always: the host discards quickly).
        for name, seed, size in [("p", 51, MIB), ("x", 52, 64 * MIB), ("f", 53, MIB)]:
            p = os.path.join(d, name)
            files[p] = (seed, size, fsx.write_file(p, seed, size, fsync=True))
        x = os.path.join(d, "x")
        hole = [(ph, ph + ln) for _, ph, ln in extents_of(x)]
        del files[x]
        max_discard = queue(SPARSE_DEV, "discard_max_bytes")
        set_queue(SPARSE_DEV, "discard_max_bytes", 512)
        pid = status = None
        try:
            before = discards(SPARSE_DEV)
            pid = fsx.child(unlink_and_sync, x)
            deadline = time.time() + 60
            while discards(SPARSE_DEV) < before + 64:
                fsx.expect(time.time() < deadline, "no discard after the delete was committed")
                time.sleep(0.01)
            # x's blocks are being discarded: a new file must not get them now.
            w = os.path.join(d, "w")
            files[w] = (54, 4 * MIB, fsx.write_file(w, 54, 4 * MIB, fsync=True))
            placed = [(ph, ph + ln) for _, ph, ln in extents_of(w)]
            mark = discards(SPARSE_DEV)
            time.sleep(0.5)
            still_discarding = discards(SPARSE_DEV) > mark
            status = os.waitpid(pid, 0)[1]
            pid = None
            wait_discards_settle(SPARSE_DEV)
        finally:
            if pid is not None:
                status = os.waitpid(pid, 0)[1]
            set_queue(SPARSE_DEV, "discard_max_bytes", max_discard)
        fsx.expect(status == 0, "the child that deleted x failed (see the notes)")
        fsx.expect(still_discarding, "the discard of x ended before the new file was written: "
                   "the case proved nothing")
        if fsx.FSTYP == "aegisfs":
            for lo, hi in placed:
                for h_lo, h_hi in hole:
                    fsx.expect(hi <= h_lo or h_hi <= lo, f"the new file got {lo}..{hi}, "
                               f"blocks of x being discarded ({h_lo}..{h_hi})")
        fsx.drop_caches()
        for p, (seed, size, sha) in sorted(files.items()):
            fsx.check_data(p, seed, 0, size, sha=sha)
    finally:
        fsx.umount(SPARSE_MNT)


def race():
    fsx.mkfs(SPARSE_DEV)
    fsx.mount(SPARSE_DEV, SPARSE_MNT)
    try:
        d = os.path.join(SPARSE_MNT, "d")
        os.mkdir(d)
        files = {}
        # x big enough that FITRIM of its longest run in 512-byte requests surely outlasts
        # writing and syncing the new file (48 MiB did not always, on ext4).
        for name, seed, size in [("p", 21, MIB), ("x", 22, 96 * MIB), ("f", 23, MIB)]:
            p = os.path.join(d, name)
            files[p] = (seed, size, fsx.write_file(p, seed, size, fsync=True))
        x = os.path.join(d, "x")
        runs = []
        for ph, ln in sorted(physical(x)):
            if runs and runs[-1][1] == ph:
                runs[-1][1] = ph + ln
            else:
                runs.append([ph, ph + ln])
        del files[x]
        os.unlink(x)
        os.sync()
        # The hole: x's longest run of blocks, free now. FITRIM of exactly that range holds
        # it whole while discarding it (ext4 may discard further, to the end of the free
        # extent, and hold that too).
        lo, hi = max(runs, key=lambda r: r[1] - r[0])
        fsx.expect(hi - lo >= 8 * MIB, f"x is in pieces: {runs}")
        # Discards of 512 bytes: FITRIM of the hole takes seconds.
        max_discard = queue(SPARSE_DEV, "discard_max_bytes")
        set_queue(SPARSE_DEV, "discard_max_bytes", 512)
        pid = status = None
        try:
            before = discards(SPARSE_DEV)
            pid = fsx.child(fitrim, SPARSE_MNT, lo, hi - lo)
            deadline = time.time() + 60
            while discards(SPARSE_DEV) < before + 64:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    pid = None
                fsx.expect(not done and time.time() < deadline,
                           "FITRIM of the hole ended (or never started) before 64 discards")
                time.sleep(0.01)
            # FITRIM is discarding the hole: the file must be put elsewhere.
            w = os.path.join(d, "w")
            files[w] = (24, 4 * MIB, fsx.write_file(w, 24, 4 * MIB, fsync=True))
            placed = physical(w)
            done, status = os.waitpid(pid, os.WNOHANG)
            still_running = not done
            if done:
                pid = None
        finally:
            if pid is not None:
                status = os.waitpid(pid, 0)[1]
            set_queue(SPARSE_DEV, "discard_max_bytes", max_discard)
        fsx.expect(status == 0, "the FITRIM child failed (see the notes)")
        fsx.expect(still_running, "FITRIM of the hole ended before the file was written: "
                   "the case proved nothing")
        for ph, ln in placed:
            fsx.expect(ph + ln <= lo or hi <= ph,
                       f"the new file got blocks at {ph}+{ln}, inside the hole being "
                       f"discarded ({lo}..{hi})")
        fsx.drop_caches()
        for p, (seed, size, sha) in sorted(files.items()):
            fsx.check_data(p, seed, 0, size, sha=sha)
    finally:
        fsx.umount(SPARSE_MNT)


def fill(path):
    """Writes PATH until the filesystem is full (ENOSPC); fsyncs it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (MIB, BS):
            buf = bytes(range(256)) * (chunk // 256)
            while True:
                try:
                    os.write(fd, buf)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
        os.fsync(fd)
    finally:
        os.close(fd)


def enospc_wait():
    fsx.mkfs(SPARSE_DEV)
    fsx.mount(SPARSE_DEV, SPARSE_MNT)
    try:
        a = os.path.join(SPARSE_MNT, "a")
        fsx.write_file(a, 31, 8 * MIB, fsync=True)
        fill(os.path.join(SPARSE_MNT, "fill"))
        runs = physical(a)
        lo = min(ph for ph, _ in runs)
        hi = max(ph + ln for ph, ln in runs)
        os.unlink(a)
        os.sync()
        free = free_bytes(SPARSE_MNT)
        fsx.note(f"enospc-wait: {free} bytes free, {hi - lo} of them in the hole")
        if fsx.FSTYP == "aegisfs":
            fsx.expect(free - (hi - lo) < MIB, "1 MiB fits outside the hole: the case would "
                       "prove nothing")
        max_discard = queue(SPARSE_DEV, "discard_max_bytes")
        set_queue(SPARSE_DEV, "discard_max_bytes", 512)
        pid = status = None
        try:
            before = discards(SPARSE_DEV)
            pid = fsx.child(fitrim, SPARSE_MNT, lo, hi - lo)
            deadline = time.time() + 60
            while discards(SPARSE_DEV) < before + 64:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    pid = None
                fsx.expect(not done and time.time() < deadline,
                           "FITRIM of the hole ended (or never started) before 64 discards")
                time.sleep(0.01)
            w = os.path.join(SPARSE_MNT, "w")
            start = time.time()
            try:
                sha = fsx.write_file(w, 32, MIB, fsync=True)
                result = "success"
            except OSError as e:
                result = fsx.err_name(e.errno)
            took = time.time() - start
        finally:
            if pid is not None:
                status = os.waitpid(pid, 0)[1]
            set_queue(SPARSE_DEV, "discard_max_bytes", max_discard)
        fsx.expect(status == 0, "the FITRIM child failed (see the notes)")
        fsx.note(f"enospc-wait: writing 1 MiB while FITRIM held the free space: {result} "
                 f"after {took:.1f} s")
        # ext4 keeps the extent it discards away from allocations too, and may fail.
        if fsx.FSTYP == "aegisfs":
            fsx.expect(result == "success", f"the write failed with {result}")
        if result == "success":
            fsx.drop_caches()
            fsx.check_data(w, 32, 0, MIB, sha=sha)
    finally:
        fsx.umount(SPARSE_MNT)


def sparse():
    fsx.mkfs(SPARSE_DEV)
    fsx.mount(SPARSE_DEV, SPARSE_MNT)
    p = os.path.join(SPARSE_MNT, "big")
    size = 160 * MIB
    fsx.write_file(p, 13, size, fsync=True)
    os.unlink(p)
    os.sync()
    got = fstrim_v(SPARSE_MNT)
    fsx.note(f"sparse: fstrim -v after deleting {size} bytes: {got} bytes")
    fsx.expect(got >= size, f"fstrim trimmed {got} bytes after {size} were deleted")
    fsx.umount(SPARSE_MNT)


def thin_journal():
    """A thin volume (dm-thin over a loop device in tmpfs): mkfs must leave the whole
    journal backed by the pool, so that a full pool can never fail a journal write
    (xfstests generic/347)."""
    image = "/tmp/thin-pool.img"
    meta, data = 8192, 65536 * 2  # sectors: 4 MiB of metadata, 64 MiB of data
    with open(image, "wb") as f:
        f.truncate((meta + data) * 512)
    loop = fsx.run("losetup", "-f", "--show", image).strip()
    try:
        fsx.run("dmsetup", "create", "trim-tmeta", "--table", f"0 {meta} linear {loop} 0")
        fsx.run("dmsetup", "create", "trim-tdata", "--table", f"0 {data} linear {loop} {meta}")
        # 64 KiB pool blocks, new blocks not zeroed by the pool (so only what mkfs writes
        # is counted).
        fsx.run("dmsetup", "create", "trim-pool", "--table",
                f"0 {data} thin-pool /dev/mapper/trim-tmeta /dev/mapper/trim-tdata "
                "128 0 1 skip_block_zeroing")
        fsx.run("dmsetup", "message", "/dev/mapper/trim-pool", "0", "create_thin 0")
        fsx.run("dmsetup", "create", "trim-thin", "--table", "0 2097152 thin /dev/mapper/trim-pool 0")
        fsx.mkfs("/dev/mapper/trim-thin")
        status = fsx.run("dmsetup", "status", "trim-pool").split()
        used = int(status[5].split("/")[0]) * 64 * 1024
        fsx.note(f"thin-journal: mkfs of a 1 GiB thin volume: {used} bytes of the pool in use")
        fsx.expect(used >= 32 * MIB, f"the pool backs {used} bytes after mkfs, less than the 32 MiB journal")
    finally:
        for name in ("trim-thin", "trim-pool", "trim-tdata", "trim-tmeta"):
            fsx.run("dmsetup", "remove", name, check=False)
        fsx.run("losetup", "-d", loop, check=False)
        os.unlink(image)


def umount_all():
    for mnt in (MNT, SPARSE_MNT):
        if fsx.mounted(mnt):
            fsx.umount(mnt)


def fsck():
    for dev in (DEV, SPARSE_DEV):
        cmd = ["fsck", "-t", fsx.FSTYP, "-n"] + (["-f"] if fsx.FSTYP.startswith("ext") else [])
        fsx.run(*cmd, dev)


def main():
    fsx.init("trim", sys.argv)
    started = time.time()
    fsx.note(f"FSTYP={fsx.FSTYP}")
    if not fsx.case("mkfs-mount", mkfs_mount):
        return
    for name, fn in [
        ("discard-visible", discard_visible),
        ("fstrim", fstrim),
        ("fitrim-ioctl", fitrim_ioctl),
        ("fitrim-errors", fitrim_errors),
        ("data-intact", data_intact),
        ("zeroes", zeroes),
        ("uncommitted", uncommitted),
        ("concurrent", concurrent),
        ("ro", ro),
        ("discard-option", discard_option),
        ("discard-uncommitted", discard_uncommitted),
        ("discard-concurrent", discard_concurrent),
        ("discard-nojournal", discard_nojournal),
        ("discard-race", discard_race),
        ("race", race),
        ("enospc-wait", enospc_wait),
        ("sparse", sparse),
        ("thin-journal", thin_journal),
        ("no-discard", no_discard),
    ]:
        if not fsx.mounted(MNT):
            try:
                fsx.mount(DEV, MNT)
            except fsx.Fail as e:
                fsx.note(f"cannot mount again: {e}")
                return
        fsx.case(name, fn)
    fsx.case("umount", umount_all)
    fsx.case("fsck", fsck)
    fsx.note(f"run: {time.time() - started:.0f} s in the guest")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
