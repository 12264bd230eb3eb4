"""The guest image cache: assemble the QEMU guest once from Debian's packages, or download one.

An image is a directory ``<cache>/<key>/`` holding ``kernel``, ``initrd.img`` (the whole guest
system, booted from RAM) and ``manifest.json`` (with each part's size and sha256). Machines
keep their data on a disk of their own (the guest formats it on its first boot), so an image
is replaced without touching any data. A built image's key is a hash of the guest's files in
provision/ and the assembler's version, so editing the guest init rebuilds it; a downloaded
image's key is its sha256.

An image is cached only after checks of its parts (``check_parts``): written to a temp dir,
checked, then renamed. ``load`` checks again; ``build`` rebuilds an entry that fails them.
QEMU boots ``initrd.cpio``, an unpacked copy of ``initrd.img`` made beside it on first use
(``boot_initrd``): the size the image counts and downloads stays the gzip'd one. The first
machine made from an image leaves the bytecode its guest compiled in that copy
(``keep_bytecode_seed``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass, field

from hostbridge import paths, resources
from hostbridge.errors import VMError

PROVISION_DIR = resources.provision_dir()  # the wheel's package data, else the checkout's provision/
# Every file of provision/ the guest is made of: a change to any of them is a new image.
BUILD_INPUTS = ("guest-init.py", "initramfs-init.sh", "guest-power.sh", "hostbridge.initd")
# Bumped when the assembler's recipe changes (packages, trimming, layout).
ASSEMBLY_VERSION = "15"
IMAGE_FILES = ("kernel", "initrd.img", "manifest.json")
# initrd.img unpacked, beside it: under TCG the guest kernel inflates 50 MB of gzip in ~2.4 s,
# while it copies a plain cpio into its rootfs alongside its other initcalls.
BOOT_INITRD = "initrd.cpio"
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# HOSTBRIDGE_GUEST_DEBS: a directory of .deb files to assemble from instead of a mirror
# (offline builds, tests).
DEBS_ENV = "HOSTBRIDGE_GUEST_DEBS"
MIN_KERNEL = 1 << 20
MIN_INITRD = 1 << 20
NEWC_MAGIC = b"070701"
GZIP_MAGIC = b"\x1f\x8b"
ARM64_IMAGE_MAGIC = b"ARM\x64"
_checked = {}  # (dir, stamps) of parts this process verified already
# In an image's dir: the stamps of its parts at their last full check (check_parts), so that an
# `up` does not hash 50 MB again (~0.8 s) while the files stay the ones hashed.
CHECKED_STAMP = "checked.json"
# The image's bytecode: what the guest's Python compiled of the image's own modules (the
# stdlib, the init), which it keeps in RAM (assemble.IMAGE_PYCACHE, its pycache prefix), kept
# from the first machine made from the image (steps.keep_guest_bytecode) as a second newc
# archive appended to BOOT_INITRD: every next boot's kernel unpacks it with the rest, so no
# guest compiles them again (seconds under TCG when this host's Python is not the guest's, and
# the image then has none of its own). The path stays the same, so a boot's command line (a
# saved state's fingerprint) does too. SEED_META: {"initrd": file_stamp(BOOT_INITRD) with the
# seed in it, "size": the seed archive's bytes, "files": how many it holds}.
SEED_META = "pycache-seed.json"
SEED_MTIME = 1  # the seeded files' mtime (the kernel keeps it): older than anything the guest compiles


def file_stamp(path):
    """What says a file is still the one seen before: [size, mtime in ns, inode]. Any write
    through the file system changes one of them (mtime at least)."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


@dataclass(frozen=True)
class GuestImage:
    """A ready image in the cache."""

    dir: str
    manifest: dict = field(default_factory=dict, compare=False)

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
    digest.update(("%s\0%s\0%s\0" % (arch, suite, ASSEMBLY_VERSION)).encode())
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


