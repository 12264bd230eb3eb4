"""Issue 12's engine start, side by side with dockerd in one run (on this host):

- our engine, from exec to the first ``/_ping`` answered and to ``/info`` (the engine ready:
  state restored, bridge and firewall up), on an empty root and on a warm one (a restart);
- Debian's dockerd, from exec to its first ``/_ping`` (it answers only once ready), on an empty
  and a warm data root. It runs with ``--bridge none --iptables=false`` (it must not touch this
  host's network), so it does less than ours, which makes its bridge and rules.

Usage: sudo .venv/bin/python bench/engine_start.py [-n RUNS]
In the QEMU guest the same figures come from the guest itself (see the report of issue 12).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from common import REPO, describe, report


def _answers(sock, path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    try:
        s.connect(sock)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
        return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        s.close()


def _start(argv, sock, paths, env=None, timeout=60):
    """Seconds from exec until each of ``paths`` answers 200 (in order), and the process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    out = []
    for path in paths:
        while not _answers(sock, path):
            if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                raise SystemExit("%s did not answer %s" % (argv[0], path.decode()))
            time.sleep(0.002)
        out.append(time.perf_counter() - t0)
    return out, proc


def _stop(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def ours(base, fresh):
    root, sock = os.path.join(base, "hb-root"), os.path.join(base, "hb.sock")
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=REPO)
    (ping, info), proc = _start([sys.executable, "-m", "hostbridge.guest", "daemon", "--root", root, "--socket", sock,
                                 "--log-file", os.path.join(base, "hb.log")], sock, [b"/_ping", b"/info"], env)
    _stop(proc)
    return ping, info


def dockerd(base, fresh):
    data, sock = os.path.join(base, "dd-data"), os.path.join(base, "dd.sock")
    if fresh:
        subprocess.run(["umount", "-R", data], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
    (ping,), proc = _start(["dockerd", "--host", "unix://" + sock, "--data-root", data, "--exec-root",
                            os.path.join(base, "dd-exec"), "--pidfile", os.path.join(base, "dd.pid"), "--bridge", "none",
                            "--iptables=false", "--ip6tables=false"], sock, [b"/_ping"])
    _stop(proc)
    return ping


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    a = ap.parse_args()
    if not shutil.which("dockerd"):
        raise SystemExit("dockerd is missing: apt-get install docker.io (scripts/install-deps.sh --test)")
    # Bytecode as an installed engine has it (this shell may set PYTHONDONTWRITEBYTECODE).
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "hostbridge", "guest")], check=True,
                   stdout=subprocess.DEVNULL)
    base = tempfile.mkdtemp(prefix="hb-bench-start-")
    try:
        for fresh in (True, False):
            pings, infos, theirs = [], [], []
            for _ in range(a.n):  # interleaved: the same load for both
                p, i = ours(base, fresh)
                pings.append(p)
                infos.append(i)
                theirs.append(dockerd(base, fresh))
            kind = "empty root" if fresh else "warm root"
            print(describe("ours /_ping", pings) + "  " + kind)
            print(describe("ours /info", infos) + "  " + kind)
            print(describe("dockerd", theirs) + "  " + kind)
            med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
            report("start to /_ping, %s" % kind, med(pings), med(theirs), 1.0)
            report("start to ready (/info), %s" % kind, med(infos), med(theirs), 1.0)
    finally:
        subprocess.run(["umount", "-R", os.path.join(base, "dd-data")], capture_output=True)
        subprocess.run(["umount", "-R", os.path.join(base, "dd-exec")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/engine_start.py needs root (it runs dockerd and the engine)")
    main()
