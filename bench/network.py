"""Network throughput and start cost: the hostbridge engine vs dockerd, side by side, same run.

Run as root from the repository root: ``python3 bench/network.py [MiB] [trials]``.

Measures, for each engine:
  - host → container TCP through a port published on 127.0.0.1 (our userland proxy vs
    docker-proxy), ``MiB`` sent per trial (default 512), best of ``trials`` (default 3), the two
    engines' trials interleaved so that load from elsewhere on the machine hits both alike;
  - container → container TCP on a user network (kernel path on both; a sanity ratio);
  - container start (``docker run -d``, median of 10) with default networking vs ``--network none``.
Prints each number and the hostbridge/dockerd ratios (throughput: > 1 means faster than docker).

dockerd is started on private paths (its own data/exec root and socket, its own bridge on a
free 10.199.N.0/24, ``--iptables=false`` so that the host's firewall policy is left as it was:
loopback-published ports go through docker-proxy either way) and stopped at the end.
Traffic goes only to 127.0.0.1 and to the containers started here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hostbridge.guest.network import ipam, netdev  # noqa: E402
from tests.support import busybox  # noqa: E402
from tests.support.engine import Engine  # noqa: E402

PORT = 5001
# The sink and the container-side client are the host's python run inside a container's network
# namespace (nsenter): busybox's nc reads in small blocks and would be the bottleneck measured.
SINK = ("import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "s.bind(('0.0.0.0',%d));s.listen(8);s.settimeout(300);b=bytearray(1<<20)\n"
        "while True:\n c,_=s.accept()\n while c.recv_into(b):\n  pass\n c.close()\n" % PORT)
CLIENT = ("import socket,sys,time\nc=socket.create_connection((sys.argv[1],%d),timeout=60);b=bytes(1<<20)\n"
          "t=time.perf_counter()\nfor _ in range(int(sys.argv[2])):\n c.sendall(b)\n"
          "c.shutdown(socket.SHUT_WR)\nwhile c.recv(65536):\n pass\nprint(time.perf_counter()-t)\n" % PORT)


def in_netns(pid, code, *args, **kw):
    return subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code] + list(args), **kw)


class Docker:
    """The docker CLI pointed at one engine."""

    def __init__(self, name, host, config_dir):
        self.name = name
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_CONFIG=config_dir, DOCKER_CLI_HINTS="false")

    def __call__(self, *args, check=True, timeout=300):
        r = subprocess.run(["docker"] + list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s: docker %s: %s" % (self.name, " ".join(args), r.stderr.strip()))
        return r.stdout.strip()

    def inspect(self, ref):
        return json.loads(self("inspect", ref))[0]


def start_dockerd(base, tar):
    """A private dockerd (own bridge, paths and socket); returns (Docker, process, bridge)."""
    os.makedirs(base, exist_ok=True)
    subnet = ipam.pick_subnet(ipam.host_routes(), ["10.199.%d.0/24" % i for i in range(256)])
    bridge = "hbbdock%d" % (os.getpid() % 1000)
    netdev.ensure_bridge(bridge, str(next(subnet.hosts())), subnet.prefixlen)
    try:
        return _dockerd(base, tar, bridge)
    except BaseException:
        netdev.delete_link(bridge)
        raise


def _dockerd(base, tar, bridge):
    sock = os.path.join(base, "docker.sock")
    log = open(os.path.join(base, "dockerd.log"), "wb")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", os.path.join(base, "data"), "--exec-root", os.path.join(base, "exec"),
         "--pidfile", os.path.join(base, "dockerd.pid"), "-H", "unix://" + sock, "--bridge", bridge,
         "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--userland-proxy=true"],
        stdout=log, stderr=log)
    d = Docker("dockerd", "unix://" + sock, os.path.join(base, "cli"))
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("dockerd exited: %s" % open(os.path.join(base, "dockerd.log")).read()[-2000:])
        if subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], env=d.env,
                          capture_output=True, timeout=10).returncode == 0:
            break
        time.sleep(0.3)
    else:
        proc.kill()
        proc.wait()
        raise RuntimeError("dockerd did not answer in 60 s")
    try:
        d("import", tar, "busybox:latest")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return d, proc, bridge


def stop_dockerd(d, proc, bridge):
    try:
        for cid in d("ps", "-aq", check=False).split():
            d("rm", "-f", cid, check=False)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        netdev.delete_link(bridge)


def _send(port, mib, chunk=bytes(1 << 20)):
    """Seconds to push ``mib`` MiB to 127.0.0.1:port and see the far end close."""
    end = time.monotonic() + 10
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            break
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
    with s:
        t = time.perf_counter()
        for _ in range(mib):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        return time.perf_counter() - t


class Setup:
    """One engine's bench containers: a sink behind a published 127.0.0.1 port, and a
    server/client pair on a user network; each sink is the host's python in the namespace."""

    def __init__(self, d):
        self.d = d
        self.procs = []
        d("network", "create", "bench-net")
        d("run", "-d", "--name", "bench-sink", "-p", "127.0.0.1::%d" % PORT, "busybox", "sleep", "900")
        for name in ("bench-srv", "bench-cli"):
            d("run", "-d", "--name", name, "--network", "bench-net", "busybox", "sleep", "900")
        sink, self.srv, self.cli = d.inspect("bench-sink"), d.inspect("bench-srv"), d.inspect("bench-cli")
        self.port = int(sink["NetworkSettings"]["Ports"]["%d/tcp" % PORT][0]["HostPort"])
        self.srv_ip = self.srv["NetworkSettings"]["Networks"]["bench-net"]["IPAddress"]
        self.procs = [in_netns(c["State"]["Pid"], SINK) for c in (sink, self.srv)]
        time.sleep(0.5)

    def host_to_container(self, mib):
        """MiB/s from the host through the 127.0.0.1-published port."""
        return mib / _send(self.port, mib)

    def container_to_container(self, mib):
        """MiB/s between the two containers on the user network (timed in the client's netns)."""
        p = in_netns(self.cli["State"]["Pid"], CLIENT, self.srv_ip, str(mib), stdout=subprocess.PIPE)
        out, _ = p.communicate(timeout=300)
        return mib / float(out)

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.d("rm", "-f", "bench-sink", "bench-srv", "bench-cli", check=False)
        self.d("network", "rm", "bench-net", check=False)


