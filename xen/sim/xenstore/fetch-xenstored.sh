#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# fetch-xenstored.sh [DESTDIR]
#
# Put Debian's xenstored and xenstore-* tools where the simulator finds them,
# without installing anything: `apt-get download` the packages and unpack them
# with `dpkg-deb -x` into DESTDIR (default: $XS_SIM_XENSTORED_DIR, else
# build/xenstored, the one cache every build directory uses).  No
# maintainer script runs, no service starts, nothing outside DESTDIR changes.
#
#   DESTDIR/usr/lib/xen-4.17/bin/xenstored      from xen-utils-4.17
#   DESTDIR/usr/bin/xenstore-{read,write,...}   from xenstore-utils
#
# Skips the download when both are already there.  Runtime libraries the
# binaries need that are not on the machine (normally all come with
# libxen-dev; the three Xen-facing ones are the simulator's stand-ins) are
# unpacked the same way into DESTDIR/usr/lib/x86_64-linux-gnu.
# See docs/xenstore-sim.md.
set -euo pipefail

dest=${1:-${XS_SIM_XENSTORED_DIR:-build/xenstored}}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
case $dest in
    /|/usr|/usr/*|/etc|/etc/*|/lib|/lib/*|/var|/opt)
        echo "fetch-xenstored: refusing to unpack into $dest: give a private directory" >&2
        exit 2 ;;
esac
xenstored=$dest/usr/lib/xen-4.17/bin/xenstored
tool=$dest/usr/bin/xenstore-read
# The libraries the simulator provides itself (xen/sim, xen/sim/xenstore).
stand_ins='libxenctrl.so.4.17|libxenevtchn.so.1|libxengnttab.so.1'

say() { echo "fetch-xenstored: $*"; }

# Which package ships a runtime library (the ones xenstored and the tools
# may need).
package_of() {
    case $1 in
        libxenstore.so.4)   echo libxenstore4 ;;
        libxentoolcore.so.1) echo libxentoolcore1 ;;
        libxentoollog.so.1) echo libxentoollog1 ;;
        libxencall.so.1)    echo libxencall1 ;;
        libxenforeignmemory.so.1) echo libxenforeignmemory1 ;;
        libxendevicemodel.so.1) echo libxendevicemodel1 ;;
        libyajl.so.2)       echo libyajl2 ;;
        *) return 1 ;;
    esac
}

# apt-get download PKG... into the current directory; refresh the package
# lists once if apt does not know them yet (fresh machine).
download() {
    if ! apt-get download "$@" 2>download.err; then
        say "apt-get download failed ($(tail -n1 download.err)); running apt-get update once"
        apt-get update -qq
        apt-get download "$@"
    fi
}

unpack_debs() {
    local deb
    for deb in ./*.deb; do
        say "unpacking $(basename "$deb") into $dest"
        dpkg-deb -x "$deb" "$dest"
        rm -f "$deb"
    done
}

if [ -x "$xenstored" ] && [ -x "$tool" ]; then
    say "already unpacked: $xenstored"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # (As root, apt warns that it downloads "unsandboxed": harmless.)
    (
        cd "$work"
        say "apt-get download xen-utils-4.17 xenstore-utils"
        download xen-utils-4.17 xenstore-utils
        unpack_debs
    )
    # Only the binaries are used.  Drop the rest, which includes a
    # directory named "runtime.d" that the top Makefile's
    # `find $(BUILD) -name '*.d'` would try to include as a dependency file.
    rm -rf "${dest:?}/usr/share" "${dest:?}/etc" "${dest:?}/lib" "${dest:?}/var"
    find "${dest:?}" -name '*.d' -exec rm -rf {} +
fi

# Runtime libraries that are missing from this machine (the stand-ins are
# expected to be missing: the simulator provides them).
missing=()
for bin in "$xenstored" "$tool"; do
    while read -r lib; do
        [ -n "$lib" ] && missing+=("$lib")
    done < <(LD_LIBRARY_PATH=$dest/usr/lib/x86_64-linux-gnu ldd "$bin" 2>/dev/null |
             awk '/not found/ {print $1}' | grep -Ev "^($stand_ins)\$" || true)
done
if [ "${#missing[@]}" -ne 0 ]; then
    pkgs=()
    for lib in $(printf '%s\n' "${missing[@]}" | sort -u); do
        if pkg=$(package_of "$lib"); then
            pkgs+=("$pkg")
        else
            say "ERROR: $lib is missing and no package is known for it" >&2
            exit 1
        fi
    done
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (
        cd "$work"
        say "missing runtime libraries: ${missing[*]}; apt-get download ${pkgs[*]}"
        download "${pkgs[@]}"
        unpack_debs
    )
fi

say "xenstored:      $xenstored"
say "xenstore tools: $dest/usr/bin ($(cd "$dest/usr/bin" && echo xenstore-* | tr '\n' ' '))"
say "runtime libs from the machine; stand-ins ($stand_ins) come from \$(BUILD)/sim"
