"""The strict-skip rule (tests/conftest.py): with HOSTBRIDGE_STRICT_SKIPS=1 a skip whose reason
is not on the allowlist fails the session; an allowlisted one does not."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT_DIR, unexpected_skips


def test_allowlist_table():
    skips = [("a", "host kernel: no cgroup2 mount on this host"),
             ("b", "boots a QEMU VM: set HOSTBRIDGE_TEST_VM=1 (as .ci/run does)"),
             ("c", "overlay mounts do not work here"), ("d", "dockerd is not installed")]
    assert unexpected_skips(skips) == [("c", "overlay mounts do not work here"), ("d", "dockerd is not installed")]


@pytest.mark.parametrize("reason,strict,rc", [
    ("host kernel: lacks it", "1", 0), ("the probe said vfs", "1", 1), ("the probe said vfs", "", 0)])
def test_a_session_with_an_unexpected_skip_fails(tmp_path, reason, strict, rc):
    # a directory of its own (not under tests/), with the project's conftest loaded as a plugin
    (tmp_path / "test_one.py").write_text(
        "import pytest\n\ndef test_ok():\n    assert 1 + 1 == 2\n\n"
        "def test_skipped():\n    pytest.skip(%r)\n" % reason)
    env = dict(os.environ, HOSTBRIDGE_STRICT_SKIPS=strict, PYTHONPATH=ROOT_DIR)
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.conftest",
                        "-q", "-rs", str(tmp_path)], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == rc, r.stdout + r.stderr
    assert ("unexpected skips" in r.stdout) == (rc == 1), r.stdout
    assert reason in r.stdout  # -rs prints every skip's reason
