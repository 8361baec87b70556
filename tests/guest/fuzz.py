#!/usr/bin/env python3
"""Guest half of tests/suites/fuzz.sh: the corpus of real images, and the fuzz loop.

  fuzz.py corpus              make the corpus on the --disk files /dev/vdb.. (one per entry
                              of CORPUS, in order) with the module itself
  fuzz.py run FIRST END TIMEOUT
                              images FIRST..END-1: the corpus images are the --disk devices
                              (in CORPUS order), image I's mutation is /share/deltas/I.delta
                              (made on the host by `aegisfs-testimage mutate IMG SEED DELTA`,
                              which also ran fsck there)

For each image, in a tmpfs: the corpus image is copied, the delta applied, and the result
attached to a loop device and mounted; if the mount succeeds, a child process runs the
workload (read every directory, stat, read files and xattrs, then create, write, rename,
link, truncate, setxattr, unlink, rmdir, sync, remount read-only) and the filesystem is
unmounted. Every system call may fail (the image is damaged): what is judged is the kernel.
Each step must finish within TIMEOUT seconds, or the image hangs the filesystem; the kernel
log since the image began must hold no report (oops, BUG, WARNING, KASAN, UBSAN, KFENCE,
lockdep, hung task, ...). /share/progress gets "begin I" before the mount and "end I ok" or
"end I fail" after the check (fsync'ed), so the host can name the image that crashed or hung
the VM. A failed image ends the boot (the kernel is not trusted after it): the host starts a
new VM at the next image.
"""

import fcntl
import mmap
import os
import random
import re
import signal
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402

# name, size in MiB, builder: the corpus, each image made by the module.
CORPUS = [("empty", 32), ("populated", 64), ("bigdir", 64), ("deep", 64), ("dirty", 64)]
MNT = "/mnt/fuzz"
WORK = "/run/fuzz"
FS_IOC_SHUTDOWN = 0x8004587D
FS_IOC_FIEMAP = 0xC020660B
FS_IOC_GETFLAGS = 0x80086601
REPORT = re.compile(
    r"Kernel panic|\bBUG:|kernel BUG at|\bBUG [\w.:-]+ \(|WARNING:|Oops|general protection|"
    r"KASAN|UBSAN|KFENCE|panicked at|Call Trace|INFO: task .* blocked|"
    r"rcu.*stall|list_(add|del) corruption|refcount_t|stack-protector|possible circular|"
    r"inconsistent lock|lock held when returning|BAD page|bad page state|invalid opcode")


# ---- corpus ----------------------------------------------------------------------------


def pattern(n, tag):
    """N bytes that compress well but differ per file and per 4 KiB block."""
    out = bytearray()
    block = 0
    while len(out) < n:
        out += (f"{tag}:{block:08d}:".encode() * 300)[:4096]
        block += 1
    return bytes(out[:n])


