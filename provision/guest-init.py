#!/usr/bin/python3 -IS
"""hostbridge's guest init (PID 1 of the QEMU guest): boot to sshd in as few steps as possible.

boot2docker's lesson is that boot time is the product: instead of systemd this does only what
the engine needs. The system runs from RAM (the initramfs itself, bind-mounted over / by its /init).
Mount the kernel filesystems and cgroup2, load a few modules, start sshd with the keys from
QEMU's fw_cfg (authorized key, SSH host key), read the machine's other settings there
(hostname, shares), prepare the persistent data disk (formatted on its first boot only;
checked with e2fsck -p after that; never reformatted), bring up loopback and eth0 with QEMU
user-net's fixed addresses (only now can the host reach sshd), install the engine the host
offers (a read-only drive; only when it changed) and start it, mount the 9p shares at their
host paths, then reap zombies, answer the host's commands on the readiness port
(run_command), keep the clock on the RTC's (ClockWatch) and wait for the power button (QMP
system_powerdown), SIGUSR2 (poweroff) or SIGTERM (reboot).

A failure the host must report (a data disk it cannot use) is one console line starting with
ERROR_MARK; the host's `up` watches the serial log for it.

Standard library only, Python >= 3.9. Installed at /usr/sbin/hostbridge-init by
hostbridge/machines/guestimage/assemble.py.
"""

from __future__ import annotations

import time  # first: when Python itself was up, for the boot's timeline in the console

PYTHON_UP = time.monotonic()

import ctypes  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402

# No subprocess, glob or re: each import costs tenths of a second under emulation, on the
# critical path to sshd (json, which brings re and enum, is imported once sshd is started).
# Children are started with posix_spawn.

FW_CFG = "/sys/firmware/qemu_fw_cfg/by_name/opt/hostbridge"
# What sshd needs (its keys, from fw_cfg), then what the data disk and eth0 need: the
# initramfs' /init starts loading both lists, in this order, before Python is up.
SSHD_MODULES = ["virtio_pci", "qemu_fw_cfg"]
MODULES = ["virtio_blk", "crc32c_generic", "ext4", "virtio_net", "virtio_console"]
# Loaded beside them, waited for only before the shares are mounted (the power button's after boot).
LATE_MODULES = ["9pnet_virtio", "9p", "button", "evdev", "virtio_rng", "virtio_balloon"]
# Loaded off the critical path: what the engine's first container needs.
ENGINE_MODULES = ["overlay", "bridge", "br_netfilter", "veth", "nf_tables", "nft_compat", "nft_chain_nat",
                  "xt_conntrack", "xt_MASQUERADE", "xt_addrtype", "iptable_nat", "iptable_filter"]
ERROR_MARK = "HOSTBRIDGE-GUEST-ERROR:"
# The virtio-serial port on which the host's `up` waits (hostbridge/machines/qemu_cmd.py
# READY_PORT): "ready init", "ready engine", "error LINE", one line each.
READY_PORT = "org.hostbridge.ready"
# 9p: msize is the virtio transport's maximum (Linux 6.1 caps it at 500 KiB): a large file
# reads 3x faster than at 256 KiB. cache=mmap asks the host at each lookup and read, so an edit
# on the host is seen at once (loose and fscache were faster on small files but never see it).
# hostbridge/machines/suspend.py MOUNT_OPTS mounts them the same way after a resume.
SHARE_OPTS = "trans=virtio,version=9p2000.L,msize=512000,cache=mmap"
ENGINE_SOCKET = "/run/hostbridge/docker.sock"
ENGINE_WAIT = 300  # seconds the init watches for the engine's socket after starting it
# The data disk (the machine's qcow2) holds what must outlive a boot, at the paths the system
# uses, so a disk from the older disk-image guest (a whole root filesystem) mounts the same way.
DATA_DISK = "/dev/vda"
DATA_MOUNT = "/mnt/data"
TRIM_EVERY = 600  # s between fstrims: freed data-disk blocks go back to the host (the drive has discard=unmap)
PERSISTENT = ["var/lib/hostbridge", "usr/local", "var/cache/hostbridge"]
PYCACHE = "/var/cache/hostbridge/pycache"
EXT4_MAGIC_AT, EXT4_MAGIC = 1080, b"\x53\xef"
GROW_MIN = 64 << 20  # a disk this much bigger than its filesystem was grown by the host: resize2fs
# The superblock's s_state (1: cleanly unmounted, 2: errors) and s_feature_incompat (0x4: the
# journal needs recovery), at 1024 + 58 and 1024 + 96.
EXT4_STATE_AT, EXT4_INCOMPAT_AT, EXT4_VALID, EXT4_ERRORS, EXT4_RECOVER = 1082, 1120, 1, 2, 4
MS_BIND = 4096
ENGINE_CONTROL = "/etc/init.d/hostbridge"
STOP_GRACE = 1.5  # seconds every process has to exit at shutdown before SIGKILL (`down` <= 3 s)
ENGINE = "/usr/local/lib/hostbridge/engine.pyz"
# The engine the host hands over at boot (hostbridge/machines/steps.py engine_offer): fw_cfg's
# engine.json (version, sha256, size, the relay, the docker shim, settings) and the zipapp on a
# read-only virtio-blk drive whose serial is ENGINE_SERIAL (fw_cfg reads a byte per port access).
# ENGINE_STAMP says which offer is installed ("SHA256 NAME"): an unchanged one is not read again.
ENGINE_STAMP = "/usr/local/lib/hostbridge/.engine-offer"
ENGINE_SERIAL = "hostbridge-engine"  # hostbridge/machines/qemu_cmd.py ENGINE_SERIAL
ENGINE_RELAY = "/usr/local/lib/hostbridge/relay.py"
ENGINE_SHIM = "/usr/local/bin/docker"  # hostbridge.deploy.install_shim's place in this guest
ENGINE_PIDFILE = "/run/hostbridge/engine.pid"
ENGINE_ROOT = "/var/lib/hostbridge"
# Where this Python keeps what it compiles of the image's own modules, in RAM (the init's
# pycache prefix: hostbridge/machines/guestimage/assemble.py IMAGE_PYCACHE); the image's
# bytecode seed is there from the initrd. PYCACHE's tree of the stdlib links to it, so the
# engine's Python finds them too; what it compiles there the host keeps as the seed of the
# image's next machines (hostbridge/machines/steps.py keep_pycache_seed).
IMAGE_PYCACHE = "/usr/lib/hostbridge/pycache"
STDLIB = "usr/lib/python%d.%d" % sys.version_info[:2]
# QEMU user-mode networking (slirp) defaults; they only exist inside the VM.
GUEST_ADDR, GATEWAY, DNS = "10.0.2.15/24", "10.0.2.2", "10.0.2.3"
EV_KEY, KEY_POWER = 1, 116
INPUT_EVENT = struct.Struct("llHHi")
RB_POWER_OFF, RB_AUTOBOOT = 0x4321FEDC, 0x01234567
MS_NOSUID, MS_NODEV, MS_RDONLY, MS_REMOUNT, MNT_DETACH = 2, 4, 1, 32, 2
F_GETFL, F_SETFL, F_SETOWN, O_ASYNC = 3, 4, 8, 0o20000
FITRIM = 0xC0185879  # _IOWR('X', 121, struct fstrim_range)
# The RTC keeps the host's time (QEMU's -rtc default: base=utc, clock=host) while the guest's own
# clock stands still (the VM paused, the host asleep): compared every CLOCK_EVERY s, a guest
# clock off by more than CLOCK_SLACK s beyond the RTC's 1 s resolution is set back to it.
RTC = "/sys/class/rtc/rtc0/since_epoch"
CLOCK_EVERY, CLOCK_SLACK, CLOCK_EDGE_POLL = 0.5, 0.5, 0.01
REPLY_WAIT = 3.0  # s a reply to the host's command waits for the port to say the host is connected
# Memory handed back to the host: the balloon reports free pages from blocks of 2^ORDER pages
# (the kernel's default, 9: 2 MiB, leaves the scattered pages a stopped container frees in
# the VM); an idle guest drops its clean page cache and slab once, so that they become free
# pages reported too, and compacts its memory: the pages stopped containers free lie scattered
# among pages still used (measured: ~54 MiB free in blocks below 128 KiB after 20 containers
# went, never reported until compacted). Both can be set in config.json's "memory"
# ({"reporting_order", "idle_reclaim": seconds, 0: never}).
REPORTING_ORDER = 5  # 128 KiB
REPORTING_ORDER_PARAM = "/sys/module/page_reporting/parameters/page_reporting_order"
IDLE_RECLAIM = 30  # s of an idle guest before its caches are dropped
IDLE_SAMPLE = 10  # s between looks at the guest's CPU time
IDLE_BUSY = 0.05  # CPU seconds per second below which the guest counts as idle
RECLAIM_MIN = 16 << 20  # bytes of droppable cache (or of unreportable free memory) below which reclaiming is not worth it
LIBC = ctypes.CDLL(None, use_errno=True)
IMPORTED = time.monotonic()


