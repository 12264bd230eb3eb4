"""Packing the engine and deploying it over SFTP to the namespace's sshd."""

import hashlib
import os
import subprocess
import sys
import time

import pytest

from hostbridge import deploy
from hostbridge.guest import ENGINE_VERSION
from hostbridge.tunnel.errors import RemoteHostError
from hostbridge.tunnel.known_hosts import KnownHosts
from hostbridge.tunnel.ssh import Connection, SSHTarget



def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_zipapp_is_deterministic_and_runs(tmp_path):
    a = deploy.build_zipapp(str(tmp_path / "a"))
    os.utime(os.path.join(os.path.dirname(deploy.__file__), "guest", "__init__.py"))
    b = deploy.build_zipapp(str(tmp_path / "b"))
    assert os.path.basename(a) == "engine-%s.pyz" % ENGINE_VERSION
    assert _sha(a) == _sha(b)
    out = subprocess.run([sys.executable, "-S", a, "version"], capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 0 and out.stdout.startswith("hostbridge-engine %s " % ENGINE_VERSION)


def test_python_version_checks_are_one_line():
    with pytest.raises(RemoteHostError, match=r"python3 on h1 is 3\.7\.3; hostbridge's engine needs >= 3\.9"):
        deploy.check_python(deploy.RemoteFacts(uid=0, home="/root", python="3.7.3"), "h1")
    with pytest.raises(RemoteHostError, match="h1 has no python3: install python3"):
        deploy.check_python(deploy.RemoteFacts(uid=0, home="/root"), "h1")
    deploy.check_python(deploy.RemoteFacts(uid=0, home="/root", python="3.9.0"), "h1")


def test_layout_choices():
    root = deploy.RemoteFacts(uid=0, home="/root", python="3.11.2", systemd=True)
    lay = deploy.plan_layout(root, "h")
    assert (lay.start, lay.socket, lay.sudo) == ("systemd", "/run/hostbridge/docker.sock", False)
    assert lay.zipapp == "/usr/local/lib/hostbridge/engine-%s.pyz" % ENGINE_VERSION
    sudoer = deploy.RemoteFacts(uid=1000, home="/home/ana", python="3.11.2", sudo=True)
    assert (deploy.plan_layout(sudoer, "h").start, deploy.plan_layout(sudoer, "h").sudo) == ("daemon", True)
    plain = deploy.RemoteFacts(uid=1000, home="/home/ana", python="3.11.2")
    with pytest.raises(RemoteHostError, match="needs root on h: log in as root, or give the user passwordless sudo"):
        deploy.plan_layout(plain, "h")
    assert deploy.plan_layout(plain, "h", allow_rootless=True).socket == "/home/ana/.hostbridge/run/docker.sock"
    unit = deploy.unit_file(lay)
    assert "KillMode=process" in unit and "daemon --root /var/lib/hostbridge" in unit


def _conn(sshd, tmp_path):
    t = SSHTarget(hostname=sshd.host, port=sshd.port, user="root", identity_files=[sshd.user_key])
    return Connection(t, KnownHosts(str(tmp_path / "kh")), accept_host_keys=sshd.host_fingerprint,
                      look_for_keys=False, allow_agent=False)


@pytest.mark.root
def test_deploy_copies_the_zipapp_and_it_runs_remotely(sshd, tmp_path):
    remote = str(tmp_path / "remote")
    with _conn(sshd, tmp_path) as conn:
        lay = deploy.deploy(conn, str(tmp_path / "cache"), remote_dir=remote, start="daemon", shim="always")
        assert lay.zipapp == os.path.join(remote, "engine-%s.pyz" % ENGINE_VERSION)
        assert _sha(lay.zipapp) == _sha(str(tmp_path / "cache" / os.path.basename(lay.zipapp)))
        rc, out, _ = conn.run("cd / && python3 %s version" % lay.zipapp)
        assert rc == 0 and out.decode().startswith("hostbridge-engine %s" % ENGINE_VERSION)
        assert lay.shim == os.path.join(remote, "bin", "docker") and os.access(lay.shim, os.X_OK)
        rc, _, err = conn.run("%s ps" % lay.shim)
        assert rc == 1 and b"only 'docker system dial-stdio'" in err


@pytest.mark.root
def test_deploy_without_python3_says_what_to_install(sshd, tmp_path):
    missing = str(tmp_path / "no-such-python3")
    with _conn(sshd, tmp_path) as conn:
        with pytest.raises(RemoteHostError, match="%s has no .*no-such-python3: install python3 \\(>= 3.9\\)" % sshd.host):
            deploy.deploy(conn, str(tmp_path / "cache"), remote_dir=str(tmp_path / "remote"), python=missing)
    # Python 3.7 cannot run here: a two-line stand-in that only reports that version.
    old = tmp_path / "python3.7"
    old.write_text("#!/bin/sh\necho 3.7.3\n")
    old.chmod(0o755)
    with _conn(sshd, tmp_path) as conn:
        with pytest.raises(RemoteHostError, match="python3 on %s is 3.7.3; hostbridge's engine needs >= 3.9" % sshd.host):
            deploy.deploy(conn, str(tmp_path / "cache"), remote_dir=str(tmp_path / "remote"), python=str(old))


@pytest.mark.root
def test_start_failure_reports_the_engine_log(sshd, tmp_path):
    # a far-side python3 that passes the version check but whose engine dies at start
    broken = tmp_path / "python3-broken"
    broken.write_text('#!/bin/sh\nif [ "$3" != daemon ]; then exec python3 "$@"; fi\n'
                      'echo "ModuleNotFoundError: No module named \'hostbridge.guest.daemon\'" >&2\nexit 1\n')
    broken.chmod(0o755)
    with _conn(sshd, tmp_path) as conn:
        lay = deploy.deploy(conn, str(tmp_path / "cache"), remote_dir=str(tmp_path / "remote"), start="daemon",
                            shim="never", python=str(broken))
        t0 = time.monotonic()
        with pytest.raises(RemoteHostError, match="the engine on %s did not start \\(.*No module named "
                           "'hostbridge.guest.daemon'\\): see .*engine.log there" % sshd.host):
            deploy.start_engine(conn, lay, wait=10)
        assert time.monotonic() - t0 < 9  # the dead daemon is noticed, not its 10 s waited out


@pytest.mark.root
def test_start_and_stop_the_real_engine(sshd, tmp_path):
    with _conn(sshd, tmp_path) as conn:
        lay = deploy.deploy(conn, str(tmp_path / "cache"), remote_dir=str(tmp_path / "remote"), start="daemon",
                            shim="never")
        deploy.start_engine(conn, lay)
        assert conn.run("test -S %s" % lay.socket)[0] == 0
        deploy.stop_engine(conn, lay)
        assert conn.run("test -S %s" % lay.socket)[0] != 0


@pytest.mark.root
def test_remote_engine_gets_the_proxies_and_cas(sshd, tmp_path):
    # The settings file and CA are copied, the engine reads them at start: /info shows the
    # proxies (credentials masked, as dockerd does).
    import json

    pytest.importorskip("cryptography")
    from tests.registry.test_proxy import _ca_and_cert

    ca, _, _ = _ca_and_cert(str(tmp_path), "registry.test")
    proxies = {"http-proxy": "http://proxy.corp:3128", "https-proxy": "http://ana:s3cret@proxy.corp:3129",
               "no-proxy": ".corp,10.0.0.0/8"}
    with _conn(sshd, tmp_path) as conn:
        lay = deploy.deploy(conn, str(tmp_path / "cache"), remote_dir=str(tmp_path / "remote"), start="daemon",
                            shim="never")
        deploy.write_settings(conn, lay, proxies, [ca])
        assert oct(os.stat(lay.settings).st_mode & 0o777) == "0o600"
        copied = json.load(open(lay.settings))["registry-ca"]
        assert len(copied) == 1 and open(copied[0]).read() == open(ca).read()
        deploy.start_engine(conn, lay)
        try:
            chan = conn.open_streamlocal(lay.socket)
            chan.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            for _ in range(10000):
                d = chan.recv(65536)
                if not d:
                    break
                data += d
            info = json.loads(data.split(b"\r\n\r\n", 1)[1])
            assert (info["HttpProxy"], info["HttpsProxy"], info["NoProxy"]) == (
                "http://proxy.corp:3128", "http://xxxxx:xxxxx@proxy.corp:3129", ".corp,10.0.0.0/8")
        finally:
            deploy.stop_engine(conn, lay)
