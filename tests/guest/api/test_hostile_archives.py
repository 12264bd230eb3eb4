"""Hostile tars through every engine path that takes one: docker cp in and out, load, import, build.

Each test plants unique sentinels on the host (under /tmp, where a ``../`` or absolute-path escape
from any engine directory would land) and checks afterwards that none was created or changed, that
the engine answered a clear 4xx or kept the write inside the container, and that a refused image
left no image and no layer behind.
"""

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
import uuid

import pytest

pytestmark = pytest.mark.root

DEEP = "../" * 24  # enough to reach / from any directory the engine extracts into


def tar_of(*members):
    """A tar from (name, kind, data-or-target) triples; kind: file, dir, sym, link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, arg in members:
            ti = tarfile.TarInfo(name)
            ti.mode = 0o755 if kind == "dir" else 0o644
            if kind == "file":
                data = arg.encode() if isinstance(arg, str) else arg
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE}[kind]
            if kind in ("sym", "link"):
                ti.linkname = arg
            t.addfile(ti)
    return buf.getvalue()


def fingerprint(path):
    """What would show a host file was touched: inode, link count, size, mtime and content hash."""
    st = os.lstat(path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return st.st_ino, st.st_nlink, st.st_size, st.st_mtime_ns, st.st_mode, digest


class Sentinels:
    """Unique host paths under /tmp: some that must never appear, one dir and one file that must not change."""

    def __init__(self):
        tag = uuid.uuid4().hex[:12]
        self.absent = "/tmp/hb-robust-absent-" + tag
        self.dir = "/tmp/hb-robust-dir-" + tag
        self.file = "/tmp/hb-robust-file-" + tag
        os.mkdir(self.dir)
        with open(self.file, "w") as f:
            f.write("host secret " + tag + "\n")
        self.secret = "host secret " + tag
        self.before = {p: fingerprint(p) for p in (self.file, "/etc/shadow", "/etc/passwd", "/etc/hostname")
                       if os.path.exists(p)}

    def assert_untouched(self):
        assert not os.path.lexists(self.absent), "an archive wrote %s on the host" % self.absent
        assert os.listdir(self.dir) == [], "an archive wrote into %s on the host" % self.dir
        for p, fp in self.before.items():
            assert fingerprint(p) == fp, "host file %s changed" % p

    def cleanup(self):
        for p in (self.absent, self.file):
            if os.path.lexists(p):
                os.unlink(p)
        shutil.rmtree(self.dir)


@pytest.fixture
def sentinels():
    s = Sentinels()
    yield s
    s.cleanup()


def hostile_members(s):
    """Each a tar that tries one way out of its destination."""
    return {
        "dotdot": [("ok.txt", "file", "fine"), (DEEP + s.absent[1:], "file", "escaped")],
        "symlink-then-file": [("lnk", "sym", s.dir), ("lnk/pwned", "file", "escaped")],
        "relative-symlink-out": [("up", "sym", DEEP + "tmp"), ("up/" + os.path.basename(s.absent), "file", "x")],
        "hardlink-host-file": [("hl", "link", DEEP + s.file[1:])],
        "hardlink-shadow": [("hl", "link", "/etc/shadow"), ("hl2", "link", DEEP + "etc/shadow")],
    }


def container(engine, cmd=("sleep", "1000"), start=True, image="busybox:latest"):
    st, body = engine.request("POST", "/containers/create", {"Image": image, "Cmd": list(cmd)})
    assert st == 201, body
    cid = body["Id"]
    if start:
        st, body = engine.request("POST", "/containers/%s/start" % cid)
        assert st == 204, body
    return cid


def remove(engine, cid):
    engine.request("DELETE", "/containers/%s?force=1" % cid)


def read_from_container(engine, cid, path):
    """The content of a regular file inside the container, via GET /archive (None if absent)."""
    st, body = engine.request("GET", "/containers/%s/archive?path=%s" % (cid, path))
    if st == 404:
        return None
    assert st == 200, body
    with tarfile.open(fileobj=io.BytesIO(body)) as t:
        m = t.next()
        return t.extractfile(m).read().decode() if m.isreg() else ("<%s>" % m.type.decode())


def assert_4xx(status, body):
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and body.get("message"), body
    assert "Traceback" not in body["message"] and "\n" not in body["message"].strip()
    assert "internal error" not in body["message"], body


def body_text(body) -> str:
    return json.dumps(body) if not isinstance(body, bytes) else body.decode("latin-1")


def assert_refused(status, body):
    """A clear refusal from a route that streams its progress (load, import, build): a 4xx
    before the stream, or dockerd's way once it started, a 200 whose stream ends in an
    ``errorDetail`` message. Never a 500, an "internal error" or a traceback."""
    text = body_text(body)
    assert "internal error" not in text and "Traceback" not in text, (status, text)
    if 400 <= status < 500:
        assert_4xx(status, body)
        return
    assert status == 200, (status, text)
    messages = body if isinstance(body, list) else [body]
    errors = [m for m in messages if isinstance(m, dict) and m.get("errorDetail", {}).get("message")]
    assert errors, "a 200 stream with no error message: %s" % text


def wait_for_file(engine, cid, path, timeout=30):
    """Wait (bounded) until ``path`` exists in the container; fail if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_from_container(engine, cid, path) is not None:
            return
        time.sleep(0.05)
    raise AssertionError("%s never appeared in container %s" % (path, cid[:12]))


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_cp_into_container_refuses_every_escape(engine, sentinels, running):
    cid = container(engine, start=running)
    try:
        for what, members in hostile_members(sentinels).items():
            st, body = engine.request("PUT", "/containers/%s/archive?path=/tmp" % cid, tar_of(*members),
                                      {"Content-Type": "application/x-tar"})
            assert_4xx(st, body)
            sentinels.assert_untouched()
        # absolute member names are made relative to the destination, as docker does
        st, body = engine.request("PUT", "/containers/%s/archive?path=/tmp" % cid,
                                  tar_of((sentinels.absent, "file", "inside")), {"Content-Type": "application/x-tar"})
        assert st == 200, body
        assert read_from_container(engine, cid, "/tmp" + sentinels.absent) == "inside"
        sentinels.assert_untouched()
        st, _ = engine.request("GET", "/_ping")
        assert st == 200
    finally:
        remove(engine, cid)


