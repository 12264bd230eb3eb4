"""The machine as one interface: the staged sequencer's contract (stage names, cleanup on
failure, the persisted starting state), ``modes.select`` and each mode's refusals, the one
record for remote machines, and the CLI and endpoint choice going through ``modes``.

The sequencer is driven by plain functions standing in for a driver's steps (its contract is
pure sequencing); everything else runs the real modules on records in a temporary home.
"""

import logging
import os
import subprocess
import sys

import pytest

from hostbridge import config
from hostbridge.client.endpoint import resolve_endpoint
from hostbridge.errors import HostbridgeError, MachineError, VMError
from hostbridge.machines import modes, record, remote, stages


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path / "hb"))
    for k in ("HOSTBRIDGE_MACHINE", "HOSTBRIDGE_HOST", "HOSTBRIDGE_VM_DRIVER"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path


TABLE = {"create": ("creating", "destroy NAME and retry"), "boot": ("booting", "see NAME's serial log"),
         "ssh": ("waiting for SSH", "see the log")}


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stages_report_each_stage_once_and_time_it():
    seen = []
    run = stages.Stages("dev", TABLE, lambda stage, text: seen.append((stage, text)))
    assert run.run("create", lambda: 1) == 1
    run.run("boot", lambda: None)
    run.run("boot", lambda: None)  # a stage in two steps: one line, one timing
    assert seen == [("create", "creating"), ("boot", "booting")]
    assert [name for name, _ in run.timings] == ["create", "boot"]
    assert all(seconds >= 0 for _, seconds in run.timings)


def test_a_failed_stage_is_named_with_its_hint_and_cleanups_run_last_first(caplog):
    undone = []
    run = stages.Stages("dev", TABLE)
    run.on_failure(undone.append, "disk")
    run.run("create", lambda: None)
    run.on_failure(undone.append, "vm")

    def broken():
        raise OSError("no such device")

    def failing_cleanup():
        raise RuntimeError("already gone")

    run.on_failure(failing_cleanup)
    with pytest.raises(stages.StageFailed) as err:
        run.run("boot", broken)
    assert err.value.message == "machine dev: `up` failed at the boot stage: no such device"
    assert err.value.hint == "see dev's serial log" and err.value.stage == "boot"
    assert isinstance(err.value.cause, OSError) and run.current == "boot"
    with caplog.at_level(logging.WARNING, logger="hostbridge.machines.stages"):
        run.cleanup()  # a failing cleanup is logged, the others still run
    assert undone == ["vm", "disk"]
    assert "already gone" in caplog.text
    run.cleanup()  # once only
    assert undone == ["vm", "disk"]


def test_a_stage_error_keeps_its_own_hint_and_drops_the_repeated_machine_name():
    run = stages.Stages("dev", TABLE, action="`remote add`")
    with pytest.raises(stages.StageFailed) as err:
        run.run("ssh", lambda: (_ for _ in ()).throw(VMError("machine dev: no banner", hint="open port 22")))
    assert err.value.message == "machine dev: `remote add` failed at the ssh stage: no banner"
    assert err.value.hint == "open port 22"


def test_a_mode_error_factory_and_interrupts_pass_through():
    mine = MachineError("mine")
    run = stages.Stages("dev", TABLE, error=lambda name, stage, cause: mine)
    with pytest.raises(MachineError) as err:
        run.run("create", lambda: 1 / 0)
    assert err.value is mine

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # not an Exception: the caller decides (Ctrl-C)
        run.run("create", interrupted)
    with pytest.raises(KeyError):
        run.run("nope", lambda: None)


def test_the_starting_state_is_persisted_and_a_crashed_start_is_seen():
    rec = record.Machine("dev", "vm", "qemu")
    assert stages.mark_starting(rec) is False
    on_disk = record.load("dev")
    assert on_disk.fields["state"] == "starting" and on_disk.fields["up_pid"] == os.getpid()
    assert stages.mark_starting(record.load("dev")) is True  # the next start sees it
    stages.mark_done(rec, "running")
    assert record.load("dev").fields["state"] == "running" and record.load("dev").fields["up_pid"] is None
    assert oct(os.stat(rec.paths.machine_json).st_mode & 0o777) == "0o600"


def _config():
    return config.load()


def test_select_by_record_and_by_driver():
    record.Machine("dev", "vm", "qemu", fields={"state": "stopped"}).save()
    record.Machine("far", "remote", "").save()
    c = _config()
    assert type(modes.select("dev", c)) is modes.VMMachine
    assert type(modes.select("far", c)) is modes.RemoteMachine
    assert type(modes.select("default", c, "native")) is modes.NativeMachine
    new = modes.select("new", c, "qemu")
    assert type(new) is modes.VMMachine and new.record is None
    with pytest.raises(MachineError, match="no machine named 'new'"):
        modes.select("new", c)
    with pytest.raises(MachineError, match="unknown driver 'hyperv'"):
        modes.select("default", c, "hyperv")


def test_each_mode_refuses_what_it_cannot_do():
    record.Machine("far", "remote", "").save()
    c = _config()
    far = modes.select("far", c)
    with pytest.raises(MachineError, match="is a remote host") as err:
        far.down()
    assert "hostbridge remote" in err.value.hint
    with pytest.raises(MachineError, match="is not a VM"):
        far.destroy()
    native = modes.select("default", c, "native")
    with pytest.raises(MachineError, match="runs from this hostbridge's own files"):
        native.upgrade()
    with pytest.raises(MachineError, match="no machine named 'default'"):
        native.destroy()
    ghost = modes.select("ghost", c, "qemu")
    for call in (ghost.down, ghost.status, ghost.upgrade, ghost.destroy):
        with pytest.raises(MachineError, match="no machine named 'ghost'"):
            call()


def test_endpoint_choice_goes_through_the_mode():
    record.Machine("dev", "vm", "qemu", fields={"state": "stopped"}).save()
    with pytest.raises(MachineError, match="machine dev is stopped"):
        resolve_endpoint({"host": None, "machine": "dev", "native.socket": "/s"})
    record.Machine("default", "native", "", "unix:///run/x.sock").save()
    assert resolve_endpoint({"host": None, "machine": "default", "native.socket": "/s"}).path == "/run/x.sock"


def test_a_remote_machine_uses_the_one_record_and_a_crashed_add_is_seen():
    paths = record.Machine("far", "remote", "").paths
    remote.save_record(paths, {"name": "far", "url": "ssh://u@127.0.0.1:1", "ssh": {}, "layout": {"version": "1"}})
    rec = record.load("far")
    assert rec.mode == "remote" and rec.fields["layout"] == {"version": "1"}
    assert remote.load_record("far")["url"] == "ssh://u@127.0.0.1:1"
    stages.mark_starting(rec)
    rec.fields["up_pid"] = _dead_pid()
    rec.save()
    assert [r["state"] for r in remote.list_remotes()] == ["half-added"]
    record.Machine("dev", "vm", "qemu").save()
    with pytest.raises(MachineError, match="no remote machine named 'dev'"):
        remote.load_record("dev")


def test_a_crashed_remote_add_is_cleared_by_the_next_add(home):
    rec = record.Machine("far", "remote", "", fields={"state": "starting", "up_pid": _dead_pid()})
    rec.save()
    # Port 1 on 127.0.0.1: nothing listens, so the add fails at its connect stage and cleans up.
    with pytest.raises(HostbridgeError, match="cannot reach SSH at 127.0.0.1:1") as err:
        remote.add_remote("far", "ssh://nobody@127.0.0.1:1", ssh_config=str(home / "no-ssh-config"))
    assert err.value.stage == "connect"
    assert record.load("far") is None  # nothing half-done is left, the old leftover included


def test_a_live_remote_machine_is_not_replaced():
    record.Machine("far", "remote", "", fields={"url": "ssh://x"}).save()
    with pytest.raises(MachineError, match="exists already"):
        remote.add_remote("far", "ssh://nobody@127.0.0.1:1")


def _cli(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), capture_output=True, text=True,
                          env=env, timeout=60)


