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
