"""Start a real guest engine on a temp root and socket, for the root-tier tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Engine:
    """A running engine daemon: ``sock`` (its socket path), ``root``, ``url`` for DOCKER_HOST."""

    def __init__(self, base, args=(), prefix=()):
        self.base = str(base)
        self.args = list(args)  # more daemon flags
        self.prefix = list(prefix)  # a command to run it under (``ip netns exec NS``), which execs it
        self.root = os.path.join(self.base, "state")
        self.sock = os.path.join(self.base, "docker.sock")
        self.log = os.path.join(self.base, "engine.log")
        self.url = "unix://" + self.sock
        self.proc = None

    def start(self, timeout=20):
        env = dict(os.environ, PYTHONPATH=REPO)
        self.proc = subprocess.Popen(
            self.prefix + [sys.executable, "-m", "hostbridge.guest", "daemon", "--root", self.root, "--socket", self.sock,
             "--log-file", self.log] + self.args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("engine exited: %s\n%s" % (self.proc.stderr.read().decode(), self.log_tail()))
            try:
                # /_ping is answered while the engine still starts; /info once it has (state restored)
                if self.request("GET", "/_ping")[0] == 200 and self.request("GET", "/info")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("engine did not answer /_ping and /info in %ss\n%s" % (timeout, self.log_tail()))

    def log_tail(self, n=30):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, parsed JSON or raw bytes)."""
        conn = UnixHTTPConnection(self.sock, timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {}, **{"Content-Type": "application/json"})
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            ctype = r.getheader("Content-Type", "")
            if ctype.startswith("application/json") and data:
                try:
                    return r.status, json.loads(data)
                except ValueError:
                    lines = [json.loads(x) for x in data.splitlines() if x.strip()]
                    return r.status, lines
            return r.status, data
        finally:
            conn.close()

    def import_tar(self, tar_path, ref="busybox:latest"):
        repo, _, tag = ref.rpartition(":")
        with open(tar_path, "rb") as f:
            status, body = self.request("POST", "/images/create?fromSrc=-&repo=%s&tag=%s" % (repo, tag), f.read(),
                                        {"Content-Type": "application/x-tar"})
        assert status == 200, body
        return body

    def cleanup_containers(self):
        try:
            status, cs = self.request("GET", "/containers/json?all=1")
        except OSError:
            return
        if status == 200:
            for c in cs:
                self.request("DELETE", "/containers/%s?force=1" % c["Id"])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.cleanup_containers()
        self.stop()
