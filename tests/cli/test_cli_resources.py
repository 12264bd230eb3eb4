"""cp, port, stats, events, diff, commit, export, update, prune, system df, network and volume:
hostbridge's CLI next to the stock docker CLI against the same engine (dockerd and ours)."""

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import uuid

import pytest

pytestmark = pytest.mark.root


def _name(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def _hb_bytes(backend, *args, input=None):
    return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), input=input, capture_output=True,
                          env=backend.env(), cwd=backend.env()["PYTHONPATH"], timeout=60)


def _docker_bytes(backend, *args, input=None):
    return subprocess.run(["docker"] + list(args), input=input, capture_output=True, env=backend.env(), timeout=60)


def _tar_names(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sorted(m.name.rstrip("/") for m in tar.getmembers())


@pytest.fixture
def sleeper(backend):
    """A running container (removed afterwards)."""
    name = _name("run")
    assert backend.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "120").returncode == 0
    yield name
    backend.docker("rm", "-f", name)


def test_cp_both_ways(backend, sleeper, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello\n")
    (src / "sub" / "b").write_text("deep\n")
    hb = backend.hb
    assert hb("cp", str(src), sleeper + ":/tmp/").returncode == 0
    assert hb("cp", str(src) + "/.", sleeper + ":/tmp/content").returncode == 0
    assert hb("cp", str(src / "a.txt"), sleeper + ":/tmp/renamed.txt").returncode == 0
    found = backend.docker("exec", sleeper, "find", "/tmp/src", "/tmp/content", "/tmp/renamed.txt").stdout.split()
    assert sorted(found) == ["/tmp/content", "/tmp/content/a.txt", "/tmp/content/sub", "/tmp/content/sub/b",
                             "/tmp/renamed.txt", "/tmp/src", "/tmp/src/a.txt", "/tmp/src/sub", "/tmp/src/sub/b"]
    assert backend.docker("exec", sleeper, "cat", "/tmp/content/sub/b").stdout == "deep\n"
    out = tmp_path / "out"
    out.mkdir()
    assert hb("cp", sleeper + ":/tmp/src", str(out)).returncode == 0
    assert hb("cp", sleeper + ":/tmp/src/.", str(out / "copy")).returncode == 0
    assert hb("cp", sleeper + ":/etc/passwd", str(out / "pw")).returncode == 0
    assert (out / "src" / "sub" / "b").read_text() == "deep\n"
    assert (out / "copy" / "a.txt").read_text() == "hello\n"
    assert (out / "pw").read_text().startswith("root:")
    assert os.stat(out / "pw").st_uid == os.getuid()
    # '-': the same tar both CLIs stream, and a tar from stdin
    ours, theirs = _hb_bytes(backend, "cp", sleeper + ":/tmp/src", "-"), _docker_bytes(backend, "cp",
                                                                                       sleeper + ":/tmp/src", "-")
    assert ours.returncode == theirs.returncode == 0
    assert _tar_names(ours.stdout) == _tar_names(theirs.stdout) == ["src", "src/a.txt", "src/sub", "src/sub/b"]
    assert _hb_bytes(backend, "cp", "-", sleeper + ":/tmp/content", input=ours.stdout).returncode == 0
    assert backend.docker("exec", sleeper, "cat", "/tmp/content/src/a.txt").stdout == "hello\n"


@pytest.mark.parametrize("args", [
    ["{c}:/no-such-path", "{tmp}/x"], ["hb-no-such-container:/etc", "{tmp}/x"], ["{tmp}", "{tmp}/y"],
    ["{tmp}/no-such-file", "{c}:/tmp"],
])
def test_cp_errors_exit_like_docker(backend, sleeper, tmp_path, args):
    args = [a.format(c=sleeper, tmp=tmp_path) for a in args]
    ours, theirs = backend.hb("cp", *args), backend.docker("cp", *args)
    assert ours.returncode == theirs.returncode == 1
    assert len(ours.stderr.strip().splitlines()) == 1
    assert ours.stdout == ""


def test_port(backend, sleeper):
    ours, theirs = backend.same("port", sleeper)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (0, "")
    ours, theirs = backend.same("port", sleeper, "80")
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr == theirs.stderr == "Error: No public port '80' published for %s\n" % sleeper
    if backend.name != "engine":
        return  # dockerd runs here without a bridge: nothing to publish on
    name = _name("ports")
    assert backend.docker("run", "-d", "--name", name, "-p", "127.0.0.1::80", "-p", "127.0.0.1::81/udp",
                          "busybox", "sleep", "60").returncode == 0
    try:
        for args in (["port", name], ["port", name, "80"], ["port", name, "81/udp"]):
            ours, theirs = backend.same(*args)
            assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), args
            assert "127.0.0.1:" in ours.stdout
    finally:
        backend.docker("rm", "-f", name)


