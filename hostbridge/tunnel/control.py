"""Starting, finding and stopping a machine's tunnel agent, from any host process.

No paramiko here: the CLI uses this module on its hot path. The agent's files (tunnel.json,
agent.status.json, agent.lock, agent.log) are named in ``hostbridge.paths``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from . import errors as terrors
from .errors import AgentError
from ..paths import MachinePaths

_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_json_atomic(path: str, data: dict, mode: int = 0o600) -> None:
    """Write ``data`` as JSON so readers never see a half-written file."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_config(paths: MachinePaths, config: dict) -> None:
    """Save what the agent connects to (tunnel.json).

    Keys: ``ssh`` (SSHTarget.to_dict()), ``remote_socket`` (the engine's socket on the far
    side), ``endpoint`` ("unix", or "npipe" on Windows), ``forward_ports`` (bool),
    ``keepalive`` (seconds), ``connect_retry`` (seconds the first login tries again while
    nothing listens; default 0), ``hold`` (the first login waits for ``release``, within
    ``connect_retry``).
    """
    os.makedirs(paths.dir, exist_ok=True)
    write_json_atomic(paths.tunnel_json, config)


def hold(paths: MachinePaths) -> None:
    """Keep an agent started with tunnel.json ``hold`` from logging in until ``release``."""
    try:
        os.remove(paths.agent_go)
    except FileNotFoundError:
        pass


def release(paths: MachinePaths) -> None:
    """Let a held agent log in (its far side is ready)."""
    with open(paths.agent_go, "w"):
        pass


def read_status(paths: MachinePaths) -> dict | None:
    """The agent's last written status, or None."""
    return read_json(paths.agent_status)


def _pid_is_agent(pid: int, machine_dir: str) -> bool:
    """Whether ``pid`` is the agent of ``machine_dir`` (not a reused pid)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        return b"hostbridge.tunnel.agent" in argv and machine_dir.encode() in argv
    except OSError:
        if os.name == "nt":  # os.kill(pid, 0) would terminate it there
            from .npipe import process_alive

            return process_alive(pid)
        try:
            os.kill(pid, 0)  # no /proc (macOS): trust the pid
            return True
        except OSError:
            return False


def agent_alive(paths: MachinePaths, status: dict | None = None) -> bool:
    """Whether the agent named in the status file is still running."""
    status = status if status is not None else read_status(paths)
    return bool(status and status.get("pid") and _pid_is_agent(int(status["pid"]), paths.dir))


def endpoint_url(paths: MachinePaths, status: dict | None = None) -> str | None:
    """The agent's local endpoint as a DOCKER_HOST value (unix://… or npipe:////./pipe/…)."""
    status = status if status is not None else read_status(paths)
    if status and status.get("endpoint"):
        return status["endpoint"]
    return None


def endpoint_answers(url: str | None, timeout: float = 1.0) -> bool:
    """Whether something accepts connections at ``url``."""
    if not url:
        return False
    try:
        if url.startswith("unix://"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(url[len("unix://"):])
        elif url.startswith("npipe:"):
            from ..hostos import pipe_path_from_url
            from . import npipe

            s = npipe.connect(pipe_path_from_url(url), timeout)
        else:
            host, port = url[len("tcp://"):].rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError:
        return False
    s.close()
    return True


def error_from_status(status: dict) -> Exception:
    """Rebuild the structured error the agent recorded (HostKeyError, SSHAuthError, …)."""
    kind = status.get("error_kind") or "AgentError"
    cls = getattr(terrors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, terrors.TunnelError)):
        cls = AgentError
    err = cls(status.get("error") or "the tunnel agent failed")
    for k, v in (status.get("error_fields") or {}).items():
        setattr(err, k, v)
    return err


def default_endpoint() -> str:
    """"unix", or "npipe" on Windows (never a TCP port: ``hostos.endpoint_kind`` says why)."""
    from ..hostos import endpoint_kind

    return endpoint_kind()


def spawn_agent(paths: MachinePaths) -> None:
    """Start an agent process for the machine (it detaches itself and exits if one runs)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _PKG_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [sys.executable, "-m", "hostbridge.tunnel.agent", paths.dir]
    if not hasattr(os, "fork"):  # Windows (untested here): no fork, so detach at creation
        with open(paths.agent_log, "ab") as log:
            subprocess.Popen(argv + ["--foreground"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             creationflags=getattr(subprocess, "DETACHED_PROCESS", 0)
                             | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
        return
    # The agent forks and its parent exits at once: waiting for it reaps it (no zombie).
    subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=30, check=False)


def ensure_agent(paths: MachinePaths, timeout: float = 30) -> str:
    """The machine's local endpoint, starting its agent first when none answers.

    Two callers at once are safe: each may spawn an agent, but only the one holding the
    machine's agent.lock serves; the other exits and both callers find the same endpoint.

    Returns:
        The endpoint URL (``unix://…`` or ``npipe:////./pipe/hostbridge-NAME``).
    Raises:
        HostKeyError, SSHAuthError, SSHUnreachable: the agent could not log in (as recorded).
        AgentError: it did not come up in ``timeout`` seconds.
    """
    status = read_status(paths)
    if agent_alive(paths, status) and status.get("state") == "connected" and endpoint_answers(endpoint_url(paths, status)):
        return endpoint_url(paths, status)
    if not os.path.exists(paths.tunnel_json):
        raise AgentError("machine %s has no tunnel configuration (%s): add it again" % (paths.name, paths.tunnel_json))
    t0 = time.time()
    spawn_agent(paths)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(paths) or {}
        fresh = status.get("started_at", 0) >= t0 - 1
        if status.get("state") == "connected" and agent_alive(paths, status) \
                and endpoint_answers(endpoint_url(paths, status)):
            return endpoint_url(paths, status)
        if fresh and status.get("state") == "failed":
            raise error_from_status(status)
        if fresh and not agent_alive(paths, status) and status.get("state") != "connected":
            raise AgentError("the tunnel agent for %s exited: see %s" % (paths.name, paths.agent_log))
        time.sleep(0.05)
    raise AgentError("the tunnel agent for %s did not come up in %d s: see %s"
                     % (paths.name, timeout, paths.agent_log))


def stop_agent(paths: MachinePaths, timeout: float = 10) -> bool:
    """Stop the machine's agent (SIGTERM, then SIGKILL). Returns whether one was running."""
    status = read_status(paths)
    if not agent_alive(paths, status):
        return False
    pid = int(status["pid"])
    os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_is_agent(pid, paths.dir):
            return True
        time.sleep(0.05)
    os.kill(pid, 9)
    return True


def tunnel_status(paths: MachinePaths) -> dict:
    """What ``hostbridge tunnel status`` shows: the status file plus liveness.

    Returns:
        The agent's status dict with ``alive`` (bool) added; ``state`` is "stopped" when no
        agent runs.
    """
    status = dict(read_status(paths) or {})
    status["alive"] = agent_alive(paths, status)
    if not status["alive"] and status.get("state") not in ("failed",):
        status["state"] = "stopped"
    status.setdefault("machine", paths.name)
    return status
