# SPDX-License-Identifier: LGPL-2.1-or-later
#
# xen/dm/: the device-model process.

# The command line libxl passes to a qemu-xen device model.
LIB_SRCS += xen/dm/cmdline.c

# The device model's main loop and QMP server.
LIB_SRCS += xen/dm/loop.c xen/dm/qmp.c

# The device model itself and the xenram program.
LIB_SRCS += xen/dm/devmodel.c xen/dm/testdev.c
PROGRAMS += $(BUILD)/xenram

$(BUILD)/xenram: $(BUILD)/obj/xen/dm/main.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(LIB) $(XEN_LIBS) $(JSON_LIBS) $(ZLIB_LIBS) $(URCU_LIBS)
