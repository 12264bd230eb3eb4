"""Exec endpoints: run another process in a running container."""

from __future__ import annotations


from .hijack import hijack
from .transport import quote


class ExecAPIMixin:
    """``/containers/ID/exec`` and ``/exec/ID/...``."""

    def exec_create(self, container, cmd, stdin=False, tty=False, env=None, workdir=None, user=None,
                    privileged=False, detach_keys=None):
        """Create an exec instance (``POST /containers/ID/exec``).

        Returns:
            The exec ID.
        Raises:
            NotFound: no such container.
            Conflict: the container is not running.
        """
        body = {"Cmd": list(cmd), "AttachStdin": stdin, "AttachStdout": True, "AttachStderr": True, "Tty": tty,
                "Privileged": privileged}
        for key, value in (("Env", env), ("WorkingDir", workdir), ("User", user), ("DetachKeys", detach_keys)):
            if value:
                body[key] = value
        return self._json(self._post("/containers/{}/exec", container, json_body=body))["Id"]

    def exec_start_socket(self, exec_id, tty=False):
        """Hijack ``POST /exec/ID/start``: the process's stdio as a raw stream.

        Returns:
            A ``HijackedSocket`` (multiplexed frames unless ``tty``).
        """
        return hijack(self.endpoint, "/exec/%s/start" % quote(exec_id), body={"Detach": False, "Tty": tty})

    def exec_start_detached(self, exec_id, tty=False):
        """Start an exec instance without attaching to it."""
        self._post("/exec/{}/start", exec_id, json_body={"Detach": True, "Tty": tty})

    def exec_inspect(self, exec_id):
        """``GET /exec/ID/json``: ``{"Running", "ExitCode", "Pid", …}``."""
        return self._json(self._get("/exec/{}/json", exec_id))

    def exec_resize(self, exec_id, height, width):
        """Resize an exec instance's TTY."""
        self._post("/exec/{}/resize", exec_id, params={"h": height, "w": width})
