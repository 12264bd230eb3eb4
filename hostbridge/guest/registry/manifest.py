"""Manifests: negotiation, validation (size, JSON, digest) and platform selection.

Accepted: Docker schema2 and OCI image manifests, Docker manifest lists and OCI indexes.
Schema1 is refused (docker dropped it too).
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
import re

from ..goarch import go_arch
from .errors import BadManifest, NoMatchingPlatform

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
# zstd needs a library the standard library lacks (before 3.14): refused with a clear message.
LAYER_TYPES = (DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, OCI_LAYER)
MAX_MANIFEST_SIZE = 4 << 20
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Descriptor:
    """A content descriptor: ``media_type``, ``digest``, ``size``, optional platform/annotations."""

    __slots__ = ("media_type", "digest", "size", "platform", "annotations", "urls")

    def __init__(self, media_type, digest, size, platform=None, annotations=None, urls=None):
        self.media_type, self.digest, self.size = media_type, digest, size
        self.platform, self.annotations, self.urls = platform, annotations or {}, urls or []

    @classmethod
    def parse(cls, d, where) -> "Descriptor":
        if not isinstance(d, dict):
            raise BadManifest("malformed manifest: %s is not an object — the image is broken; "
                              "ask its publisher to push it again" % where)
        digest, size = d.get("digest"), d.get("size")
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise BadManifest("malformed manifest: %s has no valid sha256 digest (%r) — the image is "
                              "broken; ask its publisher to push it again" % (where, digest))
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadManifest("malformed manifest: %s has no valid size — the image is broken; "
                              "ask its publisher to push it again" % where)
        plat = d.get("platform")
        return cls(d.get("mediaType", ""), digest, size, plat if isinstance(plat, dict) else None,
                   d.get("annotations") if isinstance(d.get("annotations"), dict) else None,
                   d.get("urls") if isinstance(d.get("urls"), list) else None)

    def to_dict(self) -> dict:
        d = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.platform:
            d["platform"] = self.platform
        if self.annotations:
            d["annotations"] = self.annotations
        return d


class Manifest:
    """A validated manifest or index, with its exact bytes and digest.

    ``kind`` is ``"image"`` (``config`` and ``layers`` set) or ``"index"`` (``manifests`` set).
    """

    def __init__(self, raw, media_type, digest, doc):
        self.raw, self.media_type, self.digest, self.doc = raw, media_type, digest, doc
        self.kind = "index" if media_type in INDEX_TYPES else "image"
        self.config = None
        self.layers = []
        self.manifests = []


def parse_manifest(raw: bytes, content_type: str = "", expected_digest: str = None) -> Manifest:
    """Validate and parse manifest bytes.

    Args:
        raw: the exact bytes the registry sent.
        content_type: the response's Content-Type (used when the JSON has no mediaType).
        expected_digest: the digest it was fetched by, checked against the bytes.
    Returns:
        A Manifest.
    Raises:
        BadManifest: too large, not JSON, not schema 2, an unknown type, a bad descriptor, or
            a digest mismatch.
    """
    if len(raw) > MAX_MANIFEST_SIZE:
        raise BadManifest("manifest too large (%d bytes, limit %d): refused — it is not an image "
                          "manifest docker could use" % (len(raw), MAX_MANIFEST_SIZE))
    digest = sha256_digest(raw)
    if expected_digest and expected_digest != digest:
        raise BadManifest("manifest digest mismatch: asked for %s, got %s — the registry or a proxy "
                          "altered it; retry, or check the registry" % (expected_digest, digest))
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadManifest("malformed manifest: not valid JSON — the image is broken or the registry "
                          "sent something else; check the registry") from None
    if not isinstance(doc, dict):
        raise BadManifest("malformed manifest: expected a JSON object — check the registry")
    if doc.get("schemaVersion") != 2:
        raise BadManifest("unsupported manifest schema version %r: only schema 2 (and OCI) images can "
                          "be pulled — ask the publisher to push it with a recent docker"
                          % doc.get("schemaVersion"))
    media_type = doc.get("mediaType") or content_type.split(";")[0].strip()
    if not media_type:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    m = Manifest(raw, media_type, digest, doc)
    if media_type in INDEX_TYPES:
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise BadManifest("malformed manifest list: no manifests array — check the registry")
        m.manifests = [Descriptor.parse(d, "manifests[%d]" % i) for i, d in enumerate(items)]
    elif media_type in IMAGE_TYPES:
        m.config = Descriptor.parse(doc.get("config"), "config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise BadManifest("malformed manifest: no layers array — check the registry")
        m.layers = [Descriptor.parse(d, "layers[%d]" % i) for i, d in enumerate(layers)]
    else:
        raise BadManifest("unsupported manifest media type %r — this engine pulls docker schema2 and "
                          "OCI images" % media_type)
    return m


# ---- platforms ---------------------------------------------------------------------------
def normalize_arch(arch: str, variant: str = ""):
    """docker's normalisation: x86_64→amd64, aarch64→arm64 (variant v8 dropped), arm→v7."""
    arch = go_arch(arch)
    variant = (variant or "").lower()
    if arch == "arm64" and variant in ("8", "v8"):
        variant = ""
    elif arch == "arm" and variant in ("", "7"):
        variant = "v7"
    elif arch == "arm" and variant in ("5", "6", "8"):
        variant = "v" + variant
    return arch, variant


