"""Just enough OpenPGP (RFC 4880 / RFC 9580) to check a Debian ``InRelease`` file.

Public keys are read from a binary keyring or an ASCII-armored block; a cleartext-signed message
is split, canonicalised and its v4 signatures checked (RSA, EdDSA/Ed25519; SHA-2 only) with
``cryptography``. ``verify_cleartext`` returns the signed text only: never what lies around it.
Subkeys count only through a binding signature by their primary key that verifies; expiry and
revocation are read from self-signatures that verify. A signing subkey's embedded back-signature
is not checked: the keyring is data shipped with hostbridge, not a key someone hands us.
Encryption, v5/v6 keys, DSA and ECDSA are not needed by Debian's archive keys and are not
implemented.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hostbridge.errors import SignatureError

# Packet tags.
TAG_SIGNATURE, TAG_PUBLIC_KEY, TAG_USER_ID, TAG_PUBLIC_SUBKEY = 2, 6, 13, 14
# Signature types.
SIG_TEXT, SIG_CERT_FIRST, SIG_CERT_LAST, SIG_SUBKEY_BINDING = 0x01, 0x10, 0x13, 0x18
SIG_KEY_REVOCATION, SIG_SUBKEY_REVOCATION = 0x20, 0x28
# Public-key algorithms.
ALGO_RSA = (1, 3)  # RSA (encrypt or sign), RSA sign-only
ALGO_EDDSA_LEGACY, ALGO_ED25519 = 22, 27
ED25519_OID = bytes.fromhex("2b06010401da470f01")  # 1.3.6.1.4.1.11591.15.1
# Hash algorithms accepted: SHA-2 only (SHA-1 and MD5 signatures are refused, as apt does).
HASHES = {8: ("sha256", hashes.SHA256), 9: ("sha384", hashes.SHA384), 10: ("sha512", hashes.SHA512),
          11: ("sha224", hashes.SHA224)}
# Subpackets.
SUB_CREATED, SUB_SIG_EXPIRES, SUB_KEY_EXPIRES, SUB_ISSUER, SUB_KEY_FLAGS, SUB_ISSUER_FPR = 2, 3, 9, 16, 27, 33
# Critical subpackets we may ignore: they do not change what a data or binding signature means.
_IGNORABLE_CRITICAL = {2, 3, 4, 7, 9, 11, 12, 16, 21, 22, 23, 25, 27, 30, 32, 33, 34, 39}
KEY_FLAG_SIGN = 0x02
# A signer's clock may run ahead of ours by this much (seconds) before a signature is "made in
# the future".
CLOCK_SKEW = 24 * 3600


class PGPFormatError(ValueError):
    """Malformed OpenPGP data (a packet, an armor block, a cleartext message)."""


@dataclass
class PublicKey:
    """One signing-capable key: a primary key or a subkey bound to it.

    ``fingerprint`` is the v4 fingerprint (40 upper-case hex digits) as ``gpg`` prints it.
    """

    fingerprint: str
    algo: int
    created: int
    material: object = field(repr=False)
    primary: str = ""  # the primary key's fingerprint (itself for a primary key)
    uids: tuple = ()
    expires: int | None = None  # seconds since the epoch, None: never
    revoked: bool = False
    can_sign: bool = True

    @property
    def key_id(self):
        return self.fingerprint[-16:]

    def usable_at(self, when):
        """Whether a signature made at ``when`` by this key counts."""
        return (not self.revoked and self.can_sign and when + CLOCK_SKEW >= self.created
                and (self.expires is None or when < self.expires))


class Keyring:
    """Trusted public keys, found by fingerprint or by 64-bit key ID.

    Args:
        keys: PublicKey objects (primary keys and subkeys).
    """

    def __init__(self, keys=()):
        self.keys = list(keys)

    @classmethod
    def from_bytes(cls, *blobs):
        """A keyring from binary keyrings and/or ASCII-armored key blocks.

        Raises:
            PGPFormatError: a blob is not OpenPGP key material.
        """
        keys = []
        for blob in blobs:
            keys.extend(parse_keys(blob))
        return cls(keys)

    @classmethod
    def from_files(cls, paths):
        """A keyring from key files (``.gpg`` binary or ``.asc`` armored).

        Raises:
            OSError: a file cannot be read.
            PGPFormatError: a file is not OpenPGP key material.
        """
        blobs = []
        for path in paths:
            with open(path, "rb") as f:
                blobs.append(f.read())
        return cls.from_bytes(*blobs)

    def find(self, fingerprint=None, key_id=None):
        """The keys matching an issuer fingerprint or key ID (upper-case hex)."""
        return [k for k in self.keys
                if (fingerprint and k.fingerprint == fingerprint) or (key_id and k.key_id == key_id)]

    @property
    def fingerprints(self):
        return [k.fingerprint for k in self.keys]


# --- packets ---------------------------------------------------------------------------------

def packets(data):
    """Split binary OpenPGP data into ``(tag, body)`` pairs.

    Raises:
        PGPFormatError: a header or length is malformed or runs past the end.
    """
    out, i, n = [], 0, len(data)
    while i < n:
        hdr = data[i]
        if not hdr & 0x80:
            raise PGPFormatError("not an OpenPGP packet at offset %d" % i)
        if hdr & 0x40:  # new format
            tag = hdr & 0x3F
            i += 1
            if i >= n:
                raise PGPFormatError("truncated packet header")
            o1 = data[i]
            if o1 < 192:
                length, i = o1, i + 1
            elif o1 < 224:
                if i + 1 >= n:
                    raise PGPFormatError("truncated packet header")
                length, i = ((o1 - 192) << 8) + data[i + 1] + 192, i + 2
            elif o1 == 255:
                if i + 4 >= n:
                    raise PGPFormatError("truncated packet header")
                length, i = struct.unpack(">I", data[i + 1:i + 5])[0], i + 5
            else:  # partial lengths are for data packets only
                raise PGPFormatError("partial body length in a key or signature packet")
        else:  # old format
            tag, ltype = (hdr >> 2) & 0x0F, hdr & 0x03
            i += 1
            if ltype == 3:
                length = n - i
            else:
                size = (1, 2, 4)[ltype]
                if i + size > n:
                    raise PGPFormatError("truncated packet header")
                length = int.from_bytes(data[i:i + size], "big")
                i += size
        if i + length > n:
            raise PGPFormatError("packet of %d bytes runs past the end of the data" % length)
        out.append((tag, data[i:i + length]))
        i += length
    return out


def _mpi(body, i):
    if i + 2 > len(body):
        raise PGPFormatError("truncated MPI")
    bits = struct.unpack(">H", body[i:i + 2])[0]
    size = (bits + 7) // 8
    if i + 2 + size > len(body):
        raise PGPFormatError("truncated MPI")
    return body[i + 2:i + 2 + size], i + 2 + size


def _parse_key(body):
    """A v4 key packet body → (algo, created, cryptography key) or None for a kind we skip."""
    if len(body) < 6 or body[0] != 4:
        return None
    created = struct.unpack(">I", body[1:5])[0]
    algo = body[5]
    if algo in ALGO_RSA:
        n, i = _mpi(body, 6)
        e, _ = _mpi(body, i)
        key = rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()
    elif algo == ALGO_EDDSA_LEGACY:
        oid_len = body[6]
        if body[7:7 + oid_len] != ED25519_OID:
            return None
        point, _ = _mpi(body, 7 + oid_len)
        if len(point) != 33 or point[0] != 0x40:
            raise PGPFormatError("bad Ed25519 public point")
        key = Ed25519PublicKey.from_public_bytes(point[1:])
    elif algo == ALGO_ED25519:
        if len(body) < 38:
            raise PGPFormatError("truncated Ed25519 key")
        key = Ed25519PublicKey.from_public_bytes(body[6:38])
    else:
        return None
    return algo, created, key


def _fingerprint(body):
    return hashlib.sha1(b"\x99" + struct.pack(">H", len(body)) + body).hexdigest().upper()


@dataclass
class Signature:
    """A parsed v4 signature packet."""

    sig_type: int
    algo: int
    hash_algo: int
    hashed: bytes  # version .. end of hashed subpackets: the part the trailer covers
    left16: bytes
    values: tuple  # the signature's MPIs
    subpackets: dict  # type -> list of bodies (hashed area)
    unhashed: dict  # type -> list of bodies (unhashed area: only issuer hints are read there)
    unknown_critical: bool = False

    def _one(self, kind):
        vals = self.subpackets.get(kind)
        return vals[0] if vals else None

    @property
    def created(self):
        v = self._one(SUB_CREATED)
        return struct.unpack(">I", v)[0] if v and len(v) == 4 else None

    @property
    def expires_after(self):
        v = self._one(SUB_SIG_EXPIRES)
        return struct.unpack(">I", v)[0] if v and len(v) == 4 else 0

    @property
    def key_expires_after(self):
        v = self._one(SUB_KEY_EXPIRES)
        return struct.unpack(">I", v)[0] if v and len(v) == 4 else 0

    @property
    def key_flags(self):
        v = self._one(SUB_KEY_FLAGS)
        return v[0] if v else None

    @property
    def issuer_fingerprints(self):
        out = []
        for area in (self.subpackets, self.unhashed):
            out += [v[1:].hex().upper() for v in area.get(SUB_ISSUER_FPR, ()) if v[:1] == b"\x04" and len(v) == 21]
        return out

    @property
    def issuer_key_ids(self):
        out = []
        for area in (self.subpackets, self.unhashed):
            out += [v.hex().upper() for v in area.get(SUB_ISSUER, ()) if len(v) == 8]
        return out


def _subpackets(data):
    out, unknown_critical, i = {}, False, 0
    while i < len(data):
        o1 = data[i]
        if o1 < 192:
            length, i = o1, i + 1
        elif o1 < 255:
            if i + 1 >= len(data):
                raise PGPFormatError("truncated subpacket")
            length, i = ((o1 - 192) << 8) + data[i + 1] + 192, i + 2
        else:
            length, i = struct.unpack(">I", data[i + 1:i + 5])[0], i + 5
        if length == 0 or i + length > len(data):
            raise PGPFormatError("bad subpacket length")
        kind, body = data[i] & 0x7F, data[i + 1:i + length]
        if data[i] & 0x80 and kind not in _IGNORABLE_CRITICAL:
            unknown_critical = True
        out.setdefault(kind, []).append(body)
        i += length
    return out, unknown_critical


def parse_signature(body):
    """A v4 signature packet body → Signature, or None for another version.

    Raises:
        PGPFormatError: the packet is malformed.
    """
    if len(body) < 6 or body[0] != 4:
        return None
    sig_type, algo, hash_algo = body[1], body[2], body[3]
    hlen = struct.unpack(">H", body[4:6])[0]
    end_hashed = 6 + hlen
    if end_hashed + 2 > len(body):
        raise PGPFormatError("truncated signature")
    hashed_sub, unknown_critical = _subpackets(body[6:end_hashed])
    ulen = struct.unpack(">H", body[end_hashed:end_hashed + 2])[0]
    i = end_hashed + 2 + ulen
    unhashed_sub, _ = _subpackets(body[end_hashed + 2:i])
    left16 = body[i:i + 2]
    i += 2
    values = []
    while i < len(body) and algo in ALGO_RSA + (ALGO_EDDSA_LEGACY,):
        v, i = _mpi(body, i)
        values.append(v)
    if algo == ALGO_ED25519:
        values = [body[i:i + 64]]
    return Signature(sig_type, algo, hash_algo, body[:end_hashed], left16, tuple(values),
                     hashed_sub, unhashed_sub, unknown_critical)


def _digest(sig, data):
    """The signature's hash over ``data`` + its hashed part + the v4 trailer, or None (unknown hash)."""
    if sig.hash_algo not in HASHES:
        return None
    h = hashlib.new(HASHES[sig.hash_algo][0])
    h.update(data)
    h.update(sig.hashed)
    h.update(b"\x04\xff" + struct.pack(">I", len(sig.hashed)))
    return h.digest()


