# SPDX-License-Identifier: LGPL-2.1-or-later
LIB_SRCS += memory/ramblock.c
PUBLIC_HEADERS += memory/ramblock.h

# The unit test counts host mappings and injects allocation failures.
LDFLAGS_test-ramblock := -Wl,--wrap=mmap,--wrap=munmap,--wrap=dirty_memory_grow

# Batched forwarding of device-model writes to Xen (modified_memory).
LIB_SRCS += memory/modified.c
PUBLIC_HEADERS += memory/modified.h
LDFLAGS_test-modified := -Wl,--wrap=xen_modified_memory_bulk
LDFLAGS_test-modified-concurrency := -Wl,--wrap=xen_modified_memory_bulk

# The MemoryRegion tree and its FlatView (docs/region.md).
LIB_SRCS += memory/region.c
PUBLIC_HEADERS += memory/region.h

# The mapcache: on-demand foreign mappings (docs/mapcache.md).
LIB_SRCS += memory/mapcache.c
PUBLIC_HEADERS += memory/mapcache.h memory/mapcache-inline.h

# Guest memory access for device emulation (docs/region.md).
LIB_SRCS += memory/access.c
PUBLIC_HEADERS += memory/access.h
LDFLAGS_test-access := -Wl,--wrap=xen_map,--wrap=xen_map_at,--wrap=xen_unmap,--wrap=xen_modified_memory_bulk

# The Xen listener: populate, ioreq ranges, VRAM tracking, log-dirty mirror.
LIB_SRCS += memory/xen-memory.c
PUBLIC_HEADERS += memory/xen-memory.h
LDFLAGS_test-xen-memory := -Wl,--wrap=xen_populate,--wrap=xen_zero_frames,--wrap=xen_ioreq_map_range,--wrap=xen_ioreq_unmap_range,--wrap=xen_track_dirty_vram,--wrap=xen_logdirty_read
