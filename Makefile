# SPDX-License-Identifier: LGPL-2.1-or-later
#
# xenram top-level Makefile (GNU make).
#
#   make                          build/libxenram.a, the programs, the simulator
#   make check                    build and run every test (unit, stress, ...)
#   make check SANITIZE=address,undefined
#                                 the same under ASan+UBSan (in build/san-*)
#   make check-tsan               the concurrency tests under ThreadSanitizer
#   make check-valgrind           the unit tests under valgrind
#   make bench                    build and run the benchmarks
#   make install PREFIX=/usr DESTDIR=/tmp/stage
#
# Each module adds its sources in its own module.mk; see the includes below.

.DEFAULT_GOAL := all
.SUFFIXES:
.DELETE_ON_ERROR:
.SECONDARY:

VERSION     := 0.1.0
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
# Debian's multiarch library directory (lib/x86_64-linux-gnu), as
# dpkg-architecture says, else the compiler; plain lib where neither knows.
MULTIARCH   ?= $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || \
                       $(CC) -print-multiarch 2>/dev/null)
LIBDIR      ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
# Programs that are not commands: the demonstration (Debian's libexec).
LIBEXECDIR  ?= $(PREFIX)/libexec/xenram
INCLUDEDIR  ?= $(PREFIX)/include
MANDIR      ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR     ?=

CC          ?= cc
PKG_CONFIG  ?= pkg-config
SANITIZE    ?=
comma       := ,
TSAN        ?=
WERROR      ?= 1

# Sanitizer builds live beside the normal one so that switching is cheap.
ifneq ($(TSAN),)
BUILD       ?= build/tsan
SAN_FLAGS   := -fsanitize=thread
else ifneq ($(SANITIZE),)
BUILD       ?= build/san-$(subst $(comma),-,$(SANITIZE))
SAN_FLAGS   := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
               -fno-sanitize-recover=all
else
BUILD       ?= build
SAN_FLAGS   :=
endif


# Debian's libxen-dev and friends, found through pkg-config.
XEN_PKGS    := xencontrol xenforeignmemory xendevicemodel xenevtchn xenstore \
               xentoolcore
URCU_PKG    := liburcu-memb
TEST_PKGS   := cmocka

pc_cflags    = $(shell $(PKG_CONFIG) --cflags $(1))
pc_libs      = $(shell $(PKG_CONFIG) --libs $(1))

OPT         ?= -O2
WARN        := -Wall -Wextra -Wshadow -Wstrict-prototypes \
               -Wmissing-prototypes -Wno-missing-field-initializers
ifneq ($(WERROR),0)
WARN        += -Werror
endif
# Every path is relative to the top so that "dirty/dirty.h" works anywhere;
# -iquote, not -I, so that <xen/...> still means Xen's public headers.
XR_CFLAGS   := -std=gnu11 $(OPT) -g $(WARN) -pthread -iquote . -MMD -MP \
               -D_GNU_SOURCE $(SAN_FLAGS) $(call pc_cflags,$(URCU_PKG))
XR_LDFLAGS  := -pthread $(SAN_FLAGS)
URCU_LIBS   := $(call pc_libs,$(URCU_PKG))
# Well-kept libraries instead of hand-written code: jansson for JSON (the
# QMP server in xen/dm/, the simulator's QMP client) and zlib for the
# CRC-32 that guards a device-state record (migration/devstate.c).
JSON_PKG    := jansson
JSON_CFLAGS := $(call pc_cflags,$(JSON_PKG))
JSON_LIBS   := $(call pc_libs,$(JSON_PKG))
ZLIB_PKG    := zlib
ZLIB_CFLAGS := $(call pc_cflags,$(ZLIB_PKG))
ZLIB_LIBS   := $(call pc_libs,$(ZLIB_PKG))
# zstd compresses the own engine's RAM batches and xxHash checksums its
# records (migration/stream.c).
MIG_PKGS    := libzstd libxxhash
MIG_CFLAGS  := $(call pc_cflags,$(MIG_PKGS))
MIG_LIBS    := $(call pc_libs,$(MIG_PKGS))
XEN_CFLAGS  := $(call pc_cflags,$(XEN_PKGS))
XEN_LIBS    := $(call pc_libs,$(XEN_PKGS))
CMOCKA_LIBS := $(call pc_libs,$(TEST_PKGS))
# What libxenram.a itself needs, for xenram.pc's Requires, and what a
# program that links it links after it (pkg-config --libs xenram).
LIB_PKGS    := $(URCU_PKG) $(XEN_PKGS) $(ZLIB_PKG) $(MIG_PKGS)
LIB_LIBS    := $(XEN_LIBS) $(ZLIB_LIBS) $(MIG_LIBS) $(URCU_LIBS)

