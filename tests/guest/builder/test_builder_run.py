"""RUN steps, really executed (chrooted into the step's rootfs in new namespaces, as root).

Expected strings are dockerd 20.10's classic builder output for the same Dockerfiles.
"""

import os

import pytest

from hostbridge.guest.builder.steps import BuildError
from hostbridge.guest.errors import NotFound
from tests.guest.builder.conftest import build_until, created_by, rootfs_file

pytestmark = pytest.mark.root


def test_run_output_history_and_layer(backend, build):
    r = build("FROM busybox\nARG FOO=bar\nRUN echo hi $FOO > /out && cat /out\nRUN [\"echo\", \"exec\"]\n")
    lines = r.stream.splitlines()
    assert lines[5].startswith(" ---> Running in ") and len(lines[5]) == len(" ---> Running in ") + 12
    assert "hi bar" in lines and "exec" in lines
    assert lines.count("Removing intermediate container " + lines[5][-12:]) == 1
    # dockerd: |1 FOO=bar /bin/sh -c echo hi $FOO ; |1 FOO=bar echo exec
    assert created_by(backend, r.id)[:2] == ["|1 FOO=bar echo exec", "|1 FOO=bar /bin/sh -c echo hi $FOO > /out && cat /out"]
    with open(rootfs_file(backend, r.id, "/out")) as f:
        assert f.read() == "hi bar\n"
    assert "FOO=bar" not in " ".join(backend.image(r.id)["config"]["Env"])  # args are not persisted


def test_run_sees_env_workdir_user_and_shell(backend, build):
    r = build("FROM busybox\nENV E=env\nWORKDIR /w\nUSER 1000\nSHELL [\"/bin/sh\", \"-c\"]\n"
              "RUN echo \"$E $(pwd) $(id -u)\"\n")
    assert "env /w 1000" in r.stream.splitlines()


def test_proxy_args_are_passed_but_not_recorded(backend, build):
    # dockerd: |0 /bin/sh -c echo two   (HTTP_PROXY given, not declared)
    r = build("FROM busybox\nRUN echo \"p=$HTTP_PROXY\"\n", build_args={"HTTP_PROXY": "http://127.0.0.1:3128"})
    assert "p=http://127.0.0.1:3128" in r.stream
    assert created_by(backend, r.id)[0] == '|0 /bin/sh -c echo "p=$HTTP_PROXY"'


def test_failing_run_reports_exit_code_and_tags_nothing(backend, build):
    with pytest.raises(BuildError) as e:
        build("FROM busybox\nRUN echo before; exit 3\n", tags=["broken"])
    # dockerd: The command '/bin/sh -c exit 3' returned a non-zero code: 3
    assert str(e.value) == "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"
    assert e.value.code == 3
    with pytest.raises(NotFound):
        backend.resolve_image("broken")
    # the backend fixture asserts no rootfs is left behind


def test_run_cache(backend, build):
    df = "FROM busybox\nRUN echo ran\n"
    first = build(df)
    again = build(df)
    assert again.id == first.id and "ran" not in again.stream.splitlines()
    assert len(backend.runs) == 1


def test_heredoc_run_forms(backend, build):
    r = build("FROM busybox\nRUN <<EOF\necho one > /h1\necho two >> /h1\nEOF\n"
              "RUN <<EOF\n#!/bin/sh\necho script > /h2\nEOF\n"
              "RUN cat <<A > /h3\nfrom heredoc\nA\n")
    for path, text in (("/h1", "one\ntwo\n"), ("/h2", "script\n"), ("/h3", "from heredoc\n")):
        with open(rootfs_file(backend, r.id, path)) as f:
            assert f.read() == text
    assert not [n for n in os.listdir(os.path.join(backend.image_dir(r.id), "rootfs")) if n.startswith(".hostbridge")]


def test_interrupted_build_leaves_no_process(backend, tmp_path):
    ps = build_until(backend, "FROM busybox\nRUN echo tick; sleep 47.25; echo late > /late\n", "tick",
                     str(tmp_path))
    assert "sleep 47.25" not in ps


def test_client_closing_during_a_silent_run_stops_it(backend, tmp_path):
    ps = build_until(backend, "FROM busybox\nRUN echo tick; sleep 48.25; echo late > /late\n", "tick",
                     str(tmp_path), quietly=True)
    assert "sleep 48.25" not in ps


def test_seed_workflow_base_then_child(backend, build):
    base = build("FROM busybox\nRUN mkdir -p /var/www && echo base > /var/www/index.html\nEXPOSE 80\n"
                 "CMD [\"httpd\", \"-f\", \"-h\", \"/var/www\"]\n", tags=["php_box"])
    child = build("FROM php_box\nADD myApp /var/www\n", {"myApp/index.html": "<h1>app</h1>"}, tags=["site"])
    with open(rootfs_file(backend, child.id, "/var/www/index.html")) as f:
        assert f.read() == "<h1>app</h1>"
    config = backend.image(child.id)["config"]
    assert config["Cmd"] == ["httpd", "-f", "-h", "/var/www"] and config["ExposedPorts"] == {"80/tcp": {}}
    assert base.id != child.id
