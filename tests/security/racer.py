"""The swapper for race attempts: a static binary a container runs from a read-only bind.

busybox has no ``renameat2``; a shell loop of ``rm``/``ln`` forks per swap and gives a race
a few chances a second. ``swapper A B N`` swaps two names atomically N times (millions a
second), as the published PoC of CVE-2018-15664 does.
"""

import os
import shutil
import subprocess

import pytest

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "swapper.c")


@pytest.fixture(scope="session")
def swapper(tmp_path_factory):
    """Path of the static swapper binary (built once per session with gcc)."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (scripts/install-deps.sh --test installs it)")
    out = str(tmp_path_factory.mktemp("swapper") / "swapper")
    r = subprocess.run(["gcc", "-static", "-O2", "-o", out, SOURCE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return out