def check(sig, data, key):
    """Whether ``sig`` over ``data`` verifies with ``key`` (a PublicKey's material).

    Returns:
        True or False; never raises for a bad signature.
    """
    if sig.unknown_critical:
        return False
    digest = _digest(sig, data)
    if digest is None or digest[:2] != sig.left16:
        return False
    try:
        if sig.algo in ALGO_RSA and isinstance(key, rsa.RSAPublicKey) and len(sig.values) == 1:
            size = (key.key_size + 7) // 8
            key.verify(sig.values[0].rjust(size, b"\0"), digest, padding.PKCS1v15(),
                       utils.Prehashed(HASHES[sig.hash_algo][1]()))
            return True
        if isinstance(key, Ed25519PublicKey):
            if sig.algo == ALGO_EDDSA_LEGACY and len(sig.values) == 2:
                raw = sig.values[0].rjust(32, b"\0") + sig.values[1].rjust(32, b"\0")
            elif sig.algo == ALGO_ED25519 and len(sig.values[0]) == 64:
                raw = sig.values[0]
            else:
                return False
            # OpenPGP's EdDSA signs the hash digest, not the data itself.
            key.verify(raw, digest)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


# --- keys ------------------------------------------------------------------------------------

def _key_material(packet_body):
    return b"\x99" + struct.pack(">H", len(packet_body)) + packet_body


