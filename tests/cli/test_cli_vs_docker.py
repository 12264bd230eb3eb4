"""hostbridge's CLI next to the stock docker CLI, against the same engine: same output."""

import json
import re
import signal
import subprocess
import sys
import tarfile
import time
import uuid

import pytest

pytestmark = pytest.mark.root


def _name(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


@pytest.fixture
def containers(backend):
    """A few containers in different states (removed afterwards)."""
    names = {k: _name(k) for k in ("ok", "fail", "up", "new")}
    d = backend.docker
    assert d("run", "--name", names["ok"], "--network", "none", "-l", "hbtest=1", "busybox",
             "echo", "hello").returncode == 0
    assert d("run", "--name", names["fail"], "--network", "none", "busybox", "sh", "-c",
             "echo to-stderr >&2; echo a-rather-long-command-line; exit 3").returncode == 3
    assert d("run", "-d", "--name", names["up"], "--network", "none", "busybox", "sleep", "60").returncode == 0
    assert d("create", "--name", names["new"], "--network", "none", "busybox", "true").returncode == 0
    yield names
    d("rm", "-f", *names.values())


@pytest.mark.parametrize("args", [
    ["ps"], ["ps", "-a"], ["ps", "-a", "--no-trunc"], ["ps", "-aq"], ["ps", "-a", "-s"], ["ps", "-n", "2"],
    ["ps", "-a", "--filter", "status=exited"], ["ps", "-a", "--filter", "label=hbtest=1"],
    ["ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.Status}}"],
    ["ps", "-a", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.Command}}"],
    ["ps", "-a", "--format", "{{json .}}"],
])
def test_ps(backend, containers, args):
    ours, theirs = backend.same(*args)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    if args[:2] == ["ps", "-a"] and len(args) == 2:
        assert containers["fail"] in ours.stdout and "Exited (3)" in ours.stdout
        assert re.search(r"Up (Less than a second|About a minute|(\d+|N) (seconds?|minutes?))", ours.stdout)


@pytest.mark.parametrize("args", [
    ["images"], ["images", "-q"], ["images", "--no-trunc"], ["images", "busybox"], ["images", "-a"],
    ["images", "--format", "{{json .}}"], ["images", "--filter", "reference=busybox"],
    ["history", "busybox"], ["history", "--no-trunc", "busybox"], ["history", "-q", "busybox"],
    ["history", "--human=false", "busybox"],
])
def test_images_and_history(backend, args):
    ours, theirs = backend.same(*args)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stdout.strip()


def test_inspect(backend, containers):
    for args in (["inspect", containers["fail"]], ["inspect", "busybox"],
                 ["inspect", containers["ok"], containers["new"]], ["inspect", "--type", "image", "busybox"],
                 ["inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", containers["ok"]],
                 ["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{json .Config.Cmd}}", containers["fail"]],
                 ["inspect", "-f", "{{.Name}} {{index .Config.Labels \"hbtest\"}}", containers["ok"]]):
        ours, theirs = backend.same(*args)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), args
    data = json.loads(backend.hb("inspect", containers["fail"]).stdout)
    assert data[0]["State"]["ExitCode"] == 3


def test_inspect_missing_object(backend):
    ours, theirs = backend.same("inspect", "no-such-thing-here")
    assert ours.returncode == theirs.returncode == 1
    assert ours.stdout == theirs.stdout == "[]\n"
    assert ours.stderr.strip() == "Error: No such object: no-such-thing-here"


@pytest.mark.parametrize("args", [[], ["--tail", "1"], ["-t"], ["--since", "1h"]])
def test_logs(backend, containers, args):
    ours, theirs = backend.same("logs", *args, containers["fail"])
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    assert ours.stderr == theirs.stderr
    if not args:
        assert ours.stdout == "a-rather-long-command-line\n" and ours.stderr == "to-stderr\n"


def test_run_rm_echo_hello(backend):
    name = _name("hello")
    r = backend.hb("run", "--rm", "--name", name, "--network", "none", "busybox", "echo", "hello")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello\n", "")
    assert name not in backend.docker("ps", "-a", "--format", "{{.Names}}").stdout


