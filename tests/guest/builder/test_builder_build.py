"""The build driver over a real directory image store: config effects, history, cache, stages.

Expected CreatedBy strings and stream lines are dockerd 20.10's classic builder output for the
same Dockerfiles (DOCKER_BUILDKIT=0), recorded when these tests were written.
"""

import hashlib
import os
import re

import pytest

from hostbridge.guest.builder.parser import DockerfileParseError
from hostbridge.guest.errors import InvalidParameter, NotFound
from tests.guest.builder.conftest import created_by, rootfs_file

METADATA_DOCKERFILE = """FROM busybox
ARG FOO=bar
ENV A=1 B="two words"
ENV LEG legacy value
LABEL k=v "x y"=z
WORKDIR /app
COPY a.txt /dest/
COPY a.txt Dockerfile /multi/
USER 1000
EXPOSE 80 443/udp
VOLUME /data /d2
VOLUME ["/j"]
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-c"]
HEALTHCHECK --interval=5s --retries=3 CMD echo ok
ONBUILD RUN echo child
MAINTAINER me <me@x>
CMD ["sh", "-c", "x"]
ENTRYPOINT echo ep
"""


def test_every_metadata_instruction_config_and_history(backend, build):
    r = build(METADATA_DOCKERFILE, {"a.txt": "hello\n"}, tags=["t1"])
    image = backend.image(r.id)
    config = image["config"]
    # dockerd: docker inspect t1 --format '{{json .Config}}'
    assert config["User"] == "1000"
    assert config["ExposedPorts"] == {"443/udp": {}, "80/tcp": {}}
    assert config["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                             "A=1", "B=two words", "LEG=legacy value"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "echo ep"]
    assert config["Cmd"] == ["sh", "-c", "x"]
    assert config["Volumes"] == {"/d2": {}, "/data": {}, "/j": {}}
    assert config["WorkingDir"] == "/app"
    assert config["Labels"] == {"k": "v", "x y": "z"}
    assert config["StopSignal"] == "SIGTERM"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "echo ok"], "Interval": 5000000000, "Retries": 3}
    assert config["OnBuild"] == ["RUN echo child"]
    assert config["Shell"] == ["/bin/sh", "-c"]
    assert image["author"] == "me <me@x>"
    history = created_by(backend, r.id)
    copy_multi, copy_file = history[11], history[12]
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY multi:[0-9a-f]{64} in /multi/ ", copy_multi)
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in /dest/ ", copy_file)
    # dockerd: docker history --no-trunc --format '{{.CreatedBy}}' t1 (its RUN lines left out)
    assert history[:11] + history[13:-1] == [
        '/bin/sh -c #(nop)  ENTRYPOINT ["/bin/sh" "-c" "echo ep"]',
        '/bin/sh -c #(nop)  CMD ["sh" "-c" "x"]',
        "/bin/sh -c #(nop)  MAINTAINER me <me@x>",
        "/bin/sh -c #(nop)  ONBUILD RUN echo child",
        "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"echo ok\"] \"5s\" \"0s\" \"0s\" '\\x03'}",
        "/bin/sh -c #(nop)  SHELL [/bin/sh -c]",
        "/bin/sh -c #(nop)  STOPSIGNAL SIGTERM",
        "/bin/sh -c #(nop)  VOLUME [/j]",
        "/bin/sh -c #(nop)  VOLUME [/data /d2]",
        "/bin/sh -c #(nop)  EXPOSE 443/udp 80",
        "/bin/sh -c #(nop)  USER 1000",
        "/bin/sh -c #(nop) WORKDIR /app",
        "/bin/sh -c #(nop)  LABEL k=v x y=z",
        "/bin/sh -c #(nop)  ENV LEG=legacy value",
        "/bin/sh -c #(nop)  ENV A=1 B=two words",
        "/bin/sh -c #(nop)  ARG FOO=bar",
    ]
    entries = list(reversed(image["history"]))
    assert entries[0]["empty_layer"] is True and not entries[11].get("empty_layer")
    with open(rootfs_file(backend, r.id, "/dest/a.txt")) as f:
        assert f.read() == "hello\n"
    assert os.path.isfile(rootfs_file(backend, r.id, "/multi/Dockerfile"))
    assert os.path.isdir(rootfs_file(backend, r.id, "/app"))
    assert backend.resolve_image("t1")[0] == r.id


