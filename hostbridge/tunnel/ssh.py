"""SSH connections: targets from URLs and ~/.ssh/config, lazy connect, structured errors.

A ``Connection`` opens on first use and is a context manager. Keys come from ``-i``, the ssh
agent, ``~/.ssh/config`` (IdentityFile) and the default ``~/.ssh/id_*``; a key's passphrase may
come from the OS keyring. Every failure a user can meet is a one-line ``TunnelError`` subclass.
"""

from __future__ import annotations

import base64
import getpass
import os
import socket
import urllib.parse
from dataclasses import dataclass, field

import paramiko
import paramiko.agent

from .errors import HostKeyError, SSHAuthError, SSHUnreachable, TunnelError
from .known_hosts import KnownHosts, PinningPolicy, changed_key_error
from . import channels, sshconfig

KEYRING_SERVICE = "hostbridge-ssh-key"


@dataclass
class SSHTarget:
    """Where and as whom to log in, after ~/.ssh/config was applied."""

    hostname: str
    port: int = 22
    user: str = ""
    identity_files: list = field(default_factory=list)
    proxy_jump: str = ""
    alias: str = ""
    config_path: str = ""  # the ssh config it was resolved with (jump hosts use it too)
    proxy_command: str = ""  # ProxyCommand, tokens expanded; its stdio is the connection
    identities_only: bool = False  # IdentitiesOnly: only the identity files, no agent, no ~/.ssh/id_*
    identity_agent: str | None = None  # IdentityAgent: None = $SSH_AUTH_SOCK, "" = none, else a socket

    def to_dict(self) -> dict:
        """A JSON-ready form (the agent's tunnel.json holds it)."""
        return {"hostname": self.hostname, "port": self.port, "user": self.user,
                "identity_files": list(self.identity_files), "proxy_jump": self.proxy_jump,
                "alias": self.alias, "config_path": self.config_path, "proxy_command": self.proxy_command,
                "identities_only": self.identities_only, "identity_agent": self.identity_agent}

    @classmethod
    def from_dict(cls, d: dict) -> "SSHTarget":
        """Inverse of ``to_dict``."""
        return cls(hostname=d["hostname"], port=int(d.get("port") or 22), user=d.get("user") or "",
                   identity_files=list(d.get("identity_files") or []),
                   proxy_jump=d.get("proxy_jump") or "", alias=d.get("alias") or "",
                   config_path=d.get("config_path") or "", proxy_command=d.get("proxy_command") or "",
                   identities_only=bool(d.get("identities_only")), identity_agent=d.get("identity_agent"))


def parse_ssh_url(url: str) -> tuple:
    """Split ``ssh://user@host:port`` (or ``user@host:port``, ``host``) into (user, host, port).

    Returns:
        (user or None, host, port or None) — None where the URL does not say.
    Raises:
        TunnelError: not an ssh URL.
    """
    if "://" not in url:
        url = "ssh://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise TunnelError("%r is not an SSH address: use ssh://user@host[:port]" % url)
    try:
        port = parts.port
    except ValueError:
        raise TunnelError("%r has a bad port: use ssh://user@host[:port]" % url) from None
    return (urllib.parse.unquote(parts.username) if parts.username else None, parts.hostname, port)


def resolve_target(host: str, user: str | None = None, port: int | None = None,
                   identity_files=(), config_path: str | None = None) -> SSHTarget:
    """Apply ~/.ssh/config to a host alias, as ``ssh`` would.

    Honoured: Include, Host/Match, HostName, User, Port, IdentityFile (all of them, in order),
    IdentitiesOnly, IdentityAgent, ProxyJump and ProxyCommand (``none`` turns either off).
    Explicit ``user``/``port``/``identity_files`` win over the config file, as with ``ssh``.

    Raises:
        SSHConfigError: the config (or a file it includes) is malformed; names file and line.
    """
    cfg = sshconfig.lookup(host, config_path)
    idents = [os.path.expanduser(p) for p in identity_files]
    idents += [os.path.expanduser(p) for p in cfg.get("identityfile", []) if os.path.expanduser(p) not in idents]
    jump = cfg.get("proxyjump", "")
    proxy = cfg.get("proxycommand") or ""
    return SSHTarget(
        hostname=cfg.get("hostname", host), port=int(port or cfg.get("port", 22)),
        user=user or cfg.get("user") or getpass.getuser(), identity_files=idents,
        proxy_jump="" if jump.lower() == "none" else jump, alias=host,
        config_path=config_path or "", proxy_command="" if proxy.lower() == "none" else proxy,
        identities_only=cfg.get("identitiesonly", "no").lower() in ("yes", "true"),
        identity_agent=sshconfig.identity_agent(cfg.get("identityagent")))


