#!/bin/busybox sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# /init of the real-Xen tier's dom0 (a busybox initramfs): the Xen drivers,
# xenstored, xen-init-dom0, xenconsoled -- what the init scripts of a Xen
# host start -- then the tests (/xrt/dom0-tests.sh), then power off (QEMU
# runs with -no-reboot, so the reboot ends it).
/bin/busybox --install -s /bin
export PATH=/xrt:/usr/lib/xen-4.17/bin:/usr/bin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /run /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /var/run/xen /var/log/xen /var/lib/xen
# Keep the console for results: the kernel's own messages stay out of it.
echo 1 > /proc/sys/kernel/printk
echo "XRT-DOM0-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
M=/lib/modules/$(uname -r)/kernel/drivers/xen
fail=
for m in xen-privcmd xen-evtchn xen-gntdev xen-gntalloc xenfs/xenfs; do
    insmod $M/$m.ko || fail="$fail insmod:$m"
done
mount -t xenfs xenfs /proc/xen || fail="$fail xenfs"
xenstored --pid-file /run/xenstored.pid || fail="$fail xenstored"
xen-init-dom0 >/dev/null || fail="$fail xen-init-dom0"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest \
    --log-dir=/var/log/xen || fail="$fail xenconsoled"
if [ -n "$fail" ]; then
    echo "XRT-DOM0-BROKEN:$fail"
else
    echo "XRT-DOM0-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
    sh /xrt/dom0-tests.sh
fi
echo "XRT-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
reboot -f
sleep 30
