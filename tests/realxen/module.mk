# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The real-Xen tier: `make check-xen` boots Debian's Xen 4.17 under
# qemu-system-x86_64 -accel tcg, runs xenram's Xen-facing tests in dom0
# against a PVH guest, lets the real xl start xenram as an HVM guest's
# device model, then boots a hypervisor built from Debian's source package
# with memory paging (build-xen.sh, cached in XEN_CACHE) for xenram's pager
# and a real postcopy, and prints `N passed, N failed` (docs/testing.md).
# Root only (it installs qemu-system-x86, busybox-static and cpio when
# missing); Debian's mirrors are the only network it uses.
#
# Downloads and unpacked packages are kept in XEN_CACHE, outside the build
# tree so that `make clean` keeps them.
XEN_CACHE ?= $(if $(HOME),$(HOME),/root)/.cache/xenram-realxen
# Seconds for the whole tier, downloads included.
XEN_TIER_TIMEOUT ?= 900

REALXEN_PROGS := $(BUILD)/realxen/xr-realxen $(BUILD)/realxen/xr-workload \
    $(BUILD)/realxen/xr-memdig $(BUILD)/realxen/xr-shell $(BUILD)/realxen/xr-pager

# The dom0 test program: libxenram + Debian's real Xen libraries.
$(BUILD)/realxen/xr-realxen: $(BUILD)/obj/tests/realxen/xr-realxen.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(LIB) $(LIB_LIBS) -lm

# xenram's pager (xen/paging.c) on a live guest: libxenram + Xen's libraries.
$(BUILD)/realxen/xr-pager: $(BUILD)/obj/tests/realxen/xr-pager.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(LIB) $(LIB_LIBS) -lm

# dom0's memory digests and QMP stop/cont for the migration checks.
$(BUILD)/realxen/xr-memdig: tests/realxen/xr-memdig.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -o $@ $< $(XEN_LIBS)

# The engine check's toolstack: the empty HVM domain shell, dom0's
# log-dirty-only writer, the HVM context comparison (libxenguest for the
# CPU policy).
$(BUILD)/realxen/xr-shell: tests/realxen/xr-shell.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -o $@ $< $(XEN_LIBS) \
	    $(call pc_libs,xenguest)

# The guest's workload: static, the guest has nothing but busybox.
$(BUILD)/realxen/xr-workload: tests/realxen/guest-workload.c xen/sim/stamp.h
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -iquote . -static -o $@ $<

.PHONY: check-xen realxen
realxen: $(BUILD)/xenram $(REALXEN_PROGS)

check-xen: realxen
	BUILD=$(BUILD) XEN_CACHE=$(XEN_CACHE) \
	    XEN_TIER_TIMEOUT=$(XEN_TIER_TIMEOUT) tests/realxen/run.sh
