"""Fixtures for runtime tests: real bundles on an extracted busybox lower dir, cleaned up after."""

from __future__ import annotations

import json
import os
import signal
import tarfile
import time

import pytest

from hostbridge.guest import util
from hostbridge.guest.errors import RuntimeFailure
from hostbridge.guest.runtime import logs
from hostbridge.guest.runtime.client import ShimClient


@pytest.fixture(scope="session")
def busybox_lower(busybox_rootfs_tar, tmp_path_factory):
    """The busybox rootfs extracted once: the single lower layer of every test container."""
    d = str(tmp_path_factory.mktemp("lower"))
    with tarfile.open(busybox_rootfs_tar) as tar:
        tar.extractall(d)
    return d


class Bundles:
    """Makes bundles under ``tmp``; ``cleanup()`` kills whatever still runs."""

    def __init__(self, tmp, lower):
        self.tmp, self.lower, self.made = str(tmp), lower, []

    def make(self, args, **over) -> ShimClient:
        cid = util.new_id()
        base = os.path.join(self.tmp, cid[:12])
        rootfs = {"driver": "overlay", "lower": [self.lower], "upper": base + "/upper",
                  "work": base + "/work", "merged": base + "/merged", "readonly": False}
        for d in ("upper", "work", "merged", "bundle"):
            os.makedirs(os.path.join(base, d))
        process = {"args": list(args), "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "cwd": "/", "user": "", "tty": False, "open_stdin": False, "stdin_once": False,
                   "init": False, "cap_add": [], "cap_drop": [], "privileged": False,
                   "no_new_privileges": True}
        process.update(over.pop("process", {}))
        rootfs.update(over.pop("rootfs", {}))
        cgroup = {"name": "test-" + cid[:12]}
        cgroup.update(over.pop("cgroup", {}))
        cfg = {"id": cid, "hostname": cid[:12], "domainname": "", "rootfs": rootfs,
               "process": process,
               "namespaces": {"net": "new", "pid": "new", "ipc": "new", "uts": "new"},
               "mounts": [], "cgroup": cgroup, "sysctls": {},
               "log_path": os.path.join(base, "bundle", cid + "-json.log"), "log_max_size": 0}
        cfg.update(over)
        with open(os.path.join(base, "bundle", "config.json"), "w") as f:
            json.dump(cfg, f)
        c = ShimClient(os.path.join(base, "bundle"))
        c.config = cfg
        self.made.append(c)
        return c

    def run(self, args, timeout=20, **over):
        """Create, start and wait; returns ``(client, exit record, stdout text, stderr text)``."""
        c = self.make(args, **over)
        c.spawn()
        try:
            c.start()
        except RuntimeFailure:
            pass
        rec = c.wait(timeout=timeout)
        out = {"stdout": "", "stderr": ""}
        for line in read_log(c):
            out[line["stream"]] += line["log"]
        return c, rec, out["stdout"], out["stderr"]

    def exec(self, c: ShimClient, args, timeout=20, **spec):
        """Run the exec helper into ``c``'s container; returns the CompletedProcess."""
        import subprocess

        from hostbridge.guest import selfexec

        st = c.state()
        full = {"pid": st["pid"], "args": list(args), "env": ["PATH=/usr/bin:/bin"], "cwd": "/",
                "user": "", "tty": False, "privileged": False,
                "cgroup_procs": [os.path.join(p, "cgroup.procs")
                                 for p in sorted(set(st["cgroup_paths"].values()))]}
        full.update(spec)
        return subprocess.run(selfexec.argv("exec") + [json.dumps(full)], env=selfexec.env(),
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    @staticmethod
    def log(c: ShimClient) -> list:
        """The container's json-file log records."""
        return read_log(c)

    def wait_for_log(self, c: ShimClient, text, timeout=10):
        """Wait until ``text`` is in a log record of ``c``; AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in rec["log"] for rec in self.log(c)):
                return
            time.sleep(0.02)
        raise AssertionError("%r never appeared in the log" % text)

    def cleanup(self):
        for c in self.made:
            try:
                st = c.state()
            except RuntimeFailure:
                continue
            if st.get("status") != "exited":
                try:
                    c.kill(signal.SIGKILL)
                except RuntimeFailure:
                    pass
            deadline = time.monotonic() + 5
            while os.path.exists(c.sock_path) and time.monotonic() < deadline:
                time.sleep(0.05)


def read_log(c: ShimClient) -> list:
    return logs.read_log(c.config["log_path"])


@pytest.fixture(scope="session")
def tini():
    """The host's static tini for --init (Debian: tini's tini-static, docker.io's docker-init).

    install-deps.sh installs tini: a NotFound here is a failure (of the install or of the
    finding), never a skip."""
    from hostbridge.guest.runtime import initbin
    return initbin.find().path


@pytest.fixture
def bundles(tmp_path, busybox_lower):
    b = Bundles(tmp_path, busybox_lower)
    yield b
    b.cleanup()

