"""GET /_ping through the tunnel agent vs the engine socket directly; bulk upload through the
agent vs OpenSSH's own `ssh -L` forwarding of the same socket. Prints; asserts nothing.

Run as root: ``python3 bench/tunnel_ping.py [-n 300] [--mb 200]``. It creates a network
namespace with sshd (the tunnel tests' fixture classes), starts the real engine daemon in it,
starts an agent, measures, cleans up. Bulk: `docker cp` into a busybox container (the issue's
measure), through the agent and through `ssh -L`.
Targets (issue 5): ping ≤ +1 ms median; bulk ≥ 0.5× of `ssh -L`.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "tunnel")]

from remotehost import SSHD, RemoteNamespace, free_local_port  # noqa: E402

from hostbridge.tunnel import control  # noqa: E402
from hostbridge.tunnel.known_hosts import KnownHosts  # noqa: E402
from hostbridge.tunnel.localhttp import connection  # noqa: E402
from hostbridge.paths import MachinePaths  # noqa: E402
from hostbridge.tunnel.ssh import Connection, SSHTarget  # noqa: E402


def ping_times(endpoint: str, n: int, keepalive: bool) -> list:
    """Seconds per GET /_ping; a fresh connection each time unless ``keepalive``."""
    times, c = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        if c is None or not keepalive:
            c = connection(endpoint)
        c.request("GET", "/_ping")
        r = c.getresponse()
        r.read()
        times.append(time.perf_counter() - t0)
        if not keepalive:
            c.close()
    return times


def ssh_forward(sshd, known_hosts: str, remote_sock: str, local_sock: str) -> subprocess.Popen:
    """OpenSSH's own `ssh -L local.sock:remote.sock` (the comparison for bulk transfers)."""
    proc = subprocess.Popen(["ssh", "-N", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" + known_hosts,
                             "-o", "StrictHostKeyChecking=yes", "-i", sshd.user_key, "-p", str(sshd.port),
                             "-L", "%s:%s" % (local_sock, remote_sock), "root@" + sshd.host])
    for _ in range(200):
        if os.path.exists(local_sock):
            break
        time.sleep(0.05)
    return proc


def docker_cp_rates(tmp: str, endpoints: dict, mb: int) -> dict:
    """MB/s of `docker cp` of an ``mb`` MiB file into a container, per endpoint (real engine)."""
    from tests.support import busybox

    first = next(iter(endpoints.values()))
    env = dict(os.environ, DOCKER_HOST=first, DOCKER_CONFIG=os.path.join(tmp, "dockercfg"))
    run = lambda *a, **kw: subprocess.run(["docker"] + list(a), env=kw.pop("env", env), check=True,  # noqa: E731
                                          capture_output=True, text=True, timeout=600)
    run("import", busybox.cached_rootfs_tar(os.path.join(tmp, "bb")), "busybox:latest")
    cid = run("run", "-d", "busybox", "sleep", "600").stdout.strip()
    blob = os.path.join(tmp, "blob")
    with open(blob, "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))
    rates = {}
    try:
        for label, url in endpoints.items():
            t0 = time.perf_counter()
            run("cp", blob, "%s:/tmp/blob" % cid, env=dict(env, DOCKER_HOST=url))
            rates[label] = mb / (time.perf_counter() - t0)
    finally:
        run("rm", "-f", cid)
    return rates


def start_engine(tmp: str, ns):
    """The real engine daemon, started inside the namespace as deploy would on a remote host (its
    networking stays there). Returns (socket, stop)."""
    sock = os.path.join(tmp, "engine.sock")
    proc = ns.popen([sys.executable, "-m", "hostbridge.guest", "daemon", "--root", os.path.join(tmp, "root"),
                     "--socket", sock], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    return sock, lambda: (proc.terminate(), proc.wait(10))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hb-bench-")
    os.environ["HOSTBRIDGE_HOME"] = os.path.join(tmp, "home")
    ns = RemoteNamespace()
    ns.create()
    sshd = fwd = stop_engine = None
    paths = MachinePaths.for_name("bench")
    try:
        os.makedirs(os.path.join(tmp, "sshd"))
        sshd = SSHD(ns, os.path.join(tmp, "sshd"), 2222).start()
        sock, stop_engine = start_engine(tmp, ns)
        os.makedirs(paths.dir)
        target = SSHTarget(hostname=sshd.host, port=sshd.port, user="root", identity_files=[sshd.user_key])
        with Connection(target, KnownHosts(paths.known_hosts), accept_host_keys=sshd.host_fingerprint):
            pass
        control.write_config(paths, {"ssh": target.to_dict(), "remote_socket": sock, "endpoint": "unix",
                                     "forward_ports": False})
        agent = control.ensure_agent(paths)
        direct = "unix://" + sock
        print("engine daemon; %d requests each" % args.n)
        for label, keep in (("new connection per request", False), ("one keep-alive connection", True)):
            ping_times(direct, 20, keep)
            ping_times(agent, 20, keep)
            d = statistics.median(ping_times(direct, args.n, keep)) * 1000
            a = statistics.median(ping_times(agent, args.n, keep)) * 1000
            print("GET /_ping, %-27s direct %.3f ms  agent %.3f ms  (+%.3f ms; target <= +1 ms)" % (label, d, a, a - d))
        if args.mb:
            fsock = os.path.join(tmp, "fwd.sock")
            fwd = ssh_forward(sshd, paths.known_hosts, sock, fsock)
            r = docker_cp_rates(tmp, {"agent": agent, "ssh -L": "unix://" + fsock}, args.mb)
            print("docker cp %d MiB: agent %.0f MB/s  ssh -L %.0f MB/s  (agent/ssh -L %.2fx; target >= 0.5x)"
                  % (args.mb, r["agent"], r["ssh -L"], r["agent"] / r["ssh -L"]))
    finally:
        if fwd:
            fwd.terminate()
            fwd.wait(5)
        control.stop_agent(paths)
        if stop_engine:
            stop_engine()
        if sshd:
            sshd.stop()
        ns.destroy()
        subprocess.run(["rm", "-rf", tmp])
    return 0


if __name__ == "__main__":
    sys.exit(main())
