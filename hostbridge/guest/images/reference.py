"""Image references, parsed and normalised exactly as docker does.

``redis`` → domain ``docker.io``, path ``library/redis``, tag ``latest``;
``localhost:5000/team/app:1.0``; ``busybox@sha256:…``. Names shown to users are docker's
"familiar" form: ``redis:latest``, ``team/app:1.0`` (``docker.io/`` and ``library/`` stripped).
"""

from __future__ import annotations

import re

from ..errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(r"^%s(?:/%s)*$" % (_COMPONENT, _COMPONENT))
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


class Reference:
    """A parsed, normalised image reference. ``tag`` and ``digest`` may each be None."""

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain, path, tag=None, digest=None):
        self.domain, self.path, self.tag, self.digest = domain, path, tag, digest

    @property
    def name(self) -> str:
        """The full repository name: ``docker.io/library/redis``."""
        return "%s/%s" % (self.domain, self.path)

    @property
    def familiar_name(self) -> str:
        """The repository as docker shows it: ``redis``, ``team/app``, ``localhost:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            p = self.path
            return p[len(OFFICIAL_PREFIX):] if p.startswith(OFFICIAL_PREFIX) and p.count("/") == 1 else p
        return self.name

    def with_default_tag(self) -> "Reference":
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def familiar(self) -> str:
        """``redis:7``, ``redis@sha256:…`` or plain ``redis`` when neither tag nor digest."""
        s = self.familiar_name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def __str__(self):
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def __repr__(self):
        return "Reference(%r)" % str(self)

    def __eq__(self, other):
        return isinstance(other, Reference) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))


def split_domain(name: str):
    """Split a repository name into (domain, path), filling docker.io and library/."""
    i = name.find("/")
    if i == -1 or (not any(c in name[:i] for c in ".:") and name[:i] != "localhost"
                   and name[:i].lower() == name[:i]):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = name[:i], name[i + 1:]
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_PREFIX + rest
    return domain, rest


def parse(text: str) -> Reference:
    """Parse ``text`` into a normalised Reference (no default tag added).

    Raises:
        InvalidParameter: the reference is not valid (docker's wording).
    """
    if not isinstance(text, str) or not text:
        raise InvalidParameter("invalid reference format")
    s = text
    digest = None
    if "@" in s:
        s, digest = s.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidParameter("invalid reference format: invalid digest %r" % digest)
    tag = None
    i = s.rfind(":")
    if i > s.rfind("/"):
        s, tag = s[:i], s[i + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidParameter("invalid reference format: invalid tag %r" % tag)
    if not s:
        raise InvalidParameter("invalid reference format")
    domain, path = split_domain(s)
    if path != path.lower():
        raise InvalidParameter("invalid reference format: repository name (%s) must be lowercase" % path)
    if not _DOMAIN_RE.match(domain) or not _PATH_RE.match(path) or len(domain) + len(path) > 254:
        raise InvalidParameter("invalid reference format")
    return Reference(domain, path, tag, digest)


def parse_normalized(text: str) -> Reference:
    """Parse and add the ``latest`` tag when there is neither tag nor digest."""
    return parse(text).with_default_tag()


def is_full_id(text: str) -> bool:
    t = text[7:] if text.startswith("sha256:") else text
    return bool(_HEX64.match(t))
