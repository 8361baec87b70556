#!/usr/bin/env python3
"""Guest half of tests/suites/staledata.sh: no file shows another file's old data, also
after a power cut in the middle of appending writes.

  staledata.py FSTYP BOOT SEED prep    mkfs /dev/vdb, make sure the check notices SECRET
                                       in a file, fill the disk with files whose every
                                       block holds SECRET, delete them all (the blocks keep
                                       the bytes, free for reuse); no power cut
  staledata.py FSTYP BOOT SEED run     append to and truncate files until the host kills
                                       QEMU (--kill-after)
  staledata.py FSTYP BOOT SEED check   check what the last power cut left

The check (cases boot-N-check, boot-N-fsck): after the mount (the journal replay), every
4 KiB block of every file is either zeros (a hole, a block allocated but never written, a
range truncated and extended again) or exactly what the workload wrote at that place of
that file; a block holding SECRET is the data of a deleted file, which ordered mode must
never expose. Then `fsck -n` exits 0.
"""

import errno
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsx  # noqa: E402

DEV, MNT = "/dev/vdb", "/mnt/staledata"
BLOCK = fsx.BLOCK
SECRET = b"SECRET-OF-A-DELETED-FILE"
FILES = 8
ZERO = bytes(BLOCK)


def own_block(file_id, index):
    """What the workload writes at block INDEX of file FILE_ID: 16-byte records naming both."""
    record = b"OWN!" + file_id.to_bytes(4, "little") + index.to_bytes(8, "little")
    return record * (BLOCK // len(record))


def prep():
    fsx.mkfs(DEV, "staledata")
    fsx.mount(DEV, MNT)
    block = (SECRET * (BLOCK // len(SECRET) + 1))[:BLOCK]
    chunk = block * 256
    # The check must see SECRET where it should not be: a file of the workload's name
    # holding a block of it fails the check.
    probe = os.path.join(MNT, "a0")
    with open(probe, "wb") as f:
        f.write(own_block(0, 0) + block)
    try:
        check_files()
        seen = False
    except fsx.Fail as e:
        seen = "a0 block 1: SECRET" in str(e)
    fsx.expect(seen, "the check did not notice SECRET in block 1 of a0")
    os.unlink(probe)
    secrets, written = [], 0
    try:
        while True:
            path = os.path.join(MNT, f"secret{len(secrets)}")
            secrets.append(path)
            with open(path, "wb") as f:
                for _ in range(4):
                    f.write(chunk)
                    written += len(chunk)
    except OSError as e:
        fsx.expect(e.errno == errno.ENOSPC, f"filling the disk: {e}")
    os.sync()
    for path in secrets:
        if os.path.exists(path):
            os.unlink(path)
    os.sync()
    fsx.note(f"prep: {written >> 20} MiB of SECRET written to {len(secrets)} files, then deleted")
    fsx.umount(MNT)


def check_files():
    problems, blocks, zeros = [], 0, 0
    for name in sorted(os.listdir(MNT)):
        path = os.path.join(MNT, name)
        if name == "lost+found":
            continue
        fsx.expect(name.startswith("a") and name[1:].isdigit(), f"unexpected file {name}")
        file_id = int(name[1:])
        with open(path, "rb") as f:
            index = 0
            while True:
                data = f.read(BLOCK)
                if not data:
                    break
                blocks += 1
                if data == ZERO[: len(data)]:
                    zeros += 1
                elif data != own_block(file_id, index)[: len(data)]:
                    what = "SECRET (a deleted file's data)" if SECRET[:8] in data else "foreign bytes"
                    problems.append(f"{name} block {index}: {what}")
                index += 1
    fsx.expect(not problems, f"{len(problems)} bad blocks: " + "; ".join(problems[:5]))
    fsx.note(f"{blocks} blocks checked, {zeros} of them zeros")


def check(boot):
    c = f"boot-{boot}"
    if not fsx.case(f"{c}-mount", fsx.mount, DEV, MNT):
        return False
    good = fsx.case(f"{c}-check", check_files)
    if not fsx.case(f"{c}-umount", fsx.umount, MNT):
        return False
    fsck = ["fsck", "-t", fsx.FSTYP, "-n"] + (["-f"] if fsx.FSTYP.startswith("ext") else []) + [DEV]
    return fsx.case(f"{c}-fsck", fsx.run, *fsck) and good


def workload(boot, seed):
    """Appends whole blocks to the files, sometimes fsyncs, truncates down to a block
    boundary or extends with a hole, deletes a file now and then; until the power goes."""
    rng = random.Random(seed)
    fsx.mount(DEV, MNT)
    fsx.note(f"boot {boot}: workload started (seed {seed})")
    start = last = time.time()
    ops = 0
    while time.time() - start < 240:
        file_id = rng.randrange(FILES)
        path = os.path.join(MNT, f"a{file_id}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            first = size // BLOCK
            action = rng.random()
            if action < 0.7:
                count = rng.randint(1, 64)
                data = b"".join(own_block(file_id, first + i) for i in range(count))
                os.pwrite(fd, data, first * BLOCK)
                if rng.random() < 0.2:
                    os.fsync(fd)
            elif action < 0.85:
                os.ftruncate(fd, rng.randint(0, first) * BLOCK)
            elif action < 0.97:
                os.ftruncate(fd, (first + rng.randint(1, 32)) * BLOCK)
            else:
                os.unlink(path)
        finally:
            os.close(fd)
        ops += 1
        if time.time() - last >= 2:
            last = time.time()
            fsx.note(f"boot {boot}: {ops} operations in {last - start:.0f} s")
    fsx.note(f"boot {boot}: nobody cut the power within 240 s")
    return 3


def main():
    fsx.init("staledata", sys.argv)
    boot, seed, mode = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    fsx.load()
    if mode == "prep":
        return 0 if fsx.case("prep", prep) else 1
    if mode == "check":
        return 0 if check(boot) else 1
    return workload(boot, seed)


if __name__ == "__main__":
    sys.exit(main())
