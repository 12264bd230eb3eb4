#!/usr/bin/python3 -IS
"""hostbridge's guest init (PID 1 of the QEMU guest): boot to sshd in as few steps as possible.

boot2docker's lesson is that boot time is the product: instead of systemd this does only what
the engine needs. The system runs from RAM (the initramfs itself, bind-mounted over / by its /init).
Mount the kernel filesystems and cgroup2, load a few modules, prepare the persistent data disk
(formatted on its first boot only; checked with e2fsck -p after that; never reformatted),
read the machine's settings from QEMU's fw_cfg (authorized key, SSH host key, hostname,
shares), bring up loopback and eth0 with QEMU user-net's fixed addresses, start sshd, mount
the 9p shares at their host paths, start the engine when deployed, then reap zombies and wait
for the power button (QMP system_powerdown), SIGUSR2 (poweroff) or SIGTERM (reboot).

A failure the host must report (a data disk it cannot use) is one console line starting with
ERROR_MARK; the host's `up` watches the serial log for it.

Standard library only, Python >= 3.9. Installed at /usr/sbin/hostbridge-init by
hostbridge/machines/guestimage/assemble.py.
"""

from __future__ import annotations

import time  # first: when Python itself was up, for the boot's timeline in the console

PYTHON_UP = time.monotonic()

import ctypes  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402

# No subprocess, glob or re: each import costs tenths of a second under emulation, on the
# critical path to sshd. Children are started with posix_spawn.

