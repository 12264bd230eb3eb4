"""The security tier: escape attempts typed as a user would, against our engine AND dockerd.

Every test here runs real containers as root. The `backend` fixture runs a test once against
Debian's dockerd (so "docker refuses this" is checked, not assumed) and once against our engine.
"""

import pytest

from tests.cli.conftest import Backend, backend, dockerd  # noqa: F401  (fixtures shared with the CLI tier)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/security/" in str(item.fspath):
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.security)
