"""RUN steps get the build's network, limits and /etc files, as dockerd's classic builder gives.

Builds go through the stock CLI (``DOCKER_BUILDKIT=0 docker build``, whose query this engine
parses) against a real engine. Traffic goes only to containers this module starts (busybox
``httpd`` on the engine's networks); nothing leaves the machine.
"""

import json
import os
import re
import socket
import subprocess
import time

import pytest

from tests.cli.conftest import dockerd  # noqa: F401  (the fixture: Debian's dockerd, private socket)
from tests.guest.builder.conftest import context_tar
from tests.guest.builder.test_build_e2e import build, build_leftovers, dk, write_tree

pytestmark = pytest.mark.root


def _ipam_owners(engine):
    """Every owner holding an address in any of the engine's IPAM pools."""
    d = os.path.join(engine.root, "network", "ipam")
    owners = set()
    for name in os.listdir(d):
        with open(os.path.join(d, name)) as f:
            owners |= set((json.load(f).get("allocated") or {}).values())
    return owners


def _bridges(env):
    """The bridge devices of the engine's networks (other engines' steps are not ours to see)."""
    nets = json.loads(dk(env, "network", "inspect", *dk(env, "network", "ls", "-q").stdout.split()).stdout)
    return {n["Options"].get("com.docker.network.bridge.name") or "br-" + n["Id"][:12]
            for n in nets if n["Driver"] == "bridge"}


