"""The guest image cache: build the QEMU guest image once, or download a published one.

An image is a directory ``<cache>/<key>/`` holding ``disk.qcow2`` (the read-only base every
machine's copy-on-write disk points at), ``kernel``, ``initrd.img`` and ``manifest.json``.
A built image's key is a hash of provision/'s files and the build's inputs, so editing the
build script or the guest init rebuilds it; a downloaded image's key is its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import urllib.request
from dataclasses import dataclass, field

from hostbridge import paths
from hostbridge.errors import VMError

PROVISION_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "provision")
# Every file the build reads: a change to any of them is a new image.
BUILD_INPUTS = ("build-image.sh", "initrd-init.sh", "guest-init.py", "guest-power.sh", "bootstrap.sh",
                "hostbridge.service", "hostbridge.initd")
IMAGE_FILES = ("disk.qcow2", "kernel", "initrd.img", "manifest.json")
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
QCOW2_MAGIC = b"QFI\xfb"


@dataclass(frozen=True)
class GuestImage:
    """A ready image in the cache."""

    dir: str
    manifest: dict = field(default_factory=dict, compare=False)

    @property
    def disk(self):
        return os.path.join(self.dir, "disk.qcow2")

    @property
    def kernel(self):
        return os.path.join(self.dir, "kernel")

    @property
    def initrd(self):
        return os.path.join(self.dir, "initrd.img")


def default_cache_dir():
    """Where images are cached: ``$HOSTBRIDGE_IMAGE_CACHE``, else ``images/`` in ``paths.cache_dir()``.

    Returns:
        An absolute path (not created).
    """
    return os.environ.get("HOSTBRIDGE_IMAGE_CACHE") or os.path.join(paths.cache_dir(), "images")


def cache_key(arch="amd64", suite=DEFAULT_SUITE, provision_dir=PROVISION_DIR):
    """The key of a built image: a hash of the build's files and parameters.

    Args:
        arch: Debian architecture (amd64, arm64).
        suite: Debian suite.
        provision_dir: where the build's files are.
    Returns:
        ``"<arch>-<suite>-<16 hex>"``.
    Raises:
        VMError: a build file is missing.
    """
    digest = hashlib.sha256()
    digest.update(("%s\0%s\0" % (arch, suite)).encode())
    for name in BUILD_INPUTS:
        path = os.path.join(provision_dir, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise VMError("cannot read %s: %s" % (path, e.strerror), hint="reinstall hostbridge") from e
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return "%s-%s-%s" % (arch, suite, digest.hexdigest()[:16])


def mirror_from_apt_sources(texts):
    """Pick the Debian archive URI from apt source files (deb822 ``URIs:`` or one-line ``deb``).

    Args:
        texts: contents of the files in /etc/apt/sources.list(.d).
    Returns:
        The first URI ending in ``/debian`` (the security archive is skipped), or the default.
    """
    for text in texts:
        for line in text.splitlines():
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] == "URIs:":
                uris = words[1:]
            elif words[0] == "deb":
                rest = " ".join(words[1:])
                if rest.startswith("["):  # options: deb [arch=amd64 signed-by=…] URI suite…
                    rest = rest.split("]", 1)[-1]
                uris = rest.split()[:1]
            else:
                uris = []
            for uri in uris:
                if not uri.startswith(("http://", "https://")):
                    continue
                if uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    return DEFAULT_MIRROR


def host_mirror():
    """The Debian mirror this host's apt uses (the default when none is configured)."""
    texts = []
    for path in ["/etc/apt/sources.list"] + sorted(_listdir("/etc/apt/sources.list.d")):
        try:
            with open(path) as f:
                texts.append(f.read())
        except OSError:
            pass
    return mirror_from_apt_sources(texts)


def _listdir(d):
    try:
        return [os.path.join(d, n) for n in os.listdir(d)]
    except OSError:
        return []


def load(image_dir):
    """Open a cached image and check it looks intact.

    Args:
        image_dir: the image's directory.
    Returns:
        A GuestImage.
    Raises:
        VMError: a file is missing or the disk is not a qcow2 (corrupt: rebuild or re-download).
    """
    for name in IMAGE_FILES:
        if not os.path.isfile(os.path.join(image_dir, name)):
            raise VMError("the guest image in %s is incomplete: %s is missing" % (image_dir, name),
                          hint="delete that directory and run again to rebuild it")
    with open(os.path.join(image_dir, "disk.qcow2"), "rb") as f:
        if f.read(4) != QCOW2_MAGIC:
            raise VMError("the guest image %s is corrupt (not a qcow2 disk)" % image_dir,
                          hint="delete that directory and run again to rebuild it")
    try:
        with open(os.path.join(image_dir, "manifest.json")) as f:
            manifest = json.load(f)
    except ValueError as e:
        raise VMError("the guest image's manifest in %s is corrupt" % image_dir,
                      hint="delete that directory and run again to rebuild it") from e
    return GuestImage(image_dir, manifest)


def debian_arch(machine=None):
    """Debian's name for this host's architecture (the guest runs the host's, for acceleration)."""
    import platform

    return "arm64" if (machine or platform.machine()).lower() in ("arm64", "aarch64") else "amd64"