def keyring_passphrase(key_path: str) -> str | None:
    """A key's passphrase from the OS keyring, or None (no keyring, nothing stored)."""
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, os.path.abspath(key_path))
    except Exception:  # any backend failure means "not stored"; the login then says what to do
        return None


def remember_passphrase(key_path: str, passphrase: str) -> None:
    """Keep a key's passphrase in the OS keyring (``--remember-passphrase``).

    Raises:
        TunnelError: no usable keyring backend.
    """
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, os.path.abspath(key_path), passphrase)
    except Exception as e:
        raise TunnelError("cannot store the key passphrase in the OS keyring (%s): add the key "
                          "to ssh-agent instead" % e) from None


class _SocketAgent(paramiko.agent.AgentSSH):
    """The keys of the ssh agent at ``path`` (IdentityAgent), optionally only those whose public
    half is in ``only`` (IdentitiesOnly: agent keys are used only for the configured files)."""

    def __init__(self, path: str | None, only=None):
        super().__init__()
        if not path:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()  # no agent there: no keys, as ssh does with a dead agent
            return
        self._connect(sock)
        if only is not None:
            self._keys = tuple(k for k in self._keys if k.asbytes() in only)

    def close(self):
        """Drop the agent connection."""
        self._close()


def _public_blobs(identity_files) -> set:
    """The public key blobs of the identity files (their .pub, else the unencrypted key)."""
    blobs = set()
    for f in identity_files:
        try:
            with open(f + ".pub") as fh:
                blobs.add(base64.b64decode(fh.read().split()[1]))
            continue
        except (OSError, IndexError, ValueError):
            pass
        try:
            blobs.add(paramiko.PKey.from_path(f).asbytes())
        except Exception:  # encrypted or unreadable: its agent copy cannot be matched
            pass
    return blobs


def _agent_for(t: "SSHTarget"):
    """The agent for ``t``: False for none (IdentityAgent none), None for paramiko's default
    ($SSH_AUTH_SOCK), else an agent object at the configured socket and/or filtered."""
    if t.identity_agent == "":
        return False
    if t.identity_agent is None and not t.identities_only:
        return None
    path = t.identity_agent if t.identity_agent is not None else os.environ.get("SSH_AUTH_SOCK")
    return _SocketAgent(path, _public_blobs(t.identity_files) if t.identities_only else None)


# AES-GCM first: one pass (no separate HMAC in Python), roughly doubling bulk throughput here.
_FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges every read at once (Linux TCP_QUICKACK, which the kernel
    turns off again by itself). Without it, a small reply the server sends in two writes
    waits for our delayed ACK (~40 ms) behind the server's Nagle algorithm."""

    def recv(self, n, *flags):
        data = super().recv(n, *flags)
        try:
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass
        return data


