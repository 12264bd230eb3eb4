"""The guest image cache: keys, mirror choice, a corrupt image, the download path (file://)."""

import gzip
import hashlib
import json
import io
import os
import shutil
import tarfile

import pytest

from hostbridge.errors import VMError
from hostbridge.machines import image
from hostbridge.machines.guestimage import cpio


def copy_provision(tmp_path):
    dest = tmp_path / "provision"
    dest.mkdir()
    for name in image.BUILD_INPUTS:
        shutil.copy(os.path.join(image.PROVISION_DIR, name), dest / name)
    return str(dest)


def test_cache_key_is_stable_and_follows_every_input(tmp_path):
    prov = copy_provision(tmp_path)
    key = image.cache_key("amd64", "bookworm", prov)
    assert key == image.cache_key("amd64", "bookworm", prov)
    assert key.startswith("amd64-bookworm-")
    assert image.cache_key("arm64", "bookworm", prov) != key
    assert image.cache_key("amd64", "trixie", prov) != key
    for name in image.BUILD_INPUTS:
        with open(os.path.join(prov, name), "a") as f:
            f.write("\n# changed\n")
        changed = image.cache_key("amd64", "bookworm", prov)
        assert changed != key, name
        key = changed


def test_cache_key_without_the_build_files_is_an_error(tmp_path):
    with pytest.raises(VMError, match="cannot read"):
        image.cache_key(provision_dir=str(tmp_path))


def test_mirror_from_deb822_and_one_line_sources():
    deb822 = ("Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
              "URIs: http://deb.debian.org/debian\nSuites: bookworm\n\n"
              "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n")
    assert image.mirror_from_apt_sources(["URIs: http://deb.debian.org/debian-security\n", deb822]) == \
        "http://deb.debian.org/debian"
    oneline = "deb [arch=amd64] https://mirror.example/debian/ bookworm main\n"
    assert image.mirror_from_apt_sources([oneline]) == "https://mirror.example/debian"
    assert image.mirror_from_apt_sources(["deb https://packages.cloud.google.com/apt x main\n"]) == \
        image.DEFAULT_MIRROR


def test_default_cache_dir_follows_hostbridge_home(monkeypatch, tmp_path):
    monkeypatch.delenv("HOSTBRIDGE_IMAGE_CACHE", raising=False)
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path))
    assert image.default_cache_dir() == str(tmp_path / "cache" / "images")


def image_parts(kernel=None, initrd=None):
    """{name: bytes} of a small image that passes image.check_parts (a fake kernel, a real
    gzip'd newc initrd), unless ``kernel``/``initrd`` replace a part (the manifest still
    describes the given bytes)."""
    if kernel is None:
        kernel = b"\x7fELF" + b"\0" * (image.MIN_KERNEL + 60)
    if initrd is None:
        raw = io.BytesIO()
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            w = cpio.Writer(gz)
            w.add("init", 0o100755, os.urandom(image.MIN_INITRD + 1000))
            w.close()
        initrd = raw.getvalue()
    parts = {"kernel": kernel, "initrd.img": initrd}
    manifest = {"kernel_release": "6.1", "parts": {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                                                   for n, d in parts.items()}}
    parts["manifest.json"] = json.dumps(manifest).encode()
    return parts