def parse_keys(blob):
    """The signing keys in a binary keyring or an ASCII-armored public key block.

    A primary key's expiry comes from its newest verifying user-ID self-signature; a subkey is kept
    only when its newest binding signature verifies with the primary key, and takes its expiry and
    flags from it. Keys of kinds this module does not implement are skipped.

    Args:
        blob: bytes of one or more transferable public keys.
    Returns:
        A list of PublicKey (primary keys and signing subkeys).
    Raises:
        PGPFormatError: the data is not OpenPGP.
    """
    data = blob
    if blob.lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
        data = b"".join(dearmor(blob, "PGP PUBLIC KEY BLOCK"))
    keys, primary, sub, uid, certs = [], None, None, None, []

    def finish():
        if primary is not None:
            keys.extend(_resolve(primary, certs))

    for tag, body in packets(data):
        if tag == TAG_PUBLIC_KEY:
            finish()
            primary, sub, uid, certs = body, None, None, []
        elif primary is None:
            continue
        elif tag == TAG_USER_ID:
            sub, uid = None, body
        elif tag == TAG_PUBLIC_SUBKEY:
            sub, uid = body, None
        elif tag == TAG_SIGNATURE:
            sig = parse_signature(body)
            if sig is not None:
                certs.append((sig, uid, sub))
    finish()
    return keys


