"""Guest helpers shared by the read-write suites (write, posix, stress): the filesystem under
test as a parameter, result lines, deterministic data and small system wrappers.

The filesystem type comes from the guest script's first argument (the host halves pass
$FSTYP, default aegisfs), so every suite can first be proven on ext4:
    init("write", sys.argv)  ->  FSTYP, then mkfs()/mount()/umount()/reload()

Data: stream(SEED) is an endless deterministic byte stream; the byte at absolute position P
depends only on (SEED, P), so a file written at any offset can be checked against
expected(SEED, OFF, LEN) later (even in another boot). It is a 1 MiB random block per seed
(random.Random(SEED)), rotated by a different amount in each MiB, so that every 4 KiB block
of a file differs from every other one (a misplaced block shows).
"""

import ctypes
import errno
import fcntl
import hashlib
import os
import random
import re
import subprocess
import sys
import time
import traceback

SUITE = "?"
FSTYP = "aegisfs"
MIB = 1 << 20
BLOCK = 4096

libc = ctypes.CDLL(None, use_errno=True)


def init(suite, argv):
    global SUITE, FSTYP
    SUITE = suite
    FSTYP = (argv[1] if len(argv) > 1 and argv[1] else "aegisfs")
    return FSTYP


# ---- results -------------------------------------------------------------------------


def ok(case):
    print(f"ok {SUITE}/{case}", flush=True)


def fail(case, reason):
    reason = " ".join(str(reason).split())
    print(f"not ok {SUITE}/{case}: {reason}", flush=True)
    # What the filesystem said about it: CI prints only the results and these notes.
    for line in kernel_messages()[-10:]:
        note(f"kernel: {line}")


