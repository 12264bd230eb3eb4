"""Clients no one here wrote (the docker SDK, the stock CLI) against hostbridge and dockerd.

Each test runs once per ``backend`` and asserts the outcome dockerd gives (issue 14).
"""

import io
import json
import os
import tarfile
import time
import uuid

import pytest

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.root


def _name(prefix):
    return "hb14-%s-%s" % (prefix, uuid.uuid4().hex[:8])


@pytest.fixture
def sdk(backend):
    """A docker SDK client on the backend; removes the containers named hb14-* afterwards."""
    client = docker.DockerClient(base_url=backend.url, timeout=60)
    yield client
    for c in client.containers.list(all=True, filters={"name": "hb14-"}):
        try:
            c.remove(force=True)
        except docker.errors.APIError:
            pass
    client.close()


def test_wait_with_restart_policy_returns_at_the_first_exit(sdk):
    c = sdk.containers.run("busybox", ["sh", "-c", "sleep 0.5; exit 3"], detach=True, name=_name("wait"),
                           network_mode="none", restart_policy={"Name": "always"})
    result = c.wait(timeout=30)
    assert result["StatusCode"] == 3


def test_rm_right_after_kill_works(sdk):
    c = sdk.containers.run("busybox", ["sleep", "60"], detach=True, name=_name("kill"), network_mode="none")
    c.kill()
    c.reload()
    assert c.status == "exited"
    assert c.attrs["State"]["ExitCode"] == 137
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get(c.id)


def test_swarm_endpoints_answer_as_a_dockerd_outside_a_swarm(sdk):
    assert sdk.api.leave_swarm(force=True) is True  # the SDK swallows dockerd's 503
    with pytest.raises(docker.errors.APIError) as exc:
        sdk.api.leave_swarm()
    assert exc.value.status_code == 503 and "not part of a swarm" in str(exc.value.explanation)
    for call in (sdk.api.services, sdk.api.nodes, sdk.api.tasks, sdk.api.secrets, sdk.api.configs,
                 sdk.api.inspect_swarm):
        with pytest.raises(docker.errors.APIError) as exc:
            call()
        assert exc.value.status_code == 503
        assert exc.value.explanation.startswith("This node is not a swarm manager.")


def test_options_dockerd_accepts(sdk):
    out = sdk.containers.run("busybox", ["sh", "-c", "id -G"], name=_name("opts"), network_mode="none",
                             group_add=["1234", "5678"], device_cgroup_rules=["c 1:3 rwm"],
                             mem_swappiness=60, isolation="default", remove=False)
    assert out.decode().split() == ["0", "1234", "5678"]
    c = sdk.containers.get(sdk.containers.list(all=True, filters={"name": "hb14-opts"})[0].id)
    hc = c.attrs["HostConfig"]
    assert hc["Runtime"] == "runc"
    assert hc["GroupAdd"] == ["1234", "5678"]
    assert hc["DeviceCgroupRules"] == ["c 1:3 rwm"]


def test_memory_swappiness_is_applied_on_cgroup_v1(sdk):
    if not os.path.exists("/sys/fs/cgroup/memory/memory.swappiness"):
        pytest.skip("host kernel: no cgroup v1 memory controller (v2 has no swappiness: tests/vm covers it)")
    name = _name("swap")
    reply = sdk.api.create_container("busybox", ["cat", "/sys/fs/cgroup/memory/memory.swappiness"], name=name,
                                     host_config=sdk.api.create_host_config(mem_swappiness=37, network_mode="none"))
    assert not reply.get("Warnings")  # v1 applies it: no "Memory swappiness discarded"
    sdk.api.start(name)
    assert sdk.api.wait(name, timeout=30)["StatusCode"] == 0
    assert sdk.api.logs(name) == b"37\n"
    assert sdk.api.inspect_container(name)["HostConfig"]["MemorySwappiness"] == 37


def test_exec_inherits_group_add(sdk):
    c = sdk.containers.run("busybox", ["sleep", "30"], detach=True, name=_name("gexec"), network_mode="none",
                           group_add=["4321"])
    code, out = c.exec_run(["id", "-G"])
    assert code == 0 and "4321" in out.decode().split()