def test_stream_lines(build):
    r = build("FROM busybox\nENV A=1\nCOPY f /f\n", {"f": "x"}, tags=["app:v1"])
    lines = r.stream.splitlines()
    assert lines[0] == "Step 1/3 : FROM busybox"
    assert re.fullmatch(r" ---> [0-9a-f]{12}", lines[1])
    assert lines[2] == "Step 2/3 : ENV A=1"
    assert lines[4] == "Step 3/3 : COPY f /f"
    short = r.id.split(":")[1][:12]
    assert lines[-2:] == ["Successfully built " + short, "Successfully tagged app:v1"]
    assert {"aux": {"ID": r.id}} in r.messages


def test_workdir_and_relative_paths(backend, build):
    r = build("FROM busybox\nWORKDIR /a\nWORKDIR b/c\nCOPY f rel/\nCOPY f ./g\n", {"f": "x"})
    assert backend.image(r.id)["config"]["WorkingDir"] == "/a/b/c"
    assert os.path.isfile(rootfs_file(backend, r.id, "/a/b/c/rel/f"))
    assert os.path.isfile(rootfs_file(backend, r.id, "/a/b/c/g"))
    assert " ---> Running in " in r.stream and "Removing intermediate container " in r.stream


def test_existing_workdir_is_an_empty_layer(backend, build):
    r = build("FROM busybox\nWORKDIR /tmp\n")
    assert backend.image(r.id)["history"][-1]["empty_layer"] is True


def test_copy_rules(backend, build):
    files = {"d/x": "x", "d/s/y": "y", "one": "1", "two": "2"}
    r = build("FROM busybox\nCOPY d /to\nCOPY one /existing-dir-less\nCOPY one two /multi/\n"
              "COPY one /tmp\nCOPY <<EOF /here/doc.txt\nhi $HOME\nEOF\n", files)
    assert os.path.isfile(rootfs_file(backend, r.id, "/to/x")) and os.path.isfile(rootfs_file(backend, r.id, "/to/s/y"))
    assert os.path.isfile(rootfs_file(backend, r.id, "/existing-dir-less"))
    assert os.path.isfile(rootfs_file(backend, r.id, "/multi/two"))
    assert os.path.isfile(rootfs_file(backend, r.id, "/tmp/one"))  # an existing dir: into it
    with open(rootfs_file(backend, r.id, "/here/doc.txt")) as f:
        assert f.read() == "hi \n"  # expanded with the build's variables (HOME is not one)
    with pytest.raises(InvalidParameter, match="When using COPY with more than one source file, the destination "
                                               "must be a directory and end with a /"):
        build("FROM busybox\nCOPY one two /nodir\n", files)


def test_copy_chmod_and_add_tar(backend, build):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"inside"
        ti = tarfile.TarInfo("pkg/file.txt")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    r = build("FROM busybox\nCOPY --chmod=700 s /s\nADD a.tar.gz /opt/\nCOPY a.tar.gz /raw/\n",
              {"s": "#!/bin/sh\n", "a.tar.gz": buf.getvalue()})
    assert os.stat(rootfs_file(backend, r.id, "/s")).st_mode & 0o777 == 0o700
    with open(rootfs_file(backend, r.id, "/opt/pkg/file.txt"), "rb") as f:
        assert f.read() == b"inside"
    assert os.path.isfile(rootfs_file(backend, r.id, "/raw/a.tar.gz"))


