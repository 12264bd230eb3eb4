"""Debian's real InRelease files against the shipped keys: accepted as they are, refused when
a byte of the text or of a signature changes, or when signed by a key not in the keyring."""

import os

import pytest

from hostbridge.errors import SignatureError
from hostbridge.machines.debian import keys as shipped
from hostbridge.machines.debian.openpgp import TAG_SIGNATURE, Keyring, packets, split_cleartext, verify_cleartext
from tests.support import debmirror
from tests.support.pgp import SigningKey, armor, packet


@pytest.fixture(scope="module")
def inrelease():
    import requests

    try:
        tree = debmirror.mirror_tree()
    except (requests.ConnectionError, requests.Timeout) as e:
        pytest.skip("cannot download Debian's files once (%s)" % e)
    with open(os.path.join(tree, "debian/dists/bookworm/InRelease"), "rb") as f:
        return f.read()


def _one_key(name):
    with open(os.path.join(os.path.dirname(shipped.__file__), name), "rb") as f:
        return Keyring.from_bytes(f.read())


def test_real_inrelease_verifies_and_only_its_signed_text_is_returned(inrelease):
    text = verify_cleartext(inrelease, shipped.default_keyring())
    assert text.startswith("Origin: Debian\n") and "\nCodename: bookworm\n" in text
    assert "PGP" not in text and text.endswith("\n")


@pytest.mark.parametrize("name", ["debian-archive-bookworm-automatic.gpg",  # RSA, by its subkey
                                  "debian-archive-bookworm-stable.gpg",  # Ed25519 (EdDSA), primary key
                                  "debian-archive-trixie-automatic.gpg"])  # the next release's key signs too
def test_each_algorithm_alone_verifies_real_data(inrelease, name):
    assert verify_cleartext(inrelease, _one_key(name)).startswith("Origin: Debian")


def test_a_key_that_did_not_sign_is_not_enough(inrelease):
    with pytest.raises(SignatureError, match="unknown key"):
        verify_cleartext(inrelease, _one_key("debian-archive-bookworm-security-automatic.gpg"))


def test_one_byte_changed_in_the_signed_text_is_refused(inrelease):
    i = inrelease.index(b"Codename: bookworm") + len(b"Codename: ")
    tampered = inrelease[:i] + b"c" + inrelease[i + 1:]
    with pytest.raises(SignatureError, match="BAD signature"):
        verify_cleartext(tampered, shipped.default_keyring())


def _rebuild(inrelease, sigdata):
    head = inrelease[:inrelease.index(b"-----BEGIN PGP SIGNATURE-----")]
    return head + armor(sigdata)


@pytest.mark.parametrize("which", [0, -1])  # an RSA signature, the Ed25519 one
def test_one_byte_changed_in_a_signature_is_refused(inrelease, which):
    _, sigdata = split_cleartext(inrelease)
    sigs = [body for tag, body in packets(sigdata) if tag == TAG_SIGNATURE]
    assert len(sigs) >= 2
    body = bytearray(sigs[which])
    body[-10] ^= 0x01  # inside the signature value
    sigs[which] = bytes(body)
    tampered = _rebuild(inrelease, b"".join(packet(TAG_SIGNATURE, s) for s in sigs))
    assert verify_cleartext(_rebuild(inrelease, sigdata), shipped.default_keyring())  # the rebuild itself is fine
    with pytest.raises(SignatureError, match="BAD signature"):
        verify_cleartext(tampered, shipped.default_keyring())


def test_same_text_signed_by_a_key_not_in_the_keyring_is_refused(inrelease):
    text = verify_cleartext(inrelease, shipped.default_keyring())
    forged = SigningKey().clearsign(text)
    with pytest.raises(SignatureError, match="unknown key"):
        verify_cleartext(forged, shipped.default_keyring())


def test_debian_signatures_plus_an_unknown_one_still_verify(inrelease):
    """Debian signs with several keys; one unknown signature among good ones is ignored, as gpgv does."""
    _, sigdata = split_cleartext(inrelease)
    text = verify_cleartext(inrelease, shipped.default_keyring())
    lines = text.split("\n")[:-1]
    extra = SigningKey().sign(0x01, "\r\n".join(lines).encode())
    both = _rebuild(inrelease, sigdata + packet(TAG_SIGNATURE, extra))
    assert verify_cleartext(both, shipped.default_keyring()) == text


def test_without_signatures_is_refused(inrelease):
    with pytest.raises(SignatureError):
        verify_cleartext(inrelease[:inrelease.index(b"-----BEGIN PGP SIGNATURE-----")], shipped.default_keyring())
