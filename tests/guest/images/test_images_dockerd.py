"""Our archives against the real thing: Debian's dockerd on a private socket and data root.

dockerd's ``docker save`` loads into our store with the same image id, and our ``save`` loads
into dockerd with the same id (and runs there, which proves the layers are whole).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

pytestmark = pytest.mark.root

DOCKERD = shutil.which("dockerd")
DOCKER = shutil.which("docker")


def _mounts_under(path):
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(path)]


@pytest.fixture(scope="module")
def dockerd():
    """A private dockerd (no bridge, no iptables); yields a function running the docker CLI."""
    if not DOCKERD or not DOCKER:
        pytest.skip("dockerd or the docker CLI is not installed (apt-get install docker.io)")
    # short path: containerd's socket under exec-root must fit in 108 bytes
    d = tempfile.mkdtemp(prefix="hbd-", dir="/tmp")
    sock = os.path.join(d, "d.sock")
    log = open(os.path.join(d, "dockerd.log"), "wb")
    proc = subprocess.Popen(
        [DOCKERD, "--host", "unix://" + sock, "--data-root", d + "/data", "--exec-root",
         d + "/exec", "--pidfile", d + "/d.pid", "--bridge", "none", "--iptables=false",
         "--ip6tables=false"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env = dict(os.environ, DOCKER_CONFIG=d + "/cli", DOCKER_HOST="unix://" + sock)

    def docker(*args, **kw):
        return subprocess.run([DOCKER] + list(args), env=env, check=True, capture_output=True,
                              timeout=120, **kw)

    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail("dockerd exited: see %s/dockerd.log" % d)
            if os.path.exists(sock) and subprocess.run(
                    [DOCKER, "version"], env=env, capture_output=True, timeout=30).returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail("dockerd did not answer within 60 s: see %s/dockerd.log" % d)
            time.sleep(0.5)
        yield docker
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        for m in sorted(_mounts_under(d), reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(d, ignore_errors=True)


def test_docker_save_loads_here_with_same_id(dockerd, store, busybox_rootfs_tar, tmp_path):
    out = dockerd("import", "-c", 'CMD ["sh"]', "-c", "ENV HB=1", busybox_rootfs_tar,
                  "hb-dockerd/bb:1").stdout.decode().strip()
    docker_id = dockerd("image", "inspect", "-f", "{{.Id}}", "hb-dockerd/bb:1").stdout.decode().strip()
    assert out == docker_id
    tar = tmp_path / "docker-save.tar"
    dockerd("save", "-o", str(tar), "hb-dockerd/bb:1")
    with open(tar, "rb") as f:
        assert store.load(f) == ["Loaded image: hb-dockerd/bb:1"]
    assert store.resolve("hb-dockerd/bb:1") == docker_id
    ours = store.inspect(docker_id)
    assert ours["Config"]["Env"] == ["HB=1"] and ours["Config"]["Cmd"] == ["sh"]
    theirs = dockerd("image", "inspect", "-f", "{{json .RootFS.Layers}} {{.Size}}",
                     docker_id).stdout.decode().split()
    assert theirs[0].replace(" ", "") == '["%s"]' % ours["RootFS"]["Layers"][0]
    assert int(theirs[1]) == ours["Size"]
    dockerd("rmi", "hb-dockerd/bb:1")


def test_our_save_loads_into_dockerd_and_runs(dockerd, store, busybox_rootfs_tar, tmp_path):
    with open(busybox_rootfs_tar, "rb") as f:
        base = store.import_rootfs(f, "hb-ours/bb:1", ['CMD ["sh"]'])
    upper = tmp_path / "upper"
    (upper / "app").mkdir(parents=True)
    (upper / "app" / "msg").write_bytes(b"hello from hostbridge\n")
    child = store.commit(base, str(upper), ref="hb-ours/app:2", changes=['CMD ["cat", "/app/msg"]'])
    tar = tmp_path / "ours.tar"
    with open(tar, "wb") as f:
        store.save(["hb-ours/app:2", "hb-ours/bb"], f)
    out = dockerd("load", "-i", str(tar)).stdout.decode()
    assert "Loaded image: hb-ours/app:2" in out and "Loaded image: hb-ours/bb:1" in out
    ids = dockerd("image", "inspect", "-f", "{{.Id}}", "hb-ours/app:2", "hb-ours/bb:1")
    assert ids.stdout.decode().split() == [child, base]
    ran = dockerd("run", "--rm", "--network", "none", "hb-ours/app:2")
    assert ran.stdout == b"hello from hostbridge\n"
    dockerd("rmi", "hb-ours/app:2", "hb-ours/bb:1")
