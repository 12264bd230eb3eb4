#!/bin/sh
# Build hostbridge's small guest image from Debian packages.
#
#   build-image.sh OUTDIR [ARCH] [SUITE] [MIRROR]
#
# OUTDIR (must not exist yet) receives:
#   disk.qcow2     compressed qcow2 holding one ext4 filesystem (no partition table; root=/dev/vda)
#   kernel         the Debian kernel, booted directly with -kernel (no bootloader: boot time matters);
#                  on amd64 the uncompressed vmlinux, entered through PVH
#   initrd.img     a tiny busybox initrd that loads virtio/ext4 and switch_roots to /sbin/hostbridge-init
#   manifest.json  what was built (kernel release, sizes)
# Needs root (debootstrap, chroot), debootstrap, mke2fs >= 1.43 (-d), qemu-img, cpio, kmod, xz, python3.
# hostbridge/vm/image.py runs this once per cache key; users may instead download a published image.
set -eu

OUT=${1:?usage: build-image.sh OUTDIR [ARCH] [SUITE] [MIRROR]}
ARCH=${2:-amd64}
SUITE=${3:-bookworm}
MIRROR=${4:-http://deb.debian.org/debian}
HERE=$(cd "$(dirname "$0")" && pwd)
# What the engine needs in the guest; kmod for modprobe (overlay, bridge, netfilter on demand);
# tini for its tini-static, the init of `docker run --init` (as docker.io's docker-init).
PACKAGES=python3,openssh-server,iproute2,iptables,ca-certificates,kmod,procps,tini

[ "$(id -u)" = 0 ] || { echo "build-image.sh: must run as root (debootstrap, chroot)" >&2; exit 1; }
[ ! -e "$OUT" ] || { echo "build-image.sh: $OUT already exists" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hostbridge-image.XXXXXX")
ROOT=$WORK/rootfs
cleanup() {
    for m in "$ROOT/proc" "$ROOT/sys" "$ROOT/dev/pts" "$ROOT/dev"; do
        mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
log() { echo "build-image: $*" >&2; }

log "debootstrap $SUITE ($ARCH) from $MIRROR"
debootstrap --variant=minbase --arch="$ARCH" --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
mount -t proc proc "$ROOT/proc"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
SECURITY=$(echo "$MIRROR" | sed 's#/debian/*$#/debian-security#')
cat >"$ROOT/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
SRC
log "security updates"
in_root apt-get -q update >/dev/null
in_root apt-get -q -y -o Dpkg::Options::=--force-confold upgrade >/dev/null

# The kernel and busybox are unpacked, not installed: installing linux-image pulls
# initramfs-tools and builds a large generic initrd we do not want.
KPKG=$(in_root apt-cache depends "linux-image-$ARCH" | awk '/Depends: linux-image-/{print $2; exit}')
log "kernel package $KPKG"
mkdir -p "$ROOT/tmp/debs"
(cd "$ROOT/tmp/debs" && chroot "$ROOT" sh -c "cd /tmp/debs && apt-get -q -o APT::Sandbox::User=root download $KPKG busybox-static" >/dev/null)
mkdir -p "$WORK/kernel" "$WORK/busybox"
dpkg-deb -x "$ROOT"/tmp/debs/linux-image-*.deb "$WORK/kernel"
dpkg-deb -x "$ROOT"/tmp/debs/busybox-static_*.deb "$WORK/busybox"
rm -rf "$ROOT/tmp/debs"
KVER=$(ls "$WORK/kernel/lib/modules")
# x86: boot the uncompressed ELF through its PVH entry point; decompressing the xz bzImage
# takes ~5 s under TCG before the kernel prints a line. arm64's Image is gzip, which QEMU itself
# unpacks on the host.
if [ "$ARCH" = amd64 ]; then
    python3 -c '
import subprocess, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
out = subprocess.run(["xz", "-dc"], input=data[start:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
if start < 0 or out[:4] != b"\x7fELF":
    sys.exit("cannot extract vmlinux from " + sys.argv[1])
open(sys.argv[2], "wb").write(out)' "$WORK/kernel/boot/vmlinuz-$KVER" "$OUT/kernel"
else
    cp "$WORK/kernel/boot/vmlinuz-$KVER" "$OUT/kernel"
fi

# Modules: only what a VM with virtio devices and a container engine can use.
KMOD=$WORK/kernel/lib/modules/$KVER
DMOD=$ROOT/lib/modules/$KVER
mkdir -p "$DMOD/kernel/drivers" "$DMOD/kernel/drivers/net"
cp "$KMOD"/modules.order "$KMOD"/modules.builtin* "$DMOD/"
for d in arch block crypto fs lib mm net virt; do
    [ -d "$KMOD/kernel/$d" ] && cp -a "$KMOD/kernel/$d" "$DMOD/kernel/"
done
for d in virtio block char input acpi firmware md nvdimm; do
    [ -d "$KMOD/kernel/drivers/$d" ] && cp -a "$KMOD/kernel/drivers/$d" "$DMOD/kernel/drivers/"
done
cp "$KMOD"/kernel/drivers/net/*.ko "$DMOD/kernel/drivers/net/"
rm -rf "$DMOD/kernel/net/wireless" "$DMOD/kernel/net/mac80211" "$DMOD/kernel/net/bluetooth" \
       "$DMOD/kernel/fs/ocfs2" "$DMOD/kernel/fs/gfs2" "$DMOD/kernel/fs/ntfs3" "$DMOD/kernel/drivers/input/touchscreen" \
       "$DMOD/kernel/drivers/input/joystick" "$DMOD/kernel/drivers/input/tablet"
depmod -b "$ROOT" "$KVER"

log "initrd"
IRD=$WORK/initrd
mkdir -p "$IRD/bin" "$IRD/dev" "$IRD/proc" "$IRD/sys" "$IRD/newroot" "$IRD/modules"
cp "$WORK/busybox/bin/busybox" "$IRD/bin/busybox"
for a in sh mount umount insmod switch_root sleep cat mkdir echo; do ln -s busybox "$IRD/bin/$a"; done
# virtio_pci, virtio_blk and ext4 are modules in Debian's kernel; load them in dependency order.
for m in virtio_pci virtio_blk ext4; do
    modprobe -d "$ROOT" -S "$KVER" --show-depends "$m"
done | awk '$1=="insmod" && !seen[$2]++ {print $2}' >"$WORK/ird-mods"
: >"$IRD/modules/order"
while read -r m; do
    cp "$m" "$IRD/modules/"
    echo "/modules/$(basename "$m")" >>"$IRD/modules/order"
done <"$WORK/ird-mods"
install -m 0755 "$HERE/initrd-init.sh" "$IRD/init"
(cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -9) >"$OUT/initrd.img"

log "guest configuration"
install -m 0755 "$HERE/guest-init.py" "$ROOT/sbin/hostbridge-init"
for cmd in poweroff reboot halt; do
    [ -e "$ROOT/sbin/$cmd" ] || install -m 0755 "$HERE/guest-power.sh" "$ROOT/sbin/$cmd"
done
mkdir -p "$ROOT/tmp/provision"
cp "$HERE/bootstrap.sh" "$HERE/hostbridge.service" "$HERE/hostbridge.initd" "$ROOT/tmp/provision/"
in_root sh /tmp/provision/bootstrap.sh --image-build
rm -rf "$ROOT/tmp/provision"
# Every machine gets its own host key at boot (fw_cfg); never ship one in the image.
rm -f "$ROOT"/etc/ssh/ssh_host_*
cat >"$ROOT/etc/ssh/sshd_config.d/hostbridge.conf" <<'CONF'
# hostbridge: key-only root login; the host key comes from the machine (fw_cfg) at boot.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
CONF
echo hostbridge >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\thostbridge\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
echo "nameserver 10.0.2.3" >"$ROOT/etc/resolv.conf"
# Size: documentation, locales and apt's caches are not needed to run the engine.
in_root apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
       "$ROOT"/var/log/*.log "$ROOT"/var/cache/debconf/*-old "$ROOT"/usr/share/locale/*
umount "$ROOT/proc"

log "filesystem"
USED_MB=$(du -sm "$ROOT" | awk '{print $1}')
SIZE_MB=$((USED_MB * 3 / 2 + 256))
mke2fs -q -t ext4 -L hostbridge -d "$ROOT" -m 0 "$WORK/disk.raw" "${SIZE_MB}M"
qemu-img convert -c -f raw -O qcow2 "$WORK/disk.raw" "$OUT/disk.qcow2"
cat >"$OUT/manifest.json" <<JSON
{"arch": "$ARCH", "suite": "$SUITE", "kernel": "$KVER", "kernel_package": "$KPKG",
 "rootfs_mb": $USED_MB, "filesystem_mb": $SIZE_MB, "root": "/dev/vda", "init": "/sbin/hostbridge-init"}
JSON
log "done: $(du -sh "$OUT" | awk '{print $1}') in $OUT"
