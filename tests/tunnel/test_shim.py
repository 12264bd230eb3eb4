"""The stock docker CLI's own ssh:// transport, through hostbridge's `docker` shim on the far side."""

import os
import shutil
import subprocess

import pytest

from hostbridge import deploy
from hostbridge.tunnel.known_hosts import KnownHosts
from hostbridge.tunnel.ssh import Connection, SSHTarget
from standin_engine import StandinEngine

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("docker"), reason="needs the stock docker CLI (docker.io)")]


def test_docker_cli_ssh_url_reaches_the_engine_through_the_shim(sshd, tmp_path):
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    target = SSHTarget(hostname=sshd.host, port=sshd.port, user="root", identity_files=[sshd.user_key])
    remote = str(tmp_path / "remote")
    with Connection(target, kh, accept_host_keys=sshd.host_fingerprint, look_for_keys=False, allow_agent=False) as c:
        lay = deploy.deploy(c, str(tmp_path / "cache"), remote_dir=remote, start="daemon", shim="always")
    os.makedirs(os.path.dirname(lay.socket))
    engine = StandinEngine(lay.socket, version="0.1.0")
    # The far side has a real docker CLI (it shares this host's /usr/bin): put the shim first on
    # the sessions' PATH, as deploy's /usr/local/bin/docker would be where docker is absent.
    sshd.restart(path_env="%s:/usr/local/bin:/usr/bin:/bin" % os.path.dirname(lay.shim))
    # The docker CLI runs `ssh`: wrap it with this test's key and the pinned known_hosts.
    hostbin = tmp_path / "hostbin"
    hostbin.mkdir()
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n"
                   "  StrictHostKeyChecking yes\n  BatchMode yes\n" % (sshd.user_key, kh.path))
    (hostbin / "ssh").write_text('#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' % cfg)
    (hostbin / "ssh").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (hostbin, os.environ["PATH"]), DOCKER_CONFIG=str(tmp_path / "dockercfg"),
               DOCKER_HOST="ssh://root@%s:%d" % (sshd.host, sshd.port))
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "0.1.0 1.44"
    finally:
        engine.close()