def test_cp_through_symlinks_already_in_the_container_stays_inside(engine, sentinels):
    # the container's own links: to its /, to its init's root, to the reader's root, and to the host's dir
    cid = container(engine, ("sh", "-c", "ln -s / /x; ln -s /proc/1/root /y; ln -s /proc/self/root /z; "
                                         "ln -s %s /w; touch /ready; sleep 1000" % sentinels.dir))
    try:
        wait_for_file(engine, cid, "/ready")
        name = os.path.basename(sentinels.absent)
        for link in ("/x", "/y", "/z", "/w"):
            st, body = engine.request("PUT", "/containers/%s/archive?path=%s/tmp" % (cid, link),
                                      tar_of((name + link[1:], "file", "via " + link)),
                                      {"Content-Type": "application/x-tar"})
            # /x and /y lead to the container's own /: written there. /z is the root of whoever
            # reads it, resolved in the container's scope it is no directory; /w dangles inside.
            assert st == {"/x": 200, "/y": 200, "/z": 404, "/w": 404}[link], (link, st, body)
            sentinels.assert_untouched()
            if st == 200:
                assert read_from_container(engine, cid, "/tmp/" + name + link[1:]) == "via " + link
            else:
                assert_4xx(st, body)
        st, body = engine.request("PUT", "/containers/%s/archive?path=/w" % cid, tar_of(("pwned", "file", "x")),
                                  {"Content-Type": "application/x-tar"})
        assert st in (200, 404), body  # /w dangles inside the container: docker answers 404
        sentinels.assert_untouched()
    finally:
        remove(engine, cid)