def build(cache_dir=None, arch=None, suite=DEFAULT_SUITE, mirror=None, provision_dir=PROVISION_DIR):
    """Return the cached image for this build, building it first if needed (~2 min, root).

    Concurrent callers wait for one build (a lock file); a failed build leaves nothing behind.

    Args:
        cache_dir: image cache (default ``default_cache_dir()``).
        arch, suite: what to build (arch: this host's by default).
        mirror: Debian mirror (default: this host's apt mirror).
        provision_dir: where build-image.sh and its inputs are.
    Returns:
        A GuestImage.
    Raises:
        VMError: the build failed (with the last lines of its output) or the cache is corrupt.
    """
    cache_dir = cache_dir or default_cache_dir()
    arch = arch or debian_arch()
    key = cache_key(arch, suite, provision_dir)
    final = os.path.join(cache_dir, key)
    os.makedirs(cache_dir, exist_ok=True)
    with _Lock(os.path.join(cache_dir, key + ".lock")):
        if os.path.isdir(final):
            return load(final)
        tmp = "%s.tmp-%d" % (final, os.getpid())
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [os.path.join(provision_dir, "build-image.sh"), tmp, arch, suite, mirror or host_mirror()]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = " | ".join(proc.stdout.strip().splitlines()[-3:])
            raise VMError("building the guest image failed: %s" % tail,
                          hint="it needs root, debootstrap, qemu-img and access to the Debian mirror")
        os.rename(tmp, final)
        return load(final)


def _download_chunks(url):
    """The bytes at ``url``: requests for http(s) (the environment's proxies, certifi's CA
    bundle — python.org's Python on macOS has none of its own), urllib for file://."""
    if url.startswith(("http://", "https://")):
        import requests

        try:
            with requests.get(url, stream=True, timeout=60) as resp:
                resp.raise_for_status()
                yield from resp.iter_content(1 << 20)
        except requests.RequestException as e:
            raise OSError(str(e)) from e
        return
    with urllib.request.urlopen(url, timeout=60) as resp:
        yield from iter(lambda: resp.read(1 << 20), b"")


def fetch(url, sha256, cache_dir=None):
    """Download a published image (a tar of IMAGE_FILES) once, verify it, cache it.

    Args:
        url: http(s):// or file:// URL of the tar (gzip/xz compressed or not).
        sha256: the tar's expected sha256 (hex).
        cache_dir: image cache (default ``default_cache_dir()``).
    Returns:
        A GuestImage.
    Raises:
        VMError: download failed, checksum mismatch, or the tar is not an image.
    """
    cache_dir = cache_dir or default_cache_dir()
    sha256 = sha256.lower()
    final = os.path.join(cache_dir, "sha256-" + sha256[:16])
    os.makedirs(cache_dir, exist_ok=True)
    with _Lock(final + ".lock"):
        if os.path.isdir(final):
            return load(final)
        part = final + ".download"
        digest = hashlib.sha256()
        try:
            with open(part, "wb") as out:
                for chunk in _download_chunks(url):
                    digest.update(chunk)
                    out.write(chunk)
        except (OSError, ValueError) as e:
            _remove(part)
            raise VMError("cannot download the guest image from %s: %s" % (url, e),
                          hint="check the URL and your connection") from e
        if digest.hexdigest() != sha256:
            _remove(part)
            raise VMError("the guest image from %s has sha256 %s, expected %s" % (url, digest.hexdigest(), sha256),
                          hint="the download is corrupt or the checksum is wrong")
        tmp = final + ".tmp-%d" % os.getpid()
        try:
            _extract_image(part, tmp)
        except (tarfile.TarError, VMError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise VMError("%s is not a hostbridge guest image: %s" % (url, e)) from e
        finally:
            _remove(part)
        os.rename(tmp, final)
        return load(final)


def prune(keep, cache_dir=None):
    """Delete cached images (built or downloaded) except those in ``keep``.

    Machines point at their base image: pass every image_dir still in use.

    Args:
        keep: image directories to keep.
        cache_dir: image cache (default ``default_cache_dir()``).
    Returns:
        The directories removed.
    """
    cache_dir = cache_dir or default_cache_dir()
    keep = {os.path.realpath(k) for k in keep}
    removed = []
    for name in sorted(_listdir(cache_dir)):
        if not os.path.isdir(name) or os.path.realpath(name) in keep or ".tmp-" in name:
            continue
        with _Lock(name + ".lock"):
            shutil.rmtree(name, ignore_errors=True)
        _remove(name + ".lock")
        removed.append(name)
    return removed


def _extract_image(tar_path, dest):
    os.makedirs(dest)
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            name = os.path.basename(member.name)
            # Only the image's own plain files, never a path chosen by the archive.
            if not member.isfile() or name not in IMAGE_FILES:
                continue
            src = tar.extractfile(member)
            with open(os.path.join(dest, name), "wb") as out:
                shutil.copyfileobj(src, out)
    missing = [n for n in IMAGE_FILES if not os.path.exists(os.path.join(dest, n))]
    if missing:
        raise VMError("missing %s" % ", ".join(missing))


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class _Lock:
    """An exclusive lock file (flock where available) held for a build or download."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except ImportError:  # Windows: images are downloaded there, one process at a time
            pass
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
