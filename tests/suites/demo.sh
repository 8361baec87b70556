#!/usr/bin/env bash
# demo: the narrated session of `make run` (qemu/demo.sh) runs to its end and shows what it
# says: the sample tree read back intact, a large file, a 400 GiB sparse file holding a few
# blocks, EFBIG one byte past the largest file, the filesystem down after FS_IOC_SHUTDOWN,
# the journal replayed at the next mount with every committed file back, fsck clean.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
mkdir -p "$build/tests"
log=$(mktemp "$build/tests/demo.XXXXXX")
trap 'rm -f "$log" "$log.after"' EXIT

if BUILD=$build "$top/qemu/demo.sh" > "$log" 2>&1; then
    echo "ok demo/run"
else
    echo "not ok demo/run: qemu/demo.sh exited $?: $(grep -v '^\[' "$log" | tail -n 3 | tr '\n' ' ')"
    exit 0
fi

# CASE PATTERN WHAT [FILE]: ok when a line of the session (or of FILE) matches the
# extended regex PATTERN.
expect_line() {
    if grep -qE -- "$2" "${4:-$log}"; then echo "ok demo/$1"; else echo "not ok demo/$1: no line showing $3"; fi
}
# What the session showed after the remount that follows the crash.
after=$log.after
sed -n '/^### Mount again/,$p' "$log" > "$after"
[ "$(grep -cE '^\./.*: OK$' "$log")" = 4 ] && echo "ok demo/sample-intact" ||
    echo "not ok demo/sample-intact: not 4 files OK in sha256sum -c: $(grep -E ': (OK|FAILED)' "$log" | tr '\n' ' ')"
expect_line large-file '^/mnt/aegisfs/big: [0-9]+ extents? found$' "filefrag of the large file"
# du of the sparse file: 400G apparent, a few KiB allocated.
expect_line sparse-apparent $'^400G\t/mnt/aegisfs/sparse$' "400G apparent size"
expect_line sparse-allocated $'^[0-9]+K\t/mnt/aegisfs/sparse$' "a few KiB allocated"
expect_line sparse-tail '^the end$' "the last bytes of the sparse file"
expect_line efbig "failed to truncate .*: File too large" "EFBIG past the largest file"
expect_line shutdown-eio "cannot open directory '/mnt/aegisfs': Input/output error" "EIO after the shutdown"
expect_line inspect-journal '^Recovery would replay [1-9][0-9]* transaction' "aegisfs-inspect's journal view before the replay"
expect_line replay 'aegisfs \(vdb\): recovered [0-9]+ journal transactions' "the journal replay" "$after"
expect_line after-crash-counted '^/mnt/aegisfs/after/counted.txt: OK$' "the file made before the crash" "$after"
expect_line after-crash-big '^/mnt/aegisfs/big: OK$' "the large file after the crash" "$after"
expect_line after-crash-rename '^-rw-r--r-- .* README.txt$' "the file renamed before the crash" "$after"
expect_line fsck-clean '^/dev/vdb: [0-9]+/[0-9]+ files .* blocks, [0-9]+ directories$' "fsck's summary" "$after"
expect_line done '^### Done' "the end of the session"
