"""Shared fixtures. Tiers: unit (no marker), root (real namespaces/cgroups/overlay), vm (QEMU)."""

import os
import re
import sys

import pytest

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

from tests.support import busybox  # noqa: E402

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root (namespaces, cgroups, overlayfs): run as root or use .ci/run")
    skip_vm = pytest.mark.skip(reason="boots a QEMU VM: set HOSTBRIDGE_TEST_VM=1 (as .ci/run does)")
    run_vm = os.environ.get("HOSTBRIDGE_TEST_VM") == "1"
    for item in items:
        # Markers, not item.keywords: keywords also hold directory names (tests/vm/, tests/unit/vm/).
        is_root, is_vm = item.get_closest_marker("root"), item.get_closest_marker("vm")
        if (is_root or is_vm) and not IS_ROOT:
            item.add_marker(skip_root)
        elif is_vm and not run_vm:
            item.add_marker(skip_vm)


# Skip reasons a strict run (HOSTBRIDGE_STRICT_SKIPS=1, as scripts/test.sh sets) accepts. Any
# other skip fails the session: where a tier's setup (install-deps.sh, root) provides a part, a
# missing part is a bug to see, not a skip to scroll past. Keep this list short.
SKIP_ALLOWLIST = (
    # the VM tier left out on purpose (HOSTBRIDGE_TEST_VM=0): slow, and the user said so
    re.compile(r"boots a QEMU VM: set HOSTBRIDGE_TEST_VM=1"),
    # a fact of this machine's kernel, probed by the test itself (not by the code under test)
    re.compile(r"^host kernel: "),
)
_skips = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        where, _, reason = report.longrepr if isinstance(report.longrepr, tuple) else ("", 0, str(report.longrepr))
        _skips.append((report.nodeid, reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason))


def unexpected_skips(skips) -> list:
    """The (nodeid, reason) pairs whose reason no SKIP_ALLOWLIST entry matches."""
    return [(n, r) for n, r in skips if not any(p.search(r) for p in SKIP_ALLOWLIST)]


def pytest_terminal_summary(terminalreporter):
    if os.environ.get("HOSTBRIDGE_STRICT_SKIPS") != "1":
        return
    bad = unexpected_skips(_skips)
    if bad:
        terminalreporter.section("unexpected skips (HOSTBRIDGE_STRICT_SKIPS=1)", red=True)
        for nodeid, reason in bad:
            terminalreporter.line("%s: %s" % (nodeid, reason))


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("HOSTBRIDGE_STRICT_SKIPS") == "1" and unexpected_skips(_skips) and exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture(scope="session")
def busybox_rootfs_tar(tmp_path_factory):
    """Path of a busybox rootfs tar built offline from Debian's busybox-static."""
    return busybox.cached_rootfs_tar(str(tmp_path_factory.mktemp("busybox")))


@pytest.fixture(scope="session")
def engine(tmp_path_factory, busybox_rootfs_tar):
    """A real engine daemon (root tier) with busybox:latest imported; containers removed after."""
    if not IS_ROOT:
        pytest.skip("needs root")
    from tests.support.engine import Engine
    e = Engine(tmp_path_factory.mktemp("engine")).start()
    try:
        e.import_tar(busybox_rootfs_tar, "busybox:latest")
        yield e
    finally:
        e.close()


@pytest.fixture
def docker_env(engine):
    """Environment for the stock docker CLI pointed at the engine."""
    return dict(os.environ, DOCKER_HOST=engine.url, DOCKER_CONFIG=os.path.join(engine.base, "docker-config"),
                DOCKER_CLI_HINTS="false")


@pytest.fixture(scope="session")
def _docker_config_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("docker-config"))


@pytest.fixture(autouse=True)
def _private_docker_config(_docker_config_dir, monkeypatch):
    """`hostbridge up` writes a docker context: keep every test's off the real ~/.docker."""
    if not os.environ.get("DOCKER_CONFIG"):
        monkeypatch.setenv("DOCKER_CONFIG", _docker_config_dir)
