"""Fixtures shared by the network tests."""

import pytest

from tests.guest.network.netutil import dk


@pytest.fixture
def cleanup(docker_env):
    """Names of containers/networks the test makes; removed afterwards whatever happens."""
    made = {"containers": [], "networks": []}
    yield made
    for c in made["containers"]:
        dk(docker_env, "rm", "-f", c, check=False)
    for n in made["networks"]:
        dk(docker_env, "network", "rm", n, check=False)
