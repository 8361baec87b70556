#!/usr/bin/env bash
# Builds the Debian guest root image that qemu/vm boots (build/guest/rootfs.img), once.
# The image holds only packages and a tiny /sbin/aegisfs-init; everything per run (the real
# init qemu/guest/init, the module, the tools, the script) arrives over 9p from qemu/vm, so
# changing those never rebuilds the image. A stamp hashing this script's inputs decides
# rebuilds; downloaded .debs are kept in build/guest/debs for the next rebuild.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
out=$build/guest
image=$out/rootfs.img
stamp=$out/rootfs.stamp
image_size=1536M

. /etc/os-release
codename=${VERSION_CODENAME:?unknown Debian release}
sources=/etc/apt/sources.list.d/debian.sources
# Reuse the mirror this machine already trusts for its own release (deb822 format, or the
# one-line format of older installations).
mirror=$(awk -v c="$codename" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==c){print u; exit}}' \
    "$sources" 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(sed -E 's/\[[^]]*\]//' /etc/apt/sources.list 2>/dev/null |
    awk -v c="$codename" '$1 == "deb" && $3 == c {print $2; exit}' || true)
[ -n "$mirror" ] || { echo "build-rootfs: no Debian source for $codename in the apt sources" >&2; exit 1; }

# minbase already has bash, coreutils, grep, sed, mawk, perl-base, diffutils, findutils.
# The rest is what the harness, the suites and xfstests use in the guest; busybox only
# provides poweroff (there is no init system in the guest); linux-perf profiles the
# kernel for `make bench` (software clock events: TCG has no PMU).
packages=(bash coreutils util-linux mount e2fsprogs fio python3 kmod procps psmisc xfsprogs
    acl attr bc dmsetup quota keyutils libcap2-bin uuid-runtime xz-utils libaio1 liburing2
    libgdbm6 libgdbm-compat4 libacl1 libattr1 gawk perl busybox file strace
    lvm2 thin-provisioning-tools linux-perf)

want=$( { cat "$0"; echo "$codename $mirror"; } | sha256sum | cut -d' ' -f1)
mkdir -p "$out"
# Concurrent callers wait for one build instead of racing on the same tree.
exec 9> "$out/.lock"
flock 9
if [ -f "$image" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi

PATH=$PATH:/usr/sbin:/sbin
for tool in debootstrap mkfs.ext4; do
    command -v "$tool" >/dev/null || { echo "build-rootfs: $tool missing (run qemu/setup-host.sh)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "build-rootfs: debootstrap needs root" >&2; exit 1; }

start=$(date +%s)
echo "build-rootfs: building the $codename guest image (a few minutes, once)"
mkdir -p "$out/debs"
tree=$out/tree
rm -rf "$image.tmp" "$stamp"
include=$(IFS=,; echo "${packages[*]}")

bootstrap() {
    rm -rf "$tree"
    mkdir -p "$tree/etc/dpkg/dpkg.cfg.d"
    # The image is thrown away on any failure, so dpkg's fsyncs only cost time.
    echo force-unsafe-io > "$tree/etc/dpkg/dpkg.cfg.d/unsafe-io"
    debootstrap --variant=minbase --include="$include" --cache-dir="$out/debs" \
        "$codename" "$tree" "$mirror" > "$out/debootstrap.log" 2>&1
}

# A second attempt rides out a network hiccup; the .debs already fetched are reused.
if ! bootstrap && ! { echo "build-rootfs: debootstrap failed, retrying once" >&2; bootstrap; }; then
    tail -n 30 "$out/debootstrap.log" >&2
    [ -f "$tree/debootstrap/debootstrap.log" ] && tail -n 30 "$tree/debootstrap/debootstrap.log" >&2
    echo "build-rootfs: debootstrap failed (full log: build/guest/debootstrap.log)" >&2
    exit 1
fi

# Trim what a test guest never reads; the apt lists and .debs are large.
rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/* \
    "$tree"/usr/share/doc/* "$tree"/usr/share/man/* "$tree"/usr/share/info/* \
    "$tree"/usr/share/locale/* "$tree"/var/log/*.log "$tree"/var/cache/debconf/*-old

echo aegisfs-guest > "$tree/etc/hostname"
printf '127.0.0.1 localhost aegisfs-guest\n' > "$tree/etc/hosts"
ln -sf /proc/self/mounts "$tree/etc/mtab"
: > "$tree/etc/fstab"
mkdir -p "$tree/opt/aegisfs" "$tree/share"
# There is no udev in the guest: LVM makes its device nodes itself and starts no daemon.
cat > "$tree/etc/lvm/lvm.conf" <<'EOF'
devices {
    obtain_device_list_from_udev = 0
}
activation {
    udev_sync = 0
    udev_rules = 0
    monitoring = 0
}
EOF
# The unprivileged users and group xfstests runs its permission tests as.
chroot "$tree" useradd -m -s /bin/bash fsgqa
chroot "$tree" useradd -m -s /bin/bash fsgqa2
chroot "$tree" useradd --badname -m -s /bin/bash 123456-fsgqa

# PID 1 stub: mounts the per-run harness share and hands over to its init. Kept minimal so
# the harness logic (qemu/guest/init) can change without rebuilding this image.
cat > "$tree/sbin/aegisfs-init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 aegisfs /opt/aegisfs &&
   [ -x /opt/aegisfs/init ]; then
    exec /opt/aegisfs/init
fi
echo "aegisfs-init: harness share missing; powering off" > /dev/console
exec busybox poweroff -f
EOF
chmod 755 "$tree/sbin/aegisfs-init"

truncate -s "$image_size" "$image.tmp"
mkfs.ext4 -q -F -L aegisfs-root -d "$tree" "$image.tmp"
mv "$image.tmp" "$image"
rm -rf "$tree"
echo "$want" > "$stamp"
echo "build-rootfs: $image ready in $(( $(date +%s) - start )) s"
