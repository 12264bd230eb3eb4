"""QEMU command lines as pure functions (tested without QEMU), and the accelerator probe.

``build_command`` turns a ``QemuConfig`` into argv for Linux (KVM), macOS (HVF; aarch64
``virt`` with the host CPU on Apple silicon), Windows (WHPX) or plain TCG. ``probe_accel``
proves an accelerator works by booting the guest kernel for a few seconds and watching its
serial console: here ``/dev/kvm`` exists but a nested guest hangs before printing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

ACCELERATORS = {"Linux": ("kvm", "tcg"), "Darwin": ("hvf", "tcg"), "Windows": ("whpx", "tcg")}
# Kernel options that shorten boot in a VM: notices and worse only on the console (each byte the
# emulated UART writes costs QEMU a write(2); the banner, warnings, panics and our own markers
# still show, the ~300 info lines of a boot do not), no legacy timer checks, trust the CPU's RNG for
# an early crng (sshd needs entropy), one serial port, no Spectre mitigations inside the VM,
# no zeroing of every page allocated (Debian's default; it costs CPU under TCG and host RSS).
# No self-tests of the kernel's crypto algorithms (~0.4 s of emulated CPU at boot; a known-good
# Debian build, no FIPS mode): cryptomgr.notests skips the registered algorithms' tests, and the
# KDF108 self-test, which notests does not cover, is skipped whole: it asks for hmac(sha256) by
# request_module, which waits for the initramfs to be unpacked and then runs modprobe. Nor the
# tracefs files of kprobe events (init_kprobe_trace: ~0.17 s, before the initramfs is unpacked;
# /init came 0.2 s sooner, medians of 11 kernel-only boots each): perf probe's, not the engine's.
FAST_BOOT = ("loglevel=6 tsc=reliable no_timer_check random.trust_cpu=on 8250.nr_uarts=1 mitigations=off init_on_alloc=0"
             " cryptomgr.notests initcall_blacklist=crypto_kdf108_init,init_kprobe_trace")
PROBE_MARK = b"Linux version"


def qemu_arch(machine=None):
    """QEMU's architecture name for a ``platform.machine()`` value ("x86_64", "aarch64")."""
    m = (machine or platform.machine()).lower()
    return "aarch64" if m in ("arm64", "aarch64") else "x86_64"


def qemu_binary(machine=None):
    """The qemu-system binary for this host's architecture."""
    return "qemu-system-" + qemu_arch(machine)


def accelerators(system):
    """Accelerators to try on ``system`` (platform.system()), best first; TCG always last."""
    return ACCELERATORS.get(system, ("tcg",))


@dataclass
class QemuConfig:
    """Everything the command line depends on. ``qmp`` is ``unix:PATH`` (``qmp_address``)."""

    system: str
    arch: str
    accel: str
    cpus: int
    memory_mib: int
    disk: str
    kernel: str
    initrd: str
    ssh_port: int
    qmp: str
    serial_log: str
    pidfile: str
    name: str = "hostbridge"
    fw_cfg: Dict[str, str] = field(default_factory=dict)
    shares: Tuple[Tuple[str, str], ...] = ()
    append: str = ""
    daemonize: Optional[bool] = None
    ready: str = ""  # the readiness channel's unix socket (ready_channel_args), or none
    bios: str = ""  # the firmware (fast_firmware), or QEMU's default (SeaBIOS)
    engine_drive: str = ""  # the engine the guest installs at boot (engine_drive_args), or none


def qmp_address(path):
    """The QMP address of a machine whose socket file is ``path``: ``unix:PATH``, on every OS.

    QMP is the VM's control port, and a client of it can make QEMU run any program
    (``human-monitor-command``), so it is never a TCP port, which any local user (and, via
    DNS rebinding, a web page) could reach. QEMU on Windows serves unix sockets from 7.2
    (Windows 10 1803+ has AF_UNIX), and Windows checks the socket file's ACL on connect: it lies
    in the user's own profile. Its ``pipe:`` chardev is no alternative: it blocks QEMU's start
    until one client connects, serves that one only, and takes the default (Everyone: read) DACL.

    Raises:
        ValueError: the path does not fit a sockaddr_un (107 bytes).
    """
    if len(path.encode()) > 107:
        raise ValueError("QMP socket path %s is longer than 107 bytes: use a shorter HOSTBRIDGE_HOME" % path)
    return "unix:" + path


READY_PORT = "org.hostbridge.ready"  # the virtio-serial port's name (provision/guest-init.py READY_PORT)


def ready_channel_args(path):
    """A virtio-serial port named READY_PORT whose host end is the unix socket ``path`` (QEMU
    listens; nothing waits for a client). The guest's init writes one line per event on it:
    ``ready init`` (sshd listens, shares are mounted), ``ready engine`` (the engine's socket is
    there), ``error LINE`` (what it also prints with the HOSTBRIDGE-GUEST-ERROR marker)."""
    return ["-device", "virtio-serial-pci,id=vser0",
            "-chardev", "socket,id=ready,path=%s,server=on,wait=off" % escape(path),
            "-device", "virtserialport,bus=vser0.0,chardev=ready,name=%s" % READY_PORT]


