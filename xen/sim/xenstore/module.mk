# SPDX-License-Identifier: LGPL-2.1-or-later
#
# xen/sim/xenstore: Debian's xenstored run under the simulator.
# See docs/xenstore-sim.md.
#
#   make xenstored          fetch and unpack Debian's xenstored and xenstore-*
#                           tools into $(XS_SIM_XENSTORED_DIR), default
#                           build/xenstored for every $(BUILD) (sanitizer
#                           builds share it); no install script runs;
#                           skipped when already there
#   make xs-sim             the stand-in libraries, the preload shim, xs-sim.o
#
# For the core's xensim (xen/sim/module.mk):
#   XS_SIM_OBJS   objects to link into xensim (xs-sim.o: xs_sim_start, ...)
#   XS_SIM_LIBS   what they need at link time (the real libxenstore)
#   XS_SIM_SHLIBS what must sit in $(BUILD)/sim at run time beside the core's
#                 libxenctrl.so.4.17

XS_SIM_SRCDIR        := xen/sim/xenstore
XS_SIM_XENSTORED_DIR ?= build/xenstored
# Compiled into xs-sim.o and the tests, so that they find it from any $(BUILD).
XS_SIM_XENSTORED_ABS  = $(abspath $(XS_SIM_XENSTORED_DIR))

XS_SIM_SHLIBS := $(BUILD)/sim/libxenevtchn.so.1 \
                 $(BUILD)/sim/libxengnttab.so.1 \
                 $(BUILD)/sim/xs-sim-procxen.so
XS_SIM_OBJS   := $(BUILD)/obj/xen/sim/xenstore/xs-sim.o
XS_SIM_LIBS   := $(call pc_libs,xenstore)

ALL_EXTRA += $(XS_SIM_SHLIBS) $(XS_SIM_OBJS)

# Shared objects loaded into Debian's xenstored: position independent,
# nothing exported beyond the version scripts, and never sanitized (an
# instrumented library cannot be loaded into an uninstrumented program).
# No -I.: there <xen/xen.h> would be the project's xen/xen.h, not Xen's.
XS_SIM_SO_CFLAGS = -std=gnu11 $(OPT) -g $(WARN) -pthread -MMD -MP \
                   -D_GNU_SOURCE -fPIC -fvisibility=hidden $(XEN_CFLAGS)

$(BUILD)/obj-pic/xen/sim/xenstore/%.o: $(XS_SIM_SRCDIR)/%.c
	@mkdir -p $(@D)
	$(CC) $(XS_SIM_SO_CFLAGS) -c -o $@ $<

$(BUILD)/sim/libxenevtchn.so.1: $(BUILD)/obj-pic/xen/sim/xenstore/evtchn.o \
                                $(XS_SIM_SRCDIR)/libxenevtchn.map
	@mkdir -p $(@D)
	$(CC) -shared -pthread -o $@ -Wl,-soname,libxenevtchn.so.1 \
	    -Wl,--version-script=$(XS_SIM_SRCDIR)/libxenevtchn.map $<

$(BUILD)/sim/libxengnttab.so.1: $(BUILD)/obj-pic/xen/sim/xenstore/gnttab.o \
                                $(XS_SIM_SRCDIR)/libxengnttab.map
	@mkdir -p $(@D)
	$(CC) -shared -o $@ -Wl,-soname,libxengnttab.so.1 \
	    -Wl,--version-script=$(XS_SIM_SRCDIR)/libxengnttab.map $<

$(BUILD)/sim/xs-sim-procxen.so: \
        $(BUILD)/obj-pic/xen/sim/xenstore/procxen-preload.o
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $< -ldl

# xs-sim.o knows where `make xenstored` put xenstored.
$(BUILD)/obj/xen/sim/xenstore/xs-sim.o: $(XS_SIM_SRCDIR)/xs-sim.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DXS_SIM_XENSTORED_DIR='"$(XS_SIM_XENSTORED_ABS)"' \
	    -c -o $@ $<

.PHONY: xenstored xs-sim
xenstored:
	bash $(XS_SIM_SRCDIR)/fetch-xenstored.sh $(XS_SIM_XENSTORED_DIR)

# The targets that run tests needing xenstored fetch it first (order-only:
# it is fetched once, never rebuilt).  A machine that cannot fetch it (no
# Debian mirror) still runs everything else: those groups then skip and
# say so.
XS_SIM_XENSTORED_BIN := $(XS_SIM_XENSTORED_DIR)/usr/lib/xen-4.17/bin/xenstored
$(XS_SIM_XENSTORED_BIN):
	@bash $(XS_SIM_SRCDIR)/fetch-xenstored.sh $(XS_SIM_XENSTORED_DIR) || \
	    echo "warning: Debian's xenstored could not be fetched: the xenstore tests will skip" >&2

xs-sim: $(XS_SIM_SHLIBS) $(XS_SIM_OBJS)

# ---- tests ------------------------------------------------------------------
# tests/integration/xenstore/test-*.c: cmocka programs that start xenstored
# through xs_sim_start().  They find $(BUILD) at run time from $BUILD (set by
# tests/run-tests.sh), else from the value compiled in here.
#
# They run xenstored against XS_TEST_LIBDIR: the stand-ins of $(BUILD)/sim
# (symlinked) plus a test double of libxenctrl.so.4.17 whose domains are
# listed in a file (fake-xenctrl.c), so that they need no xensim daemon.

XS_TEST_SRCS   := $(wildcard tests/integration/xenstore/test-*.c)
XS_TESTS       := $(XS_TEST_SRCS:tests/integration/xenstore/%.c=$(BUILD)/tests/integration/xenstore/%)
XS_TEST_LIBDIR := $(BUILD)/tests/integration/xenstore/lib
XS_TEST_LIBS   := $(XS_TEST_LIBDIR)/libxenctrl.so.4.17 \
                  $(addprefix $(XS_TEST_LIBDIR)/,$(notdir $(XS_SIM_SHLIBS)))
INTEGRATION_TESTS += $(XS_TESTS)

$(BUILD)/obj-pic/tests/integration/xenstore/%.o: tests/integration/xenstore/%.c
	@mkdir -p $(@D)
	$(CC) $(XS_SIM_SO_CFLAGS) -c -o $@ $<

$(XS_TEST_LIBDIR)/libxenctrl.so.4.17: \
        $(BUILD)/obj-pic/tests/integration/xenstore/fake-xenctrl.o \
        tests/integration/xenstore/fake-xenctrl.map
	@mkdir -p $(@D)
	$(CC) -shared -o $@ -Wl,-soname,libxenctrl.so.4.17 \
	    -Wl,--version-script=tests/integration/xenstore/fake-xenctrl.map $<

$(addprefix $(XS_TEST_LIBDIR)/,$(notdir $(XS_SIM_SHLIBS))): \
        $(XS_TEST_LIBDIR)/%: $(BUILD)/sim/%
	@mkdir -p $(@D)
	ln -sf $(abspath $<) $@

$(BUILD)/obj/tests/integration/xenstore/%.o: tests/integration/xenstore/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DXS_TEST_BUILD='"$(BUILD)"' \
	    -DXS_SIM_XENSTORED_DIR='"$(XS_SIM_XENSTORED_ABS)"' -c -o $@ $<

$(BUILD)/tests/integration/xenstore/%: \
        $(BUILD)/obj/tests/integration/xenstore/%.o $(XS_SIM_OBJS) \
        | $(XS_TEST_LIBS)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(XS_SIM_OBJS) $(XS_SIM_LIBS) $(CMOCKA_LIBS)