def start_times(d, n=10):
    """Median seconds of ``docker run -d busybox true`` with default networking and with none."""
    ts = {"bridge": [], "none": []}
    for _ in range(n):
        for mode in ts:  # interleaved, so that load from elsewhere hits both alike
            t = time.perf_counter()
            cid = d("run", "-d", "--network", mode, "busybox", "true")
            ts[mode].append(time.perf_counter() - t)
            d("rm", "-f", cid, check=False)
    return {mode: statistics.median(v) for mode, v in ts.items()}


def measure(engines, mib, trials):
    """Best of ``trials`` per engine, the engines' trials interleaved (the machine is shared)."""
    setups = {name: Setup(d) for name, d in engines.items()}
    results = {name: {"h2c": 0.0, "c2c": 0.0} for name in engines}
    try:
        for _ in range(trials):
            for name, st in setups.items():
                results[name]["h2c"] = max(results[name]["h2c"], st.host_to_container(mib))
                results[name]["c2c"] = max(results[name]["c2c"], st.container_to_container(mib))
    finally:
        for st in setups.values():
            st.close()
    for name, d in engines.items():
        results[name]["start"] = start_times(d)
    return results


def main():
    if os.geteuid() != 0:
        sys.exit("bench/network.py needs root (it runs two container engines)")
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    base = tempfile.mkdtemp(prefix="hb-netbench-")
    tar = busybox.write_rootfs_tar(os.path.join(base, "busybox.tar"))
    hb = Engine(os.path.join(base, "hb")).start()
    dockerd = None
    try:
        hb.import_tar(tar, "busybox:latest")
        engines = {"hostbridge": Docker("hostbridge", hb.url, os.path.join(base, "hb-cli"))}
        if shutil.which("dockerd"):
            dockerd = start_dockerd(os.path.join(base, "dockerd"), tar)
            engines["dockerd"] = dockerd[0]
        results = measure(engines, mib, trials)
    finally:
        hb.close()
        if dockerd:
            stop_dockerd(*dockerd)
        shutil.rmtree(base, ignore_errors=True)
    for name, r in results.items():
        print("%-10s host→container via 127.0.0.1: %7.0f MiB/s   container→container: %7.0f MiB/s   "
              "start: %.3f s (none: %.3f s, networking adds %+.3f s)"
              % (name, r["h2c"], r["c2c"], r["start"]["bridge"], r["start"]["none"],
                 r["start"]["bridge"] - r["start"]["none"]))
    if "dockerd" in results:
        h, k = results["hostbridge"], results["dockerd"]
        print("ratio hostbridge/dockerd: host→container %.2f×, container→container %.2f× (higher is better); "
              "start %.2f× (lower is better)" % (h["h2c"] / k["h2c"], h["c2c"] / k["c2c"],
                                                 h["start"]["bridge"] / k["start"]["bridge"]))


if __name__ == "__main__":
    main()