ENGINE_SERIAL = "hostbridge-engine"  # the engine drive's serial (provision/guest-init.py ENGINE_SERIAL)


def engine_drive_args(path):
    """A read-only virtio-blk drive holding the engine's zipapp (``path``: zero-padded to whole
    sectors; its size and sha256 come in fw_cfg's engine.json), found by the guest's init by
    its serial. A drive, not fw_cfg: the guest reads fw_cfg a byte per port access, 1.2 MB in
    ~40 s under TCG, where a drive is read in a fraction of a second. After the data disk on the
    command line, so that the data disk stays the guest's first (/dev/vda)."""
    return readonly_drive_args("engine0", path, ENGINE_SERIAL)


def readonly_drive_args(drive_id, path, serial):
    """A raw read-only virtio-blk drive ``drive_id`` of the file ``path``, whose serial is ``serial``."""
    return ["-drive", "if=none,id=%s,format=raw,readonly=on,file=%s" % (drive_id, escape(path)),
            "-device", "virtio-blk-pci,drive=%s,serial=%s" % (drive_id, serial)]


FAST_FIRMWARE = "qboot.rom"  # QEMU's minimal x86 firmware: boots -kernel ~1 s sooner than SeaBIOS under TCG


def fast_firmware(binary_path, arch, exists=os.path.isfile):
    """The path of QEMU's qboot firmware for an x86_64 guest when this QEMU ships it (Debian's
    qemu-system-data, Homebrew's and the Windows installer's share dirs), else "" (SeaBIOS).

    Args:
        binary_path: the qemu-system executable's path.
        arch: the guest's architecture (aarch64 boots -kernel without a BIOS).
    """
    if arch != "x86_64" or not binary_path:
        return ""
    bindir = os.path.dirname(os.path.realpath(binary_path))
    for d in (os.path.join(os.path.dirname(bindir), "share", "qemu"), os.path.join(bindir, "share"), "/usr/share/qemu"):
        path = os.path.join(d, FAST_FIRMWARE)
        if exists(path):
            return path
    return ""


def escape(value):
    """Escape a value for QEMU's ``key=value,...`` option syntax (a comma is doubled)."""
    return str(value).replace(",", ",,")


def console_device(arch):
    return "ttyAMA0" if arch == "aarch64" else "ttyS0"


def machine_args(system, arch, accel):
    """``-machine``/``-accel``/``-cpu`` for a platform and accelerator."""
    hw = accel in ("kvm", "hvf")
    if arch == "aarch64":
        # Apple silicon: virt machine, the host CPU under HVF; highmem off fits M1's 36-bit IPA.
        machine = "virt,highmem=off" if accel == "hvf" else "virt"
        cpu = "host" if hw else "max"
    else:
        machine = "q35"
        cpu = "host" if hw else "max"
    args = ["-machine", machine]
    if accel == "whpx":
        # WHPX's in-kernel irqchip is unreliable across Windows builds.
        args += ["-accel", "whpx,kernel-irqchip=off"]
    elif accel == "tcg":
        args += ["-accel", tcg_accel()]
    else:
        args += ["-accel", accel]
    # WHPX rejects -cpu host; QEMU's default model is what it supports.
    if accel != "whpx":
        args += ["-cpu", cpu]
    return args


# MiB of host memory for TCG's translated code. QEMU's default (1 GiB on a 64-bit host) is
# filled, never handed back, and grows with every program the guest runs: it was most of an idle
# VM's RSS (271 MiB after a boot, 471 MiB after 20 containers came and went). When the buffer is
# full QEMU throws all its code away and translates again. A cold `up` (boot, engine unpacked and
# started) translates ~142 MiB (HMP `info jit`): at 128 the flush came in the engine's start, and
# retranslating the hot code cost it 1-2 s (loaded host); 192 holds a whole `up` with room to spare.
TCG_TB_SIZE_MIB = 192


def tcg_accel(tb_size_mib=None):
    """The ``-accel`` value for TCG: multi-threaded, its code buffer capped (``TCG_TB_SIZE_MIB``;
    0: QEMU's default)."""
    size = TCG_TB_SIZE_MIB if tb_size_mib is None else tb_size_mib
    return "tcg,thread=multi" + (",tb-size=%d" % size if size else "")


def kernel_cmdline(arch, extra=""):
    # The system is the initramfs (no root=); panic=-1 with QEMU's -no-reboot: a panic exits QEMU.
    parts = ["console=" + console_device(arch), "panic=-1", FAST_BOOT]
    return " ".join(p for p in parts + [extra] if p)


