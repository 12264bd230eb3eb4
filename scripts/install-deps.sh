#!/usr/bin/env bash
# Install what hostbridge needs on a Debian/Ubuntu host (as root), then hostbridge itself into
# .venv. Idempotent: a second run installs nothing new.
#   --vm     also what `hostbridge up --driver qemu|vagrant` needs on Linux: QEMU (qemu-img too);
#            Vagrant with its libvirt provider. The QEMU guest is assembled in Python from Debian's
#            packages: no debootstrap, mke2fs, depmod or cpio on the host.
#   --test   all of --vm, and what the test suite and benchmarks need (dockerd as the oracle, a
#            registry, sshd, libvirtd for vagrant-libvirt), and the maintainer scripts (cpp)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0 want_vm=0
[ "${1:-}" = "--test" ] && want_test=1 && want_vm=1
[ "${1:-}" = "--vm" ] && want_vm=1

pkgs=(python3 python3-venv iproute2 iptables busybox-static util-linux tini passwd)
if [ $want_vm = 1 ]; then
  pkgs+=(qemu-system-x86 qemu-utils vagrant vagrant-libvirt)
fi
if [ $want_test = 1 ]; then
  # libvirt's daemons and dnsmasq (its NAT network's DHCP) for the vagrant-libvirt test, which
  # starts them itself, in a network namespace of its own.
  pkgs+=(docker.io docker-registry openssh-server openssh-client apache2-utils openssl
         tmux socat procps psmisc hyperfine libvirt-daemon libvirt-daemon-driver-qemu
         libvirt-daemon-system libvirt-clients dnsmasq-base
         gpg gpg-agent nftables
         gcc libc6-dev)  # gcc: tests/security builds a static renameat2 swapper for race attempts
  pkgs+=(cpp linux-libc-dev)  # scripts/gen-syscall-tables.py reads the kernel's syscall headers
  # Oracles of the guest assembler's unit tests: depmod (modules.dep), bsdcpio (newc); the
  # vagrant-libvirt test builds its box with debootstrap and mke2fs.
  pkgs+=(kmod libarchive-tools debootstrap e2fsprogs)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: these packages are missing: ${missing[*]} — run as root (sudo $0 $*)" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts dockerd and the registry on install; our tests start their own on private
# sockets and ports, so the system services stay off.
if [ $want_test = 1 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now docker.service docker.socket docker-registry.service libvirtd.service \
    libvirtd.socket virtlogd.socket >/dev/null 2>&1 || true
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
extras=""
[ $want_test = 1 ] && extras="[test]"
stamp=".venv/.installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # compat mode: a .pth path entry, not an import hook (the hook costs 8 ms of every command)
  .venv/bin/pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e ".$extras"
  touch "$stamp"
fi
# Bytecode now, as a wheel install would (an editable install leaves it to the first run, which
# never happens when PYTHONDONTWRITEBYTECODE is set): it halves the CLI's start-up.
.venv/bin/python -m compileall -q -j 0 hostbridge >/dev/null
