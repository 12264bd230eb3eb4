"""Native mode: the engine runs on this Linux host as root, its socket is the endpoint.

``NativeEngine`` starts the daemon detached (``python3 -m hostbridge.guest daemon …``, the
contract in docs/internals.md "Engine daemon"), waits for ``/_ping``, and stops it with SIGTERM
through its pidfile. Containers outlive the daemon (their shims keep them), so ``stop`` keeps
their state. Building the command line is a pure function; nothing here prints.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

from ..errors import MachineError, NotRootError

ENGINE_MODULE = "hostbridge.guest"
# The package's parent directory: the engine runs from this same copy of hostbridge.
_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def require_root(euid=None):
    """Raise ``NotRootError`` unless running as root.

    Args:
        euid: the effective uid to check (default: this process's).
    """
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise NotRootError("native mode needs root: run `sudo hostbridge up`", machine="default", stage="engine")


def ping_socket(path, timeout=2.0) -> bool:
    """``GET /_ping`` on a unix socket with the standard library (no requests import).

    Returns:
        True when the engine answers ``OK``; False when nothing answers.
    """

    class _Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)

    conn = _Conn("localhost", timeout=timeout)
    try:
        conn.request("GET", "/_ping")
        resp = conn.getresponse()
        return resp.status == 200 and resp.read().strip() == b"OK"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _pid_alive(pid) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def read_pidfile(path, marker=b"hostbridge") -> Optional[int]:
    """The pid in ``path`` if that process is alive and looks like the engine, else None.

    A pidfile left by a crash, or naming a pid since reused by another program, reads as None.

    Args:
        path: the pidfile.
        marker: a byte string the engine's command line contains.
    """
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0 or not _pid_alive(pid):
        return None
    if not any(marker in word for word in _cmdline(pid)):
        return None
    return pid


def tail(path, lines=10) -> str:
    """The last ``lines`` lines of a log file ("" when missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def groupadd_argv(name: str) -> list:
    """The command creating the socket's group (a system group, as docker's package makes ``docker``)."""
    return ["groupadd", "--system", name]


def ensure_group(name: str) -> bool:
    """Create group ``name`` when it is missing (root only). Returns whether it was created.

    Raises:
        MachineError: groupadd is missing or fails.
    """
    import grp

    if not name:
        return False
    try:
        grp.getgrnam(name)
        return False
    except KeyError:
        pass
    try:
        r = subprocess.run(groupadd_argv(name), capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise MachineError("cannot create group %s (%s)" % (name, e.strerror or e), hint="install passwd (groupadd)",
                           machine="default", stage="engine") from None
    if r.returncode != 0:
        raise MachineError("cannot create group %s: %s" % (name, (r.stderr or r.stdout).strip()),
                           hint="create it with `groupadd --system %s`" % name, machine="default", stage="engine")
    return True


def not_in_group(group: str, user: str | None) -> bool:
    """Whether ``user`` (e.g. $SUDO_USER) exists and is not a member of ``group``."""
    import grp
    import pwd

    if not user or not group:
        return False
    try:
        pw = pwd.getpwnam(user)
        gr = grp.getgrnam(group)
    except KeyError:
        return False
    return pw.pw_gid != gr.gr_gid and user not in gr.gr_mem


class NativeEngine:
    """The engine on this host.

    Args:
        root: its state dir (``--root``).
        socket_path: its socket (``--socket``).
        group: the group owning the socket (``--group``).
        pidfile, log_file: default ``ROOT/engine.pid`` and ``ROOT/engine.log``.
        python: the interpreter that runs it (default: this one).
        module: the engine's package (``hostbridge.guest``).
    """

    def __init__(self, root, socket_path, group="hostbridge", pidfile=None, log_file=None, python=None,
                 module=ENGINE_MODULE, extra_args=()):
        self.root = root
        self.socket_path = socket_path
        self.group = group
        self.pidfile = pidfile or os.path.join(root, "engine.pid")
        self.log_file = log_file or os.path.join(root, "engine.log")
        self.python = python or sys.executable
        self.module = module
        self.extra_args = list(extra_args)

    @classmethod
    def from_config(cls, config):
        """Build from a ``Config``'s ``native.*`` settings (and the proxies and CAs the engine is told).

        Raises:
            ConfigError: a bad ``vm.proxy`` or ``registry.ca``.
        """
        from ..engine_settings import daemon_flags

        return cls(config["native.root"], config["native.socket"], config["native.group"],
                   python=config["native.python"] or None, extra_args=daemon_flags(config))

    @property
    def endpoint(self) -> str:
        """The endpoint URL clients use (``unix:///run/hostbridge/docker.sock``)."""
        return "unix://" + self.socket_path

    def daemon_argv(self) -> list:
        """The daemon's command line (pure)."""
        argv = [self.python, "-m", self.module, "daemon", "--root", self.root, "--socket", self.socket_path,
                "--pidfile", self.pidfile, "--log-file", self.log_file]
        if self.group:
            argv += ["--group", self.group]
        return argv + self.extra_args

    def daemon_env(self, base=None) -> dict:
        """The daemon's environment: PYTHONPATH pointing at this copy of hostbridge."""
        env = dict(os.environ if base is None else base)
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = _PKG_PARENT + (os.pathsep + old if old else "")
        return env

    def pid(self) -> Optional[int]:
        """The running daemon's pid, or None."""
        return read_pidfile(self.pidfile)

    def status(self) -> dict:
        """``{"running": bool, "pid": int|None, "responding": bool, "socket", "log", "root"}``."""
        pid = self.pid()
        return {"running": pid is not None, "pid": pid, "responding": ping_socket(self.socket_path),
                "socket": self.socket_path, "log": self.log_file, "root": self.root, "endpoint": self.endpoint}

    def _check_installed(self):
        try:
            found = importlib.util.find_spec(self.module + ".daemon") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MachineError("the hostbridge engine (%s.daemon) is not installed with this hostbridge" % self.module,
                               hint="reinstall hostbridge", machine="default", stage="engine")

    def _fail(self, message):
        logtail = tail(self.log_file)
        detail = ("; last lines of %s:\n%s" % (self.log_file, logtail)) if logtail else ""
        return MachineError(message + detail, hint=None if logtail else "see %s" % self.log_file,
                            machine="default", stage="engine")

    def start(self, timeout=30.0) -> dict:
        """Start the daemon detached and wait until it answers ``/_ping``. Idempotent.

        Args:
            timeout: seconds to wait for ``/_ping``.
        Returns:
            ``status()`` plus ``"already_running": bool``.
        Raises:
            NotRootError: not root.
            MachineError: the engine is missing, exited, or did not answer in time (with its log's
                last lines).
        """
        require_root()
        group_created = ensure_group(self.group)
        pid = self.pid()
        if pid is not None and ping_socket(self.socket_path):
            return dict(self.status(), already_running=True, group_created=group_created)
        if pid is None:
            self._check_installed()
            for d in (self.root, os.path.dirname(self.socket_path)):
                try:
                    os.makedirs(d, mode=0o711, exist_ok=True)
                except OSError as e:
                    raise MachineError("cannot create %s: %s" % (d, e.strerror or e),
                                       hint="check native.root and native.socket", machine="default", stage="engine")
            proc = self._spawn()
        else:
            proc = None  # started earlier and still coming up: wait for it
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ping_socket(self.socket_path, timeout=1.0):
                return dict(self.status(), already_running=proc is None, group_created=group_created)
            if proc is not None and proc.poll() is not None:
                raise self._fail("the hostbridge engine exited with status %d while starting" % proc.returncode)
            time.sleep(0.1)
        raise self._fail("the hostbridge engine did not answer on %s within %gs" % (self.socket_path, timeout))

    def _spawn(self):
        # Detached: its own session, stdio to the log (tracebacks before logging starts land there).
        with open(self.log_file, "ab") as log:
            return subprocess.Popen(self.daemon_argv(), env=self.daemon_env(), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, start_new_session=True, close_fds=True, cwd="/")

    def stop(self, timeout=30.0) -> Optional[int]:
        """SIGTERM the daemon and wait for it to exit; containers keep running. Idempotent.

        Returns:
            The pid stopped, or None when it was not running.
        Raises:
            NotRootError: not root.
            MachineError: it did not exit within ``timeout``.
        """
        require_root()
        pid = self.pid()
        if pid is None:
            return None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return pid
            time.sleep(0.1)
        raise self._fail("the hostbridge engine (pid %d) did not stop within %gs" % (pid, timeout))
