# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Tests and benchmarks are found by name:
#   tests/unit/test-*.c     cmocka unit tests, one program each
#   tests/stress/stress-*.c multi-threaded stress tests (also run under TSan)
#   tests/bench/bench-*.c   benchmarks (make bench)
# Each links against libxenram-internal.a: the library's objects with every
# symbol still global, so that --wrap works between objects of one module
# and internal functions can be called.  A test that needs extra link flags
# (for example -Wl,--wrap=xc_... for error paths) sets LDFLAGS_<name>, and
# one that needs extra objects sets OBJS_<name>, in the module.mk of the
# module it tests.

UNIT_SRCS   := $(wildcard tests/unit/test-*.c)
STRESS_SRCS := $(wildcard tests/stress/stress-*.c)
BENCH_SRCS  := $(wildcard tests/bench/bench-*.c)

UNIT_TESTS   += $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
STRESS_TESTS += $(STRESS_SRCS:tests/stress/%.c=$(BUILD)/tests/%)
BENCHES      += $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)

# The concurrency tests: every stress test and the unit tests whose names
# say they are about concurrency.
TSAN_TESTS  += $(STRESS_TESTS) \
               $(filter %-concurrency %-rcu,$(UNIT_TESTS))
# test-paging's hooks race a request with a load and an evict on purpose.
TSAN_TESTS  += $(BUILD)/tests/test-paging
# test-blocktime's last tests fault and place from several threads.
TSAN_TESTS  += $(BUILD)/tests/test-blocktime

TEST_LIBS = $(LIB_INTERNAL) $(XEN_LIBS) $(JSON_LIBS) $(ZLIB_LIBS) $(MIG_LIBS) $(URCU_LIBS) $(CMOCKA_LIBS) -lm

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIB_INTERNAL)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) $(LDFLAGS_$*) -o $@ $< $(OBJS_$*) $(TEST_LIBS)

$(BUILD)/tests/stress-%: $(BUILD)/obj/tests/stress/stress-%.o $(LIB_INTERNAL)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) $(LDFLAGS_stress-$*) -o $@ $< $(OBJS_stress-$*) \
	    $(TEST_LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIB_INTERNAL)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) $(LDFLAGS_$*) -o $@ $< $(OBJS_$*) $(TEST_LIBS)

# libFuzzer targets (clang): tests/fuzz/fuzz-*.c, linked with the sources
# they exercise, built with ASan+UBSan.  `make fuzz FUZZ_SECONDS=N` runs
# each for N seconds from its committed corpus in tests/fuzz/corpus/<name>/
# (new inputs go to $(BUILD)/fuzz/new-<name>: the committed seeds change
# only by hand).
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_TARGETS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 30
FUZZ_CFLAGS  := -std=gnu11 -O1 -g -iquote . -D_GNU_SOURCE $(XR_PRELUDE) \
                -fsanitize=fuzzer,address,undefined $(ZLIB_CFLAGS) $(MIG_CFLAGS) \
                $(call pc_cflags,$(URCU_PKG))
FUZZ_DEPS_fuzz-devstate := migration/devstate.c util/util.c
FUZZ_DEPS_fuzz-stream   := migration/stream.c migration/devstate.c util/util.c
FUZZ_DEPS_fuzz-qmp      := xen/dm/qmp.c xen/dm/loop.c util/util.c
FUZZ_LIBS_fuzz-qmp      := $(JSON_LIBS)
FUZZ_DEPS_fuzz-cmdline  := xen/dm/cmdline.c util/util.c
# Only hp_parse_request is called; what the rest of hotplug-xs.c needs
# from hotplug.c is stubbed (tests/fuzz/hotplug-stubs.c).
FUZZ_DEPS_fuzz-hotplug  := hotplug/hotplug-xs.c tests/fuzz/hotplug-stubs.c util/util.c
FUZZ_LIBS_fuzz-hotplug  := -lxenstore

build/fuzz/%: tests/fuzz/%.c $(wildcard migration/*.c util/*.c xen/dm/*.c hotplug/*.c)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_DEPS_$*) $(FUZZ_LIBS_$*) $(ZLIB_LIBS) $(MIG_LIBS) $(URCU_LIBS)

.PHONY: fuzz
fuzz: $(FUZZ_TARGETS)
	@set -e; for f in $(FUZZ_TARGETS); do \
	    n=$${f##*/}; mkdir -p $(BUILD)/fuzz/new-$$n; \
	    echo "== $$n ($(FUZZ_SECONDS) s, new inputs in $(BUILD)/fuzz/new-$$n)"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        $(BUILD)/fuzz/new-$$n tests/fuzz/corpus/$$n; done

# Every committed corpus (tests/fuzz/corpus/<name>/) is replayed in `make
# check` through the same function, built with gcc (tests/fuzz/replay.c):
# what a fuzzer once found stays a test.
FUZZ_CORPORA := $(notdir $(wildcard tests/fuzz/corpus/fuzz-*))
FUZZ_REPLAYS := $(FUZZ_CORPORA:%=$(BUILD)/tests/replay-%)
BUILD_CHECKS += $(FUZZ_REPLAYS)

