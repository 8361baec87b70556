#!/usr/bin/env python3
"""Guest half of tests/suites/dirindex.sh: big directories, hash-indexed on AegisFS
(docs/format.md, "Indexed directories"), with exact listings, lookups and errnos.

  dirindex.py FSTYP     /dev/vdb and /dev/vdc (512 MiB each) get FSTYP

  mkfs-mount      mkfs and mount /dev/vdb; AegisFS: the superblock has DIR_INDEX
  grow            6000 files with 240-byte names in one directory: every name listed
                  once, each stat-able with its own inode; ENOENT for absent names, EEXIST
                  for O_EXCL on present ones; AegisFS, on the device after umount: the
                  directory has the INDEX flag and its root (block 1) is an index block
                  of level 1 or more (the root grew: more than 339 leaves)
  cold-stat       after a remount and dropped caches, the 6000 files stat-ed in name order:
                  AegisFS reads their inode table 64 blocks at a time (one request per
                  64 blocks, not one per block), so the device reads are at most the
                  directory's blocks plus 100 (about 750 more without the readahead)
  shrink-refill   every other file deleted, 3000 directories added: exact listings before
                  and after a remount, d_type of each, nlink; ENOTEMPTY for rmdir of the
                  non-empty directory; everything deleted, then rmdir works
  readdir-stable  3000 entries; 1000 read with readdir(3) noting telldir(3) before each;
                  then 3000 entries added (leaves split), 500 of the unread ones and 100 of
                  the read ones deleted; the rest read: every entry present throughout comes
                  exactly once over both parts; seekdir(3) to 60 noted positions then reads,
                  as the first old entry, the one read there before, unless it was deleted
  head            1000 files with 8-byte names (the first ~250 stay in the head block when
                  the directory is indexed), after a remount: every name found (stat, O_EXCL
                  and link() give EEXIST), 200 absent ones ENOENT; 100 names of the head
                  and 100 of the leaves unlinked (then ENOENT), a leaf file renamed over a
                  head name replaces it; 300 new names, found after a remount; exact
                  listings throughout. AegisFS, on the device: the head holds only names it
                  held before (new names go to the leaves), fsck clean
  dot-dotdot      in an indexed directory: `.` and `..` listed once each; `..` of a
                  subdirectory moved between two indexed directories is the new one
  linear          /dev/vdc made without DIR_INDEX (AegisFS `-O ^dir_index`): 3000 entries
                  work as above; AegisFS: no DIR_INDEX in the superblock, no INDEX flag on
                  the directory, which has more than 3 blocks
  corrupt-index   AegisFS: /dev/vdc made with DIR_INDEX, a directory of 2000 entries, one
                  byte of its index root flipped on the device: lookups fail with EUCLEAN
                  and the kernel log names the device and the bad checksum, no oops;
                  fsck -n reports it, fsck -y repairs it (the directory becomes linear),
                  fsck -n is then clean and all 2000 names are there and new ones can be added
  umount          umount /dev/vdb
"""

import ctypes
import os
import random
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402
from fsx import expect, expect_errno, note  # noqa: E402

DEV, DEV2 = "/dev/vdb", "/dev/vdc"
MNT, MNT2 = "/mnt/dirindex", "/mnt/dirindex2"
BLK = 4096
FEATURE_INCOMPAT_DIR_INDEX = 1 << 1
INODE_FLAG_INDEX = 0x1000

libc = fsx.libc
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]

# struct dirent (glibc, x86_64): d_ino, d_off, d_reclen, d_type, d_name[256].
D_NAME_OFFSET = 19


def aegisfs():
    return fsx.FSTYP == "aegisfs"


def mkfs(dev, *options):
    if aegisfs():
        fsx.run("mkfs", "-t", "aegisfs", "-q", "-f", *options, dev)
    elif options:
        fsx.run("mkfs", "-t", fsx.FSTYP, "-q", "-F", "-O", "^dir_index", dev)
    else:
        fsx.mkfs(dev)


def long_name(i, prefix="f"):
    return f"{prefix}{i:06d}-" + "n" * 232


def create(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))


def listing(path):
    names = os.listdir(path)
    expect(len(names) == len(set(names)), f"{path}: {len(names) - len(set(names))} names listed twice")
    return set(names)


def eq(got, want, what):
    if got != want:
        if isinstance(got, set) and isinstance(want, set):
            raise fsx.Fail(f"{what}: {len(got - want)} unexpected (e.g. {sorted(got - want)[:2]}), "
                           f"{len(want - got)} missing (e.g. {sorted(want - got)[:2]})")
        raise fsx.Fail(f"{what}: got {got!r}, expected {want!r}")


