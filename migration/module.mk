# SPDX-License-Identifier: LGPL-2.1-or-later
LIB_SRCS += migration/devstate.c migration/layout.c migration/xl.c \
    migration/params.c migration/send.c migration/recv.c \
    migration/channel-socket.c \
    migration/stream.c migration/postcopy.c migration/pagereq.c \
    migration/paging-fallback.c
PUBLIC_HEADERS += migration/devstate.h migration/migration.h
# TEMPORARY, with paging-fallback.c: its weak xen_pager_* stand-ins are
# exported (xen_* is a public prefix), so check-exports needs the header
# that declares them.  Belongs in xen/module.mk once xen/paging.c lands.
PUBLIC_HEADERS += xen/paging.h
