"""Seccomp: docker's JSON profile format, compiled to a classic BPF filter and loaded with prctl.

``parse`` reads a profile (docker's format: ``defaultAction``, ``defaultErrnoRet``,
``architectures`` or ``archMap``, ``syscalls`` with ``names``, ``action``, ``errnoRet``,
``args``, ``includes``/``excludes`` by ``caps``, ``arches`` and ``minKernel``) and refuses what
it cannot honour, naming the field. ``compile_filter`` resolves it for this machine's
architecture (plus the sub-architectures the profile lists and we have numbers for: i386 and
x32 on x86_64) and a capability set, and emits the program. ``install`` loads it; the runtime
calls it last, just before ``execve`` (``process.exec_prepared``).

The program: check the architecture (an unlisted one kills the process, libseccomp's
bad-arch action), then a binary search on the syscall number down to one block per syscall
that some rule names: an unconditional rule is ``jeq nr; ret action``; conditional rules test the 64-bit arguments
word by word (32-bit arches: the low word only, as libseccomp) and fall back to the
syscall's unconditional action or the default.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import struct

from ..errors import InvalidParameter
from . import ns, seccomp_profile, syscalls

# classic BPF opcodes (linux/filter.h)
_LD_W_ABS, _JEQ, _JGT, _JGE, _JSET, _JA, _RET, _AND = 0x20, 0x15, 0x25, 0x35, 0x45, 0x05, 0x06, 0x54

_RET_KILL_PROCESS, _RET_KILL_THREAD, _RET_TRAP = 0x80000000, 0x00000000, 0x00030000
_RET_ERRNO, _RET_TRACE, _RET_LOG, _RET_ALLOW = 0x00050000, 0x7FF00000, 0x7FFC0000, 0x7FFF0000
_ACTIONS = {"SCMP_ACT_KILL": _RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD": _RET_KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": _RET_KILL_PROCESS, "SCMP_ACT_TRAP": _RET_TRAP,
            "SCMP_ACT_ERRNO": _RET_ERRNO, "SCMP_ACT_TRACE": _RET_TRACE, "SCMP_ACT_LOG": _RET_LOG,
            "SCMP_ACT_ALLOW": _RET_ALLOW}
_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ")
_EPERM = 1

_AUDIT_ARCH_X86_64, _AUDIT_ARCH_I386, _AUDIT_ARCH_AARCH64 = 0xC000003E, 0x40000003, 0xC00000B7
_X32_BIT = 0x40000000

# docker's arch names: SCMP_ARCH_* → (Go name used by includes/excludes "arches", our table)
_ARCHES = {"SCMP_ARCH_X86_64": ("amd64", "x86_64"), "SCMP_ARCH_X86": ("x86", "i386"),
           "SCMP_ARCH_X32": ("x32", "x32"), "SCMP_ARCH_AARCH64": ("arm64", "aarch64"),
           "SCMP_ARCH_ARM": ("arm", None), "SCMP_ARCH_MIPS": ("mips", None),
           "SCMP_ARCH_MIPS64": ("mips64", None), "SCMP_ARCH_MIPS64N32": ("mips64n32", None),
           "SCMP_ARCH_MIPSEL": ("mipsle", None), "SCMP_ARCH_MIPSEL64": ("mips64le", None),
           "SCMP_ARCH_MIPSEL64N32": ("mips64n32le", None), "SCMP_ARCH_PPC": ("ppc", None),
           "SCMP_ARCH_PPC64": ("ppc64", None), "SCMP_ARCH_PPC64LE": ("ppc64le", None),
           "SCMP_ARCH_S390": ("s390", None), "SCMP_ARCH_S390X": ("s390x", None),
           "SCMP_ARCH_RISCV64": ("riscv64", None)}
_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
_known: set = set()


def _known_names() -> set:
    """Every syscall name we have a number for, on any architecture, and docker's others."""
    if not _known:
        for arch in syscalls.ARCHES:
            _known.update(syscalls.table(arch))
        _known.update(seccomp_profile.OTHER_ARCH_NAMES)
    return _known


def native_arch(machine: str | None = None) -> str:
    """This machine's ``SCMP_ARCH_*`` name.

    Raises:
        InvalidParameter: an architecture we have no syscall numbers for.
    """
    machine = machine or os.uname().machine
    if machine not in _NATIVE:
        raise InvalidParameter("seccomp: no syscall table for the %s architecture" % machine)
    return _NATIVE[machine]


def _field(path: str, why: str) -> InvalidParameter:
    return InvalidParameter("seccomp profile: %s: %s" % (path, why))


