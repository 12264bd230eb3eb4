"""The guest init's prestarted engine (provision/guest-init.py ENGINE_PRESTART): a Python that
imports the standard library beside the boot, then runs the engine's zipapp when told."""

import json
import os
import subprocess
import sys

from hostbridge import deploy
from hostbridge.machines.guestimage import assemble
from hostbridge.machines.image import PROVISION_DIR
from tests.unit.vm.test_vm_guest_init import load_init


def _prestart(init):
    r, w = os.pipe()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    proc = subprocess.Popen([sys.executable, "-S", "-c", init.ENGINE_PRESTART] + list(init.ENGINE_PRELOAD),
                            stdin=r, env=env, cwd="/")
    os.close(r)
    return proc, w


def test_told_to_go_it_runs_the_zipapp_with_the_cache_prefix_it_is_given(tmp_path):
    init = load_init()
    pyz = deploy.build_zipapp(str(tmp_path))
    prefix = str(tmp_path / "pycache")
    proc, w = _prestart(init)
    # An unknown sub-command: the engine's own main answers it with exit status 2.
    os.write(w, (json.dumps({"argv": [pyz, "no-such-command"], "env": {"PYTHONPYCACHEPREFIX": prefix}}) + "\n").encode())
    os.close(w)
    assert proc.wait(60) == 2
    unpacked = os.path.join(str(tmp_path), "." + os.path.basename(pyz) + ".d")
    main_pyc = os.path.join(prefix, unpacked.lstrip(os.sep), "hostbridge", "guest", "__main__.%s.pyc"
                            % sys.implementation.cache_tag)
    assert os.path.isfile(main_pyc)  # the engine's modules are found under the data disk's prefix


def test_without_a_word_it_exits_and_runs_nothing(tmp_path):
    proc, w = _prestart(load_init())
    os.close(w)
    assert proc.wait(60) == 0


def test_it_runs_the_engine_with_the_init_scripts_arguments():
    init = load_init()
    with open(os.path.join(PROVISION_DIR, "hostbridge.initd")) as f:
        script = f.read()
    values = dict(line.split("=", 1) for line in script.splitlines() if line[:1].isupper() and "=" in line)
    args = values["ARGS"].strip('"').replace("$PIDFILE", values["PIDFILE"]).split()
    assert init.ENGINE_ARGS == args + ["--log-file", values["LOG"]]
    assert values["ENGINE"] == init.ENGINE


def test_what_it_imports_before_the_data_disk_the_image_carries_compiled():
    # Imported before PYTHONPYCACHEPREFIX (the data disk) is set, a module without a .pyc in
    # the image would be compiled from source at every boot.
    init = load_init()
    code = ("import sys, json\nfor n in sys.argv[1:]: __import__(n)\n"
            "print(json.dumps({k: getattr(getattr(m, '__spec__', None), 'origin', None) for k, m in sys.modules.items()}))")
    out = subprocess.run([sys.executable, "-S", "-c", code] + list(init.ENGINE_PRELOAD), capture_output=True,
                         text=True, timeout=60, check=True).stdout
    sources = sorted(name for name, origin in json.loads(out).items() if origin and origin.endswith(".py"))
    assert sources and "logging" in sources
    missing = [n for n in sources if n.split(".")[0] not in assemble.PRECOMPILED
               and n not in assemble.PRECOMPILED_MODULES]
    assert not missing, "not compiled in the image: %s" % missing


def test_the_init_prestarts_it_and_a_boot_without_an_engine_ends_it():
    init = load_init()
    pid1 = init.Init()
    pid1.prestart_engine()
    assert pid1.prestart is not None and list(pid1.children.values()) == ["engine"]
    pid1.end_prestart()  # as boot() does when no engine was started
    pid = next(iter(pid1.children))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and pid1.prestart is None