def _resolve(primary_body, certs):
    parsed = _parse_key(primary_body)
    if parsed is None:
        return []
    algo, created, material = parsed
    pfpr = _fingerprint(primary_body)
    pkey = PublicKey(pfpr, algo, created, material, primary=pfpr)
    pmat = _key_material(primary_body)
    uids, newest_cert = [], None
    subkeys = {}
    for sig, uid, sub in certs:
        if sig.sig_type == SIG_KEY_REVOCATION and uid is None and sub is None:
            if check(sig, pmat, material):
                pkey.revoked = True
        elif SIG_CERT_FIRST <= sig.sig_type <= SIG_CERT_LAST and uid is not None:
            if check(sig, pmat + b"\xb4" + struct.pack(">I", len(uid)) + uid, material):
                uids.append(uid.decode("utf-8", "replace"))
                if newest_cert is None or (sig.created or 0) > (newest_cert.created or 0):
                    newest_cert = sig
        elif sub is not None and sig.sig_type in (SIG_SUBKEY_BINDING, SIG_SUBKEY_REVOCATION):
            if check(sig, pmat + _key_material(sub), material):
                subkeys.setdefault(sub, []).append(sig)
    if newest_cert is None:
        return []  # no verifying self-signature: not a key we can trust the shape of
    pkey.uids = tuple(uids)
    if newest_cert.key_expires_after:
        pkey.expires = created + newest_cert.key_expires_after
    if newest_cert.key_flags is not None:
        pkey.can_sign = bool(newest_cert.key_flags & KEY_FLAG_SIGN)
    out = [pkey]
    for sub_body, sigs in subkeys.items():
        parsed = _parse_key(sub_body)
        if parsed is None:
            continue
        s_algo, s_created, s_material = parsed
        key = PublicKey(_fingerprint(sub_body), s_algo, s_created, s_material, primary=pfpr, uids=pkey.uids)
        bindings = [s for s in sigs if s.sig_type == SIG_SUBKEY_BINDING]
        if not bindings:
            continue
        binding = max(bindings, key=lambda s: s.created or 0)
        key.revoked = pkey.revoked or any(s.sig_type == SIG_SUBKEY_REVOCATION for s in sigs)
        key.can_sign = bool((binding.key_flags or 0) & KEY_FLAG_SIGN)
        if binding.key_expires_after:
            key.expires = s_created + binding.key_expires_after
        if pkey.expires is not None:
            key.expires = min(key.expires or pkey.expires, pkey.expires)
        out.append(key)
    return out


