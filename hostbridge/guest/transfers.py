"""Registry work for the engine: pull, push, search and login with the image store and config.

Credentials arrive per call (decoded from ``X-Registry-Auth`` or the ``/auth`` body) and live
only in memory for that call: nothing here writes them anywhere, nor logs them.

On disk (under ``ROOT/images``): ``downloads/<repo-key>/`` holds blobs in flight (one dir per
repository, so concurrent pulls of different repositories never share a file, and pulls of one
repository take turns; emptied when a pull ends, ``.partial`` files kept only while the registry
is unreachable, for a resume); ``distribution/`` is push's DiffID → compressed digest cache
(digests and repository names, no credentials).
"""

from __future__ import annotations

import importlib
import os
import shutil
import threading

from . import util
from .errors import InvalidParameter, NotFound, Unauthenticated
from .images import reference
from .registry.auth import repository_scope
from .registry.config import RegistryConfig
from .registry.errors import RegistryError, RegistryNotFound, Unauthorized


def _registry(module):
    """A ``registry`` module, imported on first use: http.client, ssl and friends would add ~3 MB
    to the idle engine's memory."""
    return importlib.import_module(".registry." + module, __package__)


def pull_reference(from_image: str, tag: str = "") -> str:
    """The reference ``POST /images/create`` names: ``fromImage`` plus ``tag`` (a tag or a digest).

    A repository with neither (``docker pull -a``) stays bare: every tag is pulled, as dockerd does.

    Raises:
        InvalidParameter: not a valid reference.
    """
    name = (from_image or "").strip()
    if tag:
        name += ("@" if tag.startswith("sha256:") else ":") + tag
    return reference.parse(name).familiar()


def _translate_pull_error(err, ref, repo_exists):
    """dockerd's words for a repository or manifest that is not there (still a NotFound).

    docker-registry answers ``MANIFEST_UNKNOWN`` for a repository it has never heard of too,
    so ``repo_exists()`` (a tag list request) tells a missing tag from a missing repository.
    """
    if not isinstance(err, RegistryNotFound):
        return err
    if "MANIFEST_UNKNOWN" in err.codes and repo_exists():
        msg = ("manifest for %s not found: manifest unknown — check the tag or digest (`docker "
               "search` or the registry lists what exists)" % ref.familiar())
    else:
        msg = ("pull access denied for %s, repository does not exist or may require 'docker login'"
               % ref.familiar_name)
    return RegistryNotFound(msg, status=err.status, registry=err.registry, codes=err.codes)


def _repo_exists(ref, auth, config) -> bool:
    """True when the registry lists tags for the repository (False on any error)."""
    try:
        c = _registry("client").RegistryClient(ref.domain, auth, config)
        with c.request("GET", "/v2/%s/tags/list?n=1" % ref.path, [repository_scope(ref.path)],
                       what="tags of %s" % ref.path) as resp:
            resp.read_limited(1 << 16)
        return True
    except (RegistryError, OSError):
        return False


