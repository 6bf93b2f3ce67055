# SPDX-License-Identifier: LGPL-2.1-or-later
#
# xen/sim: the simulated Xen host.  See docs/simulator.md and xensim(1).
#
#   $(BUILD)/sim/libxenctrl.so.4.17      stand-ins for Debian's libraries,
#   $(BUILD)/sim/libxenforeignmemory.so.1  same sonames and symbol versions;
#   $(BUILD)/sim/libxendevicemodel.so.1    picked with LD_LIBRARY_PATH
#   $(BUILD)/xensim                      the host daemon (daemon.c) and its
#                                        command line (xensim.c)
#
#   make bench-sim                       CLEAN of a 1 GiB guest vs PAGEMAP_SCAN
#
# Tests: tests/integration/sim/test-sim-*.c, built against Debian's real
# headers and libraries and run on the stand-ins (they re-execute
# themselves with LD_LIBRARY_PATH=$(BUILD)/sim).

SIM_DIR      := xen/sim
SIM_LIBS     := $(BUILD)/sim/libxenctrl.so.4.17 \
                $(BUILD)/sim/libxenforeignmemory.so.1 \
                $(BUILD)/sim/libxendevicemodel.so.1
XENSIM       := $(BUILD)/xensim

ALL_EXTRA    += $(SIM_LIBS) $(XENSIM)

# The top's XR_CFLAGS puts the tree on the path with "-iquote .", not
# "-I.", so the public header <xen/xen.h> (included by xenctrl.h) is
# Xen's, never the project's xen/xen.h; our own headers are all included
# as "xen/sim/...".
SIM_CFLAGS    = $(XR_CFLAGS) $(XEN_CFLAGS) $(CFLAGS)

# The stand-ins are loaded into programs we do not build (Debian's
# xenstored): position independent and never sanitized.  What they export
# is decided by their version scripts alone.
SIM_SO_CFLAGS = -std=gnu11 $(OPT) -g $(WARN) -pthread -iquote . -MMD -MP \
                -D_GNU_SOURCE -fPIC $(XEN_CFLAGS)

$(BUILD)/sim/obj/%.o: $(SIM_DIR)/%.c
	@mkdir -p $(@D)
	$(CC) $(SIM_SO_CFLAGS) -c -o $@ $<

SIM_STUB_OBJS := $(BUILD)/sim/obj/stub.o $(BUILD)/sim/obj/chan.o

# -z defs: a stand-in must not lean on a symbol it does not bring.
# libxenctrl also exports, as ENOSYS stubs, everything else Debian's
# exports (libxenctrl-stubs.c, one stub per line of libxenctrl-stubs.def;
# gen-xc-stubs.py writes that list and libxenctrl.map).
define sim_shlib
$(BUILD)/sim/$(1): $(BUILD)/sim/obj/$(2).o $(3) $(SIM_STUB_OBJS) \
                   $(SIM_DIR)/$(2).map
	@mkdir -p $$(@D)
	$$(CC) -shared -pthread -o $$@ -Wl,-soname,$(1) -Wl,-z,defs \
	    -Wl,--version-script=$(SIM_DIR)/$(2).map \
	    $(BUILD)/sim/obj/$(2).o $(3) $(SIM_STUB_OBJS) -lxentoolcore
endef
$(eval $(call sim_shlib,libxenctrl.so.4.17,libxenctrl,\
                        $(BUILD)/sim/obj/libxenctrl-stubs.o))
$(eval $(call sim_shlib,libxenforeignmemory.so.1,libxenforeignmemory))
$(eval $(call sim_shlib,libxendevicemodel.so.1,libxendevicemodel))

# ---- xensim ------------------------------------------------------------------

# The toolstack (what plays libxl and libxc): toolstack.c and its
# concerns, ts-*.c, behind toolstack.h; ts-report.c is what both
# migrations show (progress line, table, --json, --report FILE.svg).
SIM_TS_SRCS     := $(SIM_DIR)/toolstack.c $(SIM_DIR)/ts-qmp.c \
                   $(SIM_DIR)/ts-dm.c $(SIM_DIR)/ts-mem.c \
                   $(SIM_DIR)/ts-hotplug.c $(SIM_DIR)/ts-migrate.c \
                   $(SIM_DIR)/ts-engine.c $(SIM_DIR)/ts-report.c \
                   $(SIM_DIR)/ts-sr.c
SIM_TS_OBJS     := $(SIM_TS_SRCS:$(SIM_DIR)/%.c=$(BUILD)/sim/dobj/%.o)
SIM_DAEMON_SRCS := $(SIM_DIR)/xensim.c $(SIM_DIR)/daemon.c \
                   $(SIM_DIR)/host.c $(SIM_DIR)/host-ioreq.c \
                   $(SIM_DIR)/host-paging.c \
                   $(SIM_DIR)/hvmctx.c \
                   $(SIM_DIR)/vcpu.c $(SIM_DIR)/track.c \
                   $(SIM_DIR)/server.c $(SIM_DIR)/chan.c $(SIM_DIR)/log.c \
                   $(SIM_TS_SRCS)
SIM_DAEMON_OBJS := $(SIM_DAEMON_SRCS:$(SIM_DIR)/%.c=$(BUILD)/sim/dobj/%.o)

$(BUILD)/sim/dobj/%.o: $(SIM_DIR)/%.c
	@mkdir -p $(@D)
	$(CC) $(SIM_CFLAGS) -c -o $@ $<

