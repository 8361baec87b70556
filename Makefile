# AegisFS top-level Makefile.
#   make          build aegisfs.ko against KDIR (default: the project's test kernel)
#   make tools    build mkfs.aegisfs, fsck.aegisfs and aegisfs-inspect
#   make install [KDIR=/lib/modules/$(uname -r)/build] [PREFIX=/usr/local] [DESTDIR=]
#                 the module into /lib/modules/RELEASE/extra (modules_install, depmod),
#                 mkfs.aegisfs, fsck.aegisfs and aegisfs-inspect into PREFIX/sbin, the man pages into
#                 PREFIX/share/man; `make uninstall` (same variables) removes them
#   make setup    install missing packages, build the test kernel and the guest image
#   make run      setup + build, then boot QEMU and show AegisFS mounted and used
#   make test     setup + build, then cargo test and every in-guest suite
#   make crash-test  the long crash-consistency runs: powercut (200 cuts), logwrites (all points)
#   make fuzz N=10000 [SEED=S] [FUZZ_KERNEL=test]
#                 N fuzzed images (tests/suites/fuzz.sh) on the debug kernel (or the test
#                 kernel); reproducers of failures in build/fuzz/failures/
#   make bench    AegisFS, ext4, ext2 and the raw disk under the same workloads in one guest
#                 on the benchmark kernel (the test kernel without lockdep, built once);
#                 build/bench/report.md and ratios.png (bench/run --help for the settings)
#   make xfstests XFSTESTS_DIR=/path/to/built/xfstests [TESTS="generic/001 ..." | GROUP=quick]
#                 [FSTYP=ext4] [SHARD=I/N] [RUN_ID=ID]
#                 xfstests in a guest (xfstests-config/run --help); results in
#                 build/xfstests/FSTYP/RUN_ID/, RUN_ID again resumes
# Everything built lands in build/ (git-ignored) and is reused by the next run.

TOP      := $(CURDIR)
BUILD    ?= $(TOP)/build
KDIR     ?= $(BUILD)/linux-obj
MODOUT   ?= $(BUILD)/module
BENCH_KDIR   := $(BUILD)/linux-obj-bench
BENCH_MODOUT := $(BUILD)/module-bench
DEBUG_KDIR   := $(BUILD)/linux-obj-debug
DEBUG_MODOUT := $(BUILD)/module-debug
# Kernel-side Rust needs the compiler the kernel was built with (see qemu/toolchain.env).
KRUSTC   ?= /usr/bin/rustc
KRUSTLIB ?= $(lastword $(sort $(wildcard /usr/src/rustc-*/library)))
KBINDGEN ?= $(or $(shell command -v bindgen 2>/dev/null),$(HOME)/.cargo/bin/bindgen)
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib

# KCC_VARS: LLVM=-19 for a kernel built with clang (the debug kernel).
KMAKE = $(MAKE) -C $(KDIR) M=$(TOP) MO=$(MODOUT) \
	RUSTC=$(KRUSTC) BINDGEN=$(KBINDGEN) RUST_LIB_SRC=$(KRUSTLIB) $(KCC_VARS)

.PHONY: all module tools install uninstall setup kernel guest run test test-debug fuzz crash-test \
	bench xfstests clean

all: module

module:
	@mkdir -p $(MODOUT)
	$(KMAKE) modules