def parse_platform(text: str) -> dict:
    """``linux/arm64/v8`` → ``{"os": "linux", "architecture": "arm64", "variant": ""}``.

    Raises:
        BadManifest: not ``os[/arch[/variant]]``.
    """
    parts = (text or "").strip().lower().split("/")
    if not parts[0] or len(parts) > 3 or any(not p for p in parts):
        raise BadManifest("invalid platform %r: use os/arch[/variant], e.g. linux/arm64/v8" % text)
    if len(parts) == 1:
        parts.append(default_platform()["architecture"])
    arch, variant = normalize_arch(parts[1], parts[2] if len(parts) > 2 else "")
    return {"os": parts[0], "architecture": arch, "variant": variant}


def default_platform() -> dict:
    """This machine's platform (``linux/amd64`` on x86_64)."""
    arch, variant = normalize_arch(_platform.machine() or "amd64")
    return {"os": "linux", "architecture": arch, "variant": variant}


def format_platform(p: dict) -> str:
    s = "%s/%s" % (p.get("os", ""), p.get("architecture", ""))
    return s + "/" + p["variant"] if p.get("variant") else s


def _is_attestation(d: Descriptor) -> bool:
    if d.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return True
    p = d.platform or {}
    return p.get("os") == "unknown" or p.get("architecture") == "unknown"


def select_platform(index: Manifest, want: dict) -> Descriptor:
    """Pick the index entry for ``want`` (an exact variant first, then compatible ones).

    Raises:
        NoMatchingPlatform: no entry matches; the message lists what the image has.
    """
    arch, variant = normalize_arch(want.get("architecture", ""), want.get("variant", ""))
    # An arm/v7 host runs v6 and v5 images too; an empty wanted variant accepts any.
    if arch == "arm" and variant:
        accept = ["v%d" % n for n in range(int(variant[1:]), 4, -1)] if variant[1:].isdigit() else [variant]
    else:
        accept = [variant]
    best, best_rank = None, None
    offered = []
    for d in index.manifests:
        if _is_attestation(d) or d.media_type not in IMAGE_TYPES + ("",):
            continue
        p = d.platform or {}
        d_arch, d_var = normalize_arch(p.get("architecture", ""), p.get("variant", ""))
        offered.append(format_platform({"os": p.get("os", ""), "architecture": d_arch, "variant": d_var}))
        if p.get("os", "") != want.get("os", "linux") or d_arch != arch:
            continue
        if not variant:
            rank = 0
        elif d_var in accept:
            rank = accept.index(d_var)
        else:
            continue
        if best_rank is None or rank < best_rank:
            best, best_rank = d, rank
    if best is None:
        raise NoMatchingPlatform("no matching manifest for %s in the manifest list entries (image has: %s)"
                                 " — pick one with --platform" % (format_platform(
                                     {"os": want.get("os", "linux"), "architecture": arch, "variant": variant}),
                                     ", ".join(offered) or "none"))
    return best


# ---- fetching ----------------------------------------------------------------------------
def fetch(client, repo: str, reference: str, scopes, what: str = None) -> Manifest:
    """GET a manifest by tag or digest, refusing bodies over 4 MiB before reading them whole.

    Args:
        client: a RegistryClient.
        repo: the repository path (``library/busybox``).
        reference: a tag or a ``sha256:`` digest (then the bytes are checked against it).
        scopes: token scopes for the request.
        what: words for error messages.
    Returns:
        A validated Manifest.
    Raises:
        BadManifest, and the client's errors (RegistryNotFound for an unknown tag…).
    """
    what = what or "manifest for %s/%s%s%s" % (client.domain, repo, "@" if ":" in reference else ":", reference)
    with client.request("GET", "/v2/%s/manifests/%s" % (repo, reference), scopes,
                        headers={"Accept": ACCEPT}, what=what) as resp:
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > MAX_MANIFEST_SIZE:
            raise BadManifest("manifest too large (%s bytes, limit %d): refused — it is not an image "
                              "manifest docker could use" % (length, MAX_MANIFEST_SIZE))
        raw = resp.read_limited(MAX_MANIFEST_SIZE)
        content_type = resp.headers.get("Content-Type", "")
        header_digest = resp.headers.get("Docker-Content-Digest", "")
    by_digest = reference.startswith("sha256:")
    m = parse_manifest(raw, content_type, reference if by_digest else None)
    if not by_digest and header_digest.startswith("sha256:") and header_digest != m.digest:
        raise BadManifest("manifest digest mismatch: the registry announced %s but sent %s — retry, or "
                          "check the registry and any proxy in between" % (header_digest, m.digest))
    return m


def resolve(client, repo: str, reference: str, scopes, platform: dict = None):
    """Fetch ``reference`` and, for an index, the entry for ``platform``.

    Returns:
        (top, image): the manifest the reference names (its digest is the one docker records)
        and the image manifest to pull (the same object when ``top`` is not an index).
    Raises:
        BadManifest, NoMatchingPlatform, and the client's errors.
    """
    top = fetch(client, repo, reference, scopes)
    if top.kind == "image":
        return top, top
    entry = select_platform(top, platform or default_platform())
    image = fetch(client, repo, entry.digest, scopes)
    if image.kind != "image":
        raise BadManifest("manifest list entry %s is not an image manifest — the image is broken"
                          % entry.digest)
    return top, image
