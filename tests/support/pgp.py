"""Make OpenPGP keys and cleartext signatures with ``cryptography``, for tests of the verifier.

Not a mock: the packets are real RFC 4880 v4 packets (Ed25519, legacy EdDSA algorithm 22, as
Debian's stable-release keys use); gpg verifies them too. Knobs let a test make what an attacker
or a broken signer would (an expired signature, a SHA-1 hash, an unknown critical subpacket).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hostbridge.machines.debian.openpgp import crc24

ED25519_OID = bytes.fromhex("2b06010401da470f01")


def packet(tag, body):
    return bytes([0xC0 | tag, 255]) + struct.pack(">I", len(body)) + body


def mpi(raw):
    raw = raw.lstrip(b"\0")
    return struct.pack(">H", int.from_bytes(raw, "big").bit_length()) + raw


def subpacket(kind, body, critical=False):
    return bytes([len(body) + 1, kind | (0x80 if critical else 0)]) + body


class SigningKey:
    """An Ed25519 signing key with one user ID, self-signed.

    Args:
        created: key creation time (default: a day ago).
        expires_after: key expiry, seconds after creation (0: never).
    """

    def __init__(self, created=None, expires_after=0, uid=b"hostbridge test key <test@invalid>"):
        self.priv = Ed25519PrivateKey.generate()
        self.created = int(created if created is not None else time.time() - 86400)
        pub = self.priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.body = (b"\x04" + struct.pack(">I", self.created) + bytes([22, len(ED25519_OID)]) + ED25519_OID
                     + mpi(b"\x40" + pub))
        self.fingerprint = hashlib.sha1(self._material()).hexdigest().upper()
        self.uid = uid
        extra = subpacket(27, b"\x03")
        if expires_after:
            extra += subpacket(9, struct.pack(">I", expires_after))
        self.self_sig = self.sign(0x13, self._material() + b"\xb4" + struct.pack(">I", len(uid)) + uid,
                                  created=self.created, extra_hashed=extra)

    def _material(self):
        return b"\x99" + struct.pack(">H", len(self.body)) + self.body

    def public_bytes(self):
        """The transferable public key (binary keyring format)."""
        return packet(6, self.body) + packet(13, self.uid) + packet(2, self.self_sig)

    def sign(self, sig_type, data, created=None, hash_algo=8, extra_hashed=b""):
        """A v4 signature packet body over ``data``."""
        created = int(time.time() if created is None else created)
        hashed_sub = (subpacket(2, struct.pack(">I", created))
                      + subpacket(33, b"\x04" + bytes.fromhex(self.fingerprint)) + extra_hashed)
        hashed = bytes([4, sig_type, 22, hash_algo]) + struct.pack(">H", len(hashed_sub)) + hashed_sub
        name = {2: "sha1", 8: "sha256", 10: "sha512"}[hash_algo]
        digest = hashlib.new(name, data + hashed + b"\x04\xff" + struct.pack(">I", len(hashed))).digest()
        raw = self.priv.sign(digest)
        unhashed = subpacket(16, bytes.fromhex(self.fingerprint[-16:]))
        return hashed + struct.pack(">H", len(unhashed)) + unhashed + digest[:2] + mpi(raw[:32]) + mpi(raw[32:])

    def clearsign(self, text, sig_type=0x01, **kw):
        """``text`` (str, lines ending in LF) as a cleartext-signed message (bytes)."""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        signed = "\r\n".join(line.rstrip(" \t") for line in lines).encode()
        sig = packet(2, self.sign(sig_type, signed, **kw))
        body = "".join(("- " + line if line.startswith("-") else line) + "\n" for line in lines)
        return ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + body).encode() + armor(sig)


def armor(data, label="PGP SIGNATURE"):
    """ASCII armor (with its CRC-24 line)."""
    b64 = base64.b64encode(data).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    crc_line = "=" + base64.b64encode(crc24(data).to_bytes(3, "big")).decode()
    return ("-----BEGIN %s-----\n\n%s\n%s\n-----END %s-----\n" % (label, "\n".join(lines), crc_line, label)).encode()