def build_command(cfg: QemuConfig, binary=None):
    """The full argv to boot a machine.

    Args:
        cfg: the machine's QemuConfig.
        binary: the qemu-system executable (default: by cfg.arch).
    Returns:
        A list of strings.
    """
    daemonize = cfg.daemonize if cfg.daemonize is not None else cfg.system != "Windows"
    argv = [binary or "qemu-system-" + cfg.arch, "-name", "hostbridge-%s" % escape(cfg.name)]
    argv += machine_args(cfg.system, cfg.arch, cfg.accel)
    argv += ["-smp", str(cfg.cpus), "-m", str(cfg.memory_mib),
             "-nodefaults", "-no-user-config", "-display", "none",
             # A guest that panics or reboots stops QEMU: `up` sees it at once, no reboot loop.
             "-no-reboot",
             "-kernel", cfg.kernel, "-initrd", cfg.initrd, "-append", kernel_cmdline(cfg.arch, cfg.append),
             "-drive", "if=none,id=disk0,format=qcow2,discard=unmap,file=%s" % escape(cfg.disk),
             "-device", "virtio-blk-pci,drive=disk0",
             "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22" % cfg.ssh_port,
             "-device", "virtio-net-pci,netdev=net0",
             "-device", "virtio-rng-pci",
             # The guest hands pages it frees back to the host: an idle VM's RSS shrinks.
             "-device", "virtio-balloon-pci,free-page-reporting=on",
             "-serial", "file:%s" % cfg.serial_log,
             "-qmp", "%s,server=on,wait=off" % escape(cfg.qmp),
             "-pidfile", cfg.pidfile]
    for i, (tag, path) in enumerate(cfg.shares):
        argv += ["-fsdev", "local,id=fs%d,security_model=none,path=%s" % (i, escape(path)),
                 "-device", "virtio-9p-pci,fsdev=fs%d,mount_tag=%s" % (i, escape(tag))]
    if cfg.bios:
        argv += ["-bios", cfg.bios]
    if cfg.ready:
        argv += ready_channel_args(cfg.ready)
    if cfg.engine_drive:
        argv += engine_drive_args(cfg.engine_drive)
    for name, path in sorted(cfg.fw_cfg.items()):
        argv += ["-fw_cfg", "name=opt/hostbridge/%s,file=%s" % (name, escape(path))]
    if daemonize:
        argv.append("-daemonize")
    return argv


def probe_command(binary, system, arch, accel, kernel):
    """argv booting only the kernel, console on stdout, exiting on the panic (no root disk)."""
    return [binary] + machine_args(system, arch, accel) + [
        "-m", "256", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-serial", "stdio", "-kernel", kernel,
        "-append", "console=%s earlyprintk=serial panic=-1" % console_device(arch)]


def probe_accel(binary, system, arch, accel, kernel, timeout=6.0):
    """Boot ``kernel`` under ``accel`` and report whether it printed ``Linux version`` in time.

    Returns:
        (ok, detail): detail is QEMU's complaint or "no console output in N s" when not ok.
    """
    if accel == "tcg":
        return True, ""
    if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not accessible"
    return watch_console(probe_command(binary, system, arch, accel, kernel), PROBE_MARK, timeout)


def watch_console(argv, mark, timeout):
    """Run argv (console on stdout) until ``mark`` appears, it exits, or ``timeout`` s pass; kill it.

    Returns:
        (True, "") when the mark appeared, else (False, QEMU's last complaint or "no console output").
    """
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        return False, str(e)
    seen = threading.Event()

    def reader():
        buf = b""
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            buf = (buf + chunk)[-4096:]
            if mark in buf:
                seen.set()
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while not seen.is_set() and proc.poll() is None and time.monotonic() < deadline:
        seen.wait(0.1)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    t.join(2)  # QEMU may have exited (the kernel panics without a root disk) before we read it all
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    if seen.is_set():
        return True, ""
    errs = [line.strip() for line in err.splitlines() if line.strip() and "warning" not in line]
    return False, (errs[-1] if errs else "no console output in %g s" % timeout)


def probe_key(binary_path, accel):
    """Cache key of a probe: the QEMU binary (path, size, mtime), the accelerator and the host kernel."""
    try:
        st = os.stat(binary_path)
        stamp = "%s:%d:%d" % (binary_path, st.st_size, int(st.st_mtime))
    except OSError:
        stamp = binary_path
    raw = "%s|%s|%s|%s" % (stamp, accel, platform.system(), platform.release())
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def choose_accel(binary_path, system, arch, kernel, cache_file, candidates=None, probe=probe_accel):
    """The best accelerator that really boots, probing each at most once per host (cached).

    Returns:
        (accel, notes): notes lists why better accelerators were skipped (for a warning).
    """
    try:
        with open(cache_file) as f:
            cache = json.load(f)
    except (OSError, ValueError):
        cache = {}
    notes = []
    chosen = "tcg"
    for accel in candidates or accelerators(system):
        if accel == "tcg":
            break
        key = probe_key(binary_path, accel)
        if key not in cache:
            ok, detail = probe(binary_path, system, arch, accel, kernel)
            cache[key] = {"accel": accel, "ok": ok, "detail": detail}
            _write_json(cache_file, cache)
        if cache[key]["ok"]:
            chosen = accel
            break
        notes.append("%s does not work here (%s)" % (accel, cache[key]["detail"]))
    return chosen, notes


def _write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
