"""The QEMU driver: a daemonized QEMU per machine booting a cached guest image from RAM.

Per machine: a data disk (a blank qcow2 that the guest formats on its first boot and keeps
/var/lib/hostbridge on), its own SSH keys (the client key and the guest's host key, handed to
the guest through fw_cfg), user-mode networking with only SSH forwarded, on 127.0.0.1, a QMP
socket for power-down and state, the serial console in a log file, a pidfile. The guest
system itself (kernel + initramfs) is the image's, so a new image changes no data. The
command line itself is built in qemu_cmd.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import time

from hostbridge.errors import VMError
from hostbridge.hostos import guest_path
from hostbridge.machines import image, qemu_cmd, sshkeys, suspend
from hostbridge.machines.driver import (NOT_CREATED, PAUSED, RUNNING, STARTING, STOPPED, UNKNOWN, Capabilities,
                                  Driver, GuestBootError, SSHInfo, boot_failure, check_shares, ssh_banner)
from hostbridge.machines.qmp import QMP

log = logging.getLogger(__name__)
SSH_USER = "root"
START_ATTEMPTS = 3  # a forwarded port can be taken between our check and QEMU's bind
# QEMU's complaint when another process holds the disk image's lock. One just killed may still
# hold it: the kernel drops a dead process's file locks a moment after the process is seen gone
# (its last fput is deferred), ~50 ms here with the guest's RAM in small pages.
DISK_LOCKED = 'Failed to get "write" lock'
LOCK_RELEASE_WAIT = 3.0
# While the readiness port is silent, sshd is asked this often, waiting this long for its banner.
POLL_EVERY, POLL_BANNER = 1.0, 0.3
# A guest this driver booted, whose readiness port it listens on from the start, is asked for
# sshd's banner only after this many seconds without its "ready init": each poll costs the
# booting guest a fork and re-exec of sshd (seconds under TCG), and polls made while its eth0 is
# still down wait in QEMU's user net and all reach sshd at once when it comes up.
READY_GRACE = 60.0


def free_port(preferred=0):
    """``preferred`` when 127.0.0.1 has it free, else a free port the OS picks."""
    for port in ([preferred] if preferred else []) + [0]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if os.name != "nt":
            # As QEMU's own listener does: a port with only TIME_WAIT connections left is free.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise VMError("no free TCP port on 127.0.0.1")


def pid_alive(pid, marker=None):
    """True when process ``pid`` exists (and, on Linux, has ``marker`` in its command line, so a
    stale pidfile whose pid was reused by another process does not count)."""
    if os.name == "nt":
        return _windows_pid_alive(pid)
    if marker and os.path.isdir("/proc/self"):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read()
            if cmdline:
                return marker.encode() in cmdline
            # None: a zombie, a kernel thread that took the pid, or a process still exiting
            # (its memory gone, its threads and files not yet).
            with open("/proc/%d/stat" % pid) as f:
                return still_exiting(f.read())
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


PF_KTHREAD = 0x00200000  # /proc/PID/stat flags: a kernel thread


def still_exiting(stat):
    """Whether the process of ``stat`` (its /proc/PID/stat line), one without a command line,
    is a user process still exiting: not a zombie, not a kernel thread. A QEMU killed with its
    guest's RAM in small pages is seen so for ~50 ms while it unmaps it (see also DISK_LOCKED)."""
    try:
        fields = stat.rsplit(")", 1)[1].split()
        return fields[0] not in ("Z", "X", "x") and not int(fields[6]) & PF_KTHREAD
    except (IndexError, ValueError):
        return False


def _windows_pid_alive(pid):
    from hostbridge.tunnel.npipe import process_alive  # os.kill(pid, 0) would terminate it

    return process_alive(pid)


PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42  # prctl(2); the setting is inherited across fork and execve