def test_run_propagates_exit_code_and_streams(backend):
    name = _name("exit")
    r = backend.hb("run", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    try:
        assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    finally:
        backend.docker("rm", "-f", name)


def test_run_flags_reach_the_container(backend, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=yes\n")
    r = backend.hb("run", "--rm", "--network", "none", "-e", "A=1", "--env-file", str(env_file), "-w", "/tmp",
                   "-u", "1000", "--hostname", "boxy", "busybox", "sh", "-c",
                   'echo "$A $FROM_FILE $(pwd) $(id -u) $(hostname)"')
    assert (r.returncode, r.stdout) == (0, "1 yes /tmp 1000 boxy\n"), r.stderr


def test_run_stdin(backend):
    r = backend.hb("run", "-i", "--rm", "--network", "none", "busybox", "sh", "-c", "tr a-z A-Z",
                   input="piped in\n")
    assert (r.returncode, r.stdout) == (0, "PIPED IN\n"), r.stderr


def test_run_errors_exit_like_docker(backend):
    missing = backend.hb("run", "--rm", "--network", "none", "busybox", "no-such-command")
    theirs = backend.docker("run", "--rm", "--network", "none", "busybox", "no-such-command")
    assert missing.returncode == theirs.returncode == 127
    assert "executable file not found" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    noimage = backend.hb("run", "--rm", "hb-no-such-image")
    assert noimage.returncode == 125
    assert noimage.stderr.startswith("Unable to find image 'hb-no-such-image:latest' locally\n")


def test_run_detached_stop_rm(backend):
    name = _name("bg")
    r = backend.hb("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    try:
        status = backend.hb("ps", "--filter", "name=" + name, "--format", "{{.ID}} {{.Status}}").stdout
        assert status.startswith(cid[:12] + " Up ")
        assert backend.hb("stop", "-t", "1", name).stdout == name + "\n"
        state = backend.docker("inspect", "-f", "{{.State.Status}}", name).stdout
        assert state == "exited\n"
        assert backend.hb("wait", name).stdout == "137\n"
        assert backend.hb("rm", name).stdout == name + "\n"
        assert backend.docker("inspect", name).returncode == 1
    finally:
        backend.docker("rm", "-f", name)


def test_create_start_attach_rename_kill(backend):
    name, new = _name("c"), _name("renamed")
    cid = backend.hb("create", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo started; exit 4")
    assert cid.returncode == 0, cid.stderr
    try:
        r = backend.hb("start", "-a", name)
        assert (r.returncode, r.stdout) == (4, "started\n")
        assert backend.hb("rename", name, new).returncode == 0
        assert backend.docker("inspect", "-f", "{{.Name}}", new).stdout == "/%s\n" % new
        r = backend.hb("kill", new)  # not running: an error like docker's
        assert r.returncode == 1 and r.stderr.startswith("Error response from daemon: ")
    finally:
        backend.docker("rm", "-f", name, new)


def test_tag_and_rmi(backend):
    ref = "hb/tagged:%s" % uuid.uuid4().hex[:6]
    assert backend.hb("tag", "busybox", ref).returncode == 0
    ours, theirs = backend.same("images", "hb/tagged")
    assert ours.stdout == theirs.stdout and ref.split(":")[1] in ours.stdout
    r = backend.hb("rmi", ref)
    assert (r.returncode, r.stdout) == (0, "Untagged: %s\n" % ref)
    r = backend.hb("rmi", ref)
    theirs = backend.docker("rmi", ref)
    assert r.returncode == theirs.returncode == 1
    assert r.stderr == theirs.stderr


def test_save_load_round_trip(backend, tmp_path):
    ref = "hb/saved:%s" % uuid.uuid4().hex[:6]
    backend.docker("tag", "busybox", ref)
    out = str(tmp_path / "img.tar")
    assert backend.hb("save", "-o", out, ref).returncode == 0
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [ref]
    assert backend.docker("rmi", ref).returncode == 0
    r = backend.hb("load", "-i", out)
    assert (r.returncode, r.stdout) == (0, "Loaded image: %s\n" % ref), r.stderr
    theirs = backend.docker("load", "-i", out)
    assert r.stdout == theirs.stdout
    backend.docker("rmi", ref)
    with open(out, "rb") as f:
        r = subprocess.run([sys.executable, "-m", "hostbridge.cli", "load"], stdin=f, capture_output=True,
                           text=True, env=backend.env(), timeout=60)
    assert (r.returncode, r.stdout) == (0, "Loaded image: %s\n" % ref), r.stderr
    backend.docker("rmi", ref)


def test_import_with_changes_and_message(backend, busybox_rootfs_tar):
    ref = "hb/imported:%s" % uuid.uuid4().hex[:6]
    r = backend.hb("import", "-c", 'CMD ["echo", "from-import"]', "-m", "made by a test", busybox_rootfs_tar, ref)
    try:
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.stdout)
        assert backend.docker("inspect", "-f", "{{json .Config.Cmd}}", ref).stdout == '["echo","from-import"]\n'
        ours, theirs = backend.same("history", ref)
        assert ours.stdout == theirs.stdout and "made by a test" in ours.stdout
        run = backend.hb("run", "--rm", "--network", "none", ref)
        assert run.stdout == "from-import\n"
    finally:
        backend.docker("rmi", ref)


def test_import_from_stdin(backend, busybox_rootfs_tar):
    ref = "hb/stdin:%s" % uuid.uuid4().hex[:6]
    with open(busybox_rootfs_tar, "rb") as f:
        r = subprocess.run([sys.executable, "-m", "hostbridge.cli", "import", "-", ref], stdin=f,
                           capture_output=True, text=True, env=backend.env(), timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert backend.docker("image", "inspect", ref).returncode == 0
    finally:
        backend.docker("rmi", ref)


def test_version_server_section_matches_docker(backend):
    ours, theirs = backend.hb("version"), backend.docker("version")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.startswith("Client:\n Version:")
    our_server = ours.stdout[ours.stdout.index("Server:"):]
    their_server = theirs.stdout[theirs.stdout.index("Server:"):]
    assert our_server == their_server


def test_info_counts(backend):
    data = json.loads(backend.docker("info", "--format", "{{json .}}").stdout)
    r = backend.hb("info")
    assert r.returncode == 0, r.stderr
    assert " Images: %d\n" % data["Images"] in r.stdout
    assert " Server Version: %s\n" % data["ServerVersion"] in r.stdout
    assert backend.hb("info", "-f", "{{.NCPU}}").stdout == "%d\n" % data["NCPU"]


def test_run_forwards_signals_to_the_container(backend):
    script = 'trap "echo got-term; exit 5" TERM; echo ready; while true; do sleep 0.1; done'
    proc = subprocess.Popen([sys.executable, "-m", "hostbridge.cli", "run", "--rm", "--network", "none", "busybox",
                             "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=backend.env(), cwd=backend.env()["PYTHONPATH"])
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert (proc.returncode, out) == (5, "got-term\n"), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("tty", [False, True])
def test_logs_follow_delivers_before_the_container_ends(backend, tty):
    import select

    name = _name("follow")
    flags = ["-t"] if tty else []
    assert backend.docker("run", "-d", *flags, "--name", name, "--network", "none", "busybox", "sh", "-c",
                          "echo first; sleep 60").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "hostbridge.cli", "logs", "-f", name], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=backend.env(), cwd=backend.env()["PYTHONPATH"])
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "logs -f printed nothing while the container runs"
        assert proc.stdout.readline().rstrip(b"\r\n") == b"first"
        assert proc.poll() is None  # still following
        backend.docker("stop", "-t", "0", name)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        backend.docker("rm", "-f", name)


def test_exec(backend):
    name = _name("ex")
    assert backend.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "60").returncode == 0
    try:
        r = backend.hb("exec", name, "sh", "-c", "echo out; echo err >&2; exit 4")
        assert (r.returncode, r.stdout, r.stderr) == (4, "out\n", "err\n")
        r = backend.hb("exec", "-i", "-e", "A=1", "-w", "/tmp", "-u", "1000", name, "sh", "-c",
                       'cat; echo "$A $(pwd) $(id -u)"', input="piped\n")
        assert (r.returncode, r.stdout) == (0, "piped\n1 /tmp 1000\n"), r.stderr
        ours, theirs = backend.hb("exec", name, "no-such-command"), backend.docker("exec", name, "no-such-command")
        assert ours.returncode == theirs.returncode != 0
        assert backend.hb("exec", "-d", name, "touch", "/tmp/detached").returncode == 0
        for _ in range(50):  # the detached process runs on its own: give it up to 5 s
            if backend.docker("exec", name, "test", "-e", "/tmp/detached").returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("exec -d did not run its command")
    finally:
        backend.docker("rm", "-f", name)
    r = backend.hb("exec", name, "true")
    assert r.returncode == 1 and r.stderr.startswith("Error response from daemon: ")


def test_pause_unpause_top(backend):
    name = _name("pz")
    assert backend.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "60").returncode == 0
    try:
        ours, theirs = backend.same("top", name)
        assert ours.returncode == 0 and ours.stdout == theirs.stdout and "sleep 60" in ours.stdout
        assert backend.hb("pause", name).stdout == name + "\n"
        assert backend.docker("inspect", "-f", "{{.State.Status}}", name).stdout == "paused\n"
        assert backend.hb("unpause", name).stdout == name + "\n"
        assert backend.docker("inspect", "-f", "{{.State.Status}}", name).stdout == "running\n"
    finally:
        backend.docker("rm", "-f", name)


_CLICK_PATH = "import sys; from hostbridge.cli.main import main; sys.exit(main(sys.argv[1:]))"
_FAST_PATH = ("import sys; from hostbridge.cli import main; code = main(sys.argv[1:]); "
              "sys.stderr.write('click imported\\n' if 'click' in sys.modules else ''); sys.exit(code)")


_RELATIVE = re.compile(r"(Less than a second|About an? \w+|\d+ \w+)( ago)?")


def _untimed(text: str) -> str:
    """``text`` with docker's relative times ("3 seconds ago", "Up 2 minutes") made one token;
    the columns' widths stay as printed."""
    return _RELATIVE.sub(lambda m: "T".ljust(len(m.group(0))), text)


@pytest.mark.parametrize("args", [
    ["ps", "-a"], ["ps", "-aq", "--no-trunc"], ["ps", "-a", "-s"], ["ps", "-n2", "--format", "{{.Names}}"],
    ["container", "ls", "-a", "--filter", "status=exited"], ["images"], ["image", "ls", "-q", "busybox"],
    ["ps", "-a", "--filter", "bogus=1"],
])
def test_listing_without_click_matches_click(backend, containers, args):
    """The click-free listing path prints what the click command prints, byte for byte, and never
    imports click."""
    def run(code):
        return subprocess.run([sys.executable, "-c", code] + args, capture_output=True, text=True, timeout=60,
                              env=backend.env(), cwd=backend.home)

    for _ in range(4):  # a relative time may tick over between the two runs
        fast, slow = run(_FAST_PATH), run(_CLICK_PATH)
        if fast.stdout == slow.stdout:
            break
    else:  # on a loaded machine it may tick every time: then equal but for the relative times
        fast.stdout, slow.stdout = _untimed(fast.stdout), _untimed(slow.stdout)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert "click imported" not in fast.stderr
    if "bogus=1" in args:
        assert fast.returncode == 1 and fast.stderr.startswith("Error response from daemon: ")


@pytest.mark.parametrize("args", [
    ["ps", "-a", "--format", "{{.Nope}}"], ["images", "--format", "{{.ID"], ["inspect", "-f", "{{.Nope}}", "busybox"],
])
def test_bad_templates_fail_as_docker_does(backend, containers, args):
    ours, theirs = backend.hb(*args), backend.docker(*args)
    assert (ours.returncode, theirs.returncode) == (1, 1), (ours.stderr, theirs.stderr)
    assert ours.stdout.strip() == theirs.stdout.strip() == ""  # (docker inspect prints an empty line first)
    assert ours.stderr.startswith("Error: ") and len(ours.stderr.strip().splitlines()) == 1
