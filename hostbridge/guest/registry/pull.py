"""Pull: reference → manifest (platform) → config (verified) → layers (parallel, verified) → store.

The image store is reached through three methods (the seam; ``images/store.py`` implements them):

``store.resolve(name_or_id) -> "sha256:…"``
    The documented store contract; raises NotFound. Used to say "Image is up to date".
``store.has_layer(chain_id) -> bool``
    True when the layer with this ChainID is already in the store (its blob is not downloaded).
``store.add_pulled_image(config_bytes, layers, ref, manifest_digest) -> image_id``
    ``config_bytes``: the config blob, byte-exact, digest already verified (image id = its
    sha256). ``layers``: a list of ``PulledLayer`` bottom first; ``path`` is None for a layer
    ``has_layer`` reported present, else where its compressed blob is being downloaded: call
    ``layer.wait()`` before reading it (it returns once the blob is verified, or raises the
    download's error), so the store extracts each layer while the others still download
    (``open_layer(path, media_type)`` gives its tar stream). The store must check each layer's uncompressed sha256
    against ``diff_id`` (= ``config["rootfs"]["diff_ids"][i]``) while applying it and raise a
    GuestError, storing nothing of the image, on a mismatch. It may move or hardlink the blob
    files; pull deletes what is left. ``ref``: a ``reference.Reference`` with a tag or a digest
    to point at the image; ``manifest_digest``: the top-level manifest's digest, to be recorded
    as ``repo@digest`` (RepoDigests).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import threading

from ..errors import NotFound
from ..images import reference as _reference
from . import blobs, manifest as _manifest
from .auth import repository_scope
from .client import RegistryClient
from .config import HUB_DOMAIN, RegistryConfig
from .errors import BadManifest, RegistryNotFound, RegistryUnavailable, Unauthorized
from .progress import Progress, short_id

MAX_PARALLEL = 3


class PulledLayer:
    """One layer handed to the store (see the module docstring)."""

    __slots__ = ("path", "media_type", "digest", "size", "diff_id", "chain_id", "_done", "_error")

    def __init__(self, path, media_type, digest, size, diff_id, chain_id):
        self.path, self.media_type, self.digest = path, media_type, digest
        self.size, self.diff_id, self.chain_id = size, diff_id, chain_id
        self._done, self._error = threading.Event(), None
        if path is None:
            self._done.set()

    def wait(self):
        """Block until the blob at ``path`` is downloaded and verified.

        Raises:
            The download's error (or ``blobs.Cancelled`` when another layer failed).
        """
        self._done.wait()
        if self._error is not None:
            raise self._error

    def _finish(self, error=None):
        self._error = error
        self._done.set()

    def __repr__(self):
        return "PulledLayer(%s, diff_id=%s, path=%r)" % (self.digest, self.diff_id, self.path)


class PullResult:
    """What a pull did: ``image_id``, ``digest`` (top-level manifest), ``ref``, ``up_to_date``."""

    def __init__(self, image_id, digest, ref, up_to_date):
        self.image_id, self.digest, self.ref, self.up_to_date = image_id, digest, ref, up_to_date


def chain_ids(diff_ids):
    """ChainIDs as docker computes them: ``chain[n] = sha256(chain[n-1] + " " + diff_id[n])``."""
    out = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(("%s %s" % (out[-1], d)).encode()).hexdigest())
    return out


def endpoints_for(domain, config):
    """The endpoints to try in order: docker.io mirrors first, then the registry itself."""
    if domain == HUB_DOMAIN and config.mirrors:
        return list(config.mirrors) + [None]
    return [None]


def pull(name, store, download_dir, auth=None, config=None, platform=None, progress=None,
         max_parallel=MAX_PARALLEL) -> PullResult:
    """Pull an image into ``store``, streaming docker's progress messages.

    Args:
        name: a reference (``busybox``, ``localhost:5000/app:1.0``, ``app@sha256:…``).
        store: the image store (see the module docstring for the three methods used).
        download_dir: the directory for blobs in flight (kept across pulls for resumes).
        auth: an AuthConfig for the reference's registry (never sent to mirrors).
        config: a RegistryConfig.
        platform: ``{"os","architecture","variant"}`` or ``"linux/arm64/v8"``; default: this host.
        progress: a callable taking each progress message (dict).
        max_parallel: layers downloaded at once.
    Returns:
        A PullResult.
    Raises:
        GuestError kinds: InvalidParameter (bad reference/platform), the registry errors
        (Unauthorized, RegistryNotFound, BadManifest, BlobVerificationError, …).
    """
    config = config or RegistryConfig()
    ref = _reference.parse_normalized(name)
    if isinstance(platform, str):
        platform = _manifest.parse_platform(platform)
    out = Progress(progress)
    eps = endpoints_for(ref.domain, config)
    for i, endpoint in enumerate(eps):
        mirror = endpoint is not None
        client = RegistryClient(ref.domain, None if mirror else auth, config, endpoint=endpoint)
        try:
            return _pull_from(client, ref, store, download_dir, platform, out, max_parallel)
        except (RegistryUnavailable, RegistryNotFound, Unauthorized):
            if not mirror or i == len(eps) - 1:
                raise  # a mirror that fails falls back to the next endpoint, as dockerd does


def _pull_from(client, ref, store, download_dir, platform, out, max_parallel):
    repo = ref.path
    scopes = [repository_scope(repo)]
    # Nothing is emitted before the manifest resolves (as dockerd): an unknown tag, a 401 or a
    # 404 can still be answered with an HTTP status instead of an error inside the stream.
    top, image = _manifest.resolve(client, repo, ref.digest or ref.tag, scopes, platform)
    out.status("Pulling from %s" % ref.path, id=ref.tag or ref.digest)
    cfg_bytes = blobs.fetch_small(client, repo, image.config, scopes)
    diff_ids = _diff_ids(cfg_bytes, len(image.layers))
    image_id = image.config.digest
    try:
        was = store.resolve(ref.familiar())
    except NotFound:
        was = None
    chains = chain_ids(diff_ids)
    layers = [PulledLayer(None, d.media_type, d.digest, d.size, diff_ids[i], chains[i])
              for i, d in enumerate(image.layers)]
    todo = [lay for lay in layers if not store.has_layer(lay.chain_id)]
    for lay in layers:
        if lay not in todo:
            out.status("Already exists", id=short_id(lay.digest), detail=True)
    for lay in todo:
        if lay.media_type not in _manifest.LAYER_TYPES:
            blobs.open_layer("", lay.media_type)  # raises the clear "unsupported" error
    # Downloads run in the background while the store extracts each layer as soon as its blob
    # is verified (``PulledLayer.wait``), as dockerd overlaps them.
    downloads = _Downloads(client, repo, todo, download_dir, scopes, out, max_parallel)
    try:
        image_id = store.add_pulled_image(cfg_bytes, layers, ref, top.digest)
    except BaseException as e:
        downloads.stop()
        downloads.clean_up()
        raise downloads.first_error() or e
    downloads.stop()
    for lay in todo:
        blobs._unlink(lay.path)  # the store extracted (or hard-linked) what it keeps
    for lay in todo:
        out.status("Pull complete", id=short_id(lay.digest), detail=True)
    out.status("Digest: %s" % top.digest)
    up_to_date = was == image_id
    out.status("Status: %s for %s" % ("Image is up to date" if up_to_date else "Downloaded newer image",
                                      ref.familiar()))
    return PullResult(image_id, top.digest, ref, up_to_date)


def _diff_ids(cfg_bytes, n_layers):
    try:
        cfg = json.loads(cfg_bytes)
        diff_ids = cfg["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise BadManifest("malformed image config: no rootfs.diff_ids — the image is broken; ask its "
                          "publisher to push it again") from None
    if not isinstance(diff_ids, list) or len(diff_ids) != n_layers or not all(
            isinstance(d, str) and d.startswith("sha256:") for d in diff_ids):
        raise BadManifest("image config and manifest disagree (%s diff_ids for %d layers) — the image is "
                          "broken" % (len(diff_ids) if isinstance(diff_ids, list) else "no", n_layers))
    return diff_ids


class _Downloads:
    """Layer downloads in a bounded pool, started at once; each layer's ``wait`` tells its end."""

    def __init__(self, client, repo, layers, download_dir, scopes, out, max_parallel):
        self.layers, self.download_dir, self.out = layers, download_dir, out
        self.cancel = threading.Event()
        self.errors = []
        for lay in layers:
            lay.path = blobs.blob_path(download_dir, lay.digest)
            lay._done.clear()
            out.status("Pulling fs layer", id=short_id(lay.digest), detail=True)
        for lay in layers[max_parallel:]:
            out.status("Waiting", id=short_id(lay.digest), detail=True)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_parallel))
        self.futures = [self.pool.submit(self._one, client, repo, lay, scopes) for lay in layers]

    def _one(self, client, repo, lay, scopes):
        sid = short_id(lay.digest)
        try:
            blobs.download(client, repo, lay, self.download_dir, scopes,
                           lambda cur, tot: self.out.bar("Downloading", sid, cur, tot), self.cancel)
            self.out.status("Verifying Checksum", id=sid, detail=True)
            self.out.status("Download complete", id=sid, detail=True)
            self.out.status("Extracting", id=sid, detail=True)
        except BaseException as e:
            if not isinstance(e, blobs.Cancelled):
                self.errors.append(e)
            self.cancel.set()
            lay._finish(e)
            return
        lay._finish()

    def stop(self):
        """Cancel what is still running and wait for every download to end."""
        self.cancel.set()
        self.pool.shutdown(wait=True)
        for lay in self.layers:
            if not lay._done.is_set():
                lay._finish(blobs.Cancelled())

    def first_error(self):
        return self.errors[0] if self.errors else None

    def clean_up(self):
        """After a failure: a registry that went away leaves resumable files; anything else
        leaves nothing behind."""
        if self.errors and all(isinstance(e, RegistryUnavailable) for e in self.errors):
            return
        for lay in self.layers:
            blobs._unlink(blobs.partial_path(self.download_dir, lay.digest))
            blobs._unlink(blobs.blob_path(self.download_dir, lay.digest))
