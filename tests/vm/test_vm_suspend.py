"""Suspend and resume of a qemu machine end to end (TCG here): `down` saves the VM, `up` resumes
it with its container still running, its share mounted again and its clock right; a saved
state that is corrupt or truncated is refused with a note and the VM boots; QEMU killed while
saving leaves a machine that boots with its data; two `up` at once make one VM; `down
--shutdown` is a real shutdown. All traffic goes to 127.0.0.1.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.support.hbhome import REPO, HostbridgeHome, shared_image_cache

pytestmark = [pytest.mark.vm, pytest.mark.skipif(not __import__("shutil").which("docker"),
                                                 reason="needs the stock docker CLI (Debian's docker.io)")]
BOOT = 600  # seconds an `up` may take under TCG on a busy 2-core host
NAME = "vms-%d" % os.getpid()


class Host(HostbridgeHome):
    def docker(self, *args, timeout=180):
        return subprocess.run(["docker"] + list(args), capture_output=True, text=True, env=self.docker_env(),
                              timeout=timeout)

    def docker_env(self):
        script = self.hb("env", "--shell", "bash", NAME, check=True).stdout
        out = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                             capture_output=True, text=True, check=True).stdout
        return dict(self.env, DOCKER_HOST=out)

    def ssh(self, command, timeout=60):
        return self.hb("ssh", "--machine", NAME, "--", command, timeout=timeout)

    def path(self, name):
        return os.path.join(self.machine_dir(NAME), name)

    def qemu_pid(self):
        with open(self.path("qemu.pid")) as f:
            return int(f.read())

    def drift(self):
        """Guest clock minus host clock (the host's taken at the middle of the SSH exec)."""
        from hostbridge.machines import clock, vmmode

        os.environ["HOSTBRIDGE_HOME"] = self.home
        try:
            with vmmode.connection(vmmode.load_vm(NAME)) as conn:
                def run(cmd):
                    rc, out, err = conn.run(cmd, timeout=30)
                    return rc, out.decode(), err.decode()
                return clock.guest_drift(run)[0]
        finally:
            os.environ.pop("HOSTBRIDGE_HOME", None)


@pytest.fixture(scope="module")
def host(tmp_path_factory, busybox_rootfs_tar):
    h = Host(str(tmp_path_factory.mktemp("vmsusp")), shared_image_cache())
    h.share = os.path.join(h.home, "share dir")
    os.makedirs(h.share)
    r = h.hb("up", "--machine", NAME, "--driver", "qemu", "--cpus", "1", "--memory", "1024", "--disk", "4G",
             "--share", h.share, timeout=BOOT)
    assert r.returncode == 0, r.stderr
    assert h.docker("import", busybox_rootfs_tar, "busybox:latest").returncode == 0
    yield h
    h.hb("destroy", "-f", "--machine", NAME, timeout=120)


def _up(host):
    r = host.hb("-v", "up", "--machine", NAME, timeout=BOOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_resume_keeps_a_running_container_the_share_and_the_clock(host):
    r = host.docker("run", "-d", "--name", "sleeper", "busybox", "sleep", "100000")
    assert r.returncode == 0, r.stderr
    started = host.docker("inspect", "-f", "{{.State.StartedAt}}", "sleeper").stdout.strip()
    assert host.ssh("echo kept > /var/lib/hostbridge/suspend-marker && sync").returncode == 0
    r = host.hb("down", "--machine", NAME, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Suspended machine" in r.stdout
    assert os.path.getsize(host.path("saved-state")) > 0
    assert not os.path.exists(host.path("qemu.pid"))
    time.sleep(5)  # the guest clock stands still meanwhile: 5 s behind unless `up` sets it
    r = _up(host)
    assert "resume" in r.stdout and "thrown away" not in r.stdout + r.stderr
    stages = r.stdout.split("Stages:")[-1].splitlines()[0]
    assert "ssh" not in stages and "deploy" not in stages, stages  # no SSH of `up`'s own: the command channel
    assert not os.path.exists(host.path("saved-state"))  # a state is loaded once
    ps = host.docker("ps", "--format", "{{.Names}}")
    assert "sleeper" in ps.stdout.split()
    assert host.docker("inspect", "-f", "{{.State.StartedAt}}", "sleeper").stdout.strip() == started
    assert abs(host.drift()) < 1.0
    with open(os.path.join(host.share, "from-host"), "w") as f:
        f.write("shared")
    assert host.ssh("cat '%s/from-host'" % host.share).stdout == "shared"


def test_a_corrupt_saved_state_is_refused_and_the_vm_boots(host):
    assert host.hb("down", "--machine", NAME, timeout=300).returncode == 0
    with open(host.path("saved-state"), "r+b") as f:
        f.write(b"\xde\xad\xbe\xef" * 64)  # the stream's header and first section
    r = _up(host)
    assert "saved state was thrown away (QEMU could not load it" in r.stderr, r.stderr
    assert host.ssh("cat /var/lib/hostbridge/suspend-marker").stdout.strip() == "kept"
    assert host.docker("run", "--rm", "busybox", "true").returncode == 0


def test_a_truncated_saved_state_is_refused_and_the_vm_boots(host):
    assert host.hb("down", "--machine", NAME, timeout=300).returncode == 0
    os.truncate(host.path("saved-state"), os.path.getsize(host.path("saved-state")) // 2)
    r = _up(host)
    assert "thrown away (the state file is truncated" in r.stderr, r.stderr
    assert not os.path.exists(host.path("saved-state"))


def test_qemu_killed_while_saving_then_up_boots_with_the_data(host):
    assert host.ssh("echo before-kill > /var/lib/hostbridge/kill-marker").returncode == 0
    pid = host.qemu_pid()
    killed = threading.Event()

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed.is_set():
            if os.path.exists(host.path("saved-state.tmp")):
                os.kill(pid, signal.SIGKILL)
                killed.set()
            time.sleep(0.005)

    t = threading.Thread(target=killer)
    t.start()
    r = host.hb("down", "--machine", NAME, timeout=300)
    killed.set()
    t.join()
    assert r.returncode != 0 and "saving the VM's state failed" in r.stderr, r.stdout + r.stderr
    assert not os.path.exists(host.path("saved-state"))
    _up(host)
    assert host.ssh("cat /var/lib/hostbridge/kill-marker").stdout.strip() == "before-kill"


def test_two_ups_at_once_resume_one_vm(host):
    assert host.hb("down", "--machine", NAME, timeout=300).returncode == 0
    procs = [subprocess.Popen([sys.executable, "-m", "hostbridge.cli", "up", "--machine", NAME], env=host.env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=BOOT) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    qemus = subprocess.run(["pgrep", "-f", host.path("qemu.pid")], capture_output=True, text=True).stdout.split()
    assert len(qemus) == 1


def test_the_guest_clock_catches_up_after_a_forced_jump(host):
    """What a host sleep looks like to the guest: QMP stop, PAUSE s, cont (its own clock stood
    still, its RTC did not). The guest's init sets its clock from the RTC within 1 s of waking.
    The guest's clock is read over its command channel (``time``: no SSH exec, whose round trip
    under TCG is longer than what is measured)."""
    from hostbridge.machines.qemu import ReadyChannel
    from hostbridge.machines.qmp import QMP

    pause = 8

    def drift(ch):
        before = time.time()
        guest = float(ch.query("time", 10))
        after = time.time()
        return guest - (before + after) / 2, after - before

    def corrections():
        with open(host.path("serial.log"), errors="replace") as f:
            return f.read().count("off the RTC")

    before = corrections()
    with ReadyChannel(host.path("ready.sock")) as ch:
        steady = drift(ch)
        with QMP("unix:" + host.path("qmp.sock")) as q:
            q.execute("stop")
            time.sleep(pause)
            q.execute("cont")
        woke = time.monotonic()
        seen = []
        while time.monotonic() - woke < 10:
            d, rtt = drift(ch)
            seen.append((round(time.monotonic() - woke, 3), round(d, 3), round(rtt, 3)))
            if abs(d) + rtt / 2 < 1.0:
                break
            time.sleep(0.02)
    caught_up = seen[-1][0]
    print("clock after a %d s pause: within 1 s of the host's %.2f s after cont; before the pause %+.3f s "
          "(after cont s, drift s, channel round trip s): %s" % (pause, caught_up, steady[0], seen))
    assert abs(steady[0]) + steady[1] / 2 < 1.0, steady
    assert abs(seen[-1][1]) + seen[-1][2] / 2 < 1.0, seen
    assert caught_up <= 1.0 + seen[-1][2], seen  # within 1 s of waking (give or take the last read)
    assert corrections() == before + 1  # the guest's init set it (the jump was there)


def test_a_share_in_use_means_a_shutdown_instead_with_a_note(host):
    r = host.docker("run", "-d", "--name", "sharer", "-v", "%s:/s" % host.share, "busybox", "sleep", "100000")
    assert r.returncode == 0, r.stderr
    r = host.hb("down", "--machine", NAME, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shut down instead" in r.stdout + r.stderr and "Stopped machine" in r.stdout, r.stdout + r.stderr
    assert not os.path.exists(host.path("saved-state"))
    _up(host)
    host.docker("rm", "-f", "sharer")


def test_down_shutdown_is_a_real_shutdown(host):
    r = host.hb("down", "--shutdown", "--machine", NAME, timeout=300)
    assert r.returncode == 0 and "Stopped machine" in r.stdout, r.stdout + r.stderr
    assert not os.path.exists(host.path("saved-state"))
    r = _up(host)
    assert "resume" not in r.stdout.split("Stages:")[-1]
