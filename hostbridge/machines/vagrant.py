"""The Vagrant driver (VirtualBox), on python-vagrant and the shipped Vagrantfile.

Each machine is a Vagrant project in ``<machine>/vagrant/``: a copy of the repository's
Vagrantfile and a ``hostbridge.json`` it reads (box, cpus, memory, disk, shares). ``vagrant
up`` creates, boots and provisions (provision/bootstrap.sh). SSH details come from ``vagrant
ssh-config`` parsed by paramiko.SSHConfig. Vagrant's own error text is what VMError says.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess

from hostbridge import resources
from hostbridge.errors import VMError
from hostbridge.hostos import guest_path
from hostbridge.machines.driver import (NOT_CREATED, PAUSED, RUNNING, STOPPED, UNKNOWN, Capabilities, Driver, SSHInfo,
                                  check_shares)

VAGRANTFILE = resources.vagrantfile()
PROVISION_DIR = resources.provision_dir()
DEFAULT_BOX = "debian/bookworm64"
PROVIDER = "virtualbox"
PROVIDER_ENV = "HOSTBRIDGE_VAGRANT_PROVIDER"
STATES = {"running": RUNNING, "poweroff": STOPPED, "aborted": STOPPED, "saved": PAUSED, "paused": PAUSED,
          "not_created": NOT_CREATED, "shutoff": STOPPED}
INSTALL_VAGRANT = "install Vagrant (https://developer.hashicorp.com/vagrant/install) or use --driver qemu"
INSTALL_VIRTUALBOX = "install VirtualBox (https://www.virtualbox.org/wiki/Downloads) or use --driver qemu"


def parse_machine_readable(text):
    """Split ``--machine-readable`` output into (target, type, data) tuples.

    Vagrant escapes commas as ``%!(VAGRANT_COMMA)`` and newlines as ``\\n`` inside data.
    """
    rows = []
    for line in text.splitlines():
        parts = line.split(",", 3)
        if len(parts) < 4:
            continue
        data = parts[3].replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n").replace("\\r", "")
        rows.append((parts[1], parts[2], data))
    return rows


def parse_status(text):
    """The driver state from ``vagrant status --machine-readable`` output.

    Returns:
        (state, vagrant_state): our state constant and vagrant's own word.
    Raises:
        VMError: the output holds an ``error-exit`` (vagrant's message).
    """
    vagrant_state = None
    for target, kind, data in parse_machine_readable(text):
        if kind == "error-exit":
            raise vagrant_error(data)
        if kind == "state" and target:
            vagrant_state = data
    if vagrant_state is None:
        raise VMError("vagrant status printed no state", hint="run `vagrant status` in the machine's vagrant dir")
    return STATES.get(vagrant_state, UNKNOWN), vagrant_state


def parse_ssh_config(text, host="default"):
    """``vagrant ssh-config`` output → SSHInfo, parsed with paramiko.SSHConfig.

    Raises:
        VMError: no usable Host entry.
    """
    import paramiko

    conf = paramiko.SSHConfig.from_text(text).lookup(host)
    if "port" not in conf or "identityfile" not in conf:
        raise VMError("vagrant ssh-config gave no port or key for %s" % host)
    return SSHInfo(host=conf.get("hostname", "127.0.0.1"), port=int(conf["port"]), user=conf.get("user", "vagrant"),
                   key_path=conf["identityfile"][0], host_key=None,
                   extra={k: v for k, v in conf.items() if k in ("identitiesonly", "stricthostkeychecking")})


def parse_host_key(text):
    """The ``ssh-ed25519 AAAA…`` line in ``text`` (what ``cat`` of the guest's .pub printed).

    Raises:
        VMError: there is none.
    """
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "ssh-ed25519":
            return "%s %s" % (parts[0], parts[1])
    raise VMError("the guest shows no ed25519 SSH host key: %r" % text.strip()[:80],
                  hint="the box needs openssh-server with its host keys in /etc/ssh")


def without_notices(text):
    """Vagrant's stderr without its global notices (``==> vagrant: …`` lines, such as the one
    every command prints about the experimental ``disks`` feature): what is left is the error."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("==> vagrant:")).strip()


def vagrant_error(text):
    """A VMError carrying vagrant's message on one line, with what to install when we know.

    Args:
        text: vagrant's stderr, or an ``error-exit`` row's data ("Vagrant::Errors::Class,message").
    """
    message = text
    if text.startswith("Vagrant::") and "," in text:
        message = text.split(",", 1)[1]
    message = " ".join(message.split()) or "vagrant failed"
    hint = None
    if "ProviderNotUsable" in text or "could not detect VirtualBox" in text or "VBoxManage" in text:
        hint = INSTALL_VIRTUALBOX
    return VMError("vagrant: " + message, hint=hint)


class VagrantDriver(Driver):
    """A machine run by Vagrant with VirtualBox, or with libvirt (vagrant-libvirt). See Driver for
    the contracts.

    The provider is chosen when the machine is created (``provider``, else
    ``$HOSTBRIDGE_VAGRANT_PROVIDER``, else VirtualBox) and kept in its hostbridge.json.
    """

    # host_share: VirtualBox's; a libvirt machine's shares are 9p (the Vagrantfile says so).
    # pinned_host_key: wait_ssh() reads the guest's host key over vagrant's own authenticated
    # session, so the tunnel pins it before its first connection (no trust on first use).
    capabilities = Capabilities(name="vagrant", host_share="vboxsf", graceful_stop=True, pinned_host_key=True,
                                accelerators=("virtualbox",), provisioned_by_driver=True, suspend=True)

    def __init__(self, spec, provider=None, vagrantfile=VAGRANTFILE, provision_dir=PROVISION_DIR):
        super().__init__(spec)
        self._provider = provider
        self.vagrantfile = vagrantfile
        self.provision_dir = provision_dir
        self.log_path = os.path.join(self.files.vagrant_dir, "vagrant.log")  # vagrant's stdout
        self.err_path = os.path.join(self.files.vagrant_dir, "vagrant.err")  # its stderr: errors, warnings
        self.resumed = False  # the last start() resumed a suspended VM

    @property
    def provider(self):
        """The Vagrant provider: the one given, else the machine's own, else the default for a new one."""
        if not self._provider:
            try:
                with open(self.files.vagrant_settings) as f:
                    self._provider = json.load(f).get("provider")
            except (OSError, ValueError):
                pass
        return self._provider or os.environ.get(PROVIDER_ENV) or PROVIDER

    def _vagrant(self):
        try:
            import vagrant
        except ImportError as e:
            raise VMError("python-vagrant is not installed", hint="pip install python-vagrant") from e
        if not vagrant.get_vagrant_executable():
            raise VMError("vagrant is not installed", hint=INSTALL_VAGRANT)
        env = dict(os.environ, VAGRANT_DEFAULT_PROVIDER=self.provider, VAGRANT_NO_COLOR="1",
                   VAGRANT_CHECKPOINT_DISABLE="1")

        def appending(path):
            # Append-only: one call's output never truncates or overwrites an earlier one's.
            return lambda: open(path, "ab")

        return vagrant.Vagrant(root=self.files.vagrant_dir, env=env, out_cm=appending(self.log_path),
                               err_cm=appending(self.err_path))

    def _call(self, method, *args, **kwargs):
        """Run one public python-vagrant method; vagrant's failure becomes VMError with its message."""
        v = self._vagrant()
        try:
            start = os.path.getsize(self.err_path)
        except OSError:
            start = 0
        try:
            return getattr(v, method)(*args, **kwargs)
        except subprocess.CalledProcessError as e:
            text = (e.output or b"").decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
            rows = [d for _, kind, d in parse_machine_readable(text) if kind == "error-exit"]
            if rows:
                raise vagrant_error(rows[-1]) from e
            try:
                with open(self.err_path, "rb") as f:
                    f.seek(start)
                    text = without_notices(f.read().decode(errors="replace"))
            except OSError:
                pass
            raise vagrant_error(text or "vagrant %s exited with status %d" % (method, e.returncode)) from e

    def _created(self):
        # Vagrant writes the provider's machine id here once the VM exists: no need to run
        # vagrant (~1 s) to know that a machine was never created.
        return os.path.exists(os.path.join(self.files.vagrant_dir, ".vagrant", "machines", "default",
                                           self.provider, "id"))

    def create(self):
        check_shares(self.spec.shares)
        os.makedirs(self.files.vagrant_dir, mode=0o700, exist_ok=True)
        if os.path.exists(self.files.vagrant_settings):
            return
        shutil.copyfile(self.vagrantfile, os.path.join(self.files.vagrant_dir, "Vagrantfile"))
        settings = {"name": self.spec.name, "box": self.spec.box or DEFAULT_BOX, "cpus": self.spec.cpus,
                    "memory": self.spec.memory_mib, "disk_gb": self.spec.disk_gib,
                    # A path lands at the same path; a Windows folder at /c/…: [host, guest].
                    "shares": [p if guest_path(p) == p else [p, guest_path(p)]
                               for p in (self.spec.shares or [os.path.expanduser("~")])],
                    "provision_dir": self.provision_dir, "provider": self.provider}
        self._write_settings(settings)

    def _write_settings(self, settings):
        tmp = self.files.vagrant_settings + ".tmp"
        with open(tmp, "w") as f:
            json.dump(settings, f, indent=1)
        os.replace(tmp, self.files.vagrant_settings)

    def resize(self, cpus, memory_mib, disk_gib):
        # The Vagrantfile reads these at every `vagrant up` (its disk through the `disks` feature).
        with open(self.files.vagrant_settings) as f:
            settings = json.load(f)
        settings.update(cpus=int(cpus), memory=int(memory_mib), disk_gb=int(disk_gib))
        self._write_settings(settings)

    def vagrant_state(self):
        """Ask vagrant itself (``vagrant status --machine-readable``): (state, vagrant's word).

        Raises:
            VMError: vagrant's message (e.g. VirtualBox is not installed).
        """
        statuses = self._call("status")
        if not statuses or not statuses[0].state:
            raise VMError("vagrant status printed no state", hint="run `vagrant status` in %s" % self.files.vagrant_dir)
        # python-vagrant says "poweroff" for libvirt's "shutoff", "saved" for its "paused".
        word = statuses[0].state
        return STATES.get(word, UNKNOWN), word

    def state(self):
        if not os.path.exists(self.files.vagrant_settings):
            return NOT_CREATED
        if not self._created():
            return NOT_CREATED
        return self.vagrant_state()[0]

    def start(self):
        if not os.path.exists(self.files.vagrant_settings):
            raise VMError("machine %s does not exist" % self.spec.name, hint="create it first (hostbridge up)")
        self.resumed = False
        state = self.state() if self._created() else NOT_CREATED
        if state == RUNNING:
            return
        if state == PAUSED:
            self._call("resume")  # `vagrant suspend` saved it
            self.resumed = True
            return
        self._call("up", provider=self.provider)

    def suspend(self, timeout=120):
        """Driver.suspend: ``vagrant suspend`` (VirtualBox saves the VM's state to disk)."""
        if not self._created() or self.state() != RUNNING:
            return {}
        self._call("suspend")
        return {"size": 0}

    def stop(self, force=False, timeout=30):
        if not self._created() or self.state() in (NOT_CREATED, STOPPED):
            return
        self._call("halt", force=force)

    def destroy(self):
        if self._created():
            self._call("destroy")
        self.files.remove_all()

    def ssh_info(self):
        if not self._created():
            raise VMError("machine %s is not running" % self.spec.name, hint="start it: hostbridge up")
        return parse_ssh_config(self._call("ssh_config"))

    def wait_ssh(self, timeout=120):
        """Driver.wait_ssh, and the guest's host key read over vagrant's own SSH session
        (vagrant logs in with the machine's private key), so that it is pinned, not trusted
        on first use.

        Raises:
            VMError: no SSH within ``timeout`` s, or the guest shows no ed25519 host key.
        """
        info = super().wait_ssh(timeout)
        out = self._call("ssh", command="cat /etc/ssh/ssh_host_ed25519_key.pub")
        return dataclasses.replace(info, host_key=parse_host_key(out))
