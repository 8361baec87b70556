#!/usr/bin/env python3
"""Guest half of tests/suites/shutdown.sh: FS_IOC_SHUTDOWN with each of its three flags.

  shutdown.py FSTYP SEED

For each flag (default = flush everything, logflush = commit the journal, nologflush = stop
at once), on a fresh mkfs of /dev/vdb:
  <flag>-mkfs      mkfs, mount, the fixed directories and two files made durable (`pre`,
                   kept open and cached; `cold`, opened after drop_caches, data uncached)
  <flag>-shutdown  a writer child runs (below); once it has some records, after a seeded
                   random delay the parent calls FS_IOC_SHUTDOWN on the mount point: it
                   returns 0 and the child's next operation fails with EIO
  <flag>-eio       write, pwrite, fsync, fdatasync on a descriptor opened before, create,
                   mkdir, fsync of the root directory: EIO
  <flag>-eio-other open of an existing file for writing, ftruncate, unlink, rename,
                   symlink, chmod: EIO (what ext4 does)
  <flag>-read      reads of cached (`pre`) and uncached (`cold`) data through descriptors
                   opened before, and opening them read-only: EIO (what ext4 does)
  <flag>-umount    umount succeeds
  <flag>-mount     mount again (journal replay) succeeds
  <flag>-fsynced   every file the child recorded after its fsync and its directory's fsync
                   returned, and `pre`, `cold`: exact size and sha256
  <flag>-closed    (default, logflush) files written and closed before the ioctl, never
                   fsync'ed: default - exact (the ioctl syncs the filesystem first);
                   logflush - the name exists (its create was in the committed journal) and
                   holds a prefix of what was written, possibly empty (ext4: delayed
                   allocation keeps unwritten data and its size out of the commit; in
                   ordered mode a size only commits with its data)
  <flag>-fsck      umount, `fsck -n` (-f for ext*) exits 0
Then on a fresh mkfs: `eperm` (the fsgqa user gets EPERM for every flag, the filesystem
stays writable), `bad-flag` (flag 3: EINVAL, still writable), `eperm-fsck`; and on another,
`ro-device`: after a nologflush shutdown the journal needs recovery; with the block device
read-only (blockdev --setro) a read-only mount fails with EROFS and `-o norecovery` mounts;
writable again, mount replays, the fsync'ed file is exact and fsck -n is clean. Then
`orphans-ro`: 50 files with xattrs, open and unlinked (committed) at a logflush shutdown,
are deleted by a read-only mount (free blocks and inodes as before they were made; fsck
clean); `orphans-ro-device`: the same at a default shutdown on a read-only block device is left
alone by a read-only mount (nothing written to the device), and the next read-write mount
deletes them. `fsync-error-heal` (after the dm cases): a dm device that fails every
write for half a second: fsync of data written meanwhile gives EIO; healed, a reopened
file's fsync succeeds, new data is durable and fsck clean. Last,
`device-removed`: a scsi_debug disk deleted under the mounted filesystem with dirty data
shuts it down (EIO for reads through an open descriptor, opens, creates); umount works.
And `data-error`: on a dm device where the blocks of one written but unsynced file fail
writes, the commit that fsync of another file makes still succeeds (data_err=ignore),
fsync of the first gives EIO, and after umount fsck is clean and the durable files intact;
`data-error-abort`: the same mounted `data_err=abort` (shown in /proc/mounts): that commit
fails with EIO; after a remount (journal replay) the durable file is intact, fsck clean.

The writer child (records in a tmpfs file, one line each, written after the fact):
  F PATH SIZE SHA256   created, written, fsync'ed, its directory fsync'ed
  C PATH SIZE SHA256 OFF   created, written, closed; no fsync
(file data: fsx stream SEED*10+FLAG from position OFF, also in F records)
  E OP ERRNO           the first operation that failed (then the child exits)
plus unrecorded churn in c/ (small files created, renamed, truncated, unlinked, mkdir/rmdir).
"""

import contextlib
import errno
import fcntl
import hashlib
import os
import pwd
import random
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402

DEV, MNT = "/dev/vdb", "/mnt/shutdown"
FS_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
FLAGS = [("default", 0), ("logflush", 1), ("nologflush", 2)]
KIB = 1024


def shutdown(path, flag):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, FS_IOC_SHUTDOWN, struct.pack("I", flag))
    finally:
        os.close(fd)


def result(fn, *args):
    """'ok' or the errno name FN raised."""
    try:
        fn(*args)
    except OSError as e:
        return fsx.err_name(e.errno)
    return "ok"


def p(rel):
    return os.path.join(MNT, rel)


def fsck_cmd(dev=DEV):
    return ["fsck", "-t", fsx.FSTYP, "-n"] + (["-f"] if fsx.FSTYP.startswith("ext") else []) + [dev]


def fsck(dev=DEV):
    r = fsx.subprocess.run(fsck_cmd(dev), stdout=fsx.subprocess.PIPE, stderr=fsx.subprocess.STDOUT, text=True)
    fsx.expect(r.returncode == 0, f"{' '.join(fsck_cmd(dev))} exited {r.returncode}: {r.stdout.strip()[-400:]}")


def sha_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# ---- the writer child ------------------------------------------------------------------


def writer(rng, stream, recfile):
    """Runs in the child until an operation fails (recorded as E) or 120 s pass. File data
    comes from fsx stream STREAM."""
    rec = os.open(recfile, os.O_WRONLY | os.O_APPEND)

    def record(line):
        os.write(rec, (line + "\n").encode())

    n = 0
    churn_files, churn_dirs = [], ["c"]
    op = "start"
    t = time.time()
    try:
        while time.time() - t < 120:
            n += 1
            r = rng.random()
            if r < 0.7:
                synced = r < 0.35
                d = rng.choice(["f0", "f1"] if synced else ["u0", "u1"])
                rel = f"{d}/{'s' if synced else 'c'}{n}"
                size = rng.choice([0, rng.randrange(1, 4097), rng.randrange(1, 256 * KIB)])
                # Each file its own range of one stream, so that any prefix can be checked.
                data = fsx.gen(stream, n * 256 * KIB, size)
                op = f"create {rel}"
                fd = os.open(p(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    op = f"write {rel}"
                    done = 0
                    while done < size:
                        done += os.write(fd, data[done:done + 65536])
                    if synced:
                        op = f"fsync {rel}"
                        os.fsync(fd)
                finally:
                    os.close(fd)
                if synced:
                    op = f"fsync {d}"
                    fsx.fsync_path(p(d))
                record(f"{'F' if synced else 'C'} {rel} {size} {hashlib.sha256(data).hexdigest()} {n * 256 * KIB}")
            else:
                k = rng.randrange(6)
                if k <= 1 or not churn_files:
                    rel = f"{rng.choice(churn_dirs)}/t{n}"
                    op = f"create {rel}"
                    with open(p(rel), "wb") as f:
                        f.write(rng.randbytes(rng.randrange(0, 32 * KIB)))
                    churn_files.append(rel)
                elif k == 2:
                    i = rng.randrange(len(churn_files))
                    new = f"{rng.choice(churn_dirs)}/r{n}"
                    op = f"rename {churn_files[i]}"
                    os.rename(p(churn_files[i]), p(new))
                    churn_files[i] = new
                elif k == 3:
                    rel = churn_files[rng.randrange(len(churn_files))]
                    op = f"unlink {rel}"
                    os.unlink(p(rel))
                    churn_files.remove(rel)
                elif k == 4:
                    rel = rng.choice(churn_files)
                    op = f"truncate {rel}"
                    os.truncate(p(rel), rng.randrange(0, 100000))
                elif len(churn_dirs) < 10:
                    rel = f"{rng.choice(churn_dirs)}/s{n}"
                    op = f"mkdir {rel}"
                    os.mkdir(p(rel))
                    churn_dirs.append(rel)
                else:
                    leaves = [d for d in churn_dirs[1:] if not any(o.startswith(d + "/") for o in churn_dirs)]
                    d = rng.choice(leaves)
                    for f in [f for f in churn_files if os.path.dirname(f) == d]:
                        op = f"unlink {f}"
                        os.unlink(p(f))
                        churn_files.remove(f)
                    op = f"rmdir {d}"
                    os.rmdir(p(d))
                    churn_dirs.remove(d)
    except OSError as e:
        record(f"E {op.replace(' ', ':')} {fsx.err_name(e.errno)}")
        return 0
    record("E timeout none")
    return 3


def read_records(recfile):
    """Complete lines only (a line is written with one write(2), but be safe)."""
    with open(recfile) as f:
        data = f.read()
    return [line.split() for line in data.split("\n")[:-1] if line]


def start_writer(rng, stream, recfile):
    open(recfile, "w").close()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = writer(rng, stream, recfile)
        finally:
            os._exit(code)
    return pid


def reap(pid, timeout):
    """Waits up to TIMEOUT s for PID; kills it after that. Returns (exited in time, status)."""
    t = time.time()
    while time.time() - t < timeout:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return True, status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return False, status


# ---- one flag ----------------------------------------------------------------------------


def one_flag(name, flag, seed):
    rng = random.Random(seed * 10 + flag)
    recfile = f"/tmp/shutdown-{name}.rec"
    fds = {}
    state = {}
    rest = ["eio", "eio-other", "read", "umount", "mount", "fsynced"] + (["closed"] if flag != 2 else []) + ["fsck"]

    def skip(reason):
        for c in rest:
            fsx.fail(f"{name}-{c}", f"not run: {reason}")

    def mkfs():
        if fsx.mounted(MNT):
            fsx.run("umount", "-l", MNT, check=False)
        fsx.mkfs(DEV, "shutdown")
        fsx.mount(DEV, MNT)
        for d in ["f0", "f1", "u0", "u1", "c"]:
            os.mkdir(p(d))
        state["pre"] = fsx.write_file(p("pre"), seed + 1, 200 * KIB, fsync=True)
        state["cold"] = fsx.write_file(p("cold"), seed + 2, 300 * KIB, fsync=True)
        for d in ["f0", "f1", "u0", "u1", "c", ""]:
            fsx.fsync_path(p(d))
        fsx.drop_caches()
        fds["pre"] = os.open(p("pre"), os.O_RDWR)
        os.pread(fds["pre"], 200 * KIB, 0)  # cached again
        fds["cold"] = os.open(p("cold"), os.O_RDONLY)  # the data stays uncached

    if not fsx.case(f"{name}-mkfs", mkfs):
        skip("mkfs failed")
        return

    def do_shutdown():
        delay = rng.uniform(0.2, 3.0)
        pid = start_writer(rng, seed * 10 + flag, recfile)
        # Enough records that the checks mean something (at most 60 s), then the delay.
        t = time.time()
        while time.time() - t < 60:
            recs = read_records(recfile)
            if sum(r[0] == "F" for r in recs) >= 3 and sum(r[0] == "C" for r in recs) >= 3:
                break
            if any(r[0] == "E" for r in recs):
                break
            time.sleep(0.05)
        time.sleep(delay)
        state["before"] = read_records(recfile)
        t0 = time.time()
        try:
            shutdown(MNT, flag)
        except OSError as e:
            reap(pid, 0)
            raise fsx.Fail(f"FS_IOC_SHUTDOWN({flag}) on {MNT}: {fsx.err_name(e.errno)}")
        took = time.time() - t0
        exited, status = reap(pid, 60)
        recs = read_records(recfile)
        state["records"] = recs
        ends = [r for r in recs if r[0] == "E"]
        nf = sum(r[0] == "F" for r in recs)
        nc = sum(r[0] == "C" for r in state["before"])
        fsx.note(f"{name}: shutdown after {delay:.2f} s of the writer (seed {seed}), ioctl took {took:.2f} s; "
                 f"{nf} fsync'ed files, {nc} closed before the ioctl; the writer ended with "
                 f"{' '.join(ends[0][1:]) if ends else 'nothing'}")
        fsx.expect(exited, "the writer did not stop within 60 s of the shutdown")
        fsx.expect(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
                   f"the writer exited with status {status}: {ends}")
        fsx.expect(ends and ends[0][2] == "EIO", f"the writer's failing operation: {ends}, expected EIO")
        fsx.expect(not any(r[0] == "E" for r in state["before"]), "the writer failed before the shutdown")

    if not fsx.case(f"{name}-shutdown", do_shutdown):
        for fd in fds.values():
            os.close(fd)
        skip("the shutdown step failed")
        fsx.run("umount", MNT, check=False)
        return

    def expect_eio(got):
        bad = {k: v for k, v in got.items() if v != "EIO"}
        fsx.expect(not bad, f"after the shutdown, expected EIO: {bad}")

    def eio():
        pre = fds["pre"]
        expect_eio({
            "write": result(os.write, pre, b"x"),
            "pwrite": result(os.pwrite, pre, b"x" * 4096, 8192),
            "create": result(lambda: os.close(os.open(p("new"), os.O_WRONLY | os.O_CREAT, 0o644))),
            "mkdir": result(os.mkdir, p("newdir")),
            "fsync": result(os.fsync, pre),
            "fdatasync": result(os.fdatasync, pre),
            "fsync-dir": result(fsx.fsync_path, MNT),
        })

    fsx.case(f"{name}-eio", eio)

    def eio_other():
        expect_eio({
            "open-wronly": result(lambda: os.close(os.open(p("pre"), os.O_WRONLY))),
            "ftruncate": result(os.ftruncate, fds["pre"], 1000),
            "unlink": result(os.unlink, p("cold")),
            "rename": result(os.rename, p("cold"), p("cold2")),
            "symlink": result(os.symlink, "pre", p("sym")),
            "chmod": result(os.chmod, p("pre"), 0o600),
        })

    fsx.case(f"{name}-eio-other", eio_other)

    def read():
        got = {
            "pread-cached": result(os.pread, fds["pre"], 4096, 0),
            "pread-uncached": result(os.pread, fds["cold"], 4096, 100 * KIB),
            "open-rdonly-cached": result(lambda: os.close(os.open(p("pre"), os.O_RDONLY))),
            "open-rdonly-uncached": result(lambda: os.close(os.open(p("cold"), os.O_RDONLY))),
        }
        # Not asserted (ext4 lets them through: no data is read): noted.
        meta = {"stat": result(os.stat, p("pre")), "listdir": result(os.listdir, MNT)}
        fsx.note(f"{name}: after the shutdown: {got} {meta}")
        expect_eio(got)

    fsx.case(f"{name}-read", read)
    for fd in fds.values():
        os.close(fd)

    if not fsx.case(f"{name}-umount", fsx.umount, MNT):
        fsx.run("umount", "-l", MNT, check=False)
        for c in rest[rest.index("mount"):]:
            fsx.fail(f"{name}-{c}", "not run: umount failed")
        return
    if not fsx.case(f"{name}-mount", fsx.mount, DEV, MNT):
        for c in rest[rest.index("fsynced"):]:
            fsx.fail(f"{name}-{c}", "not run: mount failed")
        return

    def fsynced():
        problems = []
        want = [(r[1], int(r[2]), r[3]) for r in state["records"] if r[0] == "F"]
        want += [("pre", 200 * KIB, state["pre"]), ("cold", 300 * KIB, state["cold"])]
        for rel, size, sha in want:
            try:
                st = os.stat(p(rel))
            except OSError as e:
                problems.append(f"{rel}: {fsx.err_name(e.errno)}")
                continue
            if st.st_size != size:
                problems.append(f"{rel}: size {st.st_size}, fsync'ed {size}")
            elif sha_of(p(rel)) != sha:
                problems.append(f"{rel}: content differs")
        fsx.expect(not problems, f"{len(problems)} of {len(want)} fsync'ed files wrong: {'; '.join(problems[:5])}")

    fsx.case(f"{name}-fsynced", fsynced)

    def closed():
        want = [(r[1], int(r[2]), r[3], int(r[4])) for r in state["before"] if r[0] == "C"]
        problems = []
        counts = {"exact": 0, "empty": 0, "prefix": 0}
        stream = seed * 10 + flag
        for rel, size, sha, off in want:
            try:
                st = os.stat(p(rel))
            except OSError as e:
                problems.append(f"{rel}: {fsx.err_name(e.errno)}")
                continue
            if st.st_size == size and sha_of(p(rel)) == sha:
                counts["exact"] += 1
            elif flag == 1 and st.st_size == 0:
                counts["empty"] += 1
            elif flag == 1 and st.st_size < size and sha_of(p(rel)) == fsx.expected(stream, off, st.st_size):
                counts["prefix"] += 1
            else:
                problems.append(f"{rel}: size {st.st_size} (written {size}), "
                                f"{'content differs' if st.st_size <= size else 'too big'}")
        fsx.note(f"{name}: {len(want)} files closed before the ioctl: {counts['exact']} exact, "
                 f"{counts['empty']} empty, {counts['prefix']} a shorter prefix, {len(problems)} wrong")
        fsx.expect(not problems, f"{len(problems)} of {len(want)} closed files wrong: {'; '.join(problems[:5])}")

    if flag != 2:
        fsx.case(f"{name}-closed", closed)

    def umount_fsck():
        fsx.umount(MNT)
        fsck()

    fsx.case(f"{name}-fsck", umount_fsck)


# ---- permissions and bad flags -------------------------------------------------------------


def still_writable(tag):
    fsx.write_file(p(tag), 7, 10000, fsync=True)
    fsx.fsync_path(MNT)
    fsx.check_data(p(tag), 7, 0, 10000)


def permissions():
    fsx.mkfs(DEV, "shutdown")
    fsx.mount(DEV, MNT)
    os.chmod(MNT, 0o777)
    u = pwd.getpwnam("fsgqa")
    got = {f: fsx.as_user(lambda f=flag: result(shutdown, MNT, f), u.pw_uid, u.pw_gid) for f, flag in FLAGS}
    bad = {k: v for k, v in got.items() if v != "EPERM"}
    fsx.expect(not bad, f"FS_IOC_SHUTDOWN as fsgqa: {bad}, expected EPERM")
    still_writable("after-eperm")


def bad_flag():
    got = result(shutdown, MNT, 3)
    fsx.expect(got == "EINVAL", f"FS_IOC_SHUTDOWN(3): {got}, expected EINVAL")
    still_writable("after-bad-flag")


def mount_errno(opts):
    """0 or the errno of a read-only mount(2) of DEV with data OPTS."""
    os.makedirs(MNT, exist_ok=True)
    ret = fsx.libc.mount(DEV.encode(), MNT.encode(), fsx.FSTYP.encode(), 1,  # MS_RDONLY
                         opts.encode() if opts else None)
    return 0 if ret == 0 else fsx.ctypes.get_errno()


def ro_device():
    """A journal that needs recovery on a read-only block device is not replayed onto it:
    mount fails with EROFS, `norecovery` mounts; writable again, mount replays (xfstests
    generic/050)."""
    fsx.mkfs(DEV, "shutdown")
    fsx.mount(DEV, MNT)
    fsx.write_file(p("kept"), 9, 20000, fsync=True)
    fsx.fsync_path(MNT)
    shutdown(MNT, 2)
    fsx.umount(MNT)
    fsx.run("blockdev", "--setro", DEV)
    try:
        e = mount_errno(None)
        if e == 0:
            fsx.umount(MNT)
        fsx.expect(e == errno.EROFS, f"mount of a read-only device needing recovery: "
                   f"{fsx.err_name(e) if e else 'mounted'}, expected EROFS")
        e = mount_errno("norecovery")
        fsx.expect(e == 0, f"mount -o ro,norecovery: {fsx.err_name(e)}")
        fsx.umount(MNT)
    finally:
        fsx.run("blockdev", "--setrw", DEV)
    fsx.mount(DEV, MNT)
    fsx.check_data(p("kept"), 9, 0, 20000)
    fsx.umount(MNT)
    fsck()


def free_counts():
    st = os.statvfs(MNT)
    return st.f_bfree, st.f_ffree


def open_unlinked(tag, n):
    """N files of 64 KiB with a 512-byte xattr each in directory TAG, opened, unlinked while
    open, and the unlinks committed (sync); returns their descriptors."""
    fds = []
    for i in range(n):
        path = p(f"{tag}/{i}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fds.append(fd)
        fsx.write_data(fd, 20 + i, 0, 64 * KIB)
        os.setxattr(fd, "user.orphan", bytes([i]) * 512)
        os.unlink(path)
    os.sync()
    return fds


def close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def orphans_read_only():
    """Files open and unlinked at a shutdown are deleted by the next mount, a read-only one
    too when the device can be written (ext4 does so; xfstests generic/417): their blocks
    and inodes are free at once, and fsck is clean after it."""
    fsx.mkfs(DEV, "shutdown")
    fsx.mount(DEV, MNT)
    os.mkdir(p("orphans"))
    os.sync()
    before = free_counts()
    fds = open_unlinked("orphans", 50)
    held = free_counts()
    fsx.expect(held[0] <= before[0] - 50 * 16 and held[1] == before[1] - 50,
               f"free blocks and inodes {held} with 50 open unlinked files, {before} before")
    shutdown(MNT, 1)
    close_all(fds)
    fsx.umount(MNT)
    fsx.mount(DEV, MNT, "ro")
    after = free_counts()
    fsx.expect(after == before, f"free blocks and inodes {after} after a read-only mount, {before} "
               "before the files were made")
    fsx.umount(MNT)
    fsck()


def orphans_ro_device():
    """On a read-only block device a read-only mount (`norecovery` if the journal needs
    recovery) leaves the open unlinked files of a shutdown to the next read-write mount,
    which deletes them; nothing is written to the read-only device (ext4 does the same)."""
    fsx.mount(DEV, MNT)
    before = free_counts()
    fds = open_unlinked("orphans", 50)
    shutdown(MNT, 0)
    close_all(fds)
    fsx.umount(MNT)
    fsx.run("dmesg", "-C")
    fsx.run("blockdev", "--setro", DEV)
    try:
        e = mount_errno(None)
        if e == errno.EROFS:
            e = mount_errno("norecovery")
        fsx.expect(e == 0, f"read-only mount of the read-only device: {fsx.err_name(e)}")
        fsx.umount(MNT)
    finally:
        fsx.run("blockdev", "--setrw", DEV)
    log = fsx.run("dmesg")
    fsx.expect("read-only block-device" not in log, f"written to the read-only device: {log.strip()[-300:]}")
    fsx.mount(DEV, MNT)
    after = free_counts()
    fsx.umount(MNT)
    fsx.expect(after == before, f"free blocks and inodes {after} after a read-write mount, "
               f"{before} before the files were made")
    fsck()


def scsi_debug_disk():
    """Loads scsi_debug with one 64 MiB disk; returns its name in /sys/block (sdX)."""
    fsx.run("modprobe", "scsi_debug", "dev_size_mb=64")
    for _ in range(50):
        for name in os.listdir("/sys/block"):
            try:
                with open(f"/sys/block/{name}/device/model") as f:
                    model = f.read().strip()
            except OSError:
                continue
            if model == "scsi_debug" and os.path.exists(f"/dev/{name}"):
                return name
        time.sleep(0.2)
    raise fsx.Fail("no scsi_debug disk appeared")


def device_removed():
    """The disk is removed under the mounted filesystem while it holds dirty data (xfstests
    generic/730): the filesystem shuts down, so a read through a descriptor opened before,
    a new open and a create fail with EIO; umount works."""
    disk = scsi_debug_disk()
    dev, mnt = f"/dev/{disk}", "/mnt/removed"
    try:
        fsx.mkfs(dev, "removed")
        fsx.mount(dev, mnt)
        fsx.write_file(os.path.join(mnt, "kept"), 3, 100 * KIB, fsync=True)
        fsx.write_file(os.path.join(mnt, "dirty"), 4, 1024 * KIB)
        fd = os.open(os.path.join(mnt, "dirty"), os.O_RDONLY)
        try:
            with open(f"/sys/block/{disk}/device/delete", "w") as f:
                f.write("1")
            got = {
                "read": result(os.pread, fd, 4096, 0),
                "open": result(lambda: os.close(os.open(os.path.join(mnt, "kept"), os.O_RDONLY))),
                "create": result(lambda: os.close(os.open(os.path.join(mnt, "new"), os.O_WRONLY | os.O_CREAT, 0o644))),
            }
        finally:
            os.close(fd)
        bad = {k: v for k, v in got.items() if v != "EIO"}
        fsx.expect(not bad, f"after the disk was removed: {bad}, expected EIO")
        fsx.umount(mnt)
    finally:
        if fsx.mounted(mnt):
            fsx.run("umount", "-l", mnt, check=False)
        fsx.run("rmmod", "scsi_debug", check=False)


def dm_table(name, table):
    """Replaces the table of device-mapper device NAME without freezing the filesystem on
    it (--nolockfs), so dirty pages stay dirty."""
    path = f"/tmp/{name}.table"
    with open(path, "w") as f:
        f.write(table + "\n")
    fsx.run("dmsetup", "suspend", "--nolockfs", name)
    fsx.run("dmsetup", "load", name, path)
    fsx.run("dmsetup", "resume", name)


@contextlib.contextmanager
def dm_linear(name, mnt):
    """A device-mapper device NAME mapping all of DEV linearly; yields (its path, DEV's
    sectors, the linear table). Afterwards MNT is unmounted if still mounted and the
    device removed."""
    sectors = int(fsx.run("blockdev", "--getsz", DEV).strip())
    linear = f"0 {sectors} linear {DEV} 0"
    fsx.run("dmsetup", "create", name, "--table", linear)
    try:
        yield f"/dev/mapper/{name}", sectors, linear
    finally:
        if fsx.mounted(mnt):
            fsx.run("umount", "-l", mnt, check=False)
        fsx.run("dmsetup", "remove", name, check=False)


def data_error(abort=False):
    """Ordered data the disk refuses to write (the blocks of one file map to dm's `error`
    target) does not stop the filesystem, as in ext4 (data_err=ignore): the commit that
    fsync of another file makes still succeeds, fsync of the refused file fails with EIO,
    and after umount the filesystem is clean and the durable files intact (xfstests
    generic/347). With ABORT (`data_err=abort`, shown in /proc/mounts and changed by
remounts) that commit fails
    with EIO instead and the filesystem stops; the next mount replays the journal."""
    from check import fiemap
    mnt = "/mnt/derr"
    with dm_linear("shutdown-derr", mnt) as (dev, sectors, linear):
        fsx.mkfs(dev, "derr")
        # No periodic commit meanwhile; ext4 allocates at write time, as AegisFS does, so
        # FIEMAP shows the blocks.
        opts = "commit=60" + (",data_err=abort" if abort else "")
        fsx.mount(dev, mnt, opts + (",nodelalloc" if fsx.FSTYP.startswith("ext") else ""))
        if abort:
            # Shown in /proc/mounts, and changed by a remount either way.
            for remount, want in ((None, True), ("data_err=ignore", False), ("data_err=abort", True)):
                if remount:
                    fsx.run("mount", "-o", f"remount,{remount}", mnt)
                with open("/proc/mounts") as f:
                    line = next(line for line in f if line.split()[1] == mnt)
                shown = "data_err=abort" in line.split()[3].split(",")
                fsx.expect(shown == want, f"after {remount or 'mount'}: /proc/mounts: {line.strip()}")
        fsx.write_file(os.path.join(mnt, "good"), 5, 100 * KIB, fsync=True)
        fsx.fsync_path(mnt)
        fd = os.open(os.path.join(mnt, "bad"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fsx.write_data(fd, 6, 0, 1024 * KIB)
            extents = sorted((ph // 512, ln // 512) for _, ph, ln, _ in fiemap(fd, flags=0))
            fsx.expect(extents and all(ph > 0 for ph, _ in extents), f"no blocks allocated: {extents}")
            table, pos = [], 0
            for start, length in extents:
                if start > pos:
                    table.append(f"{pos} {start - pos} linear {DEV} {pos}")
                table.append(f"{start} {length} error")
                pos = start + length
            if pos < sectors:
                table.append(f"{pos} {sectors - pos} linear {DEV} {pos}")
            dm_table("shutdown-derr", "\n".join(table))
            after = result(fsx.write_file, os.path.join(mnt, "after"), 7, 200 * KIB, 0, True)
            want = "EIO" if abort else "ok"
            fsx.expect(after == want, f"fsync of another file once the commit met the failing blocks: {after}, expected {want}")
            got = result(os.fsync, fd)
            fsx.expect(got == "EIO", f"fsync of the file whose blocks fail: {got}, expected EIO")
        finally:
            os.close(fd)
        if abort:
            dm_table("shutdown-derr", linear)
            fsx.umount(mnt)
            fsx.mount(dev, mnt)
            fsx.check_data(os.path.join(mnt, "good"), 5, 0, 100 * KIB)
            fsx.umount(mnt)
            fsck(dev)
            return
        fsx.fsync_path(mnt)
        dm_table("shutdown-derr", linear)
        fsx.umount(mnt)
        fsck(dev)
        fsx.mount(dev, mnt)
        fsx.check_data(os.path.join(mnt, "good"), 5, 0, 100 * KIB)
        fsx.check_data(os.path.join(mnt, "after"), 7, 0, 200 * KIB)
        fsx.umount(mnt)


def fsync_error_heal():
    """A device that fails every write for a moment, then works again (xfstests generic/441):
    fsync of data written meanwhile fails with EIO, and then the filesystem goes on as if
    nothing happened, as ext4 does: a reopened file's fsync succeeds, new data is durable,
    fsck is clean. The moment is shorter than the commit interval, so only that data met
    the failing device: a commit that meets it aborts the journal, on ext4 too."""
    mnt = "/mnt/heal"
    path = os.path.join(mnt, "file")
    with dm_linear("shutdown-heal", mnt) as (dev, sectors, linear):
        fsx.mkfs(dev, "heal")
        fsx.mount(dev, mnt)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fsx.write_data(fd, 8, 0, 64 * KIB)
            os.fsync(fd)
            failing = time.monotonic()
            dm_table("shutdown-heal", f"0 {sectors} error")
            try:
                fsx.write_data(fd, 9, 0, 64 * KIB)
                got = result(os.fsync, fd)
            finally:
                dm_table("shutdown-heal", linear)
            fsx.note(f"fsync-error-heal: the device failed writes for {time.monotonic() - failing:.1f} s")
            fsx.expect(got == "EIO", f"fsync while the device fails writes: {got}, expected EIO")
        finally:
            os.close(fd)
        fd = os.open(path, os.O_WRONLY)
        try:
            got = result(os.fsync, fd)
            fsx.expect(got == "ok", f"fsync of the file reopened after the device healed: {got}")
        finally:
            os.close(fd)
        fsx.write_file(path, 10, 64 * KIB, fsync=True)
        fsx.umount(mnt)
        fsck(dev)
        fsx.mount(dev, mnt)
        fsx.check_data(path, 10, 0, 64 * KIB)
        fsx.umount(mnt)


def main():
    fsx.init("shutdown", sys.argv)
    seed = int(sys.argv[2])
    fsx.note(f"FSTYP={fsx.FSTYP} seed {seed}")
    fsx.load()
    for name, flag in FLAGS:
        one_flag(name, flag, seed)
    if fsx.case("eperm", permissions):
        fsx.case("bad-flag", bad_flag)

        def umount_fsck():
            fsx.umount(MNT)
            fsck()

        fsx.case("eperm-fsck", umount_fsck)
    if fsx.mounted(MNT):
        fsx.run("umount", MNT, check=False)
    fsx.case("ro-device", ro_device)
    if fsx.mounted(MNT):
        fsx.run("umount", MNT, check=False)
    if fsx.case("orphans-ro", orphans_read_only):
        fsx.case("orphans-ro-device", orphans_ro_device)
    if fsx.mounted(MNT):
        fsx.run("umount", MNT, check=False)
    fsx.case("device-removed", device_removed)
    fsx.case("data-error", data_error)
    fsx.case("data-error-abort", data_error, True)
    fsx.case("fsync-error-heal", fsync_error_heal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
