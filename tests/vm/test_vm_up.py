"""`hostbridge up --driver qemu` end to end: the real guest image under QEMU (TCG here), the
engine deployed into it, the tunnel agent, and the stock `docker` CLI through `hostbridge env`.

One machine is booted for the module and goes through its life: cold up → containers, a host
folder, a published port → up again (fast path) → the link drops, the agent reconnects and
resyncs the guest clock → SIGKILL → status/up recover → down → warm up on a taken SSH port →
destroy. A second machine runs beside it (after a first `up` killed mid-way is recovered), and
short boots check the faults (SSH timeout, Ctrl-C). All traffic goes to 127.0.0.1.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support.hbhome import REPO, HostbridgeHome, shared_image_cache

pytestmark = [pytest.mark.vm, pytest.mark.skipif(not __import__("shutil").which("docker"),
                                                 reason="needs the stock docker CLI (Debian's docker.io)")]
BOOT = 600  # seconds a cold or warm `up` may take under TCG on a busy 2-core host
NAME = "vmt"


class Host(HostbridgeHome):
    """hostbridge and docker with HOSTBRIDGE_HOME in a temp dir and the shared image cache."""

    def docker_env(self, machine=NAME):
        """The environment `eval "$(hostbridge env MACHINE)"` gives, read by a real shell."""
        script = self.hb("env", "--shell", "bash", machine, check=True).stdout
        out = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                             capture_output=True, text=True, check=True).stdout
        assert out.startswith("unix://")
        return dict(self.env, DOCKER_HOST=out)

    def docker(self, *args, machine=NAME, timeout=180):
        return subprocess.run(["docker"] + list(args), capture_output=True, text=True,
                              env=self.docker_env(machine), timeout=timeout)

    def record(self, machine=NAME):
        with open(os.path.join(self.home, "state", "machines", machine, "machine.json")) as f:
            return json.load(f)

    def machine_dir(self, machine=NAME):
        return super().machine_dir(machine)

    def qemu_pid(self, machine=NAME):
        with open(os.path.join(self.machine_dir(machine), "qemu.pid")) as f:
            return int(f.read())


def _alive(pid):
    """Whether ``pid`` runs (a zombie does not: daemons are reaped by whoever adopted them)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


@pytest.fixture(scope="module")
def host(tmp_path_factory, busybox_rootfs_tar):
    h = Host(str(tmp_path_factory.mktemp("vmup")), shared_image_cache())
    h.share = os.path.join(h.home, "share dir")
    os.makedirs(h.share)
    h.busybox = busybox_rootfs_tar
    yield h
    for name in ("vmt", "vmt2", "vmt-int", "vmt-slow"):
        if os.path.exists(os.path.join(h.machine_dir(name), "machine.json")):
            h.hb("destroy", "-f", "--machine", name, timeout=120)


def test_cold_up_end_to_end(host):
    r = host.hb("up", "--machine", NAME, "--driver", "qemu", "--cpus", "1", "--memory", "1024", "--disk", "4G",
                "--share", host.share, timeout=BOOT)
    assert r.returncode == 0, r.stderr
    for stage in ("image", "create", "boot", "ssh", "engine", "tunnel", "ping"):
        assert "[%s] " % stage in r.stderr  # a progress line per stage
    assert "[deploy]" not in r.stderr  # the engine came with the boot (tests/vm/test_vm_engine_offer.py)
    assert "Machine vmt is running (qemu" in r.stdout
    assert 'eval "$(hostbridge env vmt)"' in r.stdout
    assert "docker context use hostbridge-vmt\n" in r.stdout
    ver = subprocess.run(["docker", "--context", "hostbridge-vmt", "version", "--format", "{{.Server.Os}}"],
                         capture_output=True, text=True, env=host.env, timeout=60)
    assert (ver.returncode, ver.stdout) == (0, "linux\n"), ver.stderr
    st = host.hb("status", "--machine", NAME)
    assert st.returncode == 0 and "state:    running" in st.stdout and "tunnel:   connected" in st.stdout


