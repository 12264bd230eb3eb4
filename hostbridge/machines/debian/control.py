"""Debian control data: deb822 paragraphs, version comparison (dpkg's algorithm), relations.

Pure functions, no I/O: what ``Release`` and ``Packages`` files and a package's ``Depends``
field say, and how two versions order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# --- deb822 ----------------------------------------------------------------------------------


def paragraphs(text, fields=None):
    """Parse deb822 text into one dict per paragraph.

    Continuation lines (starting with a space or tab) are joined to their field with a newline,
    as Release's checksum lists need. Field names keep their case.

    Args:
        text: the whole file (str).
        fields: if given, only these field names are kept (a large ``Packages`` file parses
            faster when Description and the like are skipped).
    Returns:
        A list of dicts.
    """
    out = []
    for block in re.split(r"\n[ \t]*\n", text):
        para, key = {}, None
        for line in block.split("\n"):
            if not line or line.startswith("#"):
                continue
            if line[0] in " \t":
                if key is not None:
                    para[key] += "\n" + line.strip()
                continue
            name, sep, value = line.partition(":")
            if not sep:
                key = None
                continue
            if fields is not None and name not in fields:
                key = None
                continue
            key = name
            para[key] = value.strip()
        if para:
            out.append(para)
    return out


# --- versions ----------------------------------------------------------------------------------

def _order(c):
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _verrevcmp(a, b):
    """dpkg's verrevcmp: compare an upstream version or a revision."""
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        first_diff = 0
        while (i < la and not a[i].isdigit()) or (j < lb and not b[j].isdigit()):
            ac = _order(a[i]) if i < la else 0
            bc = _order(b[j]) if j < lb else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        while i < la and a[i].isdigit() and j < lb and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < la and a[i].isdigit():
            return 1
        if j < lb and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


_VERSION_CHARS = re.compile(r"^[A-Za-z0-9.+~:-]+$")


def parse_version(version):
    """Split ``[epoch:]upstream[-revision]`` into ``(epoch, upstream, revision)``.

    Raises:
        ValueError: an empty version, a non-numeric epoch or a character dpkg does not allow.
    """
    version = version.strip()
    if not _VERSION_CHARS.match(version):
        raise ValueError("invalid version %r" % version)
    epoch, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = "0", version
    if not epoch.isdigit():
        raise ValueError("invalid epoch in version %r" % version)
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    if not upstream:
        raise ValueError("empty upstream version in %r" % version)
    return int(epoch), upstream, revision


def compare_versions(a, b):
    """Order two Debian versions as ``dpkg --compare-versions`` does.

    Args:
        a, b: version strings.
    Returns:
        A negative number, 0 or a positive number (a < b, a == b, a > b).
    Raises:
        ValueError: a version is malformed.
    """
    ea, ua, ra = parse_version(a)
    eb, ub, rb = parse_version(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


# --- relations -------------------------------------------------------------------------------

# "<" and ">" are dpkg's obsolete spellings of "<=" and ">=".
_OPS = {"<<": "<<", "<=": "<=", "=": "=", ">=": ">=", ">>": ">>", "<": "<=", ">": ">="}
_REL = re.compile(r"^([a-z0-9][a-z0-9+.\-]*)(?::([a-z0-9\-]+))?\s*(?:\(\s*(<<|<=|>=|>>|<|>|=)\s*([^)\s]+)\s*\))?$")


@dataclass(frozen=True)
class Relation:
    """One alternative of a dependency: a package name, an optional version constraint."""

    name: str
    op: str = ""  # "", "<<", "<=", "=", ">=", ">>"
    version: str = ""
    arch: str = ""  # the ":any" / ":native" qualifier, if any

    def satisfied_by(self, version):
        """Whether ``version`` (of a package or a versioned Provides) meets the constraint.

        Args:
            version: a version, or None for an unversioned Provides (meets only an unversioned
                relation, as in dpkg).
        """
        if not self.op:
            return True
        if version is None:
            return False
        c = compare_versions(version, self.version)
        return {"<<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">>": c > 0}[self.op]

    def __str__(self):
        name = self.name + (":" + self.arch if self.arch else "")
        return "%s (%s %s)" % (name, self.op, self.version) if self.op else name


def parse_relations(text):
    """Parse a relation field (``Depends``, ``Pre-Depends``, ``Provides``).

    Architecture restrictions (``[amd64]``) and build profiles (``<!nocheck>``) are dropped: a
    binary package's fields carry none.

    Args:
        text: the field's value.
    Returns:
        A tuple of groups, each a tuple of alternative Relations (``a | b`` is one group of two).
    Raises:
        ValueError: a relation is malformed.
    """
    groups = []
    text = re.sub(r"\[[^\]]*\]|<[^<>=()]*>", "", text or "")
    for group in text.split(","):
        group = group.strip()
        if not group:
            continue
        groups.append(_parse_group(group))
    return tuple(groups)


@lru_cache(maxsize=65536)
def _parse_group(group):
    # Cached: an index repeats the same groups ("libc6 (>= 2.34)") tens of thousands of times.
    alts = []
    for alt in group.split("|"):
        m = _REL.match(" ".join(alt.split()))
        if not m:
            raise ValueError("invalid relation %r" % alt.strip())
        name, arch, op, version = m.groups()
        if op:
            parse_version(version)
        alts.append(Relation(name, _OPS[op] if op else "", version or "", arch or ""))
    return tuple(alts)
