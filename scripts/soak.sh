#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The migration soak (issue 14, docs/testing.md "Soak"): one guest, its
# vCPUs and xenram's test DMA writing throughout, migrated back and forth
# between two simulated hosts until COUNT migrations or SECONDS have
# passed, with RAM hot-plugged and unplugged at random between them.
# Every migration is checked page by page (xensim's digests of the source
# at switchover and of the destination before it runs, XXH3-128 over
# every populated frame and its number) and every destination by
# `xensim verify` (each page is zero, a vCPU stamp of its own frame or a
# test-DMA page of its own frame).  The paths alternate: libxc's
# (`xl migrate`'s) and xenram's own engine with 1 or 2 channels.
#
#   scripts/soak.sh [BUILD]    SOAK_COUNT=1000 SOAK_SECONDS=3600 SOAK_SEED=N
#
# Prints one line per migration and a summary; exit 0 only when every
# migration succeeded with 0 differing pages and every verify passed.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${1:-build}
COUNT=${SOAK_COUNT:-1000}
SECONDS_MAX=${SOAK_SECONDS:-3600}
SEED=${SOAK_SEED:-$(date +%s)}
XENSIM=$(realpath "$BUILD/xensim" 2>/dev/null || true)
XENRAM=$(realpath "$BUILD/xenram" 2>/dev/null || true)
if [ ! -x "$XENSIM" ] || [ ! -x "$XENRAM" ]; then
    echo "soak: $BUILD/xensim and $BUILD/xenram are missing: run 'make' first" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/xenram-soak.XXXXXX)
hosts=("$tmp/host1" "$tmp/host2")
cleanup() {
    local rc=$? h
    trap - EXIT INT TERM
    for h in "${hosts[@]}"; do
        [ -S "$h/xensim.sock" ] && "$XENSIM" --dir "$h" stop >/dev/null 2>&1 || true
        [ -e "$h/xensim.pid" ] && kill -KILL "$(cat "$h/xensim.pid")" 2>/dev/null || true
    done
    # Keep what a failure left for a look; remove a passed run.
    if [ "$rc" = 0 ]; then rm -rf "$tmp"; else echo "soak: logs kept in $tmp" >&2; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for h in "${hosts[@]}"; do
    "$XENSIM" --dir "$h" start --xenstore on >/dev/null || {
        echo "soak: cannot start a simulated host with xenstore ('make xenstored')" >&2
        exit 1
    }
done

# 32 MiB of RAM and room for 4 slots of 64 MiB (static-max 288 MiB).
BASE=32
SLOT_MIB=64
SLOTS=4
"$XENSIM" --dir "${hosts[0]}" create --mem $BASE --vram 8 --maxmem $((BASE + SLOTS * SLOT_MIB)) \
    --name soak --workload random:10 --dm "$XENRAM" --dm-arg --test-dma=500 >/dev/null

RANDOM=$SEED
online=()           # slot numbers plugged now
here=0              # index of the host the guest is on
migrations=0 differing=0 plugs=0 unplugs=0 failures=0
t0=$(date +%s)
echo "soak: seed $SEED, up to $COUNT migrations or $SECONDS_MAX s, logs in $tmp"

# The slot numbers the guest has online (xensim hotplug list).
slots_online() {
    "$XENSIM" --dir "${hosts[$here]}" hotplug soak list |
        awk '$2 == "online" { printf "%s ", $1 }'
}

fail() { echo "soak: migration $migrations: $*"; failures=$((failures + 1)); }

while [ $migrations -lt "$COUNT" ] && [ $(($(date +%s) - t0)) -lt "$SECONDS_MAX" ]; do
    h=${hosts[$here]}
    read -r -a online <<< "$(slots_online)"
    action=$((RANDOM % 10))
    what=-
    if [ $action -lt 3 ] && [ ${#online[@]} -lt $SLOTS ]; then
        # Plug: the target first covers it, as xl mem-set before a plug.
        "$XENSIM" --dir "$h" mem-set soak $((BASE + (${#online[@]} + 1) * SLOT_MIB)) >/dev/null
        if "$XENSIM" --dir "$h" hotplug soak add ${SLOT_MIB}M > "$tmp/plug.out" 2>&1; then
            plugs=$((plugs + 1)); what=plug
        else
            fail "hot-plug refused: $(cat "$tmp/plug.out")"
        fi
    elif [ $action -lt 5 ] && [ ${#online[@]} -gt 0 ]; then
        s=${online[$((RANDOM % ${#online[@]}))]}
        if "$XENSIM" --dir "$h" hotplug soak remove "$s" > "$tmp/plug.out" 2>&1; then
            "$XENSIM" --dir "$h" mem-set soak $((BASE + (${#online[@]} - 1) * SLOT_MIB)) >/dev/null
            unplugs=$((unplugs + 1)); what="unplug $s"
        else
            fail "hot-unplug of slot $s refused: $(cat "$tmp/plug.out")"
        fi
    fi
    to=$((1 - here))
    case $((migrations % 3)) in
        0) path=libxc; args=() ;;
        1) path="engine 1ch"; args=(--engine xenram --channels 1) ;;
        *) path="engine 2ch"; args=(--engine xenram --channels 2) ;;
    esac
    migrations=$((migrations + 1))
    if ! "$XENSIM" --dir "$h" migrate soak --to "${hosts[$to]}" "${args[@]}" --no-progress \
            --checksum-at-suspend "$tmp/sums" > "$tmp/mig.out" 2>&1; then
        fail "$path failed: $(tail -n 3 "$tmp/mig.out" | tr '\n' ' ')"
        break
    fi
    here=$to
    # Both paths print "memory : source at ... destination ...: identical".
    if ! grep -q "^ *memory .*identical$" "$tmp/mig.out"; then
        n=$(sed -n 's/.*, \([0-9]*\) pages differ.*/\1/p' "$tmp/mig.out")
        differing=$((differing + ${n:-1}))
        fail "$path: $(grep 'memory' "$tmp/mig.out")"
    fi
    if ! "$XENSIM" --dir "${hosts[$here]}" verify soak > "$tmp/verify.out" 2>&1; then
        fail "verify after $path: $(cat "$tmp/verify.out")"
    fi
    printf 'soak: %4d %-10s %-9s slots online %d, %s\n' "$migrations" "$path" "$what" \
        "$(slots_online | wc -w)" "$(cat "$tmp/verify.out")"
done

echo "soak: $migrations migrations in $(($(date +%s) - t0)) s (seed $SEED), $differing differing pages," \
     "$plugs hot-plugs, $unplugs hot-unplugs, $failures failures"
[ $failures = 0 ]
