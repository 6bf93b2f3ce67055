# SPDX-License-Identifier: LGPL-2.1-or-later
LIB_SRCS += migration/devstate.c migration/layout.c migration/xl.c \
    migration/params.c migration/send.c migration/recv.c \
    migration/channel-socket.c \
    migration/stream.c migration/postcopy.c migration/pagereq.c \
    migration/blocktime.c
PUBLIC_HEADERS += migration/devstate.h migration/migration.h