def check_parts(image_dir):
    """Check an image's parts: each present, the kernel an ELF vmlinux (amd64) or an arm64
    Image, the initrd a gzip'd or plain newc archive of a plausible size, and both matching the
    size and sha256 the manifest records.

    Args:
        image_dir: the image's directory.
    Returns:
        The manifest (a dict).
    Raises:
        VMError: a part is missing, truncated or of the wrong kind (the message says which).
    """
    hint = "the cached image is rebuilt by the next `hostbridge up`; or delete %s" % image_dir
    for name in IMAGE_FILES:
        if not os.path.isfile(os.path.join(image_dir, name)):
            raise VMError("the guest image in %s is incomplete: %s is missing" % (image_dir, name), hint=hint)
    try:
        with open(os.path.join(image_dir, "manifest.json")) as f:
            manifest = json.load(f)
        parts = manifest["parts"]
    except (ValueError, KeyError, TypeError) as e:
        raise VMError("the guest image's manifest in %s is corrupt" % image_dir, hint=hint) from e
    kernel, initrd = os.path.join(image_dir, "kernel"), os.path.join(image_dir, "initrd.img")
    with open(kernel, "rb") as f:
        head = f.read(64)
    if not (head[:4] == b"\x7fELF" or head[56:60] == ARM64_IMAGE_MAGIC) or os.path.getsize(kernel) < MIN_KERNEL:
        raise VMError("the guest image's kernel %s is not a kernel (bad magic or too small)" % kernel, hint=hint)
    if os.path.getsize(initrd) < MIN_INITRD:
        raise VMError("the guest image's initrd %s is truncated (%d bytes)" % (initrd, os.path.getsize(initrd)),
                      hint=hint)
    with open(initrd, "rb") as f:
        head = f.read(6)
        if head[:2] == GZIP_MAGIC:
            f.seek(0)
            try:
                head = gzip.GzipFile(fileobj=f).read(6)
            except (OSError, EOFError) as e:
                raise VMError("the guest image's initrd %s is not readable gzip: %s" % (initrd, e), hint=hint) from e
    if head != NEWC_MAGIC:
        raise VMError("the guest image's initrd %s is not a newc cpio archive" % initrd, hint=hint)
    stamps = [[n] + file_stamp(os.path.join(image_dir, n)) for n in ("kernel", "initrd.img", "manifest.json")]
    if _checked.get(os.path.realpath(image_dir)) == stamps or _read_checked(image_dir) == stamps:
        return manifest
    for name in ("kernel", "initrd.img"):
        want = parts.get(name) or {}
        path = os.path.join(image_dir, name)
        if os.path.getsize(path) != want.get("size") or file_sha256(path) != want.get("sha256"):
            raise VMError("the guest image's %s in %s does not match its manifest (size or sha256)" % (name, image_dir),
                          hint=hint)
    _checked[os.path.realpath(image_dir)] = stamps
    _write_checked(image_dir, stamps)
    return manifest


def file_sha256(path):
    """``debian.download.file_sha256``, imported when a part must be hashed: that module brings
    requests (~0.15 s), which an `up` of an image already checked never needs."""
    from hostbridge.machines.debian.download import file_sha256 as sha256

    return sha256(path)


