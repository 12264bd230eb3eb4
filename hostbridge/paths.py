"""Every host path hostbridge uses, spelled once.

Nobody else joins a host path by hand: modules ask this one. ``HOSTBRIDGE_HOME`` moves every
host directory under one root (tests set it to a temp dir). Native mode's engine paths (its
state root, socket, pidfile, log) are guest paths and live in the config's ``native`` section.
"""

from __future__ import annotations

import os
import sys

APP = "hostbridge"
# macOS limits sun_path to 104 bytes (Linux 108); a socket path must leave room for this.
MAX_SOCKET_PATH = 104


def _home_override():
    return os.environ.get("HOSTBRIDGE_HOME") or None


def config_dir() -> str:
    """The directory holding ``config.toml`` (``~/.config/hostbridge`` on Linux)."""
    home = _home_override()
    if home:
        return os.path.join(home, "config")
    return _user_dir("config", "XDG_CONFIG_HOME", ".config")


def _user_dir(kind, xdg_var, xdg_default):
    """platformdirs' answer; on Linux its XDG rule spelled here, as importing it costs 5 ms of
    every command's start-up."""
    import sys

    if sys.platform.startswith("linux"):
        base = os.environ.get(xdg_var, "").strip()
        if not base or not os.path.isabs(base):
            base = os.path.join(os.path.expanduser("~"), xdg_default)
        return os.path.join(base, APP)
    import platformdirs

    return getattr(platformdirs, "user_%s_dir" % kind)(APP, appauthor=False)


def config_file() -> str:
    """The one TOML config file."""
    return os.path.join(config_dir(), "config.toml")


def state_dir() -> str:
    """Long-lived host state (``~/.local/share/hostbridge`` on Linux)."""
    home = _home_override()
    if home:
        return os.path.join(home, "state")
    return _user_dir("data", "XDG_DATA_HOME", os.path.join(".local", "share"))


def machines_dir() -> str:
    """The directory holding one sub-directory per machine."""
    return os.path.join(state_dir(), "machines")


