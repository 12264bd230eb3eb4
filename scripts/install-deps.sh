#!/usr/bin/env bash
# Install what hostbridge needs on a Debian/Ubuntu host (as root), then hostbridge itself into
# .venv. Idempotent: a second run installs nothing new.
#   --test   also what the test suite and benchmarks need (dockerd as the oracle, a registry,
#            sshd, QEMU, debootstrap, vagrant)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=(python3 python3-venv iproute2 iptables busybox-static util-linux tini)
if [ $want_test = 1 ]; then
  pkgs+=(docker.io docker-registry openssh-server openssh-client apache2-utils openssl
         qemu-system-x86 qemu-utils debootstrap tmux socat procps psmisc hyperfine vagrant
         gpg gpg-agent)
  # Oracles of the guest assembler's unit tests: depmod (modules.dep), bsdcpio (newc).
  pkgs+=(kmod libarchive-tools)
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
  systemctl disable --now docker.service docker.socket docker-registry.service >/dev/null 2>&1 || true
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
