#!/bin/busybox sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# /init of the real-Xen tier's test guest: the stamping workload of
# tests/realxen/guest-workload.c, sized by "xrwl=MIB:RATE" on the kernel
# command line, then nothing but a heartbeat.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "GUEST-UP: $(uname -r) $(head -n1 /proc/meminfo)"
wl=$(sed -n 's/.*xrwl=\([0-9]*\):\([0-9]*\).*/\1 \2/p' /proc/cmdline)
if [ -n "$wl" ]; then
    /bin/xr-workload $wl &
fi
while true; do
    sleep 30
    echo "guest alive $(cut -d' ' -f1 /proc/uptime)"
done