# Cargo forbids dots in binary names; util-linux's mkfs/fsck look for mkfs.TYPE and fsck.TYPE.
# aegisfs-inspect keeps its name (it does not end in -aegisfs).
TOOLS_OUT := $(BUILD)/target/release
tools:
	cargo build --release --workspace --bins
	@for b in $(TOOLS_OUT)/*-aegisfs; do ln -f "$$b" "$(TOOLS_OUT)/$$(basename "$$b" -aegisfs).aegisfs"; done

# Installation. DESTDIR stages a tree for a package: depmod is then left to the package's
# installation (it would index only this module).
PREFIX   ?= /usr/local
SBINDIR  := $(PREFIX)/sbin
MANDIR   := $(PREFIX)/share/man
TOOLS    := mkfs.aegisfs fsck.aegisfs aegisfs-inspect
MANPAGES := man/mkfs.aegisfs.8 man/fsck.aegisfs.8 man/aegisfs-inspect.8 man/aegisfs.5
KRELEASE  = $(shell cat $(KDIR)/include/config/kernel.release 2>/dev/null)
MODDIR    = $(DESTDIR)/lib/modules/$(KRELEASE)/extra
# Where man page $(1) (man/NAME.SECTION) is installed.
man_dest  = $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(1)))/$(notdir $(1))
install: module tools
	$(KMAKE) modules_install INSTALL_MOD_PATH=$(DESTDIR) INSTALL_MOD_DIR=extra \
		$(if $(DESTDIR),DEPMOD=true)
	for t in $(TOOLS); do install -D -m 755 $(TOOLS_OUT)/$$t $(DESTDIR)$(SBINDIR)/$$t; done
	$(foreach m,$(MANPAGES),install -D -m 644 $(m) $(call man_dest,$(m)) &&) true
	@echo "aegisfs.ko installed for kernel $(KRELEASE) in $(MODDIR)"
	@[ "$(KRELEASE)" = "$$(uname -r)" ] || echo "note: the running kernel is $$(uname -r);" \
		"modprobe finds aegisfs once $(KRELEASE) runs (or build with KDIR=/lib/modules/\$$(uname -r)/build)"

uninstall:
	rm -f $(MODDIR)/aegisfs.ko $(MODDIR)/aegisfs.ko.gz $(MODDIR)/aegisfs.ko.xz \
		$(MODDIR)/aegisfs.ko.zst
	$(if $(DESTDIR),,[ -z "$(KRELEASE)" ] || depmod -a $(KRELEASE))
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(TOOLS))
	rm -f $(foreach m,$(MANPAGES),$(call man_dest,$(m)))

kernel:
	qemu/setup-host.sh
	qemu/build-kernel.sh

guest: kernel
	qemu/build-rootfs.sh

setup: guest

run: setup
	$(MAKE) module tools
	qemu/demo.sh

test: setup
	$(MAKE) module tools
	tests/run

# The guest suites on the debug kernel (qemu/kernel-debug.config), with timeouts 4 times
# longer and 5 minutes of parallel stress; not harness (it times qemu/vm itself) nor the
# suites without a guest.
DEBUG_SUITES ?= read-path cycles corrupt fuzz write fileops posix xattr dirindex trim shutdown \
	stress logwrites powercut staledata
test-debug: setup
	KERNEL_FLAVOUR=debug qemu/build-kernel.sh
	$(MAKE) module KDIR=$(DEBUG_KDIR) MODOUT=$(DEBUG_MODOUT) KCC_VARS=LLVM=-19
	$(MAKE) tools
	AEGISFS_VM_KERNEL=$(DEBUG_KDIR)/arch/x86/boot/bzImage \
	AEGISFS_VM_MODULE=$(DEBUG_MODOUT)/aegisfs.ko AEGISFS_VM_TIME_SCALE=4 \
	STRESS_PARALLEL_SECONDS=300 tests/run $(DEBUG_SUITES)

# Images fuzzed, the seed (random unless given) and the kernel: debug (KASAN, KFENCE, UBSAN,
# lockdep; about 4 times slower) or test.
N ?= 1000
SEED ?= $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
FUZZ_KERNEL ?= debug
fuzz: setup
ifeq ($(FUZZ_KERNEL),debug)
	KERNEL_FLAVOUR=debug qemu/build-kernel.sh
	$(MAKE) module KDIR=$(DEBUG_KDIR) MODOUT=$(DEBUG_MODOUT) KCC_VARS=LLVM=-19
	$(MAKE) tools
	AEGISFS_VM_KERNEL=$(DEBUG_KDIR)/arch/x86/boot/bzImage \
	AEGISFS_VM_MODULE=$(DEBUG_MODOUT)/aegisfs.ko AEGISFS_VM_TIME_SCALE=4 \
	FUZZ_IMAGES=$(N) FUZZ_SEED=$(SEED) tests/run fuzz
else
	$(MAKE) module tools
	FUZZ_IMAGES=$(N) FUZZ_SEED=$(SEED) tests/run fuzz
endif

crash-test: setup
	$(MAKE) module tools
	POWERCUT_RUNS=200 LOGWRITES_POINTS=0 tests/run powercut logwrites

bench: setup
	KERNEL_FLAVOUR=bench qemu/build-kernel.sh
	$(MAKE) module KDIR=$(BENCH_KDIR) MODOUT=$(BENCH_MODOUT)
	$(MAKE) tools
	BENCH_KERNEL=$(BENCH_KDIR) BENCH_MODULE=$(BENCH_MODOUT)/aegisfs.ko bench/run

# TESTS, GROUP, FSTYP, SHARD and RUN_ID given to make reach the runner's environment.
ifneq ($(filter xfstests,$(MAKECMDGOALS)),)
ifeq ($(XFSTESTS_DIR),)
$(error make xfstests: set XFSTESTS_DIR to a built xfstests tree (README, section xfstests))
endif
endif
xfstests: setup
	$(MAKE) module tools
	XFSTESTS_DIR="$(XFSTESTS_DIR)" xfstests-config/run

clean:
	rm -rf $(MODOUT) $(BENCH_MODOUT) $(DEBUG_MODOUT) $(BUILD)/target
