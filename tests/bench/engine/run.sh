#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run.sh [MIB] - xenram's own migration engine against its baselines, in
# one run (make bench-engine; docs/PERFORMANCE.md):
#   raw     the same bytes through CHANNELS unix sockets into pre-faulted
#           memfds, nothing of xenram's (raw-limit.c): the machine's limit
#   engine  xensim migrate --engine xenram (2 channels, then 1)
#   libxc   xensim migrate, the simulator's libxc-like xl migrate path
# of a MIB MiB guest whose RAM is full of stamps (non-zero, written by its
# sequential workload) and idle while it moves; then the same engine
# migration of a guest that is 90% zero pages.  Prints each figure and the
# ratios.  BUILD (default build) holds xensim, xenram and the stand-ins.
set -euo pipefail
cd "$(dirname "$0")/../../.."
mib=${1:-1024}
BUILD=${BUILD:-build}
work=$(mktemp -d /tmp/xr-bench-engine.XXXXXX)
trap 'for d in "$work"/a "$work"/b; do XENSIM_DIR=$d $BUILD/xensim stop >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
xs() { XENSIM_DIR=$1 "$BUILD/xensim" "${@:2}"; }
vram=8

cc -std=gnu11 -O2 -o "$work/raw-limit" tests/bench/engine/raw-limit.c
xs "$work/a" start >/dev/null
xs "$work/b" start >/dev/null

# A guest whose RAM is all stamps: its sequential workload walks the RAM
# once (at most a few seconds), then it idles.
filled_guest() { # NAME -> domid
    local d
    d=$(xs "$work/a" create --mem "$mib" --vram $vram --name "$1" \
            --workload sequential:4000 --dm "$BUILD/xenram")
    while :; do
        z=$(xs "$work/a" verify "$d" | sed -n 's/.* \([0-9]*\) zero.*/\1/p')
        # VRAM (vram MiB) and the VGA hole stay zero.
        [ "${z:-0}" -le $((vram * 256 + 64)) ] && break
        sleep 0.5
    done
    xs "$work/a" workload "$d" idle >/dev/null
    echo "$d"
}

field() { sed -n "s/^  $1 *: \([0-9.]*\).*/\1/p"; }

echo "== raw limit: $mib MiB"
raw2=$("$work/raw-limit" "$mib" 2 | awk '{print $4}')
raw1=$("$work/raw-limit" "$mib" 1 | awk '{print $4}')
echo "raw, 2 channels: $raw2 s; 1 channel: $raw1 s"

run_engine() { # CHANNELS [EXTRA...] -> "total downtime"
    local d out
    d=$(filled_guest "g$RANDOM")
    out=$(xs "$work/a" migrate "$d" --to "$work/b" --engine xenram \
              --channels "$1" "${@:2}" --no-progress)
    echo "$out" >&2
    echo "$(echo "$out" | field 'total time') $(echo "$out" | field downtime)"
    xs "$work/b" destroy "$(xs "$work/b" list | awk 'NR > 2 {print $2; exit}')" >/dev/null
}

echo "== engine, 2 channels"
read -r e2 d2 < <(run_engine 2)
echo "== engine, 1 channel"
read -r e1 d1 < <(run_engine 1)

echo "== libxc-like path (xensim migrate)"
d=$(filled_guest "l$RANDOM")
out=$(xs "$work/a" migrate "$d" --to "$work/b" --no-progress)
echo "$out"
lx=$(echo "$out" | field 'total time')
xs "$work/b" destroy "$(xs "$work/b" list | awk 'NR > 2 {print $2; exit}')" >/dev/null

echo "== engine, a 90%-zero guest (bytes on the wire)"
d=$(xs "$work/a" create --mem "$mib" --vram $vram --name z --workload idle \
        --dm "$BUILD/xenram")
xs "$work/a" workload "$d" "hotset:10:4000" >/dev/null
sleep 2
xs "$work/a" workload "$d" idle >/dev/null
nz=$(xs "$work/a" verify "$d" | sed -n 's/.*: \([0-9]*\) stamped.*/\1/p')
out=$(xs "$work/a" migrate "$d" --to "$work/b" --engine xenram --no-progress)
echo "$out"
sent=$(echo "$out" | sed -n 's/^  sent *: [0-9.]* MiB (\([0-9]*\) bytes).*/\1/p')

echo
echo "== summary ($mib MiB guest, stamps, idle)"
awk -v e2="$e2" -v d2="$d2" -v e1="$e1" -v d1="$d1" -v r2="$raw2" \
    -v r1="$raw1" -v lx="$lx" -v nz="$nz" -v sent="$sent" 'BEGIN {
    printf "engine 2 ch : %.3f s, downtime %s ms, %.2fx the raw limit (%.3f s)\n", e2, d2, e2 / r2, r2
    printf "engine 1 ch : %.3f s, downtime %s ms, %.2fx the raw limit (%.3f s)\n", e1, d1, e1 / r1, r1
    printf "libxc path  : %.3f s: the engine (2 ch) takes %.2fx its time\n", lx, e2 / lx
    printf "90%% zero    : %.1f MiB on the wire for %.1f MiB of non-zero pages (%.2fx)\n", sent / 1048576, nz * 4096 / 1048576, sent / (nz * 4096)
    printf "targets     : total <= 1.5x raw: %s; downtime <= 50 ms: %s; faster than libxc: %s\n", (e2 <= 1.5 * r2 ? "ok" : "MISSED"), (d2 <= 50 ? "ok" : "MISSED"), (e2 < lx ? "ok" : "MISSED")
}'
