"""``hostbridge login/logout/search/pull/push`` against the real engine and docker-registry, with
the stock docker CLI as the oracle for what is printed. Credentials go to a file-backed test
keyring (the OS keyring is not available here)."""

import json
import os
import subprocess
import sys

import pytest

from tests.registry.engine_support import docker, push_image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def hb(tmp_path, engine):
    keyring_file = str(tmp_path / "keyring.json")
    env = dict(os.environ, PYTHONPATH=REPO, HOSTBRIDGE_HOST=engine.url, HOSTBRIDGE_HOME=str(tmp_path / "hbhome"),
               PYTHON_KEYRING_BACKEND="tests.unit.filekeyring.FileKeyring", HOSTBRIDGE_TEST_KEYRING=keyring_file,
               DOCKER_HOST=engine.url, DOCKER_CONFIG=str(tmp_path / "docker-config"), DOCKER_CLI_HINTS="false")
    env.pop("HOSTBRIDGE_DEBUG", None)

    def run(*args, input=None):
        return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), env=env, input=input,
                              capture_output=True, text=True, timeout=120, cwd=REPO)
    run.env, run.keyring_file = env, keyring_file
    return run


@pytest.mark.root
def test_login_push_pull_logout(hb, engine, basic_registry):
    d = basic_registry.domain
    name = "%s/cli/app:1" % d
    docker(hb.env, "tag", "busybox", name)
    bad = hb("login", "-u", "alice", "--password-stdin", d, input="nope\n")
    assert bad.returncode != 0 and "incorrect username or password" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not os.path.exists(hb.keyring_file) or "nope" not in open(hb.keyring_file).read()
    ok = hb("login", "-u", "alice", "--password-stdin", d, input="wonderland\n")
    assert ok.returncode == 0 and ok.stdout.strip() == "Login Succeeded", ok.stderr
    assert "wonderland" in open(hb.keyring_file).read()  # in the (test) keyring, nowhere else

    pushed = hb("push", name)
    assert pushed.returncode == 0, pushed.stderr
    lines = pushed.stdout.splitlines()
    assert lines[0] == "The push refers to repository [%s/cli/app]" % d
    assert any(ln.endswith(": Pushed") for ln in lines) and lines[-1].startswith("1: digest: sha256:")
    iid = docker(hb.env, "inspect", "-f", "{{.Id}}", name).stdout.strip()
    docker(hb.env, "rmi", name)
    pulled = hb("pull", name)
    assert pulled.returncode == 0, pulled.stderr
    out = pulled.stdout.splitlines()
    assert out[0] == "1: Pulling from cli/app" and out[-1] == name
    assert "Status: Downloaded newer image for %s" % name in out
    assert docker(hb.env, "inspect", "-f", "{{.Id}}", name).stdout.strip() == iid
    quiet = hb("pull", "-q", name)
    assert quiet.stdout == name + "\n"

    out = hb("logout", d)
    assert out.stdout.strip() == "Removing login credentials for %s" % d
    assert hb("logout", d).stdout.strip() == "Not logged in to %s" % d
    docker(hb.env, "rmi", name)
    anon = hb("pull", name)
    assert anon.returncode != 0 and "authentication required" in anon.stderr
    assert len(anon.stderr.strip().splitlines()) == 1


@pytest.mark.root
def test_search_and_errors_match_the_docker_cli(tmp_path, hb, busybox_rootfs_tar, registry):
    d = registry.domain
    for repo in ("shop/cart", "shop/till", "misc"):
        push_image(tmp_path, "%s/%s:1" % (d, repo), [{"f": os.urandom(16)}])
    ours, theirs = hb("search", "%s/shop" % d), docker(hb.env, "search", "%s/shop" % d)
    assert ours.returncode == 0 and ours.stdout == theirs.stdout
    assert hb("search", "--limit", "1", "%s/shop" % d).stdout == docker(
        hb.env, "search", "--limit", "1", "%s/shop" % d).stdout
    push_image(tmp_path, "%s/shop/cart:2" % d, [{"f": os.urandom(16)}])
    tagged = hb("search", "--tags", "%s/shop/cart" % d)
    assert tagged.returncode == 0, tagged.stderr
    assert [line.split()[0] for line in tagged.stdout.splitlines()[1:]] == ["%s/shop/cart:1" % d, "%s/shop/cart:2" % d]

    ours = hb("pull", "%s/absent:1" % d)
    theirs = docker(hb.env, "pull", "%s/absent:1" % d, check=False)
    assert ours.returncode != 0 and theirs.returncode != 0
    assert ours.stderr.strip() == theirs.stderr.strip()

    name = "%s/shop/cart:1" % d
    ours = hb("pull", name)
    docker(hb.env, "rmi", name)
    theirs = docker(hb.env, "pull", name)
    assert ours.stdout == theirs.stdout  # non-terminal output: one line per status, no bars
    docker(hb.env, "rmi", name)


