"""A Debian archive client that trusts nothing it has not verified.

The chain is Debian's own: ``dists/SUITE/InRelease`` is checked against the archive keys shipped
in ``keys/`` (OpenPGP, ``openpgp.py``); the ``Packages`` index against the size and SHA256 the
verified Release lists; each ``.deb`` against the size and SHA256 the verified index lists. A
plain-HTTP mirror is then as safe as any.

Cache layout under ``cache_dir``::

    releases/<source>/InRelease   the last signed InRelease of a source (re-verified on each read)
    releases/<source>/meta.json   when it was fetched, its Last-Modified
    indexes/<sha256>              Packages.xz/.gz files, by the hash the signed Release gives
    indexes/<sha256>.rows.json    the same, parsed (loads in a tenth of the time)
    debs/<sha256>.deb             packages, by the hash the signed index gives (+ ``.part``)
"""

from __future__ import annotations

import email.utils
import errno
import gzip
import json
import lzma
import os
import re
import time
from dataclasses import dataclass

from hostbridge import paths
from hostbridge.errors import ArchiveError, ArchiveUnreachable, SignatureError
from hostbridge.machines.debian import index as _index
from hostbridge.machines.debian.control import paragraphs
from hostbridge.machines.debian.download import HTTP, file_sha256
from hostbridge.machines.debian.index import Package
from hostbridge.machines.debian.keys import default_keyring
from hostbridge.machines.debian.openpgp import CLOCK_SKEW, verify_cleartext

__all__ = ["Archive", "Package", "Source", "fetch_packages", "default_mirror", "default_cache_dir"]

DEFAULT_SUITE = "bookworm"
# How long a verified InRelease is used without asking the mirror again (seconds).
MAX_AGE = 3600
# Index file names tried in order, each only if the signed Release lists it.
INDEX_NAMES = ("Packages.xz", "Packages.gz", "Packages")
ROWS = ".rows.json"  # beside an index file: its parsed rows