def log(msg):
    # CLOCK_MONOTONIC counts from boot, like the kernel's own [   1.234567] stamps.
    try:
        with open("/dev/console", "w") as con:
            con.write("hostbridge-init [%10.6f] %s\n" % (time.monotonic(), msg))
    except OSError:
        pass


def tell_host(event):
    """Write ``event`` (one line) on the readiness port, if QEMU gave one; never blocks (no host
    listening: the line is dropped, `up` then falls back to asking sshd)."""
    return PORT.write(event)


class HostPort:
    """The readiness port, kept open (a virtio port opens once at a time): the guest's events go
    out on it and the host's commands come in (run_command). Read without a host connected, it
    says EOF at once, so it is left out of select() until QEMU tells the port the host is back
    (SIGIO, asked for with O_ASYNC) or the next tick."""

    def __init__(self):
        self.fd = None
        self.next_look = 0.0  # no port found: looked for again after a while (modules load late)
        self.buf = b""
        self.hup = False

    def open(self):
        if self.fd is not None or time.monotonic() < self.next_look:
            return self.fd
        base = "/sys/class/virtio-ports"
        try:
            ports = os.listdir(base)
        except OSError:
            self.next_look = time.monotonic() + 5  # virtio_console not loaded (yet)
            return None
        for port in ports:
            try:
                with open(os.path.join(base, port, "name")) as f:
                    if f.read().strip() != READY_PORT:
                        continue
                fd = os.open("/dev/" + port, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
            except OSError:
                continue
            # SIGIO when the host connects or writes (the init has a handler: its default kills).
            if signal.getsignal(signal.SIGIO) not in (signal.SIG_DFL, None):
                LIBC.fcntl(fd, F_SETOWN, os.getpid())
                LIBC.fcntl(fd, F_SETFL, LIBC.fcntl(fd, F_GETFL) | O_ASYNC)
            self.fd = fd
            return fd
        self.next_look = time.monotonic() + 5
        return None

    def write(self, line, wait=0.0):
        """Write ``line``; False when it was dropped. No host connected: dropped at once, or after
        ``wait`` s (a reply: the host that asked is there, but the guest may hear its data before
        the port's "host connected" message, which the driver handles later)."""
        fd = self.open()
        if fd is None:
            return False
        data = (line.replace("\n", " ") + "\n").encode(errors="replace")
        deadline = time.monotonic() + wait
        while True:
            try:
                os.write(fd, data)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)
            except OSError:
                return False

    def readable(self):
        """The descriptor for select(), or None (no port, or no host connected)."""
        return None if self.hup else self.open()

    def read_lines(self):
        """The complete lines the host sent; marks the port idle when no host is connected."""
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return []
        except OSError:
            data = b""
        if not data:
            self.hup, self.buf = True, b""
            return []
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [line.decode(errors="replace").strip() for line in lines]


PORT = HostPort()