def make_image_tar(path, **parts):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in list(image_parts(**parts).items()) + [("../evil", b"x")]:
            info = tarfile.TarInfo("image/" + name if name != "../evil" else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_fetch_verifies_and_caches_a_published_image(tmp_path):
    tar = str(tmp_path / "image.tar.gz")
    digest = make_image_tar(tar)
    cache = str(tmp_path / "cache")
    img = image.fetch("file://" + tar, digest, cache)
    assert img.manifest["kernel_release"] == "6.1"
    assert sorted(os.listdir(img.dir)) == sorted(image.IMAGE_FILES + (image.CHECKED_STAMP,))
    assert not os.path.exists(os.path.join(cache, "evil"))
    os.remove(tar)  # cached: the URL is not read again
    assert image.fetch("file://" + tar, digest, cache) == img


def test_fetch_over_http_from_127_0_0_1(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy from the environment must not see this
    tar = str(tmp_path / "image.tar.gz")
    digest = make_image_tar(tar)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = "http://127.0.0.1:%d/" % srv.server_address[1]
        img = image.fetch(base + "image.tar.gz", digest, str(tmp_path / "cache"))
        assert img.manifest["kernel_release"] == "6.1"
        with pytest.raises(VMError, match="cannot download.*404"):
            image.fetch(base + "missing.tar.gz", "11" * 32, str(tmp_path / "cache"))
    finally:
        srv.shutdown()


def test_fetch_refuses_a_wrong_checksum(tmp_path):
    tar = str(tmp_path / "image.tar.gz")
    make_image_tar(tar)
    cache = tmp_path / "cache"
    with pytest.raises(VMError, match="expected 00"):
        image.fetch("file://" + tar, "00" * 32, str(cache))
    assert [p for p in os.listdir(cache) if not p.endswith(".lock")] == []


def test_fetch_of_a_missing_url_is_a_clear_error(tmp_path):
    with pytest.raises(VMError, match="cannot download"):
        image.fetch("file://" + str(tmp_path / "nope.tar"), "00" * 32, str(tmp_path / "c"))


@pytest.mark.parametrize("parts, why", [
    ({"initrd": b"\x1f\x8b" + b"\0" * 18}, "truncated"),  # the 20-byte initrd of the issue
    ({"initrd": b"\0" * (2 << 20)}, "not a newc"),
    ({"kernel": b"MZ" + b"\0" * (2 << 20)}, "not a kernel"),
    ({"kernel": b"\x7fELF"}, "not a kernel"),
])
def test_a_published_image_with_a_bad_part_is_refused_and_not_cached(tmp_path, parts, why):
    tar = str(tmp_path / "image.tar.gz")
    digest = make_image_tar(tar, **parts)
    cache = tmp_path / "c"
    with pytest.raises(VMError, match=why):
        image.fetch("file://" + tar, digest, str(cache))
    assert [p for p in os.listdir(cache) if not p.endswith(".lock")] == []


def test_prune_keeps_the_images_in_use(tmp_path):
    cache = str(tmp_path / "cache")
    tar = str(tmp_path / "a.tar.gz")
    used = image.fetch("file://" + tar, make_image_tar(tar), cache)
    old = os.path.join(cache, "amd64-bookworm-0000000000000000")
    os.makedirs(old)
    assert image.prune([used.dir], cache) == [old]
    assert os.path.isdir(used.dir) and not os.path.exists(old)


def test_debian_arch_follows_the_host():
    assert image.debian_arch("x86_64") == "amd64"
    assert image.debian_arch("aarch64") == image.debian_arch("arm64") == "arm64"


def test_cached_answers_only_for_an_intact_image(tmp_path):
    cache = tmp_path / "c"
    tar = str(tmp_path / "image.tar.gz")
    digest = make_image_tar(tar)
    assert image.cached("file://" + tar, digest, str(cache)) is None  # not fetched yet: no download
    img = image.fetch("file://" + tar, digest, str(cache))
    assert image.cached("file://" + tar, digest, str(cache)) == img
    with open(img.initrd, "r+b") as f:
        f.truncate(20)
    assert image.cached("file://" + tar, digest, str(cache)) is None


def test_an_image_hashed_once_is_trusted_by_its_stamp_until_a_part_changes(tmp_path, monkeypatch):
    tar = str(tmp_path / "image.tar.gz")
    digest = make_image_tar(tar)
    cache = str(tmp_path / "c")
    img = image.fetch("file://" + tar, digest, cache)
    image._checked.clear()  # another process: only the stamp on disk remembers the full check
    hashed = []
    real = image.file_sha256
    monkeypatch.setattr(image, "file_sha256", lambda path: hashed.append(path) or real(path))
    assert image.cached("file://" + tar, digest, cache) == img
    assert hashed == []  # no part hashed again
    # A part changed in place, same size: its stamp differs, it is hashed, and refused.
    st = os.stat(img.initrd)
    with open(img.initrd, "r+b") as f:
        f.seek(st.st_size - 1)
        last = f.read(1)
        f.seek(st.st_size - 1)
        f.write(b"\x01" if last != b"\x01" else b"\x02")
    assert os.path.getsize(img.initrd) == st.st_size
    image._checked.clear()
    assert image.cached("file://" + tar, digest, cache) is None
    assert hashed


def test_boot_initrd_is_the_initrd_unpacked_once_beside_it(tmp_path):
    tar = str(tmp_path / "image.tar.gz")
    img = image.fetch("file://" + tar, make_image_tar(tar), str(tmp_path / "c"))
    path = image.boot_initrd(img)
    with gzip.open(img.initrd) as f:
        plain = f.read()
    assert path == os.path.join(img.dir, image.BOOT_INITRD)
    with open(path, "rb") as f:
        assert f.read() == plain
    assert plain[:6] == image.NEWC_MAGIC
    stamp = os.stat(path).st_mtime_ns
    assert image.boot_initrd(img) == path and os.stat(path).st_mtime_ns == stamp  # made once
    assert image.load(img.dir) == img  # the copy is no part the checks look at
    with open(path, "r+b") as f:  # a copy cut short (a crash while it was written) is made again
        f.truncate(1000)
    assert image.boot_initrd(img) == path and os.path.getsize(path) == len(plain)
    assert [n for n in os.listdir(img.dir) if ".tmp-" in n] == []


def test_boot_initrd_falls_back_to_the_gzip_initrd_when_no_copy_can_be_written(tmp_path):
    tar = str(tmp_path / "image.tar.gz")
    img = image.fetch("file://" + tar, make_image_tar(tar), str(tmp_path / "c"))
    os.mkdir(os.path.join(img.dir, image.BOOT_INITRD))  # in the way: the copy cannot be renamed there
    assert image.boot_initrd(img) == img.initrd
    assert [n for n in os.listdir(img.dir) if ".tmp-" in n] == []


def test_a_plain_newc_initrd_is_booted_as_it_is(tmp_path):
    parts = image_parts()
    with gzip.open(io.BytesIO(parts["initrd.img"])) as f:
        plain = f.read()
    tar = str(tmp_path / "image.tar.gz")
    img = image.fetch("file://" + tar, make_image_tar(tar, initrd=plain), str(tmp_path / "c"))
    assert image.boot_initrd(img) == img.initrd
    assert not os.path.exists(os.path.join(img.dir, image.BOOT_INITRD))