FW_CFG = "/sys/firmware/qemu_fw_cfg/by_name/opt/hostbridge"
# Loaded before the data disk and the network (the initramfs' /init starts loading them already).
MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "virtio_net", "qemu_fw_cfg", "virtio_console"]
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
# QEMU user-mode networking (slirp) defaults; they only exist inside the VM.
GUEST_ADDR, GATEWAY, DNS = "10.0.2.15/24", "10.0.2.2", "10.0.2.3"
EV_KEY, KEY_POWER = 1, 116
INPUT_EVENT = struct.Struct("llHHi")
RB_POWER_OFF, RB_AUTOBOOT = 0x4321FEDC, 0x01234567
MS_NOSUID, MS_NODEV, MS_RDONLY, MS_REMOUNT, MNT_DETACH = 2, 4, 1, 32, 2
# Memory handed back to the host: the balloon reports free pages from blocks of 2^ORDER pages
# (the kernel's default, 9: 2 MiB, leaves the scattered pages a stopped container frees in
# the VM); an idle guest drops its clean page cache and slab once, so that they become free
# pages reported too. Both can be set in config.json's "memory" ({"reporting_order",
# "idle_reclaim": seconds, 0: never}).
REPORTING_ORDER = 5  # 128 KiB
REPORTING_ORDER_PARAM = "/sys/module/page_reporting/parameters/page_reporting_order"
IDLE_RECLAIM = 30  # s of an idle guest before its caches are dropped
IDLE_SAMPLE = 10  # s between looks at the guest's CPU time
IDLE_BUSY = 0.05  # CPU seconds per second below which the guest counts as idle
RECLAIM_MIN = 16 << 20  # bytes of droppable cache below which dropping is not worth it
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
    base = "/sys/class/virtio-ports"
    try:
        ports = os.listdir(base)
    except OSError:
        return False
    for port in ports:
        try:
            with open(os.path.join(base, port, "name")) as f:
                if f.read().strip() != READY_PORT:
                    continue
            fd = os.open("/dev/" + port, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            continue
        try:
            os.write(fd, (event.replace("\n", " ") + "\n").encode(errors="replace"))
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
    return False


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


def spawn(argv, setsid=True):
    """Start argv (PATH searched) with the init's stdio (the console); return its pid."""
    return os.posix_spawnp(argv[0], argv, os.environ, setsid=setsid)


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


def load_settings():
    settings = {}
    raw = fw_cfg("config.json")
    if raw:
        try:
            settings = json.loads(raw.decode())
        except ValueError:
            log("ignoring an unreadable config.json")
    keys = fw_cfg("authorized_keys")
    if keys:
        write_file("/root/.ssh/authorized_keys", keys, 0o600)
        os.chmod("/root/.ssh", 0o700)
    host_key = fw_cfg("ssh_host_ed25519_key")
    if host_key:
        write_file("/etc/ssh/ssh_host_ed25519_key", host_key, 0o600)
    return settings


def network(hostname):
    with open("/proc/sys/kernel/hostname", "w") as f:
        f.write(hostname)
    try:  # so that the guest resolves its own name without asking DNS
        with open("/etc/hosts", "w") as f:
            f.write("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n" % hostname)
    except OSError:
        pass
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


class IdleReclaim:
    """Drops the guest's clean caches once it has been idle ``after`` seconds (``poll`` from the
    main loop); again only after it was busy in between."""

    def __init__(self, after):
        self.after = after
        self.busy, self.at = cpu_seconds(read_text("/proc/stat") or "cpu 0"), time.monotonic()
        self.idle_since, self.dropped = self.at, False

    def poll(self):
        """Look at the CPU time used since the last look; drop the caches when due. Returns the
        seconds until the next look (None: never)."""
        if not self.after:
            return None
        busy, now = cpu_seconds(read_text("/proc/stat") or "cpu 0"), time.monotonic()
        if now - self.at < IDLE_SAMPLE / 2:
            return IDLE_SAMPLE
        if (busy - self.busy) / (now - self.at) > IDLE_BUSY:
            self.idle_since, self.dropped = now, False
        elif not self.dropped and now - self.idle_since >= self.after:
            self.dropped = True
            if droppable_bytes(read_text("/proc/meminfo")) >= RECLAIM_MIN:
                try:
                    with open("/proc/sys/vm/drop_caches", "w") as f:
                        f.write("3")
                    log("idle for %d s: caches dropped" % (now - self.idle_since))
                except OSError as e:
                    log("dropping the caches failed: %s" % e)
        self.busy, self.at = busy, now
        return IDLE_SAMPLE


def memory_settings(settings):
    """Apply config.json's "memory" settings (or the defaults); returns the IdleReclaim to poll."""
    memory = settings.get("memory") or {}
    try:
        with open(REPORTING_ORDER_PARAM, "w") as f:
            f.write(str(int(memory.get("reporting_order", REPORTING_ORDER))))
    except (OSError, ValueError) as e:
        log("cannot set the free page reporting order: %s" % e)
    return IdleReclaim(int(memory.get("idle_reclaim", IDLE_RECLAIM)))


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


class Init:
    def __init__(self):
        self.children = {}  # pid -> name, for the ones we respawn
        self.action = None
        self.sshd_starts = []
        self.next_trim = time.monotonic() + TRIM_EVERY
        self.engine_deadline = None  # while the engine started at boot has no socket yet
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

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            name = self.children.pop(pid, None)
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
        run(["modprobe", "-a", "-q"] + MODULES)
        log("modules loaded")
        failure = prepare_data_disk()
        if failure:
            log("%s data disk: %s" % (ERROR_MARK, failure))
            tell_host("error %s data disk: %s" % (ERROR_MARK, failure))
        else:
            # Python compiles a module once per data disk, not once per boot.
            os.makedirs(PYCACHE, exist_ok=True)
            os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix = PYCACHE
        settings = load_settings()
        network(settings.get("hostname", "hostbridge"))
        apply_sysctls()
        self.reclaim = memory_settings(settings)
        self.start_sshd()
        log("sshd started")
        # The engine (on a warm boot) starts before the shares are mounted: it does not need them.
        self.spawn("modprobe", ["modprobe", "-a", "-q"] + ENGINE_MODULES)
        if not failure and os.path.exists(ENGINE) and os.path.exists(ENGINE_CONTROL):
            self.spawn("engine", [ENGINE_CONTROL, "start"])
            self.engine_deadline = time.monotonic() + ENGINE_WAIT
        try:
            os.waitpid(late, 0)
        except ChildProcessError:
            pass
        mount_shares(settings.get("shares", []))
        if not wait_listening(22, 10):
            log("sshd does not listen on port 22 after 10 s")
        tell_host("ready init")
        log("boot done")

    def watch_engine(self):
        """Tell the host once the engine started at boot has its socket. Returns the select
        timeout until the next look (None: nothing to watch)."""
        if self.engine_deadline is None:
            return None
        if os.path.exists(ENGINE_SOCKET):
            tell_host("ready engine")
            log("engine ready")
        elif time.monotonic() < self.engine_deadline:
            return 0.1
        self.engine_deadline = None
        return None

    def run(self):
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, self.on_signal if sig != signal.SIGCHLD else lambda s, f: None)
        os.set_blocking(rfd, False)
        self.boot()
        buttons = power_button_fds()
        while self.action is None:
            waits = [w for w in (self.watch_engine(), self.reclaim.poll()) if w is not None]
            try:
                ready, _, _ = select.select([rfd] + buttons, [], [], min(waits, default=30))
            except InterruptedError:
                ready = []
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
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
