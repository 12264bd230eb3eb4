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

from ..errors import RuntimeFailure
from . import cgroupfs, cgroups, container, ns, oom, sockpath
from .supervisor import Supervisor


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
        # no interpreter tear-down: the engine is waiting on our exit, and there is nothing to
        # clean up (milliseconds here are the container's start-up time)
        os._exit(0 if '"pid"' in text else 1)
    os.close(r)
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        _daemon(bundle, w)
    except BaseException:
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
    try:  # dockerd's shims: the last the OOM killer takes (a dead shim orphans its container)
        oom.set_score_adj(oom.SHIM_SCORE_ADJ)
    except OSError as e:
        sys.stderr.write("cannot set the shim's oom_score_adj: %s\n" % e)
    try:
        sup = create(bundle)
    except Exception as e:
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


def _claim(sock_path: str) -> None:
    """Remove a dead shim's socket; refuse when a live shim still answers on it."""
    if not os.path.lexists(sock_path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with sockpath.usable(sock_path) as addr:
            probe.connect(addr)
    except OSError:
        os.unlink(sock_path)
        return
    finally:
        probe.close()
    raise RuntimeFailure("a shim is already running for %s: stop that container first"
                         % os.path.dirname(sock_path))


def _fork_into(cgroup) -> tuple:
    """Fork the container's first process, born in the cgroup's v2 directory when there is one.

    Returns:
        ``(pid, born_in_v2)`` as ``os.fork`` gives the pid.
    """
    v2 = cgroup.v2_dir()
    if v2 is None:
        return os.fork(), False
    into = os.open(v2, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return ns.fork_into_cgroup(into), True
    except OSError:  # before Linux 5.7: the child moves itself in
        return os.fork(), False
    finally:
        os.close(into)


def _device_rules(config: dict) -> list:
    """Extra device rules: the config's own, and one per device node bound in (--device)."""
    rules = list((config.get("cgroup") or {}).get("device_rules") or [])
    for m in config.get("mounts") or ():
        if m.get("type", "bind") == "bind":
            rule = cgroups.device_rule(m.get("source") or "")
            if rule:
                rules.append(rule)
    return rules


def _choose_pid_namespace(mode: str) -> None:
    """Make our next child's pid namespace: "new" (it is pid 1 of its own), "host" (ours), or
    ``/proc/PID/ns/pid`` (another container's: the child is born in it, as runc's setns does).

    Raises:
        OSError: the namespace cannot be joined (its container is gone); ValueError: unknown mode.
    """
    if mode == "new":
        ns.unshare(ns.CLONE_NEWPID)
    elif mode.startswith("/"):
        fd = os.open(mode, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ns.setns(fd, ns.CLONE_NEWPID)  # for our children only: the shim stays where it is
        finally:
            os.close(fd)
    elif mode != "host":
        raise ValueError("unknown pid namespace mode %r" % mode)


def create(bundle: str) -> Supervisor:
    """Create the container of ``bundle``: cgroup, namespaces, root, waiting for go.

    Returns:
        The supervisor, with the socket already listening.

    Raises:
        GuestError or OSError: any step failed; nothing is left behind.
    """
    with open(os.path.join(bundle, "config.json"), "rb") as f:
        config = json.load(f)
    proc = config.get("process") or {}
    cg_cfg = dict(config.get("cgroup") or {})
    sock_path = os.path.join(bundle, "shim.sock")
    _claim(sock_path)  # before the cgroup: a live twin's cgroup has the same name
    cgroup = cgroups.Cgroup(cg_cfg.get("name") or config["id"])
    child_end = None
    try:
        cgroup.create(cg_cfg)
        cgroup.restrict_devices(bool(proc.get("privileged")), _device_rules(config))
        for stale in ("exit.json",):  # a restarted container reuses its bundle
            if os.path.exists(os.path.join(bundle, stale)):
                os.unlink(os.path.join(bundle, stale))
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
        _choose_pid_namespace((config.get("namespaces") or {}).get("pid", "new"))
        pid, born_in_v2 = _fork_into(cgroup)
        if pid == 0:  # joins the rest of its cgroup itself, before anything else (no lock: cgroupfs)
            container.child_main(config, child_end, child_stdio, join=lambda: cgroupfs.join_from_inside(
                cgroup.dirs(), v2="skip" if born_in_v2 else "move"))  # closes what it inherits
        child_end.close()
        if child_stdio:
            for fd in child_stdio:
                os.close(fd)
        sup = Supervisor(bundle, config, cgroup, pid, listener, sync, shim_stdio)
        try:
            sync.sendall(b"c")
            if sup.wait_created().get("userns"):  # it made its user namespace: map it
                userns = config["userns"]
                ns.write_id_maps(pid, userns["uid_map"], userns["gid_map"])
                sync.sendall(b"m")
                sup.wait_created()
        except BaseException:
            sup.abort()
            raise
        return sup
    except BaseException:
        cgroup.destroy()
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        raise