def _step_links(env):
    """The RUN steps' veths on the engine's bridges."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    bridges = _bridges(env)
    return [line for line in out.splitlines() if re.match(r"\d+: vb[0-9a-f]{11}[@:]", line)
            and re.search(r" master (\S+) ", line) and re.search(r" master (\S+) ", line).group(1) in bridges]


def _containers(env):
    return set(dk(env, "ps", "-aq", "--no-trunc").stdout.split())


def assert_nothing_left(engine, env):
    """No RUN rootfs, mount or shim, no step veth, no address held by anything but a container."""
    assert build_leftovers(engine) == []
    assert _step_links(env) == []
    assert _ipam_owners(engine) <= _containers(env)


@pytest.fixture(scope="module")
def web(engine):
    """A busybox httpd container on the default bridge: ``(ip, env)``; it serves /hello.txt."""
    env = dict(os.environ, DOCKER_HOST=engine.url, DOCKER_CONFIG=os.path.join(engine.base, "docker-config"))
    name = "runenv-web"
    dk(env, "run", "-d", "--name", name, "busybox", "sh", "-c",
       "mkdir /www && echo hello-from-web > /www/hello.txt && exec httpd -f -p 8080 -h /www")
    try:
        ip = dk(env, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()
        assert ip
        yield ip
    finally:
        dk(env, "rm", "-f", name, check=False)


def _wget(ip):
    # a few tries: httpd may still be starting (bounded: 20 x 0.1 s)
    return ("RUN for i in $(seq 20); do wget -q -O - http://%s:8080/hello.txt && exit 0; sleep 0.1; done; "
            "exit 1\n" % ip)


def test_run_reaches_the_default_bridge_by_default(engine, docker_env, web, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\n" + _wget(web)})
    out = build(docker_env, ctx, "--no-cache").stdout
    assert "hello-from-web" in out
    assert_nothing_left(engine, docker_env)


def test_network_none_cannot_reach_it(engine, docker_env, web, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nRUN ip link; wget -q -O - http://%s:8080/hello.txt\n"
                                % web})
    r = build(docker_env, ctx, "--no-cache", "--network", "none", check=False)
    assert r.returncode != 0
    assert "hello-from-web" not in r.stdout
    assert "eth0" not in r.stdout and "lo:" in r.stdout  # only loopback in the step's namespace
    assert "returned a non-zero code" in r.stdout + r.stderr
    assert_nothing_left(engine, docker_env)


def test_etc_files_are_a_bridge_containers(engine, docker_env, web, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo H=$(hostname) F=$(cat /etc/hostname); "
                                "cat /etc/hosts; echo ==; cat /etc/resolv.conf; echo ==; ip -4 -o addr show eth0\n"
                                "RUN true\n"})
    out = build(docker_env, ctx, "--no-cache", "--add-host", "extra.example:10.1.2.3",
                "--add-host", "gw.example:host-gateway").stdout
    gateway = json.loads(dk(docker_env, "network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    step = re.search(r" ---> Running in ([0-9a-f]{12})\n", out).group(1)
    assert "H=%s F=%s" % (step, step) in out
    hosts, resolv = out.split("H=", 1)[1].split("\n", 1)[1].split("==\n")[:2]
    ip = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out).group(1)
    assert "%s\tgw.example" % gateway in hosts
    assert "10.1.2.3\textra.example" in hosts and "%s\t%s" % (ip, step) in hosts and "127.0.0.1\tlocalhost" in hosts
    assert resolv == dk(docker_env, "run", "--rm", "busybox", "cat", "/etc/resolv.conf").stdout
    # the mount points are in the step's init layer, not in its changes: RUN true adds no layer
    built = json.loads(dk(docker_env, "image", "inspect", re.findall(r"Successfully built (\w+)", out)[0]).stdout)[0]
    base = json.loads(dk(docker_env, "image", "inspect", "busybox").stdout)[0]
    assert len(built["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"])
    assert_nothing_left(engine, docker_env)


def test_user_network_and_host_network(engine, docker_env, tmp_path):
    dk(docker_env, "network", "create", "runenv-net")
    try:
        dk(docker_env, "run", "-d", "--name", "runenv-web2", "--network", "runenv-net", "busybox", "sh", "-c",
           "mkdir /www && echo on-user-net > /www/hello.txt && exec httpd -f -p 8080 -h /www")
        ip = dk(docker_env, "inspect", "-f", "{{(index .NetworkSettings.Networks \"runenv-net\").IPAddress}}",
                "runenv-web2").stdout.strip()
        # by address, and by name (busybox's static wget cannot resolve names; its nc can)
        by_name = "RUN printf 'GET /hello.txt HTTP/1.0\\r\\n\\r\\n' | nc runenv-web2 8080\n"
        ctx = write_tree(tmp_path / "user", {"Dockerfile": "FROM busybox\n" + _wget(ip) + by_name})
        out = build(docker_env, ctx, "--no-cache", "--network", "runenv-net").stdout
        assert out.count("on-user-net") == 2 and "200 OK" in out
    finally:
        dk(docker_env, "rm", "-f", "runenv-web2", check=False)
        dk(docker_env, "network", "rm", "runenv-net", check=False)
    bridge = json.loads(dk(docker_env, "network", "inspect", "bridge").stdout)[0]["Options"][
        "com.docker.network.bridge.name"]
    ctx = write_tree(tmp_path / "host", {"Dockerfile": "FROM busybox\nRUN ls /sys/class/net\n"})
    assert bridge in build(docker_env, ctx, "--no-cache", "--network", "host").stdout.split()
    assert_nothing_left(engine, docker_env)


def test_failed_and_cancelled_steps_leave_nothing(engine, docker_env, web, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\n" + _wget(web) + "RUN exit 4\n"})
    r = build(docker_env, ctx, "--no-cache", check=False)
    assert r.returncode != 0 and "returned a non-zero code: 4" in r.stdout + r.stderr
    assert_nothing_left(engine, docker_env)
    # a client that goes while a networked RUN sleeps
    s = socket.socket(socket.AF_UNIX)
    s.connect(engine.sock)
    body = context_tar("FROM busybox\nRUN echo tick; sleep 39.5\n")
    s.sendall(b"POST /v1.44/build?nocache=1 HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    got, end = b"", time.monotonic() + 30
    s.settimeout(30)
    while b'"tick\\n"' not in got and time.monotonic() < end:  # the output, not the Step line
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    assert b'"tick\\n"' in got
    assert len(_step_links(docker_env)) == 1  # the step is on the bridge while it runs
    s.close()
    for _ in range(100):  # the engine notices within a second; bounded at 10 s
        if not build_leftovers(engine) and not _step_links(docker_env):
            break
        time.sleep(0.1)
    assert "sleep 39.5" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert_nothing_left(engine, docker_env)


# what a step reads of its own cgroup: cgroup v1 files (this machine), or v2's (a VM's)
_CGROUP_FILES = ["memory/memory.limit_in_bytes", "cpu/cpu.shares", "cpuset/cpuset.cpus", "cpu/cpu.cfs_period_us",
                 "cpu/cpu.cfs_quota_us", "memory.max", "cpu.weight", "cpuset.cpus", "cpu.max"]
_CGROUP_SCRIPT = ("cd /sys/fs/cgroup && for f in %s; do [ -e $f ] && echo \"$f=$(cat $f)\"; done; true"
                  % " ".join(_CGROUP_FILES))


def _cgroup_values(text):
    return dict(line.split("=", 1) for line in text.splitlines() if line.split("=")[0] in _CGROUP_FILES)


def test_resource_options_land_in_the_steps_cgroup(engine, docker_env, tmp_path):
    flags = ["-m", "64m", "--cpu-shares", "512", "--cpuset-cpus", "0", "--cpu-period", "50000",
             "--cpu-quota", "25000"]
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nRUN %s\n" % _CGROUP_SCRIPT})
    in_build = _cgroup_values(build(docker_env, ctx, "--no-cache", *flags).stdout)
    in_container = _cgroup_values(dk(docker_env, "run", "--rm", *flags, "busybox", "sh", "-c", _CGROUP_SCRIPT).stdout)
    # what a container with the same flags gets (the period and quota too, where the runtime sets them)
    assert in_build == in_container
    v1 = "memory/memory.limit_in_bytes" in in_build
    assert in_build["memory/memory.limit_in_bytes" if v1 else "memory.max"] == str(64 << 20)
    assert in_build["cpu/cpu.shares" if v1 else "cpu.weight"] == ("512" if v1 else str(1 + (510 * 9999) // 262142))
    assert in_build["cpuset/cpuset.cpus" if v1 else "cpuset.cpus"] == "0"


def test_memory_limit_kills_a_greedy_step(engine, docker_env, tmp_path):
    # the shell keeps 96 MiB in a variable: over a 32 MiB limit (and its 64 MiB memory+swap)
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nRUN x=$(head -c 100663296 /dev/zero | tr '\\0' a); "
                                "echo survived ${#x}\n"})
    r = build(docker_env, ctx, "--no-cache", "-m", "32m", check=False)
    assert r.returncode != 0 and "survived 100663296" not in r.stdout
    assert "returned a non-zero code: 137" in r.stdout + r.stderr
    assert_nothing_left(engine, docker_env)


def test_shm_size_and_ulimits(engine, docker_env, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nRUN df -k /dev/shm | tail -1; echo n=$(ulimit -n) "
                                "h=$(ulimit -Hn)\n"})
    out = build(docker_env, ctx, "--no-cache", "--shm-size", "100m", "--ulimit", "nofile=100:200").stdout
    assert re.search(r"^shm\s+102400\s", out, re.M)
    assert "n=100 h=200" in out


@pytest.mark.parametrize("query,named", [
    ("memory=abc", "memory"), ("memswap=-5", "memswap"), ("cpushares=1.5", "cpushares"),
    ("cpuquota=x", "cpuquota"), ("cpuperiod=x", "cpuperiod"), ("shmsize=-1", "shmsize"),
    ("cpusetcpus=a-b", "cpusetcpus"), ("memory=1024", "Minimum memory limit"),
    ("ulimits=%5B%7B%22Name%22%3A%22nosuch%22%7D%5D", "ulimit"), ("ulimits=notjson", "ulimits"),
    ("extrahosts=nohost", "extrahosts"), ("extrahosts=h%3Anot-an-ip", "extrahosts"),
    ("networkmode=nosuchnet", "nosuchnet"), ("networkmode=container%3Ax", "networkmode"),
    ("squash=1", "squash"), ("platform=windows%2Famd64", "windows/amd64"),
    ("platform=linux%2Fs390x", "linux/s390x"),
])
def test_bad_options_are_400_before_anything_runs(engine, query, named):
    status, body = engine.request("POST", "/v1.44/build?" + query, body=context_tar("FROM busybox\nRUN true\n"),
                                  headers={"Content-Type": "application/x-tar"})
    assert status == 400, body
    assert named in body["message"]


def test_a_killed_engine_steps_are_released_at_the_next_build(tmp_path, busybox_rootfs_tar):
    from tests.support.engine import Engine
    e = Engine(tmp_path / "eng").start()
    env = dict(os.environ, DOCKER_HOST=e.url, DOCKER_CONFIG=str(tmp_path / "cfg"))
    try:
        e.import_tar(busybox_rootfs_tar, "busybox:latest")
        ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo tick; sleep 38.75\n"})
        p = subprocess.Popen(["docker", "build", ctx], env=dict(env, DOCKER_BUILDKIT="0"), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        for _ in range(100):  # bounded: 10 s for the step to be on the bridge
            if _step_links(env):
                break
            time.sleep(0.1)
        assert len(_step_links(env)) == 1 and _ipam_owners(e) - _containers(env)
        e.proc.kill()  # the engine dies mid-step: its RUN container, veth and address stay
        e.proc.wait()
        p.wait(30)
        e.start()
        ctx2 = write_tree(tmp_path / "ctx2", {"Dockerfile": "FROM busybox\nRUN true\n"})
        build(env, ctx2)  # the first build after a start cleans what the dead engine left
        assert "sleep 38.75" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert_nothing_left(e, env)
    finally:
        e.close()


def test_docker_sdk_build_options(engine, docker_env, web, tmp_path):
    import docker
    client = docker.DockerClient(base_url=engine.url, version="1.44")
    try:
        ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nRUN grep sdkhost /etc/hosts; %s\n%s"
                                    % (_CGROUP_SCRIPT, _wget(web))})
        _, logs = client.images.build(path=ctx, nocache=True, extra_hosts={"sdkhost": "10.9.8.7"},
                                      container_limits={"memory": 48 << 20})
        out = "".join(m.get("stream", "") for m in logs)
        assert "10.9.8.7\tsdkhost" in out and "hello-from-web" in out
        limits = _cgroup_values(out)
        assert str(48 << 20) in (limits.get("memory/memory.limit_in_bytes"), limits.get("memory.max"))
        with pytest.raises(docker.errors.BuildError) as e:
            client.images.build(path=ctx, nocache=True, network_mode="none")
        assert "hello-from-web" not in "".join(m.get("stream", "") for m in e.value.build_log)
        with pytest.raises(docker.errors.APIError) as e:
            client.images.build(path=ctx, container_limits={"cpushares": "lots"})
        assert e.value.status_code == 400 and "cpushares" in str(e.value)
    finally:
        client.close()
    assert_nothing_left(engine, docker_env)


# --- side by side with dockerd (Debian's 20.10, private socket, no bridge: --network none) --------
_SIDE_BY_SIDE = ("FROM busybox\nRUN echo '--hosts'; cat /etc/hosts; echo '--resolv'; cat /etc/resolv.conf; "
                 "echo \"--hostname $(hostname | wc -c) $(cat /etc/hostname | wc -c)\"; "
                 "echo n=$(ulimit -n) h=$(ulimit -Hn); df -k /dev/shm | tail -1; ls /sys/class/net; "
                 "cd /sys/fs/cgroup && for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes "
                 "cpu/cpu.shares cpuset/cpuset.cpus memory.max memory.swap.max cpu.weight cpuset.cpus; "
                 "do [ -e $f ] && echo \"$f=$(cat $f)\"; done; true\nRUN true\n")


def _masked(out):
    """The build's stream less what differs by nature: ids, the legacy-builder banner."""
    out = re.sub(r"[0-9a-f]{12}", "ID", out)
    return [line for line in out.splitlines() if line.strip() and not line.startswith((
        "DEPRECATED", " " * 12))]