# ---- the device, read directly (docs/format.md) ------------------------------------------


def superblock(dev):
    with open(dev, "rb") as f:
        f.seek(1024)
        return f.read(1024)


def inode_offset(dev, ino):
    """(byte offset, size) of inode INO on unmounted DEV: through the group descriptor's
    inode table (the GDT starts at block 1)."""
    sb = superblock(dev)
    inodes_per_group = struct.unpack_from("<I", sb, 0x54)[0]
    inode_size = struct.unpack_from("<H", sb, 0x5C)[0]
    group, index = divmod(ino - 1, inodes_per_group)
    with open(dev, "rb") as f:
        f.seek(BLK + group * 64)
        table = struct.unpack_from("<Q", f.read(64), 0x10)[0]
    return table * BLK + index * inode_size, inode_size


def dir_on_disk(dev, ino):
    """(flags, size, block 1's bytes or None) of directory inode INO on unmounted DEV."""
    offset, inode_size = inode_offset(dev, ino)
    with open(dev, "rb") as f:
        f.seek(offset)
        raw = f.read(inode_size)
        size, = struct.unpack_from("<Q", raw, 0x10)
        flags, = struct.unpack_from("<I", raw, 0x20)
        block1 = struct.unpack_from("<Q", raw, 0x60 + 8)[0] & ~(1 << 63)
        data = None
        if size >= 2 * BLK and block1:
            f.seek(block1 * BLK)
            data = f.read(BLK)
    return flags, size, data


def head_names(dev, ino):
    """The names in block 0 of directory INO on unmounted DEV."""
    offset, inode_size = inode_offset(dev, ino)
    with open(dev, "rb") as f:
        f.seek(offset)
        block0 = struct.unpack_from("<Q", f.read(inode_size), 0x60)[0] & ~(1 << 63)
        f.seek(block0 * BLK)
        data = f.read(BLK)
    names, pos = set(), 0
    while pos < BLK - 12:
        ino_, rec_len, name_len = struct.unpack_from("<IHB", data, pos)
        if rec_len < 8:
            raise fsx.Fail(f"head block: record of {rec_len} bytes at {pos}")
        if ino_:
            names.add(data[pos + 8:pos + 8 + name_len].decode())
        pos += rec_len
    return names


def has_dir_index(dev):
    return struct.unpack_from("<Q", superblock(dev), 0x18)[0] & FEATURE_INCOMPAT_DIR_INDEX != 0


# ---- cases ----------------------------------------------------------------------------------


def mkfs_mount():
    fsx.load()
    mkfs(DEV)
    if aegisfs():
        expect(has_dir_index(DEV), "mkfs did not set DIR_INDEX")
    fsx.mount(DEV, MNT)


N_GROW = 6000


def t_grow():
    top = os.path.join(MNT, "grow")
    os.mkdir(top)
    started = time.time()
    for i in range(N_GROW):
        create(os.path.join(top, long_name(i)))
    note(f"grow: {N_GROW} creates in {time.time() - started:.1f} s")
    want = {long_name(i) for i in range(N_GROW)}
    eq(listing(top), want, "listing")
    fsx.drop_caches()
    inodes = set()
    for i in range(N_GROW):
        inodes.add(os.stat(os.path.join(top, long_name(i))).st_ino)
    eq(len(inodes), N_GROW, "distinct inode numbers")
    for i in range(N_GROW, N_GROW + 200):
        expect_errno("ENOENT", os.stat, os.path.join(top, long_name(i)))
    for i in range(0, N_GROW, 97):
        expect_errno("EEXIST", create, os.path.join(top, long_name(i)))
    ino = os.stat(top).st_ino
    if aegisfs():
        fsx.umount(MNT)
        flags, size, root = dir_on_disk(DEV, ino)
        fsx.mount(DEV, MNT)
        expect(flags & INODE_FLAG_INDEX, f"directory flags {flags:#x} without INDEX")
        expect(root is not None and root[:4] == b"AIDX", "block 1 is not an index block")
        level, count = root[4], struct.unpack_from("<H", root, 6)[0]
        note(f"grow: directory of {size // BLK} blocks, root level {level} with {count} entries")
        expect(level >= 1, f"root level {level}: the root never grew")
    eq(listing(top), want, "listing after remount")


