"""SSH connections against a real sshd in a network namespace: pinning, refusals, errors."""

import os

import pytest

from hostbridge.tunnel.errors import HostKeyError, SSHAuthError, SSHUnreachable
from hostbridge.tunnel.known_hosts import KnownHosts
from hostbridge.tunnel.ssh import Connection, SSHTarget, parse_ssh_url, resolve_target

pytestmark = pytest.mark.root


def _target(sshd, key=None):
    return SSHTarget(hostname=sshd.host, port=sshd.port, user="root", identity_files=[key or sshd.user_key])


def _conn(sshd, kh, accept=(), key=None):
    return Connection(_target(sshd, key), kh, accept_host_keys=accept, look_for_keys=False, allow_agent=False)


def test_first_contact_needs_the_fingerprint_then_pins_it(sshd, tmp_path):
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    with pytest.raises(HostKeyError) as ei:
        _conn(sshd, kh).open()
    assert ei.value.got == sshd.host_fingerprint and ei.value.expected is None
    assert "--accept-host-key " + sshd.host_fingerprint in str(ei.value)
    assert not os.path.exists(kh.path)

    with _conn(sshd, kh, accept=sshd.host_fingerprint) as c:
        assert c.run("echo pinned") == (0, b"pinned\n", b"")
    assert kh.pinned(sshd.host, sshd.port) == [sshd.host_fingerprint]
    assert oct(os.stat(kh.path).st_mode & 0o777) == "0o600"
    # Pinned: no confirmation needed any more.
    with _conn(sshd, kh) as c:
        assert c.run("id -u")[1] == b"0\n"


def test_wrong_fingerprint_given_is_refused(sshd, tmp_path):
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    wrong = "SHA256:" + "A" * 43
    with pytest.raises(HostKeyError) as ei:
        _conn(sshd, kh, accept=wrong).open()
    assert ei.value.got == sshd.host_fingerprint and ei.value.expected == wrong
    assert not os.path.exists(kh.path)


def test_changed_host_key_is_a_hard_error_naming_both(sshd, tmp_path):
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    old = sshd.host_fingerprint
    with _conn(sshd, kh, accept=old):
        pass
    sshd.regenerate_host_key()
    new = sshd.host_fingerprint
    assert new != old
    # Even with the new fingerprint "accepted", a changed pin is refused.
    with pytest.raises(HostKeyError) as ei:
        _conn(sshd, kh, accept=new).open()
    msg = str(ei.value)
    assert "CHANGED" in msg and old in msg and new in msg
    assert (ei.value.got, ei.value.expected) == (new, old)
    assert kh.pinned(sshd.host, sshd.port) == [old]


def test_auth_failure_is_one_line_with_what_to_do(sshd, tmp_path):
    from remotehost import keygen

    stranger = str(tmp_path / "id_stranger")
    keygen(stranger)
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    with pytest.raises(SSHAuthError) as ei:
        _conn(sshd, kh, accept=sshd.host_fingerprint, key=stranger).open()
    msg = str(ei.value)
    assert "\n" not in msg and "root@%s" % sshd.host in msg and "-i" in msg and stranger in msg


def test_unreachable_port_is_one_line(sshd, tmp_path):
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    t = _target(sshd)
    t.port = sshd.port + 1000  # nothing listens there in the namespace
    with pytest.raises(SSHUnreachable) as ei:
        Connection(t, kh, timeout=3, look_for_keys=False, allow_agent=False).open()
    assert "cannot reach SSH at %s:%d" % (sshd.host, t.port) in str(ei.value)
    assert "\n" not in str(ei.value)


def test_streamlocal_channel_reaches_a_far_side_unix_socket(sshd, far_engine, tmp_path):
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    with _conn(sshd, kh, accept=sshd.host_fingerprint) as c:
        chan = c.open_streamlocal(far_engine.path)
        chan.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = chan.recv(4096)
            if not d:
                break
            data += d
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"OK")


