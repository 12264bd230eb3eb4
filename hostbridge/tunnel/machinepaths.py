"""Every file of a machine's directory that the tunnel uses, named once.

When ``hostbridge/paths.py`` is present (the host's one module of paths) the machine dir and the
socket come from it; until then this module follows the same layout (docs/internals.md, "Host
paths"): state under ``~/.local/share/hostbridge/machines/NAME``, ``HOSTBRIDGE_HOME/state``
when that is set. The agent is started with a machine *dir*, so that is what this class takes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

try:
    from .. import paths as _hostpaths
except ImportError:  # hostbridge/paths.py not on this branch yet
    _hostpaths = None

# sockaddr_un holds 108 bytes on Linux, 104 on macOS; keep a margin for the NUL.
MAX_SOCKET_PATH = 100


def machines_dir() -> str:
    """The directory holding one sub-directory per machine."""
    if _hostpaths is not None:
        return _hostpaths.machines_dir()
    env = os.environ.get("HOSTBRIDGE_HOME")
    if env:
        return os.path.join(env, "state", "machines")
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("hostbridge", appauthor=False), "machines")


def short_socket_path(preferred: str) -> str:
    """``preferred`` when it fits in a sockaddr_un and has no space, else a short temp-dir path.

    A space (macOS's "Application Support") would have to survive DOCKER_HOST=unix://… parsing
    in every client; a hashed name under the temp dir avoids the question. The fallback is
    derived from ``preferred``, so every process computes the same one.
    """
    if len(preferred.encode()) <= MAX_SOCKET_PATH and " " not in preferred:
        return preferred
    digest = hashlib.sha256(preferred.encode()).hexdigest()[:12]
    base = os.path.join(tempfile.gettempdir(), "hb-%d" % os.getuid())
    return os.path.join(base, digest + ".sock")


class MachinePaths:
    """The tunnel's files for one machine.

    Args:
        machine_dir: the machine's state directory (``machines/NAME``).
    """

    def __init__(self, machine_dir: str):
        self.dir = os.path.abspath(machine_dir)
        self.name = os.path.basename(self.dir)
        self.machine_json = os.path.join(self.dir, "machine.json")  # the machine's record
        self.tunnel_json = os.path.join(self.dir, "tunnel.json")  # what the agent connects to
        self.known_hosts = os.path.join(self.dir, "known_hosts")  # the pinned host key
        self.agent_pid = os.path.join(self.dir, "agent.pid")  # the running agent's pid
        self.agent_lock = os.path.join(self.dir, "agent.lock")  # flock held by the live agent
        self.agent_log = os.path.join(self.dir, "agent.log")  # the agent's log
        self.agent_status = os.path.join(self.dir, "agent.status.json")  # state for `tunnel status`
        self.engine_zipapp_dir = os.path.join(self.dir, "engine")  # packed engine cache

    @classmethod
    def for_name(cls, name: str) -> "MachinePaths":
        """The paths of machine ``name`` under hostbridge's state dir.

        Raises:
            ValueError: a name that could escape the machines dir.
        """
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError("invalid machine name %r" % name)
        return cls(os.path.join(machines_dir(), name))

    @property
    def agent_socket(self) -> str:
        """The agent's local endpoint socket (mode 0600), short enough for any OS."""
        if _hostpaths is not None and os.path.dirname(self.dir) == os.path.abspath(_hostpaths.machines_dir()):
            return _hostpaths.MachinePaths(self.name).docker_sock
        return short_socket_path(os.path.join(self.dir, "docker.sock"))
