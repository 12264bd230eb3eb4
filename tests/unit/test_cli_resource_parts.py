"""Pure pieces of cp, port, stats, events, system df, update and the run mount flags."""

import pytest

from hostbridge.cli import copy, disk, events, stats
from hostbridge.cli.container_ops import port_lines, update_body
from hostbridge.cli.networks import go_time_string, natural_key
from hostbridge.cli.options import UsageError, parse_add_host, parse_mount, parse_tmpfs


def _sample(total, pre_total, system, pre_system, online=2, usage=10 << 20, inactive=2 << 20, limit=100 << 20):
    return {"id": "f" * 64, "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system, "online_cpus": online},
            "precpu_stats": {"cpu_usage": {"total_usage": pre_total}, "system_cpu_usage": pre_system},
            "memory_stats": {"usage": usage, "limit": limit, "stats": {"inactive_file": inactive}},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 2_500_000}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096},
                                                           {"op": "Write", "value": 8192},
                                                           {"op": "write", "value": 8192}]},
            "pids_stats": {"current": 3}}


def test_stats_row_computes_as_docker():
    row = stats.stats_row(_sample(3_000_000, 1_000_000, 20_000_000, 10_000_000), "web")
    assert row == {"Container": "web", "Name": "web", "ID": "f" * 12, "CPUPerc": "40.00%",
                   "MemUsage": "8MiB / 100MiB", "MemPerc": "8.00%", "NetIO": "1.5kB / 2.5MB",
                   "BlockIO": "4.1kB / 16.4kB", "PIDs": "3"}


def test_stats_edge_cases():
    assert stats.cpu_percent(_sample(5, 5, 20, 10)) == 0.0  # no CPU used
    assert stats.cpu_percent({"cpu_stats": {"cpu_usage": {"total_usage": 2, "percpu_usage": [1, 1, 0, 0]},
                                            "system_cpu_usage": 10}, "precpu_stats": {}}) == 80.0
    assert stats.memory_usage({"usage": 100, "stats": {"total_inactive_file": 30, "inactive_file": 50}}) == 70
    assert stats.memory_usage({"usage": 100, "stats": {"inactive_file": 300}}) == 100
    row = stats.stats_row({"id": "a" * 64, "name": "/x"}, "x")
    assert (row["MemUsage"], row["MemPerc"], row["CPUPerc"], row["PIDs"]) == ("0B / 0B", "0.00%", "0.00%", "0")


@pytest.mark.parametrize("arg, want", [
    ("web:/etc", ("web", "/etc")), ("/local:with:colons", (None, "/local:with:colons")),
    ("./rel:x", (None, "./rel:x")), ("plain", (None, "plain")), ("web:", ("web", "")),
])
def test_split_cp_arg(arg, want):
    assert copy.split_cp_arg(arg) == want


@pytest.mark.parametrize("src, src_dir, dst, exists, dst_dir, want", [
    ("/a/src", True, "/out", True, True, ("/out", "src")),
    ("/a/src/.", True, "/out", True, True, ("/out", ".")),
    ("/a/f.txt", False, "/out/g.txt", True, False, ("/out", "g.txt")),
    ("/a/src", True, "/out/new", False, False, ("/out", "new")),
    ("/a/src/.", True, "/out/new/", False, False, ("/out", "new")),
    ("rel", False, "newname", False, False, (".", "newname")),
])
def test_plan_copy(src, src_dir, dst, exists, dst_dir, want):
    assert copy.plan_copy(src, src_dir, dst, exists, dst_dir) == want


def test_plan_copy_refusals():
    with pytest.raises(UsageError, match="cannot copy directory"):
        copy.plan_copy("/d", True, "/file", True, False)
    with pytest.raises(UsageError, match="no such directory"):
        copy.plan_copy("/f", False, "/missing/", False, False)


@pytest.mark.parametrize("name, top, want", [
    ("src/a/b", "src", "src/a/b"), ("src/a", "new", "new/a"), ("./a.txt", ".", "a.txt"), ("./", ".", "."),
    ("./sub/b", "dst", "dst/sub/b"), ("passwd", "pw", "pw"),
])
def test_rename_top(name, top, want):
    assert copy._rename_top(name, top) == want