def _read_checked(image_dir):
    try:
        with open(os.path.join(image_dir, CHECKED_STAMP)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_checked(image_dir, stamps):
    """Best effort: a cache dir we cannot write is hashed again next time."""
    try:
        _replace(os.path.join(image_dir, CHECKED_STAMP), json.dumps(stamps).encode())
    except OSError:
        pass


def _replace(path, data):
    """Write ``path`` whole or not at all (a temp file renamed over it)."""
    tmp = "%s.%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        _remove(tmp)
        raise


def seed_archive(files, skip=()):
    """``files`` ([(absolute guest path, bytes)]) as a newc archive that adds them to the
    guest's root: each parent directory first (the kernel creates no missing one), every entry
    root's, mtime SEED_MTIME. Paths in ``skip`` (the image has them already) are left out.

    Raises:
        VMError: a path that is not absolute, climbs (``..``) or is not a ``.pyc``.
    """
    import posixpath
    import stat

    from .guestimage import cpio

    out, dirs = io.BytesIO(), set()
    writer = cpio.Writer(out)
    for path, data in sorted(files):
        norm = posixpath.normpath(path)
        if not path.startswith("/") or norm != path or not path.endswith(".pyc"):
            raise VMError("the guest's compiled module %r is not a .pyc at a plain absolute path" % path)
        if path.lstrip("/") in skip:
            continue
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                writer.add(d, stat.S_IFDIR | 0o755, mtime=SEED_MTIME)
        writer.add(path, stat.S_IFREG | 0o644, data, mtime=SEED_MTIME)
    writer.close()
    return out.getvalue()


def has_seed(image_dir):
    """Whether the image's BOOT_INITRD holds its bytecode seed (``keep_bytecode_seed``)."""
    try:
        with open(os.path.join(image_dir, SEED_META)) as f:
            return json.load(f)["initrd"] == file_stamp(os.path.join(image_dir, BOOT_INITRD))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def keep_bytecode_seed(image_dir, files):
    """Keep ``files`` ([(absolute guest path, bytes)]: what the guest's Python compiled of the
    image's modules) as the image's bytecode seed: BOOT_INITRD is made again from
    ``initrd.img`` with ``seed_archive`` appended (a second archive after the first's trailer,
    at a 512-byte boundary, as the kernel reads concatenated ones) and renamed over the old
    one (a QEMU starting meanwhile reads one or the other, whole), then SEED_META. The files
    the image has already are left out.

    Returns:
        The number of files kept (0: nothing new, nothing changed).
    Raises:
        OSError: the image's dir cannot be written.
        VMError: a path that is not a plain absolute .pyc; the image's initrd is unreadable.
    """
    from .guestimage import cpio

    img = GuestImage(image_dir)
    try:
        with open(img.initrd, "rb") as f:
            base = f.read()
        if base[:2] == GZIP_MAGIC:
            base = gzip.decompress(base)
        have = {e.name for e in cpio.read(base)}
    except (OSError, EOFError, zlib.error, cpio.CpioError) as e:
        raise VMError("cannot read the guest image's initrd %s: %s" % (img.initrd, e)) from e
    seed = seed_archive(files, skip=have)
    count = sum(1 for e in cpio.read(seed) if e.name.endswith(".pyc"))
    if not count:
        return 0
    path = os.path.join(image_dir, BOOT_INITRD)
    _replace(path, base + b"\0" * (-len(base) % 512) + seed)
    _remove(os.path.join(image_dir, "pycache-seed.img"))  # the seed's drive of an older hostbridge
    _replace(os.path.join(image_dir, SEED_META),
             json.dumps({"initrd": file_stamp(path), "size": len(seed), "files": count}).encode())
    return count


def load(image_dir):
    """Open a cached image after ``check_parts``.

    Args:
        image_dir: the image's directory.
    Returns:
        A GuestImage.
    Raises:
        VMError: a part is missing or corrupt (rebuild or re-download).
    """
    return GuestImage(image_dir, check_parts(image_dir))


def boot_initrd(img):
    """The initramfs QEMU boots: ``initrd.img`` gunzipped once into ``BOOT_INITRD`` beside it
    (with the image's bytecode seed appended, once one is kept: ``keep_bytecode_seed``).

    A copy that is neither the size gzip recorded nor the seeded one ``has_seed`` knows (a crash
    while it was written, a change behind our back) is made again, without a seed (the next
    new machine keeps one again). When it cannot be written (a full disk, a read-only cache),
    the gzip'd initrd is booted: slower, the same guest.

    Args:
        img: a GuestImage (``load`` checked its parts).
    Returns:
        A path.
    """
    path = os.path.join(img.dir, BOOT_INITRD)
    if has_seed(img.dir):
        return path
    with open(img.initrd, "rb") as f:
        if f.read(2) != GZIP_MAGIC:
            return img.initrd  # a plain newc initrd is booted as it is
        f.seek(-4, os.SEEK_END)
        size = int.from_bytes(f.read(4), "little")  # gzip's ISIZE: the unpacked size mod 2**32
    try:
        if os.path.getsize(path) % (1 << 32) == size:
            return path
    except OSError:
        pass
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with gzip.open(img.initrd, "rb") as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, path)
    except (OSError, EOFError, zlib.error):
        _remove(tmp)
        return img.initrd
    return path


