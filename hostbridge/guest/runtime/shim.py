"""``python3 -m hostbridge.guest shim BUNDLE``: create one container and supervise it.

The command forks a daemon (double fork + setsid, so it outlives the engine) and waits until
the container is *created*, then prints ``{"pid": HOSTPID}`` and exits 0, or prints
``{"error": "…"}`` and exits 1. The daemon (the shim) then serves ``bundle/shim.sock``
(see ``supervisor.py``) until the container has exited and no client is left.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from . import container, ns, sockpath
from .cgroups import Cgroup
from .supervisor import Supervisor
from .. import util


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def main(argv) -> int:
    """Entry point: ``argv = [bundle_dir]``. Returns the helper's exit status."""
    if len(argv) != 1:
        sys.stderr.write("usage: shim BUNDLE_DIR\n")
        return 2
    bundle = os.path.abspath(argv[0])
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        out = _read_all(r)
        os.close(r)
        os.waitpid(pid, 0)
        text = out.decode(errors="replace").strip() or json.dumps(
            {"error": "the shim died before the container was created (see bundle/shim.log)"})
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return 0 if '"pid"' in text else 1
    os.close(r)
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        _daemon(bundle, w)
    except BaseException:  # noqa: BLE001 - a daemon has nobody else to tell
        import traceback

        traceback.print_exc()
    os._exit(0)


def _detach_stdio(bundle: str) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(os.path.join(bundle, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.chdir("/")


def _daemon(bundle: str, report_fd: int) -> None:
    _detach_stdio(bundle)
    try:
        sup = create(bundle)
    except Exception as e:  # noqa: BLE001 - every failure goes back to the caller as text
        import traceback

        traceback.print_exc()
        os.write(report_fd, json.dumps({"error": str(e) or e.__class__.__name__}).encode())
        os.close(report_fd)
        return
    os.write(report_fd, json.dumps({"pid": sup.pid}).encode())
    os.close(report_fd)
    sup.serve()


def _stdio_pipes(proc: dict) -> tuple:
    """``(child's (in, out, err), shim's (stdin writer or None, stdout reader, stderr reader))``."""
    if proc.get("open_stdin"):
        in_r, in_w = os.pipe()
    else:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    return (in_r, out_w, err_w), (in_w, out_r, err_r)


def create(bundle: str) -> Supervisor:
    """Create the container of ``bundle``: cgroup, namespaces, root, waiting for go.

    Returns:
        The supervisor, with the socket already listening.

    Raises:
        GuestError or OSError: any step failed; nothing is left behind.
    """
    config = util.read_json(os.path.join(bundle, "config.json"))
    if config is None:
        raise FileNotFoundError("no config.json in %s" % bundle)
    proc = config.get("process") or {}
    cg_cfg = dict(config.get("cgroup") or {})
    cgroup = Cgroup(cg_cfg.get("name") or config["id"])
    child_end = None
    try:
        cgroup.create(cg_cfg)
        sock_path = os.path.join(bundle, "shim.sock")
        if os.path.lexists(sock_path):
            os.unlink(sock_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sockpath.usable(sock_path) as addr:
            listener.bind(addr)
        os.chmod(sock_path, 0o600)
        listener.listen(64)
        sync, child_end = socket.socketpair()
        if proc.get("tty"):
            child_stdio, shim_stdio = None, (None, None, None)
        else:
            child_stdio, shim_stdio = _stdio_pipes(proc)
        if (config.get("namespaces") or {}).get("pid", "new") == "new":
            ns.unshare(ns.CLONE_NEWPID)  # our next child is pid 1 of a new pid namespace
        pid = os.fork()
        if pid == 0:
            listener.close()
            sync.close()
            for fd in shim_stdio:
                if fd is not None:
                    os.close(fd)
            container.child_main(config, child_end, child_stdio)
        child_end.close()
        if child_stdio:
            for fd in child_stdio:
                os.close(fd)
        sup = Supervisor(bundle, config, cgroup, pid, listener, sync, shim_stdio)
        try:
            cgroup.add(pid)
            sync.sendall(b"c")
            sup.wait_created()
        except BaseException:
            sup.abort()
            raise
        return sup
    except BaseException:
        cgroup.destroy()
        raise
