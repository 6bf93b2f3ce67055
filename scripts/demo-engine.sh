#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The same guest as scripts/demo.sh (128 MiB, vCPUs writing, xenram's test
# DMA writing), moved by xenram's own migration engine instead of the
# libxc-like path: QEMU's migration QMP on the source, -incoming unix: on
# the destination, two data channels, and the memory compared at the
# switchover.  Needs `make all` and `make xenstored`.
#
#   scripts/demo-engine.sh [BUILD]        (default BUILD=build)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${1:-build}
XENSIM=$(realpath "$BUILD/xensim" 2>/dev/null || true)
XENRAM=$(realpath "$BUILD/xenram" 2>/dev/null || true)
if [ ! -x "$XENSIM" ] || [ ! -x "$XENRAM" ]; then
    echo "demo-engine: $BUILD/xensim and $BUILD/xenram are missing: run 'make' first" >&2
    exit 1
fi
tmp=$(mktemp -d /tmp/xenram-demo-engine.XXXXXX)
h1=$tmp/host1
h2=$tmp/host2
cleanup() {
    for h in "$h1" "$h2"; do
        [ -S "$h/xensim.sock" ] && "$XENSIM" --dir "$h" stop >/dev/null 2>&1
    done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"$XENSIM" --dir "$h1" start >/dev/null
"$XENSIM" --dir "$h2" start >/dev/null
d=$("$XENSIM" --dir "$h1" create --mem 128 --vram 8 --name demo \
        --workload random:20 --dm "$XENRAM" --dm-arg=--test-dma=200)
echo "host 1: guest d$d runs; its vCPUs and xenram's test DMA write memory"
"$XENSIM" --dir "$h1" migrate "$d" --to "$h2" --engine xenram --channels 2 \
    --checksum-at-suspend "$tmp/sums" | tee "$tmp/report"
grep -q "0 pages differ: identical" "$tmp/report" || {
    echo "demo-engine: the destination's memory differs from the source's" >&2
    exit 1
}
"$XENSIM" --dir "$h2" verify 1 | sed 's/^/host 2: verify: /'
echo
echo "Demo passed: xenram moved the guest's RAM itself, memory identical at the switchover."
