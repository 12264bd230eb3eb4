"""The seccomp profile parser and BPF compiler: pure functions, checked with a small classic-BPF
interpreter (so the i386, x32 and aarch64 sections are checked on any machine), plus one real
load of the filter in a forked child."""

import ctypes
import errno
import json
import os
import struct

import pytest

from hostbridge.guest.errors import InvalidParameter
from hostbridge.guest.runtime import caps, seccomp, seccomp_profile, syscalls

X86_64, I386, AARCH64 = 0xC000003E, 0x40000003, 0xC00000B7
ALLOW, KILL_PROCESS = 0x7FFF0000, 0x80000000


def errno_ret(n):
    return 0x00050000 | n


def run_bpf(program, nr, arch, args=()):
    """Interpret a classic BPF seccomp program on one seccomp_data; returns its verdict."""
    insns = [struct.unpack("<HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    args = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    a, pc = 0, 0
    for _ in range(100000):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:
            a &= k
        elif code == 0x05:
            pc += k
        elif code == 0x06:
            return k
        else:
            cond = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if cond else jf
    raise AssertionError("the program does not end")


@pytest.fixture(scope="module")
def x86_default():
    return seccomp.compile_filter(seccomp_profile.default(), caps.DEFAULT, machine="x86_64")


def nr(arch, name):
    return syscalls.table(arch)[name]


def test_default_profile_names_are_all_known():
    seccomp.parse(seccomp_profile.default(), machine="x86_64")
    seccomp.parse(seccomp_profile.default(), machine="aarch64")


def test_default_profile_fits_the_kernel_limit(x86_default):
    assert len(x86_default) // 8 <= 4096
    arm = seccomp.compile_filter(seccomp_profile.default(), caps.DEFAULT, machine="aarch64")
    assert len(arm) // 8 <= 4096


@pytest.mark.parametrize("name,verdict", [
    ("read", ALLOW), ("openat", ALLOW), ("execve", ALLOW), ("arch_prctl", ALLOW),
    ("unshare", errno_ret(errno.EPERM)), ("keyctl", errno_ret(errno.EPERM)),
    ("bpf", errno_ret(errno.EPERM)), ("mount", errno_ret(errno.EPERM)),
    ("clone3", errno_ret(errno.ENOSYS)), ("ptrace", ALLOW), ("kexec_load", errno_ret(errno.EPERM)),
    ("open_by_handle_at", errno_ret(errno.EPERM)), ("chroot", ALLOW),
])
def test_x86_64_verdicts(x86_default, name, verdict):
    assert run_bpf(x86_default, nr("x86_64", name), X86_64) == verdict


def test_clone_namespace_flags(x86_default):
    clone = nr("x86_64", "clone")
    assert run_bpf(x86_default, clone, X86_64, [0x11]) == ALLOW  # SIGCHLD: a fork
    assert run_bpf(x86_default, clone, X86_64, [0x10000011]) == errno_ret(errno.EPERM)  # CLONE_NEWUSER
    assert run_bpf(x86_default, clone, X86_64, [1 << 32 | 0x11]) == ALLOW  # high bits: not namespaces


def test_personality_and_socket_arguments(x86_default):
    pers, sock = nr("x86_64", "personality"), nr("x86_64", "socket")
    assert run_bpf(x86_default, pers, X86_64, [0xFFFFFFFF]) == ALLOW
    assert run_bpf(x86_default, pers, X86_64, [0x0040000]) == errno_ret(errno.EPERM)
    assert run_bpf(x86_default, pers, X86_64, [1 << 32]) == errno_ret(errno.EPERM)  # the high word counts
    assert run_bpf(x86_default, sock, X86_64, [2]) == ALLOW
    assert run_bpf(x86_default, sock, X86_64, [40]) == errno_ret(errno.EPERM)


def test_sys_admin_opens_the_namespace_calls():
    prog = seccomp.compile_filter(seccomp_profile.default(), caps.DEFAULT + ["SYS_ADMIN"], machine="x86_64")
    assert run_bpf(prog, nr("x86_64", "unshare"), X86_64) == ALLOW
    assert run_bpf(prog, nr("x86_64", "clone3"), X86_64) == ALLOW
    assert run_bpf(prog, nr("x86_64", "clone"), X86_64, [0x10000011]) == ALLOW


def test_i386_and_x32_have_their_own_numbers(x86_default):
    # 21 is i386's mount but x86_64's access: each architecture is judged by its own table
    assert run_bpf(x86_default, nr("i386", "mount"), I386) == errno_ret(errno.EPERM)
    assert run_bpf(x86_default, nr("x86_64", "access"), X86_64) == ALLOW
    assert run_bpf(x86_default, nr("i386", "chown32"), I386) == ALLOW
    assert run_bpf(x86_default, nr("i386", "personality"), I386, [0xFFFFFFFF]) == ALLOW
    x32_unshare = nr("x32", "unshare") | 0x40000000
    assert run_bpf(x86_default, x32_unshare, X86_64) == errno_ret(errno.EPERM)
    assert run_bpf(x86_default, nr("x32", "read") | 0x40000000, X86_64) == ALLOW
    assert run_bpf(x86_default, 0, 0x12345678) == KILL_PROCESS  # an architecture it does not cover


def test_aarch64_section():
    prog = seccomp.compile_filter(seccomp_profile.default(), caps.DEFAULT, machine="aarch64")
    assert run_bpf(prog, nr("aarch64", "openat"), AARCH64) == ALLOW
    assert run_bpf(prog, nr("aarch64", "unshare"), AARCH64) == errno_ret(errno.EPERM)
    assert run_bpf(prog, nr("aarch64", "clone"), AARCH64, [0x10000011]) == errno_ret(errno.EPERM)
    assert run_bpf(prog, nr("x86_64", "read"), X86_64) == KILL_PROCESS


@pytest.mark.parametrize("op,value,two,arg,ok", [
    ("SCMP_CMP_EQ", 5, 0, 5, True), ("SCMP_CMP_EQ", 5, 0, 6, False),
    ("SCMP_CMP_NE", 5, 0, 5, False), ("SCMP_CMP_NE", 5, 0, 5 | 1 << 32, True),
    ("SCMP_CMP_GT", 1 << 32, 0, (1 << 32) + 1, True), ("SCMP_CMP_GT", 1 << 32, 0, 1 << 32, False),
    ("SCMP_CMP_GT", 5, 0, 1 << 33, True), ("SCMP_CMP_GE", 5, 0, 5, True), ("SCMP_CMP_GE", 5, 0, 4, False),
    ("SCMP_CMP_LT", 5, 0, 4, True), ("SCMP_CMP_LT", 5, 0, 5, False), ("SCMP_CMP_LT", 1 << 32, 0, 7, True),
    ("SCMP_CMP_LE", 5, 0, 5, True), ("SCMP_CMP_LE", 5, 0, 1 << 32, False),
    ("SCMP_CMP_MASKED_EQ", 0xF0, 0x10, 0x1F, True), ("SCMP_CMP_MASKED_EQ", 0xF0, 0x10, 0x2F, False),
])
def test_comparison_operators(op, value, two, arg, ok):
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 1, "value": value, "valueTwo": two, "op": op}]}]}
    prog = seccomp.compile_filter(seccomp.parse(profile, "x86_64"), [], machine="x86_64")
    verdict = run_bpf(prog, nr("x86_64", "read"), X86_64, [0, arg])
    assert verdict == (ALLOW if ok else errno_ret(errno.EPERM))