def _check_action(rule: dict, path: str) -> None:
    action = rule.get("action")
    if action == "SCMP_ACT_NOTIFY":
        raise _field(path + ".action", "SCMP_ACT_NOTIFY is not supported by the hostbridge engine")
    if action not in _ACTIONS:
        raise _field(path + ".action", "unknown action %r" % (action,))
    ret = rule.get("errnoRet")
    if ret is not None and (isinstance(ret, bool) or not isinstance(ret, int) or not 0 <= ret < 4096):
        raise _field(path + ".errnoRet", "must be an errno number, got %r" % (ret,))


def _check_filter(f, path: str) -> None:
    if f is None:
        return
    if not isinstance(f, dict):
        raise _field(path, "must be an object")
    for key in ("caps", "arches"):
        v = f.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise _field("%s.%s" % (path, key), "must be a list of strings")
    mk = f.get("minKernel")
    if mk not in (None, "") and not (isinstance(mk, str) and re.match(r"^\d+\.\d+(\.\d+)?$", mk)):
        raise _field(path + ".minKernel", "invalid kernel version %r" % (mk,))


def parse(profile, machine: str | None = None) -> dict:
    """Read and check a profile: JSON text (what ``--security-opt seccomp=FILE`` sends) or a dict.

    Returns:
        The profile as a dict.
    Raises:
        InvalidParameter: malformed JSON, an unknown action, operator or syscall name, or a
            profile whose architectures leave out this machine's; the message names the field.
    """
    if isinstance(profile, (str, bytes)):
        try:
            profile = json.loads(profile)
        except ValueError as e:
            raise InvalidParameter("seccomp profile: decoding failed: %s" % e)
    if not isinstance(profile, dict):
        raise InvalidParameter("seccomp profile: decoding failed: the profile must be a JSON object")
    _check_action({"action": profile.get("defaultAction"), "errnoRet": profile.get("defaultErrnoRet")},
                  "defaultAction")
    native = native_arch(machine)
    arches, listed = _arches(profile, native)
    if listed and native not in arches:
        field = "archMap" if profile.get("archMap") else "architectures"
        raise _field(field, "lists no %s, this engine's architecture" % native)
    rules = profile.get("syscalls")
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        raise _field("syscalls", "must be a list")
    for i, rule in enumerate(rules):
        path = "syscalls[%d]" % i
        if not isinstance(rule, dict):
            raise _field(path, "must be an object")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names or not isinstance(names, list):
            raise _field(path + ".names", "must be a non-empty list of syscall names")
        for name in names:
            if name not in _known_names():
                raise _field(path + ".names", "unknown syscall %r" % (name,))
        _check_action(rule, path)
        for key in ("includes", "excludes"):
            _check_filter(rule.get(key), "%s.%s" % (path, key))
        for j, arg in enumerate(rule.get("args") or []):
            apath = "%s.args[%d]" % (path, j)
            if not isinstance(arg, dict):
                raise _field(apath, "must be an object")
            if arg.get("op") not in _OPS:
                raise _field(apath + ".op", "unknown operator %r" % (arg.get("op"),))
            idx = arg.get("index")
            if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx <= 5:
                raise _field(apath + ".index", "must be 0 to 5, got %r" % (idx,))
            for key in ("value", "valueTwo"):
                v = arg.get(key, 0)
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
                    raise _field("%s.%s" % (apath, key), "must be an unsigned 64-bit number")
    return profile


def _arches(profile: dict, native: str) -> tuple:
    """``(the SCMP_ARCH names the profile covers on ``native``, whether it lists any at all)``.

    ``architectures`` (the old form) lists them flat; an ``archMap`` entry counts only when its
    ``architecture`` is ``native``, and brings its ``subArchitectures`` along (docker's rule).
    """
    covered, listed = [], False
    for a in profile.get("architectures") or []:
        if a not in _ARCHES:
            raise _field("architectures", "unknown architecture %r" % (a,))
        covered.append(a)
        listed = True
    for i, entry in enumerate(profile.get("archMap") or []):
        main = (entry or {}).get("architecture")
        subs = (entry or {}).get("subArchitectures") or []
        for a in [main] + list(subs):
            if a not in _ARCHES:
                raise _field("archMap[%d]" % i, "unknown architecture %r" % (a,))
        listed = True
        if main == native:
            covered += [main] + list(subs)
    return covered, listed


def _kernel_at_least(version: str) -> bool:
    want = [int(x) for x in version.split(".")]
    have = [int(x) for x in re.findall(r"\d+", os.uname().release)[:len(want)]]
    return have >= want


def _applies(rule: dict, go_arch: str, caps: set) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and go_arch not in inc["arches"]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"]):
        return False
    if exc.get("arches") and go_arch in exc["arches"]:
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    if exc.get("minKernel") and _kernel_at_least(exc["minKernel"]):
        return False
    return True


