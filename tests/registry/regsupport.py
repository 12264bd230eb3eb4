"""Real parts for the registry tier: Debian's docker-registry, a JWT token server, a fault proxy,
test images made from the busybox rootfs, and the engine's image store for pulls.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse

from hostbridge.guest.registry import blobs

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- docker-registry -------------------------------------------------------------------------
class RegistryServer:
    """Debian's docker-registry on 127.0.0.1:PORT with storage under ``workdir``."""

    def __init__(self, workdir, auth_yaml="", port=None, tls=None):
        self.workdir = workdir
        self.port = port or free_port()
        self.storage = os.path.join(workdir, "storage")
        os.makedirs(self.storage, exist_ok=True)
        self.config_path = os.path.join(workdir, "config.yml")
        with open(self.config_path, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n"
                    "http:\n  addr: 127.0.0.1:%d\n  secret: test-secret\n%s%s"
                    % (self.storage, self.port,
                       "  tls:\n    certificate: %s\n    key: %s\n" % tls if tls else "", auth_yaml))
        self.proc = None

    @property
    def domain(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=15.0):
        log = open(os.path.join(self.workdir, "registry.log"), "ab")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", self.config_path], stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited: %s" % self.log_tail())
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not listen within %ss: %s" % (timeout, self.log_tail()))

    def kill(self):
        """SIGKILL (a crash), as in 'registry killed mid-pull'."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self):
        try:
            with open(os.path.join(self.workdir, "registry.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""


def htpasswd_yaml(workdir, users: dict) -> str:
    path = os.path.join(workdir, "htpasswd")
    for i, (user, password) in enumerate(users.items()):
        args = ["htpasswd", "-B", "-b"] + (["-c"] if i == 0 else []) + [path, user, password]
        subprocess.run(args, check=True, capture_output=True)
    return "auth:\n  htpasswd:\n    realm: test-realm\n    path: %s\n" % path


class _LocalServer:
    """A threaded http.server on 127.0.0.1 (random port) serving ``handler``."""

    def _serve(self, handler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def domain(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def make_tls_cert(workdir, ip="127.0.0.1"):
    """A self-signed server certificate for ``ip`` (its own CA). Returns (cert_path, key_path)."""
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostbridge test registry")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(workdir, "tls.crt"), os.path.join(workdir, "tls.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return cert_path, key_path


# ---- token server ----------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key) -> str:
    """The key id docker's libtrust derives from a public key (the registry looks tokens' kid up)."""
    from cryptography.hazmat.primitives import serialization
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


class TokenServer(_LocalServer):
    """Issues RS256 JWTs the registry trusts (its cert is the registry's rootcertbundle).

    ``users``: name → password; a known user gets every action asked for (only ``pull`` for the
    names in ``readers``), anonymous gets ``anonymous_actions``. Bad credentials get 401.
    """

    SERVICE = "test-registry"
    ISSUER = "test-token-issuer"

    def __init__(self, workdir, users, anonymous_actions=(), readers=()):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        self.users, self.anonymous_actions, self.readers = users, list(anonymous_actions), set(readers)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-token-issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .sign(self.key, hashes.SHA256()))
        self.cert_path = os.path.join(workdir, "token-cert.pem")
        with open(self.cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        self.kid = libtrust_key_id(self.key.public_key())
        self.requests = []
        self._serve(self._handler())

    @property
    def realm(self):
        return "http://127.0.0.1:%d/token" % self.port

    def registry_yaml(self):
        return ("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n"
                % (self.realm, self.SERVICE, self.ISSUER, self.cert_path))

    def issue(self, subject, access):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {"iss": self.ISSUER, "sub": subject, "aud": self.SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())).encode()
        sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + _b64url(sig)

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server.requests.append({"query": q, "auth": self.headers.get("Authorization")})
                user = None
                authz = self.headers.get("Authorization", "")
                if authz.startswith("Basic "):
                    name, _, pw = base64.b64decode(authz[6:]).decode().partition(":")
                    if server.users.get(name) != pw:
                        return self._reply(401, {"details": "incorrect username or password"})
                    user = name
                access = []
                for scope in q.get("scope", []):
                    typ, _, rest = scope.partition(":")
                    rname, _, actions = rest.rpartition(":")
                    allowed = (["pull"] if user in server.readers else None) if user else server.anonymous_actions
                    granted = [a for a in actions.split(",") if allowed is None or a in allowed]
                    access.append({"type": typ, "name": rname, "actions": granted})
                token = server.issue(user or "", access)
                self._reply(200, {"token": token, "access_token": token, "expires_in": 300})

            def _reply(self, status, doc):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


# ---- fault proxy -----------------------------------------------------------------------------
class FaultProxy(_LocalServer):
    """An HTTP proxy in front of a registry that can corrupt, cut or replace answers.

    Set ``rules`` (a list of callables ``rule(handler, method, path) -> bool``; True means the
    rule answered) and inspect ``log`` ((method, path, range) per request).
    """

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.rules = []
        self.log = []
        self.auth_seen = []       # (path, Authorization header or None) per request
        self.on_blob_half = None  # callable(path) run once half a blob was relayed (then cut)
        self.corrupt = set()      # blob digests whose bytes are flipped
        self.cut = {}             # blob digest → how many more times to cut it in half
        self._serve(self._handler())

    def _handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _relay(self):
                proxy.log.append((self.command, self.path, self.headers.get("Range")))
                proxy.auth_seen.append((self.path, self.headers.get("Authorization")))
                for rule in proxy.rules:
                    if rule(self, self.command, self.path):
                        return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                try:
                    up = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=10)
                    up.request(self.command, self.path, body=body, headers=headers)
                    resp = up.getresponse()
                except OSError:
                    self.close_connection = True  # like a dead server: no answer at all
                    return
                data = resp.read()
                digest = self.path.rsplit("/", 1)[-1] if "/blobs/sha256:" in self.path else None
                cut = digest is not None and self.command == "GET" and proxy.cut.get(digest, 0) > 0
                half = digest is not None and self.command == "GET" and proxy.on_blob_half is not None \
                    and len(data) > 1 << 20
                if digest in proxy.corrupt and self.command == "GET" and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if self.command == "HEAD":
                    return
                if cut or half:
                    if cut:
                        proxy.cut[digest] -= 1
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    if half:
                        hook, proxy.on_blob_half = proxy.on_blob_half, None
                        hook(self.path)
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _relay

        return Handler


def reply(handler, status, body: bytes, content_type="application/json", headers=None):
    """Answer from a FaultProxy rule."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    if handler.command != "HEAD":
        handler.wfile.write(body)


# ---- test images -----------------------------------------------------------------------------
def small_layer_tar(path, files: dict) -> str:
    """A layer tar with ``files`` (name → bytes), deterministic (mtime 0)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            tar.addfile(ti, io.BytesIO(data))
    return path


file_digest = blobs.file_digest


def image_config(diff_ids, arch="amd64", variant=None, os_name="linux", cmd=("sh",)) -> bytes:
    cfg = {"architecture": arch, "os": os_name, "created": "2024-01-01T00:00:00Z",
           "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
           "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
           "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "test layer %d" % i}
                       for i in range(len(diff_ids))]}
    if variant:
        cfg["variant"] = variant
    return json.dumps(cfg, sort_keys=True).encode()


# ---- the engine's image store, where pull hands verified blobs ------------------------------
def new_store(root):
    """The engine's real ImageStore on ``root`` (what pull's seam is for)."""
    from hostbridge.guest.images.store import ImageStore
    return ImageStore(root)


def gz_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)