# The toolstack speaks QMP with jansson and xenstore with Debian's
# libxenstore; ts-report.c's plot needs libm.
SIM_TS_LIBS := $(JSON_LIBS) $(call pc_libs,xenstore) $(call pc_libs,libxxhash) -lm
$(SIM_TS_OBJS) $(BUILD)/sim/dobj/xensim.o $(BUILD)/sim/dobj/daemon.o: \
    CFLAGS += $(JSON_CFLAGS)

# The simulated xenstore (xen/sim/xenstore, another module) is always
# linked in.
SIM_XS_OBJ := $(BUILD)/obj/$(SIM_DIR)/xenstore/xs-sim.o

$(XENSIM): $(SIM_DAEMON_OBJS) $(SIM_XS_OBJ)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $(SIM_DAEMON_OBJS) $(SIM_XS_OBJ) \
	    $(XS_SIM_LIBS) $(SIM_TS_LIBS)

.PHONY: sim
sim: $(SIM_LIBS) $(XENSIM)

# ---- tests ------------------------------------------------------------------

SIM_TEST_SRCS := $(wildcard tests/integration/sim/test-sim-*.c)
SIM_TESTS     := $(SIM_TEST_SRCS:tests/integration/sim/%.c=$(BUILD)/tests/sim/%)
SIM_TEST_OBJS := $(BUILD)/sim/tobj/simtest.o $(BUILD)/sim/dobj/chan.o
INTEGRATION_TESTS += $(SIM_TESTS)

# Linked against Debian's real libraries (pkg-config), as xenram is.
SIM_REAL_LIBS := $(call pc_libs,xencontrol xenforeignmemory xendevicemodel \
                   xenevtchn xentoolcore xenstore)
# What the simulated xenstore needs beside our stand-ins.
SIM_XS_SHLIBS := $(addprefix $(BUILD)/sim/,\
                   libxenevtchn.so.1 libxengnttab.so.1 xs-sim-procxen.so)

$(BUILD)/sim/tobj/%.o: tests/integration/sim/%.c
	@mkdir -p $(@D)
	$(CC) $(SIM_CFLAGS) -c -o $@ $<

$(SIM_TESTS): $(BUILD)/tests/sim/%: $(BUILD)/sim/tobj/%.o $(SIM_TEST_OBJS) \
              | $(SIM_LIBS) $(XENSIM) $(SIM_XS_SHLIBS)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(SIM_TEST_OBJS) $(SIM_TEST_EXTRA_$*) \
	    $(SIM_REAL_LIBS) $(JSON_LIBS) $(CMOCKA_LIBS)

# The toolstack's page stream is tested on its own.
SIM_TEST_EXTRA_test-sim-srstream := $(BUILD)/sim/dobj/ts-sr.o
$(BUILD)/tests/sim/test-sim-srstream: $(BUILD)/sim/dobj/ts-sr.o

.PHONY: check-sim
check-sim: $(SIM_TESTS) $(SIM_LIBS) $(XENSIM) | $(XS_SIM_XENSTORED_BIN)
	@BUILD=$(BUILD) $(RUN_TESTS) $(SIM_TESTS)

# ---- benchmark --------------------------------------------------------------

SIM_BENCH := $(BUILD)/bench/sim/bench-sim-clean
BENCHES   += $(SIM_BENCH)

$(BUILD)/sim/bobj/%.o: $(SIM_DIR)/bench/%.c
	@mkdir -p $(@D)
	$(CC) $(SIM_CFLAGS) -c -o $@ $<

$(SIM_BENCH): $(BUILD)/sim/bobj/bench-sim-clean.o $(SIM_TEST_OBJS) \
              $(BUILD)/sim/dobj/track.o | $(SIM_LIBS) $(XENSIM)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(SIM_TEST_OBJS) $(BUILD)/sim/dobj/track.o \
	    $(SIM_REAL_LIBS)

.PHONY: bench-sim
bench-sim: $(SIM_BENCH) $(SIM_LIBS) $(XENSIM)
	./$(SIM_BENCH)

# ---- end-to-end tests ---------------------------------------------------------
# tests/integration/e2e/test-e2e-*.c: xensim as the toolstack, the real
# xenram as the device model, Debian's xenstored (skipped without `make
# xenstored`).  Built against the same toolstack the xensim binary runs
# (its QMP client and records), run on real processes only.

E2E_TEST_SRCS := $(wildcard tests/integration/e2e/test-e2e-*.c)
E2E_TESTS     := $(E2E_TEST_SRCS:tests/integration/e2e/%.c=$(BUILD)/tests/e2e/%)
E2E_OBJS      := $(BUILD)/sim/tobj/e2e/e2e.o $(BUILD)/sim/tobj/e2e/e2e-check.o \
                 $(SIM_TS_OBJS) \
                 $(BUILD)/sim/dobj/chan.o
INTEGRATION_TESTS += $(E2E_TESTS)

$(BUILD)/sim/tobj/e2e/%.o: tests/integration/e2e/%.c
	@mkdir -p $(@D)
	$(CC) $(SIM_CFLAGS) $(JSON_CFLAGS) -c -o $@ $<

$(E2E_TESTS): $(BUILD)/tests/e2e/%: $(BUILD)/sim/tobj/e2e/%.o $(E2E_OBJS) \
              | $(SIM_LIBS) $(XENSIM) $(BUILD)/xenram $(SIM_XS_SHLIBS)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(E2E_OBJS) $(SIM_TS_LIBS) $(CMOCKA_LIBS)

.PHONY: check-e2e
check-e2e: $(E2E_TESTS) $(SIM_LIBS) $(XENSIM) $(BUILD)/xenram
	@BUILD=$(BUILD) $(RUN_TESTS) $(E2E_TESTS)
