"""``GET /distribution/{name}/json``: what a registry says an image is, without pulling it.

dockerd answers with the descriptor of the manifest the reference names and the platforms it
offers: an index's entries as listed (attestation entries included), or a single manifest's
platform read from its config blob.
"""

from __future__ import annotations

import json

from . import manifest as _manifest
from ..images import reference as _reference
from .auth import repository_scope
from .blobs import fetch_small
from .client import RegistryClient

_PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant")


def _platform(doc) -> dict:
    # ocispec.Platform's JSON: architecture and os always, the rest only when set
    doc = doc if isinstance(doc, dict) else {}
    out = {"architecture": doc.get("architecture") or "", "os": doc.get("os") or ""}
    out.update({k: doc[k] for k in _PLATFORM_KEYS[2:] if doc.get(k)})
    return out


def distribution_inspect(name: str, auth=None, config=None) -> dict:
    """Docker's DistributionInspect for ``name``.

    Args:
        name: a reference (``busybox``, ``127.0.0.1:5000/app:1``, ``app@sha256:…``).
        auth: an AuthConfig for the reference's registry, or None.
        config: a RegistryConfig (insecure registries).
    Returns:
        ``{"Descriptor": {"mediaType", "digest", "size"}, "Platforms": [...]}``.
    Raises:
        InvalidParameter (a bad reference), BadManifest, and the registry client's errors
        (RegistryNotFound for an unknown repository or tag, Unauthorized…).
    """
    ref = _reference.parse_normalized(name)
    client = RegistryClient(ref.domain, auth, config)
    scopes = [repository_scope(ref.path)]
    top = _manifest.fetch(client, ref.path, ref.digest or ref.tag or "latest", scopes)
    platforms = []
    if top.kind == "index":
        platforms = [_platform(d.platform) for d in top.manifests]
    elif top.config is not None:
        try:
            cfg = json.loads(fetch_small(client, ref.path, top.config, scopes))
        except ValueError:
            cfg = {}
        if cfg.get("os") or cfg.get("architecture"):
            platforms = [_platform(cfg)]
    return {"Descriptor": {"mediaType": top.media_type, "digest": top.digest, "size": len(top.raw)},
            "Platforms": platforms}
