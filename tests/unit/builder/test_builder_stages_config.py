"""Stage graph, target selection, per-instruction config helpers and Go durations."""

import pytest

from hostbridge.guest.builder import imageconfig as ic
from hostbridge.guest.builder import stages
from hostbridge.guest.durations import format_duration, parse_duration
from hostbridge.guest.builder.parser import DockerfileParseError, parse
from hostbridge.guest.errors import InvalidParameter

DF = """ARG A=1
ARG B
FROM busybox AS Build
RUN make
FROM build AS test
RUN test
FROM scratch
COPY --from=build /out /out
"""


def test_plan_groups_meta_args_and_stages():
    p = stages.plan(parse(DF))
    assert [a.args for a in p.meta_args] == [[["A", "1"]], [["B", None]]]
    assert [(s.index, s.name, len(s.commands)) for s in p.stages] == [(0, "build", 1), (1, "test", 1), (2, "", 1)]


def test_find_by_name_or_index_only_backwards():
    p = stages.plan(parse(DF))
    assert p.find("BUILD").index == 0
    assert p.find("1").name == "test"
    assert p.find("test", before=1) is None
    assert p.find("2", before=2) is None
    assert p.find("busybox") is None


def test_through_target_and_step_count():
    p = stages.plan(parse(DF))
    assert [s.index for s in p.through("")] == [0, 1, 2]
    assert [s.index for s in p.through("Test")] == [0, 1]
    assert p.step_count(p.through("test")) == 2 + 2 + 2
    assert p.step_count(p.through("")) == 2 + 2 + 2 + 2
    with pytest.raises(InvalidParameter, match="failed to reach build target nope in Dockerfile"):
        p.through("nope")


def test_instruction_before_from_and_duplicate_names():
    with pytest.raises(InvalidParameter, match="no build stage in current context"):
        stages.plan(parse("RUN x\n"))
    with pytest.raises(InvalidParameter, match="no build stage in current context"):
        stages.plan(parse("ARG X\n"))
    with pytest.raises(DockerfileParseError, match="line 2: duplicate name a"):
        stages.plan(parse("FROM x AS a\nFROM y AS a\n"))


def test_stage_config_defaults_path_and_keeps_base():
    c = ic.stage_config(None)
    assert c["Env"] == ["PATH=" + ic.DEFAULT_PATH] and c["Cmd"] is None
    base = {"Env": ["PATH=/x", "A=1"], "Cmd": ["sh"], "OpenStdin": True}
    c = ic.stage_config(base)
    assert c["Env"] == ["PATH=/x", "A=1"] and c["Cmd"] == ["sh"] and c["OpenStdin"] is False
    assert base["OpenStdin"] is True  # a copy


def test_set_env_keeps_position():
    c = {"Env": ["PATH=/bin", "A=1", "B=2"]}
    ic.set_env(c, "A", "new")
    ic.set_env(c, "C", "3")
    assert c["Env"] == ["PATH=/bin", "A=new", "B=2", "C=3"]


def test_command_line_shell_and_exec_forms():
    assert ic.command_line({}, ["echo hi"], False) == ["/bin/sh", "-c", "echo hi"]
    assert ic.command_line({"Shell": ["bash", "-lc"]}, ["x"], False) == ["bash", "-lc", "x"]
    assert ic.command_line({}, ["a", "b"], True) == ["a", "b"]


def test_nop_texts():
    assert ic.nop({}, "ENV A=1") == "/bin/sh -c #(nop)  ENV A=1"
    assert ic.nop_one_word({"Shell": ["/bin/bash", "-c"]}, "WORKDIR /a") == "/bin/bash -c #(nop) WORKDIR /a"
    assert ic.go_list(["sh", "-c", 'say "hi"']) == '["sh" "-c" "say \\"hi\\""]'


@pytest.mark.parametrize("current,requested,expected", [
    ("", "/a", "/a"), ("/a", "b", "/a/b"), ("/a/b", "../c", "/a/c"), ("", "rel", "/rel"),
    ("/a", "/x/./y/", "/x/y"),
])
def test_workdir(current, requested, expected):
    assert ic.workdir(current, requested) == expected


def test_exposed_ports():
    assert ic.exposed_ports(["80", "443/UDP", "8000-8002/tcp", "53/sctp"]) == [
        "80/tcp", "443/udp", "8000/tcp", "8001/tcp", "8002/tcp", "53/sctp"]
    with pytest.raises(InvalidParameter, match="Invalid proto: xyz"):
        ic.exposed_ports(["80/xyz"])
    with pytest.raises(InvalidParameter, match="Invalid containerPort: abc"):
        ic.exposed_ports(["abc"])


@pytest.mark.parametrize("sig", ["SIGTERM", "TERM", "sigkill", "9", "SIGRTMIN+3"])
def test_good_signals(sig):
    ic.check_signal(sig)


@pytest.mark.parametrize("sig", ["SIGNOPE", "0", "99", ""])
def test_bad_signals(sig):
    with pytest.raises(InvalidParameter, match="Invalid signal"):
        ic.check_signal(sig)


def test_run_created_by_as_dockerd():
    argv = ["/bin/sh", "-c", "echo $V"]
    # no build args: the command alone
    assert ic.run_created_by(argv, {}, set(), {}) == ("/bin/sh -c echo $V", [])
    # declared args, sorted, counted (dockerd: |2 V=vv W=w1 /bin/sh -c …)
    by, env = ic.run_created_by(argv, {"W": "w1", "V": "vv"}, {"V", "W"}, {})
    assert by == "|2 V=vv W=w1 /bin/sh -c echo $V" and env == ["V=vv", "W=w1"]
    # a proxy arg given but not declared: passed, not shown (dockerd: |0 /bin/sh -c …)
    by, env = ic.run_created_by(argv, {"HTTP_PROXY": "p"}, set(), {})
    assert by == "|0 /bin/sh -c echo $V" and env == ["HTTP_PROXY=p"]
    # an ENV of the same name shadows the arg
    assert ic.run_created_by(argv, {"V": "vv"}, {"V"}, {"V": "env"}) == ("/bin/sh -c echo $V", [])


@pytest.mark.parametrize("text,ns,shown", [
    ("5s", 5 * 10 ** 9, "5s"), ("1m30s", 90 * 10 ** 9, "1m30s"), ("1.5s", 15 * 10 ** 8, "1.5s"),
    ("500ms", 5 * 10 ** 8, "500ms"), ("2h", 7200 * 10 ** 9, "2h0m0s"), ("0", 0, "0s"),
    ("1h0m1s", 3601 * 10 ** 9, "1h0m1s"), ("10us", 10000, "10\u00b5s"), ("7ns", 7, "7ns"),
])
def test_go_durations(text, ns, shown):
    assert parse_duration(text) == ns and format_duration(ns) == shown


@pytest.mark.parametrize("text,message", [
    ("1x", 'time: unknown unit "x" in duration "1x"'), ("5", 'time: missing unit in duration "5"'),
    ("", 'time: invalid duration ""'), ("s", 'time: invalid duration "s"'),
])
def test_go_duration_errors(text, message):
    with pytest.raises(InvalidParameter) as e:
        parse_duration(text)
    assert str(e.value) == message
