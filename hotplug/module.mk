# SPDX-License-Identifier: LGPL-2.1-or-later
#
# hotplug/: RAM hotplug and unplug requested through xenstore
# (docs/hotplug.md).
LIB_SRCS += hotplug/hotplug.c hotplug/hotplug-xs.c
PUBLIC_HEADERS += hotplug/hotplug.h

# Unit tests: guest memory and the mapcache on the one-domain fake
# (tests/unit/xen-fake.c), populate / decrease / domain info recorded, and
# an in-memory xenstore in place of libxenstore's calls.
HOTPLUG_XEN_WRAP := $(call xen_wrap,xen_populate_all xen_depopulate \
    xen_domain_info)
HOTPLUG_XS_WRAP  := $(call xen_wrap,xs_open xs_close xs_read xs_write \
    xs_mkdir xs_rm xs_directory xs_get_permissions xs_set_permissions \
    xs_watch xs_unwatch xs_fileno xs_check_watch xs_transaction_start \
    xs_transaction_end)

LDFLAGS_test-hotplug := $(XEN_FAKE_WRAP) $(HOTPLUG_XS_WRAP) $(call xen_wrap,\
    xc_domain_populate_physmap_exact xc_domain_decrease_reservation_exact \
    xen_domain_info)
OBJS_test-hotplug := $(XEN_FAKE_OBJ)
$(BUILD)/tests/test-hotplug: $(XEN_FAKE_OBJ)

# The stress test runs on the same fake.
LDFLAGS_stress-hotplug := $(XEN_FAKE_WRAP) $(HOTPLUG_XEN_WRAP) \
    $(call xen_wrap,xen_zero_frames)
OBJS_stress-hotplug := $(XEN_FAKE_OBJ)
$(BUILD)/tests/stress-hotplug: $(XEN_FAKE_OBJ)

# The simulator test drives requests with Debian's xenstore tools (where
# `make xenstored` put them) and writes as the guest through its store ring
# (xs-sim.o).  "private": neither setting may leak into prerequisites such
# as xensim, which links xs-sim.o itself.
HOTPLUG_SIM_TEST := $(BUILD)/tests/xenram/test-hotplug-sim
$(BUILD)/obj/tests/integration/xenram/test-hotplug-sim.o: private CFLAGS += \
    -DXENSTORED_DIR='"$(XS_SIM_XENSTORED_ABS)"'
OBJS_test-hotplug-sim := $(XS_SIM_OBJS)
$(HOTPLUG_SIM_TEST): $(XS_SIM_OBJS)

# The benchmark: the same fake, populate without zeroing.
LDFLAGS_bench-hotplug := $(XEN_FAKE_WRAP) $(HOTPLUG_XEN_WRAP)
OBJS_bench-hotplug := $(XEN_FAKE_OBJ)
$(BUILD)/bench/bench-hotplug: $(XEN_FAKE_OBJ)
