#!/usr/bin/env python3
"""A replayer for dm-log-writes logs, written from the kernel's description of the format
(Documentation/admin-guide/device-mapper/log-writes.rst, drivers/md/dm-log-writes.c).

  logreplay.py LOG                      list the entries (index, flags, sector, length, mark)
  logreplay.py LOG TARGET [--upto N]    replay entries 0..N (default: all) onto TARGET

The log device, in units of the log's sector size SS (the logical block size of the logged
device, from the super block):
  block 0        super: le64 magic 0x6a736677736872, le64 version 1, le64 nr_entries,
                 le32 sectorsize
  then, for each of nr_entries entries, in the order the writes reached stable storage:
                 one block with the entry header: le64 sector, le64 nr_sectors, le64 flags,
                 le64 data_len (both counts in SS units of the logged device); for a MARK
                 the mark text (data_len bytes) follows the header in the same block;
                 then nr_sectors blocks of data, except for DISCARD entries (no data)
flags: FLUSH 1, FUA 2, DISCARD 4, MARK 8, METADATA 16. Writes are logged only once a later
flush completed (or at once with FUA), so replaying up to a FLUSH or FUA entry gives a
state the device could have had after a power cut there.
"""

import os
import struct
import sys

MAGIC = 0x6A736677736872
VERSION = 1
FLUSH, FUA, DISCARD, MARK, METADATA = 1, 2, 4, 8, 16
FLAG_NAMES = [(FLUSH, "FLUSH"), (FUA, "FUA"), (DISCARD, "DISCARD"), (MARK, "MARK"),
              (METADATA, "META")]
CHUNK = 1 << 20


class LogError(Exception):
    pass


class Entry:
    __slots__ = ("index", "pos", "sector", "nr_sectors", "flags", "mark", "data_pos")

    def __init__(self, index, pos, sector, nr_sectors, flags, mark, data_pos):
        self.index, self.pos, self.sector, self.nr_sectors = index, pos, sector, nr_sectors
        self.flags, self.mark, self.data_pos = flags, mark, data_pos

    def flag_text(self):
        return "|".join(n for f, n in FLAG_NAMES if self.flags & f) or "WRITE"

    def __repr__(self):
        mark = f" {self.mark!r}" if self.mark is not None else ""
        return f"{self.index} {self.flag_text()} sector {self.sector} +{self.nr_sectors}{mark}"


class Log:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        sup = os.pread(self.fd, 28, 0)
        if len(sup) < 28:
            raise LogError(f"{path}: short super block")
        magic, version, self.nr_entries, self.sectorsize = struct.unpack("<QQQI", sup)
        if magic != MAGIC:
            raise LogError(f"{path}: bad magic {magic:#x}")
        if version != VERSION:
            raise LogError(f"{path}: version {version}, expected {VERSION}")
        if self.sectorsize < 512 or self.sectorsize & (self.sectorsize - 1):
            raise LogError(f"{path}: bad sector size {self.sectorsize}")
        self.entries = list(self._read_entries(path))

    def _read_entries(self, path):
        ss = self.sectorsize
        pos = ss
        size = os.lseek(self.fd, 0, os.SEEK_END)
        for i in range(self.nr_entries):
            head = os.pread(self.fd, ss, pos)
            if len(head) < 32:
                raise LogError(f"{path}: entry {i} at byte {pos}: past the end of the log")
            sector, nr, flags, data_len = struct.unpack_from("<QQQQ", head)
            mark = None
            if flags & MARK:
                if data_len > ss - 32:
                    raise LogError(f"{path}: entry {i}: mark of {data_len} bytes")
                mark = head[32:32 + data_len].decode("utf-8", "replace")
            here, data_pos = pos, pos + ss
            pos = data_pos + (0 if flags & DISCARD else nr * ss)
            if pos > size:
                raise LogError(f"{path}: entry {i} ends at byte {pos}, past the log's end {size}")
            yield Entry(i, here, sector, nr, flags, mark, data_pos)

    def marks(self):
        return {e.mark: e.index for e in self.entries if e.mark is not None}


class Replayer:
    """Replays a log forward onto TARGET: replay_to(n) applies the entries up to and
    including n that were not applied yet (never backwards)."""

    def __init__(self, log, target):
        self.log = log
        self.fd = os.open(target, os.O_WRONLY)
        self.next = 0

    def replay_to(self, last):
        if last < self.next - 1:
            raise LogError(f"cannot replay backwards to {last} (already at {self.next - 1})")
        ss = self.log.sectorsize
        for e in self.log.entries[self.next:last + 1]:
            if e.flags & MARK or e.nr_sectors == 0:
                continue
            off, left = e.sector * ss, e.nr_sectors * ss
            if e.flags & DISCARD:
                # Discarded blocks read as anything; zeros here.
                zero = bytes(min(left, CHUNK))
                while left:
                    n = min(left, CHUNK)
                    os.pwrite(self.fd, zero[:n], off)
                    off, left = off + n, left - n
                continue
            src = e.data_pos
            while left:
                n = min(left, CHUNK)
                buf = os.pread(self.log.fd, n, src)
                if len(buf) != n:
                    raise LogError(f"entry {e.index}: short read of its data")
                if os.pwrite(self.fd, buf, off) != n:
                    raise LogError(f"entry {e.index}: short write to the target")
                src, off, left = src + n, off + n, left - n
        self.next = max(self.next, last + 1)
        os.fsync(self.fd)


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    log = Log(argv[1])
    if len(argv) == 2:
        print(f"# {log.nr_entries} entries, sector size {log.sectorsize}")
        for e in log.entries:
            print(e)
        return 0
    upto = len(log.entries) - 1
    if len(argv) >= 5 and argv[3] == "--upto":
        upto = int(argv[4])
    Replayer(log, argv[2]).replay_to(upto)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