def kernel_messages():
    """The kernel log lines of the filesystems under test (AegisFS and ext4)."""
    p = subprocess.run(["dmesg"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return [line for line in p.stdout.splitlines() if re.search(r"aegisfs \(|EXT4-fs (error|warning)", line)]


def note(text):
    print(f"# {SUITE}: {text}", flush=True)


class Fail(Exception):
    """Raised by checks: the message is the reason of the failed case."""


def expect(cond, reason):
    if not cond:
        raise Fail(reason)


def case(name, fn, *args, **kwargs):
    """Runs FN: ok when it returns, not ok with the reason on Fail or any exception.
    Returns True when the case passed."""
    start = time.time()
    try:
        fn(*args, **kwargs)
    except Fail as e:
        fail(name, e)
        return False
    except Exception as e:  # noqa: BLE001 - every error is a failed case
        # Where: the innermost frames in the suites' own files (the helper and its caller).
        here = os.path.dirname(os.path.abspath(__file__))
        tb = [f for f in traceback.extract_tb(e.__traceback__) if os.path.dirname(os.path.abspath(f.filename)) == here]
        where = " (at " + " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(tb[-3:])) + ")" if tb else ""
        fail(name, f"{type(e).__name__}: {e}{where}")
        return False
    finally:
        took = time.time() - start
        if took >= 5:
            note(f"{name} took {took:.0f} s")
    ok(name)
    return True


def err_name(num):
    return errno.errorcode.get(num, str(num))


def errno_of(fn, *args, **kwargs):
    """The errno name FN raised, or 'success'."""
    try:
        fn(*args, **kwargs)
    except OSError as e:
        return err_name(e.errno)
    return "success"


def expect_errno(want, fn, *args, what=None, **kwargs):
    got = errno_of(fn, *args, **kwargs)
    if got != want:
        shown = ", ".join(f"<{len(a)} bytes>" if isinstance(a, (bytes, bytearray)) else repr(a)[:80]
                          for a in args if not callable(a))
        raise Fail(f"{what or fn.__name__}({shown}): {got}, expected {want}")


# ---- commands and the filesystem under test ------------------------------------------


def run(*cmd, check=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and p.returncode != 0:
        raise Fail(f"{' '.join(cmd)} exited {p.returncode}: {p.stdout.strip()[-300:]}")
    return p.stdout


def module_loaded():
    with open("/proc/modules") as f:
        return any(line.split()[0] == "aegisfs" for line in f)


def load():
    if FSTYP == "aegisfs" and not module_loaded():
        run("insmod", os.environ["AEGISFS_KO"])


def unload():
    """rmmod of the module (a no-op for built-in filesystems). Returns True if it unloaded."""
    if FSTYP != "aegisfs":
        return False
    run("rmmod", "aegisfs")
    expect(not module_loaded(), "aegisfs still in /proc/modules after rmmod")
    return True


def mkfs(dev, label="test", fstyp=None):
    fstyp = fstyp or FSTYP
    if fstyp == "aegisfs":
        run("mkfs", "-t", "aegisfs", "-q", "-f", "-L", label, dev)
    elif fstyp.startswith("ext"):
        # Inode tables and journal written now: no background initialisation changing
        # what the tests measure.
        run("mkfs", "-t", fstyp, "-q", "-F", "-L", label,
            "-E", "lazy_itable_init=0,lazy_journal_init=0", dev)
    elif fstyp == "xfs":
        run("mkfs", "-t", "xfs", "-q", "-f", "-L", label, dev)
    else:
        run("mkfs", "-t", fstyp, dev)


def mount(dev, mnt, opts=None, fstyp=None):
    os.makedirs(mnt, exist_ok=True)
    cmd = ["mount", "-t", fstyp or FSTYP]
    if opts:
        cmd += ["-o", opts]
    run(*cmd, dev, mnt)


def umount(mnt):
    run("umount", mnt)


def mounted(mnt):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == mnt for line in f)


def fsck(dev, fstyp=None):
    """fsck -n of an unmounted device; raises Fail with its output when it finds anything."""
    run("fsck", "-t", fstyp or FSTYP, "-n", dev)


def block_stat(dev, field):
    """Counter FIELD (0-based) of /sys/block/DEV/stat: 0 read requests completed, 11
    discard requests completed (Documentation/block/stat.rst)."""
    with open(f"/sys/block/{os.path.basename(dev)}/stat") as f:
        return int(f.read().split()[field])


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def statfs(path):
    """What `stat -f -c '%b %f %a %c %d'` prints: blocks, free, available, inodes, free
    inodes."""
    s = os.statvfs(path)
    return f"{s.f_blocks} {s.f_bfree} {s.f_bavail} {s.f_files} {s.f_ffree}"


FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FL_COMPR, FL_SYNC, FL_IMMUTABLE, FL_APPEND, FL_NODUMP, FL_NOATIME = 0x4, 0x8, 0x10, 0x20, 0x40, 0x80
FL_DIRSYNC = 0x10000


def getflags(p):
    """FS_IOC_GETFLAGS of P (chattr's flags; an int in a long-sized buffer)."""
    fd = os.open(p, os.O_RDONLY)
    try:
        raw = fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))
    finally:
        os.close(fd)
    return int.from_bytes(raw[:4], sys.byteorder)


def setflags(p, flags):
    """FS_IOC_SETFLAGS of FLAGS on P."""
    fd = os.open(p, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags.to_bytes(4, sys.byteorder) + bytes(4))
    finally:
        os.close(fd)


MS_RDONLY, MS_REMOUNT = 1, 32


def remount_flags(mnt, flags):
    """mount(2) with MS_REMOUNT | FLAGS on MNT: no mount(8) to start, and the exact errno."""
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    if libc.mount(None, mnt.encode(), None, MS_REMOUNT | flags, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"remount of {mnt}: {os.strerror(e)}")


def syncfs(fd):
    if libc.syncfs(fd) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


# ---- deterministic data ----------------------------------------------------------------

_bases = {}


def _base(seed):
    b = _bases.get(seed)
    if b is None:
        one = random.Random(seed).randbytes(MIB)
        b = one + one
        if len(_bases) > 16:
            _bases.clear()
        _bases[seed] = b
    return b


