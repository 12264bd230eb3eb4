"""The VM driver interface: what machine.py may ask of vagrant, qemu or any later driver.

Contracts are stated per method, lima-style. Every method may raise ``VMError`` carrying the
driver's own message (vagrant's or QEMU's words), never a bare subprocess error. Drivers do
not print and do not talk to the engine: machine.py sequences boot → SSH → deploy → engine →
tunnel on top of them.
"""

from __future__ import annotations

import abc
import os
import posixpath
import shutil
import socket
import time
from dataclasses import dataclass, field
from typing import Optional, Tuple

from hostbridge import paths
from hostbridge.errors import VMError

NOT_CREATED, STOPPED, STARTING, RUNNING, PAUSED, UNKNOWN = (
    "not-created", "stopped", "starting", "running", "paused", "unknown")
DRIVERS = ("native", "vagrant", "qemu")


@dataclass(frozen=True)
class Capabilities:
    """What a driver can do, as data (the CLI and machine.py read it instead of the driver's name).

    Attributes:
        name: the driver's name.
        host_share: how host folders appear in the guest at the same path ("9p", "vboxsf"), or None.
        graceful_stop: stop() asks the guest to power off before forcing.
        pinned_host_key: ssh_info() knows the guest's SSH host key in advance (no trust on first use).
        accelerators: hardware accelerators the driver may use, best first.
        provisioned_by_driver: the driver runs provision/bootstrap.sh itself (vagrant does).
        suspend: suspend() saves the running VM to disk and start() resumes it.
    """

    name: str
    host_share: Optional[str]
    graceful_stop: bool
    pinned_host_key: bool
    accelerators: Tuple[str, ...] = ()
    provisioned_by_driver: bool = False
    suspend: bool = False


@dataclass
class MachineSpec:
    """What machine.py asks a driver to create. Paths are absolute.

    Attributes:
        name: the machine's name (unique per user).
        dir: the machine's state directory; the driver owns the files InstanceFiles names there.
        cpus, memory_mib, disk_gib: the VM's size.
        shares: host folders to mount in the guest at the same path.
        ssh_port: preferred host port for SSH (0: any free one); another is picked when taken.
        image_dir: the guest image (qemu): a directory from hostbridge.machines.image.
        box: the Vagrant box (vagrant).
    """

    name: str
    dir: str
    cpus: int = 2
    memory_mib: int = 2048
    disk_gib: int = 20
    shares: Tuple[str, ...] = ()
    ssh_port: int = 0
    image_dir: Optional[str] = None
    box: Optional[str] = None


@dataclass(frozen=True)
class SSHInfo:
    """How to reach the guest's sshd. ``host_key`` ("ssh-ed25519 AAAA…") is set when pinned."""

    host: str
    port: int
    user: str
    key_path: str
    host_key: Optional[str] = None
    extra: dict = field(default_factory=dict, compare=False)

    def known_hosts_line(self):
        """The OpenSSH known_hosts line pinning ``host_key`` ("[127.0.0.1]:2222 ssh-ed25519 …").

        Raises:
            VMError: the driver does not know the host key in advance.
        """
        if not self.host_key:
            raise VMError("the host key of %s:%d is not known in advance" % (self.host, self.port))
        name = self.host if self.port == 22 else "[%s]:%d" % (self.host, self.port)
        return "%s %s" % (name, self.host_key)


class InstanceFiles(paths.MachinePaths):
    """A driver's view of a machine's files (named once, in ``hostbridge.paths.MachinePaths``)."""

    def __init__(self, machine_dir):
        super().__init__(os.path.basename(os.path.abspath(machine_dir)), machine_dir)
        self.ready = os.path.join(self.dir, "ready.sock")  # qemu: the guest's readiness port (qemu_cmd)

    def all(self):
        """Every file and directory a driver may create here."""
        return [self.driver_json, self.disk, self.pidfile, self.qmp, self.ready, self.serial_log, self.qemu_log,
                self.saved_state, self.saved_state + ".tmp", self.saved_meta,
                self.ssh_key, self.ssh_pub, self.host_key, self.host_pub, self.guest_config, self.engine_offer,
                self.vagrant_dir]

    def remove_all(self):
        """Remove every driver file, then the machine dir if nothing else is left in it."""
        for p in self.all():
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.remove(p)
                except FileNotFoundError:
                    pass
        try:
            os.rmdir(self.dir)
        except OSError:
            pass  # machine.py's own files are still there, or it is gone already


