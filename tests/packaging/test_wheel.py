"""The wheel a user installs (`pip install`/`pipx install`) carries what `up` needs.

The wheel is built from this checkout with `python -m build --wheel` and installed into a fresh
venv outside it; everything is then run from a temp dir, with no PYTHONPATH, as a user would.
Dependencies come from pip's configured index (no network beyond what pip is set up to use).
"""

import filecmp
import json
import os
import subprocess
import sys

import pytest

from tests.support.hbhome import REPO

pytestmark = pytest.mark.skipif(subprocess.run([sys.executable, "-c", "import build"]).returncode != 0,
                                reason="needs the `build` package (the test extra)")


def _run(cmd, cwd, env=None, timeout=600):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "%s: %s%s" % (" ".join(cmd), r.stdout[-2000:], r.stderr[-2000:])
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv outside the checkout with the wheel built from it installed.

    Returns:
        (venv dir, an environment for running its programs from a temp dir).
    """
    top = tmp_path_factory.mktemp("wheel")
    dist = top / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), REPO], cwd=str(top))
    wheels = [p for p in os.listdir(dist) if p.endswith(".whl")]
    assert len(wheels) == 1, wheels
    venv = top / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=str(top))
    _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(dist / wheels[0])],
         cwd=str(top))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HOSTBRIDGE_"))}
    env.update(HOME=str(top / "home"), HOSTBRIDGE_HOME=str(top / "hbhome"))
    os.makedirs(env["HOME"])
    return venv, env, top


def _python(installed, code):
    venv, env, top = installed
    return _run([str(venv / "bin" / "python"), "-c", code], cwd=str(top), env=env).stdout


def test_the_install_does_not_import_from_the_checkout(installed):
    venv = installed[0]
    out = json.loads(_python(installed, "import json, sys, hostbridge, hostbridge.machines.vagrant as v; "
                                        "print(json.dumps([hostbridge.__file__, v.__file__, sys.path]))"))
    for path in out[:2]:
        assert os.path.realpath(path).startswith(os.path.realpath(str(venv)) + os.sep), path
    # "" is the subprocess's own cwd (the temp dir), not the checkout.
    assert not any(p and os.path.realpath(p).startswith(os.path.realpath(REPO)) for p in out[2]), out[2]


def test_the_install_finds_every_provision_file_and_the_vagrantfile(installed):
    venv = installed[0]
    out = json.loads(_python(installed, "import json; from hostbridge import resources as r; "
                                        "from hostbridge.machines import vagrant as v; print(json.dumps("
                                        "[r.provision_dir(), r.vagrantfile(), v.PROVISION_DIR, v.VAGRANTFILE]))"))
    provision, vagrantfile = out[0], out[1]
    assert out[2:] == [provision, vagrantfile]
    for path in (provision, vagrantfile):
        assert os.path.realpath(path).startswith(os.path.realpath(str(venv)) + os.sep), path
    # pip compiles guest-init.py into __pycache__ on install: not a file we ship.
    wanted = sorted(n for n in os.listdir(os.path.join(REPO, "provision")) if n != "__pycache__")
    assert wanted and sorted(n for n in os.listdir(provision) if n not in ("Vagrantfile", "__pycache__")) == wanted
    match, mismatch, errors = filecmp.cmpfiles(os.path.join(REPO, "provision"), provision, wanted, shallow=False)
    assert (mismatch, errors) == ([], []) and sorted(match) == wanted
    assert filecmp.cmp(os.path.join(REPO, "Vagrantfile"), vagrantfile, shallow=False)


def test_the_installed_cli_runs(installed):
    venv, env, top = installed
    version = _run([str(venv / "bin" / "hostbridge"), "--version"], cwd=str(top), env=env).stdout
    assert version.startswith("hostbridge ") and version.split()[1][0].isdigit(), version
    helptext = _run([str(venv / "bin" / "hostbridge"), "--help"], cwd=str(top), env=env).stdout
    for command in ("up", "down", "destroy", "run"):
        assert "\n  %s " % command in helptext, helptext


@pytest.mark.vm
def test_installed_up_qemu_runs_a_container(installed, busybox_rootfs_tar):
    """The wheel's own `hostbridge up --driver qemu`, run from a temp dir, boots a guest it
    assembled itself (its .debs from the shared verified test cache: the signed index is still
    checked against Debian's server), and the stock docker CLI runs a container through it."""
    import shutil

    from tests.vm.test_vm_guest_nonroot import guest_debs_cache

    venv, env, top = installed
    hb = str(venv / "bin" / "hostbridge")
    shutil.copytree(guest_debs_cache(), os.path.join(env["HOSTBRIDGE_HOME"], "cache", "debian"))
    env = dict(env, DOCKER_CLI_HINTS="false", DOCKER_CONFIG=str(top / "docker-config"))
    try:
        r = subprocess.run([hb, "up", "--machine", "w", "--driver", "qemu", "--memory", "1024", "--disk", "4G"],
                           cwd=str(top), env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
        out = _run([hb, "env", "--shell", "bash", "w"], cwd=str(top), env=env).stdout
        host = [line.split("=", 1)[1].strip().strip('"').strip("'") for line in out.splitlines()
                if "DOCKER_HOST=" in line][0]
        denv = dict(env, DOCKER_HOST=host)
        _run(["docker", "import", busybox_rootfs_tar, "busybox:latest"], cwd=str(top), env=denv)
        r = _run(["docker", "run", "--rm", "busybox", "uname", "-r"], cwd=str(top), env=denv)
        from hostbridge.machines import image

        # Debian's kernel of the guest (…-amd64), not this host's
        assert r.stdout.strip().endswith("-" + image.debian_arch()) and r.stdout.strip() != os.uname().release, r.stdout
    finally:
        subprocess.run([hb, "destroy", "-f", "--machine", "w"], cwd=str(top), env=env, capture_output=True,
                       timeout=180)
