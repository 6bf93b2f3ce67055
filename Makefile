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
LIBDIR      ?= $(PREFIX)/lib
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
XEN_PKGS    := xencontrol xenforeignmemory xendevicemodel xenstore xentoolcore
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
XEN_CFLAGS  := $(call pc_cflags,$(XEN_PKGS))
XEN_LIBS    := $(call pc_libs,$(XEN_PKGS))
CMOCKA_LIBS := $(call pc_libs,$(TEST_PKGS))
# What libxenram.a itself needs, for xenram.pc's Requires.
LIB_PKGS    := $(URCU_PKG) $(XEN_PKGS) $(ZLIB_PKG)

ALL_CFLAGS  = $(XR_CFLAGS) $(XEN_CFLAGS) $(JSON_CFLAGS) $(ZLIB_CFLAGS) $(CFLAGS)
LIB         := $(BUILD)/libxenram.a

# Filled in by the module.mk fragments.
LIB_SRCS     :=
PROGRAMS     :=
UNIT_TESTS   :=
STRESS_TESTS :=
TSAN_TESTS   :=
BENCHES      :=
INTEGRATION_TESTS :=
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

.PHONY: all lib check check-unit check-stress check-tsan check-integration \
        check-valgrind check-install bench install uninstall clean demo

all: $(LIB) $(PROGRAMS) $(ALL_EXTRA)
lib: $(LIB)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# ---- tests ----------------------------------------------------------------

RUN_TESTS := tests/run-tests.sh

check: all $(UNIT_TESTS) $(STRESS_TESTS) $(INTEGRATION_TESTS)
	@BUILD=$(BUILD) $(RUN_TESTS) $(UNIT_TESTS) $(STRESS_TESTS) \
	    $(INTEGRATION_TESTS)

check-unit: $(UNIT_TESTS)
	@BUILD=$(BUILD) $(RUN_TESTS) $(UNIT_TESTS)

check-stress: $(STRESS_TESTS)
	@BUILD=$(BUILD) $(RUN_TESTS) $(STRESS_TESTS)

check-integration: all $(INTEGRATION_TESTS)
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
	install -m 0644 $(LIB) $(DESTDIR)$(LIBDIR)
	install -m 0644 $(BUILD)/xenram.pc $(DESTDIR)$(PKGCONFIGDIR)
	set -e; for h in $(PUBLIC_HEADERS); do \
	    install -D -m 0644 $$h $(DESTDIR)$(INCLUDEDIR)/xenram/$$h; done
	$(if $(MANPAGES),install -m 0644 $(MANPAGES) $(DESTDIR)$(MANDIR)/man1)

# Install into a scratch directory and build a program against the result
# with pkg-config, as a user of the library would.
check-install: all
	@set -e; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	$(MAKE) -s install DESTDIR=$$d PREFIX=/usr >/dev/null; \
	export PKG_CONFIG_PATH=$$d/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$$d; \
	printf '%s\n' '#include "memory/access.h"' '#include "hotplug/hotplug.h"' \
	    'int main(void) { DirtyMemory dm; return dirty_memory_init(&dm); }' \
	    > $$d/use.c; \
	$(CC) -o $$d/use $$d/use.c $$($(PKG_CONFIG) --cflags --libs xenram); \
	$$d/use; test -x $$d/usr/bin/xenram; \
	test -f $$d/usr/share/man/man1/xenram.1; \
	echo "check-install: 1 passed, 0 failed"

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(PROGRAMS)))
	rm -f $(DESTDIR)$(LIBDIR)/libxenram.a $(DESTDIR)$(PKGCONFIGDIR)/xenram.pc
	rm -rf $(DESTDIR)$(INCLUDEDIR)/xenram
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MANPAGES)))

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)
