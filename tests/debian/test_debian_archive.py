"""The archive client against a local mirror on 127.0.0.1 serving Debian's real signed files.

Every failure a mirror can serve is injected by the server (tests/support/debmirror.py): a dropped
connection, a flipped byte, a 404, a mirror that is down.
"""

import hashlib
import os
import shutil
import subprocess

import pytest

from hostbridge.errors import ArchiveError, ArchiveUnreachable, SignatureError
from hostbridge.machines.debian.archive import Archive, fetch_packages
from hostbridge.machines.debian.control import compare_versions
from tests.support import debmirror

CLOSURE = {"tini", "libc6", "libgcc-s1", "gcc-12-base", "busybox-static"}


@pytest.fixture(scope="module")
def tree():
    import requests

    try:
        return debmirror.mirror_tree()
    except (requests.ConnectionError, requests.Timeout) as e:
        pytest.skip("cannot download Debian's files once for the local mirror (%s)" % e)


@pytest.fixture
def mirror(tree):
    with debmirror.LocalMirror(tree) as m:
        yield m


@pytest.fixture(scope="module")
def parsed_indexes(tree, tmp_path_factory):
    """Verified, parsed indexes made once: copied into a test's cache, they spare it the ~3 s parse."""
    cache = tmp_path_factory.mktemp("warm")
    with debmirror.LocalMirror(tree) as m:
        Archive(m.url, "bookworm", "amd64", str(cache), extra_sources=[(m.url, "bookworm-updates")],
                session=_direct()).index()
    return str(cache / "indexes")


