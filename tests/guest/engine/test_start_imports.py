"""The engine's start imports only what a start needs (issue 12: imports are most of a start in
an emulated guest). A real daemon on a temp root: once ``/info`` answers, its modules are listed
from inside it and checked against those only some requests use."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.engine import REPO

pytestmark = pytest.mark.root

# Imported where first used: archives and compression (load/save/cp/build/pull), digests of
# content (pull/push/build/commit; hashlib loads OpenSSL), temp files, random names, the registry
# client. (shutil, which the start uses, imports bz2 and lzma.) hashlib is checked apart: a root
# other than the default one, as a test's, names its bridge by a digest (network.manager).
NOT_AT_START = ["tarfile", "gzip", "tempfile", "random", "secrets", "uuid", "datetime", "typing",
                "concurrent.futures", "shlex", "runpy", "importlib.util", "pty", "termios",
                "hostbridge.guest.api.schema",
                "hostbridge.guest.containers.fs", "hostbridge.guest.images.archive",
                "hostbridge.guest.images.build", "hostbridge.guest.images.distribution",
                "hostbridge.guest.images.tarsafe", "hostbridge.guest.images.difftar",
                "hostbridge.guest.images.changes", "hostbridge.guest.registry.pull",
                "hostbridge.guest.registry.push", "hostbridge.guest.registry.client"]

# Runs the daemon as __main__ does and, once /info answers, writes the daemon's modules to a file.
_WRAPPER = r'''
import socket, sys, threading, time
def dump(sock, out):
    end = time.monotonic() + 60
    while time.monotonic() < end:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(sock)
            s.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(12) == b"HTTP/1.1 200":
                with open(out, "w") as f:
                    f.write("\n".join(sorted(sys.modules)))
                return
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.05)
threading.Thread(target=dump, args=(sys.argv[1], sys.argv[2]), daemon=True).start()
from hostbridge.guest.__main__ import main
sys.argv[1:3] = []
sys.exit(main())
'''


def test_a_started_engine_has_not_imported_what_only_some_requests_use(tmp_path):
    sock, out = str(tmp_path / "docker.sock"), str(tmp_path / "modules")
    proc = subprocess.Popen([sys.executable, "-S", "-c", _WRAPPER, sock, out, "daemon", "--root",
                             str(tmp_path / "state"), "--socket", sock, "--log-file", str(tmp_path / "engine.log")],
                            env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 60
        while not os.path.exists(out) and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert os.path.exists(out), proc.stderr.read().decode() if proc.poll() is not None else "no /info in 60 s"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    with open(out) as f:
        modules = set(f.read().split())
    assert "hostbridge.guest.engine" in modules and "hostbridge.guest.network.manager" in modules
    leaked = sorted(m for m in NOT_AT_START if m in modules)
    assert not leaked, "imported by a start (%d modules): %s" % (len(modules), " ".join(leaked))


def test_the_engine_and_its_routes_import_no_hashlib():
    code = ("import sys\n"
            "from hostbridge.guest import daemon, engine\n"
            "from hostbridge.guest.api import routes\n"
            "routes.build_router(), routes.early_router()\n"
            "print(sorted(m for m in ('hashlib', '_hashlib') + tuple(%r) if m in sys.modules))" % NOT_AT_START)
    r = subprocess.run([sys.executable, "-S", "-c", code], env=dict(os.environ, PYTHONPATH=REPO),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
