"""A tiny static x86_64 ELF that makes ONE system call and exits with its errno (0 on success).

Busybox has no ``keyctl``, ``bpf`` or ``perf_event_open``; the security tests need to see
what the kernel (and the seccomp filter in front of it) answers to exactly one raw call, with
the same binary under dockerd and our engine. The program is a few instructions written here
as bytes; no compiler is needed.
"""

import os
import platform
import struct

_BASE = 0x400000


def _mov_imm64(reg_bytes: bytes, value: int) -> bytes:
    return reg_bytes + struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF)


def program(nr: int, *args: int) -> bytes:
    """Machine code: ``exit(syscall(nr, args...) < 0 ? errno : 0)``."""
    regs = [b"\x48\xbf", b"\x48\xbe", b"\x48\xba", b"\x49\xba", b"\x49\xb8", b"\x49\xb9"]  # rdi rsi rdx r10 r8 r9
    padded = list(args) + [0] * (6 - len(args))
    code = _mov_imm64(b"\x48\xb8", nr)  # mov rax, nr
    for reg, value in zip(regs, padded):
        code += _mov_imm64(reg, value)
    code += b"\x0f\x05"  # syscall
    code += b"\x48\xf7\xd8"  # neg rax: -errno becomes errno, a success result <= 0
    code += b"\x48\x89\xc7"  # mov rdi, rax
    code += b"\x31\xc9"  # xor ecx, ecx
    code += b"\x48\x85\xff"  # test rdi, rdi
    code += b"\x48\x0f\x48\xf9"  # cmovs rdi, rcx: a success exits 0
    code += b"\xb8\x3c\x00\x00\x00"  # mov eax, 60 (exit)
    code += b"\x0f\x05"  # syscall
    return code


def elf(code: bytes) -> bytes:
    """``code`` wrapped in a minimal ELF64 executable (one PT_LOAD, entry at the code)."""
    ehsize, phsize = 64, 56
    entry = _BASE + ehsize + phsize
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    header += struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, entry, ehsize, 0, 0, ehsize, phsize, 1, 0, 0, 0)
    total = ehsize + phsize + len(code)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, total, total, 0x1000)  # PT_LOAD, R+X
    return header + phdr + code


def supported() -> bool:
    """The probes are x86_64 code."""
    return platform.machine() == "x86_64"


def write(directory: str, name: str, nr: int, *args: int) -> str:
    """Write an executable probe ``directory/name``; returns its path."""
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(elf(program(nr, *args)))
    os.chmod(path, 0o755)
    return path
