# SPDX-License-Identifier: LGPL-2.1-or-later
LIB_SRCS += migration/devstate.c
PUBLIC_HEADERS += migration/devstate.h
