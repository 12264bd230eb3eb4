"""The engine's handle on one container's shim (see docs/internals.md, "Runtime bundle and shim")."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from .. import selfexec, util
from ..errors import RuntimeFailure
from . import sockpath


class ShimClient:
    """Talks to the shim of the bundle at ``bundle_dir``; every call opens its own connection.

    Args:
        bundle_dir: the container's bundle directory (holds config.json, shim.sock, exit.json).
    """

    def __init__(self, bundle_dir: str):
        self.bundle = os.path.abspath(bundle_dir)
        self.sock_path = os.path.join(self.bundle, "shim.sock")

    def spawn(self, timeout: float = 60.0) -> int:
        """Start the shim and create the container (it then waits for ``start``).

        Returns:
            The host pid of the container's pid 1.

        Raises:
            RuntimeFailure: creation failed; the message is the runtime's.
        """
        from . import zygote
        try:
            out = zygote.instance().spawn(self.bundle, timeout).decode(errors="replace").strip().splitlines()
            code, err = 0, ""
        except socket.timeout:
            raise RuntimeFailure("the shim did not create the container within %ds" % timeout)
        except OSError:  # no zygote (it died, or cannot start): exec the shim directly
            argv, env = selfexec.argv("shim"), selfexec.env()
            try:
                res = subprocess.run(argv + [self.bundle], env=env, stdin=subprocess.DEVNULL,
                                     capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeFailure("the shim did not create the container within %ds" % timeout)
            out = res.stdout.decode(errors="replace").strip().splitlines()
            code, err = res.returncode, res.stderr.decode(errors="replace").strip()
        try:
            reply = json.loads(out[-1]) if out else {}
        except ValueError:
            reply = {}
        if code != 0 or "pid" not in reply:
            msg = reply.get("error") or err or "the shim died before the container was created (see bundle/shim.log)"
            raise RuntimeFailure(msg)
        return int(reply["pid"])

    def _connect(self, timeout=None) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            with sockpath.usable(self.sock_path) as addr:
                s.connect(addr)
        except OSError as e:
            s.close()
            raise RuntimeFailure("the container's shim is not running (%s)" % e.strerror) from e
        return s

    def _call(self, req: dict, timeout=10.0) -> dict:
        s = self._connect(timeout)
        try:
            s.sendall(json.dumps(req).encode() + b"\n")
            reply = _read_line(s)
        except socket.timeout:
            raise RuntimeFailure("the shim did not answer %r in time" % req.get("op"))
        except OSError as e:
            raise RuntimeFailure("lost the shim while asking %r: %s" % (req.get("op"), e)) from e
        finally:
            s.close()
        if reply is None:
            raise RuntimeFailure("the shim closed the connection during %r" % req.get("op"))
        return reply

    def start(self) -> None:
        """Let the created process exec; returns once it has.

        Raises:
            RuntimeFailure: the exec failed; ``.exit_code`` holds docker's code (127, 126, …).
        """
        reply = self._call({"op": "start"}, timeout=60.0)
        if "error" in reply:
            err = RuntimeFailure(reply["error"])
            err.exit_code = reply.get("exit_code", 1)
            raise err

    def wait(self, timeout: float | None = None) -> dict:
        """Block until the process exits.

        Returns:
            ``{"exit_code", "oom_killed", "finished_at", "error"}``.

        Raises:
            RuntimeFailure: timed out, or no shim and no exit.json.
        """
        try:
            return self._call({"op": "wait"}, timeout=timeout)
        except RuntimeFailure:
            rec = self._exit_after_shim(1.0)
            if rec is None:
                raise
            return rec

    def _exit_after_shim(self, grace: float):
        """exit.json, allowing a shim that is just leaving a moment to have written it."""
        deadline = time.monotonic() + grace
        while True:
            rec = self.read_exit()
            if rec is not None or time.monotonic() > deadline:
                return rec
            time.sleep(0.02)

    def attach(self, stdin: bool = False, stdout: bool = True, stderr: bool = True) -> socket.socket:
        """Open an attach stream (framed output unless a tty; write stdin; SHUT_WR ends it).

        Returns:
            A connected blocking socket positioned after the ``{"ok":true}`` line.
        """
        s = self._connect(10.0)
        try:
            s.sendall(json.dumps({"op": "attach", "stdin": stdin, "stdout": stdout,
                                  "stderr": stderr}).encode() + b"\n")
            reply = _read_line(s)
        except OSError as e:
            s.close()
            raise RuntimeFailure("attach failed: %s" % e) from e
        if not reply or not reply.get("ok"):
            s.close()
            raise RuntimeFailure((reply or {}).get("error") or "attach refused by the shim")
        s.settimeout(None)
        return s

    def resize(self, height: int, width: int) -> None:
        """Set the tty's size. Raises RuntimeFailure when there is no tty."""
        self._checked({"op": "resize", "height": int(height), "width": int(width)})

    def kill(self, sig: int) -> None:
        """Send signal ``sig`` to the container's pid 1. Raises RuntimeFailure if not running."""
        self._checked({"op": "kill", "signal": int(sig)})

    def state(self) -> dict:
        """``{"pid", "status": "created|running|exited", "cgroup_paths"}``; exited when the shim is gone."""
        try:
            return self._call({"op": "state"})
        except RuntimeFailure:
            if self.read_exit() is not None:
                return {"pid": 0, "status": "exited"}
            raise

    def read_exit(self):
        """The recorded exit (``exit.json``), or None while the process has not exited."""
        return util.read_json(os.path.join(self.bundle, "exit.json"))

    def _checked(self, req: dict) -> None:
        reply = self._call(req)
        if "error" in reply:
            raise RuntimeFailure(reply["error"])


def _read_line(s: socket.socket):
    """One JSON line, read a byte at a time so that nothing after it is consumed."""
    buf = b""
    while not buf.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            return json.loads(buf) if buf.strip() else None
        buf += b
    return json.loads(buf)