def _tcp_connect(host: str, port: int, timeout: float) -> socket.socket:
    """Connect to ``host:port`` (each address in turn), as paramiko would, with our socket class."""
    last = None
    for family, kind, proto, _, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        cls = _QuickAckSocket if hasattr(socket, "TCP_QUICKACK") else socket.socket
        sock = cls(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(addr)
            return sock
        except OSError as e:
            sock.close()
            last = e
    raise last or OSError("no address for %s" % host)


def _fast_transport(sock, **kw) -> paramiko.Transport:
    """A Transport preferring AES-GCM, with Nagle off (small HTTP requests are not delayed)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = paramiko.Transport(sock, **kw)
    opts = t.get_security_options()
    opts.ciphers = tuple(c for c in _FAST_CIPHERS if c in opts.ciphers) + tuple(
        c for c in opts.ciphers if c not in _FAST_CIPHERS)
    return t


class Connection:
    """One SSH session to a target, opened lazily; a context manager.

    Args:
        target: where to log in.
        known_hosts: the machine's pinned keys.
        accept_host_keys: fingerprints the user confirmed for first contact.
        passphrase: for an encrypted key (else the keyring is asked).
        keepalive: seconds between keepalive packets (0: off).
        timeout: connect/auth timeout in seconds.
        look_for_keys: also try ``~/.ssh/id_*``.
        allow_agent: also try the ssh agent.
    """

    def __init__(self, target: SSHTarget, known_hosts: KnownHosts, accept_host_keys=(),
                 passphrase: str | None = None, keepalive: int = 15, timeout: float = 10,
                 look_for_keys: bool = True, allow_agent: bool = True):
        self.target = target
        self.known_hosts = known_hosts
        self.accept_host_keys = [a for a in ([accept_host_keys] if isinstance(accept_host_keys, str)
                                             else accept_host_keys) if a]
        self.passphrase = passphrase
        self.keepalive = keepalive
        self.timeout = timeout
        self.look_for_keys = look_for_keys
        self.allow_agent = allow_agent
        self._client = None
        self._jump = None

    # -- life cycle -----------------------------------------------------------------------
    def open(self) -> "Connection":
        """Connect and authenticate (no-op when already open).

        Raises:
            SSHUnreachable, SSHAuthError, HostKeyError, TunnelError.
        """
        if self._client is not None and self._client.get_transport() is not None \
                and self._client.get_transport().is_active():
            return self
        self.close()
        t = self.target
        try:
            if t.proxy_jump:
                sock = self._jump_channel()
            elif t.proxy_command:
                sock = paramiko.ProxyCommand(t.proxy_command)
            else:
                sock = _tcp_connect(t.hostname, t.port, self.timeout)
        except (OSError, paramiko.SSHException) as e:
            raise self._translate(e) from None
        client = paramiko.SSHClient()
        agent = _agent_for(t) if self.allow_agent else False
        if agent:
            client._agent = agent  # paramiko's hook for the agent it asks (private, stable since 2.x)
        self.known_hosts.load_into(client)
        client.set_missing_host_key_policy(PinningPolicy(self.known_hosts, t.port, self.accept_host_keys))
        passphrase = self.passphrase
        if passphrase is None and len(t.identity_files) == 1:
            passphrase = keyring_passphrase(t.identity_files[0])
        # A missing IdentityFile is skipped, as ssh does (its agent copy may still be used).
        keys = [f for f in t.identity_files if os.path.exists(f)]
        try:
            client.connect(
                t.hostname, port=t.port, username=t.user, key_filename=keys or None,
                passphrase=passphrase, allow_agent=agent is not False,
                look_for_keys=self.look_for_keys and not t.identities_only,
                timeout=self.timeout, auth_timeout=self.timeout, banner_timeout=self.timeout,
                sock=sock, transport_factory=_fast_transport)
        except BaseException as e:
            client.close()
            raise self._translate(e) from None
        transport = client.get_transport()
        if self.keepalive:
            transport.set_keepalive(self.keepalive)
        self._client = client
        return self

    def _jump_channel(self):
        """A direct-tcpip channel through the ProxyJump host(s) to the target.

        The jump host is resolved with the same ssh config; without an IdentityFile of its own
        it is offered the target's keys (the usual set-up: one key for both).
        """
        user, host, port = parse_ssh_url(self.target.proxy_jump.split(",")[-1].strip())
        hops = self.target.proxy_jump.split(",")[:-1]
        jt = resolve_target(host, user=user, port=port, config_path=self.target.config_path or None)
        jt.identity_files = jt.identity_files or list(self.target.identity_files)
        jt.proxy_jump = ",".join(hops)
        self._jump = Connection(jt, self.known_hosts, self.accept_host_keys, keepalive=self.keepalive,
                                timeout=self.timeout, look_for_keys=self.look_for_keys,
                                allow_agent=self.allow_agent).open()
        return self._jump.open_tcp(self.target.hostname, self.target.port)

    def _translate(self, e: BaseException) -> BaseException:
        t = self.target
        where = "%s:%d" % (t.hostname, t.port)
        if isinstance(e, TunnelError):
            return e
        if isinstance(e, paramiko.BadHostKeyException):
            return changed_key_error(e.hostname, e.key, e.expected_key, self.known_hosts.path)
        if isinstance(e, paramiko.PasswordRequiredException):
            return SSHAuthError("the SSH key for %s@%s needs a passphrase: add it to ssh-agent, or "
                                "give it once with --remember-passphrase" % (t.user, t.hostname),
                                user=t.user, hostname=t.hostname)
        if isinstance(e, paramiko.AuthenticationException):
            keys = ", ".join(t.identity_files) or "ssh-agent and ~/.ssh/id_*"
            return SSHAuthError("SSH login as %s@%s was refused (tried %s): pass the right key with -i, "
                                "or authorise it in the host's ~/.ssh/authorized_keys"
                                % (t.user, where, keys), user=t.user, hostname=t.hostname)
        if isinstance(e, paramiko.SSHException) and "No authentication methods" in str(e):
            return SSHAuthError("no SSH key to offer %s@%s (no usable IdentityFile, and no ssh agent%s): pass a key "
                                "with -i or set IdentityFile in your ssh config"
                                % (t.user, where, " (IdentityAgent none)" if t.identity_agent == "" else ""),
                                user=t.user, hostname=t.hostname)
        if t.proxy_command and not t.proxy_jump and isinstance(e, (paramiko.SSHException, EOFError, OSError)):
            # Auth and host-key failures were handled above: what is left is the command's pipe.
            return SSHUnreachable("cannot reach SSH at %s through ProxyCommand %r (%s): check the command in "
                                  "your ssh config" % (where, t.proxy_command, str(e) or type(e).__name__),
                                  hostname=t.hostname, port=t.port)
        if isinstance(e, (socket.gaierror,)):
            return SSHUnreachable("cannot resolve %s: check the host name" % t.hostname,
                                  hostname=t.hostname, port=t.port)
        if isinstance(e, (paramiko.ssh_exception.NoValidConnectionsError, OSError, socket.timeout)):
            reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
            return SSHUnreachable("cannot reach SSH at %s (%s): check the address, the port and that "
                                  "sshd runs there" % (where, reason), hostname=t.hostname, port=t.port)
        if isinstance(e, paramiko.SSHException):
            return TunnelError("SSH handshake with %s failed (%s): check that it is an SSH server"
                               % (where, e))
        return e

    def close(self) -> None:
        """Close the session (and the jump host's). Safe to call twice."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._jump is not None:
            self._jump.close()
            self._jump = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # -- use ------------------------------------------------------------------------------
    @property
    def transport(self) -> paramiko.Transport:
        """The live transport (connects first if needed)."""
        return self.open()._client.get_transport()

    @property
    def server_host_key(self) -> paramiko.PKey:
        """The key the server presented."""
        return self.transport.get_remote_server_key()

    def is_active(self) -> bool:
        """Whether the session is up (without connecting)."""
        return bool(self._client and self._client.get_transport() and self._client.get_transport().is_active())

    def run(self, command: str, stdin: bytes = b"", timeout: float = 120) -> tuple:
        """Run a shell command on the far side.

        Returns:
            (exit status, stdout bytes, stderr bytes).
        """
        chan = self.transport.open_session(timeout=self.timeout)
        try:
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = channels.read_all(chan)
            return chan.recv_exit_status(), out, err
        finally:
            chan.close()

    def sftp(self) -> paramiko.SFTPClient:
        """An SFTP session (the caller closes it)."""
        return self.open()._client.open_sftp()

    def open_streamlocal(self, path: str) -> paramiko.Channel:
        """A channel to the unix socket ``path`` on the far side (direct-streamlocal)."""
        return channels.open_streamlocal(self.transport, path, timeout=self.timeout)

    def open_tcp(self, host: str, port: int) -> paramiko.Channel:
        """A channel to ``host:port`` as seen from the far side (direct-tcpip)."""
        return self.transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                           timeout=self.timeout)

    def open_relay(self, path: str) -> paramiko.Channel:
        """A channel to ``path`` through a stdio relay run on the far side (no streamlocal)."""
        return channels.open_relay(self.transport, path, timeout=self.timeout)


__all__ = ["SSHTarget", "Connection", "parse_ssh_url", "resolve_target", "remember_passphrase",
           "keyring_passphrase", "HostKeyError"]
