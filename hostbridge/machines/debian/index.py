"""A package index: ``Packages`` files parsed into Package records, merged, and resolved.

Pure functions over an index (a dict name → Package); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from hostbridge.errors import ArchiveError
from hostbridge.machines.debian.control import Relation, compare_versions, paragraphs, parse_relations

_FIELDS = {"Package", "Version", "Architecture", "Filename", "SHA256", "Size", "Depends", "Pre-Depends",
           "Provides"}


@dataclass(frozen=True)
class Package:
    """One binary package of an index.

    ``depends`` holds Pre-Depends then Depends, as groups of alternative Relations; ``provides``
    holds Relations whose ``version`` is set for a versioned Provides (op ``=``). Both are parsed
    from the raw fields on first use (a whole index parses 4x faster). ``mirror`` is the base URL
    ``filename`` is relative to.
    """

    name: str
    version: str
    arch: str
    filename: str
    sha256: str
    size: int
    depends_field: str = field(default="", repr=False)
    provides_field: str = field(default="", repr=False)
    mirror: str = ""

    @cached_property
    def depends(self):
        return self._relations("Depends", self.depends_field)

    @cached_property
    def provides(self):
        return tuple(g[0] for g in self._relations("Provides", self.provides_field))

    def _relations(self, what, text):
        try:
            return parse_relations(text)
        except ValueError as e:
            raise ArchiveError("malformed %s of %s %s: %s" % (what, self.name, self.version, e),
                               url=self.mirror) from e

    @property
    def url(self):
        return "%s/%s" % (self.mirror.rstrip("/"), self.filename)


def parse_packages(text, mirror=""):
    """Parse a ``Packages`` file.

    Args:
        text: its contents (str).
        mirror: the base URL its ``Filename`` fields are relative to.
    Returns:
        dict name → Package (the highest version when a name appears twice).
    Raises:
        ArchiveError: a paragraph lacks a field, or its size is not a number (relations are
            checked when first used).
    """
    index = {}
    for para in paragraphs(text, _FIELDS):
        try:
            name = para["Package"]
            deps = ", ".join(v for v in (para.get("Pre-Depends"), para.get("Depends")) if v)
            pkg = Package(name, para["Version"], para["Architecture"], para["Filename"], para["SHA256"].lower(),
                          int(para["Size"]), deps, para.get("Provides", ""), mirror)
        except (KeyError, ValueError) as e:
            raise ArchiveError("malformed Packages entry %s: %s" % (para.get("Package", "?"), e),
                               url=mirror) from e
        old = index.get(name)
        if old is None or compare_versions(pkg.version, old.version) > 0:
            index[name] = pkg
    return index


def merge(*indexes):
    """Merge indexes, keeping the highest version of each name (security updates win).

    Returns:
        A new dict name → Package.
    """
    out = {}
    for index in indexes:
        for name, pkg in index.items():
            old = out.get(name)
            if old is None or compare_versions(pkg.version, old.version) > 0:
                out[name] = pkg
    return out


def providers(index):
    """Map each virtual package name to ``(package, provided version or None)`` pairs, sorted by
    package name.

    Only the few packages whose Provides name a virtual package asked about are fully parsed,
    on demand: a first pass reads just the names (parsing every Provides of an index takes seconds).
    """
    names = {}
    for pkg in index.values():
        if pkg.provides_field:
            for item in pkg.provides_field.split(","):
                name = item.split("(", 1)[0].split(":", 1)[0].strip()
                if name:
                    names.setdefault(name, []).append(pkg)
    return _Providers(names)


class _Providers:
    def __init__(self, names):
        self.names = names
        self.cache = {}

    def get(self, name, default=()):
        if name not in self.names:
            return default
        if name not in self.cache:
            pairs = [(pkg, rel.version or None) for pkg in self.names[name] for rel in pkg.provides if rel.name == name]
            self.cache[name] = sorted(pairs, key=lambda pv: pv[0].name)
        return self.cache[name]


def candidates(rel, index, provided):
    """The packages that satisfy one Relation: the real package first, then providers.

    Args:
        rel: a Relation.
        index: dict name → Package.
        provided: ``providers(index)``.
    Returns:
        A list of Package.
    """
    out = []
    real = index.get(rel.name)
    if real is not None and rel.satisfied_by(real.version):
        out.append(real)
    for pkg, version in provided.get(rel.name, ()):
        if rel.satisfied_by(version) and pkg not in out:
            out.append(pkg)
    return out


def closure(index, names, exclude=(), provided=None):
    """The packages ``names`` need: the Pre-Depends + Depends closure.

    For each dependency group the first alternative already chosen wins, else the first one that
    is excluded (the group is then skipped: the caller takes care of it) or satisfiable; a virtual
    package resolves to its real namesake, else its first provider by name.

    Args:
        index: dict name → Package.
        names: the packages wanted (real or virtual names).
        exclude: names not wanted; they and what only they need are left out.
        provided: ``providers(index)``, when the caller keeps it across calls.
    Returns:
        A list of Package, in the order they were reached (the requested ones first).
    Raises:
        ArchiveError: a requested package does not exist, or a dependency cannot be satisfied.
    """
    exclude = set(exclude)
    provided = provided if provided is not None else providers(index)
    chosen, order = {}, []

    def add(pkg):
        if pkg.name not in chosen:
            chosen[pkg.name] = pkg
            order.append(pkg)

    for name in names:
        if name in exclude:
            continue
        found = candidates(Relation(name), index, provided)
        if not found:
            raise ArchiveError("no such package: %s" % name, hint="check the name and the suite")
        add(found[0])
    i = 0
    while i < len(order):
        pkg = order[i]
        i += 1
        for group in pkg.depends:
            if _satisfied(group, chosen, provided):
                continue
            pick = None
            for rel in group:
                if rel.name in exclude:
                    break
                found = [p for p in candidates(rel, index, provided) if p.name not in exclude]
                if found:
                    pick = found[0]
                    break
            else:
                raise ArchiveError("%s %s depends on %s, which no package satisfies"
                                   % (pkg.name, pkg.version, " | ".join(str(r) for r in group)))
            if pick is not None:
                add(pick)
    return order


def _satisfied(group, chosen, provided):
    for rel in group:
        pkg = chosen.get(rel.name)
        if pkg is not None and rel.satisfied_by(pkg.version):
            return True
        for prov, version in provided.get(rel.name, ()):
            if prov.name in chosen and chosen[prov.name] is prov and rel.satisfied_by(version):
                return True
    return False