def test_progress_printer_matches_docker_non_terminal_lines():
    from hostbridge.cli.registry import ProgressPrinter, StreamError
    out = []
    p = ProgressPrinter(out.append, tty=False)
    for m in [{"status": "Pulling from app", "id": "1"}, {"status": "Pulling fs layer", "progressDetail": {}, "id": "abc"},
              {"status": "Downloading", "progressDetail": {"current": 1, "total": 2}, "progress": "[=>  ]", "id": "abc"},
              {"status": "Pull complete", "progressDetail": {}, "id": "abc"}, {"progressDetail": {}, "aux": {"Tag": "1"}},
              {"status": "Digest: sha256:x"}]:
        p.feed(m)
    assert "".join(out) == "1: Pulling from app\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:x\n"
    with pytest.raises(StreamError, match="boom"):
        p.feed({"errorDetail": {"message": "boom"}, "error": "boom"})
    tty = []
    t = ProgressPrinter(tty.append, tty=True)
    t.feed({"status": "Waiting", "id": "a"})
    t.feed({"status": "Waiting", "id": "b"})
    t.feed({"status": "Downloading", "progressDetail": {"current": 1, "total": 2}, "progress": "[=> ]", "id": "a"})
    assert tty[:2] == ["a: Waiting\n", "b: Waiting\n"]
    assert tty[2] == "\x1b[2A\r\x1b[2Ka: Downloading [=> ]\x1b[2B\r"  # line a, two lines up, in place


def test_search_table_truncates_like_docker():
    from hostbridge.cli.registry import format_search
    rows = format_search([{"name": "redis", "description": "x" * 60, "star_count": 12, "is_official": True},
                          {"name": "a/b", "description": "short\nline", "star_count": 0, "is_official": False}])
    assert rows[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert rows[1].split() == ["redis", "x" * 44 + "…", "12", "[OK]"]
    assert rows[2].split() == ["a/b", "short", "line", "0"]
    assert json.dumps(format_search([], True)) == json.dumps(["NAME      DESCRIPTION   STARS     OFFICIAL"])


@pytest.mark.root
def test_default_tag_and_all_tags_as_docker_says(hb, registry):
    n = "%s/scratch" % registry.domain
    docker(hb.env, "tag", "busybox", n + ":latest")
    docker(hb.env, "tag", "busybox", n + ":x")
    ours, theirs = hb("push", n), docker(hb.env, "push", n)
    assert ours.stdout.splitlines()[0] == theirs.stdout.splitlines()[0] == "Using default tag: latest"
    ours = hb("push", "-a", n)
    assert ours.returncode == 0 and "x: digest:" in ours.stdout, ours.stderr
    docker(hb.env, "rmi", n + ":latest")
    ours, theirs = hb("pull", n), docker(hb.env, "pull", n)
    assert ours.stdout.splitlines()[0] == theirs.stdout.splitlines()[0] == "Using default tag: latest"
    assert ours.stdout.splitlines()[-1] == theirs.stdout.splitlines()[-1] == n + ":latest"
    docker(hb.env, "rmi", n + ":latest")
    docker(hb.env, "rmi", n + ":x")
    ours = hb("pull", "-a", n)
    assert ours.returncode == 0 and ours.stdout.splitlines()[-1] == n, ours.stderr
    assert "x: Pulling from scratch" in ours.stdout
    theirs = docker(hb.env, "pull", "-a", n)
    assert theirs.stdout.splitlines()[-1] == n
    docker(hb.env, "rmi", n + ":latest")
    docker(hb.env, "rmi", n + ":x")