@pytest.mark.root
def test_copy_chown_by_name_and_id(backend, build):
    r = build("FROM busybox\nCOPY --chown=ana:users f /f1\nCOPY --chown=33 d /d\n", {"f": "x", "d/x": "y"})
    st = os.stat(rootfs_file(backend, r.id, "/f1"))
    assert (st.st_uid, st.st_gid) == (1000, 100)
    st = os.stat(rootfs_file(backend, r.id, "/d/x"))
    assert (st.st_uid, st.st_gid) == (33, 33)
    with pytest.raises(InvalidParameter, match="no such user: ghost"):
        build("FROM busybox\nCOPY --chown=ghost f /f\n", {"f": "x"})


def test_copy_outside_context_refused_and_nothing_tagged(backend, build):
    with pytest.raises(InvalidParameter) as e:
        build("FROM busybox\nCOPY ../x /\n", tags=["never"])
    assert str(e.value) == "COPY failed: forbidden path outside the build context: ../x ()"
    with pytest.raises(NotFound):
        backend.resolve_image("never")


def test_parse_error_before_any_step(build):
    msgs = []
    with pytest.raises(DockerfileParseError) as e:
        build("FROM busybox\nFOO bar\n", messages=msgs)
    assert str(e.value) == "dockerfile parse error on line 2: unknown instruction: FOO"
    assert msgs == []


def test_missing_base_image(build):
    with pytest.raises(NotFound):
        build("FROM nosuchimage\n")