def test_cp_out_of_container_through_symlinks_gives_container_files_only(engine, sentinels):
    cid = container(engine, ("sh", "-c", "ln -s / /x; ln -s /proc/1/root /y; ln -s %s /f; touch /ready; sleep 1000"
                             % sentinels.file))
    try:
        wait_for_file(engine, cid, "/ready")
        own = read_from_container(engine, cid, "/etc/hostname")
        assert own.strip() == cid[:12]
        for state in ("running", "stopped"):  # through /proc/PID/root, then a temporary overlay mount
            if state == "stopped":
                assert engine.request("POST", "/containers/%s/stop?t=0" % cid)[0] == 204
                own = read_from_container(engine, cid, "/etc/hostname")  # the layer's file, not the bind mount
                assert own is not None and "host secret" not in own
            for path in ("/x/../../etc/hostname", "/x/etc/hostname", "/x/x/x/../etc/hostname",
                         "/x/proc/../etc/hostname"):
                assert read_from_container(engine, cid, path) == own, (state, path)
            content = read_from_container(engine, cid, "/y/etc/hostname")  # /proc/1/root: no /proc when stopped
            assert content in (own, None), (state, content)
            st, body = engine.request("GET", "/containers/%s/archive?path=/x/%s" % (cid, sentinels.file))
            assert_4xx(st, body)  # the host's path, taken inside the container: no such file
            assert st == 404 and sentinels.secret not in body["message"], (state, body)
        assert engine.request("POST", "/containers/%s/start" % cid)[0] == 204
        # a link to a host path is copied as the link (docker cp's rule); followed, it finds nothing
        assert read_from_container(engine, cid, "/f") == "<2>"
        st, body = engine.request("GET", "/containers/%s/archive?path=/f/" % cid)
        assert_4xx(st, body)
        assert st == 404 and sentinels.secret not in body["message"], body
        st, body = engine.request("GET", "/containers/%s/archive?path=/etc/hostname/x" % cid)
        assert_4xx(st, body)
    finally:
        remove(engine, cid)


def _layout_snapshot(engine):
    st, images = engine.request("GET", "/images/json?all=1")
    assert st == 200
    layers = os.path.join(engine.root, "images", "layers")
    return sorted(i["Id"] for i in images), sorted(os.listdir(layers)) if os.path.isdir(layers) else []


def _save_archive(layer_tar):
    """A `docker save` archive (legacy layout) holding one image with ``layer_tar`` as its layer."""
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["hostile:latest"], "Layers": ["l/layer.tar"]}])
    return tar_of(("manifest.json", "file", manifest), (cfg_name, "file", config), ("l/layer.tar", "file", layer_tar))


def test_load_and_import_refuse_hostile_layers_and_leave_nothing(engine, sentinels):
    before = _layout_snapshot(engine)
    for what, members in hostile_members(sentinels).items():
        layer = tar_of(*members)
        st, body = engine.request("POST", "/images/load?quiet=1", _save_archive(layer),
                                  {"Content-Type": "application/x-tar"})
        # load streams its progress: a refusal is a 4xx or an error message in the 200 stream
        assert_refused(st, body)
        sentinels.assert_untouched()
        assert _layout_snapshot(engine) == before, "a refused load left an image or layer (%s)" % what
        st, body = engine.request("POST", "/images/create?fromSrc=-&repo=hostile&tag=imp", layer,
                                  {"Content-Type": "application/x-tar"})
        assert_refused(st, body)
        sentinels.assert_untouched()
        assert _layout_snapshot(engine) == before, "a refused import left an image or layer (%s)" % what
    st, _ = engine.request("GET", "/images/hostile:latest/json")
    assert st == 404


def test_load_with_manifest_paths_outside_the_archive_is_refused(engine, sentinels):
    before = _layout_snapshot(engine)
    manifest = json.dumps([{"Config": DEEP + sentinels.file[1:], "RepoTags": ["hostile:m"],
                            "Layers": [DEEP + "etc/shadow"]}])
    st, body = engine.request("POST", "/images/load?quiet=1", tar_of(("manifest.json", "file", manifest)),
                              {"Content-Type": "application/x-tar"})
    assert_refused(st, body)
    assert sentinels.secret not in body_text(body)
    sentinels.assert_untouched()
    assert _layout_snapshot(engine) == before


def _build(engine, context, tag):
    st, body = engine.request("POST", "/build?t=%s&rm=1&forcerm=1" % tag, context,
                              {"Content-Type": "application/x-tar"})
    return st, body


def test_build_context_escapes_are_refused(engine, sentinels):
    dockerfile = ("Dockerfile", "file", "FROM busybox:latest\nCOPY . /ctx/\n")
    for what, members in hostile_members(sentinels).items():
        st, body = _build(engine, tar_of(dockerfile, *members), "hostile-build")
        assert_refused(st, body)
        sentinels.assert_untouched()
    st, _ = engine.request("GET", "/images/hostile-build:latest/json")
    assert st == 404