@contextlib.contextmanager
def _small_pages(wanted):
    """While this runs, the processes it starts get no transparent huge pages (Linux).

    QEMU backs guest RAM with huge pages where it can. Under TCG they save little (guest
    accesses go through the emulator's own TLB), and where the host is itself a VM whose free
    memory is handed back to its hypervisor (free page reporting gives back exactly the free
    blocks a huge page is made of) each huge page's first fault is slow. On such a host QEMU's
    setup after an idle minute spent 0.6-1.0 s in page faults (0.1 s with small pages), and a
    cold `up` took 11.7 s (median of 4, 9.7-13.6) against 8.5 s (6.5-8.7) with small pages,
    and `up` from suspended after 45 s idle 4.1 s against 2.0 s (the saved RAM loaded into
    huge pages); `docker run` in the running guest was no slower. Best effort: without prctl,
    nothing changes.
    """
    libc = before = None
    if wanted:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            before = libc.prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)
            if before < 0 or libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
                libc = None
        except (OSError, AttributeError):
            libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.prctl(PR_SET_THP_DISABLE, before, 0, 0, 0)


class ReadyChannel:
    """The host end of the guest's readiness port: QEMU's unix socket, read line by line.
    Connecting is retried (QEMU creates the socket as it starts); a closed or missing socket
    yields no events (the caller falls back to polling)."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _connect(self):
        from hostbridge.machines.qmp import connect_address

        try:
            return connect_address("unix:" + self.path, timeout=2)
        except OSError:
            return None

    def next_event(self, timeout):
        """The next line the guest wrote ("" when none came within ``timeout`` s)."""
        import select

        if b"\n" not in self.buf:
            if self.sock is None:
                self.sock = self._connect()
            if self.sock is None:
                time.sleep(timeout)
                return ""
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if ready:
                try:
                    data = self.sock.recv(4096)
                except OSError:
                    data = b""
                if not data:  # QEMU went away (or closed us): no more events
                    self.sock.close()
                    self.sock = None
                    time.sleep(timeout)
                    return ""
                self.buf += data
        if b"\n" not in self.buf:
            return ""
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def command(self, line, timeout):
        """Send the guest init a command (provision/guest-init.py run_command) and return its
        reply's failure: "" for ``ok CMD``, WHY for ``error CMD: WHY``. Events in between
        (``ready …``) are skipped.

        Raises:
            VMError: no reply within ``timeout`` s, or the channel cannot be reached.
        """
        ok, text = self._exchange(line, timeout)
        return "" if ok else text or "failed"

    def query(self, line, timeout):
        """``command`` for a command that answers something (``time``): the text after ``ok CMD``.

        Raises:
            VMError: the guest failed it, did not answer, or cannot be reached.
        """
        ok, text = self._exchange(line, timeout)
        if not ok:
            raise VMError("the guest failed %r: %s" % (line.split(" ", 1)[0], text))
        return text

    def _exchange(self, line, timeout):
        """Send ``line``; returns (True, what follows ``ok CMD``) or (False, what follows ``error CMD:``)."""
        name = line.split(" ", 1)[0]
        if self.sock is None:
            self.sock = self._connect()
        if self.sock is None:
            raise VMError("the guest's command channel %s cannot be reached" % self.path)
        try:
            self.sock.sendall(line.encode() + b"\n")
        except OSError as e:
            raise VMError("the guest's command channel %s: %s" % (self.path, e)) from None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VMError("the guest did not answer %r in %d s" % (name, timeout))
            reply = self.next_event(min(left, 0.5))
            if reply == "ok " + name or reply.startswith("ok %s " % name):
                return True, reply[len("ok %s " % name):]
            if reply.startswith("error %s: " % name):
                return False, reply[len("error %s: " % name):]


class QemuDriver(Driver):
    """A machine run by QEMU. See Driver for the contracts."""

    capabilities = Capabilities(name="qemu", host_share="9p", graceful_stop=True, pinned_host_key=True,
                                accelerators=qemu_cmd.accelerators(platform.system()))

    def __init__(self, spec, system=None, arch=None, binary=None, accel_cache=None):
        super().__init__(spec)
        self.system = system or platform.system()
        self.arch = arch or qemu_cmd.qemu_arch()
        self.binary = binary or qemu_cmd.qemu_binary(self.arch)
        self.accel_cache = accel_cache or os.path.join(os.path.dirname(image.default_cache_dir()), "accel.json")
        self.accel_notes = []
        self.resume_notes = []  # why a saved state was not resumed (start)
        self.resumed = False  # the last start() resumed a suspended VM
        # (SSHInfo) -> None, set by the caller: start() calls it once a saved state fits, before
        # QEMU loads it (`up` starts the tunnel agent then, to overlap its start with the load).
        self.before_resume = None
        self.launched = 0.0  # when this driver's last start() booted QEMU (time.monotonic()), else 0
        # The state file's descriptor goes to QEMU over the QMP unix socket (SCM_RIGHTS): not on Windows.
        self.capabilities = dataclasses.replace(QemuDriver.capabilities, suspend=self.system != "Windows")
        self.events = []  # what the guest said on its readiness port during wait_ssh (and wait_engine)
        self._channel = None  # the readiness port, open from wait_ssh to wait_engine

    # -- records -------------------------------------------------------------------------
    def _record(self):
        try:
            with open(self.files.driver_json) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise VMError("machine %s: %s is corrupt" % (self.spec.name, self.files.driver_json),
                          hint="destroy and recreate the machine") from e

    def _save(self, record):
        tmp = self.files.driver_json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, self.files.driver_json)

    def _qmp_address(self, record):
        try:
            return record.get("qmp") or qemu_cmd.qmp_address(self.files.qmp)
        except ValueError as e:
            raise VMError("machine %s: %s" % (self.spec.name, e)) from None

    def _pid(self):
        try:
            with open(self.files.pidfile) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    # -- Driver ------------------------------------------------------------------------------
    def create(self):
        if self._record() is not None and os.path.exists(self.files.disk):
            return
        if not self.spec.image_dir:
            raise VMError("machine %s: no guest image given" % self.spec.name, hint="build or download one first")
        check_shares(self.spec.shares, self.system)
        img = image.load(self.spec.image_dir)
        os.makedirs(self.spec.dir, mode=0o700, exist_ok=True)
        sshkeys.generate(self.files.ssh_key, self.files.ssh_pub, "hostbridge@%s" % self.spec.name)
        sshkeys.generate(self.files.host_key, self.files.host_pub, "%s host key" % self.spec.name)
        if not os.path.exists(self.files.disk):
            # Blank: the guest formats it on its first boot. An existing disk holds data: kept.
            tmp = self.files.disk + ".tmp"
            try:
                proc = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", tmp, "%dG" % self.spec.disk_gib],
                                      capture_output=True, text=True)
            except OSError as e:
                raise VMError("machine %s: cannot run qemu-img: %s" % (self.spec.name, e),
                              hint="install QEMU (it brings qemu-img)") from e
            if proc.returncode != 0:
                raise VMError("machine %s: qemu-img create failed: %s" % (self.spec.name, proc.stderr.strip()),
                              hint="check free space in %s" % self.spec.dir)
            os.replace(tmp, self.files.disk)
        # The guest mounts each where hostos.guest_path puts it (C:\Users at /c/Users).
        shares = [{"tag": "share%d" % i, "path": guest_path(p, self.system)} for i, p in enumerate(self.spec.shares)]
        with open(self.files.guest_config, "w") as f:
            json.dump({"hostname": self.spec.name, "shares": shares}, f)
        # Written last: its presence means the instance is complete.
        self._save({"image_dir": img.dir, "cpus": self.spec.cpus, "memory_mib": self.spec.memory_mib,
                    "disk_gib": self.spec.disk_gib, "shares": list(self.spec.shares),
                    "ssh_port": self.spec.ssh_port})

    def state(self):
        record = self._record()
        if record is None:
            return NOT_CREATED
        pid = self._pid()
        if pid is None or not self._alive(pid):
            self._clear_runtime()
            return STOPPED
        try:
            with QMP(self._qmp_address(record), timeout=2) as q:
                status = q.execute("query-status")
        except (OSError, ValueError):
            # Alive but not answering QMP yet: QEMU is still initializing (or stuck).
            return STARTING
        if status.get("running"):
            return RUNNING
        if status.get("status") in ("paused", "suspended", "prelaunch"):
            return PAUSED
        return UNKNOWN  # e.g. internal-error, guest-panicked: QEMU runs but the guest does not

    def start(self):
        record = self._record()
        if record is None:
            raise VMError("machine %s does not exist" % self.spec.name, hint="create it first (hostbridge up)")
        state = self.state()
        if state == PAUSED:
            with QMP(self._qmp_address(record)) as q:
                q.execute("cont")
        if state in (RUNNING, STARTING, PAUSED):
            return
        if state == UNKNOWN:
            self.stop(force=True)  # a wedged QEMU holds the disk's write lock
        # The newest image given (an upgrade) replaces the system; the data disk stays.
        img = image.load(self.spec.image_dir or record["image_dir"])
        record["image_dir"] = img.dir
        accel, self.accel_notes = qemu_cmd.choose_accel(self._binary_path(), self.system, self.arch, img.kernel,
                                                        self.accel_cache)
        for note in self.accel_notes:
            log.warning("%s; falling back to %s (slower)", note, accel)
        if self._resume(record, img, accel):
            return
        last_err = ""
        for _ in range(START_ATTEMPTS):
            port = free_port(record.get("ssh_port") or 0)
            record.update(ssh_port=port, accel=accel)
            record.pop("qmp", None)  # an older version's QMP port: never again (qemu_cmd.qmp_address)
            # The readiness port, when its socket's path fits a sockaddr_un (else SSH is polled).
            record["ready"] = self.files.ready if len(self.files.ready.encode()) <= 107 else ""
            record["commands"] = 1  # this hostbridge's guest init reads commands there (guest_command)
            ok, last_err = self._launch(self._config(record, img, accel))
            if ok:
                self._save(record)
                self.launched = time.monotonic()
                return
            if "hostfwd" not in last_err and "forwarding" not in last_err:
                break
            record["ssh_port"] = 0
        raise VMError("machine %s: QEMU did not start: %s" % (self.spec.name, last_err),
                      hint="see %s" % self.files.qemu_log)

    def stop(self, force=False, timeout=30):
        # A real shutdown of a suspended VM throws its state away: the guest synced its disk before the save.
        suspend.discard(self.files.saved_state, self.files.saved_meta)
        record = self._record()
        pid = self._pid()
        if record is None or pid is None or not self._alive(pid):
            self._clear_runtime()
            return
        address = self._qmp_address(record)
        if not force:
            try:
                with QMP(address) as q:
                    q.execute("system_powerdown")
                if self._wait_exit(pid, timeout):
                    return self._clear_runtime()
            except (OSError, ValueError, VMError) as e:
                log.debug("graceful power-down failed: %s", e)
        try:
            with QMP(address) as q:
                q.execute("quit")
            if self._wait_exit(pid, 5):
                return self._clear_runtime()
        except (OSError, ValueError, VMError) as e:
            log.debug("QMP quit failed: %s", e)
        try:
            os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        except ProcessLookupError:
            pass
        if not self._wait_exit(pid, 5):
            raise VMError("machine %s: QEMU (pid %d) does not exit" % (self.spec.name, pid),
                          hint="kill it by hand")
        self._clear_runtime()

    def suspend(self, timeout=120):
        """Driver.suspend: pause, migrate to ``saved_state`` (suspend.save), quit QEMU, then record
        what the state fits. On failure the VM keeps running."""
        record = self._record()
        pid = self._pid()
        if record is None or pid is None or not self._alive(pid):
            return {}
        img = image.load(record["image_dir"])
        fp = self._fingerprint(record, img, record.get("accel", "tcg"))
        address = self._qmp_address(record)
        t0 = time.monotonic()
        info = suspend.save(address, self.files.saved_state, timeout)
        try:
            with QMP(address) as q:
                q.execute("quit")
        except (OSError, ValueError, VMError) as e:
            log.debug("QMP quit after the save failed: %s", e)
        if not self._wait_exit(pid, 10):
            os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
            self._wait_exit(pid, 5)
        suspend.write_meta(self.files.saved_meta, fp, self.files.saved_state, self.files.disk)
        self._clear_runtime()
        return {"size": os.path.getsize(self.files.saved_state), "seconds": time.monotonic() - t0,
                "ram": info.get("ram", {})}

    def guest_shares(self):
        """The 9p shares as the guest mounts them: [{"tag", "path"}] (suspend unmounts them)."""
        try:
            with open(self.files.guest_config) as f:
                return json.load(f).get("shares") or []
        except (OSError, ValueError):
            return []

    def guest_command(self, line, timeout=60):
        """Run ``line`` by the guest's init over the readiness port (``ReadyChannel.command``) and
        return its failure ("" when it did it), or None when this VM has no command channel (one
        started by an older hostbridge, or no unix sockets): the caller falls back to SSH.

        Raises:
            VMError: no reply (the guest does not answer, QEMU went away).
        """
        if not self.has_command_channel():
            return None
        with ReadyChannel(self._record()["ready"]) as channel:
            return channel.command(line, timeout)

    def has_command_channel(self):
        """Whether this VM's guest init takes commands on its readiness port (guest_command)."""
        record = self._record() or {}
        return bool(record.get("commands") and record.get("ready") and hasattr(socket, "AF_UNIX"))

    def _fingerprint(self, record, img, accel):
        cfg = self._config(dict(record, ssh_port=0), img, accel)
        return suspend.fingerprint(qemu_cmd.build_command(cfg, self._binary_path()), self._binary_path())

    def _resume(self, record, img, accel):
        """Start QEMU from the saved state when one fits (suspend.check). Returns whether it did;
        when not, ``resume_notes`` says why, the state is thrown away and start() boots."""
        self.resumed = False
        self.resume_notes = []
        state, meta = self.files.saved_state, self.files.saved_meta
        ok, why = suspend.check(meta, state, self._fingerprint(record, img, accel), self.files.disk)
        if ok:
            record.update(ssh_port=free_port(record.get("ssh_port") or 0), accel=accel)
            record.pop("qmp", None)
            if self.before_resume is not None:
                self.before_resume(self._ssh_info(record))
            # Loading reads the file at disk speed: bounded, so a bad state never leaves a hung VM.
            limit = 30 + os.path.getsize(state) / (20 << 20)
            fd = os.open(state, os.O_RDONLY)
            try:
                ok, why = self._launch(self._config(record, img, accel), suspend.incoming_args(fd), pass_fds=(fd,))
            finally:
                os.close(fd)
            why = why and "QEMU could not load it" + ("" if why.startswith("exit status") else ": " + why)
            pid = self._pid()
            if ok:
                ok, why = suspend.wait_incoming(self._qmp_address(record), lambda: self._alive(pid), limit)
            if not ok:
                self.stop(force=True)
        suspend.discard(state, meta)  # loaded once: from here on the guest and its disk move on
        if why:
            self.resume_notes.append("the saved state was thrown away (%s); booting instead" % why)
        if ok:
            self._save(record)
            self.resumed = True
        return ok

    def destroy(self):
        if os.path.isdir(self.spec.dir):
            self.stop(force=True)
        self.files.remove_all()

    def resize(self, cpus, memory_mib, disk_gib):
        record = self._record()
        if record is None:
            raise VMError("machine %s does not exist" % self.spec.name, hint="create it first (hostbridge up)")
        if disk_gib > int(record.get("disk_gib") or 0):
            from hostbridge.machines.resize import grow_disk

            grow_disk(self.files.disk, disk_gib)  # the guest grows its filesystem at the next boot
        record.update(cpus=int(cpus), memory_mib=int(memory_mib), disk_gib=int(disk_gib))
        self._save(record)

    def ssh_info(self):
        record = self._record()
        if record is None or not record.get("ssh_port") or self._pid() is None:
            raise VMError("machine %s is not running" % self.spec.name, hint="start it: hostbridge up")
        return self._ssh_info(record)

    def _ssh_info(self, record):
        return SSHInfo(host="127.0.0.1", port=record["ssh_port"], user=SSH_USER, key_path=self.files.ssh_key,
                       host_key=sshkeys.public_line(self.files.host_pub))

    def wait_ssh(self, timeout=120, engine_offered=False):
        """Driver.wait_ssh, woken by the guest's readiness port (qemu_cmd.ready_channel_args)
        instead of polling sshd: the guest's init says "ready init" once sshd listens, or
        "error …". sshd's banner is then checked once, unless ``engine_offered`` (the boot's
        engine offer: the init installs and starts it, and the tunnel agent's login is the first
        SSH): the guest checked that sshd listens, and a banner costs it a fork and exec of sshd
        (0.2 s under emulation) while its engine starts. Without the port (a VM started by an older
        hostbridge), or while it says nothing (a guest that booted before this `up` connected),
        sshd is asked once a second (POLL_EVERY), briefly at first (POLL_BANNER, doubling up to 5 s);
        a guest this driver has just booted only after READY_GRACE s without its event.
        A resumed guest (its "ready" was said before the save) is asked as Driver.wait_ssh does."""
        record = self._record() or {}
        if not record.get("ready") or not hasattr(socket, "AF_UNIX"):  # Windows: select() takes sockets only
            return super().wait_ssh(timeout)
        if self.resumed:  # a resumed guest's init said "ready" before the save: sshd is asked at once
            return super().wait_ssh(timeout)
        deadline = time.monotonic() + timeout
        banner_wait = POLL_BANNER
        self.close_ready()
        # Kept open after this: wait_engine reads the engine's line from it (the guest's lines
        # written while no host end is connected are lost).
        self._channel = channel = ReadyChannel(record["ready"])
        try:
            next_poll = time.monotonic() + POLL_EVERY
            if time.monotonic() - self.launched < POLL_EVERY * 5:  # listening before the guest could speak
                next_poll = max(next_poll, self.launched + READY_GRACE)
            while True:
                self.check_booting(deadline, timeout)
                event = channel.next_event(min(0.25, max(0.0, deadline - time.monotonic())))
                if event:
                    self.events.append(event)
                if event.startswith("error "):
                    raise GuestBootError(self.spec.name, event[len("error "):], self.files.disk)
                if event == "ready init" and engine_offered:
                    return self.ssh_info()
                if event == "ready init":
                    info = self.ssh_info()
                    if ssh_banner(info.host, info.port, timeout=min(5.0, max(0.5, deadline - time.monotonic()))):
                        return info
                    next_poll = time.monotonic()  # sshd is up: ask it again at once
                elif time.monotonic() >= next_poll:
                    # Briefly: QEMU's user net accepts before sshd listens, and a banner that does
                    # not come would keep the port's events waiting.
                    info = self.ssh_info()
                    if ssh_banner(info.host, info.port, timeout=banner_wait):
                        return info
                    # sshd forks and re-executes itself per connection (seconds under TCG): a
                    # banner that was on its way must get longer each time.
                    banner_wait = min(5.0, banner_wait * 2)
                    next_poll = time.monotonic() + POLL_EVERY
        except BaseException:
            self.close_ready()
            raise

    def wait_engine(self, timeout=120):
        """After ``wait_ssh`` of a boot: what the guest's init said of the engine it installed
        (fw_cfg) and started: ("ready", VERSION) once its socket is there, ("refused", WHY) for
        an engine it would not install, ("failed", WHY) when it exited or there was none to
        start, (None, WHY) when nothing was said (no readiness port, a resumed guest, timeout).
        The readiness port is closed after."""
        deadline = time.monotonic() + timeout
        channel, self._channel = self._channel, None
        try:
            seen = list(self.events)
            while True:
                for event in seen:
                    word, _, rest = event.partition(" ")
                    if word == "ready" and rest.startswith("engine"):
                        return "ready", rest[len("engine"):].strip()
                    if word == "engine":
                        kind, _, why = rest.partition(" ")
                        return ("refused" if kind == "refused" else "failed"), why or kind
                if channel is None or time.monotonic() > deadline:
                    return None, "the guest did not say that its engine started"
                self.check_booting(deadline, timeout)
                event = channel.next_event(min(0.25, max(0.0, deadline - time.monotonic())))
                if event:
                    self.events.append(event)
                seen = [event] if event else []
        finally:
            if channel is not None:
                channel.__exit__(None, None, None)

    def close_ready(self):
        """Close the readiness port ``wait_ssh`` left open (no-op when none is)."""
        channel, self._channel = getattr(self, "_channel", None), None
        if channel is not None:
            channel.__exit__(None, None, None)

    def boot_failure(self):
        """The serial log's line saying the guest failed to boot (a panic, an unreadable
        initramfs, the guest init's error marker), or None."""
        try:
            with open(self.files.serial_log, "rb") as f:
                text = f.read(4 << 20).decode(errors="replace")
        except OSError:
            return None
        return boot_failure(text)

    def serial_tail(self, lines=20):
        try:
            with open(self.files.serial_log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.replace("\r", "").splitlines()[-lines:])

    # -- helpers -------------------------------------------------------------------------
    def _binary_path(self):
        path = shutil.which(self.binary) if not os.path.isabs(self.binary) else self.binary
        if not path:
            raise VMError("%s is not installed" % self.binary,
                          hint="install QEMU (Debian: apt-get install qemu-system-x86; macOS: brew install qemu)")
        return path

    def _config(self, record, img, accel):
        fw_cfg = {"authorized_keys": self.files.ssh_pub, "ssh_host_ed25519_key": self.files.host_key,
                  "config.json": self.files.guest_config}
        engine_drive = self._engine_drive()
        if engine_drive:
            fw_cfg["engine.json"] = self.files.engine_offer
        shares = tuple(("share%d" % i, p) for i, p in enumerate(record.get("shares", [])))
        qmp = self._qmp_address(record)
        return qemu_cmd.QemuConfig(
            system=self.system, arch=self.arch, accel=accel, cpus=record["cpus"], memory_mib=record["memory_mib"],
            disk=self.files.disk, kernel=img.kernel, initrd=image.boot_initrd(img), ssh_port=record["ssh_port"], qmp=qmp,
            serial_log=self.files.serial_log, pidfile=self.files.pidfile, name=self.spec.name, fw_cfg=fw_cfg,
            shares=shares, ready=record.get("ready", ""), engine_drive=engine_drive,
            bios=qemu_cmd.fast_firmware(self._binary_path(), self.arch))

    def _engine_drive(self):
        """The read-only drive of the engine the guest's init installs at boot (written by
        machines/steps.py engine_offer; fw_cfg engine.json says what it holds), or "" when there
        is none."""
        try:
            with open(self.files.engine_offer) as f:
                engine = json.load(f)["drive"]
        except (OSError, ValueError, KeyError, TypeError):
            return ""
        return engine if isinstance(engine, str) and os.path.isfile(engine) else ""

    def _launch(self, cfg, extra=(), pass_fds=()):
        """Run QEMU (``extra``: options added to the command line; ``pass_fds``: descriptors it
        inherits, read from their start); True once it is up and daemonized, else (False, QEMU's
        message). A disk still locked is waited for a moment (``DISK_LOCKED``)."""
        deadline = time.monotonic() + LOCK_RELEASE_WAIT
        while True:
            for fd in pass_fds:  # a saved state: QEMU did not get to read it, or it starts over
                os.lseek(fd, 0, os.SEEK_SET)
            ok, msg = self._launch_once(cfg, extra, pass_fds)
            if ok or DISK_LOCKED not in msg or time.monotonic() >= deadline:
                return ok, msg
            log.debug("the disk of %s is still locked; trying again: %s", self.spec.name, msg)
            time.sleep(0.1)

    def _launch_once(self, cfg, extra, pass_fds):
        self._clear_runtime()
        argv = qemu_cmd.build_command(cfg, self._binary_path()) + list(extra)
        with open(self.files.qemu_log, "wb") as errlog:
            if self.system == "Windows":
                flags = getattr(subprocess, "DETACHED_PROCESS", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog, creationflags=flags)
                rc = 0
            else:
                # -daemonize: QEMU reports setup errors (a taken port, a bad disk) before detaching.
                with _small_pages(self.system == "Linux" and cfg.accel == "tcg"):
                    rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog, timeout=120,
                                         pass_fds=pass_fds)
        deadline = time.monotonic() + 10
        while rc == 0 and self._pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(self.files.qemu_log, errors="replace") as f:
            msg = " ".join(line.strip() for line in f if "warning" not in line.lower())
        if rc != 0 or self._pid() is None:
            return False, msg or "exit status %d" % rc
        return True, ""

    def _alive(self, pid):
        return pid_alive(pid, self.files.pidfile)

    def _wait_exit(self, pid, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return True
            time.sleep(0.1)
        return not self._alive(pid)

    def _clear_runtime(self):
        for p in (self.files.pidfile, self.files.qmp, self.files.ready):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass
