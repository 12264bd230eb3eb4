"""Pure pieces of the guest's PID 1 (provision/guest-init.py); the vm tier boots the real thing."""

import importlib.util
import os
import struct

from hostbridge.machines.image import PROVISION_DIR


def load_init():
    spec = importlib.util.spec_from_file_location("guest_init", os.path.join(PROVISION_DIR, "guest-init.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sysctl_files_are_parsed_like_sysctl_does():
    init = load_init()
    text = "# comment\n; other comment\n\nnet.ipv4.ip_forward = 1\n-net.bridge.bridge-nf-call-iptables=1\nbad line\n"
    assert init.parse_sysctl(text) == [("net.ipv4.ip_forward", "1"), ("net.bridge.bridge-nf-call-iptables", "1")]


def test_power_button_press_is_recognised_in_input_events():
    init = load_init()
    ev = init.INPUT_EVENT

    def event(etype, code, value):
        return ev.pack(0, 0, etype, code, value)

    sync = event(0, 0, 0)
    assert init.power_pressed(event(1, 116, 1) + sync)
    assert not init.power_pressed(event(1, 116, 0) + sync)  # the release alone
    assert not init.power_pressed(event(1, 30, 1) + sync)  # another key
    assert not init.power_pressed(b"\0" * (ev.size - 1))
    assert ev.size == struct.calcsize("llHHi")


def test_the_init_refuses_to_run_as_a_normal_process():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, os.path.join(PROVISION_DIR, "guest-init.py")], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1 and "must run as PID 1" in proc.stderr