def test_port_lines_sorted_naturally_and_filtered():
    ports = {"9000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "9000"}, {"HostIp": "::", "HostPort": "9000"}],
             "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": None}
    assert port_lines(ports) == ["80/tcp -> 127.0.0.1:8080", "9000/tcp -> 0.0.0.0:9000", "9000/tcp -> [::]:9000"]
    assert port_lines(ports, "80") == ["127.0.0.1:8080"]
    assert port_lines(ports, "53/udp") is None and port_lines({}, "80") is None
    assert sorted(["a10", "a9", "a100"], key=natural_key) == ["a9", "a10", "a100"]


def test_event_line_and_go_order():
    ev = {"Type": "container", "Action": "start", "from": "", "id": "abc", "scope": "local",
          "Actor": {"Attributes": {"name": "web", "image": "busybox"}, "ID": "abc"},
          "time": 1, "timeNano": 1_500_000_000}
    line = events.event_line(ev)
    assert line.endswith(" container start abc (image=busybox, name=web)")
    assert line.startswith("1970-01-01T") and ".500000000" in line
    ordered = events.go_ordered(ev)
    assert list(ordered) == ["id", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert list(ordered["Actor"]["Attributes"]) == ["image", "name"]


def test_df_summary_rows():
    df = {"LayersSize": 1000, "Images": [{"Size": 1000, "SharedSize": 0, "Containers": 1}, {"Size": 10, "SharedSize": -1,
                                                                                             "Containers": 0}],
          "Containers": [{"State": "running", "SizeRw": 3}, {"State": "exited", "SizeRw": 7}],
          "Volumes": [{"UsageData": {"Size": 50, "RefCount": 0}}, {"UsageData": {"Size": -1, "RefCount": 1}}],
          "BuildCache": []}
    rows = disk.summary_rows(df)
    assert [r["Reclaimable"] for r in rows] == ["0B (0%)", "7B (70%)", "50B (100%)", "0B"]
    assert [(r["TotalCount"], r["Active"]) for r in rows] == [("2", "1"), ("2", "1"), ("2", "1"), ("0", "0")]


def test_update_body():
    body = update_body({"memory": "64m", "memory_swap": "-1", "cpus": "1.5", "pids_limit": 10, "restart": "always"})
    assert body == {"Memory": 64 << 20, "MemorySwap": -1, "NanoCpus": 1_500_000_000, "PidsLimit": 10,
                    "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}}
    assert update_body({}) == {}
    with pytest.raises(UsageError):
        update_body({"memory": "lots"})


def test_parse_mount():
    assert parse_mount("type=bind,source=/a,target=/b,readonly") == {"Type": "bind", "Source": "/a", "Target": "/b",
                                                                     "ReadOnly": True}
    assert parse_mount("src=vol,dst=/data,volume-nocopy") == {"Type": "volume", "Source": "vol", "Target": "/data",
                                                              "VolumeOptions": {"NoCopy": True}}
    assert parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1770}}
    for bad in ("type=nfs,target=/x", "source=/a", "target=/x,bogus=1", "target=/x,ro=maybe", "target=/x,justakey"):
        with pytest.raises(UsageError):
            parse_mount(bad)


def test_tmpfs_and_add_host():
    assert parse_tmpfs("/run:size=64k,mode=1777") == ("/run", "size=64k,mode=1777")
    assert parse_tmpfs("/run") == ("/run", "")
    assert parse_add_host("db:10.0.0.2") == "db:10.0.0.2" and parse_add_host("db=::1") == "db:::1"
    for bad, fn in (("run", parse_tmpfs), ("nohost", parse_add_host), (":1.2.3.4", parse_add_host)):
        with pytest.raises(UsageError):
            fn(bad)


def test_go_time_string_trims_nanoseconds(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    assert go_time_string("2026-11-28T07:22:02.309520780Z") == "2026-11-28 07:22:02.30952078 +0000 UTC"
    assert go_time_string("2026-11-28T07:22:02Z") == "2026-11-28 07:22:02 +0000 UTC"
    monkeypatch.undo()
    time.tzset()