def t_cold_stat():
    top = os.path.join(MNT, "grow")
    blocks = os.stat(top).st_size // BLK
    fsx.umount(MNT)
    fsx.mount(DEV, MNT)
    fsx.drop_caches()
    before = fsx.block_stat(DEV, 0)
    for i in range(N_GROW):
        os.stat(os.path.join(top, long_name(i)))
    reads = fsx.block_stat(DEV, 0) - before
    note(f"cold-stat: {N_GROW} files, directory of {blocks} blocks: {reads} device reads")
    if aegisfs():
        expect(reads <= blocks + 100, f"{reads} device reads, more than {blocks} + 100")


def t_shrink_refill():
    top = os.path.join(MNT, "grow")
    for i in range(0, N_GROW, 2):
        os.unlink(os.path.join(top, long_name(i)))
    want = {long_name(i) for i in range(1, N_GROW, 2)}
    eq(listing(top), want, "listing after deleting every other file")
    for i in range(0, N_GROW, 2):
        name = long_name(i, "d")
        os.mkdir(os.path.join(top, name))
        want.add(name)
    eq(listing(top), want, "listing after adding 3000 directories")
    fsx.umount(MNT)
    fsx.mount(DEV, MNT)
    eq(listing(top), want, "listing after remount")
    for e in os.scandir(top):
        expect(e.is_dir() == e.name.startswith("d"), f"d_type of {e.name[:12]}")
    eq(os.stat(top).st_nlink, 2 + N_GROW // 2, "nlink with 3000 subdirectories")
    expect_errno("ENOTEMPTY", os.rmdir, top)
    for name in want:
        p = os.path.join(top, name)
        os.rmdir(p) if name.startswith("d") else os.unlink(p)
    eq(os.listdir(top), [], "listing when empty")
    for i in range(0, 50):
        expect_errno("ENOENT", os.stat, os.path.join(top, long_name(i)))
    os.rmdir(top)
    expect_errno("ENOENT", os.stat, top)


class Dir:
    """A directory stream of libc: readdir(3), telldir(3), seekdir(3)."""

    def __init__(self, path):
        self.d = libc.opendir(os.fsencode(path))
        if not self.d:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)

    def tell(self):
        return libc.telldir(self.d)

    def seek(self, pos):
        libc.seekdir(self.d, pos)

    def read(self):
        ctypes.set_errno(0)
        ent = libc.readdir(self.d)
        if not ent:
            e = ctypes.get_errno()
            if e:
                raise OSError(e, os.strerror(e))
            return None
        return ctypes.string_at(ent + D_NAME_OFFSET).decode()

    def close(self):
        libc.closedir(self.d)


def t_readdir_stable():
    top = os.path.join(MNT, "stable")
    os.mkdir(top)
    old = [f"old-{i:05d}-" + "s" * (i % 90) for i in range(3000)]
    for name in old:
        create(os.path.join(top, name))
    d = Dir(top)
    first = []
    positions = []
    while len(first) < 1000:
        pos = d.tell()
        name = d.read()
        expect(name is not None, f"end of directory after {len(first)} entries")
        first.append(name)
        positions.append((pos, name))
    rng = random.Random(5)
    for i in range(3000):
        create(os.path.join(top, f"new-{i:05d}-" + "t" * (i % 120)))
    read = set(first)
    unread = [n for n in old if n not in read]
    deleted = set(rng.sample(unread, 500)) | set(rng.sample(sorted(read - {".", ".."}), 100))
    for name in deleted:
        os.unlink(os.path.join(top, name))
    rest = []
    while True:
        name = d.read()
        if name is None:
            break
        rest.append(name)
    seen = first + rest
    counts = {}
    for name in seen:
        counts[name] = counts.get(name, 0) + 1
    twice = [n for n, c in counts.items() if c > 1 and not n.startswith("new-")]
    expect(not twice, f"{len(twice)} entries came twice, e.g. {twice[:3]}")
    kept = set(old) - deleted
    missing = kept - set(seen)
    expect(not missing, f"{len(missing)} entries present throughout were not read, e.g. {sorted(missing)[:3]}")
    for name in (".", ".."):
        eq(counts.get(name), 1, f"times {name} was read")
    old_set = set(old) | {".", ".."}
    for pos, name in rng.sample(positions, 60):
        if name in deleted:
            continue
        d.seek(pos)
        while True:
            got = d.read()
            expect(got is not None, f"seekdir to {pos} ({name}): end of directory")
            if got in old_set:
                break
        eq(got, name, f"first old entry after seekdir({pos})")
    d.close()
    for name in os.listdir(top):
        os.unlink(os.path.join(top, name))
    os.rmdir(top)