def test_build_copy_through_a_context_symlink_never_reads_the_host(engine, sentinels):
    # the links are legal in the context; following them resolves inside the context, where the
    # host file's path does not exist: each COPY fails as docker's does, naming no host content
    links = (("lnk", "sym", sentinels.file), ("root", "sym", "/"))
    for source in ("lnk", "root/" + sentinels.file[1:]):
        ctx = tar_of(("Dockerfile", "file", "FROM busybox:latest\nCOPY %s /got\n" % source), *links)
        st, body = _build(engine, ctx, "hostile-copy")
        assert_refused(st, body)
        assert "file not found in build context" in body_text(body), (source, body)
        assert sentinels.secret not in body_text(body)
        sentinels.assert_untouched()
        assert engine.request("GET", "/images/hostile-copy:latest/json")[0] == 404


def _strange_tar(kind, dockerfile=False):
    """A tar with one member the kernel refuses: a 5000-byte name, or an invalid capability xattr."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        if dockerfile:
            df = b"FROM busybox:latest\nCOPY . /ctx/\n"
            ti = tarfile.TarInfo("Dockerfile")
            ti.size = len(df)
            t.addfile(ti, io.BytesIO(df))
        ti = tarfile.TarInfo("a" * 5000 if kind == "long name" else "x")
        ti.size = 1
        if kind == "bad xattr":
            ti.pax_headers = {"SCHILY.xattr.security.capability": "not a capability"}
        t.addfile(ti, io.BytesIO(b"x"))
    return buf.getvalue()


def _odd_tars():
    """Archives that are not hostile but broken or strange: each must be a clean 4xx."""
    import gzip
    return {"garbage": b"not a tar at all" * 64, "truncated gzip": gzip.compress(b"x" * 100000)[:200],
            "half a tar": tar_of(("a", "file", "x" * 2000))[:900], "empty": b"",
            "long name": _strange_tar("long name"), "bad xattr": _strange_tar("bad xattr"),
            "zstd": b"\x28\xb5\x2f\xfd" + b"x" * 600}


def test_broken_archives_are_clean_4xx_on_every_path(engine, sentinels):
    cid = container(engine)
    before = _layout_snapshot(engine)
    try:
        for what, data in _odd_tars().items():
            for method, path in (("PUT", "/containers/%s/archive?path=/tmp" % cid), ("POST", "/images/load?quiet=1"),
                                 ("POST", "/images/create?fromSrc=-&repo=broken&tag=x")):
                st, body = engine.request(method, path, data, {"Content-Type": "application/x-tar"})
                if path.startswith("/images/load") and st == 200 and isinstance(body, dict):
                    body, st = {"message": body.get("error")}, 400  # streamed, as dockerd does
                assert_4xx(st, body)
            if what in ("long name", "bad xattr"):  # the others are taken as a Dockerfile, as docker does
                st, body = _build(engine, _strange_tar(what, dockerfile=True), "broken-build")
                assert_refused(st, body)
            assert _layout_snapshot(engine) == before, what
        assert engine.request("GET", "/_ping")[0] == 200
        sentinels.assert_untouched()
    finally:
        remove(engine, cid)


def test_cp_into_proc_sys_and_dev_is_refused_or_contained(engine, sentinels):
    cid = container(engine)
    try:
        for path in ("/proc", "/proc/1", "/proc/sys/kernel", "/sys"):
            st, body = engine.request("PUT", "/containers/%s/archive?path=%s" % (cid, path),
                                      tar_of(("hb-robust-x", "file", "x")), {"Content-Type": "application/x-tar"})
            assert_4xx(st, body)
            assert path in body["message"]
        assert not os.path.exists("/proc/sys/kernel/hb-robust-x") and not os.path.exists("/sys/hb-robust-x")
        sentinels.assert_untouched()
    finally:
        remove(engine, cid)


def test_build_instructions_and_dockerfile_param_never_reach_the_host(engine, sentinels):
    for query, dockerfile in (
            ("dockerfile=" + DEEP + sentinels.file[1:], "FROM busybox:latest\n"),
            ("dockerfile=" + sentinels.file, "FROM busybox:latest\n"),
            ("t=hostile-ins", "FROM busybox:latest\nCOPY %s%s /s\nRUN cat /s\n" % (DEEP, sentinels.file[1:])),
            ("t=hostile-ins", "FROM busybox:latest\nADD %s /s\nRUN cat /s\n" % sentinels.file),
            ("t=hostile-ins", "FROM busybox:latest\nADD file://%s /s\nRUN cat /s\n" % sentinels.file),
            ("t=hostile-ins", "FROM busybox:latest\nCOPY --from=busybox:latest %s%s /s\nRUN cat /s\n"
             % (DEEP, sentinels.file[1:]))):
        st, body = engine.request("POST", "/build?" + query, tar_of(("Dockerfile", "file", dockerfile)),
                                  {"Content-Type": "application/x-tar"})
        assert sentinels.secret not in body_text(body), (query, dockerfile)
        assert_refused(st, body)
        sentinels.assert_untouched()
    assert engine.request("GET", "/images/hostile-ins:latest/json")[0] == 404


def test_cp_into_a_directory_the_container_swaps_for_a_symlink(engine, sentinels):
    """CVE-2018-15664's race: the container flips /tmp/d between a directory and a symlink to a
    host path while we copy into it. Whatever the timing, nothing may land on the host."""
    cid = container(engine, ("sh", "-c", "while true; do rm -rf /tmp/d; mkdir /tmp/d; rm -rf /tmp/d; "
                                         "ln -s %s /tmp/d; done" % sentinels.dir))
    try:
        statuses = set()
        end = time.monotonic() + 20
        for i in range(150):
            if time.monotonic() > end:
                break
            st, body = engine.request("PUT", "/containers/%s/archive?path=/tmp/d" % cid,
                                      tar_of(("f%d" % i, "file", "x"), ("sub/g%d" % i, "file", "y")),
                                      {"Content-Type": "application/x-tar"})
            statuses.add(st)
            assert st == 200 or 400 <= st < 500, (st, body)
            assert os.listdir(sentinels.dir) == [], "docker cp wrote through the container's symlink onto the host"
        assert statuses & {200, 404}, statuses
        sentinels.assert_untouched()
    finally:
        remove(engine, cid)


def test_cp_out_of_a_directory_the_container_swaps_for_a_symlink(engine, sentinels, tmp_path):
    """The read side of the same race: /tmp/d flips between a directory and a symlink to a host
    directory holding a secret. No archive may ever carry the host's file."""
    leak = "/tmp/hb-robust-leak-" + uuid.uuid4().hex[:12]
    os.mkdir(leak)
    with open(os.path.join(leak, "secret.txt"), "w") as f:
        f.write(sentinels.secret)
    cid = container(engine, ("sh", "-c", "while true; do rm -rf /tmp/d; mkdir /tmp/d; echo inside > /tmp/d/secret.txt; "
                                         "rm -rf /tmp/d; ln -s %s /tmp/d; done" % leak))
    try:
        seen = set()
        end = time.monotonic() + 20
        for i in range(150):
            if time.monotonic() > end:
                break
            path = ("/tmp/d/", "/tmp/d/.", "/tmp/d/secret.txt")[i % 3]
            url = "/containers/%s/archive?path=%s" % (cid, path)
            if i % 15 == 14:
                url = "/containers/%s/export" % cid  # docker export walks the same tree
            st, body = engine.request("GET", url)
            seen.add(st)
            assert sentinels.secret.encode() not in (body if isinstance(body, bytes) else json.dumps(body).encode())
        assert 200 in seen, seen
    finally:
        remove(engine, cid)
        shutil.rmtree(leak)


def test_cp_out_of_a_directory_keeps_its_tree_and_hard_links(engine):
    cid = container(engine, ("sh", "-c", "mkdir -p /data/sub; echo one > /data/a; ln /data/a /data/sub/b; "
                                         "ln -s ../a /data/sub/c; touch /ready; sleep 1000"))
    try:
        wait_for_file(engine, cid, "/ready")
        st, body = engine.request("GET", "/containers/%s/archive?path=/data" % cid)
        assert st == 200
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            members = {m.name: m for m in t.getmembers()}
            assert t.extractfile(members["data/a"]).read() == b"one\n"
        assert set(members) == {"data", "data/a", "data/sub", "data/sub/b", "data/sub/c"}
        assert members["data/sub/b"].islnk() and members["data/sub/b"].linkname == "data/a"
        assert members["data/sub/c"].issym() and members["data/sub/c"].linkname == "../a"
    finally:
        remove(engine, cid)
