"""modules.dep and modules.alias for a chosen set of kernel modules, as depmod writes them,
from each module's own ``.modinfo`` (no depmod, no kmod on the host).

busybox's modprobe reads these text files in the guest.
"""

from __future__ import annotations

import posixpath
import struct
from typing import Dict, List, Tuple

from . import elf


def module_name(path: str) -> str:
    """The kernel's name of a module file: ``kernel/net/802/stp.ko`` -> ``stp`` (``-`` -> ``_``)."""
    base = posixpath.basename(path)
    for ext in (".ko.xz", ".ko.gz", ".ko.zst", ".ko"):
        if base.endswith(ext):
            base = base[:-len(ext)]
            break
    return base.replace("-", "_")


# A signed module ends with its PKCS#7 signature, then struct module_signature (12 bytes, the
# signature's length big-endian in the last 4), then this marker (scripts/sign-file).
SIGNATURE_MARK = b"~Module signature appended~\n"
SIGNATURE_INFO = struct.Struct(">BBBBB3xI")


def strip_signature(data: bytes) -> bytes:
    """The module without its appended signature (unchanged when it has none, or the trailer is
    not one). The guest's kernel does not enforce signatures (no lockdown: no Secure Boot under
    QEMU's -kernel), but it checks each one, hashing the whole module: ~55 ms per MiB under TCG,
    on the boot's path for ext4's 2 MiB. It then notes once that it is tainted (E: unsigned)."""
    if not data.endswith(SIGNATURE_MARK):
        return data
    end = len(data) - len(SIGNATURE_MARK) - SIGNATURE_INFO.size
    if end < 0:
        return data
    sig_len = SIGNATURE_INFO.unpack_from(data, end)[-1]
    if sig_len > end:
        return data
    return data[:end - sig_len]


def read_infos(modules: Dict[str, bytes]) -> Dict[str, dict]:
    """path -> modinfo dict for each module (paths relative to /lib/modules/VERSION)."""
    return {path: elf.modinfo(data) for path, data in modules.items()}


def closure(wanted: List[str], infos: Dict[str, dict], aliases=None) -> List[str]:
    """The module paths needed to load every name in ``wanted`` (names or aliases), with their
    ``depends=`` closure; names that match nothing are skipped (they may be built in).

    Args:
        wanted: module names (``overlay``) or patterns' values (``fs-overlay``).
        infos: ``read_infos()`` of every available module.
    Returns:
        Sorted module paths.
    """
    by_name = {module_name(p): p for p in infos}
    todo = [by_name[w.replace("-", "_")] for w in wanted if w.replace("-", "_") in by_name]
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for dep in infos[path].get("depends", []):
            if dep in by_name:
                todo.append(by_name[dep])
    return sorted(seen)


def dependency_lists(infos: Dict[str, dict]) -> Dict[str, List[str]]:
    """path -> every module it needs, in depmod's order: direct dependencies first, the
    deepest last (modprobe loads the list from its end).

    Args:
        infos: path -> modinfo of the modules in the tree.
    """
    by_name = {module_name(p): p for p in infos}
    out = {}
    for path in infos:
        order: List[str] = []  # load order (post-order DFS): a module after what it needs
        seen = set()

        def visit(p, depth=0):
            if p in seen or depth > 64:
                return
            seen.add(p)
            for dep in infos[p].get("depends", []):
                if dep in by_name:
                    visit(by_name[dep], depth + 1)
            order.append(p)

        visit(path)
        out[path] = list(reversed(order[:-1]))
    return out


def modules_dep(infos: Dict[str, dict], order: List[str] = ()) -> str:
    """The text of ``modules.dep``: ``path: dep dep…`` per module, in ``order`` (modules.order)
    then sorted."""
    deps = dependency_lists(infos)
    ranked = [p for p in order if p in infos] + sorted(p for p in infos if p not in set(order))
    return "".join("%s:%s\n" % (p, "".join(" " + d for d in deps[p])) for p in ranked)


def modules_alias(infos: Dict[str, dict]) -> str:
    """The text of ``modules.alias``: ``alias PATTERN NAME`` per alias of each module."""
    lines = ["# Aliases extracted from modules themselves.\n"]
    pairs: List[Tuple[str, str]] = []
    for path in sorted(infos):
        name = module_name(path)
        for alias in infos[path].get("alias", []):
            pairs.append((alias, name))
    lines += ["alias %s %s\n" % pair for pair in pairs]
    return "".join(lines)
