"""QEMU command lines per OS and accelerator, built without running QEMU."""

import pytest

from hostbridge.machines import qemu_cmd
from hostbridge.machines.qemu_cmd import QemuConfig, build_command


def config(system="Linux", arch="x86_64", accel="kvm", **kw):
    base = dict(system=system, arch=arch, accel=accel, cpus=2, memory_mib=2048, disk="/m/disk.qcow2",
                kernel="/img/vmlinuz", initrd="/img/initrd.img", ssh_port=2222, qmp="unix:/m/qmp.sock",
                serial_log="/m/serial.log", pidfile="/m/qemu.pid", name="default",
                fw_cfg={"authorized_keys": "/m/id_ed25519.pub"}, shares=(("share0", "/home/ana"),))
    base.update(kw)
    return QemuConfig(**base)


def opt(argv, flag):
    """Every value following ``flag`` in argv."""
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


@pytest.mark.parametrize("system,arch,accel,machine,accel_opt,cpu", [
    ("Linux", "x86_64", "kvm", "q35", "kvm", "host"),
    ("Linux", "x86_64", "tcg", "q35", "tcg,thread=multi,tb-size=192", "max"),
    ("Darwin", "aarch64", "hvf", "virt,highmem=off", "hvf", "host"),
    ("Darwin", "aarch64", "tcg", "virt", "tcg,thread=multi,tb-size=192", "max"),
    ("Darwin", "x86_64", "hvf", "q35", "hvf", "host"),
    ("Windows", "x86_64", "whpx", "q35", "whpx,kernel-irqchip=off", None),
    ("Windows", "x86_64", "tcg", "q35", "tcg,thread=multi,tb-size=192", "max"),
])
def test_machine_accel_and_cpu_per_platform(system, arch, accel, machine, accel_opt, cpu):
    argv = build_command(config(system, arch, accel))
    assert argv[0] == "qemu-system-" + arch
    assert opt(argv, "-machine") == [machine]
    assert opt(argv, "-accel") == [accel_opt]
    assert opt(argv, "-cpu") == ([cpu] if cpu else [])


def test_console_follows_the_architecture():
    x86 = opt(build_command(config()), "-append")[0]
    arm = opt(build_command(config("Darwin", "aarch64", "hvf")), "-append")[0]
    assert "console=ttyS0" in x86 and "root=" not in x86  # the system is the initramfs
    assert "console=ttyAMA0" in arm


def test_ssh_is_forwarded_on_loopback_only():
    argv = build_command(config(ssh_port=40123))
    assert opt(argv, "-netdev") == ["user,id=net0,hostfwd=tcp:127.0.0.1:40123-:22"]


def test_disk_share_serial_qmp_pidfile_and_fw_cfg():
    argv = build_command(config())
    assert opt(argv, "-drive") == ["if=none,id=disk0,format=qcow2,discard=unmap,file=/m/disk.qcow2"]
    assert "local,id=fs0,security_model=none,path=/home/ana" in opt(argv, "-fsdev")
    assert "virtio-9p-pci,fsdev=fs0,mount_tag=share0" in opt(argv, "-device")
    assert opt(argv, "-serial") == ["file:/m/serial.log"]
    assert opt(argv, "-qmp") == ["unix:/m/qmp.sock,server=on,wait=off"]
    assert opt(argv, "-pidfile") == ["/m/qemu.pid"]
    assert opt(argv, "-fw_cfg") == ["name=opt/hostbridge/authorized_keys,file=/m/id_ed25519.pub"]
    assert opt(argv, "-kernel") == ["/img/vmlinuz"] and opt(argv, "-initrd") == ["/img/initrd.img"]


def test_daemonized_except_on_windows():
    assert "-daemonize" in build_command(config())
    assert "-daemonize" in build_command(config("Darwin", "aarch64", "hvf"))
    qmp = qemu_cmd.qmp_address(r"C:\Users\ana\AppData\Local\hostbridge\machines\dev\qmp.sock")
    win = build_command(config("Windows", accel="whpx", qmp=qmp, shares=(("share0", "C:\\Users"),)))
    assert "-daemonize" not in win
    # QMP is a unix socket on Windows too (QEMU >= 7.2): never a TCP port anyone local could drive.
    assert opt(win, "-qmp") == [r"unix:C:\Users\ana\AppData\Local\hostbridge\machines\dev\qmp.sock,server=on,wait=off"]
    assert not any("tcp:" in a for a in opt(win, "-qmp") + opt(win, "-monitor"))


def test_qmp_address_is_a_unix_socket_that_fits_sockaddr_un():
    assert qemu_cmd.qmp_address("/m/qmp.sock") == "unix:/m/qmp.sock"
    with pytest.raises(ValueError, match="107 bytes"):
        qemu_cmd.qmp_address("/" + "d" * 120 + "/qmp.sock")


def test_commas_in_paths_are_escaped():
    argv = build_command(config(disk="/m/a,b/disk.qcow2", shares=(("share0", "/home/a,b"),)))
    assert opt(argv, "-drive")[0].endswith("file=/m/a,,b/disk.qcow2")
    assert opt(argv, "-fsdev")[0].endswith("path=/home/a,,b")


