#!/usr/bin/env bash
# `make run`: boots the test kernel and shows AegisFS end to end in the guest: mkfs.aegisfs
# fills a fresh disk from a small sample tree generated here on the host, then the module is
# loaded, the filesystem mounted, looked at and unmounted. Every guest command is echoed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
demo=$build/demo
sample=$demo/share/sample

for f in "$build/module/aegisfs.ko" "$build/target/release/mkfs.aegisfs"; do
    [ -f "$f" ] || echo "demo: $f is not built yet; the demo will stop where it is needed" >&2
done

# The sample tree is regenerated every time, so it always matches this script.
rm -rf "$demo/share"
mkdir -p "$sample/docs" "$sample/src" "$sample/data" "$sample/empty"
cat > "$sample/README.txt" <<'TEXT'
Hello from AegisFS!

This tree was generated on the host by qemu/demo.sh, written into a fresh AegisFS image by
mkfs.aegisfs -d inside the guest, and is now read back through the kernel module.
TEXT
printf '# Notes\n\n- block size 4096\n- CRC32C on every metadata block\n' > "$sample/docs/notes.md"
printf '#include <stdio.h>\n\nint main(void)\n{\n\tputs("hello, aegisfs");\n\treturn 0;\n}\n' \
    > "$sample/src/hello.c"
# Big enough to need indirect blocks (more than 12 blocks of 4 KiB).
seq 1 200000 > "$sample/data/numbers.txt"
ln -s docs/notes.md "$sample/notes-link"
chmod 0600 "$sample/docs/notes.md"
chmod 0755 "$sample/src"
(cd "$sample" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$demo/share/sample.sha256"

exec "$top/qemu/vm" --disk 1G --share "$demo/share" --timeout 600 -- "$top/qemu/guest/demo.sh"
