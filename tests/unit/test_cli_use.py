"""``hostbridge use``: switch the default machine; refuse an unknown one."""

import subprocess
import sys


def run(env, *args):
    return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), env=env,
                          capture_output=True, text=True)


def test_use_sets_the_default_machine_and_refuses_unknown(tmp_path, monkeypatch):
    import os
    env = dict(os.environ, HOSTBRIDGE_HOME=str(tmp_path))
    env.pop("HOSTBRIDGE_MACHINE", None)
    r = run(env, "use", "nosuch")
    assert r.returncode == 1 and "no machine named 'nosuch'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    mdir = tmp_path / "state" / "machines" / "build1"
    mdir.mkdir(parents=True)
    (mdir / "machine.json").write_text('{"name": "build1", "mode": "remote", "driver": "", "endpoint_url": ""}')
    r = run(env, "use", "build1")
    assert r.returncode == 0, r.stderr
    assert run(env, "config", "get", "machine").stdout.strip() == "build1"
