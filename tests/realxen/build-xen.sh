#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# build-xen.sh CACHE [SECONDS]
#
# The real-Xen tier's second hypervisor: Debian's Xen built from Debian's
# own source package with memory paging, which Debian's binary hypervisor
# lacks (xc_mem_paging_enable: ENOSYS), for the postcopy checks
# (dom0-postcopy.sh, docs/testing.md).  Kept in CACHE between runs:
#   CACHE/xensrc/                 the source package (.dsc, .orig, .debian),
#                                 fetched with `apt-get source --download-only`
#                                 through a private sources list and private
#                                 package lists (the machine's apt
#                                 configuration is not touched);
#   CACHE/xen-paging-VER-KEY/     xen.elf, config, build.log; KEY hashes the
#                                 configuration below, so a change rebuilds.
# The build: dpkg-source -x (Debian's patches applied), then in xen/ only
# `make defconfig`, the options below appended, `make olddefconfig`,
# `make -j2` (~60 s on 2 cores); flex and bison are installed (root) when
# missing.  SECONDS bounds the fetch and the build together.
# Prints the path of xen.elf on its last line; on failure exits 1 and its
# last line on stderr is the reason, in one sentence.
set -uo pipefail
cache=${1:?usage: build-xen.sh CACHE [SECONDS]}
budget=${2:-600}
mkdir -p "$cache/xensrc"
cache=$(cd "$cache" && pwd)
t_end=$(($(date +%s) + budget))
say() { echo "realxen-build-xen: $*" >&2; }
die() { say "$*"; exit 1; }
left() { local l=$((t_end - $(date +%s))); [ $l -gt 0 ] && echo $l || echo 1; }

# What makes this hypervisor; part of the cache key.
config_opts="CONFIG_UNSUPPORTED=y
CONFIG_MEM_PAGING=y"
mirror=${XEN_SRC_MIRROR:-http://deb.debian.org/debian}
suite=${XEN_SRC_SUITE:-bookworm}

dsc_of() { ls -1 "$cache"/xensrc/xen_*.dsc 2>/dev/null | sort -V | tail -n1; }

# ---- the source package ---------------------------------------------------------
dsc=$(dsc_of)
if [ -z "$dsc" ] || [ -n "${XEN_SRC_REFRESH:-}" ]; then
    # A private sources list with the one deb-src line, private lists: only
    # this command sees them.
    a=$cache/apt-src
    mkdir -p "$a/lists/partial" "$a/etc"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" \
        > "$a/etc/sources.list"
    aptopts=(-o Dir::Etc::SourceList="$a/etc/sources.list"
             -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$a/lists"
             -o APT::Sandbox::User=root)
    say "fetching the index of $suite's sources (private lists in $a)"
    timeout "$(left)" apt-get "${aptopts[@]}" update -qq >&2 ||
        die "apt-get update of the deb-src entry '$mirror $suite main' failed (no network?)"
    say "apt-get source --download-only xen"
    (cd "$cache/xensrc" &&
     timeout "$(left)" apt-get "${aptopts[@]}" source --download-only xen >&2) ||
        die "apt-get source --download-only xen from '$mirror $suite' failed"
    dsc=$(dsc_of)
    [ -n "$dsc" ] || die "apt-get source left no xen_*.dsc in $cache/xensrc"
fi
ver=$(basename "$dsc" .dsc); ver=${ver#xen_}
key=$(printf '%s\n%s\n' "$ver" "$config_opts" | md5sum | cut -c1-12)
out=$cache/xen-paging-$ver-$key
if [ -f "$out/.complete" ] && [ -s "$out/xen.elf" ]; then
    say "cached: $out"
    echo "$out/xen.elf"
    exit 0
fi

# ---- build tools ------------------------------------------------------------------
missing=()
for p in flex bison; do command -v $p > /dev/null || missing+=($p); done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "building Xen needs ${missing[*]} (run as root to install them)"
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive timeout "$(left)" \
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
fi

# ---- build ------------------------------------------------------------------------
b=$cache/build.tmp
rm -rf "$b" "$out.tmp"
mkdir -p "$out.tmp"
log=$out.tmp/build.log
say "unpacking $ver into $b"
dpkg-source --no-check -x "$dsc" "$b" > "$log" 2>&1 ||
    die "dpkg-source -x $dsc failed: $(tail -n 1 "$log")"
t0=$(date +%s)
say "building xen/ with ${config_opts//$'\n'/ } (make -j2)"
# timeout signals its whole process group: make and its children too.
timeout "$(left)" bash -c '
    set -e
    cd "$1/xen"
    make defconfig
    printf "%s\n" "$2" >> .config
    make olddefconfig
    for o in $2; do grep -qx "$o" .config || { echo "olddefconfig dropped $o"; exit 1; }; done
    make -j2' build "$b" "$config_opts" >> "$log" 2>&1 < /dev/null
rc=$?
if [ $rc != 0 ] || [ ! -s "$b/xen/xen" ]; then
    reason=$(grep -a -e 'rror' -e 'dropped' "$log" | tail -n 1)
    [ $rc = 124 ] && reason="out of time ($budget s for the fetch and the build)"
    cp "$log" "$cache/build-failed.log"
    rm -rf "$b" "$out.tmp"
    die "building the paging hypervisor failed (status $rc): ${reason:-see $cache/build-failed.log}"
fi
cp "$b/xen/xen" "$out.tmp/xen.elf"
cp "$b/xen/.config" "$out.tmp/config"
echo "$(($(date +%s) - t0))" > "$out.tmp/build-seconds"
touch "$out.tmp/.complete"
rm -rf "$out" "$b"
mv "$out.tmp" "$out"
# Other versions or configurations go.
for old in "$cache"/xen-paging-*; do
    [ "$old" = "$out" ] || rm -rf "$old"
done
say "built in $(cat "$out/build-seconds") s: $out"
echo "$out/xen.elf"