def _direct():
    """A session that ignores proxy settings: 127.0.0.1 is reached directly."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def _archive(mirror, cache, indexes=None, **kw):
    """An Archive on the local mirror; ``indexes``: start with these verified index files cached."""
    kw.setdefault("extra_sources", [(mirror.url, "bookworm-updates")])
    kw.setdefault("session", _direct())
    if indexes and not os.path.exists(os.path.join(str(cache), "indexes")):
        shutil.copytree(indexes, os.path.join(str(cache), "indexes"))
    return Archive(mirror.url, "bookworm", "amd64", str(cache), **kw)


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _deb_path(pkg):
    return "/debian/" + pkg.filename


def test_index_closure_fetch_all_verified(mirror, tmp_path):
    archive = _archive(mirror, tmp_path / "cache")
    pkgs = archive.closure(["tini", "busybox-static"])
    assert {p.name for p in pkgs} == CLOSURE
    seen = []
    paths = archive.fetch(pkgs, progress=lambda done, total, name: seen.append((done, total, name)))
    assert set(paths) == CLOSURE
    for pkg in pkgs:
        path = paths[pkg.name]
        assert os.path.isabs(path) and path.startswith(str(tmp_path / "cache"))
        assert os.path.getsize(path) == pkg.size and _sha256(path) == pkg.sha256
    total = sum(p.size for p in pkgs)
    assert seen[-1][:2] == (total, total)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    assert not [n for n in os.listdir(tmp_path / "cache" / "debs") if n.endswith(".part")]
    # bookworm's index was found after by-hash 404'd; bookworm-updates' through by-hash alone
    assert any("/dists/bookworm/main/binary-amd64/by-hash/" in p for p in mirror.paths("/debian/dists/bookworm/"))
    assert mirror.paths("/debian/dists/bookworm/main/binary-amd64/Packages.xz")
    assert not mirror.paths("/debian/dists/bookworm-updates/main/binary-amd64/Packages.xz")


def test_extra_suite_merged_highest_version_wins(mirror, tmp_path, parsed_indexes):
    main_only = _archive(mirror, tmp_path / "a", parsed_indexes, extra_sources=[]).index()
    merged = _archive(mirror, tmp_path / "b", parsed_indexes).index()
    assert len(merged) == len(main_only)
    assert compare_versions(merged["tzdata"].version, main_only["tzdata"].version) >= 0
    for name in ("libc6", "tzdata", "busybox-static"):
        assert all(compare_versions(merged[name].version, idx[name].version) >= 0 for idx in (main_only,))


def test_warm_cache_makes_no_request_and_304_when_asked(mirror, tmp_path, parsed_indexes):
    cache = tmp_path / "cache"
    archive = _archive(mirror, cache, parsed_indexes)
    archive.fetch(archive.closure(["tini"]))
    before = len(mirror.requests)
    again = _archive(mirror, cache)
    paths = again.fetch(again.closure(["tini"]))
    assert len(paths) == 4 and len(mirror.requests) == before  # no network I/O at all
    # max_age=0: the mirror is asked, answers 304, nothing else is downloaded
    asked = _archive(mirror, cache, max_age=0)
    asked.fetch(asked.closure(["tini"]))
    new = [p for p, _ in mirror.requests[before:]]
    assert new == ["/debian/dists/bookworm/InRelease", "/debian/dists/bookworm-updates/InRelease"]


def test_dropped_connection_is_resumed_with_range(mirror, tmp_path, parsed_indexes):
    archive = _archive(mirror, tmp_path / "cache", parsed_indexes)
    libc6 = archive.index()["libc6"]
    mirror.faults[_deb_path(libc6)] = ("drop", 100000)
    paths = archive.fetch([libc6])
    assert _sha256(paths["libc6"]) == libc6.sha256
    ranges = [r for p, r in mirror.requests if p == _deb_path(libc6)]
    # the second request resumes where the .part ends (the last chunk before the drop may be lost)
    assert len(ranges) == 2 and ranges[0] is None
    assert ranges[1].startswith("bytes=") and 0 < int(ranges[1][6:-1]) <= 100000


def test_interrupted_download_leaves_a_part_the_next_run_resumes(mirror, tmp_path, parsed_indexes):
    archive = _archive(mirror, tmp_path / "cache", parsed_indexes)
    libc6 = archive.index()["libc6"]

    def ctrl_c(done, total, name):
        if done > 200000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        archive.fetch([libc6], progress=ctrl_c)
    final = tmp_path / "cache" / "debs" / ("%s.deb" % libc6.sha256)
    part = str(final) + ".part"
    assert not final.exists() and 200000 < os.path.getsize(part) < libc6.size
    have = os.path.getsize(part)
    paths = _archive(mirror, tmp_path / "cache").fetch([libc6])
    assert paths["libc6"] == str(final) and _sha256(final) == libc6.sha256 and not os.path.exists(part)
    assert [r for p, r in mirror.requests if p == _deb_path(libc6)][-1] == "bytes=%d-" % have


def test_two_fetches_into_one_cache_take_turns(mirror, tmp_path, parsed_indexes):
    """Two processes (here: two threads, each with its own flock) fetching one package: one download."""
    import threading

    archives = [_archive(mirror, tmp_path / "cache", parsed_indexes) for _ in range(2)]
    libc6 = archives[0].index()["libc6"]
    results, errors = [], []

    def run(archive):
        try:
            results.append(archive.fetch([libc6]))
        except Exception as e:  # handed back to the test thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(a,)) for a in archives]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 2 and results[0] == results[1]
    assert len(mirror.paths(_deb_path(libc6))) == 1
    assert _sha256(results[0]["libc6"]) == libc6.sha256


def test_deb_with_a_wrong_hash_is_refused_and_nothing_cached(mirror, tmp_path, parsed_indexes):
    archive = _archive(mirror, tmp_path / "cache", parsed_indexes)
    pkg = archive.index()["busybox-static"]
    mirror.faults[_deb_path(pkg)] = ("flip", 5000)
    with pytest.raises(ArchiveError, match="sha256") as err:
        archive.fetch([pkg])
    assert err.value.url == mirror.url + "/" + pkg.filename and err.value.url in str(err.value)
    assert os.listdir(tmp_path / "cache" / "debs") == []
    # the mirror mends: the next fetch gets the real file
    del mirror.faults[_deb_path(pkg)]
    assert _sha256(archive.fetch([pkg])["busybox-static"]) == pkg.sha256


def test_404_names_the_url(mirror, tmp_path, parsed_indexes):
    archive = _archive(mirror, tmp_path / "cache", parsed_indexes)
    pkg = archive.index()["netbase"]
    mirror.faults[_deb_path(pkg)] = "404"
    with pytest.raises(ArchiveError, match=r"netbase.*: HTTP 404"):
        archive.fetch([pkg])
    with pytest.raises(ArchiveError, match=r"/dists/trixie/InRelease: HTTP 404"):
        Archive(mirror.url, "trixie", "amd64", str(tmp_path / "c2"), session=_direct()).index()


def test_tampered_inrelease_is_refused_and_not_cached(mirror, tmp_path):
    mirror.faults["/debian/dists/bookworm/InRelease"] = ("flip", 300)
    with pytest.raises(SignatureError, match="InRelease: BAD signature"):
        _archive(mirror, tmp_path / "cache").index()
    assert not os.path.exists(tmp_path / "cache" / "releases")


def test_tampered_index_is_refused(mirror, tmp_path):
    mirror.faults["/debian/dists/bookworm/main/binary-amd64/Packages.xz"] = ("flip", 1000)
    with pytest.raises(ArchiveError, match="Packages.xz has sha256 .*, the signed index says"):
        _archive(mirror, tmp_path / "cache").index()
    assert os.listdir(tmp_path / "cache" / "indexes") == []


def test_xz_missing_on_the_mirror_falls_back_to_the_next_listed_index(mirror, tmp_path):
    """bookworm-updates lists Packages.xz and Packages: with the .xz gone, the plain one serves."""
    archive = Archive(mirror.url, "bookworm-updates", "amd64", str(tmp_path / "cache"), session=_direct())
    plain = "/debian/dists/bookworm-updates/main/binary-amd64/Packages"
    by_hash = os.path.join(mirror.root, "debian/dists/bookworm-updates/main/binary-amd64/by-hash/SHA256")
    for name in os.listdir(by_hash):
        mirror.faults["/debian/dists/bookworm-updates/main/binary-amd64/by-hash/SHA256/" + name] = "404"
    mirror.faults[plain] = "404"
    with pytest.raises(ArchiveError, match="Packages: HTTP 404"):
        archive.index()  # every listed index is gone: nothing to fall back to
    del mirror.faults[plain]
    assert "tzdata" in archive.index()
    assert mirror.requests[-1][0] == plain


def test_no_such_package(mirror, tmp_path, parsed_indexes):
    with pytest.raises(ArchiveError, match="no such package: no-such-thing"):
        _archive(mirror, tmp_path / "cache", parsed_indexes).closure(["no-such-thing"])


def test_mirror_down_with_a_warm_cache_works_offline(mirror, tmp_path, parsed_indexes):
    cache = tmp_path / "cache"
    archive = _archive(mirror, cache, parsed_indexes)
    want = archive.fetch(archive.closure(["tini"]))
    mirror.stop()
    offline = _archive(mirror, cache, max_age=0)
    assert offline.fetch(offline.closure(["tini"])) == want
    assert _archive(mirror, cache, offline=True).fetch(offline.closure(["tini"])) == want
    with pytest.raises(ArchiveUnreachable, match="cannot reach %s/dists/bookworm/InRelease" % mirror.url):
        _archive(mirror, cache, max_age=0, offline=False).index()
    with pytest.raises(ArchiveUnreachable, match="cannot reach"):
        _archive(mirror, tmp_path / "cold").index()
    # a package never fetched cannot come from nowhere
    with pytest.raises(ArchiveError, match="busybox-static"):
        offline.fetch([offline.index()["busybox-static"]])


def test_fetch_packages_wrapper(mirror, tmp_path, parsed_indexes):
    shutil.copytree(parsed_indexes, str(tmp_path / "cache" / "indexes"))
    paths = fetch_packages(["tini"], "amd64", mirror=mirror.url, cache_dir=str(tmp_path / "cache"),
                           extra_sources=[(mirror.url, "bookworm-updates")], exclude=["libgcc-s1"],
                           session=_direct())
    assert set(paths) == {"tini", "libc6"}
    assert all(os.path.isfile(p) for p in paths.values())


@pytest.mark.root
def test_disk_full_is_one_clear_error(mirror, tmp_path, parsed_indexes):
    archive = _archive(mirror, tmp_path / "cache", parsed_indexes)
    libc6 = archive.index()["libc6"]
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(small)], check=True)
    try:
        full = Archive(mirror.url, "bookworm", "amd64", str(small), max_age=0, session=_direct())
        full.release = archive.release  # only the .deb goes to the small disk
        full._index = archive.index()
        with pytest.raises(ArchiveError, match="disk full writing .*libc6"):
            full.fetch([libc6])
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_an_oversized_small_file_is_refused(mirror):
    from hostbridge.machines.debian.download import HTTP

    url = mirror.url + "/dists/bookworm/InRelease"
    status, body, _ = HTTP(_direct()).get(url)
    assert status == 200 and body.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    with pytest.raises(ArchiveError, match="InRelease is larger than 1000 bytes"):
        HTTP(_direct()).get(url, limit=1000)
