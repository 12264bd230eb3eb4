"""Lesser-used docker SDK calls against hostbridge and dockerd (issue 14's "go looking for more").

Each test runs once per ``backend`` and asserts the outcome dockerd gives, unless it needs both
engines at once (key sets compared between the two).
"""

import uuid

import pytest

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.root


def _client(url):
    return docker.APIClient(base_url=url, timeout=60)


@pytest.fixture
def api(backend):
    client = _client(backend.url)
    made = []
    yield client, made
    for c in made:
        try:
            client.remove_container(c, force=True)
        except docker.errors.APIError:
            pass
    client.close()


def _create(api, **kw):
    client, made = api
    name = "hb14-sdk-" + uuid.uuid4().hex[:8]
    client.create_container("busybox", ["true"], name=name, host_config=client.create_host_config(network_mode="none"),
                            **kw)
    made.append(name)
    return name


def test_rename_to_its_own_name_is_refused(api):
    name = _create(api)
    with pytest.raises(docker.errors.APIError) as exc:
        api[0].rename(name, name)
    assert exc.value.status_code == 400
    assert exc.value.explanation == "Renaming a container with the same name as its current name"


def test_isolation_filter_is_accepted_and_not_applied_on_linux(api):
    name = _create(api)
    for iso in ("default", "hyperv", "bogus"):
        assert "/" + name in [c["Names"][0] for c in api[0].containers(all=True, filters={"isolation": iso})]


def test_disk_usage_keys(api):
    df = api[0].df()
    assert set(df) == {"LayersSize", "Images", "Containers", "Volumes", "BuildCache", "BuilderSize"}
    assert df["BuildCache"] is None and df["BuilderSize"] == 0


def test_version_and_info_carry_dockerd_s_keys(dockerd, engine):
    theirs, ours = _client(dockerd.url), _client(engine.url)
    assert set(theirs.info()) - set(ours.info()) == set()
    assert set(theirs.version()) - set(ours.version()) == set()
    assert "Experimental" not in theirs.version() and "Experimental" not in ours.version()  # omitted when false


