# SPDX-License-Identifier: GPL-2.0
#
# ept-sampler: the kernel module (Kbuild) and the userspace crates (cargo).
#
#   make                      build ept_sampler.ko for KDIR (see below)
#   make KERNEL=6.12          ... for a cached test kernel (6.12, 7.3, 7.3-debug,
#                             7.3-rt, debian-7.3)
#   make KDIR=... RUSTC=...   ... for a real host's Rust-enabled kernel tree
#   make KDIR=/usr/src/linux-headers-$(uname -r)
#                             ... for a distribution's stock Rust-enabled
#                             kernel (Debian 13's 7.3): its headers and
#                             linux-source package, the kernel's own rustc,
#                             bindgen and GCC (tree prepared once, cached)
#   make KERNEL=debian-7.3    ... for Debian 13's stock 7.3 (test kernel)
#   make tools                the userspace crates (static binaries), the
#                             tool's man pages and shell completions
#   make install              the tool (built by `make tools` before), its
#                             man pages and completions
#                             (PREFIX=/usr/local, DESTDIR), and the module
#                             for KDIR's kernel into /lib/modules/<release>/
#                             updates, then depmod (INSTALL_MOD_PATH, default
#                             DESTDIR): `modprobe ept_sampler` loads it
#   make install-tool         only the tool, its man pages and completions
#                             (built by `make tools` before)
#   make dkms-install         the module through DKMS (dkms.conf): its source
#                             in /usr/src/ept-sampler-<version>, built and
#                             installed for the running kernel (KVER), and
#                             again by DKMS for every kernel installed later
#   make dkms-uninstall       removes it from DKMS, /usr/src and every
#                             kernel, and the trees prepared for it
#   make kernels              build the test kernels (cached; minutes, once)
#   make warm                 build what the gate needs into the cache: the
#                             6.12 test kernel and Debian 13's stock 7.3 (its
#                             Rust build tree), the module for each,
#                             the tools and their tests (start it in the
#                             background at the start of a day)
#   make check                the gate, before every commit that touches
#                             code: unit, property, lints, and end-to-end on
#                             both kernels and both TDP formats (does all
#                             set-up)
#   make check-full           the whole matrix, before calling a kernel-side
#                             change done: adds 6.12 under Bochs, the 7.3
#                             debug kernel (lockdep, KASAN) and PREEMPT_RT
#                             kernel, the real guest and the eptad=0
#                             refusal under Bochs
#   make demo                 boot the 7.3 kernel on the Intel EPT testbed and
#                             show the module at work on a test VM
#   make bench                the walker benchmark
#   make lint                 rustfmt + clippy, kernel side (CLIPPY=1) and tools
#
# The module is built in out/<kernel>/, a copy of its sources, so that builds
# for several kernels never share objects.

