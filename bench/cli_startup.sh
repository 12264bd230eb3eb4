#!/bin/sh
# CLI start-up and a round trip, hostbridge next to the stock docker CLI against the same engine.
# Usage: bench/cli_startup.sh unix:///path/to/engine.sock
# Needs hyperfine (apt-get install hyperfine). Prints hyperfine's table; nothing is asserted.
set -eu
ENDPOINT=${1:?usage: $0 unix:///path/to/docker.sock}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HOSTBRIDGE_HOST="$ENDPOINT" DOCKER_HOST="$ENDPOINT"
hyperfine --warmup 3 --runs 20 -N \
  "python3 -m hostbridge.cli version --help" \
  "python3 -m hostbridge.cli ps" \
  "docker ps" \
  "python3 -m hostbridge.cli images" \
  "docker images"
