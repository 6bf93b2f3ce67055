#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# check-exports.sh LIB INCDIR HEADER...
#
# libxenram's exported set is what its public headers declare, nothing
# more: a user's program must not be able to link (or collide with) an
# internal function such as hp_xs_open.  Checks, for the static archive
# LIB and the public HEADERs (relative to INCDIR):
#   1. every global symbol LIB defines matches one of $PUBLIC_SYMBOLS
#      (shell patterns, the keep-list the Makefile hands to objcopy);
#   2. every global function LIB defines is declared in a public header
#      (a public prefix does not make an internal function public);
#   3. every function the public headers declare is defined in LIB (the
#      keep-list lost nothing).
# The declarations come from the compiler itself (-aux-info).  CC and
# CPPFLAGS (what the headers' own includes need) come from the
# environment.  Prints "check-exports: N passed, N failed" and exits 1 on
# any failure.
set -eu

lib=$1 incdir=$2
shift 2
: "${PUBLIC_SYMBOLS:?the keep-list of public symbol patterns}"
CC=${CC:-cc}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for h in "$@"; do
    printf '#include "%s"\n' "$h"
done > "$tmp/all.c"
# shellcheck disable=SC2086
"$CC" -std=gnu11 -iquote "$incdir" ${CPPFLAGS:-} -fsyntax-only \
    -aux-info "$tmp/aux" "$tmp/all.c"
# Lines look like "/* ./dirty/dirty.h:103:NC */ extern int f (T *);".
for h in "$@"; do
    grep -F " $incdir/$h:" "$tmp/aux" || grep -F "/* $h:" "$tmp/aux" || true
done | grep -v '\*/ static ' |
    sed -E 's|^/\* [^ ]* \*/ ||; s| \(.*||; s|.*[ *]||' | sort -u \
    > "$tmp/declared"

nm -g --defined-only "$lib" | awk 'NF == 3 { print $2, $3 }' | sort -u -k2 \
    > "$tmp/defined"

fail=0
pass=0
bad() { echo "check-exports: $*"; fail=$((fail + 1)); }

while read -r type sym; do
    public=0
    for p in $PUBLIC_SYMBOLS; do
        # shellcheck disable=SC2053
        if [[ $sym == $p ]]; then public=1; break; fi
    done
    [ "$public" = 1 ] || bad "$sym is exported but matches no public prefix"
    case $type in
    T|W|i)
        grep -qx -- "$sym" "$tmp/declared" ||
            bad "$sym is exported but no public header declares it" ;;
    esac
done < "$tmp/defined"
awk '{ print $2 }' "$tmp/defined" > "$tmp/names"
while read -r sym; do
    grep -qx -- "$sym" "$tmp/names" ||
        bad "$sym is declared in a public header but not exported"
done < "$tmp/declared"

[ -s "$tmp/declared" ] || bad "found no declarations in $*"
[ "$fail" -eq 0 ] && pass=1
echo "check-exports: $(wc -l < "$tmp/defined") symbols exported," \
    "$(wc -l < "$tmp/declared") functions declared"
echo "check-exports: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
