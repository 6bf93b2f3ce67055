#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# mkinitrd.sh TREE BUILD OUT
#
# Build the real-Xen tier's boot files in OUT from the unpacked Debian
# packages in TREE (fetch.sh) and the programs in BUILD:
#   OUT/xen.elf        the hypervisor (multiboot ELF, for QEMU's -kernel)
#   OUT/vmlinuz        dom0's kernel
#   OUT/dom0.cpio      dom0's initramfs: busybox, Xen's tools and libraries,
#                      the Xen drivers, xenram, the test programs, and the
#                      test guest's kernel and initramfs (/xrt/guest)
#   OUT/guest.cpio.gz  the test guest's initramfs: busybox + xr-workload
set -euo pipefail
tree=${1:?usage: mkinitrd.sh TREE BUILD OUT}
build=${2:?}
out=${3:?}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
kver=$(cd "$tree/lib/modules" && ls | head -n1)
busybox=/bin/busybox
xenram=${XENRAM_BIN:-$build/xenram}
for f in "$xenram" "$build/realxen/xr-realxen" "$build/realxen/xr-workload" "$build/realxen/xr-memdig" "$build/realxen/xr-shell" "$build/realxen/xr-pager"; do
    [ -x "$f" ] || { echo "mkinitrd: $f is missing (make check-xen builds it)" >&2; exit 1; }
done

cpio_of() { # DIR -> stdout, newc, owned by root
    (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
}

# ---- the guest -------------------------------------------------------------------
g=$out/guest-root
rm -rf "$g"
mkdir -p "$g"/{bin,proc,sys,dev}
cp "$busybox" "$g/bin/busybox"
cp "$build/realxen/xr-workload" "$g/bin/xr-workload"
install -m 755 "$here/guest-init.sh" "$g/init"
cpio_of "$g" | gzip -1 > "$out/guest.cpio.gz"

# ---- dom0 --------------------------------------------------------------------------
r=$out/dom0-root
rm -rf "$r"
mkdir -p "$r"/{bin,sbin,proc,sys,dev,tmp,run,etc,lib64,xrt/guest} \
    "$r"/usr/{bin,lib/x86_64-linux-gnu,share/seabios} \
    "$r"/var/{run/xen,lib/xen,log/xen,lib/xenstored} \
    "$r/lib/modules/$kver/kernel/drivers/xen/xenfs"
ln -s usr/lib/x86_64-linux-gnu "$r/lib/x86_64-linux-gnu"
cp "$busybox" "$r/bin/busybox"
mkdir -p "$r/usr/lib/xen-4.17"
cp -a "$tree/usr/lib/xen-4.17/bin" "$tree/usr/lib/xen-4.17/boot" "$r/usr/lib/xen-4.17/"
[ -d "$tree/usr/lib/xen-4.17/lib" ] && cp -a "$tree/usr/lib/xen-4.17/lib" "$r/usr/lib/xen-4.17/"
cp -a "$tree"/usr/bin/xenstore* "$r/usr/bin/"
cp -a "$tree/etc/xen" "$r/etc/"
cp -a "$tree"/usr/lib/x86_64-linux-gnu/*.so* "$r/usr/lib/x86_64-linux-gnu/"
# libxl hands hvmloader SeaBIOS for qemu-xen guests.
cp /usr/share/seabios/bios-256k.bin "$r/usr/share/seabios/"
m=$tree/lib/modules/$kver/kernel/drivers/xen
cp "$m"/{xen-privcmd,xen-evtchn,xen-gntdev,xen-gntalloc}.ko "$r/lib/modules/$kver/kernel/drivers/xen/"
cp "$m/xenfs/xenfs.ko" "$r/lib/modules/$kver/kernel/drivers/xen/xenfs/"
cp "$xenram" "$build/realxen/xr-realxen" "$build/realxen/xr-memdig" \
    "$build/realxen/xr-shell" "$build/realxen/xr-pager" "$r/xrt/"
# xl migrate's ssh stand-in: "xr-ssh HOST CMD..." runs CMD here.
printf '#!/bin/sh\nshift\nexec "$@"\n' > "$r/xrt/xr-ssh"
chmod 755 "$r/xrt/xr-ssh"
install -m 755 "$here/dom0-init.sh" "$r/init"
install -m 644 "$here/dom0-tests.sh" "$r/xrt/dom0-tests.sh"
install -m 644 "$here/dom0-engine.sh" "$r/xrt/dom0-engine.sh"
install -m 644 "$here/dom0-postcopy.sh" "$r/xrt/dom0-postcopy.sh"
install -m 644 "$here/dom0-restrict.sh" "$r/xrt/dom0-restrict.sh"
cp "$tree/boot/vmlinuz-$kver" "$r/xrt/guest/vmlinuz"
cp "$out/guest.cpio.gz" "$r/xrt/guest/initrd.gz"
echo "root:x:0:0:root:/:/bin/sh" > "$r/etc/passwd"
echo "root:x:0:" > "$r/etc/group"

# Every shared library the ELF files need, from the tree first (Debian's Xen
# libraries) and the host otherwise; the loader too.
export LD_LIBRARY_PATH=$tree/usr/lib/x86_64-linux-gnu:$tree/usr/lib/xen-4.17/lib
find "$r" -type f \( -perm -u+x -o -name '*.so*' \) | while read -r f; do
    head -c 4 "$f" | grep -q ELF && ldd "$f" 2>/dev/null || true
done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
while read -r name path; do
    dst=$r/usr/lib/x86_64-linux-gnu/$name
    [ -e "$dst" ] || cp -L "$path" "$dst"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$r/lib64/"
# glibc loads it at run time (pthread_cancel), ldd does not list it.
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$r/usr/lib/x86_64-linux-gnu/"
cpio_of "$r" > "$out/dom0.cpio"

zcat "$tree/boot/xen-4.17-amd64.gz" > "$out/xen.elf"
cp "$tree/boot/vmlinuz-$kver" "$out/vmlinuz"
rm -rf "$g" "$r"
echo "mkinitrd: $(du -h "$out/dom0.cpio" | cut -f1) dom0 initramfs, kernel $kver" >&2
