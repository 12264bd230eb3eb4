"""No descriptor of the engine's reaches a container process; the OOM scores are dockerd's.
Each attempt runs against dockerd and our engine."""

import os
import uuid

import pytest


def _fds(listing):
    """The fd numbers of a busybox ``ls /proc/self/fd`` output."""
    return sorted(int(x) for x in listing.split())


@pytest.fixture
def running(backend):
    name = "fds-%s-%s" % (backend.name, uuid.uuid4().hex[:6])
    r = backend.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "120")
    assert r.returncode == 0, r.stderr
    yield name
    backend.docker("rm", "-f", name)


def test_run_process_holds_only_stdio(backend):
    r = backend.docker("run", "--rm", "--network", "none", "busybox", "ls", "/proc/self/fd")
    assert r.returncode == 0, r.stderr
    assert _fds(r.stdout) == [0, 1, 2, 3]  # 3: ls's own handle on the directory


def test_exec_process_holds_only_stdio(backend, running):
    r = backend.docker("exec", running, "ls", "/proc/self/fd")
    assert r.returncode == 0, r.stderr
    assert _fds(r.stdout) == [0, 1, 2, 3]


def test_exec_with_tty_holds_only_stdio(backend, running):
    r = backend.docker("exec", "-t", running, "ls", "/proc/self/fd")
    assert r.returncode == 0, r.stderr
    assert _fds(r.stdout) == [0, 1, 2, 3]


def test_exec_detached_holds_only_stdio(backend, running):
    r = backend.docker("exec", "-d", running, "sh", "-c", "ls /proc/self/fd > /tmp/fds")
    assert r.returncode == 0, r.stderr
    for _ in range(50):
        out = backend.docker("exec", running, "cat", "/tmp/fds")
        if out.returncode == 0 and out.stdout.strip():
            break
    assert _fds(out.stdout) == [0, 1, 2, 3]


def test_container_init_holds_only_stdio(backend, running):
    r = backend.docker("exec", running, "ls", "/proc/1/fd")
    assert r.returncode == 0, r.stderr
    assert _fds(r.stdout) == [0, 1, 2]


def test_no_host_directory_reachable_through_fds(backend, running):
    # every fd any container process holds points inside the container (CVE-2016-9962's class)
    r = backend.docker("exec", running, "sh", "-c", "for l in /proc/[0-9]*/fd/*; do readlink $l; done")
    for target in r.stdout.split():
        assert not target.startswith(("/sys/fs/cgroup", "/var/lib", "/run", "/tmp/")), target


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8])
def test_leaked_cwd_fd_cve_2024_21626(backend, n):
    r = backend.docker("run", "--rm", "--network", "none", "-w", "/proc/self/fd/%d" % n, "busybox",
                       "sh", "-c", "ls -a ../../../../ | head -50; readlink /proc/self/cwd")
    if r.returncode == 0:
        cwd = r.stdout.split()[-1]
        assert cwd.startswith("/proc/"), "the working directory escaped to %s" % cwd
        assert "hostbridge" not in r.stdout and "docker" not in r.stdout


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_exec_leaked_cwd_fd(backend, running, n):
    r = backend.docker("exec", "-w", "/proc/self/fd/%d" % n, running, "readlink", "/proc/self/cwd")
    if r.returncode == 0:
        assert r.stdout.strip().startswith("/proc/"), r.stdout


def test_oom_score_adj_of_containers_and_execs(backend, running):
    assert backend.docker("exec", running, "cat", "/proc/1/oom_score_adj").stdout.strip() == "0"
    assert backend.docker("exec", running, "cat", "/proc/self/oom_score_adj").stdout.strip() == "0"
    r = backend.docker("run", "--rm", "--network", "none", "--oom-score-adj", "200", "busybox",
                       "cat", "/proc/self/oom_score_adj")
    assert r.stdout.strip() == "200"


def _negative_oom_score_adj_allowed():
    import subprocess
    r = subprocess.run(["sh", "-c", "echo -1 > /proc/self/oom_score_adj"], capture_output=True)
    return r.returncode == 0


def test_engine_and_shims_are_spared_by_the_oom_killer(backend, running):
    if not _negative_oom_score_adj_allowed():
        pytest.skip("host kernel: refuses negative oom_score_adj values (EIO), to dockerd as to us")
    pid = int(backend.docker("inspect", "-f", "{{.State.Pid}}", running).stdout)
    with open("/proc/%d/stat" % pid) as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    with open("/proc/%d/oom_score_adj" % ppid) as f:
        assert int(f.read()) == -999  # the shim (containerd-shim under dockerd)
    sock = backend.url[len("unix://"):]
    engine_pids = [p for p in _pids_with_arg(sock) if p != pid and p != ppid]
    assert engine_pids, "no engine process found for %s" % sock
    for p in engine_pids:  # dockerd, or our engine daemon
        with open("/proc/%d/oom_score_adj" % p) as f:
            assert int(f.read()) == -500


def _pids_with_arg(arg):
    """Pids of the engine daemons started with ``arg`` (the socket path) on their command line."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(arg.encode() in a for a in argv) and any(b"daemon" in a or b"dockerd" in a for a in argv):
            out.append(int(name))
    return out
