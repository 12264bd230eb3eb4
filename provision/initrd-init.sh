#!/bin/sh
# hostbridge's initrd: load the modules the root disk needs, mount it, hand over to its init.
# Kept tiny on purpose (busybox only): every second spent here is boot time.
export PATH=/bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
while read -r m; do insmod "$m" 2>/dev/null; done </modules/order
root=/dev/vda
for arg in $(cat /proc/cmdline); do
    case "$arg" in root=*) root=${arg#root=} ;; esac
done
# The disk appears asynchronously once virtio_blk probes it: wait at most ~10 s.
i=0
while [ ! -b "$root" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
if ! mount -t ext4 -o rw "$root" /newroot; then
    echo "hostbridge initrd: cannot mount $root; the base image may be corrupt: rebuild it" >/dev/console
    sleep 5
    echo o >/proc/sysrq-trigger
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/hostbridge-init
