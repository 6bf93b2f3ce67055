#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Install what building and testing xenram needs on Debian 12 (as root):
# the toolchain, Debian's Xen libraries and headers, liburcu, cmocka,
# jansson and xmllint (the tests check xensim's SVG reports); then unpack
# Debian's xenstored for the simulator (no install scripts run, nothing is
# started).  Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    build-essential make pkg-config
    libxen-dev liburcu-dev libcmocka-dev libjansson-dev zlib1g-dev libzstd-dev libxxhash-dev
    xenstore-utils valgrind socat
    libxml2-utils
)

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$p")
done
if [ "${#missing[@]}" -ne 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's xenstored for the simulator, unpacked into the build tree.
if [ -x xen/sim/xenstore/fetch-xenstored.sh ]; then
    xen/sim/xenstore/fetch-xenstored.sh
fi
echo "deps.sh: all dependencies present"