class Driver(abc.ABC):
    """A VM driver for one machine. Construct it cheaply: no I/O until a method is called."""

    capabilities: Capabilities

    def __init__(self, spec: MachineSpec):
        self.spec = spec
        self.files = InstanceFiles(spec.dir)

    @abc.abstractmethod
    def create(self) -> None:
        """Create the instance (disk, keys, settings) without starting it.

        Create MUST succeed when the instance already exists (it is then left as it is).
        Blocks until done. Raises VMError (e.g. a missing or corrupt base image, with a hint).
        """

    @abc.abstractmethod
    def start(self) -> None:
        """Boot the instance; return once the VM runs and ssh_info() is valid.

        It does not wait for sshd (see wait_ssh). Start of a running machine is not an error.
        Raises VMError when the instance does not exist or the hypervisor refuses to boot it.
        """

    @abc.abstractmethod
    def stop(self, force: bool = False, timeout: float = 30) -> None:
        """Power the VM off: gracefully (ACPI) unless ``force``, forcing after ``timeout`` s.

        Stop of a stopped (or not created) machine is not an error. Blocks until it is off.
        Raises VMError only when the VM cannot be stopped at all.
        """

    @abc.abstractmethod
    def destroy(self) -> None:
        """Stop (forced) and delete every file of the instance.

        Destroy of a machine that does not exist is not an error. Raises VMError.
        """

    @abc.abstractmethod
    def state(self) -> str:
        """One of NOT_CREATED, STOPPED, STARTING, RUNNING, PAUSED, UNKNOWN. Never raises for a
        machine that was killed: a VM whose process died is STOPPED."""

    def resize(self, cpus: int, memory_mib: int, disk_gib: int) -> None:
        """Give a stopped machine this size, taken at its next start (``podman machine set``).

        The disk only grows (its filesystem is grown by the guest at boot). The caller checks
        that the machine is stopped and that the disk does not shrink (``machines.resize``).
        Raises VMError when the driver cannot do it.
        """
        raise VMError("the %s driver cannot resize a machine" % type(self).__name__,
                      hint="destroy it and create it again with the size you want")

    @abc.abstractmethod
    def ssh_info(self) -> SSHInfo:
        """Where the running guest's sshd is. Raises VMError when the machine is not running."""

    def suspend(self, timeout: float = 120) -> dict:
        """Save the running VM's state to disk and stop it; the next start() resumes it
        (``capabilities.suspend``). Suspend of a machine that does not run is not an error.

        Returns:
            What the driver measured ({"size": bytes saved, …}; {} when it did not run).
        Raises:
            VMError: the state could not be saved; the VM keeps running.
        """
        raise VMError("the %s driver cannot suspend a machine" % self.capabilities.name, hint="use down --shutdown")

    def serial_tail(self, lines: int = 20) -> str:
        """The last lines of the guest console, for error messages ("" when there is none)."""
        return ""

    def wait_ssh(self, timeout: float = 120) -> SSHInfo:
        """Wait until the guest's sshd sends its banner (a TCP accept alone proves nothing:
        QEMU user-net accepts before the guest listens).

        Returns:
            ssh_info().
        Raises:
            VMError: no banner within ``timeout`` s (with the last lines of the serial log), or
            the VM stopped meanwhile.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_booting(deadline, timeout)
            info = self.ssh_info()
            if ssh_banner(info.host, info.port, timeout=min(5.0, max(0.5, deadline - time.monotonic()))):
                return info
            time.sleep(0.2)

    def check_booting(self, deadline, timeout):
        """Raise what stops waiting for the guest: a boot failure on its console
        (GuestBootError), the VM gone, or ``deadline`` (time.monotonic) passed (VMError with the
        console's last lines; ``timeout`` is the wait's length, for the message)."""
        failure = self.boot_failure()
        if failure:
            raise GuestBootError(self.spec.name, failure, getattr(self.files, "disk", None))
        if time.monotonic() >= deadline or self.state() not in (RUNNING, STARTING):
            failure = self.boot_failure()
            if failure:
                raise GuestBootError(self.spec.name, failure, getattr(self.files, "disk", None))
            tail = self.serial_tail(5).strip().replace("\n", " | ")
            why = "the VM stopped" if self.state() not in (RUNNING, STARTING) else "no SSH after %d s" % timeout
            raise VMError("machine %s: %s%s" % (self.spec.name, why, (": " + tail) if tail else ""),
                          hint="see the serial log: hostbridge logs --serial")

    def boot_failure(self) -> Optional[str]:
        """The console line saying the guest failed to boot, or None (drivers without a
        serial log: always None)."""
        return None


# Console lines that mean the guest will not come up; each is quoted as it is. The guest
# init's own failures start with GUEST_ERROR_MARK (provision/guest-init.py ERROR_MARK).
GUEST_ERROR_MARK = "HOSTBRIDGE-GUEST-ERROR:"
BOOT_FAILURES = ("Kernel panic - not syncing", "Initramfs unpacking failed", "VFS: Unable to mount root fs",
                 GUEST_ERROR_MARK, "reboot: Restarting system")


def boot_failure(console: str) -> Optional[str]:
    """The first line of a guest's console output that says its boot failed, or None.

    Args:
        console: the serial log's text.
    Returns:
        That line, stripped (the kernel's timestamp kept), or None.
    """
    for line in console.replace("\r", "").splitlines():
        if any(mark in line for mark in BOOT_FAILURES):
            return line.strip()
    return None


class GuestBootError(VMError):
    """The guest said on its console that it cannot boot; ``line`` is what it said."""

    def __init__(self, machine, line, disk=None):
        if GUEST_ERROR_MARK in line and "data disk" in line:
            hint = ("the data disk was left as it is: `hostbridge destroy --machine %s` starts over (its images, "
                    "containers and volumes are lost), or repair %s with e2fsck first" % (machine, disk or "it"))
        else:
            hint = "see `hostbridge logs --serial --machine %s`; a broken cached image is rebuilt by `up`" % machine
        super().__init__("machine %s: the guest failed to boot: %s" % (machine, line.split("] ", 1)[-1]), hint=hint,
                         machine=machine)
        self.line = line


# Guest trees a host share must not cover (the guest mounts shares at the host's path), and
# directories that may hold shares but must not be one (macOS's $TMPDIR is under /var/folders).
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin", "/sys",
                "/usr", "/var/lib", "/var/log", "/var/cache", "/var/tmp")
SYSTEM_DIRS = ("/", "/var")


def check_shares(shares, system=None):
    """Refuse share paths the guest cannot mount where it mounts them (``hostos.guest_path``:
    the same path, or ``/c/…`` for a Windows host's ``C:\\…``).

    Args:
        shares: host folders.
        system: the host OS (default this one).
    Raises:
        VMError: a path is relative or would cover a system directory of the guest.
    """
    from ..hostos import guest_path

    for path in shares:
        guest = guest_path(path, system)
        norm = posixpath.normpath(guest) if guest.startswith("/") else None
        if norm is None:
            raise VMError("cannot share %r: the guest needs an absolute POSIX path" % path,
                          hint="share a folder such as your home directory")
        if norm in SYSTEM_DIRS or any(norm == d or norm.startswith(d + "/") for d in SYSTEM_TREES):
            raise VMError("cannot share %s: it would hide the guest's own %s" % (path, norm),
                          hint="share a folder under your home directory instead")


def ssh_banner(host, port, timeout=2.0):
    """True when something at host:port sends an SSH identification line within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def default_driver(system, tools, requested=None):
    """Choose the driver for a new machine (pure: ``tools`` says what is installed).

    macOS/Windows: vagrant when VirtualBox and Vagrant are installed, else qemu when QEMU is.
    Linux: native unless a driver is requested.

    Args:
        system: ``platform.system()``: "Darwin", "Windows", "Linux".
        tools: {"vagrant": bool, "virtualbox": bool, "qemu": bool}.
        requested: the user's ``--driver``, or None.
    Returns:
        "native", "vagrant" or "qemu".
    Raises:
        VMError: an unknown driver was requested, or no VM driver is installed on macOS/Windows.
    """
    if requested:
        if requested not in DRIVERS:
            raise VMError("unknown driver %r" % requested, hint="use one of: %s" % ", ".join(DRIVERS))
        if requested == "native" and system != "Linux":
            raise VMError("the native driver runs only on Linux", hint="use --driver vagrant or --driver qemu")
        return requested
    if system == "Linux":
        return "native"
    if tools.get("vagrant") and tools.get("virtualbox"):
        return "vagrant"
    if tools.get("qemu"):
        return "qemu"
    raise VMError("no VM driver is installed",
                  hint="install VirtualBox and Vagrant, or QEMU (%s)" % (
                      "brew install qemu" if system == "Darwin" else "winget install SoftwareFreedomConservancy.QEMU"))


def installed_tools(which=shutil.which, machine=None):
    """Which VM tools are on PATH, as ``default_driver`` wants them.

    Args:
        which: a ``shutil.which``-like lookup.
        machine: ``platform.machine()`` (default: this host's), picks the QEMU binary.
    """
    from hostbridge.machines import qemu_cmd

    return {"vagrant": bool(which("vagrant")), "virtualbox": bool(which("VBoxManage")),
            "qemu": bool(which(qemu_cmd.qemu_binary(machine)))}

