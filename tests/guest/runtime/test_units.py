"""Pure pieces of the runtime: capability rules, path resolution inside a root, log formats."""

from __future__ import annotations

import json
import os

import pytest

from hostbridge.guest.errors import InvalidParameter
from hostbridge.guest.runtime import caps, logs
from hostbridge.guest.runtime.rootfs import secure_join


LINUX_CAPS = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE"]


def test_default_caps_match_docker():
    assert caps.mask(caps.effective_names()) == 0xa80425fb


def test_cap_add_drop_rules():
    assert "NET_RAW" not in caps.effective_names(cap_drop=["net_raw"])
    assert caps.effective_names(cap_drop=["ALL"]) == []
    assert caps.effective_names(cap_drop=["ALL"], cap_add=["CAP_NET_ADMIN"]) == ["NET_ADMIN"]
    # the kernel's own count, and linux/capability.h's names in order (a fixed table)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    assert caps.effective_names(cap_add=["ALL"]) == LINUX_CAPS[: last + 1]
    assert caps.effective_names(privileged=True) == LINUX_CAPS[: last + 1]
    with pytest.raises(InvalidParameter, match="unknown capability"):
        caps.effective_names(cap_add=["FLY"])
    assert caps.names_of(caps.mask(["KILL", "CHOWN"])) == ["CHOWN", "KILL"]


def test_secure_join_keeps_links_inside(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(root + "/etc")
    os.symlink("/etc", root + "/abs")
    os.symlink("../../../../outside", root + "/rel")
    os.symlink("loop2", root + "/loop1")
    os.symlink("loop1", root + "/loop2")
    assert secure_join(root, "/abs/passwd") == root + "/etc/passwd"
    assert secure_join(root, "/rel/x") == root + "/outside/x"
    assert secure_join(root, "/../../etc") == root + "/etc"
    with pytest.raises(OSError, match="too many links"):
        secure_join(root, "/loop1")


def test_frame_header():
    assert logs.frame(2, b"abc") == b"\x02\x00\x00\x00\x00\x00\x00\x03abc"


def test_json_log_lines_partial_and_truncation(tmp_path):
    path = str(tmp_path / "c-json.log")
    w = logs.JsonLogWriter(path)
    w.write(logs.STDOUT, b"one\ntw")
    w.write(logs.STDERR, b"err\n")
    w.write(logs.STDOUT, b"o\n" + b"x" * (logs.PARTIAL_MAX + 5))
    w.close()
    recs = logs.read_log(path)
    assert [(r["stream"], r["log"]) for r in recs] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n"),
        ("stdout", "x" * logs.PARTIAL_MAX), ("stdout", "xxxxx")]
    w = logs.JsonLogWriter(path, max_size=200)
    for i in range(20):
        w.write(logs.STDOUT, b"line %d\n" % i)
    w.close()
    assert os.path.getsize(path) <= 200
    with open(path) as f:
        assert json.loads(f.readlines()[-1])["log"] == "line 19\n"
