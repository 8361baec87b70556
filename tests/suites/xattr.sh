#!/usr/bin/env bash
# xattr: extended attributes and POSIX ACLs with exact results and errnos: set/get/list/
# remove in every namespace, XATTR_CREATE/XATTR_REPLACE, ENODATA/ERANGE/E2BIG/ENOSPC, many
# attributes spilling from the inode into an xattr block, large values, persistence across
# remount and FS_IOC_SHUTDOWN, directories/symlinks/devices, blocks freed on deletion,
# access and default ACLs (setfacl/getfacl), inheritance, chmod and the mask, permission
# checks as other users, noacl; on AegisFS, damaged xattrs give EUCLEAN and fsck drops them.
#
# FSTYP (default aegisfs) is the filesystem under test: `FSTYP=ext4 tests/run xattr`.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init xattr
fstyp=${FSTYP:-aegisfs}

cases=$work/cases
printf '%s\n' mkfs-mount namespaces flags errors ctime many large enospc enospc-freed file-types \
    delete-frees persist-set persist-remount crash readonly acl-access acl-equivalent \
    acl-default acl-chmod acl-persist noacl concurrent umount > "$cases"
# The layouts and corrupt cases are about AegisFS's own format (the layouts case makes
# /dev/vdc AegisFS); suite_vm's fsck -n only checks AegisFS disks.
[ "$fstyp" != aegisfs ] || printf '%s\n' layouts corrupt fsck-vdb fsck-vdc >> "$cases"
suite_vm "$cases" -- --disk 1G --disk 64M --timeout 600 -- "$top/tests/guest/xattr.py" "$fstyp"
