#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The main job: live-migrate an HVM guest, with xenram as its device model,
# from one simulated Xen host to another, while the guest and the device
# model both write guest memory, and check that nothing was lost.
#
#   scripts/demo.sh [BUILD]        (default BUILD=build)
#
# Needs `make all` and Debian's xenstored (`make xenstored`, which
# scripts/deps.sh runs).  Everything it starts (two hosts, their xenstoreds,
# the device models) is stopped when it exits, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${1:-build}
XENSIM=$(realpath "$BUILD/xensim" 2>/dev/null || true)
XENRAM=$(realpath "$BUILD/xenram" 2>/dev/null || true)
if [ ! -x "$XENSIM" ] || [ ! -x "$XENRAM" ]; then
    echo "demo: $BUILD/xensim and $BUILD/xenram are missing: run 'make' first" >&2
    exit 1
fi
XSREAD=$(command -v xenstore-read || true)
[ -n "$XSREAD" ] || XSREAD=$(realpath build/xenstored/usr/bin/xenstore-read 2>/dev/null || true)

t0=$(date +%s.%N)
tmp=$(mktemp -d /tmp/xenram-demo.XXXXXX)
h1=$tmp/host1
h2=$tmp/host2

cleanup() {
    local rc=$? h f pid
    trap - EXIT INT TERM
    for h in "$h1" "$h2"; do
        # A host stops its domains' device models, then itself.
        if [ -S "$h/xensim.sock" ]; then
            "$XENSIM" --dir "$h" stop >/dev/null 2>&1 || true
        fi
    done
    # Whatever a host could not stop (it died?): the device models it knew.
    for f in "$h1"/domain-*.json "$h2"/domain-*.json; do
        [ -e "$f" ] || continue
        pid=$(sed -n 's/^ *"pid": *\([0-9]*\).*/\1/p' "$f")
        if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    for h in "$h1" "$h2"; do
        if [ -e "$h/xensim.pid" ]; then
            kill -KILL "$(cat "$h/xensim.pid")" 2>/dev/null || true
        fi
    done
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
xs_read() {  # HOST PATH
    if [ -n "$XSREAD" ]; then
        XENSTORED_PATH=$1/xenstored/socket "$XSREAD" "$2" 2>/dev/null || echo "(none)"
    else
        echo "(xenstore-read not installed)"
    fi
}

say "Two simulated Xen hosts, each with Debian's xenstored"
for h in "$h1" "$h2"; do
    "$XENSIM" --dir "$h" start --xenstore on || {
        echo "demo: cannot start a simulated host with xenstore; is Debian's xenstored unpacked ('make xenstored', done by scripts/deps.sh)?" >&2
        exit 1
    }
done

say "A guest on host 1: 128 MiB (8 MiB of it VRAM), its vCPU writing random pages at 20 MiB/s;"
echo "   xenram as its device model, started as libxl does, its test DMA device writing 1000 pages/s"
d=$("$XENSIM" --dir "$h1" create --mem 128 --vram 8 --name demo \
        --workload random:20 --dm "$XENRAM" --dm-arg --test-dma=1000)
pid=$(sed -n 's/^ *"pid": *\([0-9]*\).*/\1/p' "$h1/domain-$d.json")
echo "   domain $d, device model pid $pid:"
tr '\0' '\n' < "/proc/$pid/cmdline" |
    awk 'NR == 1 { printf "     %s", $0; next }
         /^-/    { printf " \\\n       %s", $0; next }
                 { printf " %s", $0 }
         END     { print "" }'
echo "   xenstore device-model/$d/state = $(xs_read "$h1" "/local/domain/0/device-model/$d/state")"
"$XENSIM" --dir "$h1" list

# Let the guest and the device model write for a moment before moving them.
sleep 1

say "Live migration host 1 -> host 2, as xl migrate does it (libxl + libxc):"
echo "   dirty log on in xenram and in Xen, copy rounds, pause + QMP stop + device state,"
echo "   final round; xenram -incoming fd:N on host 2, QMP cont, unpause; host 1's copy destroyed"
"$XENSIM" --dir "$h1" migrate demo --to "$h2" --checksum-at-suspend "$tmp/sums"

say "Checks"
nd=$(sed -n 's/^ *"domid": *\([0-9]*\).*/\1/p' "$h2"/domain-*.json | head -n1)
src_sum=$(awk '$1 == "source" { print $2 " (" $3 " pages)" }' "$tmp/sums")
dst_sum=$(awk '$1 == "destination" { print $2 " (" $3 " pages)" }' "$tmp/sums")
ok=1
echo "   source memory at suspend : $src_sum"
echo "   destination before run   : $dst_sum"
if [ -n "$src_sum" ] && [ "$src_sum" = "$dst_sum" ]; then
    echo "   -> identical (XXH3-128 over every populated frame and its number)"
else
    echo "   -> DIFFERENT: pages were lost"; ok=0
fi
state=$(xs_read "$h2" "/local/domain/0/device-model/$nd/state")
echo "   host 2: device-model/$nd/state = $state"
[ "$state" = running ] || [ -z "$XSREAD" ] || ok=0
if "$XENSIM" --dir "$h2" verify "$nd" | sed 's/^/   host 2: verify: /'; then :; else ok=0; fi
echo "   host 1:"; "$XENSIM" --dir "$h1" list | sed 's/^/     /'
echo "   host 2:"; "$XENSIM" --dir "$h2" list | sed 's/^/     /'
if "$XENSIM" --dir "$h1" list | grep -q '^demo '; then
    echo "   -> the guest is still on host 1"; ok=0
fi

t1=$(date +%s.%N)
if [ "$ok" = 1 ]; then
    printf '\nDemo passed in %s s: the guest moved to host 2 with all of its memory,\nincluding what xenram wrote during the migration.\n' \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
else
    printf '\nDemo FAILED (see above).\n'
    exit 1
fi
