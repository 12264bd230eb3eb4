"""hostbridge.cli.format: docker's sizes, durations, statuses, commands, ports and tables."""

import pytest

from hostbridge.cli import format as fmt

NOW = 1_800_000_000.0


@pytest.mark.parametrize("size,text", [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (12345, "12.3kB"), (1985769, "1.99MB"), (4260000, "4.26MB"),
    (1234567890, "1.23GB"), (999500, "1e+03kB"),
])
def test_human_size(size, text):
    assert fmt.human_size(size) == text


def test_bytes_size_is_binary():
    assert fmt.bytes_size(25270000000) == "23.53GiB"
    assert fmt.bytes_size(1024) == "1KiB"


@pytest.mark.parametrize("seconds,text", [
    (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (15 * 86400, "2 weeks"),
    (70 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration(seconds, text):
    assert fmt.human_duration(seconds) == text


def test_since_reads_rfc3339_with_nanoseconds_and_unix_time():
    assert fmt.since(NOW - 125, NOW) == "2 minutes ago"
    iso = "2027-01-15T08:00:00.123456789Z"
    t = fmt.parse_time(iso)
    assert fmt.since(iso, t + 3) == "3 seconds ago"
    assert fmt.parse_time("2027-01-15T09:00:00+01:00") == fmt.parse_time("2027-01-15T08:00:00Z")
    assert fmt.since("0001-01-01T00:00:00Z", NOW) == ""


def test_container_status_strings():
    started = "2027-01-15T08:00:00Z"
    t0 = fmt.parse_time(started)
    assert fmt.container_status({"Running": True, "StartedAt": started}, t0 + 3) == "Up 3 seconds"
    assert fmt.container_status({"Running": True, "Paused": True, "StartedAt": started}, t0 + 90) \
        == "Up About a minute (Paused)"
    exited = {"Running": False, "ExitCode": 3, "StartedAt": started, "FinishedAt": "2027-01-15T08:00:05Z"}
    assert fmt.container_status(exited, t0 + 10) == "Exited (3) 5 seconds ago"
    assert fmt.container_status({"Running": False, "StartedAt": "0001-01-01T00:00:00Z"}, t0) == "Created"
    assert fmt.container_status({"Running": True, "StartedAt": started, "Health": {"Status": "healthy"}},
                                t0 + 1) == "Up 1 second (healthy)"


def test_command_is_cut_then_quoted():
    assert fmt.command("sh -c 'exit 3'") == "\"sh -c 'exit 3'\""
    assert fmt.command("echo " + "a" * 30) == '"echo aaaaaaaaaaaaaa…"'
    assert fmt.command('say "hi"\n', trunc=False) == '"say \\"hi\\"\\n"'


def test_ports_cell():
    ports = [{"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080},
             {"PrivatePort": 80, "Type": "tcp", "IP": "::", "PublicPort": 8080},
             {"PrivatePort": 53, "Type": "udp"}]
    assert fmt.ports(ports) == "53/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"


def test_ports_cell_groups_ranges_like_docker():
    same = [{"PrivatePort": p, "PublicPort": p, "IP": "0.0.0.0", "Type": "tcp"} for p in (8001, 8000, 8003)]
    exposed = [{"PrivatePort": p, "Type": "tcp"} for p in (90, 91)]
    # A range closed early comes first, as in docker (groups still open are listed after).
    assert fmt.ports(same + exposed) == "0.0.0.0:8000-8001->8000-8001/tcp, 90-91/tcp, 0.0.0.0:8003->8003/tcp"


def test_short_id_and_ellipsis():
    assert fmt.short_id("sha256:" + "ab" * 32) == "abababababab"
    assert fmt.ellipsis("abcdef", 4) == "abc…"
    assert fmt.ellipsis("abc", 4) == "abc"


def test_table_pads_like_tabwriter():
    out = fmt.table([["CONTAINER ID", "IMAGE", "PORTS", "NAMES"], ["abc", "busybox", "", "x"]])
    assert out == ("CONTAINER ID   IMAGE     PORTS     NAMES\n"
                   "abc            busybox             x\n")


def test_indent_json_like_docker_inspect():
    assert fmt.indent_json([{"a": [], "b": {"c": "<&>"}}]) == \
        '[\n    {\n        "a": [],\n        "b": {\n            "c": "<&>"\n        }\n    }\n]'