SHELL := /bin/bash
CACHE ?= $(or $(EPT_SAMPLER_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ept-sampler)
export EPT_SAMPLER_CACHE := $(CACHE)

# --- which kernel tree ---------------------------------------------------
host_build := /lib/modules/$(shell uname -r)/build
ifdef KERNEL
  KDIR := $(CACHE)/kernels/$(KERNEL)/build
else ifndef KDIR
  # The running kernel's tree when it is Rust-enabled, else the cached
  # Debian 13 stock 7.3 (what the gate builds).
  ifneq ($(shell grep -sx CONFIG_RUST=y $(host_build)/.config),)
    KDIR := $(host_build)
  else
    KERNEL := debian-7.3
    KDIR := $(CACHE)/kernels/debian-7.3/build
  endif
endif
# A distribution's headers package of a Rust-enabled kernel (Debian 13's
# linux-headers-7.3.4+deb13-amd64) has no Rust metadata and no KVM-internal
# headers: tools/prepare-stock-kdir makes the tree the module is built
# against from the kernel's source package, once, in the cache.
ifneq ($(and $(wildcard $(KDIR)/include/config/kernel.release),$(shell grep -sx CONFIG_RUST=y $(KDIR)/.config)),)
ifeq ($(wildcard $(KDIR)/rust/libmacros.so),)
  STOCK_HEADERS := $(KDIR)
  STOCK_DEST := $(CACHE)/stock/$(shell cat $(KDIR)/include/config/kernel.release)
  override KDIR := $(STOCK_DEST)/build
endif
endif
KNAME := $(or $(KERNEL),host)
OUT := out/$(KNAME)

# A cached test kernel, or a prepared stock tree, records the toolchain that
# built it; KWRAP runs the kernel's make in a root that has that toolchain.
-include $(KDIR)/../toolchain.mk
RUSTC ?= rustc
CLIPPY_DRIVER ?= $(dir $(RUSTC))clippy-driver
kbuild_vars := LLVM=$(LLVM) RUSTC=$(RUSTC) $(if $(BINDGEN),BINDGEN=$(BINDGEN)) \
	CLIPPY_DRIVER=$(CLIPPY_DRIVER) $(KMAKE_VARS)

module_src := Kbuild ept_sampler.rs ept_walk heat kvm procfs

.PHONY: all module tools kernels warm check check-full unit e2e demo bench lint fmt fmt-check clippy-module install install-tool dkms-install dkms-uninstall clean kdir-check

all: module

# One-line answers for the two ways a module build goes wrong before it
# starts: a tree without Rust, and a rustc other than the one that built it.
kdir-check:
	@[ -f "$(KDIR)/.config" ] || { echo "ept-sampler: no kernel tree at KDIR=$(KDIR): pass KDIR=<kernel build dir>$(if $(KERNEL), or run 'make kernels')" >&2; exit 1; }
	@grep -qx CONFIG_RUST=y "$(KDIR)/.config" || { echo "ept-sampler: $(KDIR) is a kernel without CONFIG_RUST: a Rust module needs a Rust-enabled kernel and its full build tree" >&2; exit 1; }
	@[ -f "$(KDIR)/rust/libmacros.so" ] || { echo "ept-sampler: $(KDIR) has no rust/libmacros.so: it is not a built Rust-enabled tree (run 'make' there first)" >&2; exit 1; }
	@want=$$(sed -n 's/^CONFIG_RUSTC_VERSION=//p' "$(KDIR)/include/config/auto.conf" 2>/dev/null); \
	have=$$($(KWRAP) $(RUSTC) --version 2>/dev/null | sed -n 's/^rustc \([0-9]*\)\.\([0-9]*\)\.\([0-9]*\).*/\1 \2 \3/p' | { read a b c && echo $$((a * 100000 + b * 100 + c)); }); \
	[ -z "$$want" ] || [ "$$want" = "$$have" ] || { echo "ept-sampler: $(KDIR) was built with rustc $$want, RUSTC=$(RUSTC) is $${have:-missing}: pass RUSTC=<the rustc that built this kernel>" >&2; exit 1; }

ifdef STOCK_HEADERS
# The tree is prepared (or found prepared), then the module is built against
# it as against any kernel tree, with the toolchain.mk it records.
# (The script sees none of this make's variables: a RUSTC= given here must
# not be taken for the one it checks.)
module clippy-module:
	@env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL \
		tools/prepare-stock-kdir $(STOCK_HEADERS) $(STOCK_DEST) >/dev/null
	@$(MAKE) --no-print-directory $@ KDIR=$(STOCK_DEST)/build STOCK_HEADERS=
else
module: kdir-check
	@mkdir -p $(OUT)
	@cp -a $(module_src) $(OUT)/
	$(KWRAP) $(MAKE) -C $(KDIR) M=$(CURDIR)/$(OUT) $(kbuild_vars) modules
	@echo "built $(OUT)/ept_sampler.ko"
endif

# The tool's man pages and completions come from its own clap definitions.
tool_bin := target/x86_64-unknown-linux-gnu/release/ept-sampler
tools:
	cargo build --release --workspace
	@mkdir -p target/man target/completions
	$(tool_bin) man --dir target/man
	$(tool_bin) completions bash >target/completions/ept-sampler.bash
	$(tool_bin) completions zsh >target/completions/_ept-sampler
	$(tool_bin) completions fish >target/completions/ept-sampler.fish

kernels:
	tests/setup
	tests/kernels/build all

# The gate's inputs, built once into the cache and the target directory so
# that `make check` then only tests.
warm:
	tests/setup
	tests/kernels/build 6.12 debian-7.3
	$(MAKE) -s module KERNEL=6.12
	$(MAKE) -s module KERNEL=debian-7.3
	cargo build --release --workspace
	cargo test --release --workspace --no-run
	cargo clippy --release --workspace --all-targets

unit:
	cargo test --release --workspace

# The whole suite, from a fresh machine: installs, builds, tests; ends with
# one line "N passed, N failed".
check:
	tests/check

check-full:
	tests/check --full

e2e:
	tests/check --e2e-only

demo:
	tests/demo

bench:
	cargo bench -p ept-core --bench walk

lint: fmt-check clippy-module
	cargo clippy --release --workspace --all-targets -- -D warnings

fmt-check:
	cargo fmt --all --check
	rustfmt --edition 2021 --check ept_sampler.rs

# The kernel's own clippy run (CLIPPY=1) with the clippy-driver that matches
# the kernel's rustc, warnings as errors.
ifndef STOCK_HEADERS
clippy-module: kdir-check
	@mkdir -p $(OUT)-clippy && cp -a $(module_src) $(OUT)-clippy/
	$(KWRAP) $(MAKE) -s -C $(KDIR) M=$(CURDIR)/$(OUT)-clippy $(kbuild_vars) CLIPPY=1 KRUSTFLAGS=-Dwarnings modules
endif

fmt:
	cargo fmt --all
	rustfmt --edition 2021 ept_sampler.rs

PREFIX ?= /usr/local
# The module beside the kernel's own, in updates/ (where distributions put
# modules not shipped with the kernel; depmod ranks it first), and depmod
# for that kernel's release, against INSTALL_MOD_PATH when staging. Not
# signed, not compressed: see README, "On a real host".
INSTALL_MOD_PATH ?= $(DESTDIR)
install: module
	krel=$$(cat $(KDIR)/include/config/kernel.release) && \
	install -D -m 0644 $(OUT)/ept_sampler.ko $(INSTALL_MOD_PATH)/lib/modules/$$krel/updates/ept_sampler.ko && \
	depmod $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $$krel
	$(MAKE) --no-print-directory install-tool

# Built beforehand (`make tools`, as a user with cargo), installed as root,
# with the exporter's systemd unit (not enabled: `systemctl enable --now
# ept-sampler-exporter`). systemd reads units under /usr/local/lib too.
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
install-tool:
	@[ -x $(tool_bin) ] && [ -f target/completions/ept-sampler.bash ] || { echo "ept-sampler: the tool is not built: run 'make tools' first" >&2; exit 1; }
	install -D -m 0755 $(tool_bin) $(DESTDIR)$(PREFIX)/bin/ept-sampler
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 target/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -D -m 0644 target/completions/ept-sampler.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/ept-sampler
	install -D -m 0644 target/completions/_ept-sampler $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_ept-sampler
	install -D -m 0644 target/completions/ept-sampler.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/ept-sampler.fish
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|' tools/systemd/ept-sampler-exporter.service >$(DESTDIR)$(SYSTEMD_UNIT_DIR)/ept-sampler-exporter.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/ept-sampler-exporter.service

# DKMS gets the module's sources, tools/prepare-stock-kdir (which its build
# runs for a distribution's headers) and this Makefile, with dkms.conf for
# this version. A second dkms-install, or one of another version, replaces
# what DKMS had. KVER: the kernel to build for now (the running one; DKMS
# does every later one itself).
VERSION := $(shell sed -n 's/^pub const MODULE_VERSION: &str = "\(.*\)";$$/\1/p' procfs/version.rs)
KVER ?= $(shell uname -r)
dkms_src := /usr/src/ept-sampler-$(VERSION)
# Where DKMS's builds keep the trees prepared for stock kernels (dkms.conf).
dkms_cache := /var/cache/ept-sampler
# The versions of the module DKMS has.
dkms_versions = $(shell dkms status -m ept-sampler 2>/dev/null | sed -n 's|^ept-sampler/\([^,:]*\)[,:].*|\1|p' | sort -u)
# DKMS's build runs make again: nothing of this make may reach it.
dkms := env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u EPT_SAMPLER_CACHE dkms
dkms_check = @command -v dkms >/dev/null || { echo "ept-sampler: no dkms: install it (Debian: apt install dkms)" >&2; exit 1; }
dkms-install:
	$(dkms_check)
	@[ -n "$(VERSION)" ] || { echo "ept-sampler: no MODULE_VERSION in procfs/version.rs" >&2; exit 1; }
	$(foreach v,$(dkms_versions),$(dkms) remove ept-sampler/$(v) --all;)
	rm -rf /usr/src/ept-sampler-*
	install -d $(dkms_src)/tools
	cp -a Makefile $(module_src) $(dkms_src)/
	cp -a tools/prepare-stock-kdir $(dkms_src)/tools/
	sed 's/#MODULE_VERSION#/$(VERSION)/' dkms.conf >$(dkms_src)/dkms.conf
	$(dkms) add ept-sampler/$(VERSION)
	$(dkms) build ept-sampler/$(VERSION) -k $(KVER)
	$(dkms) install ept-sampler/$(VERSION) -k $(KVER)

# Every version, from every kernel, its sources, and the prepared trees.
dkms-uninstall:
	$(dkms_check)
	$(foreach v,$(dkms_versions),$(dkms) remove ept-sampler/$(v) --all;)
	rm -rf /usr/src/ept-sampler-* $(dkms_cache)/stock/*
	@rmdir $(dkms_cache)/stock $(dkms_cache) 2>/dev/null || true

clean:
	rm -rf out
	cargo clean
