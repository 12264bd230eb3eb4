"""OpenPGP: the shipped Debian keys parse as gpg reads them; cleartext signatures verify or are refused."""

import glob
import os
import shutil
import subprocess
import time

import pytest

from hostbridge.errors import SignatureError
from hostbridge.machines.debian import keys as shipped
from hostbridge.machines.debian.openpgp import Keyring, PGPFormatError, parse_keys, split_cleartext, verify_cleartext
from tests.support.pgp import SigningKey, subpacket

KEYS_DIR = os.path.dirname(shipped.__file__)
needs_gpg = pytest.mark.skipif(not shutil.which("gpg"),
                               reason="gpg (the oracle) is not installed: install-deps.sh --test")


def _gpg_fingerprints(path, home):
    out = subprocess.run(["gpg", "--batch", "--no-default-keyring", "--show-keys", "--with-colons", path],
                         check=True, capture_output=True, text=True, env=dict(os.environ, GNUPGHOME=home), timeout=60)
    return [line.split(":")[9] for line in out.stdout.splitlines() if line.startswith("fpr:")]


@needs_gpg
@pytest.mark.parametrize("name", shipped.KEY_FILES)
def test_shipped_key_fingerprints_are_gpgs(name, tmp_path):
    path = os.path.join(KEYS_DIR, name)
    with open(path, "rb") as f:
        keys = parse_keys(f.read())
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    assert [k.fingerprint for k in keys] == _gpg_fingerprints(path, str(home))
    assert all(k.can_sign and not k.revoked and k.expires and k.expires > time.time() for k in keys)


def test_every_shipped_key_file_is_listed_and_loads():
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(KEYS_DIR, "*.gpg"))) == sorted(shipped.KEY_FILES)
    fprs = shipped.default_keyring().fingerprints
    # bookworm archive signing subkey, bookworm security subkey, bookworm stable release key
    for fpr in ("4CB50190207B4758A3F73A796ED0E7B82643E131", "B0CAB9266E8C3929798B3EEEBDE6D2B9216EC7A8",
                "4D64FEC119C2029067D6E791F8D2585B8783D481", "B8E5F13176D2A7A75220028078DBA3BC47EF2265"):
        assert fpr in fprs


@pytest.mark.skipif(not glob.glob("/etc/apt/trusted.gpg.d/debian-archive-*.asc"),
                    reason="no armored Debian keys on this host")
def test_armored_keys_parse_as_their_binary_twins():
    for asc in sorted(glob.glob("/etc/apt/trusted.gpg.d/debian-archive-*.asc")):
        gpg = os.path.join("/usr/share/keyrings", os.path.basename(asc)[:-4] + ".gpg")
        if not os.path.exists(gpg):
            continue
        a, b = Keyring.from_files([asc]), Keyring.from_files([gpg])
        assert a.fingerprints and a.fingerprints == b.fingerprints


