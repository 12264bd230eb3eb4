"""Hostile tars and libraries through the stock CLI: import, load, build, COPY and docker cp.

Each attempt runs against dockerd and ours; host sentinels (a directory under /tmp, which a
``../`` or absolute-path escape from any engine directory reaches) must stay untouched.
CVE-2019-14271: ``docker cp`` once ran a helper chrooted in the container that loaded the
container's NSS libraries; a library here, if ever loaded by the engine, writes a marker on
the host.
"""

import hashlib
import json
import os
import shutil
import subprocess
import uuid

import pytest

from tests.security.tars import tar_of

DEEP = "../" * 24


@pytest.fixture
def host_dir():
    d = "/tmp/hb-sec-" + uuid.uuid4().hex[:10]
    os.mkdir(d)
    with open(d + "/keep", "w") as f:
        f.write("host\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _untouched(d):
    assert sorted(os.listdir(d)) == ["keep"], os.listdir(d)
    with open(d + "/keep") as f:
        assert f.read() == "host\n"


def _run(backend, args, data=None, timeout=120):
    return subprocess.run(["docker"] + args, input=data, capture_output=True, timeout=timeout, env=backend.env())


@pytest.mark.parametrize("how", ["dotdot", "symlink-then-write", "absolute-symlink-dir"])
def test_import_of_an_escaping_layer_writes_nothing_on_the_host(backend, host_dir, how):
    name = os.path.basename(host_dir)
    members = {
        "dotdot": [(DEEP + "tmp/" + name + "/pwned", "file", b"x")],
        "symlink-then-write": [("l", "sym", DEEP + "tmp/" + name), ("l/pwned", "file", b"x")],
        "absolute-symlink-dir": [("l", "sym", host_dir), ("l/pwned", "file", b"x")],
    }[how]
    tag = "hb-sec-import-%s" % backend.name
    r = _run(backend, ["import", "-", tag], tar_of(members))
    if r.returncode == 0:
        _run(backend, ["run", "--rm", tag, "true"])  # using it mounts the layer too
        _run(backend, ["rmi", "-f", tag])
    _untouched(host_dir)


def test_load_of_an_escaping_layer_writes_nothing_on_the_host(backend, host_dir):
    layer = tar_of([("l", "sym", host_dir), ("l/pwned", "file", b"x"), (DEEP + host_dir.lstrip("/") + "/p2", "file", b"x")])
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["hb-sec-load:latest"], "Layers": ["l1/layer.tar"]}])
    image = tar_of([("l1", "dir", None), ("l1/layer.tar", "file", layer), (cfg_name, "file", cfg),
                  ("manifest.json", "file", manifest.encode())])
    r = _run(backend, ["load"], image)
    if r.returncode == 0:
        _run(backend, ["rmi", "-f", "hb-sec-load:latest"])
    _untouched(host_dir)


def test_build_context_traversal_and_absolute_copy_sources_stay_in_the_context(backend, host_dir):
    ctx = tar_of([("Dockerfile", "file", b"FROM busybox\nCOPY . /ctx/\nCOPY abs /abs\nRUN ls -la /ctx\n"),
                (DEEP + host_dir.lstrip("/") + "/pwned", "file", b"x"),
                ("abs", "sym", host_dir + "/keep")])
    tag = "hb-sec-build-%s" % backend.name
    r = subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=ctx, capture_output=True, timeout=300,
                       env=backend.env(DOCKER_BUILDKIT="0"))
    if r.returncode == 0:
        out = _run(backend, ["run", "--rm", tag, "sh", "-c", "cat /abs 2>/dev/null; ls /ctx"])
        assert b"host" not in out.stdout  # the host file behind an absolute link never copied
        _run(backend, ["rmi", "-f", tag])
    _untouched(host_dir)


@pytest.fixture(scope="session")
def nss_lib(tmp_path_factory):
    """A shared library whose constructor writes a marker file (the path baked in)."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (scripts/install-deps.sh --test installs it)")
    d = tmp_path_factory.mktemp("nss")
    marker = "/tmp/hb-nss-loaded-" + uuid.uuid4().hex[:10]
    src = d / "evil.c"
    src.write_text('#include <stdio.h>\n__attribute__((constructor)) static void hit(void) '
                   '{ FILE *f = fopen("%s", "w"); if (f) { fputs("loaded", f); fclose(f); } }\n' % marker)
    lib = d / "libnss_files.so.2"
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return str(lib), marker


def test_cp_never_loads_libraries_from_the_container(backend, nss_lib, tmp_path):
    """CVE-2019-14271: the container's libnss_*.so and nsswitch.conf, then docker cp out and in."""
    lib, marker = nss_lib
    r = backend.docker("create", "busybox", "true")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        for d in ("/lib", "/lib64", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"):
            subprocess.run(["docker", "cp", "-", "%s:/" % cid], input=tar_of(
                [(d.lstrip("/"), "dir", None), (d.lstrip("/") + "/libnss_files.so.2", "file", open(lib, "rb").read()),
                 ("etc", "dir", None), ("etc/nsswitch.conf", "file", b"passwd: files\ngroup: files\n")]),
                capture_output=True, timeout=60, env=backend.env())
        out = _run(backend, ["cp", "%s:/etc/nsswitch.conf" % cid, "-"])
        assert out.returncode == 0, out.stderr
        (tmp_path / "f").write_text("x\n")
        r = _run(backend, ["cp", str(tmp_path / "f"), "%s:/f" % cid])
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(marker), "a library of the container was loaded on the host"
    finally:
        backend.docker("rm", "-f", cid)
        if os.path.exists(marker):
            os.unlink(marker)


def test_malformed_image_manifest_is_a_clean_error(backend):
    """CVE-2021-21285's class: a malformed manifest in docker load fails cleanly; the daemon stays up."""
    for manifest in (b"[{\"Config\": 1, \"Layers\": \"x\"}]", b"{\"not\": \"a list\"}", b"\xff\xfe garbage"):
        r = _run(backend, ["load"], tar_of([("manifest.json", "file", manifest)]))
        assert r.returncode != 0
        assert backend.docker("version", "--format", "{{.Server.Version}}").returncode == 0
