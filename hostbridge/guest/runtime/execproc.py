"""``python3 -m hostbridge.guest exec [SPEC_JSON]``: run one more process in a running container.

The spec is argv[0] when given, else read from fd 3 (see docs/internals.md, "Exec"). The helper
joins the container's cgroups and namespaces, forks (a process joins a pid namespace only
through its children), and the child becomes the requested process with this helper's stdio.
The helper exits with the child's status (128+N when killed by signal N) and forwards the
signals it gets to it. On a setup failure it prints docker's message to stderr and exits 126
or 127 as docker does.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import sys
import termios

from . import cgroupfs, ns, oom, process
from .container import exit_status

_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430

# mnt last: it changes "/" and /proc; user (a remapped container's) after the host-owned pid one
_NS_ORDER = ["cgroup", "ipc", "uts", "net", "pid", "user", "mnt"]


def open_pty_in(pid: int) -> tuple:
    """Open a pty in the devpts of container ``pid`` (for an exec with a tty).

    Opened through /proc/PID/root, the terminal is one the container can name: ``tty``
    inside prints ``/dev/pts/N``. Give the slave to the exec helper as its stdio.

    Returns:
        ``(master_fd, slave_fd, "/dev/pts/N")``, both fds close-on-exec and not our ctty.
    """
    root = "/proc/%d/root/dev" % pid
    master = os.open(root + "/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        n = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))[0]
        slave = os.open("%s/pts/%d" % (root, n), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave, "/dev/pts/%d" % n


def _read_spec(argv) -> dict:
    if argv:
        return json.loads(argv[0])
    chunks = []
    with os.fdopen(3, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


class Entered:
    """What ``enter`` leaves for ``run``: the v2 cgroup to fork into, and the container's cgroup
    namespace for the process to join (fds, or None)."""

    def __init__(self, cgroup2_fd=None, cgroupns_fd=None, oom_score_adj=0, userns=False):
        self.cgroup2_fd, self.cgroupns_fd = cgroup2_fd, cgroupns_fd
        self.userns = userns  # joined the container's user namespace: the process becomes its root
        self.oom_score_adj = oom_score_adj  # the container's: the helper's is the engine's


def enter(spec: dict) -> tuple:
    """Join the container's namespaces and its v1 cgroups (the process must be single-threaded;
    ``cgroupfs.join_from_inside`` says why it is done this way).

    The cgroup namespace is left to the process itself: forking into (or moving into) a cgroup
    from inside another cgroup namespace is refused on an ``nsdelegate`` cgroup2 mount.

    Returns:
        ``(error, Entered)``: None or why the container could not be entered (docker's exec
        then fails with 126); what ``run`` needs.
    """
    entered = Entered()
    try:
        # nothing in the container may ptrace or read the helper (and the process it forks)
        # until execve: it holds host descriptors and runs as host root (CVE-2016-9962)
        ns.prctl(ns.PR_SET_DUMPABLE, 0)
        from . import seccomp  # noqa: F401  (process.prepare needs it after setns: no import works there)

        pid = int(spec["pid"])
        entered.oom_score_adj = oom.score_adj(pid)
        entered.cgroup2_fd = cgroupfs.join_from_inside(
            [os.path.dirname(f) for f in spec.get("cgroup_procs") or ()], v2="open")
        entered.cgroupns_fd = ns.open_namespace(pid, "cgroup")
        entered.userns = "user" in ns.join_namespaces(pid, [k for k in _NS_ORDER if k != "cgroup"])
    except (OSError, ValueError, KeyError) as e:
        return "exec: cannot enter the container: %s" % e, entered
    return None, entered


def _fork(cgroup2_fd) -> int:
    if cgroup2_fd is None:
        return os.fork()
    try:
        return ns.fork_into_cgroup(cgroup2_fd)
    except OSError:  # before Linux 5.7: move in (the slow way), then fork
        fd = os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=cgroup2_fd)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
        return os.fork()


def run(spec: dict, entered=None, started=None) -> int:
    """After ``enter``: fork the process into the container's pid namespace (and v2 cgroup),
    forward signals to it, and wait. Returns its exit status (128+N for signal N); never
    returns in the child.

    Args:
        entered: from ``enter``.
        started: called with the process's (host) pid once it is forked.
    """
    r, w = os.pipe()  # CLOEXEC: the child reports an exec failure here, closes it on success
    entered = entered or Entered()
    pid = _fork(entered.cgroup2_fd)
    if pid == 0:
        os.close(r)
        if entered.cgroup2_fd is not None:  # a host cgroup directory: not past this point
            os.close(entered.cgroup2_fd)
        _child(spec, w, entered.cgroupns_fd, entered.oom_score_adj, entered.userns)
    os.close(w)
    if started is not None:
        started(pid)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGWINCH):
        signal.signal(sig, lambda s, _f: _forward(pid, s))
    err = b"".join(iter(lambda: os.read(r, 4096), b""))
    os.close(r)
    if err:
        sys.stderr.write(err.decode(errors="replace") + "\n")
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return exit_status(status)
        except ChildProcessError:
            return 1


def main(argv) -> int:
    """Entry point; returns the exit status (or never returns on the child's side)."""
    try:
        spec = _read_spec(argv)
    except (OSError, ValueError) as e:
        sys.stderr.write("exec: bad spec: %s\n" % e)
        return 126
    err, entered = enter(spec)
    if err:
        sys.stderr.write(err + "\n")
        return 126
    return run(spec, entered)


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _child(spec: dict, report_fd: int, cgroupns_fd=None, oom_score_adj=0, userns=False) -> None:
    code = 126
    try:
        if userns:
            ns.become_root()
        try:
            oom.set_score_adj(oom_score_adj)
        except OSError:
            pass  # the helper's could not be lowered from it either (EIO in some sandboxes)
        if cgroupns_fd is not None:  # now that it is in the container's cgroups
            ns.setns(cgroupns_fd, ns.CLONE_NEWCGROUP)
            os.close(cgroupns_fd)
        if spec.get("tty"):
            os.setsid()
            try:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            except OSError:
                pass  # stdin is not a terminal after all: run without a controlling tty
        proc = {"args": spec.get("args"), "env": spec.get("env"), "cwd": spec.get("cwd") or "/",
                "user": spec.get("user") or "", "group_add": spec.get("group_add"),
                "privileged": bool(spec.get("privileged")),
                "cap_add": spec.get("cap_add"), "cap_drop": spec.get("cap_drop"),
                "no_new_privileges": spec.get("no_new_privileges", True),
                "seccomp": spec.get("seccomp", "builtin")}
        extra = {"HOSTNAME": os.uname().nodename}
        if spec.get("tty"):
            extra["TERM"] = "xterm"
        prepared = process.prepare(proc, extra)
        process.become(prepared)
        process.exec_prepared(prepared)
    except process.ExecError as e:
        code = e.exit_code
        os.write(report_fd, e.message.encode())
    except BaseException as e:
        os.write(report_fd, ("exec failed: %s" % e).encode())
    os._exit(code)
