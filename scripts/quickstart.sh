#!/usr/bin/env bash
# On a fresh Linux machine: install hostbridge, start the engine natively, load a busybox
# image made offline from Debian's busybox-static, and run a container.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
hb=.venv/bin/hostbridge
$hb up
if ! $hb images -q busybox:latest | grep -q .; then
  tar=$(mktemp --suffix=.tar)
  .venv/bin/python -c "import sys; from tests.support.busybox import write_rootfs_tar; write_rootfs_tar(sys.argv[1])" "$tar"
  $hb import "$tar" busybox:latest
  rm -f "$tar"
fi
$hb run --rm busybox echo "hello from a hostbridge container"
echo
echo "The engine is up. Use it with:"
echo "  $PWD/.venv/bin/hostbridge ps -a"
echo "  export DOCKER_HOST=unix:///run/hostbridge/docker.sock; docker run --rm busybox uname -a"
