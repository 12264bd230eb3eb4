#!/bin/sh
# Idempotent guest setup for hostbridge's engine; run by Vagrant (shell provisioner) or by
# hand. Safe to run again. (The QEMU guest is assembled with this setup built in.)
#
#   bootstrap.sh [--image-build] [--files DIR]
#
# --files: where hostbridge.service and hostbridge.initd are (default: next to this script;
# Vagrant's shell provisioner runs an uploaded copy of the script alone).
#
# Installs what the engine needs (when apt is there), a `hostbridge` group, the engine's
# service (systemd unit when systemd runs, else an init script), ip_forward, cgroup mounts.
# The engine itself is deployed later by the host to $ENGINE (see docs/internals.md).
set -eu
# pipefail where the shell has it (bash, busybox ash, dash >= 0.5.13; bookworm's dash has not).
if (set -o pipefail) 2>/dev/null; then set -o pipefail; fi
IMAGE_BUILD=0
HERE=$(cd "$(dirname "$0")" && pwd)
while [ $# -gt 0 ]; do
    case "$1" in
        --image-build) IMAGE_BUILD=1 ;;
        --files) HERE=$2; shift ;;
        *) echo "bootstrap.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
ENGINE_DIR=/usr/local/lib/hostbridge
ENGINE=$ENGINE_DIR/engine.pyz
NEEDED="python3 iproute2 iptables ca-certificates kmod"
# tini-static for `docker run --init` (bound at /sbin/docker-init); without it the engine's
# built-in init stands in, so a system without the package still works.
WANTED="tini"

log() { echo "hostbridge bootstrap: $*"; }

# Without dpkg (hostbridge's own QEMU guest, assembled from Debian's packages) a package's
# main file stands for it.
provides() {
    case "$1" in
        iproute2) command -v ip ;; kmod) command -v modprobe ;; tini) command -v tini-static ;;
        ca-certificates) test -f /etc/ssl/certs/ca-certificates.crt ;; *) command -v "$1" ;;
    esac
}
not_installed() {
    out=""
    for p in "$@"; do
        if command -v dpkg-query >/dev/null 2>&1; then
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || out="$out $p"
        else
            provides "$p" >/dev/null 2>&1 || out="$out $p"
        fi
    done
    echo "$out"
}
missing=$(not_installed $NEEDED)
wanted=$(not_installed $WANTED)
if [ -n "$missing$wanted" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get -q update
fi
if [ -n "$missing" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        log "installing$missing"
        DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends $missing
    else
        log "missing$missing and no apt-get: install them with this system's package manager"
        exit 1
    fi
fi
if [ -n "$wanted" ]; then
    if command -v apt-get >/dev/null 2>&1 \
            && DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends $wanted; then
        log "installed$wanted"
    else
        log "could not install$wanted: docker run --init will use the engine's built-in init"
    fi
fi

grep -q '^hostbridge:' /etc/group || groupadd --system hostbridge
# Vagrant's login user may talk to the engine socket (root:hostbridge 0660) without sudo.
if id vagrant >/dev/null 2>&1; then usermod -a -G hostbridge vagrant; fi
mkdir -p "$ENGINE_DIR" /var/lib/hostbridge
chmod 0755 "$ENGINE_DIR"; chmod 0711 /var/lib/hostbridge

mkdir -p /etc/sysctl.d /etc/modules-load.d
cat >/etc/sysctl.d/90-hostbridge.conf <<'CONF'
# hostbridge: containers reach the outside through NAT on the guest.
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
CONF
cat >/etc/modules-load.d/hostbridge.conf <<'CONF'
overlay
br_netfilter
veth
CONF

install -m 0755 "$HERE/hostbridge.initd" /etc/init.d/hostbridge
if [ -d /run/systemd/system ] || [ -d /lib/systemd/system -a -x /lib/systemd/systemd ]; then
    install -m 0644 "$HERE/hostbridge.service" /etc/systemd/system/hostbridge.service
    if [ "$IMAGE_BUILD" = 0 ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable hostbridge.service >/dev/null 2>&1
    fi
fi

if [ "$IMAGE_BUILD" = 0 ]; then
    modprobe -a overlay br_netfilter veth 2>/dev/null || log "some kernel modules are missing (overlay, br_netfilter, veth)"
    sysctl -q -p /etc/sysctl.d/90-hostbridge.conf 2>/dev/null || log "could not apply sysctls"
    # systemd mounts cgroups itself; elsewhere make sure a cgroup2 hierarchy is there.
    if [ ! -d /run/systemd/system ] && ! grep -q " /sys/fs/cgroup " /proc/mounts; then
        mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || log "could not mount cgroup2"
    fi
    if [ -f "$ENGINE" ]; then /etc/init.d/hostbridge restart; fi
fi
log "done"
