#!/bin/bash
# Guest half of tests/suites/fileops.sh: loads the module and runs fileops.py on /dev/vdb
# (which makes the filesystem itself). qemu/vm's --fsck checks /dev/vdb afterwards.
set -u
suite=fileops
. "$(dirname "$0")/lib.sh"
if out=$(insmod "$AEGISFS_KO" 2>&1); then ok insmod; else fail insmod "$out"; exit 0; fi
python3 "$(dirname "$0")/fileops.py"
exit 0
