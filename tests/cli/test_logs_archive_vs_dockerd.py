"""Logs, docker cp through mounts and log drivers: the stock CLI and the docker SDK against
hostbridge's engine and Debian's dockerd in the same test, the same outcome asserted."""

import json
import os
import shutil
import tempfile

import pytest

pytestmark = pytest.mark.root


def _sdk(backend):
    docker = pytest.importorskip("docker")
    return docker.DockerClient(base_url=backend.url, timeout=60)


def _run(backend, *args):
    r = backend.docker(*args)
    assert r.returncode == 0, "%s: docker %s: %s" % (backend.name, " ".join(args), r.stderr)
    return r.stdout


@pytest.fixture
def names(backend):
    made = []
    yield made
    if made:
        backend.docker("rm", "-f", *made)


@pytest.fixture
def host_dir():
    d = tempfile.mkdtemp(prefix="hb-cp-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---- logs -------------------------------------------------------------------------------------

def test_followed_logs_come_one_frame_per_line(backend, names):
    """The SDK's logs(stream=True, follow=True) yields each line as its own item, as written."""
    client = _sdk(backend)
    names.append("lf-frames")
    c = client.containers.run("busybox", ["sh", "-c", "printf 'a\\nb\\n'; sleep 0.3; echo c; sleep 0.3; echo d >&2; sleep 0.3"],
                              name="lf-frames", detach=True, network_mode="none")
    got = [bytes(x) for x in c.logs(stream=True, follow=True)]
    assert got == [b"a\n", b"b\n", b"c\n", b"d\n"], backend.name
    # the whole log read again (not followed): the same frames
    assert [bytes(x) for x in c.logs(stream=True)] == got


def test_follow_of_an_exited_container_returns(backend, names):
    names.append("lf-exited")
    _run(backend, "run", "--name", "lf-exited", "--network", "none", "busybox", "sh", "-c", "echo one; echo two >&2")
    r = backend.docker("logs", "-f", "lf-exited", timeout=20)
    assert (r.returncode, r.stdout, r.stderr) == (0, "one\n", "two\n"), backend.name


# ---- docker cp through volumes and bind mounts ----------------------------------------------------

def _cp_setup(backend, names, host_dir, name, start):
    with open(os.path.join(host_dir, "bound.txt"), "w") as f:
        f.write("from the host\n")
    os.symlink("/vol1", os.path.join(host_dir, "tovol"))  # the container's /vol1
    os.symlink(host_dir, os.path.join(host_dir, "tohost"))  # a host path the container lacks
    names.append(name)
    backend.docker("volume", "rm", "-f", name + "-vol")
    args = ["-v", name + "-vol:/vol1", "-v", host_dir + ":/bind", "-v", host_dir + ":/robind:ro",
            "--network", "none", "busybox", "sh", "-c", "echo in-volume > /vol1/f.txt; sleep 30"]
    if start:
        _run(backend, "run", "-d", "--name", name, *args)
        for _ in range(50):
            if backend.docker("exec", name, "cat", "/vol1/f.txt").returncode == 0:
                break
    else:
        _run(backend, "run", "-d", "--name", name, *args)
        _run(backend, "exec", name, "sh", "-c", "while [ ! -e /vol1/f.txt ]; do sleep 0.05; done")
        _run(backend, "stop", "-t", "0", name)


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_cp_through_volumes_and_binds(backend, names, host_dir, tmp_path, running):
    name = "cp-mnt-%s" % ("run" if running else "stop")
    _cp_setup(backend, names, host_dir, name, running)
    try:
        out = tmp_path / "out"
        out.mkdir()
        # out of a volume and out of a bind mount
        _run(backend, "cp", name + ":/vol1/f.txt", str(out / "v.txt"))
        assert (out / "v.txt").read_text() == "in-volume\n"
        _run(backend, "cp", name + ":/bind/bound.txt", str(out / "b.txt"))
        assert (out / "b.txt").read_text() == "from the host\n"
        _run(backend, "cp", name + ":/vol1", str(out / "vol1"))
        assert sorted(os.listdir(out / "vol1")) == ["f.txt"]
        # a symlink in a bind mount resolves in the container (to another mount), never on the host
        _run(backend, "cp", name + ":/bind/tovol/f.txt", str(out / "l.txt"))
        assert (out / "l.txt").read_text() == "in-volume\n"
        r = backend.docker("cp", name + ":/bind/tohost/bound.txt", str(out / "h.txt"))
        assert r.returncode == 1 and "Could not find the file /bind/tohost/bound.txt in container " + name \
            in r.stderr, (backend.name, r.stderr)
        # into a volume and into a bind mount
        src = tmp_path / "new.txt"
        src.write_text("copied in\n")
        _run(backend, "cp", str(src), name + ":/vol1/new.txt")
        _run(backend, "cp", str(src), name + ":/bind/new.txt")
        assert open(os.path.join(host_dir, "new.txt")).read() == "copied in\n"
        _run(backend, "cp", name + ":/vol1/new.txt", str(out / "n.txt"))
        assert (out / "n.txt").read_text() == "copied in\n"
        # a read-only bind refuses, with dockerd's message
        r = backend.docker("cp", str(src), name + ":/robind/x.txt")
        assert r.returncode == 1 and "mounted volume is marked read-only" in r.stderr, (backend.name, r.stderr)
        assert not os.path.exists(os.path.join(host_dir, "x.txt"))
        # a missing file in a volume: docker's not-found
        r = backend.docker("cp", name + ":/vol1/nope", str(out / "nope"))
        assert r.returncode == 1 and "Could not find the file /vol1/nope in container " + name in r.stderr, \
            (backend.name, r.stderr)
    finally:
        backend.docker("rm", "-f", name)
        backend.docker("volume", "rm", "-f", name + "-vol")


# ---- log drivers --------------------------------------------------------------------------------

def test_unknown_log_driver_is_refused_at_create(backend, names):
    names += ["ld-bogus", "ld-bogus2"]
    r = backend.docker("run", "--name", "ld-bogus", "--log-driver", "bogus", "busybox", "true")
    assert r.returncode == 125, (backend.name, r.stderr)
    assert r.stderr.startswith('docker: Error response from daemon: error looking up logging plugin bogus: '
                               'plugin "bogus" not found\n'), (backend.name, r.stderr)
    assert backend.docker("inspect", "ld-bogus").returncode == 1  # nothing created
    client = _sdk(backend)
    import docker
    with pytest.raises(docker.errors.APIError) as e:
        client.api.create_container("busybox", ["true"], name="ld-bogus2",
                                    host_config=client.api.create_host_config(log_config={"Type": "bogus2"}))
    assert (e.value.status_code, e.value.explanation) == \
        (400, 'error looking up logging plugin bogus2: plugin "bogus2" not found'), backend.name


def test_log_config_kept_as_given(backend, names):
    names.append("ld-opts")
    _run(backend, "create", "--name", "ld-opts", "--log-driver", "json-file", "--log-opt", "max-size=10m",
         "--log-opt", "max-file=3", "busybox", "true")
    got = _run(backend, "inspect", "-f", "{{json .HostConfig.LogConfig}}", "ld-opts")
    assert json.loads(got) == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}, backend.name


def test_none_driver_cannot_be_read(backend, names):
    names.append("ld-none")
    _run(backend, "run", "--name", "ld-none", "--log-driver", "none", "busybox", "echo", "hi")
    r = backend.docker("logs", "ld-none")
    assert (r.returncode, r.stdout, r.stderr) == \
        (1, "", "Error response from daemon: configured logging driver does not support reading\n"), backend.name
    ours = backend.hb("logs", "ld-none")
    assert (ours.returncode, ours.stderr) == (r.returncode, r.stderr), backend.name  # hostbridge's CLI too
    client = _sdk(backend)
    import docker
    with pytest.raises(docker.errors.APIError) as e:
        client.api.logs("ld-none")
    assert (e.value.status_code, e.value.explanation) == \
        (501, "configured logging driver does not support reading"), backend.name
    got = _run(backend, "inspect", "-f", "{{json .HostConfig.LogConfig}}", "ld-none")
    assert json.loads(got) == {"Type": "none", "Config": {}}, backend.name
