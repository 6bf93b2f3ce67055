# SPDX-License-Identifier: LGPL-2.1-or-later
LIB_SRCS += memory/ramblock.c
PUBLIC_HEADERS += memory/ramblock.h

# The unit test counts host mappings and injects allocation failures.
LDFLAGS_test-ramblock := -Wl,--wrap=mmap,--wrap=munmap,--wrap=dirty_memory_grow
