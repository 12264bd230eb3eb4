"""Just enough ELF to take only what a file needs: its interpreter and DT_NEEDED libraries,
and a kernel module's ``.modinfo`` (``depends=``, ``alias=``, ``name=``).

64- and 32-bit, either byte order; only the standard library (struct).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional

ELF_MAGIC = b"\x7fELF"
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5


class ELFError(ValueError):
    """Not an ELF file, or a malformed one."""


@dataclass
class DynamicInfo:
    """What the dynamic loader needs to run an executable or load a library."""

    interpreter: Optional[str] = None
    needed: List[str] = field(default_factory=list)


def is_elf(data: bytes) -> bool:
    """True when ``data`` starts with the ELF magic."""
    return data[:4] == ELF_MAGIC


class _Elf:
    def __init__(self, data: bytes):
        if not is_elf(data) or len(data) < 52:
            raise ELFError("not an ELF file")
        self.data = data
        cls, enc = data[4], data[5]
        if cls not in (1, 2) or enc not in (1, 2):
            raise ELFError("unknown ELF class or byte order")
        self.is64 = cls == 2
        self.end = "<" if enc == 1 else ">"
        if self.is64:
            (self.type, _, _, _, self.phoff, self.shoff, _, _, self.phentsize, self.phnum, self.shentsize,
             self.shnum, self.shstrndx) = struct.unpack_from(self.end + "HHIQQQIHHHHHH", data, 16)
        else:
            (self.type, _, _, _, self.phoff, self.shoff, _, _, self.phentsize, self.phnum, self.shentsize,
             self.shnum, self.shstrndx) = struct.unpack_from(self.end + "HHIIIIIHHHHHH", data, 16)

    def _unpack(self, fmt, off):
        try:
            return struct.unpack_from(self.end + fmt, self.data, off)
        except struct.error as e:
            raise ELFError("truncated ELF file") from e

    def segments(self):
        """(type, offset, vaddr, filesz) of each program header."""
        out = []
        for i in range(self.phnum):
            off = self.phoff + i * self.phentsize
            if self.is64:
                p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = self._unpack("IIQQQQQQ", off)
            else:
                p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = self._unpack("IIIIIIII", off)
            out.append((p_type, p_offset, p_vaddr, p_filesz))
        return out

    def sections(self) -> Dict[str, bytes]:
        """Section name -> its bytes (SHT_NOBITS sections are empty)."""
        heads = []
        for i in range(self.shnum):
            off = self.shoff + i * self.shentsize
            if self.is64:
                name, sh_type, _, _, offset, size = self._unpack("IIQQQQ", off)
            else:
                name, sh_type, _, _, offset, size = self._unpack("IIIIII", off)
            heads.append((name, sh_type, offset, size))
        if not heads or self.shstrndx >= len(heads):
            return {}
        _, _, stroff, strsize = heads[self.shstrndx]
        strtab = self.data[stroff:stroff + strsize]
        out = {}
        for name, sh_type, offset, size in heads:
            end = strtab.find(b"\0", name)
            label = strtab[name:end if end >= 0 else None].decode("ascii", "replace")
            out[label] = b"" if sh_type == 8 else self.data[offset:offset + size]
        return out

    def vaddr_to_offset(self, addr, loads):
        for _, offset, vaddr, filesz in loads:
            if vaddr <= addr < vaddr + filesz:
                return addr - vaddr + offset
        raise ELFError("address 0x%x is in no loaded segment" % addr)


def dynamic_info(data: bytes) -> DynamicInfo:
    """The interpreter (PT_INTERP) and DT_NEEDED names of an executable or shared library.

    Args:
        data: the whole file.
    Returns:
        DynamicInfo; empty for a static executable or an object without a dynamic section.
    Raises:
        ELFError: not ELF or malformed.
    """
    elf = _Elf(data)
    info = DynamicInfo()
    segs = elf.segments()
    loads = [s for s in segs if s[0] == PT_LOAD]
    dyn = None
    for p_type, offset, _, filesz in segs:
        if p_type == PT_INTERP:
            info.interpreter = data[offset:offset + filesz].rstrip(b"\0").decode("utf-8", "replace")
        elif p_type == PT_DYNAMIC:
            dyn = (offset, filesz)
    if dyn is None:
        return info
    entsize = 16 if elf.is64 else 8
    fmt = "qQ" if elf.is64 else "iI"
    needed, strtab = [], None
    for off in range(dyn[0], dyn[0] + dyn[1] - entsize + 1, entsize):
        tag, val = elf._unpack(fmt, off)
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            needed.append(val)
        elif tag == DT_STRTAB:
            strtab = elf.vaddr_to_offset(val, loads)
    if needed and strtab is None:
        raise ELFError("DT_NEEDED without DT_STRTAB")
    for idx in needed:
        start = strtab + idx
        info.needed.append(data[start:data.index(b"\0", start)].decode("utf-8", "replace"))
    return info


def modinfo(data: bytes) -> Dict[str, List[str]]:
    """A kernel module's ``.modinfo`` as key -> values (``alias`` repeats; ``depends`` is one
    comma-separated value, split here).

    Args:
        data: the whole (uncompressed) .ko file.
    Raises:
        ELFError: not ELF, or no .modinfo section.
    """
    sections = _Elf(data).sections()
    raw = sections.get(".modinfo")
    if raw is None:
        raise ELFError("no .modinfo section (not a kernel module)")
    out: Dict[str, List[str]] = {}
    for item in raw.split(b"\0"):
        if b"=" not in item:
            continue
        key, value = item.decode("utf-8", "replace").split("=", 1)
        if key == "depends":
            out[key] = [d for d in value.split(",") if d]
        else:
            out.setdefault(key, []).append(value)
    return out


def _zero_runs(body: bytes, align: int, min_gap: int):
    """[(start, end)] of the ``align``-aligned all-zero runs of at least ``min_gap`` bytes in ``body``."""
    runs, start, zero = [], None, b"\0" * align
    for pos in range(0, len(body) - len(body) % align, align):
        if body[pos:pos + align] == zero:
            start = pos if start is None else start
            continue
        if start is not None and pos - start >= min_gap:
            runs.append((start, pos))
        start = None
    return runs


def loadable_only(data: bytes, align: int = 4096, min_gap: int = 64 << 10) -> bytes:
    """A copy of an ELF executable with only what a loader reads: the header, the program
    headers and each segment's bytes, no section headers. Zeros are left to the loader, which
    zero-fills a PT_LOAD from FileSiz to MemSiz: a segment's trailing zeros (a kernel's .bss),
    and each run of at least ``min_gap`` zero bytes inside it, where the segment is split in two
    (a kernel's padding between its text and its read-only data: megabytes).

    An x86 vmlinux shrinks from ~66 MB to what QEMU's PVH loader copies into guest memory.

    Raises:
        ELFError: not a 64-bit little-endian executable, or a PT_NOTE outside every PT_LOAD's
            bytes kept.
    """
    e = _Elf(data)
    if not e.is64 or e.end != "<":
        raise ELFError("only 64-bit little-endian ELF executables are compacted")
    segs = []
    for i in range(e.phnum):
        off = e.phoff + i * e.phentsize
        segs.append(list(e._unpack("IIQQQQQQ", off)))  # type flags offset vaddr paddr filesz memsz align
    pieces = []  # (segment, start in it, end of its bytes, end of its memory)
    for seg in segs:
        if seg[0] != PT_LOAD:
            continue
        body = data[seg[2]:seg[2] + seg[5]].rstrip(b"\0")
        cuts = [0] + [x for run in _zero_runs(body, align, min_gap) for x in run] + [len(body)]
        for k in range(0, len(cuts), 2):
            mem_end = cuts[k + 2] if k + 2 < len(cuts) else seg[6]
            pieces.append((seg, cuts[k], cuts[k + 1], mem_end))
    others = [seg for seg in segs if seg[0] != PT_LOAD]
    phnum = len(pieces) + len(others)
    pos = e.phoff + phnum * e.phentsize
    out = bytearray(data[:e.phoff]) + bytearray(pos - e.phoff)
    headers, moved = [], []  # moved: (old offset, new offset, size) of the bytes kept
    for seg, start, end, mem_end in pieces:
        pos = -(-pos // align) * align
        out.extend(b"\0" * (pos - len(out)))
        moved.append((seg[2] + start, pos, end - start))
        headers.append([seg[0], seg[1], pos, seg[3] + start, seg[4] + start, end - start, mem_end - start, seg[7]])
        out.extend(data[seg[2] + start:seg[2] + end])
        pos = len(out)
    for seg in others:
        for old, new, size in moved:
            if old <= seg[2] and seg[2] + seg[5] <= old + size:
                headers.append(seg[:2] + [new + seg[2] - old] + seg[3:])
                break
        else:
            raise ELFError("a program header's bytes lie outside every PT_LOAD's bytes kept")
    for i, seg in enumerate(headers):
        struct.pack_into("<IIQQQQQQ", out, e.phoff + i * e.phentsize, *seg)
    struct.pack_into("<H", out, 56, phnum)
    # No section headers: e_shoff, e_shnum, e_shstrndx = 0.
    struct.pack_into("<Q", out, 40, 0)
    struct.pack_into("<HHH", out, 58, e.shentsize, 0, 0)
    return bytes(out)
