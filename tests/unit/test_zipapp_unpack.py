"""The engine zipapp unpacks itself once beside the archive, so its modules are compiled once."""

import os
import subprocess
import sys

from hostbridge import deploy


def _run(pyz, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    return subprocess.run([sys.executable, "-S", pyz] + list(args), capture_output=True, text=True, env=env,
                          timeout=60)


def test_runs_from_an_unpacked_copy_that_keeps_compiled_modules(tmp_path):
    pyz = deploy.build_zipapp(str(tmp_path))
    unpacked = os.path.join(str(tmp_path), "." + os.path.basename(pyz) + ".d")
    r = _run(pyz, "version")
    assert r.returncode == 0 and r.stdout.startswith("hostbridge-engine "), r.stderr
    assert os.path.isfile(os.path.join(unpacked, "hostbridge", "guest", "__main__.py"))
    pycs = [f for _, _, files in os.walk(unpacked) for f in files if f.endswith(".pyc")]
    assert pycs, "no compiled module was kept beside the unpacked engine"
    stamp = open(os.path.join(unpacked, ".stamp")).read()
    st = os.stat(pyz)
    assert stamp == "%d %d\n" % (st.st_size, st.st_mtime_ns)
    # A second start reuses the copy: the stamp file is the same inode.
    ino = os.stat(os.path.join(unpacked, ".stamp")).st_ino
    assert _run(pyz, "version").returncode == 0
    assert os.stat(os.path.join(unpacked, ".stamp")).st_ino == ino


def test_a_replaced_archive_is_unpacked_again(tmp_path):
    pyz = deploy.build_zipapp(str(tmp_path))
    assert _run(pyz, "version").returncode == 0
    unpacked = os.path.join(str(tmp_path), "." + os.path.basename(pyz) + ".d")
    marker = os.path.join(unpacked, "left-over")
    open(marker, "w").close()
    os.utime(pyz, ns=(0, os.stat(pyz).st_mtime_ns + 10**9))  # an upgrade writes a new archive
    r = _run(pyz, "version")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(marker)
    assert not [n for n in os.listdir(str(tmp_path)) if ".tmp" in n or ".old" in n]
