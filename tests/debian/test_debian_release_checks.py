"""Release-level checks with an archive the test signs itself (a key made with ``cryptography``):
Valid-Until, a Release for another suite, a date in the future, a replayed older InRelease.

Debian's own files cannot be re-dated, so here the test is the archive's owner; the verifier and
the client are the real ones, served over HTTP on 127.0.0.1.
"""

import email.utils
import hashlib
import lzma
import os
import time

import pytest
import requests

from hostbridge.errors import ArchiveError, SignatureError
from hostbridge.machines.debian.archive import Archive
from hostbridge.machines.debian.openpgp import Keyring
from tests.support.debmirror import LocalMirror
from tests.support.pgp import SigningKey

DEB = b"!<arch>\n" + b"not really a deb, but hashed all the same\n" * 10


def _packages():
    return ("Package: hello\nVersion: 1.0-1\nArchitecture: amd64\nFilename: pool/main/h/hello/hello_1.0-1_amd64.deb\n"
            "Size: %d\nSHA256: %s\nDepends: libhello (>= 1)\n\n"
            "Package: libhello\nVersion: 1.2\nArchitecture: amd64\nFilename: pool/main/h/hello/libhello_1.2_amd64.deb\n"
            "Size: %d\nSHA256: %s\n" % (len(DEB), hashlib.sha256(DEB).hexdigest(), len(DEB),
                                        hashlib.sha256(DEB).hexdigest())).encode()


def _publish(root, key, suite="test", claimed_suite=None, date=None, valid_until=None):
    """Lay out (or replace) a signed suite under ``root``."""
    xz = lzma.compress(_packages())
    dists = os.path.join(root, "debian", "dists", suite)
    os.makedirs(os.path.join(dists, "main", "binary-amd64"), exist_ok=True)
    with open(os.path.join(dists, "main", "binary-amd64", "Packages.xz"), "wb") as f:
        f.write(xz)
    claimed = claimed_suite or suite
    fields = ["Origin: hostbridge-test", "Suite: %s" % claimed, "Codename: %s" % claimed,
              "Date: %s" % email.utils.formatdate(date if date is not None else time.time() - 3600, usegmt=True)]
    if valid_until is not None:
        fields.append("Valid-Until: %s" % email.utils.formatdate(valid_until, usegmt=True))
    fields += ["Architectures: amd64", "Components: main", "SHA256:",
               " %s %d main/binary-amd64/Packages.xz" % (hashlib.sha256(xz).hexdigest(), len(xz))]
    with open(os.path.join(dists, "InRelease"), "wb") as f:
        f.write(key.clearsign("\n".join(fields) + "\n"))
    for name in ("hello_1.0-1_amd64.deb", "libhello_1.2_amd64.deb"):
        pool = os.path.join(root, "debian", "pool", "main", "h", "hello")
        os.makedirs(pool, exist_ok=True)
        with open(os.path.join(pool, name), "wb") as f:
            f.write(DEB)


@pytest.fixture
def signed(tmp_path):
    key = SigningKey()
    root = str(tmp_path / "mirror")
    with LocalMirror(root) as mirror:
        session = requests.Session()
        session.trust_env = False  # 127.0.0.1 directly, whatever the proxy settings

        def archive(suite="test", **kw):
            return Archive(mirror.url, suite, "amd64", str(tmp_path / "cache"), keyring=Keyring.from_bytes(
                key.public_bytes()), session=session, **kw)

        yield key, root, archive


def test_own_signed_archive_end_to_end(signed):
    key, root, archive = signed
    _publish(root, key, valid_until=time.time() + 86400)
    a = archive()
    paths = a.fetch(a.closure(["hello"]))
    assert set(paths) == {"hello", "libhello"}
    with pytest.raises(SignatureError, match="unknown key"):
        Archive(a.sources[0].mirror, "test", "amd64", a.cache_dir + "-2", session=a.http.session).index()


def test_expired_release_is_refused(signed):
    key, root, archive = signed
    _publish(root, key, date=time.time() - 10 * 86400, valid_until=time.time() - 86400)
    with pytest.raises(ArchiveError, match="InRelease expired on"):
        archive().index()


def test_release_for_another_suite_is_refused(signed):
    key, root, archive = signed
    _publish(root, key, suite="bookworm-security", claimed_suite="bookworm")  # a real file, the wrong place
    with pytest.raises(ArchiveError, match="is for suite bookworm .*not bookworm-security"):
        archive("bookworm-security").index()


def test_release_dated_in_the_future_is_refused(signed):
    key, root, archive = signed
    _publish(root, key, date=time.time() + 3 * 86400)
    with pytest.raises(ArchiveError, match="dated in the future"):
        archive().index()


def test_replayed_older_release_is_refused(signed):
    key, root, archive = signed
    _publish(root, key, date=time.time() - 3600)
    archive().index()
    _publish(root, key, date=time.time() - 7200)  # validly signed, but older than what we have seen
    os.utime(os.path.join(root, "debian/dists/test/InRelease"), (time.time() + 5, time.time() + 5))
    with pytest.raises(SignatureError, match="older .* than the one already verified"):
        archive(max_age=0).index()
    _publish(root, key, date=time.time() - 60)  # a newer one is taken
    os.utime(os.path.join(root, "debian/dists/test/InRelease"), (time.time() + 10, time.time() + 10))
    assert "hello" in archive(max_age=0).index()