@pytest.mark.parametrize("kwargs,message", [
    ({"runtime": "nosuch"}, "Unknown runtime specified nosuch"),
    ({"mem_swappiness": 101}, "valid memory swappiness range is 0-100"),
    ({"device_cgroup_rules": ["x 1:3 rwm"]}, "invalid device cgroup rule format"),
])
def test_bad_option_values_are_refused_as_dockerd_does(sdk, kwargs, message):
    with pytest.raises(docker.errors.APIError) as exc:
        # dockerd checks some at create, the device rules only at start: the run fails either way
        sdk.containers.run("busybox", ["true"], name=_name("bad"), network_mode="none", detach=True, **kwargs)
    assert exc.value.status_code in (400, 500) and message in str(exc.value.explanation)


def test_exec_with_a_tty_is_a_raw_stream(sdk):
    c = sdk.containers.run("busybox", ["sleep", "30"], detach=True, name=_name("etty"), network_mode="none")
    code, out = c.exec_run(["sh", "-c", "echo hello out; echo hello err >&2"], tty=True)
    assert code == 0 and out == b"hello out\r\nhello err\r\n"
    code, out = c.exec_run(["sh", "-c", "echo hello out; echo hello err >&2"], tty=True, demux=True)
    assert out == (b"hello out\r\nhello err\r\n", None)
    # the pause: output sent with the response's headers would sit in the SDK's HTTP buffer
    # (so with dockerd too), not on the socket it returns
    ex = sdk.api.exec_create(c.id, ["sh", "-c", "sleep 0.5; echo hello out"], tty=True)
    sock = sdk.api.exec_start(ex["Id"], tty=True, socket=True)
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(10)
    got = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        got += chunk
    sock.close()
    assert got == b"hello out\r\n"


def test_exec_stream_framing_follows_the_start_request(sdk):
    """dockerd frames by exec start's Tty: the SDK's exec_start(tty=False) default demuxes."""
    from docker.utils.socket import frames_iter
    c = sdk.containers.run("busybox", ["sleep", "30"], detach=True, name=_name("eframe"), network_mode="none")
    ex = sdk.api.exec_create(c.id, ["sh", "-c", "echo hello out"], tty=True)
    assert sdk.api.exec_start(ex["Id"]) == b"hello out\r\n"
    ex = sdk.api.exec_create(c.id, ["sh", "-c", "sleep 0.5; echo hello out"], tty=True)
    sock = sdk.api.exec_start(ex["Id"], socket=True)
    frames = list(frames_iter(sock, tty=False))
    sock.close()
    assert b"".join(data for _, data in frames) == b"hello out\r\n" and {s for s, _ in frames} == {1}
    ex = sdk.api.exec_create(c.id, ["sh", "-c", "echo out; echo err >&2"])
    out = sdk.api.exec_start(ex["Id"], tty=True)
    assert out == b"out\n"  # unframed: dockerd drops stderr then


def _read_to_eof(sock, limit=10.0):
    """Bytes from a hijacked SDK socket until the engine closes it (bounded in time)."""
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(limit)
    got = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            return got
        got += chunk


def _read_until(sock, token, limit=10.0):
    """Bytes from a hijacked SDK socket until ``token`` shows (or the socket closes)."""
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(limit)
    got = b""
    while token not in got:
        chunk = raw.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def _send(sock, data):
    getattr(sock, "_sock", sock).sendall(data)


@pytest.mark.parametrize("keys,seq", [(None, b"\x10\x11"), ("ctrl-x,y", b"\x18y")])
def test_attach_detach_keys_leave_the_container_running(sdk, keys, seq):
    c = sdk.containers.run("busybox", ["cat"], detach=True, name=_name("adet"), network_mode="none",
                           stdin_open=True, tty=True)
    params = {"stdin": 1, "stdout": 1, "stream": 1}
    if keys:
        params["detachKeys"] = keys
    sock = sdk.api.attach_socket(c.id, params=params)
    _send(sock, b"ping\n")
    assert b"ping" in _read_until(sock, b"ping")
    _send(sock, seq)
    _read_to_eof(sock)  # the engine ends the session: no hang
    sock.close()
    c.reload()
    assert c.status == "running"


