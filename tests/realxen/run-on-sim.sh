#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run-on-sim.sh [BUILD]
#
# The real-Xen tier's dom0 test program (xr-realxen) against the simulator
# instead: a private xensim host, one 128 MiB guest whose vCPU stamps
# 1024 pages/s into 655 pages, the stand-in libraries on LD_LIBRARY_PATH.  Its expectations
# are what Xen 4.17 does, so every "not ok" here is a place where the
# simulator differs from Xen: fixed in xen/sim or listed in
# docs/simulator.md ("Checked against real Xen").  Exit status: that of
# xr-realxen.
set -uo pipefail
build=${1:-${BUILD:-build}}
build=$(cd "$build" && pwd)
dir=$(mktemp -d /tmp/xr-sim.XXXXXX)
export XENSIM_DIR=$dir
trap '"$build/xensim" stop >/dev/null 2>&1; rm -rf "$dir"' EXIT
"$build/xensim" start --xenstore off >/dev/null || exit 1
# hotset:2:4: 1024 pages/s, at random in the first 2% of RAM (655 pages).
d=$("$build/xensim" create --mem 128 --workload hotset:2:4 --name xrsim) || exit 1
sleep 2
LD_LIBRARY_PATH=$build/sim "$build/realxen/xr-realxen" "$d" 128 0 1024
