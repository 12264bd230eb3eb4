"""hostbridge run as the user would, in a throwaway HOSTBRIDGE_HOME (the VM tier's harness)."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shared_image_cache() -> str:
    """The user's guest image cache, built once (~2 min) and instant afterwards.

    Not per test: HOSTBRIDGE_HOME is ignored while looking it up, so every test home shares it.
    """
    from hostbridge.machines import image

    saved = os.environ.pop("HOSTBRIDGE_HOME", None)
    try:
        cache = image.default_cache_dir()
        image.build(cache)
    finally:
        if saved is not None:
            os.environ["HOSTBRIDGE_HOME"] = saved
    return cache


class HostbridgeHome:
    """`python -m hostbridge.cli` with HOSTBRIDGE_HOME in ``home`` and the shared image cache.

    Args:
        home: the temp dir standing for the user's hostbridge home.
        image_cache: where guest images are (``shared_image_cache()``).
    """

    def __init__(self, home: str, image_cache: str):
        self.home = home
        self.env = dict(os.environ, HOSTBRIDGE_HOME=home, HOSTBRIDGE_IMAGE_CACHE=image_cache, PYTHONPATH=REPO,
                        DOCKER_CONFIG=os.path.join(home, "docker-config"), DOCKER_CLI_HINTS="false")
        for k in ("HOSTBRIDGE_HOST", "HOSTBRIDGE_MACHINE", "DOCKER_HOST", "HOSTBRIDGE_DEBUG"):
            self.env.pop(k, None)

    def hb(self, *args, timeout=120, check=False) -> subprocess.CompletedProcess:
        """Run ``hostbridge ARGS`` (text output); with ``check``, assert it exited 0."""
        r = subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), capture_output=True, text=True,
                           env=self.env, timeout=timeout, cwd=REPO)
        if check:
            assert r.returncode == 0, "hostbridge %s: %s%s" % (" ".join(args), r.stdout, r.stderr)
        return r

    def up_qemu(self, machine: str, *options: str, timeout: float = 600) -> None:
        """`hostbridge up` of a new qemu ``machine`` (``options``: --cpus, --share…); asserts it came up."""
        r = self.hb("up", "--machine", machine, "--driver", "qemu", *options, timeout=timeout)
        assert r.returncode == 0, r.stdout + r.stderr

    def docker_host(self, machine: str) -> str:
        """The DOCKER_HOST that `hostbridge env` gives for ``machine``."""
        script = self.hb("env", "--shell", "bash", machine, check=True).stdout
        return subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                              capture_output=True, text=True, check=True).stdout

    def machine_dir(self, machine: str) -> str:
        """The machine's state dir in this home."""
        return os.path.join(self.home, "state", "machines", machine)


def qemu_guest_ram_mib(pid: int, memory_mib: int) -> float:
    """The host RSS of QEMU ``pid``'s mapping of the guest's RAM (its one anonymous mapping of
    ``memory_mib``), in MiB: what the guest holds, apart from QEMU's own and TCG's memory."""
    kib, inside = 0, False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                inside = hi - lo == memory_mib << 20 and len(head) < 6
            elif inside and head[0] == "Rss:":
                kib += int(head[1])
    return kib / 1024.0
