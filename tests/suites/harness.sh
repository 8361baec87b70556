#!/usr/bin/env bash
# Suite "harness": proves qemu/vm itself. The guest boots and runs a script with its
# arguments and environment, --disk devices appear as /dev/vdb, /dev/vdc with the right
# sizes (and a FILE disk is used in place; what the guest discards becomes zeros in it),
# device-mapper nodes and LVM volumes appear without udev, modprobe knows the kernel's built-in modules
# and loads its loadable ones (scsi_debug),
# --share content is visible both ways, the staged tools are found by `mkfs -t` /
# `fsck -t`, the root image is never modified, the script's exit status comes back, and a
# kernel panic (its console log is kept), a kernel console WARNING and a timeout each fail
# the run; --kill-after cuts a run short (exit 137); --cache sets the disks' cache mode;
# --module stages another module, and so do AEGISFS_VM_MODULE and AEGISFS_VM_KERNEL
# (their errors and AEGISFS_VM_TIME_SCALE's are usage errors).
# Prints one `ok harness/<case>` or `not ok harness/<case>: <reason>` line per case.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
vm=$top/qemu/vm
kernel=$build/linux-obj/arch/x86/boot/bzImage
rootfs=$build/guest/rootfs.img

for f in "$kernel" "$rootfs"; do
    [ -f "$f" ] || { echo "harness: $f missing (run make setup)" >&2; exit 1; }