def wait_listening(port, timeout):
    """Wait until something listens on TCP ``port`` (/proc/net/tcp, tcp6); True when it does."""
    deadline = time.monotonic() + timeout
    want = ":%04X" % port
    while True:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    for line in f.readlines()[1:]:
                        fields = line.split()
                        if fields[1].endswith(want) and fields[3] == "0A":  # LISTEN
                            return True
            except OSError:
                pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def spawn(argv, setsid=True, stdin=None):
    """Start argv (PATH searched) with the init's stdio (the console; ``stdin``: a descriptor
    instead); return its pid."""
    actions = [(os.POSIX_SPAWN_DUP2, stdin, 0)] if stdin is not None else []
    return os.posix_spawnp(argv[0], argv, os.environ, setsid=setsid, file_actions=actions)


def run(argv, timeout=None):
    """Run argv to completion (or until ``timeout`` s); return its exit status (None: timed out)."""
    pid = spawn(argv, setsid=False)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
        if done:
            return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def mount(source, target, fstype, options="", flags=0):
    """mount(2) directly: a fork+exec of mount(8) per filesystem is slow under emulation."""
    os.makedirs(target, exist_ok=True)
    if LIBC.mount(source.encode(), target.encode(), fstype.encode(), flags, options.encode() or None) != 0:
        log("mount %s on %s failed: %s" % (fstype, target, os.strerror(ctypes.get_errno())))
        return False
    return True


def classify_disk(head):
    """What a disk's first bytes say it is: "blank" (all zero: never formatted), "ext4" (an
    ext2/3/4 superblock) or "unknown" (something else: never formatted over)."""
    if not head.strip(b"\0"):
        return "blank"
    if head[EXT4_MAGIC_AT:EXT4_MAGIC_AT + 2] == EXT4_MAGIC:
        return "ext4"
    return "unknown"


def ext4_bytes(head):
    """The size of the ext4 filesystem whose superblock is in ``head`` (the disk's first bytes)."""
    blocks_lo, = struct.unpack_from("<I", head, 1024 + 4)
    log_block, = struct.unpack_from("<I", head, 1024 + 24)
    incompat, = struct.unpack_from("<I", head, 1024 + 0x60)
    blocks_hi = struct.unpack_from("<I", head, 1024 + 0x150)[0] if incompat & 0x80 else 0  # INCOMPAT_64BIT
    return ((blocks_hi << 32) | blocks_lo) * (1024 << log_block)


def grow_filesystem(device, head):
    """Grow the mounted data disk's ext4 to the whole disk (online) when the host made the disk
    bigger (``hostbridge up --disk``); otherwise do nothing."""
    try:
        with open("/sys/class/block/%s/size" % os.path.basename(device)) as f:
            disk = int(f.read()) * 512
    except (OSError, ValueError):
        return
    if disk - ext4_bytes(head) < GROW_MIN:
        return
    log("growing the data disk's filesystem to %d MiB" % (disk >> 20))
    status = run(["resize2fs", device], timeout=600)
    if status != 0:
        log("resize2fs %s failed (exit status %s); the filesystem keeps its size" % (device, status))


def cleanly_unmounted(head):
    """True when an ext4 superblock says the filesystem was unmounted cleanly (valid, no errors,
    no journal to replay): e2fsck -p would only say "clean" (a program start under emulation)."""
    state = struct.unpack_from("<H", head, EXT4_STATE_AT)[0]
    incompat = struct.unpack_from("<I", head, EXT4_INCOMPAT_AT)[0]
    return state & EXT4_VALID and not state & EXT4_ERRORS and not incompat & EXT4_RECOVER


def prepare_data_disk(device=DATA_DISK, mountpoint=DATA_MOUNT):
    """Format (blank disk only), check and mount the data disk, and bind its PERSISTENT trees
    into place. Returns None, or the reason the disk is not used (then nothing is mounted)."""
    deadline = time.monotonic() + 10
    while not os.path.exists(device) and time.monotonic() < deadline:  # virtio_blk probes asynchronously
        time.sleep(0.02)
    try:
        with open(device, "rb") as f:
            head = f.read(1 << 20)
    except OSError as e:
        return "cannot read %s: %s" % (device, e.strerror)
    kind = classify_disk(head)
    if kind == "blank":
        log("formatting the new data disk %s" % device)
        # assume_storage_prezeroed: the disk is the blank qcow2 `create` made (it reads as zeros),
        # so no kernel thread zeroes the inode tables behind the first `up` (TCG's CPU and disk).
        status = run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "hostbridge-data", "-m", "0",
                      "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1,assume_storage_prezeroed=1", device])
        if status != 0:
            return "mke2fs %s failed (exit status %s)" % (device, status)
    elif kind == "ext4" and cleanly_unmounted(head):
        log("data disk %s clean" % device)
    elif kind == "ext4":
        status = run(["e2fsck", "-p", device], timeout=300)
        if status is None or status > 2:  # 1, 2: errors corrected
            return ("e2fsck -p %s found errors it cannot repair (exit status %s); the disk was left as it is"
                    % (device, status))
    else:
        return "%s is neither blank nor an ext4 filesystem; it was left as it is" % device
    if not mount(device, mountpoint, "ext4", "", MS_NOSUID | MS_NODEV):
        return "cannot mount %s (ext4): %s" % (device, os.strerror(ctypes.get_errno()))
    if kind == "ext4":
        grow_filesystem(device, head)
    for sub in PERSISTENT:
        src, dst = os.path.join(mountpoint, sub), "/" + sub
        os.makedirs(src, exist_ok=True)
        os.makedirs(dst, exist_ok=True)
        if LIBC.mount(src.encode(), dst.encode(), None, MS_BIND, None) != 0:
            return "cannot bind %s at %s: %s" % (src, dst, os.strerror(ctypes.get_errno()))
    os.makedirs(os.path.dirname(ENGINE), mode=0o755, exist_ok=True)  # where the host deploys the engine
    return None


