"""The container's side of creation: the forked child that becomes the container's pid 1.

It talks to the shim over a CLOEXEC socketpair, one JSON line per message:
  shim → child  "c"   you are in the cgroup: set up namespaces and the root
  child → shim  {"ready": true}  (+ the pty master as SCM_RIGHTS when tty) or {"error", "exit_code"}
  shim → child  "g"   go: exec the process
  child → shim  {"error", "exit_code"} if exec fails; EOF (the socket closes on exec) if it worked
With ``process.init`` and an ``init_path``, pid 1 is docker's init (tini) bound at
/sbin/docker-init: ``/sbin/docker-init -- ARGS``. With ``init`` alone (no static init binary on
this host) pid 1 stays this Python process, a tiny init: it runs the command as its child,
forwards signals to it, reaps every zombie, and exits with the command's status.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import termios

from . import caps, initbin, ns, oom, process, rootfs, seccomp

_NO_FORWARD = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU}


def exit_status(status: int) -> int:
    """A waitpid status as a shell / docker exit code: 128+N when killed by signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _send(sock: socket.socket, obj, fds=()) -> None:
    data = (json.dumps(obj) + "\n").encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def _recv_byte(sock: socket.socket) -> bytes:
    b = sock.recv(1)
    if not b:
        os._exit(1)  # the shim is gone before start: nobody will ever say go
    return b


