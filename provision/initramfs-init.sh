#!/bin/busybox sh
# hostbridge guest, first stage (/init of the initramfs): move the system into a tmpfs and
# switch_root to it, because containers pivot_root and pivot_root(2) refuses the initramfs'
# rootfs. Then PID 1 is /usr/sbin/hostbridge-init. busybox only: every step is boot time.
set -o pipefail 2>/dev/null
/bin/busybox mount -t tmpfs -o mode=0755 root /sysroot || {
    echo "HOSTBRIDGE-GUEST-ERROR: cannot mount a tmpfs for the root filesystem" >/dev/console
    exit 1
}
cd /
for d in *; do
    case "$d" in
        sysroot|init|proc|sys|dev) /bin/busybox mkdir -p "/sysroot/$d" ;;
        *) /bin/busybox cp -a "$d" /sysroot/ || {
               echo "HOSTBRIDGE-GUEST-ERROR: cannot copy /$d into the root tmpfs (too little memory?)" >/dev/console
               exit 1
           } ;;
    esac
done
exec /bin/busybox switch_root /sysroot /usr/sbin/hostbridge-init