def parse_sysctl(text):
    """Return [(key, value)] from sysctl.conf text; comments and blank lines are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out.append((key.strip().lstrip("-"), value.strip()))
    return out


def apply_sysctls():
    conf_d = "/etc/sysctl.d"
    names = sorted(n for n in os.listdir(conf_d) if n.endswith(".conf")) if os.path.isdir(conf_d) else []
    for path in [os.path.join(conf_d, n) for n in names] + ["/etc/sysctl.conf"]:
        try:
            with open(path) as f:
                pairs = parse_sysctl(f.read())
        except OSError:
            continue
        for key, value in pairs:
            try:
                with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                    f.write(value)
            except OSError:
                pass  # e.g. bridge-nf keys before br_netfilter is loaded


def fw_cfg(name):
    """Return the bytes QEMU passed as ``-fw_cfg name=opt/hostbridge/NAME``, or None."""
    try:
        with open(os.path.join(FW_CFG, name, "raw"), "rb") as f:
            return f.read()
    except OSError:
        return None


def write_file(path, data, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def install_keys():
    """root's authorized key and sshd's host key, as QEMU passed them (fw_cfg)."""
    keys = fw_cfg("authorized_keys")
    if keys:
        write_file("/root/.ssh/authorized_keys", keys, 0o600)
        os.chmod("/root/.ssh", 0o700)
    host_key = fw_cfg("ssh_host_ed25519_key")
    if host_key:
        write_file("/etc/ssh/ssh_host_ed25519_key", host_key, 0o600)


def write_atomic(path, data, mode):
    """Write ``path`` whole or not at all (a temp file, fsync'd, renamed over it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.tmp%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_if_changed(path, data, mode):
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except OSError:
        pass
    write_atomic(path, data, mode)


def engine_offer():
    """What the host offers through fw_cfg's engine.json (a dict), or None."""
    import json

    raw = fw_cfg("engine.json")
    if not raw:
        return None
    try:
        offer = json.loads(raw.decode())
        if not isinstance(offer, dict):
            raise ValueError
    except ValueError:
        log("ignoring an unreadable engine.json")
        return None
    return offer


def read_engine_drive(size, sys_block="/sys/block", dev="/dev", serial=ENGINE_SERIAL):
    """The first ``size`` bytes of the drive whose serial is ``serial``, or None."""
    if not isinstance(size, int) or size <= 0:
        return None
    try:
        names = os.listdir(sys_block)
    except OSError:
        return None
    for name in sorted(names):
        try:
            with open(os.path.join(sys_block, name, "serial")) as f:
                if f.read().strip() != serial:
                    continue
            with open(os.path.join(dev, name), "rb") as f:
                return f.read(size)
        except OSError:
            continue
    return None


def install_engine(offer):
    """Install the offered engine (the drive's zipapp, checked against the offer's size and sha256) beside
    the relay and the docker shim, and point ENGINE at it; nothing is read when that offer is
    installed already. Every file is replaced atomically, the link last: a refused or interrupted
    install leaves the engine that was there. Returns None, or why the offer was refused."""
    name = str(offer.get("name", ""))
    if not name.startswith("engine-") or not name.endswith(".pyz") or "/" in name:
        return "the offered engine's name %r is not an engine-VERSION.pyz" % name
    dest = os.path.join(os.path.dirname(ENGINE), name)
    stamp = "%s %s\n" % (offer.get("sha256"), name)
    try:
        with open(ENGINE_STAMP) as f:
            if f.read() == stamp and os.readlink(ENGINE) == name and os.path.isfile(dest):
                return None
    except OSError:
        pass
    t0 = time.monotonic()
    data = read_engine_drive(offer.get("size"))
    if data is None or len(data) != offer.get("size") or not offered_bytes(data, offer):
        return ("the engine from the host is corrupt or truncated (%s bytes, %s expected, or its checksum "
                "differs)" % ("no" if data is None else len(data), offer.get("size")))
    write_atomic(dest, data, 0o644)
    write_atomic(ENGINE_RELAY, str(offer.get("relay", "")).encode(), 0o644)
    if offer.get("shim"):
        write_atomic(ENGINE_SHIM, str(offer["shim"]).encode(), 0o755)
    tmp = ENGINE + ".new"
    try:
        os.unlink(tmp)
    except OSError:
        pass
    os.symlink(name, tmp)
    os.replace(tmp, ENGINE)
    write_atomic(ENGINE_STAMP, stamp.encode(), 0o644)
    for old in os.listdir(os.path.dirname(ENGINE)):  # an upgrade's older engines
        if old.startswith("engine-") and old.endswith(".pyz") and old != name:
            try:
                os.unlink(os.path.join(os.path.dirname(ENGINE), old))
            except OSError:
                pass
    log("engine %s installed from the host (%d KiB in %.2f s)" % (
        offer.get("version"), len(data) >> 10, time.monotonic() - t0))
    return None


def link_image_pycache(pycache=PYCACHE, image_pycache=IMAGE_PYCACHE, stdlib=STDLIB):
    """Make ``pycache``'s stdlib tree a link to ``image_pycache``'s (a directory there, from an
    older guest that kept them on the data disk, is moved aside and removed in the background).
    Returns None, or why it could not (the engine then compiles the stdlib modules it imports)."""
    link, target = os.path.join(pycache, stdlib), os.path.join(image_pycache, stdlib)
    try:
        os.makedirs(target, exist_ok=True)
        if os.path.islink(link) and os.readlink(link) == target:
            return None
        if os.path.lexists(link):
            old = "%s.old-%d" % (link, os.getpid())
            os.rename(link, old)
            spawn(["rm", "-rf", old])
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(target, link)
    except OSError as e:
        return "%s: %s" % (link, e.strerror)
    return None


def offered_bytes(data, offer):
    """Whether ``data`` is the engine ``offer`` names: its CRC-32 (the host's offer and the drive
    come from the same host: this is against a damaged or stale drive, and a sha256 costs a tenth
    of a second more under emulation); the sha256 of an offer without one."""
    if isinstance(offer.get("crc32"), int):
        import zlib

        return zlib.crc32(data) == offer["crc32"]
    return sha256_hex(data) == offer.get("sha256")


def sha256_hex(data):
    """sha256 of ``data`` by OpenSSL's C module, without hashlib.py (and what it imports)."""
    try:
        from _hashlib import openssl_sha256 as sha256
    except ImportError:
        from hashlib import sha256
    return sha256(data).hexdigest()


def place_engine_settings(offer):
    """Write what the host gives the engine in engine.json: its settings (proxies, extra CAs:
    ROOT/engine-settings.json, as hostbridge.deploy.write_settings does) and the share map
    (ROOT/host-paths.json, as steps.share_map does); absent (null): left as they are."""
    import binascii
    import json

    settings = offer.get("settings")
    if isinstance(settings, dict):
        for name, b64 in settings.get("cas", []):
            if "/" not in name:
                write_if_changed(os.path.join(ENGINE_ROOT, "ca", name), binascii.a2b_base64(b64), 0o644)
        write_if_changed(os.path.join(ENGINE_ROOT, "engine-settings.json"),
                         json.dumps(settings.get("daemon", {})).encode(), 0o600)
    if isinstance(offer.get("host_paths"), dict):
        write_if_changed(os.path.join(ENGINE_ROOT, "host-paths.json"), json.dumps(offer["host_paths"]).encode(),
                         0o644)


def engine_version():
    """The version of the engine ENGINE points at (its file's name), or ""."""
    try:
        name = os.path.basename(os.readlink(ENGINE))
    except OSError:
        return ""
    return name[len("engine-"):-len(".pyz")] if name.startswith("engine-") and name.endswith(".pyz") else ""


def load_settings():
    """The machine's config.json (hostname, shares…), {} when there is none."""
    import json

    raw = fw_cfg("config.json")
    if raw:
        try:
            return json.loads(raw.decode())
        except ValueError:
            log("ignoring an unreadable config.json")
    return {}


def set_hostname(hostname):
    with open("/proc/sys/kernel/hostname", "w") as f:
        f.write(hostname)
    try:  # so that the guest resolves its own name without asking DNS
        with open("/etc/hosts", "w") as f:
            f.write("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n" % hostname)
    except OSError:
        pass


def network():
    script = "link set lo up\nlink set eth0 up\naddr add %s dev eth0\nroute add default via %s\n" % (
        GUEST_ADDR, GATEWAY)
    with open("/run/hostbridge-net.ip", "w") as f:
        f.write(script)
    run(["ip", "-batch", "/run/hostbridge-net.ip"])
    try:
        with open("/etc/resolv.conf", "w") as f:
            f.write("nameserver %s\n" % DNS)
    except OSError:
        pass


def mount_shares(shares):
    for share in shares:
        if mount(share["tag"], share["path"], "9p", SHARE_OPTS):
            log("mounted %s at %s" % (share["tag"], share["path"]))


def cpu_seconds(stat):
    """The CPU time spent working (not idle, not waiting for I/O), in seconds, from /proc/stat's text."""
    fields = [int(v) for v in stat.split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system, irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def droppable_bytes(meminfo):
    """Clean page cache plus reclaimable slab, from /proc/meminfo's text (shmem, the system's own
    RAM file system, cannot be dropped)."""
    kib = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        kib[key] = int(rest.split()[0]) if rest.split() else 0
    return (kib.get("Cached", 0) - kib.get("Shmem", 0) - kib.get("Dirty", 0) + kib.get("SReclaimable", 0)) * 1024


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def unreportable_bytes(buddyinfo, order):
    """Free memory in blocks smaller than 2^``order`` pages (the balloon reports none of it), from
    /proc/buddyinfo's text."""
    pages = 0
    for line in buddyinfo.splitlines():
        counts = line.split()[4:]  # Node 0, zone DMA32 <free blocks of order 0> <order 1> …
        pages += sum(int(n) << o for o, n in enumerate(counts[:order]) if n.isdigit())
    return pages * os.sysconf("SC_PAGE_SIZE")


class IdleReclaim:
    """Drops the guest's clean caches and compacts its free memory into blocks the balloon
    reports (of 2^``order`` pages) once it has been idle ``after`` seconds (``poll`` from the
    main loop); again only after it was busy in between."""

    def __init__(self, after, order=REPORTING_ORDER):
        self.after, self.order = after, order
        self.busy, self.at = cpu_seconds(read_text("/proc/stat") or "cpu 0"), time.monotonic()
        self.idle_since, self.dropped = self.at, False
        # The reclaim's thread: dropping caches and compacting take seconds under TCG, which PID 1's
        # loop must not wait for (a host's `clock` command would be set seconds late).
        self.worker = None

    def poll(self):
        """Look at the CPU time used since the last look; drop the caches when due. Returns the
        seconds until the next look (None: never)."""
        if not self.after:
            return None
        busy, now = cpu_seconds(read_text("/proc/stat") or "cpu 0"), time.monotonic()
        if self.worker is not None:  # its own work is no reason to look again: a new baseline after it
            if not self.worker.is_alive():
                self.worker = None
                self.busy, self.at = busy, now
            return IDLE_SAMPLE
        if now - self.at < IDLE_SAMPLE / 2:
            return IDLE_SAMPLE
        if (busy - self.busy) / (now - self.at) > IDLE_BUSY:
            self.idle_since, self.dropped = now, False
        elif not self.dropped and now - self.idle_since >= self.after:
            import threading

            self.dropped = True
            self.worker = threading.Thread(target=self.reclaim, args=(now - self.idle_since,), name="reclaim", daemon=True)
            self.worker.start()
        self.busy, self.at = busy, now
        return IDLE_SAMPLE

    def reclaim(self, idle):
        """Drop the clean caches, then compact: each when there is enough to gain."""
        if droppable_bytes(read_text("/proc/meminfo")) >= RECLAIM_MIN:
            write_proc("/proc/sys/vm/drop_caches", "3", "idle for %d s: caches dropped" % idle)
        scattered = unreportable_bytes(read_text("/proc/buddyinfo"), self.order)
        if scattered >= RECLAIM_MIN:
            block_kib = (os.sysconf("SC_PAGE_SIZE") >> 10) << self.order
            write_proc("/proc/sys/vm/compact_memory", "1", "idle for %d s: memory compacted (%d MiB free in "
                       "blocks below %d KiB)" % (idle, scattered >> 20, block_kib))


def write_proc(path, value, done):
    """Write ``value`` to the kernel's ``path``; log ``done``, or the failure."""
    try:
        with open(path, "w") as f:
            f.write(value)
        log(done)
    except OSError as e:
        log("writing %s failed: %s" % (path, e))


def memory_settings(settings):
    """Apply config.json's "memory" settings (or the defaults); returns the IdleReclaim to poll."""
    memory = settings.get("memory") or {}
    try:
        with open(REPORTING_ORDER_PARAM, "w") as f:
            f.write(str(int(memory.get("reporting_order", REPORTING_ORDER))))
    except (OSError, ValueError) as e:
        log("cannot set the free page reporting order: %s" % e)
    try:
        order = int(memory.get("reporting_order", REPORTING_ORDER))
    except ValueError:
        order = REPORTING_ORDER
    return IdleReclaim(int(memory.get("idle_reclaim", IDLE_RECLAIM)), order)


def power_button_fds():
    fds = []
    for dev in ["/sys/class/input/" + n for n in os.listdir("/sys/class/input") if n.startswith("event")]:
        try:
            with open(os.path.join(dev, "device", "name")) as f:
                name = f.read().strip()
        except OSError:
            continue
        if "Power Button" in name or name == "gpio-keys":
            try:
                fds.append(os.open("/dev/input/" + os.path.basename(dev), os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                pass
    return fds


def power_pressed(data):
    """True when ``data`` (raw input_event structs) holds a KEY_POWER press."""
    size = INPUT_EVENT.size
    for off in range(0, len(data) - size + 1, size):
        _, _, etype, code, value = INPUT_EVENT.unpack_from(data, off)
        if etype == EV_KEY and code == KEY_POWER and value == 1:
            return True
    return False


def reap_all(timeout):
    """Reap children (every orphan is the init's) until none is left or ``timeout`` s pass.
    Returns True when none is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.02)
        except ChildProcessError:
            return True
    return False


def read_rtc(path=RTC):
    """The RTC's time in whole seconds (UTC), or None."""
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class ClockWatch:
    """Keep the guest clock on the RTC's (the host's) time: ``tick`` every CLOCK_EVERY s. A clock
    found off is set at once to the middle of the RTC's second (within 0.5 s), then exactly at
    the RTC's next second boundary (the caller polls every CLOCK_EDGE_POLL s meanwhile).

    QEMU's RTC counts whole seconds from its start, which was not on a second boundary: its
    seconds begin ``phase`` s after the host's (0 <= phase < 1). After the host set the clock
    exactly (``calibrate``, the ``clock`` command), the next RTC second boundary says which."""

    def __init__(self, rtc=read_rtc, now=time.time, settime=None):
        self.rtc, self.now = rtc, now
        self.settime = settime or (lambda t: time.clock_settime(time.CLOCK_REALTIME, t))
        self.phase = 0.0
        self.edge = None  # (what to do at the RTC's next second boundary, the second seen, until when)

    def calibrate(self):
        """The clock was just set right: learn the RTC's phase at its next second boundary."""
        rtc = self.rtc()
        if rtc is not None:
            self.edge = ("calibrate", rtc, time.monotonic() + 1.5)

    def tick(self):
        """Compare (or wait for the RTC's second boundary); returns the seconds until the next tick."""
        rtc = self.rtc()
        if rtc is None:
            return CLOCK_EVERY
        if self.edge is not None:
            what, second, until = self.edge
            if rtc != second:  # the RTC's second just began (CLOCK_EDGE_POLL / 2 ago, on average)
                if what == "calibrate":
                    self.phase = (self.now() - CLOCK_EDGE_POLL / 2 - rtc) % 1.0
                else:
                    self.settime(rtc + self.phase + CLOCK_EDGE_POLL / 2)
                self.edge = None
                return CLOCK_EVERY
            if time.monotonic() < until:
                return CLOCK_EDGE_POLL
            self.edge = None
            return CLOCK_EVERY
        off = self.now() - rtc - self.phase  # in [0, 1) when both agree
        if -CLOCK_SLACK <= off < 1 + CLOCK_SLACK:
            return CLOCK_EVERY
        self.settime(rtc + self.phase + 0.5)
        log("clock was %+.1f s off the RTC (paused VM or host asleep): set" % (off - 0.5))
        self.edge = ("set", rtc, time.monotonic() + 1.5)
        return CLOCK_EDGE_POLL


def shares_config():
    """The shares QEMU passed ([{"tag", "path"}]), read again from fw_cfg."""
    return load_settings().get("shares") or []


def mounted(fstype):
    """The mount points of file systems of ``fstype`` (escapes in /proc/mounts decoded)."""
    with open("/proc/mounts") as f:
        fields = [line.split() for line in f]
    paths = [p[1] for p in fields if len(p) > 2 and p[2] == fstype]
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        paths = [p.replace(escaped, char) for p in paths]
    return paths


def other_namespaces_mounts(fstype):
    """The mount points of ``fstype`` in mount namespaces other than the init's: a container's
    bind mount of a share is its own mount, which unmounting the init's does not touch."""
    try:
        seen = {os.readlink("/proc/1/ns/mnt")}
    except OSError:
        return []
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            ns = os.readlink("/proc/%s/ns/mnt" % pid)
            if ns in seen:
                continue
            seen.add(ns)
            with open("/proc/%s/mounts" % pid) as f:
                found += [fields[1] for fields in (line.split() for line in f) if fields[2:3] == [fstype]]
        except OSError:
            continue  # the process is gone
    return found


def fstrim(path):
    """FITRIM on the file system at ``path`` (fstrim(8) without a process). Returns bytes trimmed."""
    rng = (ctypes.c_uint64 * 3)(0, 2 ** 64 - 1, 0)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if LIBC.ioctl(fd, FITRIM, rng) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        return rng[1]
    finally:
        os.close(fd)


def mount_missing_shares():
    """The shares not mounted (after a resume: `down` unmounted them) mounted again; returns a
    failure or ""."""
    have = set(mounted("9p"))
    missing = [s for s in shares_config() if s["path"] not in have]
    mount_shares(missing)
    failed = [s["path"] for s in missing if s["path"] not in mounted("9p")]
    return "cannot mount %s" % ", ".join(failed) if failed else ""


def prepare_suspend():
    """Ready the guest for a save: data disk synced and trimmed, caches dropped (less to save),
    the 9p shares unmounted (QEMU refuses to migrate a mounted 9p export). Returns a failure or
    "": "busy: …" when a share is in use (those unmounted are mounted again)."""
    os.sync()
    try:
        fstrim(DATA_MOUNT)
    except OSError as e:
        log("fstrim %s: %s" % (DATA_MOUNT, e.strerror))
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    held = other_namespaces_mounts("9p")
    if held:
        return "busy: %s is mounted in a container" % held[0]
    for path in reversed(mounted("9p")):
        if LIBC.umount2(path.encode(), 0) != 0:
            why = os.strerror(ctypes.get_errno())
            mount_missing_shares()
            return "busy: %s: %s" % (path, why)
    return ""


def run_command(line, settime=None):
    """One command from the host (HostPort): ``clock EPOCH`` (the guest clock set to it),
    ``mount-shares``, ``prepare-suspend``, ``ping``, ``time`` (answers ``ok time EPOCH``: the
    guest's clock, read at once). Returns the reply line: ``ok CMD`` or ``error CMD: WHY``."""
    name, _, arg = line.partition(" ")
    try:
        if name == "time":
            return "ok time %.6f" % time.time()
        if name == "clock":
            (settime or (lambda t: time.clock_settime(time.CLOCK_REALTIME, t)))(float(arg))
            failure = ""
        elif name == "mount-shares":
            failure = mount_missing_shares()
        elif name == "prepare-suspend":
            failure = prepare_suspend()
        elif name == "ping":
            failure = ""
        else:
            failure = "unknown command"
    except Exception as e:  # noqa: BLE001 -- PID 1: a command's bug is its reply, never a panic
        failure = str(e) or type(e).__name__
    return "error %s: %s" % (name, failure) if failure else "ok %s" % name


class Init:
    def __init__(self):
        self.children = {}  # pid -> name, for the ones we respawn
        self.action = None
        self.sshd_starts = []
        self.next_trim = time.monotonic() + TRIM_EVERY
        self.engine_deadline = None  # while the engine started at boot has no socket yet
        self.engine_version = ""  # the version of the engine started at boot
        self.preload = None  # (pid, the pipe's write end) of the engine started ahead (preload_engine)
        self.engine_exited = None  # the exit status of the engine started ahead, once it exited
        self.reclaim = IdleReclaim(0)

    def spawn(self, name, argv):
        pid = spawn(argv)
        self.children[pid] = name
        return pid

    def start_sshd(self):
        now = time.monotonic()
        self.sshd_starts = [t for t in self.sshd_starts if now - t < 60] + [now]
        if len(self.sshd_starts) > 5:
            log("sshd keeps exiting; not restarting it")
            return
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.spawn("sshd", ["/usr/sbin/sshd", "-D", "-e"])

    def start_sshd_unreachable(self):
        """sshd first, with its keys: it needs neither the data disk, the sysctls, the hostname
        nor the network to start, and its start (its libraries, its host key: tenths of a second
        under emulation) then overlaps the data disk's check and mount. The host reaches it
        once eth0 is up, after the data disk (boot): `up`, which may poll sshd's banner beside
        the readiness port, must not find it before the disk is mounted."""
        run(["modprobe", "-a", "-q"] + SSHD_MODULES)
        install_keys()
        self.start_sshd()
        log("sshd started")

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            name = self.children.pop(pid, None)
            if name == "engine":  # the engine started ahead, a child of ours
                self.engine_exited = status
            if name == "sshd" and self.action is None:
                log("sshd exited (%s); restarting" % status)
                self.start_sshd()

    def trim(self):
        """fstrim the data disk every TRIM_EVERY s, in the background (`down` trims it too)."""
        if time.monotonic() >= self.next_trim and os.path.ismount(DATA_MOUNT):
            self.next_trim = time.monotonic() + TRIM_EVERY
            spawn(["fstrim", DATA_MOUNT])

    def on_signal(self, signum, frame):
        self.action = "reboot" if signum in (signal.SIGTERM, signal.SIGINT) else "poweroff"

    def boot(self):
        os.environ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        mount("proc", "/proc", "proc")
        mount("sysfs", "/sys", "sysfs")
        if not os.path.ismount("/dev"):
            mount("dev", "/dev", "devtmpfs")
        log("started (python up at %.3f, imports done at %.3f)" % (PYTHON_UP, IMPORTED))
        mount("devpts", "/dev/pts", "devpts", "gid=5,mode=620,ptmxmode=666")
        mount("shm", "/dev/shm", "tmpfs", "mode=1777")
        mount("run", "/run", "tmpfs", "mode=755", MS_NOSUID | MS_NODEV)
        # favordynmods (Linux 6.0+): moving a process between cgroups (every docker exec) then
        # skips an RCU grace period, 5-15 ms; forks pay a little more. This VM only runs containers.
        if not mount("cgroup2", "/sys/fs/cgroup", "cgroup2", "nsdelegate,favordynmods"):
            mount("cgroup2", "/sys/fs/cgroup", "cgroup2", "nsdelegate")
        late = spawn(["modprobe", "-a", "-q"] + LATE_MODULES, setsid=False)
        self.start_sshd_unreachable()
        self.preload_engine()
        settings = load_settings()
        set_hostname(settings.get("hostname", "hostbridge"))
        run(["modprobe", "-a", "-q"] + MODULES)
        log("modules loaded")
        failure = prepare_data_disk()
        if failure:
            log("%s data disk: %s" % (ERROR_MARK, failure))
            tell_host("error %s data disk: %s" % (ERROR_MARK, failure))
        else:
            log("mounted the data disk")
            # Python compiles a module once per data disk (the image's own: once per image),
            # not once per boot.
            os.makedirs(PYCACHE, exist_ok=True)
            why = link_image_pycache()
            if why:
                log("cannot link the image's compiled modules: %s" % why)
            os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix = PYCACHE
        network()
        apply_sysctls()
        self.reclaim = memory_settings(settings)
        # The engine starts before the shares are mounted: it needs none of them.
        self.spawn("modprobe", ["modprobe", "-a", "-q"] + ENGINE_MODULES)
        if not failure:
            self.start_engine()
        self.end_preload()  # not used (no data disk, no engine): it exits
        try:
            os.waitpid(late, 0)
        except ChildProcessError:
            pass
        mount_shares(settings.get("shares", []))
        if not wait_listening(22, 10):
            log("sshd does not listen on port 22 after 10 s")
        tell_host("ready init")
        log("boot done")

    def start_engine(self):
        """Install the engine the host offers (when it differs from the installed one) and its
        settings, then start the engine; the host hears "engine refused WHY" for an offer that
        is not installed, "engine absent" when there is none to start."""
        offer = engine_offer()
        if offer is not None:
            why = install_engine(offer)
            if why:
                log("engine from the host refused: %s" % why)
                tell_host("engine refused %s" % why)
            place_engine_settings(offer)
        if os.path.exists(ENGINE) and os.path.exists(ENGINE_CONTROL):
            if not self.go_preloaded():
                self.spawn("engine-control", [ENGINE_CONTROL, "start"])
            self.engine_deadline = time.monotonic() + ENGINE_WAIT
            self.engine_version = engine_version()
        else:
            tell_host("engine absent")

    def preload_engine(self):
        """Start the engine's Python ahead, before the data disk is there (ENGINE_CONTROL's
        `preload`): it imports the standard library modules every start imports while the disk
        is formatted or checked and the engine installed, then waits for ``go_preloaded``."""
        if not os.path.exists(ENGINE_CONTROL):
            return
        rfd, wfd = os.pipe()
        try:
            pid = spawn([ENGINE_CONTROL, "preload"], stdin=rfd)
        except OSError as e:
            os.close(wfd)
            log("cannot start the engine ahead: %s" % e)
            return
        finally:
            os.close(rfd)
        os.set_inheritable(wfd, False)
        self.preload = (pid, wfd)

    def go_preloaded(self):
        """Tell the engine started ahead to run; False when there is none (or it died meanwhile)."""
        if self.preload is None:
            return False
        pid, wfd = self.preload
        self.preload = None
        try:
            os.write(wfd, b"go\n")
        except OSError:  # it exited (EPIPE): started the usual way instead
            return False
        finally:
            os.close(wfd)
        self.children[pid] = "engine"
        return True

    def end_preload(self):
        """The engine started ahead is not wanted (no data disk, no engine): EOF ends it."""
        if self.preload is not None:
            os.close(self.preload[1])
            self.preload = None

    def watch_engine(self):
        """Tell the host once the engine started at boot has its socket ("ready engine
        VERSION"), or that it died first ("engine failed"). Returns the select timeout until
        the next look (None: nothing to watch)."""
        if self.engine_deadline is None:
            return None
        if os.path.exists(ENGINE_SOCKET):
            tell_host("ready engine %s" % self.engine_version)
            log("engine ready")
        elif self.engine_died():
            tell_host("engine failed: see %s/engine.log" % ENGINE_ROOT)
            log("the engine exited before its socket was there")
        elif time.monotonic() < self.engine_deadline:
            return 0.1
        self.engine_deadline = None
        return None

    def engine_died(self):
        """True when the engine started ahead exited, or the engine wrote its pidfile and that
        process is gone."""
        if self.engine_exited is not None:
            return True
        try:
            with open(ENGINE_PIDFILE) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            pass
        return False

    def run(self):
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGIO):
            signal.signal(sig, self.on_signal if sig not in (signal.SIGCHLD, signal.SIGIO) else lambda s, f: None)
        os.set_blocking(rfd, False)
        self.boot()
        buttons = power_button_fds()
        clock, next_clock = ClockWatch(), 0.0
        while self.action is None:
            waits = [w for w in (self.watch_engine(), self.reclaim.poll()) if w is not None]
            if time.monotonic() >= next_clock:
                next_clock = time.monotonic() + clock.tick()
                PORT.hup = False  # looked at again each tick, should a SIGIO have been missed
            port = PORT.readable()
            wait = min(min(waits, default=30), max(0.0, next_clock - time.monotonic()))
            try:
                ready, _, _ = select.select([rfd] + buttons + ([port] if port is not None else []), [], [], wait)
            except InterruptedError:
                ready = []
            for fd in ready:
                if fd == port:
                    for line in filter(None, PORT.read_lines()):
                        reply = run_command(line)
                        PORT.write(reply, wait=REPLY_WAIT)
                        if reply == "ok clock":  # set right by the host: the RTC's phase can be learnt
                            clock.calibrate()
                            next_clock = time.monotonic()
                    continue
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if fd == rfd and signal.SIGIO in data:
                    PORT.hup = False  # the host connected (or wrote)
                if fd != rfd and power_pressed(data):
                    log("power button pressed")
                    self.action = "poweroff"
            self.reap()
            self.trim()
        self.shutdown(self.action)

    def shutdown(self, action):
        """Stop every process, then make the data disk clean and power off (or reboot).

        The engine, the containers and sshd all get SIGTERM at once (a container its stop
        signal, as `docker stop` gives it) and STOP_GRACE seconds to exit: the engine's own
        clean-up (its bridges and firewall rules) dies with the VM anyway, and what it keeps
        on the data disk it writes atomically. Then SIGKILL, sync, unmount, power off."""
        log("shutting down (%s)" % action)
        os.kill(-1, signal.SIGTERM)
        if not reap_all(STOP_GRACE):
            log("processes still running after %.1f s: killing them" % STOP_GRACE)
        os.kill(-1, signal.SIGKILL)
        reap_all(2)  # so that nothing holds the data disk when it is unmounted
        os.sync()
        with open("/proc/mounts") as f:
            targets = [line.split()[1] for line in f if line.split()[2] in ("9p", "ext4")]
        for target in reversed(targets):  # the binds first, then the data disk itself
            if target != "/":
                LIBC.umount2(target.encode(), MNT_DETACH)
        if os.path.ismount(DATA_MOUNT):  # still busy: at least make it consistent
            LIBC.mount(DATA_DISK.encode(), DATA_MOUNT.encode(), None, MS_REMOUNT | MS_RDONLY, None)
        os.sync()
        log("data disk %s" % ("read-only" if os.path.ismount(DATA_MOUNT) else "unmounted"))
        LIBC.reboot(RB_POWER_OFF if action == "poweroff" else RB_AUTOBOOT)
        log("reboot(2) failed: %s" % os.strerror(ctypes.get_errno()))


if __name__ == "__main__":
    if os.getpid() != 1:
        sys.exit("hostbridge-init: must run as PID 1")
    Init().run()