class Transfers:
    """Pull, push, search and login for one engine.

    Args:
        store: the ImageStore.
        root: the engine's state root.
        config: the RegistryConfig (insecure registries, mirrors) from the daemon's options.
    """

    def __init__(self, store, root, config=None):
        self.store = store
        self.config = config or RegistryConfig()
        self.downloads = util.makedirs(os.path.join(root, "images", "downloads"))
        self.cache_dir = util.makedirs(os.path.join(root, "images", "distribution"))
        self._locks = {}
        self._locks_lock = threading.Lock()
        self._clean_downloads()

    def _clean_downloads(self):
        """At start: drop everything but resumable ``.partial`` blobs."""
        for d in os.listdir(self.downloads):
            path = os.path.join(self.downloads, d)
            if not os.path.isdir(path):
                _remove(path)
                continue
            for n in os.listdir(path):
                if not n.endswith(".partial"):
                    _remove(os.path.join(path, n))
            _rmdir_if_empty(path)

    def _repo_lock(self, key):
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())

    def pull(self, name, auth=None, platform=None, progress=None):
        """Pull ``name`` (a reference with a tag or digest) into the store.

        Args:
            name: e.g. ``127.0.0.1:5000/app:1`` or ``app@sha256:…``.
            auth: an AuthConfig (None: anonymous).
            platform: ``os/arch[/variant]`` or None (this host).
            progress: called with each of docker's progress messages.
        Returns:
            registry.pull.PullResult.
        Raises:
            GuestError kinds; RegistryNotFound in dockerd's words for a missing repository or
            tag; registry.progress.ProgressAborted when ``progress`` fails (client gone).
        """
        ref = reference.parse_normalized(name)
        import hashlib  # not at start: it loads OpenSSL (~60 ms in an emulated guest)
        key = hashlib.sha256(ref.name.encode()).hexdigest()[:16]
        dl = os.path.join(self.downloads, key)
        with self._repo_lock(key):
            os.makedirs(dl, exist_ok=True)
            started = []

            def relay(msg):
                started[:] = [True]
                if progress is not None:
                    progress(msg)
            try:
                return _registry("pull").pull(name, self.store, dl, auth=auth, config=self.config,
                                     platform=platform or None, progress=relay)
            except RegistryNotFound as e:
                if started:  # a blob gone mid-pull: the registry's own words fit
                    raise
                raise _translate_pull_error(e, ref, lambda: _repo_exists(ref, auth, self.config)) from None
            finally:
                _rmdir_if_empty(dl)

    def pull_all_tags(self, repo, auth=None, platform=None, progress=None):
        """``docker pull -a``: every tag the registry lists for ``repo``, one after another.

        Returns:
            list: a registry.pull.PullResult per tag.
        Raises:
            RegistryNotFound: no such repository (docker's ``pull access denied`` words); as ``pull``.
        """
        ref = reference.parse(repo)
        client = _registry("client").RegistryClient(ref.domain, auth, self.config)
        try:
            names = sorted(_registry("search").tags(client, ref.path))
        except RegistryNotFound as e:
            raise _translate_pull_error(e, ref, lambda: False) from None
        if not names:
            raise RegistryNotFound("repository %s has no tags to pull — push one first" % ref.familiar_name)
        return [self.pull("%s:%s" % (ref.familiar_name, t), auth, platform, progress) for t in names]

    def push(self, name, tag="", auth=None, progress=None):
        """Push ``name`` (``repo[:tag]``; no tag and ``tag`` empty: every tag of the repository).

        Returns:
            list: the pushed references (``repo:tag``), in order.
        Raises:
            NotFound: no image by that name (docker's ``An image does not exist locally…``);
            GuestError kinds from the registry.
        """
        r = reference.parse(name + (":" + tag if tag else ""))
        if r.digest is not None:
            raise InvalidParameter("cannot push a digest reference: %s — push NAME:TAG" % r.familiar())
        if r.tag is not None:
            targets = [r]
        else:
            targets = [x for x in self._tags_of(r)]
            if not targets:
                raise NotFound("An image does not exist locally with the tag: %s" % r.familiar_name)
        results = []
        said = []

        def relay(msg):  # one "The push refers to repository" for all tags, as dockerd says it
            if str(msg.get("status", "")).startswith("The push refers to repository"):
                if said:
                    return
                said.append(msg)
            if progress is not None:
                progress(msg)
        for t in targets:
            try:
                image_id = self.store.resolve(t.familiar())
            except NotFound:
                raise NotFound("An image does not exist locally with the tag: %s" % t.familiar()) from None
            cfg, tars, diff_ids = self.store.push_source(image_id)
            res = _registry("push").push(t.familiar(), cfg, tars, diff_ids, auth=auth, config=self.config,
                                progress=relay, cache_dir=self.cache_dir, work_dir=self.store.tmp)
            self.store.record_push(image_id, t.familiar(), res["Digest"])
            results.append(t.familiar())
        return results

    def _tags_of(self, repo):
        with self.store.lock:
            keys = sorted(self.store.repos)
        out = []
        for k in keys:
            r = reference.parse_normalized(k)
            if r.digest is None and r.name == repo.name:
                out.append(r)
        return out

    def search(self, term, limit=25, filters=None, auth=None, with_tags=False):
        """``GET /images/search``: Docker Hub's index, or another registry's catalog.

        Returns:
            A list of docker's SearchResult dicts.
        """
        return _registry("search").search(term, limit=limit or 25, auth=auth, config=self.config, filters=filters,
                                          with_tags=with_tags)

    def distribution(self, name, auth=None):
        """``GET /distribution/{name}/json``: the registry's descriptor and platforms for ``name``.

        Raises:
            InvalidParameter (a bad reference), NotFound (no such repository or tag), and
            other registry errors.
        """
        return _registry("distinspect").distribution_inspect(name, auth=auth, config=self.config)

    def login(self, auth):
        """``POST /auth``: check credentials against the registry; remember nothing.

        Returns:
            ``{"Status": "Login Succeeded", "IdentityToken": ""}``.
        Raises:
            Unauthenticated: the registry refused the credentials (401, its message);
            other registry errors.
        """
        try:
            return _registry("client").login(auth, self.config)
        except Unauthorized as e:
            raise Unauthenticated(str(e)) from None

    def info(self) -> dict:
        """docker's ``RegistryConfig`` for ``/info``."""
        cidrs = ["127.0.0.0/8"] + [x for x in self.config.insecure_registries if "/" in x]
        index = {"docker.io": {"Name": "docker.io", "Mirrors": [m + "/" for m in self.config.mirrors],
                               "Secure": True, "Official": True}}
        for x in self.config.insecure_registries:
            if "/" not in x:
                index[x] = {"Name": x, "Mirrors": [], "Secure": False, "Official": False}
        return {"AllowNondistributableArtifactsCIDRs": None, "AllowNondistributableArtifactsHostnames": None,
                "InsecureRegistryCIDRs": cidrs, "IndexConfigs": index,
                "Mirrors": [m + "/" for m in self.config.mirrors]}


def _remove(path):
    """Remove a file or a tree, ignoring what is already gone."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _rmdir_if_empty(path):
    try:
        os.rmdir(path)
    except OSError:
        pass