def test_parse_url_and_ssh_config(tmp_path, monkeypatch):
    assert parse_ssh_url("ssh://ana@build1.example:2222") == ("ana", "build1.example", 2222)
    assert parse_ssh_url("build1") == (None, "build1", None)
    cfg = tmp_path / "config"
    cfg.write_text("Host b1\n  HostName 10.0.0.9\n  User ana\n  Port 2200\n  IdentityFile ~/k1\n"
                   "  ProxyJump jump@bastion:22\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    t = resolve_target("b1", config_path=str(cfg))
    assert (t.hostname, t.user, t.port, t.proxy_jump) == ("10.0.0.9", "ana", 2200, "jump@bastion:22")
    assert t.identity_files == [str(tmp_path / "k1")]
    t2 = resolve_target("b1", user="bob", port=22, identity_files=["/x/id"], config_path=str(cfg))
    assert (t2.user, t2.port, t2.identity_files[0]) == ("bob", 22, "/x/id")


def test_proxyjump_from_ssh_config(sshd, tmp_path):
    # The namespace's sshd is its own jump host: the second hop is a direct-tcpip channel
    # opened inside the namespace, so no packet goes anywhere else.
    cfg = tmp_path / "config"
    cfg.write_text("Host far\n  HostName %s\n  Port %d\n  User root\n  IdentityFile %s\n  ProxyJump root@%s:%d\n"
                   % (sshd.host, sshd.port, sshd.user_key, sshd.host, sshd.port))
    t = resolve_target("far", config_path=str(cfg))
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    with Connection(t, kh, accept_host_keys=sshd.host_fingerprint, look_for_keys=False, allow_agent=False) as c:
        assert c.run("echo via-jump") == (0, b"via-jump\n", b"")
        assert len(sshd.children()) == 2  # one session for the jump, one for the target


def test_encrypted_key_needs_a_passphrase(sshd, tmp_path):
    import subprocess

    key = str(tmp_path / "id_locked")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret", "-f", key], check=True)
    with open(sshd.authorized_keys, "a") as f:
        f.write(open(key + ".pub").read())
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    t = _target(sshd, key)
    with pytest.raises(SSHAuthError, match="needs a passphrase: add it to ssh-agent, or give it once with "
                                           "--remember-passphrase"):
        Connection(t, kh, accept_host_keys=sshd.host_fingerprint, look_for_keys=False, allow_agent=False).open()
    with Connection(t, kh, accept_host_keys=sshd.host_fingerprint, passphrase="s3cret", look_for_keys=False,
                    allow_agent=False) as c:
        assert c.run("echo unlocked")[1] == b"unlocked\n"


def test_keys_from_the_ssh_agent(sshd, tmp_path):
    import signal
    import subprocess

    sock = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            import time
            time.sleep(0.02)
        env = dict(os.environ, SSH_AUTH_SOCK=sock)
        subprocess.run(["ssh-add", "-q", sshd.user_key], env=env, check=True, capture_output=True)
        old = os.environ.get("SSH_AUTH_SOCK")
        os.environ["SSH_AUTH_SOCK"] = sock
        try:
            t = SSHTarget(hostname=sshd.host, port=sshd.port, user="root")  # no key file at all
            kh = KnownHosts(str(tmp_path / "known_hosts"))
            with Connection(t, kh, accept_host_keys=sshd.host_fingerprint, look_for_keys=False) as c:
                assert c.run("echo from-agent")[1] == b"from-agent\n"
        finally:
            if old is None:
                os.environ.pop("SSH_AUTH_SOCK", None)
            else:
                os.environ["SSH_AUTH_SOCK"] = old
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(5)


class _MemoryKeyring:
    """The OS keyring cannot run here (no Secret Service / Keychain): a dict-backed backend."""

    def __new__(cls):
        import keyring.backend

        class Backend(keyring.backend.KeyringBackend):
            priority = 1

            def __init__(self):
                super().__init__()
                self.store = {}

            def get_password(self, service, username):
                return self.store.get((service, username))

            def set_password(self, service, username, password):
                self.store[(service, username)] = password

            def delete_password(self, service, username):
                self.store.pop((service, username), None)

        return Backend()


def test_passphrase_remembered_in_the_keyring(sshd, tmp_path):
    import subprocess

    import keyring

    from hostbridge.tunnel.ssh import remember_passphrase

    key = str(tmp_path / "id_locked")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret", "-f", key], check=True)
    with open(sshd.authorized_keys, "a") as f:
        f.write(open(key + ".pub").read())
    previous = keyring.get_keyring()
    keyring.set_keyring(_MemoryKeyring())
    try:
        remember_passphrase(key, "s3cret")
        kh = KnownHosts(str(tmp_path / "known_hosts"))
        with Connection(_target(sshd, key), kh, accept_host_keys=sshd.host_fingerprint, look_for_keys=False,
                        allow_agent=False) as c:
            assert c.run("echo unlocked")[1] == b"unlocked\n"
    finally:
        keyring.set_keyring(previous)


def test_no_keyring_backend_says_what_to_do(tmp_path):
    import keyring
    import keyring.backends.fail

    from hostbridge.errors import TunnelError
    from hostbridge.tunnel.ssh import keyring_passphrase, remember_passphrase

    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        assert keyring_passphrase(str(tmp_path / "k")) is None
        with pytest.raises(TunnelError, match="cannot store the key passphrase in the OS keyring .*add the key "
                                              "to ssh-agent instead"):
            remember_passphrase(str(tmp_path / "k"), "x")
    finally:
        keyring.set_keyring(previous)


def test_pin_a_generated_host_key_from_its_pub_line(sshd, tmp_path):
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    with open(sshd.host_key + ".pub") as f:
        assert kh.pin_public_key(sshd.host, sshd.port, f.read()) == sshd.host_fingerprint
    with _conn(sshd, kh) as c:  # no confirmation needed: the key was pinned up front
        assert c.run("echo ok")[1] == b"ok\n"
    with pytest.raises(HostKeyError, match="not an SSH public key line"):
        kh.pin_public_key(sshd.host, sshd.port, "ssh-ed25519 notbase64!")