def test_attach_with_bad_detach_keys_is_refused(sdk):
    c = sdk.containers.run("busybox", ["cat"], detach=True, name=_name("abad"), network_mode="none",
                           stdin_open=True, tty=True)
    with pytest.raises(docker.errors.APIError) as exc:
        sdk.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-1"})
    assert "Invalid detach keys (ctrl-1) provided" in str(exc.value)


def test_exec_detach_keys_end_the_session(sdk):
    c = sdk.containers.run("busybox", ["sleep", "60"], detach=True, name=_name("edet"), network_mode="none")
    ex = sdk.api.exec_create(c.id, ["sh", "-c", "echo ping; exec sleep 60"], stdin=True, tty=True,
                             detach_keys="ctrl-a,b")
    sock = sdk.api.exec_start(ex["Id"], tty=True, socket=True)
    assert b"ping" in _read_until(sock, b"ping")
    _send(sock, b"\x01b")
    _read_to_eof(sock)
    sock.close()
    # dockerd closes the exec's terminal on a detach, which hangs the process up
    for _ in range(50):
        if not sdk.api.exec_inspect(ex["Id"])["Running"]:
            break
        time.sleep(0.2)
    assert sdk.api.exec_inspect(ex["Id"])["Running"] is False
    c.reload()
    assert c.status == "running"


