"""VM mode's read side: the driver of a machine, its status, its endpoint, ssh, logs.

Sequencing a start or a stop is ``machines/machine.py``'s job; this module only builds a machine's
driver from its record and answers questions about it. ``endpoint_for`` is on the CLI's hot
path (``client.endpoint`` through ``modes.VMMachine.endpoint``): it never imports paramiko or a driver.
"""

from __future__ import annotations

import os
import platform
import re
import shlex

from .. import hostos
from ..errors import HostbridgeError, MachineError
from ..tunnel import control, localhttp

MODE = "vm"
VM_DRIVERS = ("qemu", "vagrant")
# Stored in machine.json's "state": what `up`/`down` last did. "starting" with a dead
# "up_pid" is an `up` that crashed or was killed; "suspended": `down` saved the VM's state.
STARTING, RUNNING, STOPPED, SUSPENDED = "starting", "running", "stopped", "suspended"


def parse_size_gib(text) -> int:
    """``"20G"``, ``"20g"``, ``"20480M"``, ``"1T"``, ``20`` → GiB (whole, at least 1).

    Raises:
        MachineError: not a size.
    """
    m = re.fullmatch(r"\s*(\d+)\s*([mMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise MachineError("%r is not a disk size" % (text,), hint="use e.g. 20G")
    n, unit = int(m.group(1)), (m.group(2) or "G").upper()
    gib = {"M": n / 1024.0, "G": n, "T": n * 1024}[unit]
    if gib < 1:
        raise MachineError("a disk of %s is too small" % text, hint="use at least 1G")
    return int(gib)


def parse_shares(text, home=None, system=None) -> tuple:
    """The ``vm.shares`` setting → absolute host folders (``~`` is the user's home; ``auto`` the
    OS's default, ``hostos.default_shares``: macOS /Users, Windows C:\\Users, Linux ~)."""
    home = home or os.path.expanduser("~")
    out = []
    for part in (text or "").split(os.pathsep):
        part = part.strip()
        if part == "auto":
            out.extend(hostos.default_shares(system, home))
        elif part:
            out.append(os.path.abspath(home + part[1:] if part.startswith("~") else part))
    return tuple(dict.fromkeys(out))


# Guest trees a share must not cover or land in (the guest's own system), and root's home,
# which a share must not cover (its authorized SSH key) but may land in.
GUEST_SYSTEM = ("/etc", "/usr", "/var", "/run", "/proc", "/sys", "/dev", "/bin", "/sbin", "/lib", "/lib64", "/boot")
GUEST_HOMES = ("/root",)


def guest_shares(shares, system=None) -> tuple:
    """Split host folders into those that can be mounted at the same path in the guest, and not.

    Each is judged where it lands in the guest (``hostos.guest_path``: ``C:\\Users`` at
    ``/c/Users``). A share equal to, or above, a guest system tree or ``/root`` would hide it (a root user's
    home, ``/root``, would hide the guest's authorized SSH key); one inside a system tree would
    shadow the guest's own files (pure).

    Returns:
        (kept, refused), both tuples of paths.
    """
    kept, refused = [], []
    for share in shares:
        norm = "/" + hostos.guest_path(share, system).strip("/")
        covers = any(r == norm or r.startswith(norm.rstrip("/") + "/") for r in GUEST_SYSTEM + GUEST_HOMES)
        inside = any(norm.startswith(t + "/") for t in GUEST_SYSTEM)
        (refused if covers or inside else kept).append(share)
    return tuple(kept), tuple(refused)


def choose_driver(requested=None, system=None, tools=None) -> str:
    """The driver for a new machine: ``requested``, else the OS default (``driver.default_driver``).

    Raises:
        VMError: an unknown driver, or none installed.
    """
    from .driver import default_driver, installed_tools

    return default_driver(system or platform.system(), installed_tools() if tools is None else tools, requested)


def make_driver(record):
    """The driver object for a vm machine's record (cheap: no I/O until a method runs).

    Raises:
        MachineError: the record names a driver this hostbridge does not know.
    """
    from .driver import MachineSpec
    from .drivers import make_driver as make

    f = record.fields
    spec = MachineSpec(name=record.name, dir=record.paths.dir, cpus=int(f.get("cpus", 2)),
                       memory_mib=int(f.get("memory_mib", 2048)), disk_gib=int(f.get("disk_gib", 20)),
                       shares=tuple(f.get("shares") or ()), image_dir=f.get("image_dir"), box=f.get("box"))
    if record.driver not in VM_DRIVERS:
        raise MachineError("machine %s has unknown driver %r" % (record.name, record.driver),
                           hint="destroy it and create it again", machine=record.name)
    return make(record.driver, spec)


def load_vm(name):
    """Machine ``name``'s record, which must be a vm machine.

    Raises:
        MachineError: no such machine, or not a vm one.
    """
    from .record import load

    record = load(name)
    if record is None:
        raise MachineError("no machine named %r" % name, hint="create it with `hostbridge up --machine %s --driver qemu`"
                           % name, machine=name)
    if record.mode != MODE:
        raise MachineError("machine %r is a %s machine, not a VM" % (name, record.mode), machine=name)
    return record


def pid_alive(pid) -> bool:
    """Whether process ``pid`` exists."""
    if not pid:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there
        from ..tunnel.npipe import process_alive

        return process_alive(int(pid))
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def quick_endpoint(record, timeout=2.0):
    """The endpoint when agent and engine answer now, else None. No SSH, no driver.

    This is all ``up`` does on a running machine (the ≤ 0.5 s path).
    """
    p = record.paths
    status = control.read_status(p)
    if not status or status.get("state") != "connected" or not control.agent_alive(p, status):
        return None
    url = control.endpoint_url(p, status)
    return url if url and localhttp.ping(url, timeout=timeout) else None


def endpoint_for(name: str) -> str:
    """A vm machine's local endpoint, restarting its tunnel agent when it died (``modes.VMMachine.endpoint``).

    Raises:
        MachineError: the machine is not running, or its agent cannot reach it.
    """
    record = load_vm(name)
    p = record.paths
    status = control.read_status(p)
    if status and status.get("state") == "connected" and control.agent_alive(p, status):
        return control.endpoint_url(p, status)
    # Off the fast path now: asking the driver is affordable, and saves waiting on a dead VM.
    if record.fields.get("state") != RUNNING or make_driver(record).state() != RUNNING:
        state = describe_state(record) if record.fields.get("state") != RUNNING else STOPPED
        raise MachineError("machine %s is %s" % (name, state),
                           hint="start it with `hostbridge up --machine %s`" % name, machine=name)
    try:
        return control.ensure_agent(p, timeout=30)
    except HostbridgeError as e:
        raise MachineError("machine %s does not answer (%s)" % (name, e),
                           hint="run `hostbridge up --machine %s` to restart it" % name, machine=name) from None


def describe_state(record) -> str:
    """The recorded state in words; a ``starting`` whose ``up`` died says so."""
    state = record.fields.get("state") or STOPPED
    if state == STARTING and not pid_alive(record.fields.get("up_pid")):
        return "half-started (an `up` was interrupted)"
    return state


def status(name: str) -> dict:
    """What ``hostbridge status`` shows for a vm machine.

    Returns:
        {"name", "driver", "state" (the VM's, from the driver; "half-started…" after an `up` died),
        "recorded" (machine.json's),
        "engine": bool (answers /_ping), "endpoint", "tunnel" (agent state), "ssh_host", "ssh_port",
        "cpus", "memory_mib", "disk_gib", "shares", "engine_version"}.
    """
    record = load_vm(name)
    vm_state = make_driver(record).state()
    tunnel = control.tunnel_status(record.paths)
    url = control.endpoint_url(record.paths) if tunnel.get("alive") else None
    f = record.fields
    recorded = describe_state(record)
    return {"name": name, "driver": record.driver, "state": recorded if recorded.startswith("half") else vm_state,
            "recorded": recorded,
            "engine": bool(url and localhttp.ping(url, timeout=3)), "endpoint": url or record.endpoint_url,
            "tunnel": tunnel.get("state"), "ssh_port": (f.get("ssh") or {}).get("port"),
            "ssh_host": (f.get("ssh") or {}).get("hostname") or "127.0.0.1",
            "cpus": f.get("cpus"), "memory_mib": f.get("memory_mib"), "disk_gib": f.get("disk_gib"),
            "shares": f.get("shares") or [], "engine_version": (f.get("layout") or {}).get("version")}


def list_machines() -> list:
    """Every machine with a record: [{"name", "mode", "driver", "state", "endpoint"}].

    A VM's state is its driver's (a VM killed behind our back reads "stopped"), with the
    recorded one when an ``up`` is under way or was interrupted.
    """
    from .record import list_names, load

    rows = []
    for name in list_names():
        record = load(name)
        state = ""
        if record.mode == MODE:
            recorded = describe_state(record)
            state = recorded if recorded != RUNNING and recorded != STOPPED else make_driver(record).state()
            if state == RUNNING and not control.agent_alive(record.paths):
                state = "running (tunnel down)"
        rows.append({"name": name, "mode": record.mode, "driver": record.driver or "-", "state": state or "-",
                     "endpoint": record.endpoint_url or "-"})
    return rows


def ssh_argv(record, command=(), tty=None, ssh="ssh") -> list:
    """The OpenSSH command line logging into the guest with the machine's key and pinned host key (pure).

    Args:
        record: the machine's record (its ``ssh`` field: hostname, port, user, identity_files).
        command: words to run there (none: a login shell).
        tty: force (True) or refuse (False) a terminal; None: ssh's default.
        ssh: the ssh binary.
    Raises:
        MachineError: the machine was never started (no SSH address yet).
    """
    target = record.fields.get("ssh")
    if not target:
        raise MachineError("machine %s has no SSH address yet" % record.name, hint="start it with `hostbridge up`",
                           machine=record.name)
    argv = [ssh, "-p", str(target["port"]), "-o", "UserKnownHostsFile=" + record.paths.known_hosts,
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"]
    for key in target.get("identity_files") or []:
        argv += ["-i", key]
    if tty is True:
        argv.append("-t")
    elif tty is False:
        argv.append("-T")
    argv.append("%s@%s" % (target["user"], target["hostname"]))
    if command:
        argv += ["--"] + list(command)  # ssh joins the words with spaces, as the user typed them
    return argv


def read_tail(path, lines=100) -> str:
    """The last ``lines`` lines of a host file ("" when missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            text = f.read().decode("utf-8", "replace").replace("\r", "")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:]) + "\n" if text else ""


def engine_log(name: str, lines=100) -> str:
    """The last lines of the engine's log inside the guest (over SSH).

    Raises:
        MachineError: the machine is not running or SSH fails.
    """
    from .. import deploy

    record = load_vm(name)
    layout = deploy.Layout.from_dict(record.fields["layout"]) if record.fields.get("layout") else None
    if layout is None:
        raise MachineError("machine %s has no engine deployed yet" % name, hint="start it with `hostbridge up`",
                           machine=name)
    with connection(record) as conn:
        rc, out, err = conn.run("tail -n %d %s" % (int(lines), shlex.quote(layout.log)), timeout=30)
    if rc != 0:
        raise MachineError("reading %s in machine %s failed: %s" % (layout.log, name, err.decode(errors="replace")
                                                                    .strip()), machine=name)
    return out.decode("utf-8", "replace")


def connection(record, timeout=10):
    """An SSH ``tunnel.ssh.Connection`` to the guest (host key pinned; only the machine's key)."""
    from ..tunnel.known_hosts import KnownHosts
    from ..tunnel.ssh import Connection, SSHTarget

    return Connection(SSHTarget.from_dict(record.fields["ssh"]), KnownHosts(record.paths.known_hosts),
                      timeout=timeout, look_for_keys=False, allow_agent=False)


__all__ = ["MODE", "STARTING", "RUNNING", "STOPPED", "parse_size_gib", "parse_shares", "choose_driver",
           "make_driver", "load_vm", "quick_endpoint", "endpoint_for", "status", "list_machines", "ssh_argv",
           "read_tail", "engine_log", "connection"]