def t_head():
    top = os.path.join(MNT, "head")
    os.mkdir(top)
    names = {f"h{i:07d}" for i in range(1000)}
    for name in sorted(names):
        create(os.path.join(top, name))
    ino = os.stat(top).st_ino
    fsx.umount(MNT)
    before = set()
    if aegisfs():
        flags, _, _ = dir_on_disk(DEV, ino)
        expect(flags & INODE_FLAG_INDEX, "the directory is not indexed")
        before = head_names(DEV, ino) - {".", ".."}
        note(f"head: {len(before)} names in the head block")
        expect(len(before) > 100, f"only {len(before)} names in the head block")
    fsx.mount(DEV, MNT)
    eq(listing(top), names, "listing after remount")
    for name in names:
        os.stat(os.path.join(top, name))
    for i in range(1000, 1200):
        expect_errno("ENOENT", os.stat, os.path.join(top, f"h{i:07d}"))
    other = os.path.join(MNT, "other")
    create(other)
    for name in sorted(names)[::10]:
        expect_errno("EEXIST", create, os.path.join(top, name))
        expect_errno("EEXIST", os.link, other, os.path.join(top, name))
    os.unlink(other)
    in_head = sorted(before) if before else sorted(names)[:250]
    in_leaves = sorted(names - set(in_head))
    gone = in_head[:100] + in_leaves[:100]
    for name in gone:
        os.unlink(os.path.join(top, name))
        names.discard(name)
    for name in gone:
        expect_errno("ENOENT", os.stat, os.path.join(top, name))
    target, source = in_head[100], in_leaves[100]
    source_ino = os.stat(os.path.join(top, source)).st_ino
    os.rename(os.path.join(top, source), os.path.join(top, target))
    names.discard(source)
    eq(os.stat(os.path.join(top, target)).st_ino, source_ino, "inode of the renamed-over name")
    expect_errno("ENOENT", os.stat, os.path.join(top, source))
    added = {f"n{i:07d}" for i in range(300)}
    for name in sorted(added):
        create(os.path.join(top, name))
    names |= added
    eq(listing(top), names, "listing after the changes")
    fsx.umount(MNT)
    if aegisfs():
        now = head_names(DEV, ino) - {".", ".."}
        expect(now <= before, f"new names in the head: {sorted(now - before)[:3]}")
        eq(now, before - set(gone), "names left in the head")
        fsx.fsck(DEV)
    fsx.mount(DEV, MNT)
    eq(listing(top), names, "listing after the second remount")
    for name in names:
        os.stat(os.path.join(top, name))
    for name in gone + [source]:
        expect_errno("ENOENT", os.stat, os.path.join(top, name))
    fsx.run("rm", "-rf", top)


def t_dot_dotdot():
    a, b = os.path.join(MNT, "a"), os.path.join(MNT, "b")
    os.mkdir(a)
    os.mkdir(b)
    for top in (a, b):
        for i in range(800):
            create(os.path.join(top, long_name(i)))
    os.mkdir(os.path.join(a, "sub"))
    entries = os.listdir(a)
    eq(entries.count("sub"), 1, "sub listed")
    d = Dir(a)
    dots = []
    while (name := d.read()) is not None:
        if name in (".", ".."):
            dots.append(name)
    d.close()
    eq(sorted(dots), [".", ".."], "dot entries read")
    os.rename(os.path.join(a, "sub"), os.path.join(b, "sub"))
    eq(os.stat(os.path.join(b, "sub", "..")).st_ino, os.stat(b).st_ino, "`..` after the move")
    fsx.umount(MNT)
    fsx.mount(DEV, MNT)
    eq(os.stat(os.path.join(b, "sub", "..")).st_ino, os.stat(b).st_ino, "`..` after remount")
    expect_errno("ENOENT", os.stat, os.path.join(a, "sub"))
    fsx.run("rm", "-rf", a, b)


