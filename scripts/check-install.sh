#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# check-install.sh STAGE
#
# Checks an installation made with `make install DESTDIR=STAGE
# PREFIX=/usr` the way a user of the library meets it, through pkg-config:
#   - every installed header compiles alone in a C program, warning-free,
#     and leaves none of libxenram's build settings behind (_LGPL_SOURCE,
#     the internal prelude, its TSan replacements of liburcu's macros);
#   - no internal header is installed, and the pkg-config flags define
#     nothing;
#   - a program using dirty/ and hotplug/ builds against the installed
#     archive and runs;
#   - the installed archive exports exactly what the installed headers
#     declare (scripts/check-exports.sh);
#   - the layout is Debian's: the archive and xenram.pc in the multiarch
#     libdir (MULTIARCH), xenram and xenram(1) installed, xenram-demo in
#     libexec/xenram and not among the commands, xensim and its page not
#     installed (it runs from the build tree).
# CC, PKG_CONFIG and PUBLIC_SYMBOLS come from the environment (the
# Makefile).  Prints "check-install: N passed, N failed"; exits 1 on any
# failure.
set -u

stage=$1
CC=${CC:-cc}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
here=$(cd "$(dirname "$0")" && pwd)
MULTIARCH=${MULTIARCH:-}
libdir=$stage/usr/lib${MULTIARCH:+/$MULTIARCH}
export PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
inc=$stage/usr/include/xenram
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "check-install: FAIL: $*"; failed=$((failed + 1)); }

if ! cflags=$($PKG_CONFIG --cflags xenram) ||
   ! libs=$($PKG_CONFIG --libs xenram); then
    bad "pkg-config does not know xenram"
    echo "check-install: $passed passed, $((failed)) failed"
    exit 1
fi

case " $cflags " in
*" -D"*) bad "pkg-config --cflags xenram defines macros: $cflags" ;;
*) ok ;;
esac

# A *-inline.h holds the fast paths of the header beside it and refuses to
# be included alone; it is compiled through that header.
headers=$(cd "$inc" && find . -name '*.h' ! -name '*-inline.h' |
          sed 's|^\./||' | sort)
inline_headers=$(cd "$inc" && find . -name '*-inline.h' | sed 's|^\./||' |
                 sort)
[ -n "$headers" ] && ok || bad "no headers installed in $inc"
if internal=$(cd "$inc" && find . -name '*internal*.h' | grep .); then
    bad "internal headers installed: $internal"
else
    ok
fi

for h in $headers; do
    cat > "$work/one.c" <<EOT
#include "$h"
#ifdef _LGPL_SOURCE
#error "$h defines _LGPL_SOURCE for its users"
#endif
#ifdef XENRAM_UTIL_INTERNAL_H
#error "$h pulls in libxenram's internal prelude"
#endif
#ifdef rcu_reclaim_begin
#error "$h brings libxenram's RCU build settings"
#endif
int main(void) { return 0; }
EOT
    # shellcheck disable=SC2086
    if "$CC" -Wall -Wextra -Werror -c -o "$work/one.o" "$work/one.c" \
           $cflags 2> "$work/err"; then
        ok
    else
        bad "$h does not compile on its own:"; sed 's/^/    /' "$work/err"
    fi
    # Under ThreadSanitizer too: the TSan rewrites of liburcu's macros
    # are libxenram's business, never its users'.
    # shellcheck disable=SC2086
    if "$CC" -fsanitize=thread -Wall -Wextra -Werror -c \
           -o "$work/one.o" "$work/one.c" $cflags 2> "$work/err"; then
        ok
    else
        bad "$h does not compile on its own under -fsanitize=thread:"
        sed 's/^/    /' "$work/err"
    fi
done

cat > "$work/use.c" <<'EOT'
#include "memory/access.h"
#include "hotplug/hotplug.h"
int main(void) { DirtyMemory dm; return dirty_memory_init(&dm); }
EOT
# shellcheck disable=SC2086
if "$CC" -o "$work/use" "$work/use.c" $cflags $libs && "$work/use"; then
    ok
else
    bad "a program using the installed library does not build or run"
fi

# shellcheck disable=SC2086
if CC=$CC CPPFLAGS="$cflags" "$here/check-exports.sh" \
       "$libdir/libxenram.a" "$inc" $headers $inline_headers \
       > "$work/exports"; then
    ok
else
    bad "exported set:"; sed 's/^/    /' "$work/exports"
fi

[ -x "$stage/usr/bin/xenram" ] && ok || bad "xenram is not installed"
[ -f "$stage/usr/share/man/man1/xenram.1" ] && ok ||
    bad "xenram(1) is not installed"
[ -f "$libdir/libxenram.a" ] && [ -f "$libdir/pkgconfig/xenram.pc" ] && ok ||
    bad "libxenram.a and xenram.pc are not in $libdir"
[ -n "$MULTIARCH" ] && [ -e "$stage/usr/lib/libxenram.a" ] &&
    bad "libxenram.a is in /usr/lib as well as the multiarch $libdir" || ok
[ -x "$stage/usr/libexec/xenram/xenram-demo" ] && ok ||
    bad "xenram-demo is not in /usr/libexec/xenram"
[ -e "$stage/usr/bin/xenram-demo" ] && bad "xenram-demo is among the commands (/usr/bin)" || ok
[ -e "$stage/usr/bin/xensim" ] || [ -e "$stage/usr/share/man/man1/xensim.1" ] &&
    bad "xensim or its manual page is installed (it runs from the build tree)" || ok
[ -e "$stage/usr/share/man/man1/xenram-demo.1" ] &&
    bad "xenram-demo(1) is installed for a program that is not a command" || ok

echo "check-install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