def machine_dir(name: str) -> str:
    """The directory of machine ``name``.

    Raises:
        ValueError: the name could escape the machines directory.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError("invalid machine name %r" % name)
    return os.path.join(machines_dir(), name)


class MachinePaths:
    """The files of one machine's directory; each attribute is one file.

    Args:
        name: the machine's name.
        dir: the machine's directory, when already known (the tunnel agent is started with
            it); default ``machine_dir(name)``.
    """

    def __init__(self, name: str, dir: str = None):
        self.name = name
        self.dir = os.path.abspath(dir) if dir else machine_dir(name)
        self.machine_json = os.path.join(self.dir, "machine.json")  # mode, driver, endpoint, settings
        self.up_lock = os.path.join(self.dir, "up.lock")  # flock held while `up`/`down` changes the machine
        self.known_hosts = os.path.join(self.dir, "known_hosts")  # the pinned SSH host key
        self.ssh_key = os.path.join(self.dir, "id_ed25519")  # hostbridge's own key for this machine
        self.ssh_pub = os.path.join(self.dir, "id_ed25519.pub")  # its public half (the guest authorizes it)
        # A VM driver's files (machines/driver.py's InstanceFiles removes them on destroy):
        self.driver_json = os.path.join(self.dir, "driver.json")  # the driver's own record (ports, image, size)
        self.disk = os.path.join(self.dir, "disk.qcow2")  # qemu: the data disk (/var/lib/hostbridge in the guest)
        self.pidfile = os.path.join(self.dir, "qemu.pid")  # qemu: pid of the daemonized QEMU
        self.qmp = os.path.join(self.dir, "qmp.sock")  # qemu: QMP control socket
        self.serial_log = os.path.join(self.dir, "serial.log")  # qemu: the guest's serial console
        self.qemu_log = os.path.join(self.dir, "qemu.log")  # qemu: QEMU's own stderr at start
        self.saved_state = os.path.join(self.dir, "saved-state")  # qemu: the suspended VM (machines/suspend.py)
        self.saved_meta = os.path.join(self.dir, "saved-state.json")  # qemu: what that state fits
        self.host_key = os.path.join(self.dir, "ssh_host_ed25519_key")  # the guest's host key (fw_cfg)
        self.host_pub = os.path.join(self.dir, "ssh_host_ed25519_key.pub")  # its public half, pinned
        self.guest_config = os.path.join(self.dir, "guest.json")  # qemu fw_cfg config.json: hostname, shares
        self.engine_offer = os.path.join(self.dir, "engine-offer.json")  # qemu fw_cfg engine.json (steps.engine_offer)
        self.vagrant_dir = os.path.join(self.dir, "vagrant")  # vagrant: project dir (Vagrantfile, .vagrant/)
        self.vagrant_settings = os.path.join(self.vagrant_dir, "hostbridge.json")  # cpus/memory/disk/box
        self.tunnel_json = os.path.join(self.dir, "tunnel.json")  # what the tunnel agent connects to
        self.agent_pid = os.path.join(self.dir, "agent.pid")  # the tunnel agent's pid
        self.agent_lock = os.path.join(self.dir, "agent.lock")  # flock held by the live agent
        self.agent_log = os.path.join(self.dir, "agent.log")  # the tunnel agent's log
        self.agent_status = os.path.join(self.dir, "agent.status.json")  # agent state for `tunnel status`
        self.agent_go = os.path.join(self.dir, "agent.go")  # present: a held agent may log in (tunnel.json "hold")
        self.engine_zipapp_dir = os.path.join(self.dir, "engine")  # the packed engine (deploy's cache)
        self.runtime = machine_runtime_dir(name)  # short dir for this machine's sockets
        self.docker_sock = os.path.join(self.runtime, "docker.sock")  # the tunnel's local endpoint

    @classmethod
    def for_name(cls, name: str) -> "MachinePaths":
        """The paths of machine ``name`` under hostbridge's state dir."""
        return cls(name)

    @classmethod
    def from_dir(cls, machine_dir_path: str) -> "MachinePaths":
        """The paths of the machine whose directory is ``machine_dir_path``."""
        return cls(os.path.basename(os.path.abspath(machine_dir_path)), machine_dir_path)

    @property
    def agent_socket(self) -> str:
        """The tunnel agent's local endpoint socket (mode 0600), short enough for any OS."""
        return self.docker_sock


def runtime_dir() -> str:
    """A short, private directory for sockets.

    ``$XDG_RUNTIME_DIR/hostbridge`` when that is short enough, else ``/tmp/hostbridge-UID``;
    under ``HOSTBRIDGE_HOME`` a short directory derived from a hash of it (the temp dirs tests
    use are too deep for a 104-byte socket path).
    """
    home = _home_override()
    uid = os.getuid() if hasattr(os, "getuid") else 0
    if home:
        import hashlib  # only here: it costs 2 ms of every command's start-up

        digest = hashlib.sha256(os.path.abspath(home).encode()).hexdigest()[:10]
        return os.path.join(_tmp_root(), "hb-%s" % digest)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and sys.platform != "darwin" and len(xdg) < 40:
        return os.path.join(xdg, APP)
    return os.path.join(_tmp_root(), "%s-%d" % (APP, uid))


def _tmp_root():
    # On macOS $TMPDIR is a long /var/folders/... path: /tmp keeps socket paths short.
    if sys.platform == "win32":
        import tempfile

        return tempfile.gettempdir()
    return "/tmp"


def machine_runtime_dir(name: str) -> str:
    """The runtime directory for one machine's sockets (name shortened when it is long)."""
    if len(name) > 16:
        import hashlib  # only for long names (2 ms of start-up)

        name = hashlib.sha256(name.encode()).hexdigest()[:16]
    return os.path.join(runtime_dir(), name)


def cache_dir() -> str:
    """Re-creatable host data (``~/.cache/hostbridge`` on Linux; ``HOSTBRIDGE_HOME/cache``)."""
    home = _home_override()
    if home:
        return os.path.join(home, "cache")
    import platformdirs

    return platformdirs.user_cache_dir(APP, appauthor=False)


def ensure_dir(path: str, mode: int = 0o700) -> str:
    """Create ``path`` (and parents) with ``mode`` if missing; returns ``path``."""
    os.makedirs(path, mode=mode, exist_ok=True)
    return path
