# SPDX-License-Identifier: LGPL-2.1-or-later
LIB_SRCS += util/util.c
PUBLIC_HEADERS += util/util.h
