# SPDX-License-Identifier: LGPL-2.1-or-later
LIB_SRCS += memory/ramblock.c
PUBLIC_HEADERS += memory/ramblock.h
