"""The stock docker CLI's own ssh:// transport, through hostbridge's `docker` shim on the far side."""

import os
import shutil
import subprocess

import pytest

from hostbridge import deploy
from hostbridge.tunnel.known_hosts import KnownHosts
from hostbridge.tunnel.ssh import Connection, SSHTarget

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("docker"), reason="needs the stock docker CLI (docker.io)")]


def test_docker_cli_ssh_url_reaches_the_engine_through_the_shim(sshd, tmp_path, busybox_rootfs_tar):
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    target = SSHTarget(hostname=sshd.host, port=sshd.port, user="root", identity_files=[sshd.user_key])
    remote = str(tmp_path / "remote")
    conn = Connection(target, kh, accept_host_keys=sshd.host_fingerprint, look_for_keys=False, allow_agent=False)
    conn.open()
    # the real engine, deployed and started on the far side as `hostbridge remote add` does
    lay = deploy.deploy(conn, str(tmp_path / "cache"), remote_dir=remote, start="daemon", shim="always")
    deploy.start_engine(conn, lay)
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
        assert out.stdout.strip() == "%s 1.44" % deploy.engine_version()
        # more than /version: an image goes in and a container runs, all through the shim
        load = subprocess.run(["docker", "import", busybox_rootfs_tar, "busybox:latest"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert load.returncode == 0, load.stderr
        run = subprocess.run(["docker", "run", "--rm", "--network", "none", "busybox", "echo", "through the shim"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert (run.returncode, run.stdout) == (0, "through the shim\n"), run.stderr
    finally:
        deploy.stop_engine(conn, lay)
        conn.close()