def test_stock_docker_cli_runs_a_container_through_the_tunnel(host):
    assert host.docker("import", host.busybox, "busybox:latest").returncode == 0
    r = host.docker("run", "--rm", "busybox", "echo", "hi from the vm")
    assert (r.returncode, r.stdout) == (0, "hi from the vm\n"), r.stderr
    r = host.docker("version", "--format", "{{.Server.Os}} {{.Server.APIVersion}}")
    assert r.stdout.strip() == "linux 1.44"


def test_hostbridge_cli_reaches_the_vm_by_machine_name(host):
    r = host.hb("--machine", NAME, "run", "--rm", "busybox", "hostname")
    assert r.returncode == 0 and len(r.stdout.strip()) == 12, r.stderr
    assert host.hb("-m", NAME, "ps", "-a", "-q").stdout == ""


def test_the_engine_runs_as_root_in_the_guest(host):
    r = host.hb("ssh", "--machine", NAME, "--", "ps", "-o", "user=,args=", "-p", "$(cat /run/hostbridge/engine.pid)")
    assert r.returncode == 0, r.stderr
    user, args = r.stdout.split(None, 1)
    assert user == "root" and "engine" in args and "daemon" in args


def test_a_host_folder_mounted_with_v_is_visible_in_the_container(host):
    with open(os.path.join(host.share, "from-host.txt"), "w") as f:
        f.write("written on the host\n")
    r = host.docker("run", "--rm", "-v", "%s:/data" % host.share, "busybox", "sh", "-c",
                    "cat /data/from-host.txt && echo written in the container > /data/from-container.txt")
    assert (r.returncode, r.stdout) == (0, "written on the host\n"), r.stderr
    with open(os.path.join(host.share, "from-container.txt")) as f:
        assert f.read() == "written in the container\n"


