# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Small stand-alone programs.  xenram-demo: the README's main job until the
# simulator demo replaces it.
PROGRAMS += $(BUILD)/xenram-demo

$(BUILD)/xenram-demo: $(BUILD)/obj/programs/xenram-demo.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(LIB) $(URCU_LIBS)

# The README's main job.
demo: $(BUILD)/xenram-demo
	$(BUILD)/xenram-demo
