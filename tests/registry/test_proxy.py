"""Corporate networks: the engine pulls through an HTTP(S) proxy, trusting an extra CA.

The registry is the real docker-registry on 127.0.0.1, but it is named ``registry.test``, a
name that resolves nowhere: only the proxy below (written here, on 127.0.0.1) knows where it
is. So a pull that works went through the proxy, and nothing is ever looked up in DNS (the
engine hands the name to the proxy). The TLS registry's certificate is signed by a CA made
here, which the engine trusts only through ``--registry-ca``.
"""

from __future__ import annotations

import datetime
import http.client
import http.server
import os
import select
import socket
import threading

import pytest

from hostbridge.guest.registry import push
from hostbridge.guest.registry.config import Proxies, RegistryConfig
from tests.registry import regsupport
from tests.registry.engine_support import docker
from tests.support.engine import Engine

pytestmark = pytest.mark.root
NAME = "registry.test"  # RFC 2606: never resolves


class ForwardProxy:
    """A small HTTP proxy on 127.0.0.1: CONNECT tunnels and absolute-URI forwarding, to the
    routes it is given only ({"registry.test:5000": 5000} → 127.0.0.1:5000); anything else gets
    502 and no connection. ``seen`` records (method, target) of each request."""

    def __init__(self, routes):
        self.routes = dict(routes)
        self.seen = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _upstream(self, netloc):
                port = proxy.routes.get(netloc)
                if port is None:
                    self.send_error(502, "no route to %s" % netloc)
                    return None
                return port

            def do_CONNECT(self):
                proxy.seen.append(("CONNECT", self.path))
                port = self._upstream(self.path)
                if port is None:
                    return
                up = socket.create_connection(("127.0.0.1", port), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                socks = [self.connection, up]
                try:
                    for _ in range(100000):  # bounded: ends when either side closes or idles 10 s
                        ready, _, _ = select.select(socks, [], [], 10)
                        if not ready:
                            break
                        for s in ready:
                            data = s.recv(65536)
                            if not data:
                                return
                            (up if s is self.connection else self.connection).sendall(data)
                finally:
                    up.close()
                    self.close_connection = True

            def _forward(self):
                proxy.seen.append((self.command, self.path))
                if not self.path.startswith("http://"):
                    self.send_error(400, "absolute URI expected")
                    return
                netloc, _, rest = self.path[len("http://"):].partition("/")
                port = self._upstream(netloc)
                if port is None:
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("proxy-connection", "proxy-authorization", "connection")}
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    conn.request(self.command, "/" + rest, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _ca_and_cert(workdir, dns_name):
    """A test CA, and a server certificate for ``dns_name`` it signed. Returns (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostbridge test corporate CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(workdir, n) for n in ("ca.crt", "tls.crt", "tls.key")]
    for p, data in zip(paths, (ca.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.PEM),
                               key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))):
        with open(p, "wb") as f:
            f.write(data)
    return paths


@pytest.fixture
def corp(tmp_path, busybox_rootfs_tar):
    """A TLS registry and a plain one (same storage) known only to the proxy; an image pushed
    to them through the proxy. Yields a namespace of what the tests need."""
    pytest.importorskip("cryptography")
    if not os.path.exists(regsupport.REGISTRY_BIN):
        pytest.skip("docker-registry is missing: apt-get install docker-registry")
    work = tmp_path / "corp"
    (work / "tls").mkdir(parents=True)
    (work / "plain").mkdir()
    ca, cert, key = _ca_and_cert(str(work / "tls"), NAME)
    tls = regsupport.RegistryServer(str(work / "tls"), tls=(cert, key))
    plain = regsupport.RegistryServer(str(work / "plain"))
    # Both serve one storage folder: what is pushed to one can be pulled from the other.
    with open(plain.config_path) as f:
        text = f.read().replace(plain.storage, tls.storage)
    with open(plain.config_path, "w") as f:
        f.write(text)
    tls.start()
    plain.start()
    proxy = ForwardProxy({"%s:%d" % (NAME, tls.port): tls.port, "%s:%d" % (NAME, plain.port): plain.port})
    try:
        layer = regsupport.small_layer_tar(str(tmp_path / "layer.tar"), {"etc/corp": b"through the proxy\n"})
        tars = [busybox_rootfs_tar, layer]
        cfg = regsupport.image_config([regsupport.file_digest(t) for t in tars], cmd=("cat", "/etc/corp"))
        push.push("%s:%d/corp/app:1" % (NAME, tls.port), cfg, tars,
                  config=RegistryConfig(retries=1, backoff=0.05, timeout=10, proxies=Proxies(https=proxy.url),
                                        extra_ca=[ca]))
        assert ("CONNECT", "%s:%d" % (NAME, tls.port)) in proxy.seen
        proxy.seen.clear()

        class Corp:
            pass

        c = Corp()
        c.ca, c.tls, c.plain, c.proxy, c.tmp = ca, tls, plain, proxy, tmp_path
        yield c
    finally:
        proxy.stop()
        tls.stop()
        plain.stop()


def _engine(c, name, args, env=None):
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return Engine(c.tmp / name, args).start()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _docker_env(engine):
    return dict(os.environ, DOCKER_HOST=engine.url, DOCKER_CONFIG=os.path.join(engine.base, "docker-config"),
                DOCKER_CLI_HINTS="false")


def test_pull_through_the_proxy_with_the_extra_ca(corp):
    # HTTPS through CONNECT (the proxy from the flag), plain HTTP forwarded (the proxy from the
    # engine's environment, as the host's HTTP_PROXY reaches a native engine).
    eng = _engine(corp, "eng", ["--https-proxy", corp.proxy.url, "--registry-ca", corp.ca,
                                "--insecure-registry", "%s:%d" % (NAME, corp.plain.port)],
                  env={"HTTP_PROXY": corp.proxy.url})
    try:
        env = _docker_env(eng)
        ref = "%s:%d/corp/app:1" % (NAME, corp.tls.port)
        docker(env, "pull", ref)
        assert docker(env, "run", "--rm", ref).stdout == "through the proxy\n"
        assert corp.proxy.seen and set(corp.proxy.seen) == {("CONNECT", "%s:%d" % (NAME, corp.tls.port))}
        corp.proxy.seen.clear()

        plain_ref = "%s:%d/corp/app:1" % (NAME, corp.plain.port)
        docker(env, "pull", plain_ref)
        base = "http://%s:%d/v2/" % (NAME, corp.plain.port)
        assert ("GET", base) in corp.proxy.seen
        assert ("GET", base + "corp/app/manifests/1") in corp.proxy.seen or \
            ("HEAD", base + "corp/app/manifests/1") in corp.proxy.seen
        assert all(t.startswith(base) for _, t in corp.proxy.seen)
    finally:
        eng.close()


def test_without_the_ca_the_pull_says_the_certificate_is_not_trusted(corp):
    eng = _engine(corp, "noca", ["--https-proxy", corp.proxy.url])
    try:
        r = docker(_docker_env(eng), "pull", "%s:%d/corp/app:1" % (NAME, corp.tls.port), check=False)
        assert r.returncode != 0 and "is not trusted" in r.stderr, r.stderr
    finally:
        eng.close()


def test_a_bogus_proxy_fails_the_pull_clearly(corp):
    dead = regsupport.free_port()  # nothing listens there
    eng = _engine(corp, "bogus", ["--https-proxy", "http://127.0.0.1:%d" % dead, "--registry-ca", corp.ca])
    try:
        r = docker(_docker_env(eng), "pull", "%s:%d/corp/app:1" % (NAME, corp.tls.port), check=False, timeout=120)
        assert r.returncode != 0
        assert "through the proxy 127.0.0.1:%d" % dead in r.stderr and "HTTP(S)_PROXY" in r.stderr, r.stderr
        assert corp.proxy.seen == []
    finally:
        eng.close()


def test_a_proxy_refusing_the_route_fails_clearly(corp):
    # The proxy answers 502 to a CONNECT it has no route for (the name is not in its table).
    eng = _engine(corp, "noroute", ["--https-proxy", corp.proxy.url, "--registry-ca", corp.ca])
    try:
        r = docker(_docker_env(eng), "pull", "%s:1/corp/app:1" % NAME, check=False, timeout=120)
        assert r.returncode != 0 and "502" in r.stderr and "through the proxy" in r.stderr, r.stderr
        assert ("CONNECT", "%s:1" % NAME) in corp.proxy.seen
    finally:
        eng.close()


def test_a_bad_ca_file_stops_the_engine_with_one_line(corp, tmp_path):
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate\n")
    with pytest.raises(RuntimeError, match="registry CA %s is not a PEM certificate" % bad):
        Engine(tmp_path / "badca", ["--registry-ca", str(bad)]).start()
