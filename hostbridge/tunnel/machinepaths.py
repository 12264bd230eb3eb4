"""Every file of a machine's directory that the tunnel uses, named once.

Stand-in until ``hostbridge/paths.py`` lands on main: it follows the layout in
docs/internals.md ("Host paths") — state under ``~/.local/share/hostbridge/machines/NAME``,
``HOSTBRIDGE_HOME`` overriding every host dir — and the lead may point it at paths.py.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

# sockaddr_un holds 108 bytes on Linux, 104 on macOS; keep a margin for the NUL.
MAX_SOCKET_PATH = 100


def home() -> str:
    """The root of hostbridge's host state (``HOSTBRIDGE_HOME`` or the platform's data dir)."""
    env = os.environ.get("HOSTBRIDGE_HOME")
    if env:
        return env
    import platformdirs

    return platformdirs.user_data_dir("hostbridge", appauthor=False)


def machines_dir() -> str:
    """The directory holding one sub-directory per machine."""
    return os.path.join(home(), "machines")


def short_socket_path(preferred: str) -> str:
    """``preferred`` when it fits in a sockaddr_un, else a short path under the temp dir.

    The fallback is derived from ``preferred`` (a hash), so every process computes the same one.
    """
    if len(preferred.encode()) <= MAX_SOCKET_PATH:
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
        """The paths of machine ``name`` under hostbridge's state dir."""
        return cls(os.path.join(machines_dir(), name))

    @property
    def agent_socket(self) -> str:
        """The agent's local endpoint socket (mode 0600), short enough for any OS."""
        return short_socket_path(os.path.join(self.dir, "docker.sock"))