ALL_CFLAGS  = $(XR_CFLAGS) $(XEN_CFLAGS) $(JSON_CFLAGS) $(ZLIB_CFLAGS) \
              $(MIG_CFLAGS) $(CFLAGS)
# xenram's own code (library, device model, programs, tests) starts with
# util/util-internal.h: the RCU build settings must come before any liburcu
# header, whichever header a file names first.  The installed headers do
# not include it, and the simulator (its own rules) does not get it.
XR_PRELUDE  := -include util/util-internal.h
LIB         := $(BUILD)/libxenram.a
# The same objects with every symbol still global, never installed: for the
# tests, which --wrap calls between objects of one module and call internal
# functions.
LIB_INTERNAL := $(BUILD)/libxenram-internal.a
LD          ?= ld
OBJCOPY     ?= objcopy

# The exported set of libxenram.a: the prefixes its public headers declare.
# Everything else is made local (see $(LIB) below) and scripts/
# check-exports.sh fails the build's tests on a global symbol outside this
# list.  A public header that declares a new prefix adds it here.
PUBLIC_SYMBOLS := xr_* dirty_memory_* dirty_bitmap_* \
                  ram_block_* ram_list_* \
                  memory_context_* memory_global_* memory_listener_* \
                  memory_region_* address_space_* \
                  modified_memory_* mapcache_* guest_memory_* \
                  xen_* hotplug_* devstate_* migration_*

# Filled in by the module.mk fragments.
LIB_SRCS     :=
PROGRAMS     :=
LIBEXEC_PROGRAMS :=
UNIT_TESTS   :=
STRESS_TESTS :=
TSAN_TESTS   :=
BENCHES      :=
INTEGRATION_TESTS :=
# Checks of the build itself that `make check` runs like tests.
BUILD_CHECKS :=
PUBLIC_HEADERS :=
MANPAGES     :=
# Extra targets "all" must build (the simulator's libraries, ...).
ALL_EXTRA    :=

include util/module.mk
include dirty/module.mk
include memory/module.mk
include xen/module.mk
include xen/sim/xenstore/module.mk
include xen/sim/module.mk
include migration/module.mk
include hotplug/module.mk
include xen/dm/module.mk
include tests/realxen/module.mk
include programs/module.mk
include tests/module.mk
include docs/module.mk

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
# One relocatable object per module (dirty, memory, xen, ...) in libxenram.a.
LIB_MODULES := $(sort $(foreach s,$(LIB_SRCS),$(firstword $(subst /, ,$(s)))))
LIB_PARTS   := $(LIB_MODULES:%=$(BUILD)/lib/%.o)

.PHONY: all lib check check-unit check-stress check-tsan check-integration \
        check-valgrind check-install bench install uninstall clean demo

all: $(LIB) $(PROGRAMS) $(ALL_EXTRA)
lib: $(LIB)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(XR_PRELUDE) -c -o $@ $<

# A static archive has no export list of its own, so each module's objects
# are linked into one relocatable object (ld -r resolves the calls between
# them) and objcopy then makes local every symbol not in PUBLIC_SYMBOLS:
# hp_xs_open, dirty_block_alloc, ... can be neither called nor collided
# with by a user.  Per module, not one object for all, so that a program
# using only dirty/ still pulls in only dirty/ (and links no Xen library).
define lib_part
$(BUILD)/lib/$(1).o: $(filter $(BUILD)/obj/$(1)/%,$(LIB_OBJS)) \
                     $(BUILD)/lib/public-symbols
	@mkdir -p $$(@D)
	$(LD) -r -o $$@.r $$(filter %.o,$$^)
	$(OBJCOPY) --wildcard --keep-global-symbols=$(BUILD)/lib/public-symbols \
	    $$@.r $$@
	rm -f $$@.r
endef
$(foreach m,$(LIB_MODULES),$(eval $(call lib_part,$(m))))

# The keep-list as objcopy reads it, one pattern a line; rewritten only
# when PUBLIC_SYMBOLS changes.
$(BUILD)/lib/public-symbols: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' $(PUBLIC_SYMBOLS) > $@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv -f $@.new $@; fi

.PHONY: FORCE
FORCE:

$(LIB): $(LIB_PARTS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(LIB_INTERNAL): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# ---- tests ----------------------------------------------------------------

RUN_TESTS := tests/run-tests.sh

check: all $(UNIT_TESTS) $(STRESS_TESTS) $(INTEGRATION_TESTS) $(BUILD_CHECKS) | \
       $(XS_SIM_XENSTORED_BIN)
	@BUILD=$(BUILD) $(RUN_TESTS) $(UNIT_TESTS) $(STRESS_TESTS) \
	    $(INTEGRATION_TESTS) $(BUILD_CHECKS)

check-unit: $(UNIT_TESTS)
	@BUILD=$(BUILD) $(RUN_TESTS) $(UNIT_TESTS)

check-stress: $(STRESS_TESTS)
	@BUILD=$(BUILD) $(RUN_TESTS) $(STRESS_TESTS)

check-integration: all $(INTEGRATION_TESTS) | $(XS_SIM_XENSTORED_BIN)
	@BUILD=$(BUILD) $(RUN_TESTS) $(INTEGRATION_TESTS)

# ThreadSanitizer over the tests that exercise concurrency.  setarch -R:
# gcc 12's TSan runtime cannot cope with the address-space randomisation
# of recent kernels.
check-tsan:
	$(MAKE) TSAN=1 tsan-run

.PHONY: tsan-run
tsan-run: $(TSAN_TESTS)
	@BUILD=$(BUILD) TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=7 suppressions=$(CURDIR)/tests/tsan.supp" \
	    XR_TEST_WRAP="setarch $$(uname -m) -R" $(RUN_TESTS) $(TSAN_TESTS)

# The unit tests under valgrind's memcheck (leaks and invalid accesses).
# The *-concurrency tests are left to ThreadSanitizer: the mapcache's maps
# and unmaps thousands of buckets there, beyond valgrind's segment table
# (VG_N_SEGMENTS), and serialised threads test little anyway.
VALGRIND_TESTS := $(filter-out %-concurrency,$(UNIT_TESTS))
check-valgrind: $(VALGRIND_TESTS)
	@BUILD=$(BUILD) XR_TEST_WRAP="valgrind -q --error-exitcode=1 \
	    --leak-check=full --errors-for-leak-kinds=definite" \
	    $(RUN_TESTS) $(VALGRIND_TESTS)

bench: $(BENCHES)
	@set -e; for b in $(BENCHES); do echo "== $$b"; ./$$b; done

# xenram's own migration engine against the raw limit and the libxc-like
# path, on the simulator (BENCH_MIB MiB guests; 1 GiB for the record).
BENCH_MIB ?= 1024
.PHONY: bench-engine
bench-engine: all xenstored
	BUILD=$(BUILD) tests/bench/engine/run.sh $(BENCH_MIB)

# Postcopy's fault service time at full background rate, against the
# floors of a bare userfaultfd fault and of the path's skeleton
# (tests/bench/postcopy/run.sh; 256 MiB guests).
.PHONY: bench-postcopy
bench-postcopy: all xenstored $(BUILD)/bench/bench-postcopy-fault
	BUILD=$(BUILD) tests/bench/postcopy/run.sh

# ---- install --------------------------------------------------------------

$(BUILD)/xenram.pc: xenram.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@REQUIRES@|$(LIB_PKGS)|g' $< > $@

install: all $(BUILD)/xenram.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1
	$(if $(PROGRAMS),install -m 0755 $(PROGRAMS) $(DESTDIR)$(BINDIR))
	$(if $(LIBEXEC_PROGRAMS),install -d $(DESTDIR)$(LIBEXECDIR) && \
	    install -m 0755 $(LIBEXEC_PROGRAMS) $(DESTDIR)$(LIBEXECDIR))
	install -m 0644 $(LIB) $(DESTDIR)$(LIBDIR)
	install -m 0644 $(BUILD)/xenram.pc $(DESTDIR)$(PKGCONFIGDIR)
	set -e; for h in $(PUBLIC_HEADERS); do \
	    install -D -m 0644 $$h $(DESTDIR)$(INCLUDEDIR)/xenram/$$h; done
	$(if $(MANPAGES),install -m 0644 $(MANPAGES) $(DESTDIR)$(MANDIR)/man1)

# Install into a scratch directory and check the result as a user of the
# library meets it, through pkg-config (scripts/check-install.sh).
check-install: all
	@set -e; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	$(MAKE) -s install DESTDIR=$$d PREFIX=/usr >/dev/null; \
	CC='$(CC)' PKG_CONFIG='$(PKG_CONFIG)' PUBLIC_SYMBOLS='$(PUBLIC_SYMBOLS)' \
	    MULTIARCH='$(MULTIARCH)' scripts/check-install.sh $$d

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(PROGRAMS)))
	rm -rf $(DESTDIR)$(LIBEXECDIR)
	rm -f $(DESTDIR)$(LIBDIR)/libxenram.a $(DESTDIR)$(PKGCONFIGDIR)/xenram.pc
	rm -rf $(DESTDIR)$(INCLUDEDIR)/xenram
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MANPAGES)))

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)
