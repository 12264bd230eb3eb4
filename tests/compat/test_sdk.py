"""The docker SDK for Python against the engine: containers, exec, wait, events."""

import threading
import time

import pytest

pytestmark = pytest.mark.root


def test_run_attached_and_detached(sdk):
    docker = pytest.importorskip("docker")
    assert sdk.containers.run("busybox", ["echo", "hi"], remove=True, network_mode="none") == b"hi\n"
    with pytest.raises(docker.errors.ContainerError) as ei:
        sdk.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True, network_mode="none")
    assert ei.value.exit_status == 3 and b"bad" in ei.value.stderr
    c = sdk.containers.run("busybox", ["sleep", "1000"], detach=True, name="compat-sdk1", network_mode="none",
                           environment={"K": "v"}, labels={"l": "1"}, mem_limit="32m", working_dir="/tmp")
    c.reload()
    assert c.status == "running" and c.name == "compat-sdk1" and c.attrs["HostConfig"]["Memory"] == 32 << 20
    assert c.attrs["Config"]["Labels"] == {"l": "1"} and "K=v" in c.attrs["Config"]["Env"]
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get("compat-nosuch")
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.images.get("compat/nosuch:1")


def test_exec_run(sdk):
    c = sdk.containers.run("busybox", ["sleep", "1000"], detach=True, name="compat-sdkx", network_mode="none")
    r = c.exec_run(["sh", "-c", "echo out; exit 4"])
    assert r.exit_code == 4 and r.output == b"out\n"
    r = c.exec_run("pwd", workdir="/tmp", user="nobody", environment={"A": "b"})
    assert r.exit_code == 0 and r.output == b"/tmp\n"
    r = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert r.output == (b"o\n", b"e\n")
    r = c.exec_run(["sh", "-c", "echo $A"], environment={"A": "b"}, tty=True)
    assert r.output == b"b\r\n"
    chunks = list(c.exec_run(["sh", "-c", "echo 1; sleep 0.2; echo 2"], stream=True).output)
    assert b"".join(chunks) == b"1\n2\n"


def test_wait_stop_kill_restart_remove(sdk):
    c = sdk.containers.run("busybox", ["sh", "-c", "sleep 0.3; exit 6"], detach=True, name="compat-sdkw",
                           network_mode="none")
    assert c.wait(timeout=20) == {"StatusCode": 6, "Error": None}
    c.start()
    assert c.wait(timeout=20)["StatusCode"] == 6
    c.remove()
    c = sdk.containers.run("busybox", ["sleep", "1000"], detach=True, name="compat-sdks", network_mode="none")
    c.stop(timeout=1)
    c.reload()
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
    c.restart(timeout=1)
    c.reload()
    assert c.status == "running"
    c.kill(signal="SIGUSR1")  # pid 1 (sleep) has no handler: the kernel drops it, as under docker
    time.sleep(0.3)
    c.reload()
    assert c.status == "running"
    c.kill()
    assert c.wait(timeout=20)["StatusCode"] == 137
    c.remove(force=True)


def test_events_decode_and_filters(sdk):
    since = time.time()
    got = []

    def listen():
        for ev in sdk.events(decode=True, since=since, filters={"container": "compat-sdkev", "event": ["start", "die"]}):
            got.append(ev)
            if ev["Action"] == "die":
                return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.3)
    sdk.containers.run("busybox", ["true"], name="compat-sdkev", network_mode="none", remove=True)
    t.join(10)
    assert [e["Action"] for e in got] == ["start", "die"]
    assert got[1]["Actor"]["Attributes"]["name"] == "compat-sdkev" and got[1]["Actor"]["Attributes"]["exitCode"] == "0"
    until = time.time()
    past = list(sdk.events(decode=True, since=since, until=until, filters={"type": "container",
                                                                          "container": "compat-sdkev"}))
    assert [e["Action"] for e in past][-1] == "destroy"
    assert isinstance(past[0]["time"], int) and isinstance(past[0]["timeNano"], int)


def test_system_calls(sdk):
    assert sdk.ping() is True
    v = sdk.version()
    assert v["ApiVersion"] == "1.44" and v["Os"] == "linux"
    info = sdk.info()
    assert info["OSType"] == "linux" and isinstance(info["Containers"], int)
    df = sdk.df()
    assert isinstance(df["LayersSize"], int) and isinstance(df["Images"], list)
    assert sdk.containers.prune(filters={"label": "compat-none-such"})["SpaceReclaimed"] == 0