def test_cli_status_and_refusals_read_the_same_through_the_interface():
    record.Machine("dev", "vm", "qemu", fields={"state": "stopped", "cpus": 1, "memory_mib": 512, "disk_gib": 4,
                                                "shares": ["/home/ana"]}).save()
    record.Machine("far", "remote", "").save()
    res = _cli("status", "--machine", "dev")
    assert res.returncode == 1, res.stderr
    assert res.stdout.splitlines() == ["machine:  dev (vm, qemu)", "state:    not-created", "engine:   not answering",
                                       "tunnel:   stopped", "endpoint: -", "ssh:      -",
                                       "size:     1 CPUs, 512 MiB, 4 GiB disk", "shares:   /home/ana"]
    res = _cli("down", "--machine", "far")
    assert res.returncode != 0 and "machine far is a remote host" in res.stderr
    res = _cli("destroy", "-f", "--machine", "far")
    assert res.returncode != 0 and "machine far is not a VM" in res.stderr
    res = _cli("down", "--machine", "dev")
    assert res.returncode == 0 and res.stdout == "Machine dev is not running.\n", res.stderr


def test_the_endpoint_path_of_a_vm_stays_light():
    record.Machine("dev", "vm", "qemu", fields={"state": "stopped"}).save()
    code = ("import sys\nfrom hostbridge.client.endpoint import resolve_endpoint\n"
            "try:\n    resolve_endpoint({'host': None, 'machine': 'dev', 'native.socket': '/s'})\n"
            "except Exception as e:\n    print(type(e).__name__)\n"
            "print(sorted(m for m in ('paramiko', 'hostbridge.machines.machine', 'hostbridge.machines.stages', "
            "'hostbridge.machines.qemu', 'hostbridge.machines.steps') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__)))))))
    assert res.stdout.splitlines() == ["MachineError", "[]"], res.stderr


def test_a_vm_up_failing_at_its_first_stage_leaves_the_starting_state():
    from hostbridge.machines import machine as machines

    seen = []
    # A published image at 127.0.0.1:1, where nothing listens: the image stage fails at once.
    with pytest.raises(machines.StageFailed) as err:
        machines.up_vm("dev", driver="qemu", image_url="http://127.0.0.1:1/guest.tar", image_sha256="0" * 64,
                       progress=lambda stage, text: seen.append(stage))
    assert err.value.stage == "image" and seen[:1] == ["image"]
    assert record.load("dev").fields["state"] == "stopped"  # not left "starting"
    assert record.load("dev").fields["up_pid"] is None