def _join_path(path: str, nstype: int) -> None:
    """setns into the namespace file ``path`` (``/proc/PID/ns/KIND`` of the container joined)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.setns(fd, nstype)
    finally:
        os.close(fd)


def _enter_userns(spec: dict, sync: socket.socket) -> None:
    """Enter the container's user namespace (a remapped engine) and become its root.

    ``{"path": "/proc/PID/ns/user"}`` joins another container's (``--network container:X``
    and the like share X's, as dockerd does); ``{"uid_map", "gid_map"}`` makes a new one,
    whose maps the shim writes once asked (only root of the parent namespace may map ranges).
    Every namespace made after this one belongs to it, so container root holds its
    capabilities there (ping, ports below 1024, hostname) and nowhere else.
    """
    if spec.get("path"):
        _join_path(spec["path"], ns.CLONE_NEWUSER)
    else:
        ns.unshare(ns.CLONE_NEWUSER)
        _send(sync, {"userns": True})
        _recv_byte(sync)
    ns.become_root()


def _unshare(config: dict) -> bool:
    """Enter the container's namespaces; True when it has a cgroup namespace of its own.

    Each of uts, ipc and net is "new" (or net "none": new and empty), "host" (the shim's,
    which are the host's), or a ``/proc/PID/ns/KIND`` path: another container's, joined with
    setns, never silently left as the host's. The pid namespace is the shim's business: it
    must be chosen before the fork (see ``shim.create``).
    """
    nss = config.get("namespaces") or {}
    flags = ns.CLONE_NEWNS
    if nss.get("uts", "new") == "new":
        flags |= ns.CLONE_NEWUTS
    if nss.get("ipc", "new") == "new":
        flags |= ns.CLONE_NEWIPC
    net = nss.get("net", "new")
    if net in ("new", "none"):
        flags |= ns.CLONE_NEWNET
    ns.unshare(flags)
    try:
        ns.unshare(ns.CLONE_NEWCGROUP)  # the container sees its own cgroup as the root
        cgroupns = True
    except OSError:
        cgroupns = False
    for kind, nstype in (("uts", ns.CLONE_NEWUTS), ("ipc", ns.CLONE_NEWIPC), ("net", ns.CLONE_NEWNET)):
        value = nss.get(kind, "new")
        if value.startswith("/"):
            _join_path(value, nstype)
        elif value not in ("new", "none", "host"):
            raise ValueError("unknown %s namespace mode %r" % (kind, value))
    if net in ("new", "none"):
        ns.loopback_up()
    if flags & ns.CLONE_NEWUTS:
        ns.sethostname(config.get("hostname") or (config.get("id") or "")[:12])
        if config.get("domainname"):
            ns.setdomainname(config["domainname"])
    return cgroupns


def _make_tty() -> int:
    """Open a pty in the container's own devpts; the slave becomes stdio and controlling tty."""
    master, slave = os.openpty()
    try:
        # as docker: /dev/console is the container's terminal
        os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        ns.mount(os.ttyname(slave), "/dev/console", None, ns.MS_BIND)
    except OSError:
        pass  # a read-only /dev of the user's own: go without a console
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    return master


def child_main(config: dict, sync: socket.socket, stdio: tuple, join=None) -> None:
    """Run in the forked child; never returns.

    Args:
        config: the bundle's config.json.
        sync: the child's end of the socketpair.
        stdio: ``(stdin, stdout, stderr)`` fds to install, or None when the process has a tty.
        join: called first, to join the container's cgroup from inside (a failure is reported
            as a setup failure).
    """
    code = 1
    try:
        # until execve nothing in the container may ptrace or read this process (CVE-2016-9962)
        ns.prctl(ns.PR_SET_DUMPABLE, 0)
        # not the shim's -999: the container is what the OOM killer should take (the engine
        # sets a HostConfig.OomScoreAdj after the create)
        try:
            oom.set_score_adj(oom.CONTAINER_SCORE_ADJ)
        except OSError:
            pass  # the shim's could not be lowered either: it is ours already
        if join is not None:
            join()
        if stdio is not None:
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
        _close_fds_except({0, 1, 2, sync.fileno()})
        _recv_byte(sync)
        userns = config.get("userns")
        if userns:
            ns.unshare(ns.CLONE_NEWNS)
            rootfs.setup_before_userns(config)
            _enter_userns(userns, sync)
        cgroupns = _unshare(config)
        rootfs.setup(config, cgroupns, premounted=bool(userns))
        proc = config.get("process") or {}
        builtin_init = bool(proc.get("init"))
        if rootfs.init_binary(proc):
            proc, builtin_init = dict(proc, args=initbin.command(proc.get("args") or [])), False
        if proc.get("tty"):
            fds = [_make_tty()]
        else:
            fds = []
            os.setsid()  # its own session, as runc gives, not the shim's
        extra = {"HOSTNAME": config.get("hostname") or ""}
        if proc.get("tty"):
            extra["TERM"] = "xterm"
        try:
            prepared, error = process.prepare(proc, extra), None
        except process.ExecError as e:
            prepared, error = None, e
        _send(sync, {"ready": True}, fds)
        for fd in fds:
            os.close(fd)
        _recv_byte(sync)
        if error is not None:
            raise error
        if builtin_init:
            _run_init(prepared, sync, bool(proc.get("tty")))
        process.become(prepared)
        process.exec_prepared(prepared)
    except process.ExecError as e:
        code = e.exit_code
        _try_send(sync, {"error": e.message, "exit_code": e.exit_code})
    except BaseException as e:
        _try_send(sync, {"error": "container setup failed: %s" % e, "exit_code": 1})
    os._exit(code)


def _close_fds_except(keep) -> None:
    """Close every inherited fd but ``keep``: the shim's report pipe, sockets, selector."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _try_send(sync, obj) -> None:
    try:
        _send(sync, obj)
    except OSError:
        pass


def _run_init(prepared: process.Prepared, sync: socket.socket, tty: bool) -> None:
    """Be the container's init: start the command, forward signals, reap; exit with its status."""
    child = [0]

    def forward(sig, _frame):
        if child[0] > 0:
            try:
                os.kill(child[0], sig)
            except ProcessLookupError:
                pass

    for sig in signal.Signals:
        if sig not in _NO_FORWARD:
            try:
                signal.signal(sig, forward)
            except (OSError, ValueError):
                pass
    caps.drop_bounding(prepared.cap_mask)
    pid = os.fork()
    if pid == 0:
        for sig in signal.Signals:
            if sig not in _NO_FORWARD:
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        try:
            if tty:
                # the command's process group takes the terminal, as tini does, so ^C reaches it
                os.setpgid(0, 0)
                old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
                os.tcsetpgrp(0, os.getpid())
                signal.signal(signal.SIGTTOU, old)
            process.become(prepared)
            process.exec_prepared(prepared)
        except process.ExecError as e:
            _try_send(sync, {"error": e.message, "exit_code": e.exit_code})
            os._exit(e.exit_code)
        except BaseException as e:
            _try_send(sync, {"error": "init: %s" % e, "exit_code": 1})
            os._exit(1)
    child[0] = pid
    sync.close()
    if prepared.seccomp is not None:  # init lives in the container too: under its filter
        try:
            ns.prctl(ns.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.install(prepared.seccomp)
        except OSError:
            os.kill(pid, signal.SIGKILL)  # never an unconfined init
            os._exit(1)
    for fd in (0, 1, 2):  # init's copies would keep the pipes open after the command exits
        try:
            os.close(fd)
        except OSError:
            pass
    while True:
        try:
            wpid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if wpid == pid:
            os._exit(exit_status(status))