@dataclass(frozen=True)
class Source:
    """One suite of one mirror, e.g. (``http://deb.debian.org/debian-security``, ``bookworm-security``)."""

    mirror: str
    suite: str

    @property
    def key(self):
        """A file name for this source in the cache."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", "%s_%s" % (self.mirror.split("://", 1)[-1].rstrip("/"), self.suite))

    def url(self, path):
        return "%s/dists/%s/%s" % (self.mirror.rstrip("/"), self.suite, path)


class Archive:
    """A verified client of one Debian suite (plus extra suites: security, updates).

    Args:
        mirror: the archive's base URL (``…/debian``).
        suite: its suite or codename (``bookworm``).
        arch: Debian architecture (``amd64``, ``arm64``).
        cache_dir: where verified files are cached (see the module docstring).
        components: archive components to index.
        keyring: trusted keys (an ``openpgp.Keyring``); default the Debian keys shipped here.
        session: a ``requests.Session`` to use.
        extra_sources: ``(mirror, suite)`` pairs merged into the index, the highest version of
            each package winning (``bookworm-security`` brings the current kernel).
        offline: ``"auto"`` (default): use the network, and a cached verified index when the
            mirror cannot be reached; True: never use the network; False: never fall back.
        max_age: seconds a verified InRelease is reused without asking the mirror (0: always ask;
            the mirror answers 304 when nothing changed).
        now: the time signatures and Valid-Until are checked against (tests).
    """

    def __init__(self, mirror, suite, arch, cache_dir, components=("main",), keyring=None, session=None,
                 extra_sources=(), offline="auto", max_age=MAX_AGE, now=None):
        self.sources = [Source(mirror.rstrip("/"), suite)] + [Source(m.rstrip("/"), s) for m, s in extra_sources]
        self.arch = arch
        self.cache_dir = os.path.abspath(cache_dir)
        self.components = tuple(components)
        self.keyring = keyring if keyring is not None else default_keyring()
        self.http = HTTP(session)
        self.offline = offline
        self.max_age = max_age
        self.now = now
        self._index = None
        self._providers = None

    # --- Release ---------------------------------------------------------------------------

    def release(self, source):
        """The verified Release fields of one source (fetching InRelease when needed).

        Args:
            source: a Source.
        Returns:
            A dict of the Release's fields, plus ``"_sha256"``: dict path → (sha256, size).
        Raises:
            SignatureError: the InRelease is not signed by a trusted key.
            ArchiveError: unreachable (and nothing cached), an HTTP error, expired, or for another suite.
        """
        cdir = os.path.join(self.cache_dir, "releases", source.key)
        cached_path, meta_path = os.path.join(cdir, "InRelease"), os.path.join(cdir, "meta.json")
        meta = _read_json(meta_path)
        cached = _read(cached_path)
        url = source.url("InRelease")
        now = self._now()
        fresh = cached is not None and 0 <= now - meta.get("checked", 0) < self.max_age
        if self.offline is True or fresh:
            if cached is None:
                raise ArchiveError("no cached index for %s and working offline" % url, url=url)
            return self._check_release(source, cached, url)
        headers = {}
        if cached is not None and meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
        try:
            status, blob, resp_headers = self.http.get(url, headers=headers, allow=(200, 304))
        except ArchiveUnreachable:
            if self.offline == "auto" and cached is not None:
                return self._check_release(source, cached, url)
            raise
        if status == 304 and cached is not None:
            fields = self._check_release(source, cached, url)
        else:
            fields = self._check_release(source, blob, url)
            try:
                old = self._check_release(source, cached, url, check_valid=False) if cached is not None else None
            except ArchiveError:
                old = None  # the old one no longer verifies (its key expired): nothing to compare with
            if old is not None:
                if _date(fields.get("Date")) < _date(old.get("Date")):
                    raise SignatureError("%s is older (%s) than the one already verified (%s)"
                                         % (url, fields.get("Date"), old.get("Date")), url=url,
                                         hint="the mirror is stale or replaying an old index; try another")
            _write_atomic(cached_path, blob)
        meta = {"checked": now, "last_modified": resp_headers.get("Last-Modified", meta.get("last_modified", ""))}
        _write_atomic(meta_path, json.dumps(meta).encode())
        return fields

    def _check_release(self, source, blob, url, check_valid=True):
        try:
            text = verify_cleartext(blob, self.keyring, now=self._now())
        except SignatureError as e:
            raise SignatureError("%s: %s" % (url, e.message), hint=e.hint or "the mirror serves an altered file, "
                                 "or the archive key is newer than this hostbridge", url=url) from e
        paras = paragraphs(text)
        if not paras:
            raise ArchiveError("%s holds no Release fields" % url, url=url)
        fields = paras[0]
        if source.suite not in (fields.get("Suite"), fields.get("Codename")):
            raise ArchiveError("%s is for suite %s (%s), not %s" % (url, fields.get("Suite"), fields.get("Codename"),
                                                                     source.suite), url=url)
        now = self._now()
        if check_valid:
            if fields.get("Valid-Until") and _date(fields["Valid-Until"]) < now:
                raise ArchiveError("%s expired on %s" % (url, fields["Valid-Until"]), url=url,
                                   hint="the mirror is out of date; use another, or check this computer's clock")
            if fields.get("Date") and _date(fields["Date"]) > now + CLOCK_SKEW:
                raise ArchiveError("%s is dated in the future (%s)" % (url, fields["Date"]), url=url,
                                   hint="check this computer's clock")
        sums = {}
        for line in fields.get("SHA256", "").split("\n"):
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                sums[parts[2]] = (parts[0].lower(), int(parts[1]))
        fields["_sha256"] = sums
        return fields

    # --- index -----------------------------------------------------------------------------

    def index(self):
        """The merged, verified package index of every source.

        Returns:
            dict name → Package (the highest version across sources).
        Raises:
            ArchiveError: see ``release``; an index missing from the Release, or its hash wrong.
        """
        if self._index is None:
            parts = []
            with _CacheLock(self.cache_dir):
                for source in self.sources:
                    fields = self.release(source)
                    for component in self.components:
                        parts.append(self._packages(source, fields, component))
            self._index = _index.merge(*parts)
        return self._index

    def _packages(self, source, fields, component):
        sums = fields["_sha256"]
        base = "%s/binary-%s/" % (component, self.arch)
        listed = [name for name in INDEX_NAMES if base + name in sums]
        if not listed:
            raise ArchiveError("%s lists no %sPackages index" % (source.url("InRelease"), base),
                               url=source.url("InRelease"), hint="check the architecture and component")
        for i, name in enumerate(listed):
            sha256, size = sums[base + name]
            path = os.path.join(self.cache_dir, "indexes", sha256)
            parsed = _load_rows(path, source.mirror)
            if parsed is not None:
                return parsed
            if os.path.exists(path) and not _intact(path, size, sha256):
                os.remove(path)  # a damaged cache entry is fetched again, never used
            if not os.path.exists(path):
                if self.offline is True:
                    raise ArchiveError("no cached %s and working offline" % source.url(base + name),
                                       url=source.url(base + name))
                try:
                    self._fetch_index(source, fields, base, name, sha256, size, path)
                except ArchiveError as e:
                    if e.status == 404 and i < len(listed) - 1:
                        continue  # this mirror lacks the .xz: take the .gz
                    raise
            return self._parsed(path, name, source.url(base + name), source.mirror)

    def _parsed(self, path, name, url, mirror):
        # The parsed rows are cached beside the verified file: parsing 50 MB of text takes
        # seconds, loading the rows a fraction of that.
        index = _index.parse_packages(_decompress(path, name, url), mirror)
        rows = [[p.name, p.version, p.arch, p.filename, p.sha256, p.size, p.depends_field, p.provides_field]
                for p in index.values()]
        try:
            _write_atomic(path + ROWS, json.dumps(rows, separators=(",", ":")).encode())
        except ArchiveError:
            pass  # only a cache
        return index

    def _fetch_index(self, source, fields, base, name, sha256, size, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        urls = [source.url(base + name)]
        if fields.get("Acquire-By-Hash") == "yes":
            # by-hash cannot change under us between InRelease and the index (mirror pushes).
            urls.insert(0, source.url(base + "by-hash/SHA256/" + sha256))
        for i, url in enumerate(urls):
            try:
                self.http.download(url, path, size, sha256)
                return
            except ArchiveError as e:
                if i == len(urls) - 1 or e.status != 404:
                    raise

    # --- packages --------------------------------------------------------------------------

    def closure(self, names, exclude=()):
        """The packages ``names`` need (Pre-Depends + Depends), see ``index.closure``.

        Returns:
            A list of Package.
        Raises:
            ArchiveError: no such package, an unsatisfiable dependency, or see ``index``.
        """
        index = self.index()
        if self._providers is None:
            self._providers = _index.providers(index)
        return _index.closure(index, names, exclude, self._providers)

    def fetch(self, packages, progress=None):
        """Download packages into the cache (once), each verified against the signed index.

        Args:
            packages: Package objects (from ``index``/``closure``).
            progress: called as ``progress(done_bytes, total_bytes, name)`` while downloading
                (cached packages count as done).
        Returns:
            dict package name → absolute path of its verified ``.deb``.
        Raises:
            ArchiveError: an HTTP error, a size or hash mismatch (nothing cached), unreachable,
                or disk full. An interrupted download leaves a ``.part`` the next call resumes.
        """
        debs = os.path.join(self.cache_dir, "debs")
        os.makedirs(debs, exist_ok=True)
        with _CacheLock(self.cache_dir):
            return self._fetch(packages, debs, progress)

    def _fetch(self, packages, debs, progress):
        total = sum(p.size for p in packages)
        done = [0]
        out = {}
        for pkg in packages:
            dest = os.path.join(debs, "%s.deb" % pkg.sha256)
            if os.path.exists(dest) and not _intact(dest, pkg.size, pkg.sha256):
                os.remove(dest)  # a damaged cache entry is fetched again, never used
            if not os.path.exists(dest):
                if self.offline is True:
                    raise ArchiveError("%s is not cached and working offline" % pkg.url, url=pkg.url)

                def on_bytes(n, name=pkg.name):
                    done[0] += n
                    if progress:
                        progress(done[0], total, name)

                self.http.download(pkg.url, dest, pkg.size, pkg.sha256, on_bytes)
            else:
                done[0] += pkg.size
                if progress:
                    progress(done[0], total, pkg.name)
            out[pkg.name] = dest
        return out

    def _now(self):
        return time.time() if self.now is None else self.now


# --- defaults --------------------------------------------------------------------------------

def default_mirror(cfg=None):
    """The Debian mirror: the ``vm.mirror`` setting (``$HOSTBRIDGE_VM_MIRROR``, config file), else
    this host's apt mirror, else deb.debian.org.

    Args:
        cfg: a loaded ``config.Config`` (default: ``config.load()``).
    Raises:
        ConfigError: the config file is invalid.
    """
    from hostbridge import config
    from hostbridge.machines.image import host_mirror

    cfg = cfg if cfg is not None else config.load()
    return (cfg["vm.mirror"] or host_mirror()).rstrip("/")


def security_mirror(mirror):
    """The security archive beside a mirror (``…/debian`` → ``…/debian-security``)."""
    mirror = mirror.rstrip("/")
    return mirror + "-security" if mirror.endswith("/debian") else "http://deb.debian.org/debian-security"


def default_cache_dir():
    """Where verified Debian files are cached: ``debian/`` in ``paths.cache_dir()``."""
    return os.path.join(paths.cache_dir(), "debian")


def default_sources(mirror, suite):
    """The extra suites every guest wants: ``SUITE-security`` and ``SUITE-updates``."""
    return [(security_mirror(mirror), suite + "-security"), (mirror, suite + "-updates")]


def fetch_packages(names, arch, suite=None, mirror=None, cache_dir=None, exclude=(), progress=None,
                   extra_sources=None, session=None, offline="auto"):
    """Download ``names`` and everything they depend on, verified, with hostbridge's defaults.

    Args:
        names: package names.
        arch: Debian architecture (``amd64``, ``arm64``).
        suite: default ``bookworm``.
        mirror: default ``default_mirror()``.
        cache_dir: default ``default_cache_dir()``.
        exclude: package names left out with what only they need.
        progress: ``progress(done_bytes, total_bytes, name)``.
        extra_sources: ``(mirror, suite)`` pairs; default the suite's security and updates suites.
        session: a ``requests.Session``.
        offline: see ``Archive``.
    Returns:
        dict package name → absolute path of its verified ``.deb``.
    Raises:
        ArchiveError: see ``Archive``.
    """
    suite = suite or DEFAULT_SUITE
    mirror = (mirror or default_mirror()).rstrip("/")
    if extra_sources is None:
        extra_sources = default_sources(mirror, suite)
    archive = Archive(mirror, suite, arch, cache_dir or default_cache_dir(), extra_sources=extra_sources,
                      session=session, offline=offline)
    return archive.fetch(archive.closure(names, exclude=exclude), progress=progress)


# --- files -----------------------------------------------------------------------------------

def _date(value):
    if not value:
        return 0.0
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _decompress(path, name, url):
    try:
        with open(path, "rb") as f:
            data = f.read()
        if name.endswith(".xz"):
            data = lzma.decompress(data)
        elif name.endswith(".gz"):
            data = gzip.decompress(data)
        return data.decode("utf-8", "replace")
    except (OSError, lzma.LZMAError, EOFError) as e:
        raise ArchiveError("cannot read the index from %s: %s" % (url, e), url=url) from e


class _CacheLock:
    """Keeps two processes from writing one cache at once: flock on the cache directory itself
    (no lock file to leave behind). Where directories cannot be locked (Windows) it does nothing."""

    def __init__(self, cache_dir):
        self.cache_dir = cache_dir
        self.fd = None

    def __enter__(self):
        os.makedirs(self.cache_dir, exist_ok=True)
        try:
            import fcntl

            self.fd = os.open(self.cache_dir, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)


def _load_rows(path, mirror):
    """The parsed rows cached beside a verified index file, or None (missing or damaged)."""
    try:
        with open(path + ROWS) as f:
            rows = json.load(f)
        return {row[0]: Package(*row, mirror=mirror) for row in rows}
    except (OSError, ValueError, TypeError, IndexError):
        return None


def _intact(path, size, sha256):
    return os.path.getsize(path) == size and file_sha256(path) == sha256


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _read_json(path):
    data = _read(path)
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return {}


def _write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        what = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise ArchiveError("cannot write %s: %s" % (path, what)) from e
