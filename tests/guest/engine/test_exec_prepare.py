"""Exec helpers enter the container at the exec's create and run at its start (zygote.PendingExec)."""

import os
import time

import docker
import pytest

pytestmark = pytest.mark.root

PARK_SECONDS = 10  # hostbridge.guest.runtime.zygote.PARK_SECONDS


@pytest.fixture
def sleeper(engine):
    api = docker.APIClient(base_url=engine.url)
    c = api.create_container("busybox", ["sleep", "1000"], host_config=api.create_host_config(network_mode="none"))
    api.start(c)
    yield api, c["Id"]
    api.remove_container(c["Id"], force=True)


def test_created_exec_runs_with_its_config(sleeper):
    api, cid = sleeper
    eid = api.exec_create(cid, ["sh", "-c", "echo $A $(pwd) $(id -u); exit 4"], environment=["A=x"], workdir="/tmp",
                          user="1000")["Id"]
    out = api.exec_start(eid, demux=True)
    assert out == (b"x /tmp 1000\n", None)
    assert api.exec_inspect(eid)["ExitCode"] == 4


def test_exec_created_before_a_restart_runs_in_the_new_container(sleeper):
    api, cid = sleeper
    eid = api.exec_create(cid, ["cat", "/proc/1/stat"])["Id"]
    old_pid = api.inspect_container(cid)["State"]["Pid"]
    api.restart(cid, timeout=0)
    assert api.inspect_container(cid)["State"]["Pid"] != old_pid
    # /proc/1 is the new container's sleep: the helper that entered the old one was let go
    assert api.exec_start(eid).split()[1] == b"(sleep)"
    assert api.exec_inspect(eid)["ExitCode"] == 0


def test_exec_started_after_the_helper_gave_up_still_runs(sleeper):
    api, cid = sleeper
    eid = api.exec_create(cid, ["echo", "late"])["Id"]
    assert _wait_for_pids(api, cid, 2, 5), "the helper was not parked in the container's cgroups"
    t = time.monotonic()
    assert _wait_for_pids(api, cid, 1, PARK_SECONDS + 10), "the parked helper did not give up"
    assert time.monotonic() - t > PARK_SECONDS - 2
    assert api.exec_start(eid) == b"late\n"
    assert api.exec_inspect(eid)["ExitCode"] == 0


def test_a_parked_helper_does_not_keep_a_stopped_container_busy(sleeper):
    api, cid = sleeper
    api.exec_create(cid, ["true"])
    cgroup_dir = _cgroup_dir(api, cid)
    assert _wait_for_pids(api, cid, 2, 5)  # sleep and the parked helper
    t = time.monotonic()
    api.stop(cid, timeout=1)
    assert time.monotonic() - t < 5
    assert api.inspect_container(cid)["State"]["Status"] == "exited"
    assert not os.path.exists(cgroup_dir)  # the helper was killed with the rest and the cgroup removed
    api.start(cid)
    assert api.exec_start(api.exec_create(cid, ["echo", "ok"])["Id"]) == b"ok\n"


def _cgroup_dir(api, cid):
    pid = api.inspect_container(cid)["State"]["Pid"]
    with open("/proc/%d/cgroup" % pid) as f:
        rel = [line.split(":", 2)[2].strip() for line in f if ":pids:" in line][0]
    return "/sys/fs/cgroup/pids" + rel


def _cgroup_pids_of(api, cid):
    with open(os.path.join(_cgroup_dir(api, cid), "cgroup.procs")) as f:
        return {int(p) for p in f.read().split()}


def _wait_for_pids(api, cid, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_cgroup_pids_of(api, cid)) == n:
            return True
        time.sleep(0.05)
    return False


def test_exec_process_is_in_every_container_cgroup(engine):
    """Joined by the helper's own thread (v1 ``tasks``) or forked straight in (cgroup2), the
    exec'd process is where the container's processes are, and under its limits."""
    api = docker.APIClient(base_url=engine.url)
    c = api.create_container("busybox", ["sleep", "1000"], host_config=api.create_host_config(
        network_mode="none", mem_limit="32m", pids_limit=8))
    api.start(c)
    try:
        eid = api.exec_create(c, ["sleep", "100"])["Id"]
        api.exec_start(eid, detach=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not api.exec_inspect(eid)["Running"]:
            time.sleep(0.05)
        pid = api.exec_inspect(eid)["Pid"]
        init = api.inspect_container(c)["State"]["Pid"]
        with open("/proc/%d/cgroup" % init) as f:
            want = sorted(f.read().splitlines())
        with open("/proc/%d/cgroup" % pid) as f:  # v1 through the helper, v2 born there (clone3)
            assert sorted(f.read().splitlines()) == want
        # the limits hold for what exec starts: 8 pids in all, 32 MiB
        out = api.exec_start(api.exec_create(c, ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do sleep 5 & done; wait"])["Id"])
        assert b"can't fork" in out or b"Resource temporarily unavailable" in out
        hog = api.exec_create(c, ["tail", "/dev/zero"])["Id"]  # keeps the whole "line" it reads
        api.exec_start(hog)
        assert api.exec_inspect(hog)["ExitCode"] == 137  # OOM-killed by the container's limit
    finally:
        api.remove_container(c, force=True)
