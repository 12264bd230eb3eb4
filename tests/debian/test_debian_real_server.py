"""THE one test that fetches from Debian's real server (deb.debian.org) end to end.

Marked ``debian_server`` so it can be picked out (``-m debian_server``) or left out
(``-m "not debian_server"``). Everything else in tests/debian/ runs against 127.0.0.1.
"""

import hashlib

import pytest

from hostbridge.machines.debian.archive import fetch_packages
from tests.support.debmirror import UPSTREAM


@pytest.mark.debian_server
def test_fetch_busybox_static_from_debian_with_security_and_updates(tmp_path):
    seen = []
    paths = fetch_packages(["busybox-static"], "amd64", suite="bookworm", mirror=UPSTREAM,
                           cache_dir=str(tmp_path / "cache"), progress=lambda *a: seen.append(a))
    assert list(paths) == ["busybox-static"]
    with open(paths["busybox-static"], "rb") as f:
        data = f.read()
    assert data.startswith(b"!<arch>\ndebian-binary")  # a .deb is an ar archive
    assert paths["busybox-static"].endswith(hashlib.sha256(data).hexdigest() + ".deb")
    assert seen and seen[-1][0] == seen[-1][1] == len(data)