def test_stats_no_stream(backend, sleeper):
    fixed = "{{.ID}} {{.Name}} {{.NetIO}} {{.BlockIO}} {{.PIDs}}"
    ours, theirs = backend.same("stats", "--no-stream", "--format", fixed, sleeper)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout and " 1\n" in ours.stdout
    ours = backend.hb("stats", "--no-stream", sleeper)
    theirs = backend.docker("stats", "--no-stream", sleeper)
    assert ours.stdout.splitlines()[0] == theirs.stdout.splitlines()[0]
    assert re.fullmatch(r"[0-9a-f]{12}\s+%s\s+\d+\.\d\d%%\s+[\d.]+[KMG]?i?B / [\d.]+[KMGT]?i?B\s+\d+\.\d\d%%\s+"
                        r"0B / 0B\s+\S+ / \S+\s+1" % sleeper, ours.stdout.splitlines()[1])
    row = json.loads(backend.hb("stats", "--no-stream", "--format", "{{json .}}", sleeper).stdout)
    their_row = json.loads(theirs_json := backend.docker("stats", "--no-stream", "--format", "{{json .}}",
                                                         sleeper).stdout)
    assert sorted(row) == sorted(their_row), theirs_json
    ours, theirs = backend.hb("stats", "--no-stream", "hb-no-such"), backend.docker("stats", "--no-stream", "hb-no-such")
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr.strip() == "Error response from daemon: No such container: hb-no-such"


def test_events_between_times(backend):
    name = _name("ev")
    since = "%d" % int(time.time() - 1)
    assert backend.docker("create", "--name", name, "--network", "none", "-l", "hbev=1", "busybox", "true").returncode == 0
    backend.docker("rm", name)
    until = "%d" % int(time.time() + 1)
    time.sleep(1.2)  # --until must be in the past for the stream to end by itself
    for fmt_args in ([], ["--format", "{{json .}}"], ["--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"]):
        args = ["events", "--since", since, "--until", until, "--filter", "container=" + name] + fmt_args
        ours, theirs = backend.hb(*args), backend.docker(*args)
        assert ours.returncode == theirs.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout, fmt_args
        assert ours.stdout.count("\n") >= 2
    assert "container create" in backend.hb("events", "--since", since, "--until", until,
                                            "--filter", "event=create").stdout


def test_diff_commit_export(backend, tmp_path):
    name = _name("chg")
    assert backend.docker("run", "--name", name, "--network", "none", "busybox", "sh", "-c",
                          "echo hi > /tmp/x; mkdir /newdir; rm /bin/true").returncode == 0
    ref = "hb/committed:%s" % uuid.uuid4().hex[:6]
    try:
        ours, theirs = backend.same("diff", name)
        assert ours.returncode == theirs.returncode == 0
        assert sorted(ours.stdout.splitlines()) == sorted(theirs.stdout.splitlines())
        assert {"A /tmp/x", "A /newdir", "D /bin/true"} <= set(ours.stdout.splitlines())
        r = backend.hb("commit", "-a", "hb tester", "-m", "a message", "-c", 'CMD ["cat", "/tmp/x"]', name, ref)
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.stdout)
        info = backend.docker("inspect", "-f", "{{.Author}}|{{.Comment}}|{{json .Config.Cmd}}", ref).stdout
        assert info == 'hb tester|a message|["cat","/tmp/x"]\n'
        assert backend.hb("run", "--rm", "--network", "none", ref).stdout == "hi\n"
        out = tmp_path / "fs.tar"
        assert backend.hb("export", "-o", str(out), name).returncode == 0
        names = _tar_names(out.read_bytes())
        assert "tmp/x" in names and "newdir" in names and "bin/true" not in names
        piped = _hb_bytes(backend, "export", name)
        assert piped.returncode == 0 and _tar_names(piped.stdout) == names
    finally:
        backend.docker("rm", "-f", name)
        backend.docker("rmi", ref)