def t_linear():
    mkfs(DEV2, "-O", "^dir_index")
    if aegisfs():
        expect(not has_dir_index(DEV2), "DIR_INDEX set by mkfs -O ^dir_index")
    fsx.mount(DEV2, MNT2)
    top = os.path.join(MNT2, "linear")
    os.mkdir(top)
    names = {f"lin-{i:05d}-" + "l" * (i % 100) for i in range(3000)}
    for name in names:
        create(os.path.join(top, name))
    eq(listing(top), names, "listing")
    for name in list(names)[::3]:
        os.unlink(os.path.join(top, name))
        names.discard(name)
    ino = os.stat(top).st_ino
    fsx.umount(MNT2)
    if aegisfs():
        flags, size, _ = dir_on_disk(DEV2, ino)
        expect(not flags & INODE_FLAG_INDEX, f"INDEX flag on a filesystem without DIR_INDEX ({flags:#x})")
        expect(size > 3 * BLK, f"directory of {size} bytes")
        fsx.fsck(DEV2)
    fsx.mount(DEV2, MNT2)
    eq(listing(top), names, "listing after remount")
    for name in names:
        os.stat(os.path.join(top, name))
    fsx.umount(MNT2)


def kernel_log():
    return subprocess.run(["dmesg"], stdout=subprocess.PIPE, text=True).stdout


def t_corrupt_index():
    if not aegisfs():
        note("corrupt-index: AegisFS only")
        return
    mkfs(DEV2)
    fsx.mount(DEV2, MNT2)
    top = os.path.join(MNT2, "victim")
    os.mkdir(top)
    names = {long_name(i, "v") for i in range(2000)}
    for name in names:
        create(os.path.join(top, name))
    ino = os.stat(top).st_ino
    fsx.umount(MNT2)
    flags, size, root = dir_on_disk(DEV2, ino)
    expect(flags & INODE_FLAG_INDEX and root[:4] == b"AIDX", "the directory is not indexed")
    offset, _ = inode_offset(DEV2, ino)
    with open(DEV2, "r+b") as f:
        f.seek(offset + 0x68)
        block1 = struct.unpack_from("<Q", f.read(8))[0]
        f.seek(block1 * BLK + 20)
        byte = f.read(1)
        f.seek(block1 * BLK + 20)
        f.write(bytes([byte[0] ^ 0x5A]))
    log_before = len(kernel_log())
    fsx.mount(DEV2, MNT2)
    expect_errno("EUCLEAN", os.stat, os.path.join(top, long_name(3, "v")))
    expect_errno("EUCLEAN", create, os.path.join(top, "another"))
    log = kernel_log()[log_before:]
    expect("aegisfs (vdc)" in log and "directory index block checksum mismatch" in log,
           f"kernel log: {log.strip()[-300:]!r}")
    for bad in ("Oops", "BUG:", "WARNING:", "panic"):
        expect(bad not in log, f"{bad} in the kernel log")
    fsx.umount(MNT2)
    p = subprocess.run(["fsck", "-t", "aegisfs", "-n", DEV2], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    expect(p.returncode == 4, f"fsck -n exited {p.returncode}, expected 4: {p.stdout.strip()[-300:]}")
    p = subprocess.run(["fsck", "-t", "aegisfs", "-y", DEV2], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    expect(p.returncode == 1, f"fsck -y exited {p.returncode}, expected 1: {p.stdout.strip()[-300:]}")
    note("corrupt-index: fsck -y: " + " | ".join(p.stdout.strip().splitlines()[:4]))
    fsx.fsck(DEV2)
    fsx.mount(DEV2, MNT2)
    eq(listing(top), names, "listing after repair")
    for name in names:
        os.stat(os.path.join(top, name))
    for i in range(300):
        create(os.path.join(top, f"after-{i}"))
    eq(len(os.listdir(top)), 2300, "entries after adding 300")
    fsx.umount(MNT2)
    fsx.fsck(DEV2)


def umount():
    fsx.umount(MNT)


def main():
    fsx.init("dirindex", sys.argv)
    fsx.note(f"FSTYP={fsx.FSTYP}")
    if not fsx.case("mkfs-mount", mkfs_mount):
        return
    for name, fn in [
        ("grow", t_grow),
        ("cold-stat", t_cold_stat),
        ("shrink-refill", t_shrink_refill),
        ("readdir-stable", t_readdir_stable),
        ("head", t_head),
        ("dot-dotdot", t_dot_dotdot),
        ("linear", t_linear),
        ("corrupt-index", t_corrupt_index),
    ]:
        for mnt in (MNT2,):
            if fsx.mounted(mnt):
                fsx.run("umount", mnt, check=False)
        if not fsx.mounted(MNT):
            try:
                fsx.mount(DEV, MNT)
            except fsx.Fail as e:
                note(f"cannot mount again: {e}")
                return
        fsx.case(name, fn)
    fsx.case("umount", umount)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