def _ret(action: str, errno_ret, default_errno: int = _EPERM) -> int:
    base = _ACTIONS[action]
    if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        return base | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    return base


class _Asm:
    """A tiny classic-BPF assembler: jumps name labels, resolved once the code is laid out."""

    def __init__(self):
        self.code, self.labels, self._n = [], {}, 0

    def label(self, name=None) -> str:
        if name is None:
            self._n += 1
            name = "L%d" % self._n
        return name

    def here(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def op(self, code: int, k: int = 0, jt=0, jf=0) -> None:
        self.code.append((code, jt, jf, k if isinstance(k, str) else k & 0xFFFFFFFF))

    def assemble(self) -> bytes:
        out = []
        for pos, (code, jt, jf, k) in enumerate(self.code):
            def rel(t):
                if isinstance(t, int):
                    return t
                off = self.labels[t] - pos - 1
                if not 0 <= off <= 255:
                    raise ValueError("seccomp: jump too far (%d)" % off)
                return off
            if code == _JA and isinstance(k, str):
                k = self.labels[k] - pos - 1
            out.append(struct.pack("<HBBI", code, rel(jt), rel(jf), k))
        return b"".join(out)


def _arg_check(asm: _Asm, arg: dict, wide: bool, fail: str) -> None:
    """Code that falls through when the argument matches and jumps to ``fail`` otherwise."""
    lo_off = 16 + 8 * arg["index"]
    hi_off = lo_off + 4  # little-endian: x86 and arm64 alike
    op, v, v2 = arg["op"], arg.get("value", 0), arg.get("valueTwo", 0)
    vh, vl = v >> 32, v & 0xFFFFFFFF
    ok = asm.label()
    if op == "SCMP_CMP_MASKED_EQ":
        if wide:
            asm.op(_LD_W_ABS, hi_off)
            asm.op(_AND, vh)
            asm.op(_JEQ, v2 >> 32, 0, fail)
        asm.op(_LD_W_ABS, lo_off)
        asm.op(_AND, vl)
        asm.op(_JEQ, v2 & 0xFFFFFFFF, 0, fail)
    elif op == "SCMP_CMP_EQ":
        if wide:
            asm.op(_LD_W_ABS, hi_off)
            asm.op(_JEQ, vh, 0, fail)
        asm.op(_LD_W_ABS, lo_off)
        asm.op(_JEQ, vl, 0, fail)
    elif op == "SCMP_CMP_NE":
        if wide:
            asm.op(_LD_W_ABS, hi_off)
            asm.op(_JEQ, vh, 0, ok)
        asm.op(_LD_W_ABS, lo_off)
        asm.op(_JEQ, vl, fail, 0)
    else:
        # GT/GE: the high word decides unless equal; then the low word. LT/LE: the converse.
        greater = op in ("SCMP_CMP_GT", "SCMP_CMP_GE")
        if wide:
            asm.op(_LD_W_ABS, hi_off)
            if greater:
                asm.op(_JGT, vh, ok, 0)
                asm.op(_JEQ, vh, 0, fail)
            else:
                asm.op(_JGE, vh, 0, ok)
                asm.op(_JEQ, vh, 0, fail)
        asm.op(_LD_W_ABS, lo_off)
        if op == "SCMP_CMP_GT":
            asm.op(_JGT, vl, 0, fail)
        elif op == "SCMP_CMP_GE":
            asm.op(_JGE, vl, 0, fail)
        elif op == "SCMP_CMP_LT":
            asm.op(_JGE, vl, fail, 0)
        else:
            asm.op(_JGT, vl, fail, 0)
    asm.here(ok)


def _resolve(profile: dict, go_arch: str, table: dict, caps: set) -> dict:
    """``{nr: (conditional [(args, ret)], unconditional ret or None)}`` for one architecture."""
    out = {}
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, go_arch, caps):
            continue
        ret = _ret(rule["action"], rule.get("errnoRet"), _EPERM)
        args = rule.get("args") or []
        for name in rule.get("names") or [rule.get("name")]:
            nr = table.get(name)
            if nr is None:
                continue  # a syscall of another architecture
            conds, uncond = out.get(nr, ([], None))
            if args:
                conds.append((args, ret))
            elif uncond is None:
                uncond = ret
            out[nr] = (conds, uncond)
    return out


_LEAF = 8  # syscall blocks tested one after another at the bottom of the search tree


def _block(asm: _Asm, nr: int, conds: list, uncond, default: int, wide: bool) -> None:
    """``if nr == NR``: the conditional rules in order, then its own action or the default."""
    skip = asm.label()
    asm.op(_JEQ, nr, 0, skip)
    for args, ret in conds:
        nxt = asm.label()
        for arg in args:
            _arg_check(asm, arg, wide, nxt)
        asm.op(_RET, ret)
        asm.here(nxt)
    asm.op(_RET, default if uncond is None else uncond)
    asm.here(skip)