def _dockerd_build(dockerd, *args):
    return subprocess.run(["docker", "build"] + list(args), capture_output=True, text=True, timeout=120,
                          env=dockerd.env(DOCKER_BUILDKIT="0"))


def test_run_environment_as_dockerd_gives_it(dockerd, docker_env, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": _SIDE_BY_SIDE})
    flags = ["--no-cache", "--network", "none", "--add-host", "foo:1.2.3.4", "--ulimit", "nofile=100:200",
             "--shm-size", "100m", "-m", "64m", "--cpu-shares", "512", "--cpuset-cpus", "0"]
    theirs = _dockerd_build(dockerd, *flags, ctx)
    ours = build(docker_env, ctx, *flags)
    assert theirs.returncode == 0, theirs.stderr
    assert "1.2.3.4\tfoo" in ours.stdout and "n=100 h=200" in ours.stdout
    assert _masked(ours.stdout) == _masked(theirs.stdout)
    greedy = write_tree(tmp_path / "greedy", {
        "Dockerfile": "FROM busybox\nRUN x=$(head -c 100663296 /dev/zero | tr '\\0' a); echo survived ${#x}\n"})
    theirs = _dockerd_build(dockerd, "--no-cache", "--network", "none", "-m", "32m", greedy)
    ours = build(docker_env, greedy, "--no-cache", "--network", "none", "-m", "32m", check=False)
    assert ours.returncode == theirs.returncode != 0
    assert _masked(ours.stderr)[-1] == _masked(theirs.stderr)[-1]  # ...returned a non-zero code: 137