done
mkdir -p "$build/tests"
# A directory of its own, so that runs in parallel (two `make test` in one tree) do not
# collide; kept only when asked (AEGISFS_KEEP=1), like the other suites' directories.
work=$(mktemp -d "$build/tests/harness.XXXXXX")
[ "${AEGISFS_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/share" "$work/build/target/release" "$work/build/module"

ok() { echo "ok harness/$1"; }
not_ok() {
    echo "not ok harness/$1: $2"
    [ -z "${3:-}" ] || sed 's/^/    | /' "$3"
}

token=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

# Stand-ins for the real tools and module: this suite tests how qemu/vm stages them, not
# the tools themselves, so it does not depend on their state.
cat > "$work/build/target/release/mkfs.aegisfs" <<'EOF'
#!/bin/sh
echo "staged mkfs.aegisfs $*"
EOF
cat > "$work/build/target/release/fsck.aegisfs" <<'EOF'
#!/bin/sh
echo "staged fsck.aegisfs $*"
exit 4
EOF
chmod +x "$work/build/target/release/"*.aegisfs
echo "module stand-in $token" > "$work/build/module/aegisfs.ko"
echo "$token" > "$work/share/from-host.txt"

# A FILE disk: the guest must read what the host wrote and the host must see the reply.
disk_file=$work/disk-file.img
truncate -s 32M "$disk_file"
printf 'host-%s' "$token" | dd of="$disk_file" bs=1 seek=1048576 conv=notrunc status=none
# 1 MiB of data at 8 MiB that the guest discards: it must become a hole (zeros).
head -c 1048576 /dev/urandom | dd of="$disk_file" bs=1M seek=8 conv=notrunc status=none

# The timeout case mostly sleeps, so it runs alongside the others.
cat > "$work/sleep.sh" <<'EOF'
echo "sleeping"
sleep 600
EOF
start_timeout=$(date +%s)
"$vm" --timeout 20 "$work/sleep.sh" > "$work/timeout.out" 2>&1 &
timeout_pid=$!

cat > "$work/main.sh" <<'EOF'
#!/bin/bash
# Prints key=value facts for the host to judge.
echo "booted=yes"
printf 'arg=%s\n' "$@"
echo "term=$TERM home=$HOME user=$(id -u) cwd=$PWD"
echo "path_first=${PATH%%:*}"
echo "ko=$AEGISFS_KO sum=$(md5sum < "$AEGISFS_KO" | cut -d' ' -f1)"
echo "disks=$AEGISFS_DISKS"
echo "vdb_size=$(blockdev --getsize64 /dev/vdb)"
echo "vdc_size=$(blockdev --getsize64 /dev/vdc)"
echo "vdc_data=$(dd if=/dev/vdc bs=1 skip=1048576 count=21 status=none)"
printf 'guest-%s' "$(cat /share/from-host.txt)" | dd of=/dev/vdc bs=1 seek=2097152 conv=notrunc,fsync status=none
echo "discard_max=$(cat /sys/block/vdc/queue/discard_max_bytes)"
blkdiscard -o 8388608 -l 1048576 /dev/vdc && echo "blkdiscard=ok"
dmsetup create harness-linear --table "0 2048 linear /dev/vdb 0" &&
    echo "dm_size=$(blockdev --getsize64 /dev/mapper/harness-linear)" &&
    dmsetup remove harness-linear
# LVM without udev (xfstests makes volume groups and snapshots).
if pvcreate -q -f /dev/vdb >/dev/null && vgcreate -q harness-vg /dev/vdb >/dev/null &&
   lvcreate -q -y -L 8M -n lv harness-vg >/dev/null; then
    echo "lvm_size=$(blockdev --getsize64 /dev/harness-vg/lv)"
    lvremove -q -f harness-vg/lv >/dev/null && vgremove -q -f harness-vg >/dev/null &&
        pvremove -q /dev/vdb >/dev/null && [ ! -e /dev/harness-vg/lv ] && echo "lvm_removed=yes"
fi
echo "thin_check=$(thin_check -V 2>&1 | head -n 1)"
modprobe ext4 && modprobe dm-flakey && echo "modprobe=ok"
# A loadable module of the kernel: scsi_debug's disk shows up (as sdX) with the geometry
# asked for, and goes away with the module.
if modprobe scsi_debug dev_size_mb=16 sector_size=4096; then
    for _ in $(seq 50); do
        sd=$(grep -lw scsi_debug /sys/block/sd*/device/model 2>/dev/null | head -n 1 | cut -d/ -f4)
        [ -n "$sd" ] && [ -b "/dev/$sd" ] && break
        sleep 0.2
    done
    [ -n "$sd" ] && echo "scsi_debug=$(blockdev --getss --getsize64 "/dev/$sd" | tr '\n' ' ')"
    rmmod scsi_debug && [ ! -e "/sys/block/$sd" ] && echo "scsi_debug_gone=yes"
fi
echo "share=$(cat /share/from-host.txt)"
echo "$1" > /share/from-guest.txt
echo "mkfs=$(mkfs -t aegisfs /dev/vdb 2>&1)"
fsck_out=$(fsck -T -t aegisfs /dev/vdb 2>&1); fsck_rc=$?
echo "fsck=$fsck_out rc=$fsck_rc"
[ -e /harness-marker ] && echo "root_marker=present" || echo "root_marker=absent"
touch /harness-marker
echo "scriptdir=$(dirname "$0")"
exit 0
EOF
chmod +x "$work/main.sh"

BUILD=$work/build "$vm" --kernel "$kernel" --rootfs "$rootfs" \
    --disk 96M --disk "$disk_file" --share "$work/share" \
    "$work/main.sh" "$token" "two words" "" "-x" > "$work/main.out" 2>&1
main_rc=$?
fact() { sed -n "s/^$1=//p" "$work/main.out" | head -n 1; }

if [ $main_rc = 0 ] && [ "$(fact booted)" = yes ]; then
    ok boot
else
    not_ok boot "qemu/vm exited $main_rc" "$work/main.out"
fi

want_args=$(printf 'arg=%s\n' "$token" "two words" "" "-x")
if [ "$(grep '^arg=' "$work/main.out")" = "$want_args" ]; then
    ok args
else
    not_ok args "arguments did not arrive intact" "$work/main.out"
fi

env_line=$(fact term)
if [ "$env_line" = "dumb home=/root user=0 cwd=/root" ] && [ "$(fact path_first)" = /opt/aegisfs/bin ] &&
   [ "$(fact scriptdir)" = /opt/aegisfs/script ]; then
    ok environment
else
    not_ok environment "got TERM=$env_line, PATH first $(fact path_first), script dir $(fact scriptdir)"
fi

vdb=$(fact vdb_size) vdc=$(fact vdc_size)
if [ "$vdb" = $((96 << 20)) ] && [ "$vdc" = $((32 << 20)) ] && [ "$(fact disks)" = "/dev/vdb /dev/vdc" ]; then
    ok disk-sizes
else
    not_ok disk-sizes "/dev/vdb $vdb bytes (want $((96 << 20))), /dev/vdc $vdc (want $((32 << 20))), AEGISFS_DISKS '$(fact disks)'"
fi

if [ "$(fact dm_size)" = 1048576 ]; then
    ok device-mapper
else
    not_ok device-mapper "/dev/mapper node of a 1 MiB linear target: '$(fact dm_size)' bytes"
fi

if [ "$(fact lvm_size)" = $((8 << 20)) ] && [ "$(fact lvm_removed)" = yes ] &&
   [[ "$(fact thin_check)" =~ ^[0-9]+\.[0-9]+ ]]; then
    ok lvm
else
    not_ok lvm "logical volume of 8 MiB: '$(fact lvm_size)' bytes, removed: '$(fact lvm_removed)', thin_check -V: '$(fact thin_check)'" "$work/main.out"
fi

if [ "$(fact modprobe)" = ok ]; then
    ok modprobe-builtin
else
    not_ok modprobe-builtin "modprobe ext4 / dm-flakey (built into the kernel) failed" "$work/main.out"
fi

if [ "$(fact scsi_debug)" = "4096 16777216 " ] && [ "$(fact scsi_debug_gone)" = yes ]; then
    ok modprobe-loadable
else
    not_ok modprobe-loadable "scsi_debug disk: sector size and bytes '$(fact scsi_debug)', removed with the module: '$(fact scsi_debug_gone)'" "$work/main.out"
fi

back=$(dd if="$disk_file" bs=1 skip=2097152 count=22 status=none)
if [ "$(fact vdc_data)" = "host-$token" ] && [ "$back" = "guest-$token" ]; then
    ok disk-file-in-place
else
    not_ok disk-file-in-place "guest read '$(fact vdc_data)', host read back '$back'"
fi

zeros=$(dd if="$disk_file" bs=1M skip=8 count=1 status=none | tr -d '\0' | wc -c)
if [ "$(fact blkdiscard)" = ok ] && [ "$(fact discard_max)" -gt 0 ] 2>/dev/null && [ "$zeros" = 0 ]; then
    ok disk-discard
else
    not_ok disk-discard "discard_max_bytes '$(fact discard_max)', blkdiscard '$(fact blkdiscard)', $zeros non-zero bytes left in the discarded MiB"
fi

if [ "$(fact share)" = "$token" ] && [ "$(cat "$work/share/from-guest.txt" 2>/dev/null)" = "$token" ]; then
    ok share
else
    not_ok share "guest saw '$(fact share)', host got '$(cat "$work/share/from-guest.txt" 2>/dev/null)'"
fi

want_sum=$(md5sum < "$work/build/module/aegisfs.ko" | cut -d' ' -f1)
if [ "$(fact mkfs)" = "staged mkfs.aegisfs /dev/vdb" ] &&
   [ "$(fact fsck)" = "staged fsck.aegisfs /dev/vdb rc=4" ] &&
   [ "$(fact ko)" = "/opt/aegisfs/aegisfs.ko sum=$want_sum" ]; then
    ok staged-tools
else
    not_ok staged-tools "mkfs: '$(fact mkfs)', fsck: '$(fact fsck)', module: '$(fact ko)'"
fi

cat > "$work/status.sh" <<'EOF'
[ -e /harness-marker ] && echo "root_marker=present" || echo "root_marker=absent"
echo "ko=$AEGISFS_KO sum=$(md5sum < "$AEGISFS_KO" | cut -d' ' -f1)"
echo "about to exit 42"
exit 42
EOF
echo "other module stand-in $token" > "$work/other.ko"
"$vm" --module "$work/other.ko" "$work/status.sh" > "$work/status.out" 2>&1
status_rc=$?
if [ $status_rc = 42 ] && grep -qx "about to exit 42" "$work/status.out"; then
    ok exit-status
else
    not_ok exit-status "qemu/vm exited $status_rc, want 42" "$work/status.out"
fi

# --module stages that file in place of build/module/aegisfs.ko.
want_sum=$(md5sum < "$work/other.ko" | cut -d' ' -f1)
if grep -qx "ko=/opt/aegisfs/aegisfs.ko sum=$want_sum" "$work/status.out"; then
    ok module-option
else
    not_ok module-option "the guest's module is not the --module file" "$work/status.out"
fi

# The first run created /harness-marker; snapshot=on must have thrown it away.
if [ "$(fact root_marker)" = absent ] && grep -qx "root_marker=absent" "$work/status.out"; then
    ok root-image-unchanged
else
    not_ok root-image-unchanged "a file created by one run was visible to the next"
fi

cat > "$work/panic.sh" <<'EOF'
echo "crashing the kernel"
echo c > /proc/sysrq-trigger
echo "still alive"
EOF
start=$(date +%s)
"$vm" "$work/panic.sh" > "$work/panic.out" 2>&1
panic_rc=$?
took=$(( $(date +%s) - start ))
if [ $panic_rc != 0 ] && [ $panic_rc != 124 ] && grep -q "Kernel panic" "$work/panic.out" &&
   ! grep -q "still alive" "$work/panic.out"; then
    ok panic-detected
else
    not_ok panic-detected "qemu/vm exited $panic_rc after $took s" "$work/panic.out"
fi

# The failed run's whole console log is kept for a post-mortem.
kept=$(sed -n 's/^vm: full console log: //p' "$work/panic.out")
if [ -n "$kept" ] && grep -q "sysrq: Trigger a crash" "$kept" 2>/dev/null; then
    ok failed-run-log-kept
else
    not_ok failed-run-log-kept "no console log with the crash kept (path: '$kept')" "$work/panic.out"
fi

# A report on the kernel console fails the run even though the script exits 0. Lines
# written to /dev/kmsg reach the console exactly like the kernel's own WARN() output.
cat > "$work/warn.sh" <<'EOF'
echo "WARNING: CPU: 0 PID: 1 at harness/suite.c:1 injected by the harness suite" > /dev/kmsg
exit 0
EOF
"$vm" "$work/warn.sh" > "$work/warn.out" 2>&1
warn_rc=$?
if [ $warn_rc = 125 ] && grep -q "injected by the harness suite" "$work/warn.out"; then
    ok console-warning-detected
else
    not_ok console-warning-detected "qemu/vm exited $warn_rc, want 125" "$work/warn.out"
fi

# --kill-after: QEMU is killed that long after the script started (a power cut), the run
# exits 137, and a script that ends first returns its own status.
printf 'echo "about to be cut"\nsleep 600\n' > "$work/killed.sh"
start_kill=$(date +%s)
"$vm" --kill-after 3 --timeout 120 "$work/killed.sh" > "$work/killed.out" 2>&1
kill_rc=$?
kill_took=$(( $(date +%s) - start_kill ))
if [ $kill_rc = 137 ] && grep -q "about to be cut" "$work/killed.out" && [ $kill_took -lt 100 ]; then
    ok kill-after
else
    not_ok kill-after "qemu/vm exited $kill_rc after $kill_took s, want 137 well before the timeout" "$work/killed.out"
fi
printf 'exit 7\n' > "$work/quick.sh"
"$vm" --kill-after 60 "$work/quick.sh" > "$work/quick.out" 2>&1
quick_rc=$?
if [ $quick_rc = 7 ]; then ok kill-after-not-reached
else not_ok kill-after-not-reached "qemu/vm exited $quick_rc, want the script's 7" "$work/quick.out"; fi

# --cache: QEMU accepts the mode for the --disk images (a bad drive option would fail the
# boot), and a mode QEMU does not have is a usage error.
"$vm" --cache writeback --disk 16M "$work/quick.sh" > "$work/cache.out" 2>&1
cache_rc=$?
"$vm" --cache sometimes "$work/quick.sh" > "$work/cache-bad.out" 2>&1
cache_bad_rc=$?
if [ $cache_rc = 7 ] && [ $cache_bad_rc = 2 ]; then ok cache-mode
else not_ok cache-mode "qemu/vm --cache writeback exited $cache_rc (want 7), --cache sometimes $cache_bad_rc (want 2)" "$work/cache.out"; fi

# The environment's defaults (make test-debug): AEGISFS_VM_MODULE replaces the staged
# module (a missing file stages none), AEGISFS_VM_KERNEL a missing kernel and a bad
# AEGISFS_VM_TIME_SCALE are usage errors.
printf '[ -e "$AEGISFS_KO" ] && exit 1\nexit 7\n' > "$work/no-module.sh"
AEGISFS_VM_MODULE=$work/none.ko "$vm" "$work/no-module.sh" > "$work/env.out" 2>&1
env_module_rc=$?
AEGISFS_VM_KERNEL=$work/none "$vm" "$work/quick.sh" >> "$work/env.out" 2>&1
env_kernel_rc=$?
AEGISFS_VM_TIME_SCALE=0 "$vm" "$work/quick.sh" >> "$work/env.out" 2>&1
env_scale_rc=$?
if [ $env_module_rc = 7 ] && [ $env_kernel_rc = 2 ] && [ $env_scale_rc = 2 ]; then ok env-defaults
else not_ok env-defaults "AEGISFS_VM_MODULE exited $env_module_rc (want 7), AEGISFS_VM_KERNEL $env_kernel_rc (want 2), AEGISFS_VM_TIME_SCALE=0 $env_scale_rc (want 2)" "$work/env.out"; fi

wait $timeout_pid
timeout_rc=$?
took=$(( $(date +%s) - start_timeout ))
# Before killing QEMU, qemu/vm asks the guest for its blocked tasks (SysRq w).
if [ $timeout_rc = 124 ] && grep -q "timeout after 20 s" "$work/timeout.out" &&
   grep -q "sysrq: Show Blocked State" "$work/timeout.out"; then
    ok timeout
else
    not_ok timeout "qemu/vm exited $timeout_rc after $took s, want 124 and a SysRq dump" "$work/timeout.out"
fi
exit 0