def test_garbage_is_not_a_keyring():
    with pytest.raises(PGPFormatError):
        parse_keys(b"hello")
    with pytest.raises(PGPFormatError):
        parse_keys(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!\n-----END PGP PUBLIC KEY BLOCK-----\n")


def test_cleartext_canonicalisation():
    msg = (b"-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA512\r\n\r\n"
           b"Origin: Debian  \t\r\n- -----BEGIN PGP SIGNATURE-----\r\n- - x\r\n\r\nlast\r\n"
           b"-----BEGIN PGP SIGNATURE-----\r\n\r\nAAAA\r\n-----END PGP SIGNATURE-----\r\n")
    lines, sig = split_cleartext(msg)
    # dash-unescaped, trailing blanks gone, CRLF read as LF; the final line break is not signed
    assert lines == [b"Origin: Debian", b"-----BEGIN PGP SIGNATURE-----", b"- x", b"", b"last"]
    assert sig == b"\0\0\0"


@pytest.mark.parametrize("msg", [
    b"Origin: Debian\n",  # not signed at all
    b"junk\n-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n"
    b"-----END PGP SIGNATURE-----\n",  # text before the message
    b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n"
    b"-----END PGP SIGNATURE-----\nOrigin: evil\n",  # text after it
    b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n-x\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n"
    b"-----END PGP SIGNATURE-----\n",  # an unescaped dash
    b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n",  # no signature
])
def test_malformed_messages_are_refused(msg):
    with pytest.raises(SignatureError):
        verify_cleartext(msg, shipped.default_keyring())


TEXT = "Origin: Test\nSuite: bookworm\n-dash line\ntrailing   \n\nend\n"
CANON = "Origin: Test\nSuite: bookworm\n-dash line\ntrailing\n\nend\n"


def test_own_key_signature_verifies_and_returns_only_the_signed_text():
    key = SigningKey()
    ring = Keyring.from_bytes(key.public_bytes())
    assert ring.fingerprints == [key.fingerprint]
    assert verify_cleartext(key.clearsign(TEXT), ring) == CANON


def test_signature_by_a_key_not_in_the_keyring_is_refused():
    key = SigningKey()
    with pytest.raises(SignatureError, match="unknown key %s" % key.fingerprint):
        verify_cleartext(key.clearsign(TEXT), shipped.default_keyring())


def test_altered_text_is_refused():
    key = SigningKey()
    signed = key.clearsign(TEXT).replace(b"Suite: bookworm", b"Suite: bookwork")
    with pytest.raises(SignatureError, match="BAD signature"):
        verify_cleartext(signed, Keyring.from_bytes(key.public_bytes()))


@pytest.mark.parametrize("kw,match", [
    ({"hash_algo": 2}, "refused hash"),  # SHA-1
    ({"created": time.time() + 10 * 86400}, "future"),
    ({"created": time.time() - 7200, "extra_hashed": subpacket(3, (3600).to_bytes(4, "big"))}, "expired"),
    ({"extra_hashed": subpacket(100, b"x", critical=True)}, "BAD signature"),  # unknown critical subpacket
    ({"sig_type": 0x00}, "not a text signature"),
])
def test_unacceptable_signatures_are_refused(kw, match):
    key = SigningKey()
    with pytest.raises(SignatureError, match=match):
        verify_cleartext(key.clearsign(TEXT, **kw), Keyring.from_bytes(key.public_bytes()))


def test_expired_key_is_refused():
    key = SigningKey(created=time.time() - 3 * 86400, expires_after=86400)
    with pytest.raises(SignatureError, match="expired"):
        verify_cleartext(key.clearsign(TEXT), Keyring.from_bytes(key.public_bytes()))


def test_self_signature_that_does_not_verify_drops_the_key():
    key = SigningKey()
    blob = bytearray(key.public_bytes())
    blob[-5] ^= 1  # inside the self-signature's EdDSA values
    assert parse_keys(bytes(blob)) == []


@needs_gpg
def test_gpg_clearsigned_message_verifies(tmp_path):
    """gpg as the oracle for the cleartext format: its canonicalisation must be ours."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    gpg = ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
    try:
        subprocess.run(gpg + ["--quick-gen-key", "hb-test <t@invalid>", "ed25519", "sign", "1d"], check=True, env=env,
                       capture_output=True, timeout=60)
        src = tmp_path / "msg"
        src.write_bytes(TEXT.replace("\n", "\r\n", 2).encode())
        subprocess.run(gpg + ["--digest-algo", "SHA512", "--clearsign", "-o", str(tmp_path / "msg.asc"), str(src)],
                       check=True, env=env, capture_output=True, timeout=60)
        pub = subprocess.run(gpg + ["--export"], check=True, env=env, capture_output=True, timeout=60).stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], env=env, capture_output=True)
    assert verify_cleartext((tmp_path / "msg.asc").read_bytes(), Keyring.from_bytes(pub)) == CANON
    with pytest.raises(SignatureError):
        verify_cleartext((tmp_path / "msg.asc").read_bytes(), shipped.default_keyring())
