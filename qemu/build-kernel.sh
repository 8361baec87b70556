#!/usr/bin/env bash
# Fetches Debian's linux-source package and builds an AegisFS kernel into build/: with
# KERNEL_FLAVOUR=test (the default) the test kernel in build/linux-obj (qemu/kernel.config),
# with KERNEL_FLAVOUR=bench the benchmark kernel in build/linux-obj-bench (the same options
# with the checking ones of qemu/kernel-bench.config turned off and the architecture's CRC
# code on), with KERNEL_FLAVOUR=debug the debug kernel in build/linux-obj-debug (the test
# kernel's options plus the memory checkers of qemu/kernel-debug.config: KASAN, KFENCE,
# UBSAN, kmemleak).
# Skips everything that is already up to date.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
src=$build/linux-src
cc_vars=()
case ${KERNEL_FLAVOUR:-test} in
    test) obj=$build/linux-obj; fragments=("$top/qemu/kernel.config") ;;
    bench) obj=$build/linux-obj-bench; fragments=("$top/qemu/kernel.config" "$top/qemu/kernel-bench.config") ;;
    # KASAN with Rust needs the C side built by clang too (init/Kconfig: RUST).
    debug) obj=$build/linux-obj-debug; fragments=("$top/qemu/kernel.config" "$top/qemu/kernel-debug.config"); cc_vars=(LLVM=-19) ;;
    *) echo "build-kernel: KERNEL_FLAVOUR is test, bench or debug, not ${KERNEL_FLAVOUR}" >&2; exit 2 ;;
esac
preferred=${KERNEL_SERIES:-7.3}
mkdir -p "$build/dl"

if [ ! -f "$src/Makefile" ]; then
    # Prefer the series the project is tested with, else the newest 7.x available.
    pkg=linux-source-$preferred
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
        pkg=$(apt-cache pkgnames linux-source-7. | sort -V | tail -n 1)
        [ -n "$pkg" ] || { echo "build-kernel: no linux-source-7.* package available" >&2; exit 1; }
        echo "build-kernel: $preferred is gone from the archive, using $pkg" >&2
    fi
    echo "build-kernel: kernel source from Debian package $pkg"
    (cd "$build/dl" && rm -f linux-source-*.deb && apt-get download -q "$pkg")
    rm -rf "$build/dl/unpacked" "$src.tmp"
    dpkg-deb -x "$build/dl"/linux-source-*.deb "$build/dl/unpacked"
    mkdir -p "$src.tmp"
    tar -xf "$build/dl"/unpacked/usr/src/linux-source-*.tar.xz -C "$src.tmp" --strip-components=1
    rm -rf "$build/dl/unpacked" "$src"
    mv "$src.tmp" "$src"
fi

. "$top/qemu/toolchain.env"
kmake=(make -C "$src" O="$obj" "${KERNEL_MAKE_VARS[@]}" "${cc_vars[@]}")

stamp=$obj/.aegisfs-config-stamp
want=$(cat "${fragments[@]}" "$0" | sha256sum | cut -d' ' -f1)
if [ ! -f "$obj/.config" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    mkdir -p "$obj"
    "${kmake[@]}" -s tinyconfig
    "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "${fragments[@]}" >/dev/null
    "${kmake[@]}" -s olddefconfig
    # merge_config.sh only warns; a dropped option would silently weaken the tests. The
    # last fragment that sets an option has the last word.
    missing=0
    while read -r name value; do
        if [ "$value" = n ]; then
            ! grep -qE "^$name=[ym]\$" "$obj/.config" || { echo "build-kernel: $name=n did not stick" >&2; missing=1; }
        else
            grep -qx "$name=$value" "$obj/.config" || { echo "build-kernel: $name=$value did not stick" >&2; missing=1; }
        fi
    done < <(cat "${fragments[@]}" | sed -nE 's/^(CONFIG_[A-Za-z0-9_]+)=([ymn])$/\1 \2/p; s/^# (CONFIG_[A-Za-z0-9_]+) is not set$/\1 n/p' |
             awk '{if (!($1 in v)) order[++n] = $1; v[$1] = $2} END {for (i = 1; i <= n; i++) print order[i], v[order[i]]}')
    [ $missing = 0 ] || exit 1
    echo "$want" > "$stamp"
fi

if [ ! -f "$obj/arch/x86/boot/bzImage" ] || [ "$stamp" -nt "$obj/arch/x86/boot/bzImage" ]; then
    echo "build-kernel: building bzImage and modules (several minutes on 2 cores)"
    "${kmake[@]}" -s -j"$(($(nproc) + 1))" bzImage modules
    touch "$obj/arch/x86/boot/bzImage"
fi