def test_update(backend, sleeper):
    r = backend.hb("update", "-m", "64m", "--memory-swap", "128m", "--pids-limit", "50", "--cpus", "0.5",
                   "--restart", "on-failure:2", sleeper)
    assert (r.returncode, r.stdout) == (0, sleeper + "\n"), r.stderr
    got = backend.docker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}} "
                         "{{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}", sleeper).stdout
    assert got == "67108864 134217728 50 500000000 on-failure\n"
    r = backend.hb("update", sleeper)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    ours, theirs = backend.hb("update", "-m", "64m", "hb-no-such"), backend.docker("update", "-m", "64m", "hb-no-such")
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr.startswith("Error response from daemon: ")


def test_prune(backend):
    label = "hbprune=%s" % uuid.uuid4().hex[:8]
    cid = backend.docker("create", "-l", label, "--network", "none", "busybox", "true").stdout.strip()
    r = backend.hb("container", "prune", "-f", "--filter", "label=" + label)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"Deleted Containers:\n%s\n\nTotal reclaimed space: \d+(\.\d+)?[kMG]?B\n" % cid, r.stdout)
    assert backend.docker("inspect", cid).returncode == 1
    r = backend.hb("container", "prune", "-f", "--filter", "label=" + label)
    assert r.stdout == "Total reclaimed space: 0B\n"
    r = backend.hb("container", "prune", input="n\n")
    assert r.stdout == "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
    vol = backend.hb("volume", "create", "--label", label).stdout.strip()
    r = backend.hb("volume", "prune", "-f", "--filter", "label=" + label)
    assert r.stdout.startswith("Deleted Volumes:\n%s\n\nTotal reclaimed space: " % vol), r.stderr
    name = _name("dangle")
    assert backend.docker("run", "--name", name, "--network", "none", "-l", label, "busybox", "true").returncode == 0
    image = backend.hb("commit", "-c", "LABEL %s" % label.replace("=", "=\"") + '"', name).stdout.strip()
    backend.docker("rm", name)
    r = backend.hb("image", "prune", "-f", "--filter", "label=" + label)
    assert r.returncode == 0, r.stderr
    assert "deleted: %s\n" % image in r.stdout and r.stdout.startswith("Deleted Images:\n")
    assert backend.docker("image", "inspect", image).returncode == 1


def test_system_df(backend, sleeper):
    for args in (["system", "df"], ["system", "df", "--format", "{{json .}}"], ["system", "df", "-v"]):
        ours, theirs = backend.same(*args)
        assert ours.returncode == theirs.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout, args
    assert backend.hb("system", "df").stdout.startswith("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n")


def test_network_lifecycle(backend):
    net, other = _name("net"), _name("net")
    r = backend.hb("network", "create", "--subnet", "10.231.7.0/24", "--gateway", "10.231.7.1", "--label", "a=b", net)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", r.stdout)
    container = _name("onnet")
    try:
        for args in (["network", "ls"], ["network", "ls", "-q"], ["network", "ls", "--filter", "name=" + net],
                     ["network", "ls", "--format", "{{json .}}"], ["network", "inspect", net],
                     ["network", "inspect", "-f", "{{.Name}} {{json .IPAM.Config}} {{.Labels}}", net]):
            ours, theirs = backend.same(*args)
            assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), args
        assert backend.docker("create", "--name", container, "--network", net, "busybox", "true").returncode == 0
        assert backend.hb("network", "disconnect", net, container).returncode == 0
        assert backend.hb("network", "connect", "--alias", "hbalias", net, container).returncode == 0
        aliases = backend.docker("inspect", "-f", "{{json (index .NetworkSettings.Networks \"%s\").Aliases}}" % net,
                                 container).stdout
        assert "hbalias" in aliases
        backend.docker("rm", "-f", container)
        assert backend.hb("network", "rm", net).stdout == net + "\n"
        ours, theirs = backend.same("network", "inspect", net)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (1, "[]\n")
        assert ours.stderr.startswith("Error response from daemon: ")
        assert backend.hb("network", "rm", "-f", net).returncode == 0
        assert backend.hb("network", "rm", net).returncode == 1
        assert backend.hb("network", "create", "--label", "hbprune=" + other, other).returncode == 0
        r = backend.hb("network", "prune", "-f", "--filter", "label=hbprune=" + other)
        assert r.returncode == 0 and ("%s\n" % other) in r.stdout and r.stdout.startswith("Deleted Networks:\n")
    finally:
        backend.docker("rm", "-f", container)
        backend.docker("network", "rm", net, other)


