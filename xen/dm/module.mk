# SPDX-License-Identifier: LGPL-2.1-or-later
#
# xen/dm/: the device-model process, the top of the house.  It is not part
# of libxenram: its objects go into the xenram program, and into
# $(LIB_DM), an internal archive (never installed) for the tests that
# exercise them.  It uses the library through its public headers only,
# and links against the installed form of it ($(LIB)), which proves the
# boundary on every build.

# The command line libxl passes to a qemu-xen device model.
DM_SRCS := xen/dm/cmdline.c
# The device model's main loop and QMP server.
DM_SRCS += xen/dm/loop.c xen/dm/qmp.c xen/dm/qmp-migrate.c
# The device model itself.
DM_SRCS += xen/dm/devmodel.c xen/dm/testdev.c
# The ioreq server thread (docs/ioreq.md).
DM_SRCS += xen/dm/ioreq.c

DM_OBJS := $(DM_SRCS:%.c=$(BUILD)/obj/%.o)
LIB_DM  := $(BUILD)/libxenram-dm.a

$(LIB_DM): $(DM_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

PROGRAMS += $(BUILD)/xenram

$(BUILD)/xenram: $(BUILD)/obj/xen/dm/main.o $(LIB_DM) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(LIB_DM) $(LIB) $(JSON_LIBS) $(LIB_LIBS)

# The unit tests of the command line and the QMP server link the archive
# explicitly (OBJS_<name> comes before libxenram on their link line).
OBJS_test-cmdline := $(LIB_DM)
OBJS_test-qmp     := $(LIB_DM)
$(BUILD)/tests/test-cmdline $(BUILD)/tests/test-qmp: $(LIB_DM)

# test-ioreq: the request handling over a small region tree, and the Xen
# layer's ioreq page and buffered ring over wrapped library calls.
OBJS_test-ioreq := $(LIB_DM)
LDFLAGS_test-ioreq := $(call xen_wrap,\
    xen_domain_info xen_domid xen_dmod xen_fmem xen_ioreq_server_destroy \
    xendevicemodel_create_ioreq_server xendevicemodel_get_ioreq_server_info \
    xendevicemodel_set_ioreq_server_state xenforeignmemory_map_resource \
    xenforeignmemory_unmap_resource xenevtchn_open xenevtchn_close \
    xenevtchn_fd xenevtchn_bind_interdomain xenevtchn_unbind \
    xenevtchn_notify xenevtchn_pending xenevtchn_unmask)
$(BUILD)/tests/test-ioreq: $(LIB_DM)
# The same wraps for the service thread under ThreadSanitizer.
OBJS_test-ioreq-concurrency := $(LIB_DM)
LDFLAGS_test-ioreq-concurrency := $(LDFLAGS_test-ioreq)
$(BUILD)/tests/test-ioreq-concurrency: $(LIB_DM)
# The embedding-emulator test on the simulator links the ioreq service.
OBJS_test-ioreq-sim := $(LIB_DM)
$(BUILD)/tests/xenram/test-ioreq-sim: $(LIB_DM)
OBJS_bench-ioreq-sim := $(LIB_DM)
$(BUILD)/bench/xenram/bench-ioreq-sim: $(LIB_DM)
