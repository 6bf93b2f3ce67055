# SPDX-License-Identifier: LGPL-2.1-or-later
LIB_SRCS += dirty/dirty.c dirty/bitmap.c
PUBLIC_HEADERS += dirty/dirty.h dirty/bitmap.h