def test_detach_keys_from_the_docker_config_file(backend, sdk, tmp_path, monkeypatch):
    """The SDK sends config.json's detachKeys (lower-case "detachKeys", also in exec create)."""
    (tmp_path / "config.json").write_text(json.dumps({"detachKeys": "ctrl-x,y"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    api = docker.APIClient(base_url=backend.url, timeout=60)
    c = sdk.containers.run("busybox", ["cat"], detach=True, name=_name("cdet"), network_mode="none",
                           stdin_open=True, tty=True)
    ex = api.exec_create(c.id, ["sh", "-c", "echo ping; exec sleep 60"], stdin=True, tty=True)
    assert api.exec_inspect(ex["Id"])["DetachKeys"] == "GHk="  # dockerd shows the bytes, base64
    sock = api.exec_start(ex["Id"], tty=True, socket=True)
    assert b"ping" in _read_until(sock, b"ping")
    _send(sock, b"\x18y")
    _read_to_eof(sock)
    sock.close()
    sock = api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
    _send(sock, b"pong\n")
    assert b"pong" in _read_until(sock, b"pong")
    _send(sock, b"\x18y")
    _read_to_eof(sock)
    sock.close()
    c.reload()
    assert c.status == "running"
    api.close()


def _tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _build(sdk, files, **kw):
    """Build a context made of ``files``; returns (image id or None, the stream's messages)."""
    lines = list(sdk.api.build(fileobj=io.BytesIO(_tar(files)), custom_context=True, decode=True, rm=True, **kw))
    ids = [ln["aux"]["ID"] for ln in lines if "aux" in ln and "ID" in ln["aux"]]
    return (ids[-1] if ids else None), lines


def test_base_image_from_scratch_with_metadata_then_add_rootfs(sdk):
    tag = _name("scratch")
    rootfs = _tar({"etc/hello": b"hi\n", "bin/x": b"x\n"})
    dockerfile = b"FROM scratch\nMAINTAINER me\nLABEL a=b\nENV X=1\nADD rootfs.tar /\n"
    iid, lines = _build(sdk, {"Dockerfile": dockerfile, "rootfs.tar": rootfs}, tag=tag)
    assert iid, lines
    try:
        img = sdk.images.get(tag)
        assert img.attrs["Config"]["Labels"] == {"a": "b"} and "X=1" in img.attrs["Config"]["Env"]
        assert img.attrs["Author"] == "me" and len(img.attrs["RootFS"]["Layers"]) == 1
        # intermediates: listed with all=1 only, and info counts what all=1 lists
        listed = {i.id for i in sdk.images.list()}
        every = {i.id for i in sdk.images.list(all=True)}
        parents = {img.attrs["Parent"]} - {""}
        assert parents and parents <= every and not parents & listed
        assert sdk.info()["Images"] == len(every)
    finally:
        sdk.images.remove(tag)


def test_build_with_a_dockerfile_outside_the_context(sdk, tmp_path):
    """The SDK packs such a Dockerfile under a generated name and sends dockerfile= twice."""
    ctx, elsewhere = tmp_path / "ctx", tmp_path / "elsewhere"
    ctx.mkdir()
    elsewhere.mkdir()
    (ctx / "f.txt").write_text("hello\n")
    (elsewhere / "Dockerfile.out").write_text("FROM busybox\nCOPY f.txt /f.txt\n")
    tag = _name("outside")
    img, _ = sdk.images.build(path=str(ctx), dockerfile=str(elsewhere / "Dockerfile.out"), tag=tag)
    try:
        out = sdk.containers.run(tag, ["cat", "/f.txt"], name=_name("outside"), network_mode="none")
        assert out == b"hello\n"
    finally:
        sdk.images.remove(img.id, force=True)


@pytest.mark.parametrize("data", [b"garbage, not a tar", b"\0" * 1024])
def test_malformed_load_raises_image_load_error(sdk, data):
    with pytest.raises(docker.errors.ImageLoadError):
        sdk.images.load(data)


@pytest.fixture
def local_registry(tmp_path):
    """Debian's docker-registry on 127.0.0.1 (dockerd takes loopback registries as insecure)."""
    from tests.registry import regsupport
    import os
    if not os.path.exists(regsupport.REGISTRY_BIN):
        pytest.skip("docker-registry is missing: apt-get install docker-registry")
    srv = regsupport.RegistryServer(str(tmp_path / "registry")).start()
    yield srv
    srv.stop()


def test_distribution_inspect_reads_the_registry(sdk, local_registry):
    name = "%s/hb14/busybox" % local_registry.domain
    sdk.images.get("busybox").tag(name, "1")
    try:
        pushed = [ln for ln in sdk.images.push(name, "1", stream=True, decode=True) if "aux" in ln]
        digest = pushed[-1]["aux"]["Digest"]
        info = sdk.api.inspect_distribution(name + ":1")
        assert info["Descriptor"]["digest"] == digest
        assert info["Descriptor"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        assert info["Descriptor"]["size"] == pushed[-1]["aux"]["Size"]
        assert info["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
        with pytest.raises(docker.errors.APIError) as exc:
            sdk.api.inspect_distribution(name + ":nosuchtag")
        assert exc.value.status_code == 404 and "manifest unknown" in exc.value.explanation
    finally:
        sdk.images.remove(name + ":1")


@pytest.mark.parametrize("name", ["hb14 with space", "hb14:colon", "hb14 é"])
def test_network_names_dockerd_accepts(sdk, name):
    net = sdk.networks.create(name, attachable=True, check_duplicate=True,
                              options={"com.docker.network.driver.mtu": "1400", "foo": "bar"})
    try:
        attrs = sdk.networks.get(net.id).attrs
        assert (attrs["Name"], attrs["Scope"], attrs["Attachable"], attrs["Ingress"]) == (name, "local", True, False)
        assert attrs["Options"] == {"com.docker.network.driver.mtu": "1400", "foo": "bar"}
        with pytest.raises(docker.errors.APIError) as exc:
            sdk.networks.create(name, check_duplicate=True)
        assert exc.value.status_code == 409
        c = sdk.containers.run("busybox", ["true"], detach=True, name=_name("net"), network=name)
        c.wait(timeout=30)
        c.reload()
        assert list(c.attrs["NetworkSettings"]["Networks"]) == [name]
        c.remove()
    finally:
        net.remove()


@pytest.mark.parametrize("kwargs,status,message", [
    ({"scope": "swarm"}, 403, "cannot create a swarm scoped network when swarm is not active"),
    ({"ingress": True}, 403, "Ingress network can only be global scope network"),
    ({"scope": "global"}, None, "This node is not a swarm manager."),
    ({"driver": "overlay"}, None, "This node is not a swarm manager."),
])
def test_swarm_network_options_answer_as_dockerd(sdk, kwargs, status, message):
    with pytest.raises(docker.errors.APIError) as exc:
        sdk.networks.create(_name("swnet"), **kwargs)
    assert exc.value.explanation.startswith(message)
    if status:  # dockerd says 500 for the other two, hostbridge 503: a server-side refusal both
        assert exc.value.status_code == status


def test_container_prune_filters(sdk):
    keep, drop = _name("pkeep"), _name("pdrop")
    sdk.containers.run("busybox", ["true"], name=keep, network_mode="none", labels={"hb14": "keep"})
    sdk.containers.run("busybox", ["true"], name=drop, network_mode="none", labels={"hb14": "drop"})
    # until=24h: nothing made in the last day goes (a 500 on hostbridge before)
    assert not set(sdk.containers.prune(filters={"until": "24h", "label": "hb14"})["ContainersDeleted"] or [])
    drop_id = sdk.containers.get(drop).id
    out = sdk.containers.prune(filters={"label": "hb14", "label!": "hb14=keep"})
    assert drop_id in (out["ContainersDeleted"] or [])
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get(drop)
    assert sdk.containers.get(keep).name == keep
    with pytest.raises(docker.errors.APIError) as exc:
        sdk.containers.prune(filters={"until": "not-a-time"})
    assert exc.value.status_code in (400, 500)
    with pytest.raises(docker.errors.APIError) as exc:
        sdk.containers.prune(filters={"nosuch": "x"})
    assert "Invalid filter 'nosuch'" in exc.value.explanation


def test_network_prune_filters(sdk):
    keep, drop, new = _name("nkeep"), _name("ndrop"), _name("nnew")
    sdk.networks.create(keep, labels={"hb14": "keep"})
    sdk.networks.create(drop, labels={"hb14": "drop"})
    try:
        out = sdk.networks.prune(filters={"until": "24h", "label": "hb14"})
        assert not out["NetworksDeleted"]
        out = sdk.networks.prune(filters={"label": "hb14", "label!": "hb14=keep"})
        assert out["NetworksDeleted"] == [drop]
        sdk.networks.create(new, labels={"hb14": "new"})
        out = sdk.networks.prune(filters={"until": "2000-01-01", "label": "hb14"})
        assert not out["NetworksDeleted"]
        names = {n.name for n in sdk.networks.list(filters={"label": "hb14"})}
        assert names == {keep, new}
    finally:
        for n in sdk.networks.list(filters={"label": "hb14"}):
            n.remove()


def test_stats_carry_networks_per_interface(sdk):
    net = sdk.networks.create(_name("stnet"))
    try:
        c = sdk.containers.run("busybox", ["sh", "-c", "ping -c 2 -W 1 $(hostname -i) >/dev/null; sleep 30"],
                               detach=True, name=_name("stats"), network=net.name)
        s = c.stats(stream=False)
        assert set(s["networks"]) == {"eth0"}
        assert {"rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors",
                "tx_dropped"} <= set(s["networks"]["eth0"])
        c.remove(force=True)
        c = sdk.containers.run("busybox", ["sleep", "30"], detach=True, name=_name("stnone"), network_mode="none")
        assert "networks" not in c.stats(stream=False)
        c.remove(force=True)
    finally:
        net.remove()


def test_links_on_a_user_network_are_aliases(backend):
    d = backend.docker
    net, target, src = _name("lnet"), _name("ltarget"), _name("lsrc")
    assert d("network", "create", net).returncode == 0
    try:
        assert d("run", "-d", "--name", target, "--network", net, "busybox", "sleep", "60").returncode == 0
        r = d("run", "--name", src, "--network", net, "--link", target + ":al", "busybox", "sh", "-c",
              "ping -c1 -W2 al >/dev/null && echo RESOLVED")
        assert r.returncode == 0 and r.stdout == "RESOLVED\n", r.stderr
        r = d("inspect", "-f", "{{json .HostConfig.Links}} {{json (index .NetworkSettings.Networks \"%s\").Links}}"
              % net, src)
        assert r.stdout.strip() == 'null ["%s:al"]' % target, r.stderr
        r = d("rm", "--link", "/%s/al" % src)  # not a legacy link: dockerd does not know the name
        assert r.returncode == 1 and "No such container: %s/al" % src in r.stderr
        r = d("create", "--network", "host", "--link", target + ":al", "busybox", "true")
        assert r.returncode == 1 and "host type networking can't be used with links" in r.stderr
    finally:
        d("rm", "-f", target, src)
        d("network", "rm", net)


def test_legacy_links_on_the_default_bridge(engine):
    """hostbridge only: the dockerd fixture runs with --bridge none, so it has no default bridge.

    The expected values are moby's (links.go ToEnv, the sandbox's extra hosts, rmLink).
    """
    client = docker.DockerClient(base_url=engine.url, timeout=60)
    target, src = _name("btarget"), _name("bsrc")
    try:
        t = client.containers.run("busybox", ["sleep", "60"], detach=True, name=target, environment={"FOO": "bar"},
                                  ports={"80/tcp": None}, publish_all_ports=False)
        t.reload()
        ip = t.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        c = client.containers.create("busybox", ["sh", "-c", "env; cat /etc/hosts"], name=src, links={target: "my-al"})
        assert c.attrs["HostConfig"]["Links"] == ["/%s:/%s/my-al" % (target, src)]
        c.start()
        c.wait(timeout=30)
        out = c.logs().decode()
        for line in ("MY_AL_NAME=/%s/my-al" % src, "MY_AL_PORT=tcp://%s:80" % ip, "MY_AL_PORT_80_TCP=tcp://%s:80" % ip,
                     "MY_AL_PORT_80_TCP_ADDR=%s" % ip, "MY_AL_PORT_80_TCP_PORT=80", "MY_AL_PORT_80_TCP_PROTO=tcp",
                     "MY_AL_ENV_FOO=bar", "%s\tmy-al %s" % (ip, target)):
            assert line in out.splitlines(), (line, out)
        assert "MY_AL_ENV_PATH" not in out
        client.api.remove_container("%s/my-al" % src, link=True)
        assert client.containers.get(src).attrs["HostConfig"]["Links"] is None
        with pytest.raises(docker.errors.NotFound):
            client.api.remove_container("%s/my-al" % src, link=True)
        t.stop(timeout=0)
        c2 = client.containers.create("busybox", ["true"], name=_name("bsrc2"), links={target: "al"})
        with pytest.raises(docker.errors.APIError) as exc:
            c2.start()
        assert "Cannot link to a non running container: /%s AS /%s/al" % (target, c2.name) in exc.value.explanation
        with pytest.raises(docker.errors.APIError) as exc:
            client.containers.create("busybox", ["true"], links={"hb14-nosuch": "al"})
        assert "could not get container for hb14-nosuch" in exc.value.explanation
    finally:
        for c in client.containers.list(all=True, filters={"name": "hb14-"}):
            c.remove(force=True)
        client.close()


@pytest.mark.parametrize("args", [["nosuch"], ["network", "nosuch"], ["ps", "--nosuch"], ["ps", "-Z"],
                                  ["images", "--nosuch"]])
def test_usage_errors_exit_and_read_as_docker_s(backend, args):
    ours, theirs = backend.hb(*args), backend.docker(*args)
    assert ours.returncode == theirs.returncode != 0
    mine, docker_s = ours.stderr.replace("hostbridge", "docker").splitlines(), theirs.stderr.splitlines()
    # the message and the hint as docker's; the usage line between them is each command's own
    assert (mine[0], mine[-1]) == (docker_s[0], docker_s[-1])
    assert any(x.startswith("Usage:  docker") for x in mine) == any(x.startswith("Usage:  docker") for x in docker_s)


def test_run_pulls_a_missing_image_as_docker_run_does(backend, local_registry):
    name = "%s/hb14/pullme:1" % local_registry.domain
    d = backend.docker
    assert d("tag", "busybox", name).returncode == 0
    assert d("push", name).returncode == 0
    for cli in (backend.hb, backend.docker):
        assert d("rmi", name).returncode == 0
        r = cli("run", "--rm", "--network", "none", "--pull", "never", name, "echo", "hi")
        assert r.returncode == 125 and "No such image" in r.stderr, r.stderr
        r = cli("run", "--rm", "--network", "none", name, "echo", "hi")
        assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
        assert "Unable to find image '%s' locally" % name in r.stderr
        assert "Status: Downloaded newer image for %s" % name in r.stderr
        r = cli("create", "--pull", "always", "--network", "none", name, "true")
        assert r.returncode == 0 and "Status: Image is up to date for %s" % name in r.stderr, r.stderr
        d("rm", r.stdout.strip())
        r = cli("run", "--pull", "sometimes", name, "true")
        assert r.returncode == 125 and 'invalid pull option: \'sometimes\': must be one of "always", "missing" or "never"' \
            in r.stderr
    d("rmi", name)


def _complete(backend, words):
    """What bash's Tab offers after ``words`` (the last one being completed), via the real script."""
    import os
    import shutil
    import subprocess
    import sys
    hb = os.path.join(os.path.dirname(sys.executable), "hostbridge")
    if not os.path.exists(hb) or not shutil.which("bash"):
        pytest.skip("needs the hostbridge entry point and bash")
    env = backend.env(PATH=os.path.dirname(hb) + os.pathsep + os.environ.get("PATH", ""))
    line = " ".join(words)
    script = ('eval "$(hostbridge completion bash)"; COMP_WORDS=(%s); COMP_CWORD=%d; '
              '_hostbridge_completion hostbridge; printf "%%s\\n" "${COMPREPLY[@]}"' % (line, len(words) - 1))
    r = subprocess.run(["bash", "-c", "set -o pipefail; " + script], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return [x for x in r.stdout.splitlines() if x]


def test_completion_names_come_from_the_engine(backend):
    d = backend.docker
    tag = uuid.uuid4().hex[:6]
    ctr, net, vol, img = "hb14-cmpc" + tag, "hb14-cmpn" + tag, "hb14-cmpv" + tag, "hb14-cmpi" + tag
    assert d("create", "--name", ctr, "--network", "none", "busybox", "true").returncode == 0
    assert d("network", "create", net).returncode == 0
    assert d("volume", "create", vol).returncode == 0
    assert d("tag", "busybox", img).returncode == 0
    try:
        assert _complete(backend, ["hostbridge", "rm", "hb14-cmpc" + tag[:3]]) == [ctr]
        assert _complete(backend, ["hostbridge", "network", "rm", "hb14-cmpn"]) == [net]
        assert _complete(backend, ["hostbridge", "volume", "rm", "hb14-cmpv" + tag]) == [vol]
        assert _complete(backend, ["hostbridge", "run", "hb14-cmpi"]) == [img + ":latest"]
        assert "network" in _complete(backend, ["hostbridge", "netw"])
    finally:
        d("rm", "-f", ctr)
        d("network", "rm", net)
        d("volume", "rm", vol)
        d("rmi", img)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_completion_scripts(backend, shell):
    r = backend.hb("completion", shell)
    assert r.returncode == 0 and "_HOSTBRIDGE_COMPLETE" in r.stdout


TEMPLATES = [
    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    "{{range $name, $net := .NetworkSettings.Networks}}{{$name}} {{$net.Gateway}};{{end}}",
    "{{if .State.Running}}up{{else}}down{{end}} {{if not .State.Paused}}unpaused{{end}}",
    "{{with .Config.Labels}}{{index . \"hb14\"}}{{end}}{{with .Config.Volumes}}v{{else}}novol{{end}}",
    "{{printf \"%s|%5d|%-6s|%q|%v\" .Name .State.ExitCode \"ab\" .Path .Config.Tty}}",
    "{{len .Config.Cmd}} {{index .Config.Cmd 0}} {{join .Config.Cmd \"+\"}} {{split .Name \"-\"}}",
    "{{.Name | upper}} {{lower .State.Status}} {{title .State.Status}} {{json .Config.Cmd}} {{json .Config.Labels}}",
    "{{$n := .Name}}{{$n}} {{(index .NetworkSettings.Networks \"%NET%\").IPPrefixLen}} {{eq .State.Status \"running\"}}",
    "{{range .Config.Env}}{{if eq . \"HB=1\"}}found{{end}}{{end}} {{range .Mounts}}m{{else}}nomounts{{end}}",
    "{{- .Config.Hostname | len -}} {{ .HostConfig.NetworkMode }}",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_go_templates_side_by_side_with_the_stock_cli(backend, template):
    d = backend.docker
    net, name = _name("tnet"), _name("tpl")
    assert d("network", "create", net).returncode == 0
    try:
        assert d("run", "-d", "--name", name, "--network", net, "-e", "HB=1", "-l", "hb14=yes", "busybox",
                 "sleep", "60").returncode == 0
        tpl = template.replace("%NET%", net)
        ours, theirs = backend.hb("inspect", "-f", tpl, name), backend.docker("inspect", "-f", tpl, name)
        assert theirs.returncode == 0, theirs.stderr
        assert (ours.returncode, ours.stdout) == (0, theirs.stdout), ours.stderr
    finally:
        d("rm", "-f", name)
        d("network", "rm", net)


@pytest.mark.parametrize("args", [
    ["ps", "-a", "--filter", "name=hb14-", "--format", "table {{.Names}}\t{{.Status | lower}}\t{{printf \"%.5s\" .ID}}"],
    ["ps", "-a", "--filter", "name=hb14-", "--format", "{{if eq .State \"running\"}}R{{else}}S{{end}} {{len .Names}}"],
    ["images", "--format", "{{range split .Repository \"/\"}}[{{.}}]{{end}} {{.Tag | upper}}"],
    ["network", "ls", "--filter", "name=hb14-", "--format", "{{.Name}} {{with .Driver}}{{.}}{{end}}"],
])
def test_list_templates_side_by_side(backend, args):
    d = backend.docker
    name = _name("lst")
    assert d("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "60").returncode == 0
    try:
        ours, theirs = backend.same(*args)
        assert theirs.returncode == 0, theirs.stderr
        assert (ours.returncode, ours.stdout) == (0, theirs.stdout), ours.stderr
    finally:
        d("rm", "-f", name)


def test_plugins_answer_as_a_dockerd_without_plugins(sdk):
    assert sdk.plugins.list() == []
    with pytest.raises(docker.errors.NotFound) as exc:
        sdk.plugins.get("hb14-nosuch")
    assert exc.value.explanation == 'plugin "hb14-nosuch" not found'


def test_list_filters_dockerd_refuses(sdk):
    for call in (lambda: sdk.images.list(filters={"label!": "x"}), lambda: sdk.containers.list(filters={"label!": "x"}),
                 lambda: sdk.networks.list(filters={"label!": "x"})):
        with pytest.raises(docker.errors.APIError) as exc:
            call()
        assert exc.value.status_code == 400 and exc.value.explanation == "Invalid filter 'label!'"


@pytest.mark.parametrize("limit", [0, 101])
def test_search_limit_out_of_range_is_refused_before_any_registry_is_asked(sdk, limit):
    with pytest.raises(docker.errors.APIError) as exc:
        sdk.api.search("hb14", limit=limit)
    assert exc.value.status_code == 400
    assert exc.value.explanation == "Limit %d is outside the range of [1, 100]" % limit


def test_build_cache_from_a_loaded_image(sdk):
    """An image loaded from a save (no local build cache, no parents) stands in for the steps its
    history covers when named in cache_from, and only then."""
    tag = _name("cachefrom")
    files = {"Dockerfile": b"FROM busybox\nENV HB14=1\nRUN echo built > /built\nLABEL step=three\n"}
    first, _ = _build(sdk, files, tag=tag)
    saved = b"".join(sdk.images.get(tag).save(named=True))
    sdk.images.remove(tag)
    loaded = sdk.images.load(saved)
    assert [i.id for i in loaded] == [first]
    try:
        again, lines = _build(sdk, files, nocache=False)
        text = "".join(ln.get("stream", "") for ln in lines)
        assert "Using cache" not in text and again != first  # nothing to reuse without cache_from
        sdk.images.remove(again)
        again, lines = _build(sdk, files, cache_from=[tag, "hb14-not-here:1"])
        text = "".join(ln.get("stream", "") for ln in lines)
        assert text.count("Using cache") == 3 and again == first, text
    finally:
        sdk.images.remove(first, force=True)