def test_volume_lifecycle(backend):
    vol = _name("vol")
    assert backend.hb("volume", "create", "--label", "k=v", vol).stdout == vol + "\n"
    try:
        for args in (["volume", "ls"], ["volume", "ls", "-q"], ["volume", "ls", "--format", "{{json .}}"],
                     ["volume", "ls", "--filter", "label=k=v"], ["volume", "inspect", vol],
                     ["volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels}}", vol]):
            ours, theirs = backend.same(*args)
            assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), args
        r = backend.hb("run", "--rm", "--network", "none", "-v", vol + ":/data", "busybox", "sh", "-c",
                       "echo kept > /data/f")
        assert r.returncode == 0, r.stderr
        r = backend.hb("run", "--rm", "--network", "none", "--mount", "type=volume,source=%s,target=/d,readonly" % vol,
                       "busybox", "sh", "-c", "cat /d/f; touch /d/g 2>/dev/null || echo ro")
        assert r.stdout == "kept\nro\n", r.stderr
        assert backend.hb("volume", "rm", vol).stdout == vol + "\n"
        ours, theirs = backend.same("volume", "rm", vol)
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
        ours, theirs = backend.same("volume", "inspect", vol)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (1, "[]\n")
    finally:
        backend.docker("volume", "rm", "-f", vol)


def test_run_mount_and_network_flags(backend, tmp_path):
    (tmp_path / "in.txt").write_text("bound\n")
    r = backend.hb("run", "--rm", "--network", "none", "--add-host", "hbhost:127.0.0.7", "--dns", "127.0.0.9",
                   "--tmpfs", "/scratch:size=1m", "--mount", "type=bind,source=%s,target=/b,readonly" % tmp_path,
                   "busybox", "sh", "-c", "grep hbhost /etc/hosts; grep nameserver /etc/resolv.conf; cat /b/in.txt; "
                   "grep -c ' /scratch tmpfs' /proc/mounts; touch /b/new 2>/dev/null || echo ro")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "127.0.0.7\thbhost\nnameserver 127.0.0.9\nbound\n1\nro\n"
    src = _name("vsrc")
    assert backend.docker("create", "--name", src, "-v", "/shared", "busybox", "true").returncode == 0
    try:
        r = backend.hb("run", "--rm", "--network", "none", "--volumes-from", src, "busybox", "sh", "-c",
                       "test -d /shared && echo yes")
        assert r.stdout == "yes\n", r.stderr
    finally:
        backend.docker("rm", "-v", src)
    r = backend.hb("run", "--rm", "--mount", "type=nope,target=/x", "busybox", "true")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1


def test_management_groups_match_top_level(backend, sleeper):
    for args in (["container", "ls"], ["container", "ls", "-a", "-q"], ["image", "ls"], ["container", "port", sleeper],
                 ["container", "inspect", sleeper], ["image", "inspect", "-f", "{{.Os}}", "busybox"],
                 ["container", "inspect", "busybox"]):
        ours, theirs = backend.same(*args)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), args


def test_system_prune_with_a_filter(backend):
    label = "hbsys=%s" % uuid.uuid4().hex[:8]
    cid = backend.docker("create", "-l", label, "--network", "none", "busybox", "true").stdout.strip()
    r = backend.hb("system", "prune", "-f", "--filter", "label=" + label)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Deleted Containers:\n%s\n\n" % cid)
    assert re.search(r"\nTotal reclaimed space: \d+(\.\d+)?[kMG]?B\n$", r.stdout)
    r = backend.hb("system", "prune", "--volumes", "--filter", "until=1h")
    assert r.returncode == 1 and r.stderr.strip() == 'ERROR: The "until" filter is not supported with "--volumes"'


def test_stats_streams_until_interrupted(backend, sleeper):
    import select
    import signal

    from tests.support.signals import sigint_default

    proc = subprocess.Popen([sys.executable, "-m", "hostbridge.cli", "stats", sleeper], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=backend.env(), cwd=backend.env()["PYTHONPATH"],
                            preexec_fn=sigint_default)
    try:
        out = b""
        deadline = time.monotonic() + 20
        while out.count(b"CONTAINER ID") < 2 and time.monotonic() < deadline:  # two redraws
            if select.select([proc.stdout], [], [], 1)[0]:
                out += os.read(proc.stdout.fileno(), 65536)
        # not a terminal: the redraws come without the clear-screen codes, one table after another
        assert out.count(b"CONTAINER ID") >= 2 and out.count(sleeper.encode()) >= 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
