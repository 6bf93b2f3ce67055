# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The Xen platform layer (xen/xen.h).
LIB_SRCS += xen/xen.c xen/ioreq.c xen/paging.c
PUBLIC_HEADERS += xen/xen.h xen/ioreq.h xen/paging.h

# "-Wl,--wrap=a,--wrap=b" from a list of symbols.
xen_empty :=
xen_space := $(xen_empty) $(xen_empty)
xen_wrap   = -Wl,$(subst $(xen_space),$(comma),$(strip $(addprefix --wrap=,$(1))))

# test-xen replaces every library call the layer makes, one at a time, to
# check its error paths and messages.
LDFLAGS_test-xen := $(call xen_wrap,\
    xc_interface_open xc_interface_close xc_domain_getinfolist \
    xc_domain_pause xc_domain_unpause \
    xc_domain_populate_physmap_exact xc_domain_decrease_reservation_exact \
    xc_shadow_control xc_logdirty_control \
    xc__hypercall_buffer_alloc_pages xc__hypercall_buffer_free_pages \
    xenforeignmemory_open xenforeignmemory_close xenforeignmemory_map2 \
    xenforeignmemory_unmap xendevicemodel_open xendevicemodel_close \
    xendevicemodel_track_dirty_vram xendevicemodel_modified_memory_bulk \
    xendevicemodel_create_ioreq_server xendevicemodel_destroy_ioreq_server \
    xendevicemodel_set_ioreq_server_state \
    xendevicemodel_map_io_range_to_ioreq_server \
    xendevicemodel_unmap_io_range_from_ioreq_server \
    xentoolcore_restrict_all xs_open xs_close xs_read xs_write xs_rm)

# test-paging runs the real xen/xen.c and xen/paging.c over fakes of every
# library call they make on a pager's behalf; the fake plays Xen's side of
# the paging ring.  test-paging-concurrency: the same fakes, under TSan.
PAGING_WRAP := $(call xen_wrap,\
    xc_interface_open xc_interface_close xc_domain_getinfolist \
    xenforeignmemory_open xenforeignmemory_close xenforeignmemory_map2 \
    xenforeignmemory_unmap xendevicemodel_open xendevicemodel_close \
    xc_hvm_param_get xc_domain_maximum_gpfn \
    xc_domain_populate_physmap_exact xc_domain_decrease_reservation_exact \
    xc_mem_paging_enable xc_mem_paging_disable xc_mem_paging_nominate \
    xc_mem_paging_evict xc_mem_paging_load \
    xenevtchn_open xenevtchn_close xenevtchn_fd xenevtchn_bind_interdomain \
    xenevtchn_unbind xenevtchn_notify xenevtchn_pending xenevtchn_unmask)
LDFLAGS_test-paging := $(PAGING_WRAP)
LDFLAGS_test-paging-concurrency := $(PAGING_WRAP)

# The mapcache's tests and benchmark run the real xen/xen.c over a one-domain
# fake of the few calls it makes (tests/unit/xen-fake.c): no Xen, no
# simulator.
XEN_FAKE_OBJ  := $(BUILD)/obj/tests/unit/xen-fake.o
XEN_FAKE_WRAP := $(call xen_wrap,\
    xc_interface_open xc_interface_close xc_domain_getinfolist \
    xenforeignmemory_open xenforeignmemory_close xenforeignmemory_map2 \
    xenforeignmemory_unmap xendevicemodel_open xendevicemodel_close)

LDFLAGS_test-mapcache := $(XEN_FAKE_WRAP)
OBJS_test-mapcache := $(XEN_FAKE_OBJ)
LDFLAGS_test-mapcache-concurrency := $(XEN_FAKE_WRAP)
OBJS_test-mapcache-concurrency := $(XEN_FAKE_OBJ)
LDFLAGS_bench-mapcache := $(XEN_FAKE_WRAP)
OBJS_bench-mapcache := $(XEN_FAKE_OBJ)
$(BUILD)/tests/test-mapcache $(BUILD)/tests/test-mapcache-concurrency \
$(BUILD)/bench/bench-mapcache: $(XEN_FAKE_OBJ)

# Integration: the mapcache and this layer on the simulated host
# (tests/integration/mapcache/, fixtures from tests/integration/sim/).
# Linked against Debian's libraries; the fixtures re-exec the test with
# LD_LIBRARY_PATH=$(BUILD)/sim and start and always stop a private xensim
# daemon, under a watchdog.
MAPCACHE_SIM_TESTS := $(patsubst tests/integration/mapcache/%.c,\
    $(BUILD)/tests/mapcache/%,$(wildcard tests/integration/mapcache/test-*.c))
INTEGRATION_TESTS += $(MAPCACHE_SIM_TESTS)
MAPCACHE_SIM_OBJS := $(BUILD)/sim/tobj/simtest.o $(BUILD)/sim/dobj/chan.o

$(MAPCACHE_SIM_TESTS): $(BUILD)/tests/mapcache/%: \
    $(BUILD)/obj/tests/integration/mapcache/%.o $(MAPCACHE_SIM_OBJS) $(LIB_INTERNAL) \
    | $(BUILD)/sim/libxenctrl.so.4.17 $(BUILD)/sim/libxenforeignmemory.so.1 \
      $(BUILD)/sim/libxendevicemodel.so.1 $(BUILD)/xensim
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(MAPCACHE_SIM_OBJS) $(TEST_LIBS)

.PHONY: check-mapcache-sim
check-mapcache-sim: $(MAPCACHE_SIM_TESTS)
	@BUILD=$(BUILD) $(RUN_TESTS) $(MAPCACHE_SIM_TESTS)