def _section(asm: _Asm, rules: dict, default: int, wide: bool) -> None:
    """The per-syscall blocks of one architecture as a binary search on the syscall number
    (A holds it on entry; a block that tests arguments always returns, so A survives a miss).
    About 10 comparisons a call instead of up to ~400 in a flat list."""
    nrs = sorted(rules)

    def tree(lo: int, hi: int) -> None:
        if hi - lo <= _LEAF:
            for nr in nrs[lo:hi]:
                _block(asm, nr, *rules[nr], default, wide)
            asm.op(_RET, default)
            return
        mid = (lo + hi) // 2
        right = asm.label()
        asm.op(_JGE, nrs[mid], 0, 1)
        asm.op(_JA, right)
        tree(lo, mid)
        asm.here(right)
        tree(mid, hi)

    tree(0, len(nrs))


def compile_filter(profile: dict, cap_names, machine: str | None = None) -> bytes:
    """The BPF program (``struct sock_filter`` array) for ``profile`` and a capability set.

    Args:
        profile: from ``parse``.
        cap_names: the process's capabilities, ``"CHOWN"`` or ``"CAP_CHOWN"``.
        machine: ``os.uname().machine`` (default: this one).
    Raises:
        InvalidParameter: as ``parse``; ValueError if the program cannot be laid out.
    """
    machine = machine or os.uname().machine
    native = native_arch(machine)
    caps = {c if c.startswith("CAP_") else "CAP_" + c for c in cap_names}
    arches = _arches(profile, native)[0] or [native]
    default = _ret(profile.get("defaultAction") or "SCMP_ACT_ERRNO", profile.get("defaultErrnoRet"))
    asm = _Asm()
    sections = []  # (label, audit arch, table name, go name, wide)
    if native == "SCMP_ARCH_X86_64":
        sections.append(("x86_64", _AUDIT_ARCH_X86_64, "x86_64", "amd64", True))
        if "SCMP_ARCH_X86" in arches:
            sections.append(("i386", _AUDIT_ARCH_I386, "i386", "x86", False))
    else:
        sections.append(("aarch64", _AUDIT_ARCH_AARCH64, "aarch64", "arm64", True))
    asm.op(_LD_W_ABS, 4)  # seccomp_data.arch
    for label, audit, *_ in sections:
        asm.op(_JEQ, audit, 0, 1)
        asm.op(_JA, label)
    asm.op(_RET, _RET_KILL_PROCESS)  # an architecture the profile does not cover
    for label, _audit, table, go_arch, wide in sections:
        asm.here(label)
        asm.op(_LD_W_ABS, 0)  # seccomp_data.nr
        if table == "x86_64":
            if "SCMP_ARCH_X32" in arches:
                asm.op(_JSET, _X32_BIT, 0, 1)
                asm.op(_JA, "x32")
            else:
                asm.op(_JSET, _X32_BIT, 0, 1)
                asm.op(_RET, _RET_KILL_PROCESS)
        _section(asm, _resolve(profile, go_arch, syscalls.table(table), caps), default, wide)
    if native == "SCMP_ARCH_X86_64" and "SCMP_ARCH_X32" in arches:
        asm.here("x32")
        asm.op(_AND, ~_X32_BIT)
        _section(asm, _resolve(profile, "x32", syscalls.table("x32"), caps), default, True)
    return asm.assemble()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2


def install(program: bytes) -> None:
    """Load ``program`` as this thread's seccomp filter (needs no_new_privs or CAP_SYS_ADMIN).

    Raises:
        OSError: the kernel refused it (EINVAL: a bad program; EACCES: neither of the above).
    """
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    ns.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog))


_BUILTIN_CACHE: dict = {}


def program_for(spec, cap_names) -> bytes | None:
    """The filter for a process spec's ``"seccomp"`` and its capabilities, None for unconfined.

    Args:
        spec: ``"builtin"`` (docker's default profile), None (unconfined), or a profile (a dict
            or docker's JSON text).
        cap_names: the process's capability names.
    Raises:
        InvalidParameter: a profile ``parse`` refuses.
    """
    if spec is None:
        return None
    if spec == "builtin":
        key = tuple(sorted(cap_names))
        if key not in _BUILTIN_CACHE:  # the zygote warms it; its forks inherit the result
            _BUILTIN_CACHE[key] = compile_filter(seccomp_profile.default(), key)
        return _BUILTIN_CACHE[key]
    return compile_filter(parse(spec), cap_names)


def warm(cap_names) -> None:
    """Compile the builtin filter for ``cap_names`` now (a few ms), so forks find it ready."""
    program_for("builtin", cap_names)
