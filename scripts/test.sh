#!/usr/bin/env bash
# The whole test suite, as root: installs what it needs, every tier (unit, root, vm).
# Each tier's fixtures start and stop their own services (dockerd, registry, sshd, QEMU).
# Extra arguments go to pytest (e.g. -k, -x, a path).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test
export HOSTBRIDGE_TEST_VM=${HOSTBRIDGE_TEST_VM:-1}
export HOSTBRIDGE_STRICT_SKIPS=1  # a skip outside tests/conftest.py SKIP_ALLOWLIST fails the run
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ $rc = 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $rc
