"""Device access rules for cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program, as runc loads.

cgroup v2 has no devices.allow file; the kernel asks an eBPF program attached to the cgroup
instead. The program here is generated from docker-style rules ("c 1:3 rwm", "b *:* m") and
returns 1 (allow) for the first rule that matches, 0 (deny) otherwise. No helpers are called,
so it needs no GPL licence and no kernel headers; only bpf(2), through ctypes.
"""

from __future__ import annotations

import ctypes
import os
import struct

from . import ns

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351,
            "riscv64": 280, "i686": 357, "i386": 357}
_BPF_PROG_LOAD, _BPF_PROG_ATTACH = 5, 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2

_TYPES = {"c": 2, "b": 1}  # BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

# opcodes (linux/bpf.h): loads, 32-bit ALU, 64-bit jumps, exit
_LDXW, _AND32, _RSH32, _MOV32X, _MOV64K, _JNEK, _EXIT = 0x61, 0x54, 0x74, 0xBC, 0xB7, 0x55, 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _parse(rule: str) -> tuple:
    """``"c 136:* rwm"`` → ``(type or None, major or None, minor or None, access mask)``."""
    kind, numbers, access = rule.split()
    major, minor = numbers.split(":")
    return (None if kind == "a" else _TYPES[kind], None if major == "*" else int(major),
            None if minor == "*" else int(minor), sum(_ACCESS[a] for a in access))


def program(rules) -> bytes:
    """The eBPF instructions allowing exactly ``rules`` (docker's devices.allow syntax).

    Registers: r2 device type, r3 requested access, r4 major, r5 minor; r1 is the context
    (struct bpf_cgroup_dev_ctx: u32 access_type = access << 16 | type, u32 major, u32 minor).
    """
    head = [_insn(_LDXW, 2, 1, 0), _insn(_AND32, 2, imm=0xFFFF),
            _insn(_LDXW, 3, 1, 0), _insn(_RSH32, 3, imm=16),
            _insn(_LDXW, 4, 1, 4), _insn(_LDXW, 5, 1, 8)]
    body = []
    for kind, major, minor, access in (_parse(r) for r in rules):
        block = []
        if kind is not None:
            block.append((_JNEK, 2, kind))
        if access != 7:
            # allowed only when the request asks nothing outside this rule's access
            block += [("mov", 1, 3), ("and", 1, ~access & 0xFFFFFFFF), (_JNEK, 1, 0)]
        if major is not None:
            block.append((_JNEK, 4, major))
        if minor is not None:
            block.append((_JNEK, 5, minor))
        n = len(block) + 2  # the jumps skip the rest of the block and its "allow; exit"
        for i, (op, reg, imm) in enumerate(block):
            if op == "mov":
                body.append(_insn(_MOV32X, reg, 3))
            elif op == "and":
                body.append(_insn(_AND32, reg, imm=ctypes.c_int32(imm).value))
            else:
                body.append(_insn(op, reg, off=n - i - 1, imm=imm))
        body += [_insn(_MOV64K, 0, imm=1), _insn(_EXIT)]
    tail = [_insn(_MOV64K, 0, imm=0), _insn(_EXIT)]
    return b"".join(head + body + tail)


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 128)
    nr = _SYS_BPF[os.uname().machine]
    return ns._check(ns._libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), buf,
                                      ctypes.c_uint(128)), "bpf %d" % cmd)


def attach(cgroup_dir: str, rules) -> None:
    """Load the program for ``rules`` and attach it to the v2 cgroup at ``cgroup_dir``.

    Raises:
        OSError: the kernel refused to load or attach it (no CAP_SYS_ADMIN, no BPF).
    """
    insns = ctypes.create_string_buffer(program(rules))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQ", _BPF_PROG_TYPE_CGROUP_DEVICE, len(insns.raw) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_), 1, len(log),
                       ctypes.addressof(log))
    try:
        prog = _bpf(_BPF_PROG_LOAD, attr)
    except OSError as e:
        detail = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(e.errno, "%s%s" % (e.strerror, (": " + detail[-1]) if detail else ""))
    try:
        cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _bpf(_BPF_PROG_ATTACH, struct.pack("<IIII", cg, prog, _BPF_CGROUP_DEVICE,
                                               _BPF_F_ALLOW_MULTI))
        finally:
            os.close(cg)
    finally:
        os.close(prog)
