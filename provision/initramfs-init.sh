#!/bin/busybox sh
# hostbridge guest, first stage (/init of the initramfs): make the system's root a mount that
# pivot_root(2) accepts, then PID 1 is /usr/sbin/hostbridge-init. Containers pivot_root, and
# pivot_root refuses the initramfs' rootfs itself (it is the one mount without a parent). A bind
# mount of it has a parent: bind / on /sysroot, move that over /, chroot into it. Nothing is
# copied (a copy into a tmpfs took seconds under emulation) and nothing is deleted: the system
# stays where the kernel unpacked it. busybox only: every step is boot time.
set -o pipefail 2>/dev/null
bb=/bin/busybox
fail() {
    echo "HOSTBRIDGE-GUEST-ERROR: $*" >/dev/console
    exit 1
}
# The kernel's module loader; left out of the image (assemble.py LINKED_AT_BOOT) so that the
# kernel's own asks before this point fail at once.
$bb ln -sf ../bin/busybox /usr/sbin/modprobe || fail "cannot link /usr/sbin/modprobe"
$bb mount -t proc proc /proc || fail "cannot mount /proc"
read -r up _ </proc/uptime
echo "hostbridge /init [$up] started" >/dev/console
# The drivers the init needs first load on the second vCPU while Python starts on the first
# (the init's own modprobe of the same lists then waits for them): sshd's, then the data disk's and eth0's.
$bb modprobe -a -q virtio_pci qemu_fw_cfg virtio_blk crc32c_generic ext4 virtio_net virtio_console &
$bb umount /proc
$bb mount --bind / /sysroot || fail "cannot bind-mount the root filesystem on /sysroot"
cd /sysroot || fail "cannot enter /sysroot"
$bb mount --move . / || fail "cannot move the root filesystem's bind mount over /"
# The init compiled ahead (by the image's assembler when its Python was the guest's, else by
# the image's first guest: Python compiles a script at each start, never caching it), with the
# script's #! flags. Its Python keeps what it compiles of the image's modules in RAM, below
# the prefix the image's compiled modules are at (assemble.py IMAGE_PYCACHE).
prefix="-X pycache_prefix=/usr/lib/hostbridge/pycache"
[ -f ./usr/lib/hostbridge/hostbridge-init.pyc ] && exec $bb chroot . /usr/bin/python3 -IS $prefix /usr/lib/hostbridge/hostbridge-init.pyc
exec $bb chroot . /usr/bin/python3 -IS $prefix /usr/sbin/hostbridge-init