def test_from_scratch(backend, build):
    r = build("FROM scratch\nCOPY f /f\nCMD [\"/f\"]\n", {"f": "x"})
    assert r.stream.startswith("Step 1/3 : FROM scratch\n ---> \nStep 2/3 : COPY f /f\n")  # as dockerd
    assert sorted(os.listdir(os.path.join(backend.image_dir(r.id), "rootfs"))) == ["f"]
    assert backend.image(r.id)["config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    with pytest.raises(InvalidParameter, match="No image was generated"):
        build("FROM scratch\n")


def test_scratch_maintainer_add_rootfs_tar_then_run_on_it(backend, build, busybox_rootfs_tar):
    # boot2docker's own Dockerfile shape: a config-only step on an image with no layers yet,
    # then the rootfs from a tar; a child image runs a command on that layer
    with open(busybox_rootfs_tar, "rb") as f:
        rootfs = f.read()
    base = build("FROM scratch\nMAINTAINER me <me@x>\nADD rootfs.tar /\nCMD [\"sh\"]\n", {"rootfs.tar": rootfs},
                 tags=["fromtar"])
    image = backend.image(base.id)
    assert len(image["rootfs"]["diff_ids"]) == 1
    assert [bool(h.get("empty_layer")) for h in image["history"]] == [True, False, True]
    assert os.path.isfile(rootfs_file(backend, base.id, "/bin/busybox"))
    child = build("FROM fromtar\nRUN echo ran > /ran\n")
    assert "\n ---> Running in " in child.stream
    with open(rootfs_file(backend, child.id, "/ran")) as f:
        assert f.read() == "ran\n"
    assert len(backend.image(child.id)["rootfs"]["diff_ids"]) == 2


def test_meta_args_target_and_step_count(backend, build):
    df = ("ARG BASE=busybox\nARG V\nFROM ${BASE} AS one\nARG V\nARG W=w1\nENV E=${V}-${W}\n"
          "FROM one AS two\nENV T=two\nFROM busybox\nENV THREE=1\n")
    r = build(df, build_args={"V": "vv", "UNUSED": "1"}, target="two")
    lines = r.stream.splitlines()
    # dockerd: meta ARGs are steps without output; only stages up to the target count
    assert lines[:3] == ["Step 1/8 : ARG BASE=busybox", "Step 2/8 : ARG V", "Step 3/8 : FROM ${BASE} AS one"]
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in lines
    config = backend.image(r.id)["config"]
    assert "E=vv-w1" in config["Env"] and "T=two" in config["Env"]
    assert not any(e.startswith("THREE=") for e in config["Env"])
    assert created_by(backend, r.id)[1:4] == ["/bin/sh -c #(nop)  ENV E=vv-w1", "/bin/sh -c #(nop)  ARG W=w1",
                                              "/bin/sh -c #(nop)  ARG V"]
    with pytest.raises(InvalidParameter, match="failed to reach build target nope in Dockerfile"):
        build(df, target="nope")


def test_build_arg_overrides_default_but_env_shadows_it(backend, build):
    r = build("FROM busybox\nARG X=def\nENV Y=$X\nENV X=env\nENV Z=$X\n", build_args={"X": "given"})
    env = backend.image(r.id)["config"]["Env"]
    assert "Y=given" in env and "Z=env" in env


def test_multi_stage_copy_from_and_only_target_layers(backend, build):
    df = ("FROM busybox AS base\nCOPY big /big\nCOPY sub /s\n"
          "FROM busybox\nCOPY --from=base /s /s2\nCOPY --from=0 /big /b\n")
    r = build(df, {"big": "B" * 1000, "sub/f": "x"})
    image = backend.image(r.id)
    base_layers = len(backend.image(backend.resolve_image("busybox")[0])["rootfs"]["diff_ids"])
    assert len(image["rootfs"]["diff_ids"]) == base_layers + 2
    assert not os.path.exists(rootfs_file(backend, r.id, "/big"))
    assert os.path.isfile(rootfs_file(backend, r.id, "/s2/f")) and os.path.isfile(rootfs_file(backend, r.id, "/b"))
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY dir:[0-9a-f]{64} in /s2 ", created_by(backend, r.id)[1])
    with pytest.raises(InvalidParameter):
        build("FROM busybox\nCOPY --from=1 /x /y\n")


def test_onbuild_triggers_run_in_the_child(backend, build):
    build("FROM busybox\nONBUILD ENV TRIG=1\nONBUILD COPY f /from-trigger\n", tags=["parent"])
    r = build("FROM parent\nENV CHILD=1\n", {"f": "t"})
    assert "# Executing 2 build triggers" in r.stream
    config = backend.image(r.id)["config"]
    assert "TRIG=1" in config["Env"] and config["OnBuild"] is None
    assert os.path.isfile(rootfs_file(backend, r.id, "/from-trigger"))


def test_labels_option_is_a_last_step(backend, build):
    r = build("FROM busybox\n", labels={"b": "2", "a": "$x"})
    assert "Step 2/2 : LABEL \"a\"='$x' \"b\"='2'" in r.stream
    assert backend.image(r.id)["config"]["Labels"] == {"a": "$x", "b": "2"}


def test_syntax_directive_noted(build):
    r = build("# syntax=docker/dockerfile:1\nFROM busybox\nENV A=1\n")
    assert "syntax directive (docker/dockerfile:1) is ignored" in r.stream


def test_cache_hits_misses_and_no_cache(backend, build):
    df = "FROM busybox\nENV A=1\nCOPY a /a\nCOPY b /b\nENV Z=1\n"
    first = build(df, {"a": "1", "b": "1"})
    again = build(df, {"a": "1", "b": "1"})
    assert again.id == first.id
    assert again.stream.count(" ---> Using cache") == 4
    changed = build(df, {"a": "1", "b": "2"})
    steps = changed.stream.split("Step ")[1:]
    hits = [" ---> Using cache" in s for s in steps]
    assert hits == [False, True, True, False, False]  # FROM, ENV, COPY a hit; COPY b and after miss
    assert changed.id != first.id
    fresh = build(df, {"a": "1", "b": "1"}, no_cache=True)
    assert "Using cache" not in fresh.stream


def test_cache_ignores_mtime_but_not_mode(backend, build, tmp_path):
    df = "FROM busybox\nCOPY a /a\n"
    build(df, {"a": "1"})
    # the upload's tar mtimes are the same here; what changes is the unpacked file's mode
    assert "Using cache" in build(df, {"a": ("1", 0o644)}).stream.split("COPY a /a")[1]
    assert "Using cache" not in build(df, {"a": ("1", 0o755)}).stream.split("COPY a /a")[1]


def test_cache_ignores_mtime(tmp_path):
    from hostbridge.guest.builder import sources
    (tmp_path / "a").write_text("1")
    before = sources.checksum(sources.resolve(str(tmp_path), "a"))
    os.utime(tmp_path / "a", (5, 5))
    assert sources.checksum(sources.resolve(str(tmp_path), "a")) == before


def test_cache_changes_with_chown_and_build_args(backend, build):
    df = "FROM busybox\nARG V\nENV X=$V\n"
    build(df, build_args={"V": "1"})
    r = build(df, build_args={"V": "2"})
    steps = r.stream.split("Step ")[1:]
    assert [" ---> Using cache" in s for s in steps] == [False, True, False]


def test_entrypoint_cmd_healthcheck_expose_as_dockerd(backend, build):
    # the Dockerfile dockerd 20.10 built for these expectations
    r = build('FROM busybox\nENTRYPOINT ["ep"]\nCMD ["c1"]\nHEALTHCHECK CMD a\n'
              'HEALTHCHECK --timeout=3s CMD ["b"]\nWORKDIR rel\nCOPY --from=busybox /bin/busybox /bb\n'
              'ENTRYPOINT ["ep2"]\nEXPOSE 8000-8001/tcp\n')
    config = backend.image(r.id)["config"]
    assert config["Entrypoint"] == ["ep2"] and config["Cmd"] == ["c1"]  # CMD was set in this stage
    assert config["Healthcheck"] == {"Test": ["CMD", "b"], "Timeout": 3000000000}
    assert config["ExposedPorts"] == {"8000/tcp": {}, "8001/tcp": {}}
    assert config["WorkingDir"] == "/rel"
    assert "Note: overriding previous HEALTHCHECK: [CMD-SHELL a]\n" in r.stream
    history = created_by(backend, r.id)
    assert history[0] == "/bin/sh -c #(nop)  EXPOSE 8000-8001/tcp"
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in /bb ", history[2])
    assert os.path.getsize(rootfs_file(backend, r.id, "/bb")) == os.path.getsize("/bin/busybox")


def test_entrypoint_resets_inherited_cmd(backend, build):
    build('FROM busybox\nCMD ["base"]\n', tags=["withcmd"])
    r = build('FROM withcmd\nENTRYPOINT ["ep"]\n')
    assert backend.image(r.id)["config"]["Cmd"] is None


@pytest.mark.parametrize("line,message", [
    ("EXPOSE 80/xyz", "Invalid proto: xyz"),
    ("STOPSIGNAL SIGNOPE", "Invalid signal: SIGNOPE"),
    ("ENV A=${B:?oops}", 'failed to process "${B:?oops}": B: oops'),
    ('ENV A="unterminated', 'failed to process "\\"unterminated": unexpected end of statement while '
                            'looking for matching double-quote'),
    ("COPY nothere /x", "COPY failed: file not found in build context or excluded by .dockerignore: "
                        "stat nothere: file does not exist"),
    ("COPY no*here /x", "COPY failed: no source files were specified"),
])
def test_step_errors_as_dockerd(build, line, message):
    with pytest.raises((InvalidParameter, NotFound)) as e:
        build("FROM busybox\n" + line + "\n")
    assert str(e.value) == message


def test_add_url_from_a_local_server(backend, build):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"downloaded"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = "http://127.0.0.1:%d/files/data.txt" % server.server_port
        good = "sha256:" + hashlib.sha256(b"downloaded").hexdigest()
        r = build("FROM busybox\nADD %s /dl/\nADD --checksum=%s %s /named\n" % (url, good, url))
        with pytest.raises(InvalidParameter, match="ADD failed: digest mismatch"):
            build("FROM busybox\nADD --checksum=sha256:%s %s /x\n" % ("0" * 64, url))
    finally:
        server.shutdown()
        server.server_close()
    with open(rootfs_file(backend, r.id, "/dl/data.txt"), "rb") as f:
        assert f.read() == b"downloaded"
    assert os.stat(rootfs_file(backend, r.id, "/named")).st_mode & 0o777 == 0o600


def test_copy_whole_context_honours_dockerignore(backend, build):
    r = build("FROM busybox\nCOPY . /ctx/\n",
              {".dockerignore": "secret*\n**/*.tmp\n!keep.tmp\nDockerfile\n", "app.py": "x", "secret.key": "k",
               "sub/a.tmp": "t", "keep.tmp": "k", "sub/b.txt": "b"})
    found = sorted(os.path.relpath(os.path.join(d, f), rootfs_file(backend, r.id, "/ctx"))
                   for d, _, fs in os.walk(rootfs_file(backend, r.id, "/ctx")) for f in fs)
    assert found == [".dockerignore", "app.py", "keep.tmp", "sub/b.txt"]


def test_from_uses_meta_args_and_build_arg_overrides(backend, build):
    build('FROM busybox\nCMD ["other"]\n', tags=["other:1"])
    df = "ARG BASE=busybox\nFROM $BASE\n"
    assert backend.image(build(df).id)["config"].get("Cmd") is None
    assert backend.image(build(df, build_args={"BASE": "other:1"}).id)["config"]["Cmd"] == ["other"]


def test_error_message_shape():
    from hostbridge.guest.builder.build import error_message
    from hostbridge.guest.builder.steps import BuildError
    msg = "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    assert error_message(BuildError(msg, 3)) == {"errorDetail": {"message": msg, "code": 3}, "error": msg}
    assert error_message(InvalidParameter("x")) == {"errorDetail": {"message": "x"}, "error": "x"}


def test_copy_never_writes_through_an_image_symlink_to_the_host(backend, build, tmp_path):
    outside = tmp_path / "host-target"
    outside.mkdir()
    # an image holding /d/lnk -> <a host dir>, as any image may
    build("FROM busybox\nCOPY d /d\nRUN ln -s %s /d/lnk\n" % outside, {"d/keep": "k"}, tags=["withlink"])
    base_id = backend.resolve_image("withlink")[0]
    assert os.readlink(rootfs_file(backend, base_id, "/d/lnk")) == str(outside)
    first = build("FROM withlink\nCOPY src /d\n", {"src/lnk/f1": "1"})
    assert os.listdir(outside) == []
    assert os.path.isfile(rootfs_file(backend, first.id, str(outside) + "/f1"))
    r = build("FROM withlink\nCOPY src /d\nCOPY f /d/lnk/\n", {"src/lnk/f1": "1", "f": "2"})
    assert os.listdir(outside) == []
    inside = rootfs_file(backend, r.id, str(outside))  # the link's target, taken inside the rootfs
    assert sorted(os.listdir(inside)) == ["f", "f1"]


def test_stage_arg_without_default_inherits_the_meta_arg(backend, build):
    df = "ARG X=meta\nARG Y=unseen\nFROM busybox\nARG X\nENV GOT_X=$X GOT_Y=${Y:-none}\n"
    env = backend.image(build(df).id)["config"]["Env"]
    assert "GOT_X=meta" in env and "GOT_Y=none" in env  # as dockerd: Y was not declared in the stage
    env = backend.image(build(df, build_args={"X": "given"}).id)["config"]["Env"]
    assert "GOT_X=given" in env


def test_stage_from_an_empty_scratch_stage(backend, build):
    r = build("FROM scratch AS empty\nFROM empty\nCOPY f /f\n", {"f": "x"})
    assert os.listdir(os.path.join(backend.image_dir(r.id), "rootfs")) == ["f"]