@pytest.mark.parametrize("profile,field", [
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [', "decoding failed"),
    ('[]', "decoding failed"),
    ({"defaultAction": "SCMP_ACT_BOGUS"}, "defaultAction"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["nope"], "action": "SCMP_ACT_ALLOW"}]},
     "syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]},
     "syscalls[0].action"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].index"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "LIKE"}]}]},
     "syscalls[0].args[0].op"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_S390X"]}, "architectures"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "SCMP_ARCH_AARCH64"}]}, "archMap"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}, "architectures"),
])
def test_bad_profiles_name_the_field(profile, field):
    with pytest.raises(InvalidParameter) as e:
        seccomp.parse(profile if isinstance(profile, str) else json.dumps(profile), machine="x86_64")
    assert field in str(e.value)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the raw syscall numbers below are x86_64's")
def test_the_kernel_accepts_and_enforces_the_filter(x86_default):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            from hostbridge.guest.runtime import ns
            ns.prctl(ns.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.install(x86_default)
            libc = ctypes.CDLL(None, use_errno=True)
            out = []
            for nr_, args in ((272, (0x10000000,)), (250, (0, 0, 0)), (39, ())):
                ret = libc.syscall(ctypes.c_long(nr_), *[ctypes.c_long(a) for a in args])
                out.append(0 if ret >= 0 else ctypes.get_errno())
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    got = json.loads(os.read(r, 1000))
    os.waitpid(pid, 0)
    assert got == [errno.EPERM, errno.EPERM, 0]


def test_sub_architectures_come_only_from_the_native_entry():
    profile = {"defaultAction": "SCMP_ACT_ERRNO",
               "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": None},
                           {"architecture": "SCMP_ARCH_X86", "subArchitectures": None}],
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    prog = seccomp.compile_filter(seccomp.parse(profile, "x86_64"), [], machine="x86_64")
    assert run_bpf(prog, nr("x86_64", "read"), X86_64) == ALLOW
    assert run_bpf(prog, nr("i386", "read"), I386) == KILL_PROCESS
    assert run_bpf(prog, nr("x32", "read") | 0x40000000, X86_64) == KILL_PROCESS
