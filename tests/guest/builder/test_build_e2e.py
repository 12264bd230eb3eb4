"""Issue 8 end to end: Dockerfile builds through a real engine, checked as a user checks them.

Builds go through the stock CLI's classic builder (``DOCKER_BUILDKIT=0 docker build``), the
docker SDK and ``hostbridge build``; every effect is checked inside a container of the result
(or in its config where the instruction only sets config). Traffic goes only to 127.0.0.1: the
published httpd port and a tiny HTTP server this module starts for ``ADD <url>``.
"""

import functools
import http.server
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request

import pytest

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def dk(env, *args, input=None, check=True, timeout=120, cwd=None):
    """The stock ``docker`` CLI against the engine (classic builder)."""
    r = subprocess.run(["docker"] + list(args), input=input, capture_output=True, text=True, timeout=timeout,
                       env=dict(env, DOCKER_BUILDKIT="0"), cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError("docker %s failed (%d):\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def hb(env, *args, input=None, timeout=120, cwd=None):
    """``hostbridge ARGS`` against the engine."""
    e = dict(env, HOSTBRIDGE_HOST=env["DOCKER_HOST"], PYTHONPATH=REPO,
             HOSTBRIDGE_HOME=os.path.join(env["DOCKER_CONFIG"], "hbhome"))
    return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), input=input, capture_output=True,
                          text=True, timeout=timeout, env=e, cwd=cwd)


def write_tree(root, files):
    """files: {relative name: text | bytes | None (a directory)}."""
    for name, data in files.items():
        path = os.path.join(str(root), name)
        if data is None:
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
    return str(root)


def build(env, ctx, *opts, check=True, input=None):
    return dk(env, "build", *opts, ctx, check=check, input=input)


def run_in(env, image, script, *opts):
    """stdout of ``sh -c script`` in a fresh container of ``image``."""
    return dk(env, "run", "--rm", *opts, "--entrypoint", "sh", image, "-c", script).stdout


def inspect(env, image):
    return json.loads(dk(env, "image", "inspect", image).stdout)[0]