$(BUILD)/fuzz-replay/%: $(BUILD)/obj/tests/fuzz/%.o \
                        $(BUILD)/obj/tests/fuzz/replay.o $(LIB_INTERNAL)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $^ $(TEST_LIBS)
# The QMP server and the command line live in libxenram-dm.a.
$(BUILD)/fuzz-replay/fuzz-qmp $(BUILD)/fuzz-replay/fuzz-cmdline: $(LIB_DM)

$(BUILD)/tests/replay-%: $(BUILD)/fuzz-replay/% $(wildcard tests/fuzz/corpus/*/*)
	@mkdir -p $(@D)
	@{ echo '#!/bin/sh'; echo 'cd $(CURDIR) || exit 1'; \
	   echo 'exec $(BUILD)/fuzz-replay/$* tests/fuzz/corpus/$*/*'; } > $@
	@chmod +x $@

# xenram's own code on the simulated host: tests/integration/xenram/*.c,
# linked with libxenram, the simulator's test fixtures and Debian's real Xen
# libraries; they re-execute themselves on the stand-ins (simtest.h).
XR_SIM_SRCS  := $(wildcard tests/integration/xenram/test-*.c)
XR_SIM_TESTS := $(XR_SIM_SRCS:tests/integration/xenram/%.c=$(BUILD)/tests/xenram/%)
INTEGRATION_TESTS += $(XR_SIM_TESTS)

$(XR_SIM_TESTS): $(BUILD)/tests/xenram/%: $(BUILD)/obj/tests/integration/xenram/%.o \
                 $(LIB_INTERNAL) $(SIM_TEST_OBJS) | $(SIM_LIBS) $(XENSIM) $(BUILD)/xenram
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(SIM_TEST_OBJS) $(OBJS_$*) $(LIB_INTERNAL) \
	    $(XEN_LIBS) $(JSON_LIBS) $(ZLIB_LIBS) $(MIG_LIBS) $(URCU_LIBS) $(CMOCKA_LIBS)

# Benchmarks of xenram's code on the simulated host (tests/bench/xenram/).
XR_SIM_BENCH_SRCS := $(wildcard tests/bench/xenram/bench-*.c)
XR_SIM_BENCHES    := $(XR_SIM_BENCH_SRCS:tests/bench/xenram/%.c=$(BUILD)/bench/xenram/%)
BENCHES += $(XR_SIM_BENCHES)

$(XR_SIM_BENCHES): $(BUILD)/bench/xenram/%: $(BUILD)/obj/tests/bench/xenram/%.o \
                   $(LIB_INTERNAL) $(SIM_TEST_OBJS) | $(SIM_LIBS) $(XENSIM) $(BUILD)/xenram
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(SIM_TEST_OBJS) $(OBJS_$*) $(LIB_INTERNAL) \
	    $(XEN_LIBS) $(JSON_LIBS) $(ZLIB_LIBS) $(MIG_LIBS) $(URCU_LIBS) \
	    $(CMOCKA_LIBS) -lm

# The exported set of the built libxenram.a against the public headers
# (scripts/check-exports.sh), as a program `make check` runs with the
# tests.  check-install runs the same check on the installed files.
EXPORTS_CHECK := $(BUILD)/tests/check-exports
BUILD_CHECKS  += $(EXPORTS_CHECK)

$(EXPORTS_CHECK): scripts/check-exports.sh $(LIB) $(PUBLIC_HEADERS) Makefile
	@mkdir -p $(@D)
	@{ echo '#!/bin/sh'; echo 'cd $(CURDIR) || exit 1'; \
	   echo "PUBLIC_SYMBOLS='$(PUBLIC_SYMBOLS)' CC='$(CC)'" \
	        "CPPFLAGS='-D_GNU_SOURCE $(XEN_CFLAGS) $(call pc_cflags,$(URCU_PKG))'" \
	        "exec scripts/check-exports.sh $(LIB) . $(PUBLIC_HEADERS)"; \
	 } > $@
	@chmod +x $@

# The migration soak (scripts/soak.sh, docs/testing.md): `make soak` runs
# SOAK_COUNT migrations (default 1000) within SOAK_SECONDS; `make check`
# runs a short one (30 migrations, a few seconds) as one more test.
SOAK_COUNT ?= 1000
SOAK_SECONDS ?= 3600
SOAK_SHORT := $(BUILD)/tests/check-soak-short
BUILD_CHECKS += $(SOAK_SHORT)

$(SOAK_SHORT): scripts/soak.sh Makefile
	@mkdir -p $(@D)
	@{ echo '#!/bin/sh'; echo 'cd $(CURDIR) || exit 1'; \
	   echo 'SOAK_COUNT=30 SOAK_SECONDS=300 exec scripts/soak.sh $(BUILD)'; } > $@
	@chmod +x $@

.PHONY: soak
soak: all | $(XS_SIM_XENSTORED_BIN)
	SOAK_COUNT=$(SOAK_COUNT) SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh $(BUILD)
