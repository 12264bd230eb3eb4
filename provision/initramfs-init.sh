#!/bin/busybox sh
# hostbridge guest, first stage (/init of the initramfs): move the system into a tmpfs and
# switch_root to it, because containers pivot_root and pivot_root(2) refuses the initramfs'
# rootfs. Then PID 1 is /usr/sbin/hostbridge-init. busybox only: every step is boot time.
set -o pipefail 2>/dev/null
bb=/bin/busybox
fail() {
    echo "HOSTBRIDGE-GUEST-ERROR: $*" >/dev/console
    exit 1
}
$bb mount -t proc proc /proc || fail "cannot mount /proc"
# The boot's own drivers load on the second vCPU while the first copies the system.
$bb modprobe -a -q virtio_pci virtio_blk crc32c_generic ext4 virtio_net qemu_fw_cfg 9pnet_virtio 9p &
loading=$!
$bb mount -t tmpfs -o mode=0755 root /sysroot || fail "cannot mount a tmpfs for the root filesystem"
cd /
for d in *; do
    case "$d" in
        sysroot|init|proc|sys|dev) $bb mkdir -p "/sysroot/$d" ;;
        *) $bb cp -a "$d" /sysroot/ || fail "cannot copy /$d into the root tmpfs (too little memory?)" ;;
    esac
done
wait $loading
read -r up _ </proc/uptime
echo "hostbridge /init [$up] system copied to RAM" >/dev/console
$bb umount /proc
exec $bb switch_root /sysroot /usr/sbin/hostbridge-init