def gen(seed, pos, n):
    """N bytes of stream SEED from absolute position POS."""
    base = _base(seed)
    out = []
    while n > 0:
        i, q = divmod(pos, MIB)
        r = (i * 4 + 1 + q) % MIB
        take = min(n, MIB - q)
        out.append(base[r:r + take])
        pos += take
        n -= take
    return b"".join(out)


def expected(seed, off, length):
    """sha256 of LEN bytes of stream SEED from position OFF."""
    h = hashlib.sha256()
    pos = off
    while pos < off + length:
        take = min(MIB - pos % MIB, off + length - pos)
        h.update(gen(seed, pos, take))
        pos += take
    return h.hexdigest()


def write_data(fd, seed, off, length, chunk=MIB):
    """pwrite LEN bytes of stream SEED at OFF (the stream position is the file offset).
    Returns the sha256 of what was written."""
    h = hashlib.sha256()
    pos = off
    end = off + length
    while pos < end:
        take = min(chunk - pos % chunk, end - pos)
        buf = gen(seed, pos, take)
        done = 0
        while done < take:
            done += os.pwrite(fd, buf[done:], pos + done)
        h.update(buf)
        pos += take
    return h.hexdigest()


def write_file(path, seed, length, off=0, fsync=False, truncate=True):
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0)
    fd = os.open(path, flags, 0o644)
    try:
        sha = write_data(fd, seed, off, length)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return sha


def sha_range(path, off, length):
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = off
        while pos < off + length:
            buf = os.pread(fd, min(MIB, off + length - pos), pos)
            if not buf:
                raise Fail(f"{path}: short read at {pos} (wanted up to {off + length})")
            h.update(buf)
            pos += len(buf)
    finally:
        os.close(fd)
    return h.hexdigest()


def zero_sha(length):
    h = hashlib.sha256()
    z = bytes(min(MIB, length))
    while length > 0:
        h.update(z[:min(MIB, length)])
        length -= min(MIB, length)
    return h.hexdigest()


def check_data(path, seed, off, length, size=None, sha=None):
    """PATH holds LEN bytes of stream SEED at OFF (and has SIZE bytes when given)."""
    st = os.stat(path)
    want_size = off + length if size is None else size
    expect(st.st_size == want_size, f"{path}: size {st.st_size}, expected {want_size}")
    got = sha_range(path, off, length)
    want = sha or expected(seed, off, length)
    expect(got == want, f"{path}: sha256 of {off}+{length} is {got}, expected {want}")


def seek(fd, off, whence):
    try:
        return os.lseek(fd, off, whence)
    except OSError as e:
        return err_name(e.errno)


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_cases(cases, dev, mnt, started):
    """Runs each (name, fn) of CASES as a case with DEV mounted on MNT (mounted again after a
    case that failed half-way through a remount), then unmounts; notes the time since STARTED."""
    for name, fn in cases:
        if not mounted(mnt):
            try:
                mount(dev, mnt)
            except Fail as e:
                note(f"cannot mount again: {e}")
                return
        case(name, fn)
    case("umount", umount, mnt)
    note(f"run: {time.time() - started:.0f} s in the guest")


def child(fn, *args):
    """Runs FN(*ARGS) in a forked child; returns its pid. The child exits 1, after a note
    naming the exception, if FN raises, else 0; it never returns into the caller's code."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported through the exit status
            note(f"{fn.__name__}: {type(e).__name__}: {e}")
            code = 1
        os._exit(code)
    return pid


def as_user(fn, uid=1000, gid=1000):
    """Runs FN in a child with uid/gid UID:GID and no supplementary groups; returns what FN
    returned (a string), or the errno name of the OSError it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            out = str(fn())
        except OSError as e:
            out = err_name(e.errno)
        except BaseException as e:  # noqa: BLE001
            out = f"{type(e).__name__}: {e}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()