def test_ipam_config_is_kept_as_given_and_aux_addresses_are_never_handed_out(backend):
    import json
    import random

    net = "hb14-aux-" + uuid.uuid4().hex[:8]
    base = "10.%d.%d." % (random.randrange(100, 250), random.randrange(256))
    r = backend.docker("network", "create", "--subnet", base + "0/29", "--aux-address", "a=" + base + "2", net)
    assert r.returncode == 0, r.stderr
    try:
        cfg = json.loads(backend.docker("network", "inspect", "-f", "{{json .IPAM.Config}}", net).stdout)
        assert cfg == [{"Subnet": base + "0/29", "AuxiliaryAddresses": {"a": base + "2"}}]  # no gateway listed
        r = backend.docker("run", "--rm", "--network", net, "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
        assert r.returncode == 0 and " %s3/29 " % base in r.stdout, r.stdout + r.stderr
        r = backend.docker("run", "--rm", "--network", net, "--ip", base + "2", "busybox", "true")
        assert r.returncode == 125 and "Address already in use" in r.stderr, r.stderr
    finally:
        backend.docker("network", "rm", net)


def test_a_local_volume_bound_to_a_host_directory(backend, tmp_path):
    """``--opt type=none --opt o=bind --opt device=DIR`` (compose's way to name a host directory)."""
    import os

    src = tmp_path / "src"
    src.mkdir()
    (src / "before").write_text("from the host\n")
    vol = "hb14-bindvol-" + uuid.uuid4().hex[:8]
    r = backend.docker("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", "device=%s" % src, vol)
    assert r.returncode == 0, r.stderr
    try:
        r = backend.docker("volume", "inspect", "-f", "{{json .Options}}", vol)
        assert r.stdout.strip() == '{"device":"%s","o":"bind","type":"none"}' % src
        r = backend.docker("run", "--rm", "--network", "none", "-v", vol + ":/data", "busybox",
                           "sh", "-c", "cat /data/before; echo from the container > /data/after")
        assert r.returncode == 0 and r.stdout == "from the host\n", r.stderr
        assert (src / "after").read_text() == "from the container\n"
    finally:
        assert backend.docker("volume", "rm", vol).returncode == 0
    assert sorted(os.listdir(src)) == ["after", "before"]  # removing the volume leaves the directory's data


@pytest.mark.parametrize("opts,message", [
    (["foo=bar"], 'create NAME: invalid option: "foo"'),
    (["type=tmpfs"], 'create NAME: missing required option: "device"'),
    (["device=/x"], 'create NAME: missing required option: "type"'),
])
def test_local_volume_options_are_checked_as_dockerd_does(backend, opts, message):
    vol = "hb14-badopt-" + uuid.uuid4().hex[:8]
    args = [a for o in opts for a in ("--opt", o)]
    r = backend.docker("volume", "create", *args, vol)
    assert r.returncode == 1 and "Error response from daemon: " + message.replace("NAME", vol) in r.stderr, r.stderr


def test_a_bind_volume_on_a_missing_directory_fails_the_run(backend):
    vol = "hb14-nodev-" + uuid.uuid4().hex[:8]
    r = backend.docker("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", "device=/nonexistent-hb14", vol)
    assert r.returncode == 0, r.stderr  # dockerd checks the device only when it mounts it
    try:
        r = backend.docker("run", "--rm", "--network", "none", "-v", vol + ":/d", "busybox", "true")
        # dockerd binds at start (exit 127), hostbridge at create (exit 125): the run fails either way
        assert r.returncode in (125, 127)
        assert "failed to mount local volume: mount /nonexistent-hb14:" in r.stderr
        assert "flags: 0x1000: no such file or directory" in r.stderr, r.stderr
    finally:
        backend.docker("volume", "rm", vol)


def test_a_none_container_joins_a_network_once_it_leaves_none(backend):
    private = "container cannot be connected to multiple networks with one of the networks in private (none) mode"
    net, c = "hb14-joinnet-" + uuid.uuid4().hex[:8], "hb14-joinc-" + uuid.uuid4().hex[:8]
    assert backend.docker("network", "create", net).returncode == 0
    try:
        assert backend.docker("create", "--name", c, "--network", "none", "busybox", "sleep", "60").returncode == 0
        r = backend.docker("network", "connect", net, c)
        assert r.returncode == 1 and private in r.stderr, r.stderr
        assert backend.docker("network", "disconnect", "none", c).returncode == 0
        assert backend.docker("network", "connect", net, c).returncode == 0
        assert backend.docker("start", c).returncode == 0
        r = backend.docker("exec", c, "ip", "-4", "-o", "addr", "show", "eth0")
        assert r.returncode == 0 and " inet " in r.stdout, r.stderr
        r = backend.docker("network", "connect", "none", c)
        assert r.returncode == 1 and private in r.stderr, r.stderr
        r = backend.docker("network", "connect", "host", c)
        assert r.returncode == 1 and "cannot be disconnected from host network or connected to host network" in r.stderr
        r = backend.docker("inspect", "-f", "{{.HostConfig.NetworkMode}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}", c)
        assert r.stdout.strip() == "none " + net
    finally:
        backend.docker("rm", "-f", c)
        backend.docker("network", "rm", net)


def test_a_running_host_container_cannot_leave_host(backend):
    c = "hb14-hostc-" + uuid.uuid4().hex[:8]
    assert backend.docker("run", "-d", "--name", c, "--network", "host", "busybox", "sleep", "60").returncode == 0
    try:
        r = backend.docker("network", "disconnect", "host", c)
        assert r.returncode == 1
        assert "container cannot be disconnected from host network or connected to host network" in r.stderr
    finally:
        backend.docker("rm", "-f", c)
    c += "-2"  # before its start it may leave (and still starts on the host's network)
    assert backend.docker("create", "--name", c, "--network", "host", "busybox", "true").returncode == 0
    try:
        assert backend.docker("network", "disconnect", "host", c).returncode == 0
        r = backend.docker("start", "-a", c)
        assert r.returncode == 0, r.stderr
    finally:
        backend.docker("rm", "-f", c)