def write(path, data, off=0):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def make_populated(m, small=False):
    """Every kind of inode and mapping the module writes."""
    deep = os.path.join(m, "a/b/c/d/e/f")
    os.makedirs(deep)
    for i, n in enumerate([0, 1, 60, 100, 5000, 48 * 1024, 100 * 1024]):
        write(os.path.join(m, "a", f"file{i}"), pattern(n, f"f{i}"))
    if not small:
        write(os.path.join(m, "a/b/double"), pattern(3 << 20, "double"))
    write(os.path.join(m, "a/b/sparse"), b"x" * 100)
    write(os.path.join(m, "a/b/sparse"), pattern(8192, "s1"), 1 << 20)
    write(os.path.join(m, "a/b/sparse"), pattern(4096, "s2"), 5 << 20)
    fd = os.open(os.path.join(m, "a/b/prealloc"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.posix_fallocate(fd, 0, 256 * 1024)
    os.pwrite(fd, b"written", 64 * 1024)
    os.close(fd)
    os.symlink("file1", os.path.join(m, "a/short-link"))
    os.symlink("t" * 300, os.path.join(m, "a/long-link"))
    os.link(os.path.join(m, "a/file4"), os.path.join(deep, "hardlink"))
    os.mknod(os.path.join(m, "a/chr"), 0o644 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(m, "a/blk"), 0o644 | stat.S_IFBLK, os.makedev(7, 0))
    os.mkfifo(os.path.join(m, "a/fifo"))
    f4 = os.path.join(m, "a/file4")
    os.setxattr(f4, "user.small", b"v" * 20)
    os.setxattr(f4, "trusted.t", b"trusted value")
    os.setxattr(os.path.join(m, "a/file5"), "user.big", pattern(3000, "xattr"))
    os.setxattr(os.path.join(m, "a/b"), "security.s", b"label")
    fsx.run("setfacl", "-m", "u:1000:rwx,g:1000:r", os.path.join(m, "a/file6"))
    fsx.run("setfacl", "-d", "-m", "u:1000:rwx", os.path.join(m, "a/b/c"))
    os.chown(os.path.join(m, "a/file3"), 1000, 1000)
    fsx.run("chattr", "+i", os.path.join(m, "a/file2"))
    fsx.run("chattr", "+a", os.path.join(m, "a/file1"))


def make_bigdir(m):
    """An indexed directory of short names, and one of long names deep enough for a
    second index level (hard links: many names, one inode)."""
    os.mkdir(os.path.join(m, "short"))
    for i in range(3000):
        open(os.path.join(m, "short", f"f{i:05d}"), "w").close()
    os.mkdir(os.path.join(m, "long"))
    target = os.path.join(m, "target")
    write(target, b"linked")
    for i in range(8000):
        os.link(target, os.path.join(m, "long", f"{i:06d}" + "n" * 194))


def make_deep(m):
    """A file with a block in every mapping level, triple indirect included, and a dense
    file through many single indirect blocks."""
    p = os.path.join(m, "levels")
    for lblk in [0, 12, 12 + 511, 12 + 511 + 511 * 511, 12 + 511 + 2 * 511 * 511 + 7]:
        write(p, pattern(4096, f"l{lblk}"), lblk * 4096)
    write(os.path.join(m, "dense"), pattern(8 << 20, "dense"))
    for i in range(200):
        os.mkdir(os.path.join(m, f"d{i:03d}"))


def make_dirty(m):
    """Committed but not checkpointed transactions (a logflush shutdown), freed metadata
    (revoke records) and open unlinked files (the orphan list)."""
    make_populated(m, small=True)
    os.sync()
    os.mkdir(os.path.join(m, "gone"))
    for i in range(40):
        write(os.path.join(m, "gone", f"g{i}"), b"g" * 200)
    os.sync()
    for i in range(40):
        os.unlink(os.path.join(m, "gone", f"g{i}"))
    os.rmdir(os.path.join(m, "gone"))
    os.rename(os.path.join(m, "a/file5"), os.path.join(m, "a/b/moved"))
    os.setxattr(os.path.join(m, "a/file6"), "user.late", b"late")
    fds = []
    for i in range(3):
        p = os.path.join(m, f"orphan{i}")
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
        os.write(fd, pattern(20000, f"o{i}"))
        os.unlink(p)
        fds.append(fd)
    write(os.path.join(m, "fresh"), pattern(9000, "fresh"))
    fd = os.open(m, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    fcntl.ioctl(fd, FS_IOC_SHUTDOWN, struct.pack("I", 1))
    os.close(fd)
    for fd in fds:
        os.close(fd)


def corpus():
    fsx.load()
    disks = os.environ["AEGISFS_DISKS"].split()
    builders = {"populated": make_populated, "bigdir": make_bigdir, "deep": make_deep,
                "dirty": make_dirty, "empty": lambda m: None}
    for (name, _), dev in zip(CORPUS, disks):
        def build(name=name, dev=dev):
            fsx.mkfs(dev, label=name)
            fsx.mount(dev, MNT)
            builders[name](MNT)
            fsx.umount(MNT)
        fsx.case(f"corpus-{name}", build)


# ---- the fuzz loop ---------------------------------------------------------------------


def walk(root, rng, budget):
    """Reads the tree: readdir, lstat, readlink, xattrs, and some bytes of each file
    (start, end and random offsets; once per inode). Returns the paths seen."""
    seen, paths, stack = set(), [], [(root, 0)]
    while stack and budget[0] > 0:
        d, depth = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        # readdir saw every entry; a sample of a large directory is enough for lookups.
        if len(entries) > 200:
            entries = rng.sample(entries, 200)
        for e in entries:
            budget[0] -= 1
            if budget[0] <= 0:
                break
            p = e.path
            paths.append(p)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            try:
                for name in os.listxattr(p, follow_symlinks=False):
                    os.getxattr(p, name, follow_symlinks=False)
            except OSError:
                pass
            if stat.S_ISDIR(st.st_mode):
                if depth < 32:
                    stack.append((p, depth + 1))
            elif stat.S_ISLNK(st.st_mode):
                try:
                    os.readlink(p)
                    os.stat(p)
                except OSError:
                    pass
            elif stat.S_ISREG(st.st_mode) and st.st_ino not in seen:
                seen.add(st.st_ino)
                read_some(p, st.st_size, rng)
    return paths


def read_some(p, size, rng):
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        offsets = [0, max(0, size - 4096)] + [rng.randrange(max(1, size)) for _ in range(3)]
        for off in offsets:
            try:
                os.pread(fd, 256 * 1024 if off == 0 else 8192, off)
            except OSError:
                pass
        for whence in (os.SEEK_DATA, os.SEEK_HOLE):
            attempt(os.lseek, fd, 0, whence)
        # The block map as FIEMAP reports it (struct fiemap with room for 32 extents), the
        # inode flags, and the first pages through a mapping.
        fiemap = bytearray(struct.pack("QQIIII", 0, 1 << 62, 0, 0, 32, 0) + bytes(56 * 32))
        attempt(fcntl.ioctl, fd, FS_IOC_FIEMAP, fiemap)
        attempt(fcntl.ioctl, fd, FS_IOC_GETFLAGS, b"\0" * 8)
        if 0 < size and MAPPED_READS[0] > 0:
            MAPPED_READS[0] -= 1
            mapped_read(fd, size)
    finally:
        os.close(fd)


# Files read through a mapping per image: each costs a fork.
MAPPED_READS = [12]


def mapped_read(fd, size):
    """Reads the first pages through a mapping, in a child: a page the filesystem cannot
    read is SIGBUS there (the kernel's answer, as on ext4), not the workload's end."""
    pid = os.fork()
    if pid == 0:
        try:
            with mmap.mmap(fd, min(size, 64 * 1024), prot=mmap.PROT_READ) as m:
                m[:].count(0)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) != signal.SIGBUS:
        raise RuntimeError(f"mapped read of a file killed by signal {os.WTERMSIG(status)}")


def attempt(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass


def workload(mnt, seed):
    """Everything a user might do on a damaged filesystem; every call may fail."""
    rng = random.Random(seed)
    paths = walk(mnt, rng, [30000])
    attempt(os.statvfs, mnt)
    files = [p for p in paths if os.path.isfile(p) and not os.path.islink(p)]
    dirs = [p for p in paths if os.path.isdir(p) and not os.path.islink(p)]
    new = os.path.join(mnt, "fuzz-new")
    attempt(os.mkdir, new)
    for i, n in enumerate([10, 5000, 70000]):
        def create(i=i, n=n):
            fd = os.open(os.path.join(new, f"w{i}"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.write(fd, pattern(n, f"w{i}"))
                os.fsync(fd)
            finally:
                os.close(fd)
        attempt(create)
    rng.shuffle(files)
    rng.shuffle(dirs)
    for p in files[:4]:
        def append(p=p):
            fd = os.open(p, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, b"appended" * 600)
            finally:
                os.close(fd)
        attempt(append)
    for p in files[4:6]:
        attempt(os.truncate, p, rng.choice([0, 1, 4096, 1 << 20]))
    for i, p in enumerate(files[6:9]):
        attempt(os.rename, p, os.path.join(new, f"moved{i}"))
    for i, p in enumerate(files[9:11]):
        attempt(os.link, p, os.path.join(new, f"link{i}"))
    for p in files[11:15]:
        attempt(os.unlink, p)
    for p in files[15:17]:
        attempt(os.setxattr, p, "user.fuzz", b"z" * rng.choice([8, 2000]))
        attempt(os.chmod, p, 0o600)
    for i, d in enumerate(dirs[:2]):
        attempt(os.rename, d, os.path.join(mnt, f"fuzz-dir{i}"))
    for d in dirs[2:5]:
        attempt(os.rmdir, d)
    for d in dirs[5:7]:
        attempt(os.mkdir, os.path.join(d, "fuzz-sub"))
        attempt(write, os.path.join(d, "fuzz-file"), b"in a found directory")
    attempt(os.symlink, "fuzz-target", os.path.join(new, "sym"))

    def preallocate():
        fd = os.open(os.path.join(new, "prealloc"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, 1 << 20)
            os.pwrite(fd, b"p" * 5000, 300000)
        finally:
            os.close(fd)
    attempt(preallocate)
    for p in files[17:19]:
        attempt(os.removexattr, p, "user.small")
    walk(mnt, rng, [5000])
    os.sync()


def kernel_log():
    """The kernel messages since the last call (and clears them)."""
    return subprocess.run(["dmesg", "-c"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, errors="replace").stdout


def progress(f, line):
    f.write(line + "\n")
    f.flush()
    os.fsync(f.fileno())


def one(img, seed, timeout):
    """One image: mount, the workload in a child, umount. Returns (failure or
    None, mounted)."""
    loop = fsx.run("losetup", "--find", "--show", img).strip()
    try:
        p = subprocess.run(["mount", "-t", "aegisfs", loop, MNT], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if p.returncode != 0:
            return None, False
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "workload",
                                  MNT, str(seed)])
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"the workload did not finish in {timeout} s (hang)", True
        if child.returncode != 0:
            return f"the workload child exited {child.returncode}", True
        subprocess.run(["mount", "-o", "remount,ro", MNT], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
        u = subprocess.run(["umount", MNT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout)
        if u.returncode != 0:
            return f"umount failed: {u.stdout.strip()}", True
        return None, True
    except subprocess.TimeoutExpired as e:
        return f"{' '.join(e.cmd)} did not finish in {timeout} s (hang)", True
    finally:
        subprocess.run(["losetup", "-d", loop], stderr=subprocess.DEVNULL)


def apply_delta(img, delta):
    """Writes the (block number, 4096 bytes) records of a delta into the image."""
    with open(delta, "rb") as f:
        data = f.read()
    fd = os.open(img, os.O_WRONLY)
    try:
        for at in range(0, len(data), 8 + 4096):
            block = int.from_bytes(data[at:at + 8], "little")
            os.pwrite(fd, data[at + 8:at + 8 + 4096], block * 4096)
    finally:
        os.close(fd)


def run_images(first, end, timeout):
    fsx.load()
    os.makedirs(WORK, exist_ok=True)
    fsx.run("mount", "-t", "tmpfs", "-o", "size=1536m", "tmpfs", WORK)
    os.makedirs(MNT, exist_ok=True)
    for (name, _), dev in zip(CORPUS, os.environ["AEGISFS_DISKS"].split()):
        fsx.run("cp", "--sparse=always", dev, f"{WORK}/{name}.img")
    kernel_log()
    counts = {"mounted": 0, "refused": 0}
    spent = {name: [0, 0.0] for name, _ in CORPUS}
    img = f"{WORK}/image"
    with open("/share/progress", "a") as prog:
        for i in range(first, end):
            name = CORPUS[i % len(CORPUS)][0]
            fsx.run("cp", "--sparse=always", f"{WORK}/{name}.img", img)
            apply_delta(img, f"/share/deltas/{i}.delta")
            progress(prog, f"begin {i}")
            t = time.monotonic()
            failure, mounted = one(img, i, timeout)
            spent[name][0] += 1
            spent[name][1] += time.monotonic() - t
            counts["mounted" if mounted else "refused"] += 1
            log = kernel_log()
            reports = [line for line in log.splitlines() if REPORT.search(line)]
            if reports and failure is None:
                failure = "kernel report: " + " | ".join(reports[:3])
            if failure:
                progress(prog, f"end {i} fail")
                fsx.fail(f"image-{i}", f"{name}: {failure}")
                for line in log.splitlines()[-60:]:
                    print(f"# kernel: {line}", flush=True)
                break
            progress(prog, f"end {i} ok")
    fsx.note("seconds per image: " + ", ".join(
        f"{name} {t / n:.2f}" for name, (n, t) in spent.items() if n))
    total = sum(t for _, t in spent.values())
    fsx.note(f"counts {counts['mounted']} {counts['refused']} {total:.0f}")


def main():
    fsx.init("fuzz", ["", "aegisfs"])
    mode = sys.argv[1]
    if mode == "corpus":
        corpus()
    elif mode == "run":
        run_images(*(int(a) for a in sys.argv[2:5]))
    elif mode == "workload":
        workload(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(f"fuzz.py: unknown mode {mode}")


if __name__ == "__main__":
    main()
