"""A non-root Linux user and the native engine: `up` (as root) creates the socket's group and
says how to join it; a refused socket gets that hint, not "is it running?". With a real second
user (useradd here, removed after) running the real CLI."""

import grp
import os
import random
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile

import pytest

from tests.cli.conftest import REPO

pytestmark = pytest.mark.root
SYSTEM_PYTHON = "/usr/bin/python3"  # the venv's interpreter lives under /root, which others cannot enter


@pytest.fixture
def stranger():
    """A second user and a group name nobody has, both removed afterwards."""
    if not shutil.which("useradd") or not shutil.which("runuser") or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs useradd (passwd), runuser (util-linux) and Debian's python3")
    tag = "%05d" % random.randrange(100000)
    user, group = "hbu" + tag, "hbg" + tag
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True)
    try:
        yield user, group
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.fixture
def shared_dir():
    """A temp dir other users can traverse (pytest's tmp_path is root's only)."""
    d = tempfile.mkdtemp(prefix="hbgroup-", dir="/tmp")
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_up_creates_the_group_and_a_refused_user_is_told_to_join_it(stranger, shared_dir):
    user, group = stranger
    env = dict(os.environ, PYTHONPATH=REPO, HOSTBRIDGE_HOME=os.path.join(shared_dir, "roothome"),
               HOSTBRIDGE_NATIVE_ROOT=os.path.join(shared_dir, "root"),
               HOSTBRIDGE_NATIVE_SOCKET=os.path.join(shared_dir, "run", "d.sock"), HOSTBRIDGE_NATIVE_GROUP=group,
               SUDO_USER=user)
    for k in ("HOSTBRIDGE_HOST", "HOSTBRIDGE_MACHINE", "HOSTBRIDGE_DEBUG"):
        env.pop(k, None)
    with pytest.raises(KeyError):
        grp.getgrnam(group)
    up = subprocess.run([sys.executable, "-m", "hostbridge.cli", "up"], env=env, capture_output=True, text=True,
                        timeout=90, cwd=REPO)
    try:
        assert up.returncode == 0, up.stderr
        assert "Created group %s" % group in up.stdout
        assert "To use it as %s: sudo usermod -aG %s %s, then log in again" % (user, group, user) in up.stdout
        sock = env["HOSTBRIDGE_NATIVE_SOCKET"]
        st = os.stat(sock)
        assert st.st_gid == grp.getgrnam(group).gr_gid and st.st_mode & 0o777 == 0o660

        home = os.path.join(shared_dir, "userhome")
        os.makedirs(home)
        shutil.chown(home, user)
        user_env = {"PATH": "/usr/bin:/bin", "HOME": home, "HOSTBRIDGE_HOME": home, "DOCKER_CONFIG": home,
                    "HOSTBRIDGE_NATIVE_SOCKET": sock,
                    "PYTHONPATH": "%s:%s" % (REPO, sysconfig.get_paths()["purelib"])}

        def as_user(*args):
            return subprocess.run(["runuser", "-u", user, "--", "env", "-i"] + ["%s=%s" % kv for kv in user_env.items()]
                                  + [SYSTEM_PYTHON, "-m", "hostbridge.cli"] + list(args),
                                  capture_output=True, text=True, timeout=60, cwd="/")

        refused = as_user("ps")
        assert refused.returncode == 1
        msg = refused.stderr.strip()
        assert "permission denied on the hostbridge engine's socket %s" % sock in msg, msg
        assert "sudo usermod -aG %s %s" % (group, user) in msg and "is it running" not in msg
        assert len(msg.splitlines()) == 1

        subprocess.run(["usermod", "-aG", group, user], check=True)
        ps = as_user("ps")
        assert ps.returncode == 0 and ps.stdout.startswith("CONTAINER ID"), ps.stderr

        again = subprocess.run([sys.executable, "-m", "hostbridge.cli", "up"], env=env, capture_output=True,
                               text=True, timeout=90, cwd=REPO)
        assert again.returncode == 0 and "Created group" not in again.stdout and "usermod" not in again.stdout
    finally:
        down = subprocess.run([sys.executable, "-m", "hostbridge.cli", "down"], env=env, capture_output=True,
                              text=True, timeout=90, cwd=REPO)
        if down.returncode != 0:  # last resort, so no engine outlives the test
            try:
                os.kill(int(open(os.path.join(shared_dir, "root", "engine.pid")).read()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