# --- armor and cleartext ---------------------------------------------------------------------

def crc24(data):
    """The CRC-24 of ASCII armor's checksum line (RFC 4880 6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _dearmor_lines(lines, what):
    """The bytes of one armor body (the lines between BEGIN and END, headers included)."""
    i = 0
    while i < len(lines) and lines[i].strip():  # armor headers ("Version: …") up to a blank line
        if b":" not in lines[i]:
            break
        i += 1
    body, crc = [], None
    for line in lines[i:]:
        line = line.strip()
        if not line:
            continue
        if line.startswith(b"=") and len(line) == 5:
            crc = line[1:]
            continue
        body.append(line)
    try:
        data = base64.b64decode(b"".join(body), validate=True)
    except ValueError as e:
        raise PGPFormatError("bad base64 in the %s" % what) from e
    if crc is not None:
        try:
            want = int.from_bytes(base64.b64decode(crc, validate=True), "big")
        except ValueError as e:
            raise PGPFormatError("bad checksum line in the %s" % what) from e
        if want != crc24(data):
            raise PGPFormatError("the %s's checksum does not match" % what)
    return data


def dearmor(blob, label):
    """The decoded bodies of every ``-----BEGIN <label>-----`` block in ``blob``.

    Raises:
        PGPFormatError: no such block, an unterminated one, bad base64 or checksum.
    """
    begin, end = b"-----BEGIN %s-----" % label.encode(), b"-----END %s-----" % label.encode()
    out, cur = [], None
    for line in blob.splitlines():
        s = line.strip()
        if cur is None:
            if s == begin:
                cur = []
        elif s == end:
            out.append(_dearmor_lines(cur, label))
            cur = None
        else:
            cur.append(line)
    if cur is not None or not out:
        raise PGPFormatError("no complete %s block" % label)
    return out


CLEAR_BEGIN = b"-----BEGIN PGP SIGNED MESSAGE-----"
SIG_BEGIN, SIG_END = b"-----BEGIN PGP SIGNATURE-----", b"-----END PGP SIGNATURE-----"


def split_cleartext(blob):
    """Split a cleartext-signed message into its canonical signed text and signature bytes.

    Strict, as apt is since CVE-2019-3462's kin: nothing but blank lines before the BEGIN line or
    after the END line, and one message only.

    Args:
        blob: the message (bytes).
    Returns:
        ``(lines, signature)``: the dash-unescaped text lines with trailing spaces and tabs removed
        (what is hashed, joined by CRLF, with no final line break), and the binary signature.
    Raises:
        PGPFormatError: the message is not a well-formed cleartext signature.
    """
    lines = blob.split(b"\n")
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].rstrip() != CLEAR_BEGIN:
        raise PGPFormatError("not a cleartext-signed message (no BEGIN PGP SIGNED MESSAGE line)")
    i += 1
    while i < len(lines) and lines[i].strip():  # "Hash: SHA512" headers
        if not lines[i].startswith(b"Hash:"):
            raise PGPFormatError("unexpected armor header %r" % lines[i][:40])
        i += 1
    i += 1
    text = []
    while i < len(lines) and lines[i].rstrip() != SIG_BEGIN:
        line = lines[i]
        if line.startswith(b"- "):
            line = line[2:]
        elif line.startswith(b"-"):
            raise PGPFormatError("a line of the signed text starts with an unescaped dash")
        text.append(line.rstrip(b" \t"))
        i += 1
    if i >= len(lines):
        raise PGPFormatError("the signed message has no signature")
    j = i + 1
    while j < len(lines) and lines[j].rstrip() != SIG_END:
        j += 1
    if j >= len(lines):
        raise PGPFormatError("the signature block is not terminated")
    if any(ln.strip() for ln in lines[j + 1:]):
        raise PGPFormatError("data after the signature")
    signature = _dearmor_lines(lines[i + 1:j], "PGP SIGNATURE")
    return text, signature


def verify_cleartext(blob, keyring, now=None):
    """Verify a cleartext-signed message (an ``InRelease``) and return its signed text.

    At least one signature must verify with a usable key of ``keyring``; signatures by keys not in
    it are ignored (Debian signs with several), but a signature by a trusted key that does not
    verify refuses the whole message.

    Args:
        blob: the message bytes.
        keyring: a Keyring of trusted keys.
        now: the time to check expiry against (default: now).
    Returns:
        The signed text (str, LF line endings, with a final line break): only what was verified.
    Raises:
        SignatureError: malformed, unsigned, signed by no trusted key, a bad signature, or an
            expired/future/revoked signature or key.
    """
    now = time.time() if now is None else now
    try:
        lines, sigdata = split_cleartext(blob)
        sigs = [parse_signature(body) for tag, body in packets(sigdata) if tag == TAG_SIGNATURE]
    except PGPFormatError as e:
        raise SignatureError("bad signed message: %s" % e) from e
    sigs = [s for s in sigs if s is not None]
    if not sigs:
        raise SignatureError("the message carries no signature")
    signed = b"\r\n".join(lines)
    good, problems = [], []
    for sig in sigs:
        keys = _issuer_keys(sig, keyring)
        if not keys:
            problems.append("a signature by unknown key %s" % (_issuer_name(sig) or "(no issuer)"))
            continue
        if sig.sig_type != SIG_TEXT:
            raise SignatureError("signature by %s is not a text signature (type 0x%02x)"
                                 % (keys[0].fingerprint, sig.sig_type))
        key = next((k for k in keys if check(sig, signed, k.material)), None)
        if key is None:
            if sig.hash_algo not in HASHES:
                problems.append("a signature by %s uses a refused hash (algorithm %d)"
                                % (keys[0].fingerprint, sig.hash_algo))
                continue
            raise SignatureError("BAD signature by %s" % keys[0].fingerprint)
        made = sig.created
        if made is None:
            raise SignatureError("signature by %s has no creation time" % key.fingerprint)
        if made > now + CLOCK_SKEW:
            raise SignatureError("signature by %s was made in the future (%s)" % (key.fingerprint, _utc(made)),
                                 hint="check this computer's clock")
        if sig.expires_after and made + sig.expires_after < now:
            problems.append("the signature by %s expired on %s" % (key.fingerprint, _utc(made + sig.expires_after)))
            continue
        if not key.usable_at(made) or (key.expires is not None and key.expires < now):
            problems.append("key %s is expired or revoked" % key.fingerprint)
            continue
        good.append(key)
    if not good:
        raise SignatureError("no valid signature by a trusted key: %s" % "; ".join(problems))
    return "\n".join(line.decode("utf-8", "replace") for line in lines) + "\n"


def _issuer_keys(sig, keyring):
    for fpr in sig.issuer_fingerprints:
        found = keyring.find(fingerprint=fpr)
        if found:
            return found
    for kid in sig.issuer_key_ids:
        found = keyring.find(key_id=kid)
        if found:
            return found
    return []


def _issuer_name(sig):
    return (sig.issuer_fingerprints or sig.issuer_key_ids or [""])[0]


def _utc(t):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