def test_upgrade_swaps_the_engine_through_the_guest_init_script_and_keeps_images(host):
    before = host.hb("ssh", "--machine", NAME, "--", "cat", "/run/hostbridge/engine.pid", check=True).stdout.strip()
    r = host.hb("upgrade", "--machine", NAME, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("Machine vmt: engine "), r.stderr
    after = host.hb("ssh", "--machine", NAME, "--", "cat /run/hostbridge/engine.pid; readlink "
                    "/usr/local/lib/hostbridge/engine.pyz", check=True).stdout.split()
    assert after[0] != before and after[1].startswith("engine-") and after[1].endswith(".pyz")
    assert host.docker("images", "-q").stdout.strip() != ""


def test_a_published_port_answers_on_host_loopback(host):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = host.docker("run", "-d", "--name", "web", "-p", "%d:8080" % port, "busybox", "sh", "-c",
                    "echo hello-from-the-vm > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    assert r.returncode == 0, r.stderr
    try:
        ports = host.docker("inspect", "web", "--format", "{{json .NetworkSettings.Ports}}").stdout.strip()
        assert ports not in ("{}", "null", ""), "the engine reports no published ports"
        body, deadline = b"", time.monotonic() + 30
        while not body.endswith(b"hello-from-the-vm\n") and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    c.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                    body = b"".join(iter(lambda: c.recv(4096), b""))
            except OSError:
                time.sleep(0.1)
        assert body.endswith(b"hello-from-the-vm\n")
    finally:
        host.docker("rm", "-f", "web")


def test_up_on_a_running_machine_only_checks_it(host):
    r = host.hb("up", "--machine", NAME)
    assert r.returncode == 0 and "Machine vmt is already running." in r.stdout
    assert "[boot]" not in r.stderr and "[deploy]" not in r.stderr


def _guest_drift(host):
    before = time.time()
    out = host.hb("ssh", "--machine", NAME, "--", "date", "+%s.%N", check=True).stdout
    return float(out) - (before + time.time()) / 2


def test_the_agent_resyncs_the_guest_clock_when_it_reconnects(host):
    agent = json.load(open(os.path.join(host.machine_dir(), "agent.status.json")))
    # As after a laptop slept. The guest init sets its clock back to the RTC's within a second
    # (ClockWatch); the agent's check when it reconnects must then leave it alone, not move it
    # by the 300 s it may have read just before.
    host.hb("ssh", "--machine", NAME, "--", "date -u -s @$(( $(date +%s) - 300 )) >/dev/null", check=True)
    # Drop every SSH session in the guest (the agent's too), as a sleeping host's link drops.
    host.hb("ssh", "--machine", NAME, "--", "pkill -f '^sshd: root'")  # not the listener ("sshd: /usr/sbin/…")
    deadline = time.monotonic() + 60
    status = agent
    while time.monotonic() < deadline:
        status = json.load(open(os.path.join(host.machine_dir(), "agent.status.json")))
        if status.get("reconnects", 0) > agent.get("reconnects", 0) and status.get("state") == "connected":
            break
        time.sleep(0.2)
    assert status.get("reconnects", 0) > agent.get("reconnects", 0)
    assert abs(_guest_drift(host)) < 3
    assert host.docker("ps").returncode == 0


def test_a_vm_killed_with_sigkill_reads_stopped_and_up_recovers(host):
    pid = host.qemu_pid()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    st = host.hb("status", "--machine", NAME)
    assert st.returncode == 1 and "state:    stopped" in st.stdout and "engine:   not answering" in st.stdout
    assert " stopped " in host.hb("ls").stdout
    ps = host.hb("-m", NAME, "ps")
    assert ps.returncode == 1 and "machine vmt is stopped (start it with `hostbridge up --machine vmt`)" in ps.stderr
    r = host.hb("up", "--machine", NAME, timeout=BOOT)
    assert r.returncode == 0, r.stderr
    assert "[boot]" in r.stderr
    images = host.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert images.stdout.split() == ["busybox:latest"]  # the disk survived


def test_down_then_warm_up_on_a_taken_ssh_port(host):
    r = host.hb("down", "--shutdown", "--machine", NAME, timeout=180)
    assert (r.returncode, r.stdout) == (0, "Stopped machine vmt.\n"), r.stderr
    assert host.hb("status", "--machine", NAME).returncode == 1
    assert host.hb("down", "--machine", NAME).stdout == "Machine vmt is not running.\n"
    old_port = host.record()["ssh"]["port"]
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", old_port))
    taken.listen(1)
    try:
        r = host.hb("up", "--machine", NAME, timeout=BOOT)
    finally:
        taken.close()
    assert r.returncode == 0, r.stderr
    assert "[create]" in r.stderr and "[image]" not in r.stderr  # warm: nothing to build
    assert host.record()["ssh"]["port"] != old_port
    r = host.docker("run", "--rm", "busybox", "cat", "/proc/version")
    assert r.returncode == 0 and r.stdout.startswith("Linux version"), r.stderr


def test_down_stops_everything_and_leaves_the_data_disk_clean(host):
    """A fast `down --shutdown` is still an orderly one: what a container wrote in a volume is there after
    the next boot, the data disk was unmounted before the power-off and e2fsck finds it clean."""
    r = host.docker("run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo kept > /data/f && sync")
    assert r.returncode == 0, r.stderr
    r = host.docker("run", "-d", "--name", "sleeper", "busybox", "sleep", "1000")  # ignores SIGTERM: pid 1
    assert r.returncode == 0, r.stderr
    serial = os.path.join(host.machine_dir(), "serial.log")
    t0 = time.monotonic()
    r = host.hb("down", "--shutdown", "--machine", NAME, timeout=180)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    with open(serial, errors="replace") as f:
        console = f.read()
    assert "shutting down (poweroff)" in console and "data disk unmounted" in console, console[-2000:]
    assert took < 30  # the init gives processes 1.5 s, not the engine 10 s and the rest 3 s
    r = host.hb("up", "--machine", NAME, timeout=BOOT)
    assert r.returncode == 0, r.stderr
    with open(serial, errors="replace") as f:
        assert "data disk /dev/vda clean" in f.read()  # the superblock says so: no journal to replay
    r = host.docker("run", "--rm", "-v", "keep:/data", "busybox", "cat", "/data/f")
    assert (r.returncode, r.stdout) == (0, "kept\n"), r.stderr
    assert host.docker("rm", "-f", "sleeper").returncode == 0


def test_a_second_machine_runs_beside_the_first_after_its_first_up_was_killed(host):
    argv = ["up", "--machine", "vmt2", "--driver", "qemu", "--cpus", "1", "--memory", "512", "--disk", "2G"]
    proc = subprocess.Popen([sys.executable, "-m", "hostbridge.cli"] + argv, env=host.env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidfile = os.path.join(host.machine_dir("vmt2"), "qemu.pid")
    deadline = time.monotonic() + 120
    while not os.path.exists(pidfile) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()  # no cleanup can run: the record keeps saying "starting"
    proc.wait()
    assert host.record("vmt2")["state"] == "starting"
    assert "half-started" in [ln for ln in host.hb("ls").stdout.splitlines() if ln.startswith("vmt2")][0]
    r = host.hb(*argv, timeout=BOOT)
    assert r.returncode == 0, r.stderr
    assert "[recover] note: a previous `up` of vmt2 did not finish" in r.stderr
    first, second = host.docker_env(NAME)["DOCKER_HOST"], host.docker_env("vmt2")["DOCKER_HOST"]
    assert first != second
    assert host.docker("images", "-q", machine="vmt2").stdout == ""  # its own engine, its own disk
    assert host.docker("images", "-q", machine=NAME).stdout.strip() != ""
    lines = host.hb("ls").stdout.splitlines()
    rows = [ln.split()[:4] for ln in lines[1:]]
    assert rows[0][:2] == ["default", "native"]  # ls lists the native machine too, on Linux
    assert rows[1:] == [["vmt", "vm", "qemu", "running"], ["vmt2", "vm", "qemu", "running"]]
    assert host.hb("destroy", "-f", "--machine", "vmt2", timeout=120).returncode == 0


def test_ssh_never_coming_up_is_an_error_with_the_serial_log(host):
    r = host.hb("up", "--machine", "vmt-slow", "--driver", "qemu", "--cpus", "1", "--memory", "512", "--disk", "2G",
                "--timeout", "2", timeout=BOOT)
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("Error: machine vmt-slow: `up` failed at the ssh stage: no SSH after 2 s: ")
    assert "[    " in err  # the kernel's own lines from the serial console
    assert "hostbridge logs --serial --machine vmt-slow" in err
    # Stopped, not half-running; kept so that its logs can be read.
    assert " stopped " in [ln for ln in host.hb("ls").stdout.splitlines() if ln.startswith("vmt-slow")][0]
    assert not os.path.exists(os.path.join(host.machine_dir("vmt-slow"), "qemu.pid"))
    assert "Linux version" in host.hb("logs", "--serial", "--machine", "vmt-slow", "-n", "1000").stdout
    assert host.hb("destroy", "-f", "--machine", "vmt-slow").returncode == 0


def test_ctrl_c_during_up_leaves_nothing_behind(host):
    from tests.support.signals import sigint_default

    proc = subprocess.Popen([sys.executable, "-m", "hostbridge.cli", "up", "--machine", "vmt-int", "--driver", "qemu",
                             "--cpus", "1", "--memory", "512", "--disk", "2G"], env=host.env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    pidfile = os.path.join(host.machine_dir("vmt-int"), "qemu.pid")
    deadline = time.monotonic() + 120
    while not os.path.exists(pidfile) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    with open(pidfile) as f:
        qemu = int(f.read())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Error: machine vmt-int: `up` interrupted at the " in err
    assert not _alive(qemu)
    assert not os.path.exists(host.machine_dir("vmt-int"))


def test_destroy_removes_every_file_of_the_machine(host):
    rec = host.record()
    runtime = os.path.dirname(rec["endpoint_url"][len("unix://"):])
    qemu = host.qemu_pid()
    agent = json.load(open(os.path.join(host.machine_dir(), "agent.status.json")))["pid"]
    r = host.hb("destroy", "--machine", NAME, "-f", timeout=120)
    assert (r.returncode, r.stdout) == (0, "Destroyed machine vmt.\nRemoved docker context hostbridge-vmt.\n"), r.stderr
    ctx = subprocess.run(["docker", "context", "ls", "-q"], capture_output=True, text=True, env=host.env)
    assert ctx.returncode == 0 and "hostbridge-vmt" not in ctx.stdout.split()
    assert not os.path.exists(host.machine_dir()) and not os.path.exists(runtime)
    assert not _alive(qemu) and not _alive(agent)
    assert os.listdir(os.path.join(host.home, "state", "machines")) == []
    assert "vmt" not in host.hb("ls").stdout