def image_id(env, ref):
    r = dk(env, "image", "inspect", "-f", "{{.Id}}", ref, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def build_leftovers(engine):
    """What a build may leave: RUN rootfs dirs, their mounts, their shim processes."""
    rootfs = os.path.join(engine.root, "builder", "rootfs")
    dirs = os.listdir(rootfs) if os.path.isdir(rootfs) else []
    mounts = [line for line in open("/proc/self/mounts") if rootfs in line]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    shims = [line for line in ps.splitlines() if rootfs in line]
    return dirs + mounts + shims


def _get(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as r:
        return r.read().decode()


# --- the seed's workflow --------------------------------------------------------------------------

def test_seed_workflow_built_by_the_stock_cli_and_served(docker_env, tmp_path):
    base = write_tree(tmp_path / "base", {"Dockerfile": (
        "FROM busybox\n"
        "RUN mkdir -p /var/www && echo 'base page' > /var/www/index.html\n"
        "EXPOSE 80\n"
        'CMD ["httpd", "-f", "-p", "80", "-h", "/var/www"]\n')})
    app = write_tree(tmp_path / "app", {"Dockerfile": "FROM e2e_php_box\nADD myApp /var/www\n",
                                        "myApp/index.html": "hello from myApp\n",
                                        "myApp/about/index.html": "about\n"})
    out = build(docker_env, base, "-t", "e2e_php_box").stdout
    assert "Step 4/4 : CMD" in out and "Successfully tagged e2e_php_box:latest" in out
    out = build(docker_env, app, "-t", "e2e_site").stdout
    assert re.search(r"Successfully built [0-9a-f]{12}\n", out)
    name = "e2e-site-web"
    dk(docker_env, "run", "-d", "--name", name, "-p", "127.0.0.1::80", "e2e_site")
    try:
        port = dk(docker_env, "port", name, "80").stdout.strip().rsplit(":", 1)[1]
        body = None
        for _ in range(50):  # httpd needs a moment to listen
            try:
                body = _get("http://127.0.0.1:%s/" % port)
                break
            except OSError:
                time.sleep(0.1)
        assert body == "hello from myApp\n"
        assert _get("http://127.0.0.1:%s/about/" % port) == "about\n"
    finally:
        dk(docker_env, "rm", "-f", name, check=False)


# --- every instruction, its effect inside a container ------------------------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    """A tiny HTTP server on 127.0.0.1 (for ADD <url>): ``(base_url, directory)``."""
    root = str(tmp_path_factory.mktemp("www"))
    with open(os.path.join(root, "remote.txt"), "w") as f:
        f.write("fetched over http\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=root))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % server.server_address[1], root
    server.shutdown()
    server.server_close()


def _tar_gz(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1000
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


ALL_DOCKERFILE = """\
# a comment, then ARG before FROM
ARG BASE=busybox
FROM ${BASE}
MAINTAINER Jane Builder <jane@example.invalid>
LABEL org.example.role="e2e" org.example.multi=one\\
two
ARG VERSION=default
ENV GREETING=hello WHO="the world"
RUN echo "$VERSION" > /version.txt && echo "$GREETING, $WHO" > /greeting.txt
COPY *.txt /globbed/
COPY dir /copied-dir
COPY --chown=1234:2345 owned.dat /owned.dat
COPY --chmod=0751 tool.sh /tool.sh
ADD bundle.tar.gz /extracted/
ADD {url}/remote.txt /remote/
WORKDIR /work/dir
RUN pwd > here.txt
RUN echo 'app:x:4321:4321::/home/app:/bin/sh' >> /etc/passwd && printf '#!/bin/sh\\necho via-mysh > /shell-marker\\nexec /bin/sh "$@"\\n' > /bin/mysh \\
    && chmod 755 /bin/mysh
SHELL ["/bin/mysh", "-c"]
RUN echo after-shell > /after-shell.txt
USER app
RUN id -un > /tmp/whoami.txt
VOLUME /data
EXPOSE 8080/tcp 53/udp
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD ["true"]
ENTRYPOINT ["echo", "entry"]
CMD ["from-cmd"]
"""


@pytest.fixture(scope="module")
def all_image(engine, http_root, tmp_path_factory):
    """One image using every instruction (built once by the stock CLI): ``(ref, build output)``."""
    docker_env = dict(os.environ, DOCKER_HOST=engine.url, DOCKER_CONFIG=os.path.join(engine.base, "docker-config"),
                      DOCKER_CLI_HINTS="false")  # tests/conftest.py's docker_env, for a module fixture
    ctx = write_tree(tmp_path_factory.mktemp("allctx"), {
        "Dockerfile": ALL_DOCKERFILE.replace("{url}", http_root[0]),
        "a.txt": "A\n", "b.txt": "B\n", "c.md": "not globbed\n",
        "dir/one": "1\n", "dir/sub/two": "2\n",
        "owned.dat": "owned\n", "tool.sh": "#!/bin/sh\necho tool\n",
        "bundle.tar.gz": _tar_gz({"inner/file.txt": b"from the tar\n", "top.txt": b"top\n"}),
    })
    out = build(docker_env, ctx, "-t", "e2e_all", "--build-arg", "VERSION=42", "--label", "from.cli=yes").stdout
    return "e2e_all", out


def test_run_env_and_build_arg(docker_env, all_image):
    out = run_in(docker_env, all_image[0], "cat /version.txt /greeting.txt; echo \"$GREETING|$WHO|${VERSION:-unset}\"")
    assert out == "42\nhello, the world\nhello|the world|unset\n"  # ARG values do not persist


def test_arg_before_from_chose_the_base(docker_env, all_image):
    layers = inspect(docker_env, all_image[0])["RootFS"]["Layers"]
    assert layers[0] == inspect(docker_env, "busybox")["RootFS"]["Layers"][0]
    assert run_in(docker_env, all_image[0], "echo ${BASE:-unset}") == "unset\n"


def test_copy_globs_dirs_chown_chmod(docker_env, all_image):
    out = run_in(docker_env, all_image[0], "ls /globbed; ls -R /copied-dir; stat -c '%u:%g' /owned.dat; "
                                           "stat -c '%a' /tool.sh; /tool.sh", "-u", "0")
    lines = out.split("\n")
    assert lines[:2] == ["a.txt", "b.txt"] and "c.md" not in out
    assert "one" in out and "sub" in out and "/copied-dir/sub:\ntwo" in out  # the dir's content, not the dir
    assert "1234:2345" in lines and "751" in lines and "tool" in lines


def test_add_local_tar_is_extracted(docker_env, all_image):
    assert run_in(docker_env, all_image[0], "cat /extracted/inner/file.txt /extracted/top.txt; "
                                            "ls /extracted") == "from the tar\ntop\ninner\ntop.txt\n"


def test_add_url_is_fetched_by_the_engine(docker_env, all_image):
    assert run_in(docker_env, all_image[0], "cat /remote/remote.txt; stat -c %a /remote/remote.txt",
                  "-u", "0") == \
        "fetched over http\n600\n"


def test_workdir_user_shell(docker_env, all_image):
    out = run_in(docker_env, all_image[0], "pwd; cat here.txt; id -un; cat /tmp/whoami.txt; cat /shell-marker "
                                           "/after-shell.txt")
    assert out == "/work/dir\n/work/dir\napp\napp\nvia-mysh\nafter-shell\n"


def test_cmd_and_entrypoint(docker_env, all_image):
    assert dk(docker_env, "run", "--rm", all_image[0]).stdout == "entry from-cmd\n"
    assert dk(docker_env, "run", "--rm", all_image[0], "other").stdout == "entry other\n"


def test_config_only_instructions(docker_env, all_image):
    cfg = inspect(docker_env, all_image[0])
    c = cfg["Config"]
    assert cfg["Author"] == "Jane Builder <jane@example.invalid>"
    assert c["Labels"] == {"org.example.role": "e2e", "org.example.multi": "onetwo", "from.cli": "yes"}
    assert set(c["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert c["StopSignal"] == "SIGUSR1"
    assert c["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5000000000, "Timeout": 2000000000,
                                "Retries": 4}
    assert c["Volumes"] == {"/data": {}}
    assert c["Shell"] == ["/bin/mysh", "-c"]
    assert c["User"] == "app" and c["WorkingDir"] == "/work/dir"


def test_volume_is_a_mount_in_the_container(docker_env, all_image):
    assert " /data " in run_in(docker_env, all_image[0], "cat /proc/mounts")


def test_history_has_one_entry_per_instruction(docker_env, all_image):
    rows = dk(docker_env, "history", "--no-trunc", "--format", "{{.CreatedBy}}", all_image[0]).stdout.splitlines()
    assert rows[:2] == ['/bin/mysh -c #(nop)  LABEL from.cli=yes', '/bin/mysh -c #(nop)  CMD ["from-cmd"]']
    assert len(rows) == len(inspect(docker_env, "busybox")["RootFS"]["Layers"]) + 25  # ARG before FROM: no entry
    assert any(r.startswith("/bin/sh -c #(nop) WORKDIR /work/dir") for r in rows)
    assert any("|1 VERSION=42 /bin/sh -c echo" in r for r in rows)


def test_onbuild_runs_in_the_child(docker_env, tmp_path):
    parent = write_tree(tmp_path / "p", {"Dockerfile": "FROM busybox\n"
                                         "ONBUILD COPY marker /from-onbuild\n"
                                         "ONBUILD RUN echo ran-onbuild > /onbuild.txt\n"})
    build(docker_env, parent, "-t", "e2e_onbuild_parent")
    assert run_in(docker_env, "e2e_onbuild_parent", "ls /onbuild.txt /from-onbuild 2>&1 | wc -l") == "2\n"
    assert inspect(docker_env, "e2e_onbuild_parent")["Config"]["OnBuild"] == [
        "COPY marker /from-onbuild", "RUN echo ran-onbuild > /onbuild.txt"]
    child = write_tree(tmp_path / "c", {"Dockerfile": "FROM e2e_onbuild_parent\n", "marker": "child's\n"})
    out = build(docker_env, child, "-t", "e2e_onbuild_child").stdout
    assert "Executing 2 build triggers" in out
    assert run_in(docker_env, "e2e_onbuild_child", "cat /from-onbuild /onbuild.txt") == "child's\nran-onbuild\n"
    assert not inspect(docker_env, "e2e_onbuild_child")["Config"].get("OnBuild")


# --- cache --------------------------------------------------------------------------------------------

def _steps(out):
    """{step number: 'cache' | 'built'} from a classic build's stream."""
    result, current = {}, None
    for line in out.splitlines():
        m = re.match(r"Step (\d+)/\d+ : ", line)
        if m:
            current = int(m.group(1))
            result[current] = "built"
        elif line.strip() == "---> Using cache" and current:
            result[current] = "cache"
    return result


def test_cache_hits_and_a_changed_file_invalidates_from_its_step(docker_env, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\n"
                                "RUN echo first > /first\n"
                                "COPY one.txt /one.txt\n"
                                "COPY two.txt /two.txt\n"
                                "RUN cat /one.txt /two.txt > /both\n",
                                "one.txt": "one\n", "two.txt": "two\n"})
    first = build(docker_env, ctx, "-t", "e2e_cache").stdout
    assert _steps(first) == {1: "built", 2: "built", 3: "built", 4: "built", 5: "built"}
    again = build(docker_env, ctx, "-t", "e2e_cache").stdout
    assert _steps(again) == {1: "built", 2: "cache", 3: "cache", 4: "cache", 5: "cache"}
    assert image_id(docker_env, "e2e_cache")[7:19] in again
    time.sleep(1.1)  # same size and a new mtime, then new content: both count
    write_tree(tmp_path, {"two.txt": "TWO\n"})
    changed = build(docker_env, ctx, "-t", "e2e_cache").stdout
    assert _steps(changed) == {1: "built", 2: "cache", 3: "cache", 4: "built", 5: "built"}
    assert run_in(docker_env, "e2e_cache", "cat /both") == "one\nTWO\n"
    fresh = build(docker_env, ctx, "--no-cache", "-t", "e2e_cache").stdout
    assert "Using cache" not in fresh
    assert _steps(fresh) == {1: "built", 2: "built", 3: "built", 4: "built", 5: "built"}


# --- multi-stage -----------------------------------------------------------------------------------

MULTI = """\
FROM busybox AS builder
RUN mkdir /out && echo compiled > /out/artifact && echo builder-only > /builder-marker
FROM busybox AS unused
RUN echo never-built > /unused
FROM busybox
COPY --from=builder /out/artifact /app/artifact
COPY --from=0 /builder-marker /app/marker
RUN echo final > /final-marker
"""


def test_multi_stage_copy_from_and_target(docker_env, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": MULTI})
    build(docker_env, ctx, "-t", "e2e_multi")
    assert run_in(docker_env, "e2e_multi", "cat /app/artifact /app/marker /final-marker; ls /out /unused 2>&1 | "
                                          "wc -l") == "compiled\nbuilder-only\nfinal\n2\n"
    layers = inspect(docker_env, "e2e_multi")["RootFS"]["Layers"]
    assert len(layers) == len(inspect(docker_env, "busybox")["RootFS"]["Layers"]) + 3
    build(docker_env, ctx, "-t", "e2e_multi_builder", "--target", "builder")
    assert run_in(docker_env, "e2e_multi_builder", "cat /out/artifact; ls /final-marker /app 2>&1 | wc -l") == \
        "compiled\n2\n"


# --- context -------------------------------------------------------------------------------------------

def test_dockerignore_excludes_with_exceptions_and_double_star(docker_env, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nCOPY . /ctx\n",
                                ".dockerignore": "secret.txt\n**/*.log\nbuild/\n!build/keep.me\n",
                                "secret.txt": "s\n", "app.py": "x\n", "a/b/debug.log": "l\n", "a/b/c.txt": "c\n",
                                "build/junk": "j\n", "build/keep.me": "k\n"})
    for cli in ("docker", "hostbridge"):
        tag = "e2e_ignore_" + cli
        if cli == "docker":
            build(docker_env, ctx, "-t", tag)
        else:
            r = hb(docker_env, "build", "-t", tag, ctx)
            assert r.returncode == 0, r.stderr
        out = run_in(docker_env, tag, "cd /ctx && find . -type f | sort")
        assert out.split() == ["./.dockerignore", "./Dockerfile", "./a/b/c.txt", "./app.py", "./build/keep.me"], cli


def test_stdin_dockerfile_and_file_outside_the_context(docker_env, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"data.txt": "data\n"})
    outside = write_tree(tmp_path / "elsewhere", {"My.Dockerfile": "FROM busybox\nCOPY data.txt /d\n"})
    df = "FROM busybox\nCOPY data.txt /from-stdin\n"
    r = hb(docker_env, "build", "-f", "-", "-t", "e2e_stdin_hb", ctx, input=df)
    assert r.returncode == 0, r.stderr
    build(docker_env, ctx, "-f", "-", "-t", "e2e_stdin_docker", input=df)
    r = hb(docker_env, "build", "-f", os.path.join(outside, "My.Dockerfile"), "-t", "e2e_outside", ctx)
    assert r.returncode == 0, r.stderr
    assert run_in(docker_env, "e2e_stdin_hb", "cat /from-stdin; ls -a / | grep -c dockerfile || true") == "data\n0\n"
    assert run_in(docker_env, "e2e_stdin_docker", "cat /from-stdin") == "data\n"
    assert run_in(docker_env, "e2e_outside", "cat /d") == "data\n"


# --- the other clients ------------------------------------------------------------------------------

def test_docker_sdk_images_build(engine, tmp_path):
    import docker

    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo sdk > /sdk.txt\nCMD [\"cat\", \"/sdk.txt\"]\n"})
    client = docker.DockerClient(base_url=engine.url, version="1.44")
    try:
        image, logs = client.images.build(path=ctx, tag="e2e_sdk:1", rm=True)
        assert "e2e_sdk:1" in image.tags
        assert any("Successfully built" in (m.get("stream") or "") for m in logs)
        assert client.containers.run("e2e_sdk:1", remove=True) == b"sdk\n"
        with pytest.raises(docker.errors.BuildError) as err:
            client.images.build(path=ctx, dockerfile=None, fileobj=io.BytesIO(b"FROM busybox\nRUN exit 7\n"))
        assert "returned a non-zero code: 7" in str(err.value)
    finally:
        client.close()


def test_hostbridge_build_beside_the_stock_cli(docker_env, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nARG V\nCOPY f /f\nRUN echo $V > /v\n", "f": "f\n"})
    r = hb(docker_env, "build", "-t", "e2e_hb:1", "-t", "e2e_hb:2", "--build-arg", "V=7", "--label", "k=v", ctx)
    assert r.returncode == 0, r.stderr
    assert "Step 4/5 : RUN echo $V > /v" in r.stdout and "Successfully tagged e2e_hb:2" in r.stdout
    hb_id = image_id(docker_env, "e2e_hb:1")
    assert hb_id == image_id(docker_env, "e2e_hb:2")
    theirs = build(docker_env, ctx, "-t", "e2e_hb_docker", "--build-arg", "V=7", "--label", "k=v").stdout
    assert theirs.count("Using cache") == 4  # the same steps: the stock CLI's build reuses ours
    assert image_id(docker_env, "e2e_hb_docker") == hb_id
    assert run_in(docker_env, "e2e_hb:1", "cat /f /v") == "f\n7\n"
    q = hb(docker_env, "build", "-q", "--build-arg", "V=7", "--label", "k=v", ctx)
    assert q.returncode == 0 and q.stdout == hb_id + "\n"
    r = hb(docker_env, "build", "--target", "nope", ctx)
    assert r.returncode != 0 and "nope" in r.stderr


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile,line,words", [
    ("FROM busybox\nRUN true\nFOO bar\n", 3, "unknown instruction"),
    ("FROM busybox\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
    ('FROM busybox\n\nENV\n', 3, "ENV"),
])
def test_parse_errors_name_the_line_and_make_no_image(docker_env, tmp_path, dockerfile, line, words):
    ctx = write_tree(tmp_path, {"Dockerfile": dockerfile})
    before = dk(docker_env, "images", "-aq").stdout
    for r in (build(docker_env, ctx, "-t", "e2e_bad", check=False), hb(docker_env, "build", "-t", "e2e_bad", ctx)):
        assert r.returncode != 0
        assert "line %d" % line in r.stderr and words in r.stderr
    assert image_id(docker_env, "e2e_bad") is None
    assert dk(docker_env, "images", "-aq").stdout == before


def test_copy_from_outside_the_context_is_refused(docker_env, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY ../secret /s\n"})
    write_tree(tmp_path, {"secret": "outside\n"})
    r = build(docker_env, ctx, "-t", "e2e_escape", check=False)
    assert r.returncode != 0 and "outside the build context" in r.stderr
    assert image_id(docker_env, "e2e_escape") is None


def test_failing_run_reports_code_and_output_and_moves_no_tag(docker_env, engine, tmp_path):
    ok = write_tree(tmp_path / "ok", {"Dockerfile": "FROM busybox\nRUN echo good > /good\n"})
    build(docker_env, ok, "-t", "e2e_fail:latest")
    good_id = image_id(docker_env, "e2e_fail")
    containers = dk(docker_env, "ps", "-aq").stdout
    bad = write_tree(tmp_path / "bad", {"Dockerfile": "FROM busybox\nRUN echo to-stdout; echo to-stderr >&2; "
                                        "exit 3\n"})
    r = build(docker_env, bad, "-t", "e2e_fail:latest", check=False)
    assert r.returncode == 3
    assert "to-stdout" in r.stdout and "to-stderr" in r.stdout + r.stderr
    assert "returned a non-zero code: 3" in r.stderr
    assert "Successfully" not in r.stdout
    assert image_id(docker_env, "e2e_fail") == good_id
    assert dk(docker_env, "ps", "-aq").stdout == containers
    assert build_leftovers(engine) == []
    h = hb(docker_env, "build", bad)
    assert h.returncode == 3 and "returned a non-zero code: 3" in h.stderr and "to-stdout" in h.stdout


def test_interrupted_build_leaves_no_build_container(docker_env, engine, tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo tick; sleep 57.3; echo late\n"})
    proc = subprocess.Popen(["docker", "build", "--no-cache", ctx], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(docker_env, DOCKER_BUILDKIT="0"), text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 60
        while "tick" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert "tick" in seen
        running = False
        for _ in range(50):  # bounded: 5 s for sh to start the sleep after its echo
            ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            running = any("sleep 57.3" in a for a in ps.splitlines())
            if running:
                break
            time.sleep(0.1)
        assert running
    finally:
        proc.kill()  # the client goes away mid-RUN
        proc.wait()
    left = None
    for _ in range(100):  # bounded: 10 s
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        left = [a for a in ps.splitlines() if "sleep 57.3" in a] + build_leftovers(engine)
        if not left:
            break
        time.sleep(0.1)
    assert left == []


# --- FROM through the registry ------------------------------------------------------------------

@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry on 127.0.0.1 (no auth), for FROM of images the engine lacks."""
    from tests.registry import regsupport

    if not os.path.exists(regsupport.REGISTRY_BIN):
        pytest.skip("docker-registry is missing: apt-get install docker-registry")
    srv = regsupport.RegistryServer(str(tmp_path / "registry")).start()
    yield srv
    srv.stop()


def test_from_pulls_a_missing_image_and_pull_refreshes_it(docker_env, tmp_path, busybox_rootfs_tar, registry):
    from tests.registry.engine_support import push_image

    base = "%s/e2e-base:1" % registry.domain
    push_image(tmp_path, base, [{"etc/marker": b"v1\n"}], busybox_rootfs_tar)
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM %s\nRUN cat /etc/marker > /seen\n" % base})
    try:
        build(docker_env, ctx, "-t", "e2e_pulled")  # not here: pulled
        assert run_in(docker_env, "e2e_pulled", "cat /seen") == "v1\n"
        push_image(tmp_path, base, [{"etc/marker": b"v2\n"}], busybox_rootfs_tar)
        out = build(docker_env, ctx, "-t", "e2e_pulled").stdout
        assert "Using cache" in out and run_in(docker_env, "e2e_pulled", "cat /seen") == "v1\n"
        r = hb(docker_env, "build", "--pull", "-t", "e2e_pulled", ctx)
        assert r.returncode == 0, r.stderr
        assert "Using cache" not in r.stdout
        assert run_in(docker_env, "e2e_pulled", "cat /seen") == "v2\n"
    finally:
        dk(docker_env, "rmi", "-f", "e2e_pulled", base, check=False)