def test_binary_and_accelerators_per_host():
    assert qemu_cmd.qemu_binary("arm64") == "qemu-system-aarch64"
    assert qemu_cmd.qemu_binary("AMD64") == "qemu-system-x86_64"
    assert qemu_cmd.accelerators("Linux") == ("kvm", "tcg")
    assert qemu_cmd.accelerators("Darwin") == ("hvf", "tcg")
    assert qemu_cmd.accelerators("Windows") == ("whpx", "tcg")
    assert qemu_cmd.accelerators("FreeBSD") == ("tcg",)


def test_probe_command_boots_only_the_kernel():
    argv = qemu_cmd.probe_command("qemu-system-x86_64", "Linux", "x86_64", "kvm", "/img/vmlinuz")
    assert "-no-reboot" in argv and opt(argv, "-serial") == ["stdio"]
    assert "-drive" not in argv and "-initrd" not in argv


def test_choose_accel_probes_once_and_falls_back(tmp_path):
    calls = []

    def probe(binary, system, arch, accel, kernel):
        calls.append(accel)
        return False, "no console output in 6 s"

    cache = str(tmp_path / "accel.json")
    first = qemu_cmd.choose_accel("/usr/bin/qemu-system-x86_64", "Linux", "x86_64", "/k", cache, probe=probe)
    second = qemu_cmd.choose_accel("/usr/bin/qemu-system-x86_64", "Linux", "x86_64", "/k", cache, probe=probe)
    assert first == second == ("tcg", ["kvm does not work here (no console output in 6 s)"])
    assert calls == ["kvm"]


def test_choose_accel_keeps_a_working_accelerator(tmp_path):
    accel, notes = qemu_cmd.choose_accel("/q", "Darwin", "aarch64", "/k", str(tmp_path / "a.json"),
                                         probe=lambda *a: (True, ""))
    assert (accel, notes) == ("hvf", [])


def test_a_guest_panic_or_reboot_stops_qemu():
    argv = build_command(config())
    assert "-no-reboot" in argv and "panic=-1" in opt(argv, "-append")[0]


def test_the_readiness_port_is_a_named_virtio_serial_port_on_a_unix_socket():
    assert "-chardev" not in build_command(config())  # none asked for: none given
    argv = build_command(config(ready="/m/ready.sock"))
    assert opt(argv, "-chardev") == ["socket,id=ready,path=/m/ready.sock,server=on,wait=off"]
    assert "virtio-serial-pci,id=vser0" in opt(argv, "-device")
    assert "virtserialport,bus=vser0.0,chardev=ready,name=org.hostbridge.ready" in opt(argv, "-device")
    assert qemu_cmd.READY_PORT == __import__("tests.unit.vm.test_vm_guest_init", fromlist=["x"]).load_init().READY_PORT


def test_qboot_is_the_firmware_when_this_qemu_ships_it():
    assert "-bios" not in build_command(config())  # none found: QEMU's default
    assert opt(build_command(config(bios="/usr/share/qemu/qboot.rom")), "-bios") == ["/usr/share/qemu/qboot.rom"]
    linux = {"/usr/share/qemu/qboot.rom"}
    assert qemu_cmd.fast_firmware("/usr/bin/qemu-system-x86_64", "x86_64", linux.__contains__) == \
        "/usr/share/qemu/qboot.rom"
    brew = {"/opt/homebrew/share/qemu/qboot.rom"}
    assert qemu_cmd.fast_firmware("/opt/homebrew/bin/qemu-system-x86_64", "x86_64", brew.__contains__) == \
        "/opt/homebrew/share/qemu/qboot.rom"
    assert qemu_cmd.fast_firmware("/usr/bin/qemu-system-x86_64", "x86_64", set().__contains__) == ""
    assert qemu_cmd.fast_firmware("/usr/bin/qemu-system-aarch64", "aarch64", linux.__contains__) == ""
    import os
    import shutil
    binary = shutil.which("qemu-system-x86_64")
    if binary:  # this host's QEMU (Debian's qemu-system-data has it)
        found = qemu_cmd.fast_firmware(binary, "x86_64")
        assert found == "" or os.path.isfile(found)


def test_the_kernel_skips_its_crypto_self_tests_but_keeps_its_isolation():
    append = opt(build_command(config()), "-append")[0].split()
    assert "cryptomgr.notests" in append and "initcall_blacklist=crypto_kdf108_init,init_kprobe_trace" in append
    # Nothing that turns off what containers rely on: seccomp, namespaces, capabilities, LSMs.
    assert not [w for w in append if w.split("=")[0] in ("lsm", "security", "seccomp", "namespace.unpriv_enable")]


def test_tcg_code_buffer_is_capped_unless_zero():
    from hostbridge.machines.qemu_cmd import TCG_TB_SIZE_MIB, tcg_accel

    assert tcg_accel() == "tcg,thread=multi,tb-size=%d" % TCG_TB_SIZE_MIB
    assert tcg_accel(64) == "tcg,thread=multi,tb-size=64"
    assert tcg_accel(0) == "tcg,thread=multi"  # QEMU's own default (1 GiB)
