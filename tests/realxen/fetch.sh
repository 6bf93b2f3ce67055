#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# fetch.sh CACHE
#
# Everything the real-Xen tier needs from Debian, kept in CACHE between runs:
#   - on the host (installed with apt-get, as root): qemu-system-x86,
#     busybox-static, cpio;
#   - Xen 4.17 (hypervisor, tools, runtime libraries) and the Linux kernel
#     that boots dom0 and the guests, fetched with `apt-get download` into
#     CACHE/debs and unpacked with `dpkg-deb -x` (no maintainer script runs,
#     nothing is installed) into CACHE/tree-<hash of the .deb names>.
# Prints the path of the unpacked tree on its last line.  A cache hit makes
# no download; with no mirror reachable, the .debs already in the cache are
# used.
set -euo pipefail

cache=${1:?usage: fetch.sh CACHE}
mkdir -p "$cache/debs"
cache=$(cd "$cache" && pwd)
say() { echo "realxen-fetch: $*" >&2; }

host_pkgs=(qemu-system-x86 busybox-static cpio)
xen_pkgs=(xen-hypervisor-4.17-amd64 xen-hypervisor-common xen-utils-4.17
          xen-utils-common xenstore-utils libxencall1 libxenevtchn1
          libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxenstore4
          libxentoollog1 libxendevicemodel1 libxentoolcore1 libxenhypfs1
          libyajl2)

updated=0
apt_update() {
    [ $updated = 1 ] && return 0
    updated=1
    say "apt-get update"
    apt-get update -qq >&2 || say "apt-get update failed"
}

# ---- host tools -------------------------------------------------------------
missing=()
for p in "${host_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "missing host packages ${missing[*]} (run as root to install them)"
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || {
        apt_update
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    }
fi

# ---- the kernel: whatever version linux-image-amd64 points at ----------------
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}
kpkg=$(kernel_pkg)
if [ -z "$kpkg" ]; then
    apt_update
    kpkg=$(kernel_pkg)
fi

# ---- resolve the .deb file names (no download) -------------------------------
uris() { apt-get download --print-uris "$@" 2>/dev/null; }
all=("${xen_pkgs[@]}")
[ -n "$kpkg" ] && all+=("$kpkg")
list=$(uris "${all[@]}" || true)
if [ -z "$list" ] || [ -z "$kpkg" ]; then
    apt_update
    [ -z "$kpkg" ] && kpkg=$(kernel_pkg) && [ -n "$kpkg" ] && all+=("$kpkg")
    list=$(uris "${all[@]}" || true)
fi

debs=()
if [ -n "$list" ]; then
    # 'URI' FILE SIZE HASH
    while read -r uri file _; do
        debs+=("$file")
        if [ ! -s "$cache/debs/$file" ]; then
            need=1
        fi
    done <<<"$list"
    if [ "${need:-0}" = 1 ]; then
        say "downloading ${#all[@]} packages into $cache/debs"
        # As root into a directory _apt cannot enter: no sandbox user.
        (cd "$cache/debs" &&
         apt-get download -o APT::Sandbox::User=root "${all[@]}" >&2)
    else
        say "all ${#debs[@]} packages cached"
    fi
else
    # No mirror: take the newest cached .deb of each package.
    say "no package lists or mirror; using the cached .debs"
    for p in "${xen_pkgs[@]}" "linux-image-[0-9]*-amd64"; do
        f=$(cd "$cache/debs" && ls -1 ${p}_*.deb 2>/dev/null | sort -V | tail -n1)
        [ -n "$f" ] || { say "no cached package $p"; exit 1; }
        debs+=("$f")
    done
fi

# ---- unpack ---------------------------------------------------------------------
key=$(printf '%s\n' "${debs[@]}" | sort | md5sum | cut -c1-12)
tree=$cache/tree-$key
if [ ! -f "$tree/.complete" ]; then
    say "unpacking into $tree"
    rm -rf "$tree" "$tree.tmp"
    mkdir -p "$tree.tmp"
    for f in "${debs[@]}"; do
        dpkg-deb -x "$cache/debs/$f" "$tree.tmp"
    done
    touch "$tree.tmp/.complete"
    mv "$tree.tmp" "$tree"
    # Old trees and superseded .debs go.
    for old in "$cache"/tree-*; do
        [ "$old" = "$tree" ] || rm -rf "$old"
    done
    keep=$(printf '%s\n' "${debs[@]}")
    for f in "$cache"/debs/*.deb; do
        grep -qxF "$(basename "$f")" <<<"$keep" || rm -f "$f"
    done
fi
echo "$tree"