def debian_arch(machine=None):
    """Debian's name for this host's architecture (the guest runs the host's, for acceleration)."""
    import platform

    return "arm64" if (machine or platform.machine()).lower() in ("arm64", "aarch64") else "amd64"


def cached(url="", sha256="", cache_dir=None, arch=None, suite=DEFAULT_SUITE, provision_dir=PROVISION_DIR):
    """The image ``build()`` (or ``fetch(url, sha256)``) would return, when it is cached and
    passes ``check_parts``; else None (no download, no build).

    Returns:
        A GuestImage or None.
    """
    cache_dir = cache_dir or default_cache_dir()
    try:
        name = "sha256-" + sha256.lower()[:16] if url else cache_key(arch or debian_arch(), suite, provision_dir)
        return load(os.path.join(cache_dir, name))
    except VMError:
        return None


def build(cache_dir=None, arch=None, suite=DEFAULT_SUITE, mirror=None, provision_dir=PROVISION_DIR, progress=None,
          debs_dir=None):
    """Return the cached image, assembling it first when absent or when the cached one fails
    ``check_parts`` (it is then rebuilt, never reused).

    The guest is assembled in pure Python from Debian's .deb files (no root, no build tools):
    fetched and verified from the mirror, or taken from ``debs_dir``. Concurrent callers wait
    for one build (a lock file); a failed build leaves nothing behind.

    Args:
        cache_dir: image cache (default ``default_cache_dir()``).
        arch, suite: what to build (arch: this host's by default).
        mirror: Debian mirror (default: the vm.mirror setting, else this host's apt mirror, else
            deb.debian.org).
        provision_dir: where the guest's own files are.
        progress: ``(done_bytes, total_bytes, name)`` callback while .debs download.
        debs_dir: assemble from the .deb files in this directory (default ``$HOSTBRIDGE_GUEST_DEBS``).
    Returns:
        A GuestImage.
    Raises:
        VMError: the packages cannot be fetched or verified, or the assembly failed.
    """
    from .guestimage import assemble

    cache_dir = cache_dir or default_cache_dir()
    arch = arch or debian_arch()
    debs_dir = debs_dir or os.environ.get(DEBS_ENV) or None
    key = cache_key(arch, suite, provision_dir)
    final = os.path.join(cache_dir, key)
    os.makedirs(cache_dir, exist_ok=True)
    with _Lock(os.path.join(cache_dir, key + ".lock")):
        if os.path.isdir(final):
            try:
                return load(final)
            except VMError:
                shutil.rmtree(final, ignore_errors=True)  # a bad entry is rebuilt, never reused
        tmp = "%s.tmp-%d" % (final, os.getpid())
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            debs, kernel_deb = _guest_debs(arch, suite, mirror, progress, debs_dir)
            assemble.assemble(debs, kernel_deb, tmp, provision_dir, arch)
            check_parts(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return load(final)


def _guest_debs(arch, suite, mirror, progress, debs_dir):
    """({package: .deb path}, kernel .deb path) for the guest: from ``debs_dir``, else fetched."""
    from .guestimage import assemble

    names = list(assemble.PROGRAMS) + list(assemble.PICKS) + [assemble.KERNEL_META]
    if debs_dir:
        debs = assemble.local_debs(debs_dir)
    else:
        try:
            from .debian.archive import fetch_packages
        except ImportError as e:
            raise VMError("this hostbridge cannot download Debian packages (hostbridge.machines.debian is missing)",
                          hint="set %s to a directory of the guest's .deb files" % DEBS_ENV) from e
        debs = fetch_packages(names, arch, suite=suite, mirror=mirror,
                              exclude=assemble.EXCLUDE_PACKAGES, progress=progress)
    return assemble.split_kernel(debs)


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
            check_parts(tmp)  # cached only once its parts are checked
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
