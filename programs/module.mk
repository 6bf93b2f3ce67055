# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Small stand-alone programs.  xenram-demo: dirty/ and memory/ at work in
# one process, no Xen and no simulator (`make demo-ram`); a user of the
# installed library would write it the same way.
# A demonstration, not a command: installed in LIBEXECDIR, not BINDIR.
LIBEXEC_PROGRAMS += $(BUILD)/xenram-demo
ALL_EXTRA += $(BUILD)/xenram-demo

$(BUILD)/xenram-demo: $(BUILD)/obj/programs/xenram-demo.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(XR_LDFLAGS) -o $@ $< $(LIB) $(LIB_LIBS)

# The README's main job: a guest whose device model is xenram live-migrates
# between two simulated hosts (scripts/demo.sh).  `make demo-ram` runs the
# smaller in-process demonstration of dirty/ and memory/.
demo: all
	@test -x build/xenstored/usr/lib/xen-4.17/bin/xenstored || \
	    xen/sim/xenstore/fetch-xenstored.sh
	scripts/demo.sh $(BUILD)

# The same guest moved by xenram's own migration engine (scripts/demo-engine.sh).
.PHONY: demo-engine
demo-engine: all xenstored
	scripts/demo-engine.sh $(BUILD)

.PHONY: demo-ram
demo-ram: $(BUILD)/xenram-demo
	$(BUILD)/xenram-demo
