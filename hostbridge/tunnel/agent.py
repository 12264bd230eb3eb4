"""The tunnel agent: one background process per machine serving the engine locally.

``python3 -m hostbridge.tunnel.agent MACHINE_DIR [--foreground]``. It holds the machine's
``agent.lock`` (so two starters leave one agent), one SSH transport (keepalive on, reconnected
with bounded backoff when the link drops), and a local endpoint — a 0600 unix socket, or on
Windows a named pipe only this user can open — where each accepted connection gets its own channel to the engine's socket on
the far side (direct-streamlocal, or a stdio relay where the server refuses that). Its state is
in agent.status.json, its log in agent.log; published container ports are forwarded by
``forwards.PortForwarder``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import socket
import sys
import threading
import time

import paramiko

from .channels import open_relay, open_streamlocal, pump, pump_threads
from .control import read_json, write_json_atomic
from .errors import AgentError, HostKeyError, SSHAuthError, SSHUnreachable, TunnelError
from .known_hosts import KnownHosts
from ..hostos import endpoint_kind, npipe_url, pipe_path
from ..paths import MachinePaths
from .ssh import Connection, SSHTarget

log = logging.getLogger("hostbridge.tunnel.agent")

RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1, 2, 5)  # then 5 s per try
RECONNECT_GIVE_UP = 600  # seconds without a link before the agent exits (the next command restarts it)
WAIT_FOR_LINK = 15  # seconds a new local connection waits for a reconnect
CONNECT_RETRY_EVERY = 0.02  # seconds between first tries while nothing listens (tunnel.json connect_retry)


class Agent:
    """The agent's state and threads.

    Args:
        paths: the machine's files.
        config: tunnel.json's content (see ``control.write_config``).
    """

    def __init__(self, paths: MachinePaths, config: dict):
        self.paths = paths
        self.config = config
        self.target = SSHTarget.from_dict(config["ssh"])
        self.remote_socket = config["remote_socket"]
        self.mode = config.get("channel_mode")  # None: try streamlocal first
        self.conn = None
        self.link = threading.Condition()
        self.stopping = threading.Event()
        self.listener = None
        self.endpoint = None
        self.forwarder = None
        self.status = {"pid": os.getpid(), "started_at": time.time(), "state": "starting",
                       "machine": paths.name, "host": "%s@%s:%d" % (self.target.user, self.target.hostname,
                                                                     self.target.port),
                       "reconnects": 0, "connections": 0, "errors": 0, "forwards": []}
        self._status_lock = threading.Lock()

    # -- status ---------------------------------------------------------------------------
    def set_status(self, **fields) -> None:
        """Merge ``fields`` into agent.status.json (atomically)."""
        with self._status_lock:
            self.status.update(fields)
            self.status["updated_at"] = time.time()
            write_json_atomic(self.paths.agent_status, self.status)

    def fail(self, err: Exception) -> None:
        """Record a fatal error for the starter (ensure_agent) and `tunnel status`."""
        fields = {k: getattr(err, k) for k in ("hostname", "got", "expected", "user", "port")
                  if getattr(err, k, None) is not None}
        self.set_status(state="failed", error=str(err), error_kind=type(err).__name__, error_fields=fields)

    # -- the SSH link ---------------------------------------------------------------------
    def connect(self) -> Connection:
        """A fresh, authenticated connection (host key must already be pinned)."""
        conn = Connection(self.target, KnownHosts(self.paths.known_hosts),
                          keepalive=int(self.config.get("keepalive", 15)),
                          timeout=float(self.config.get("connect_timeout", 10)))
        return conn.open()

    def first_connect(self) -> Connection:
        """The first link. A held agent (tunnel.json ``hold``) waits for its go (``control.release``)
        first; nothing listening yet is tried again; both for ``connect_retry`` s (tunnel.json; 0 by
        default). `up` starts the agent while QEMU loads a saved state, and lets it go once the VM
        runs: a connection QEMU's user net accepts for a paused guest waits seconds for its SYN
        to be sent again.

        Raises:
            TunnelError: as ``connect``, once the bound is past.
        """
        deadline = time.monotonic() + float(self.config.get("connect_retry", 0))
        while self.config.get("hold") and not os.path.exists(self.paths.agent_go) \
                and time.monotonic() < deadline and not self.stopping.is_set():
            self.stopping.wait(CONNECT_RETRY_EVERY)
        while True:
            try:
                return self.connect()
            except SSHUnreachable:
                if time.monotonic() >= deadline or self.stopping.is_set():
                    raise
            self.stopping.wait(CONNECT_RETRY_EVERY)

    def transport(self, wait: float = WAIT_FOR_LINK) -> paramiko.Transport:
        """The live transport, waiting up to ``wait`` s for a reconnect.

        Raises:
            AgentError: no link came back in time.
        """
        deadline = time.monotonic() + wait
        with self.link:
            while not (self.conn and self.conn.is_active()):
                left = deadline - time.monotonic()
                if left <= 0 or self.stopping.is_set():
                    raise AgentError("the SSH link to %s is down: see %s" % (self.status["host"], self.paths.agent_log))
                self.link.wait(min(left, 0.5))
            return self.conn.transport

    def link_answers(self, timeout: float) -> bool:
        """Whether the server answers a keepalive request within ``timeout`` s.

        A link that died silently (laptop sleep, NAT timeout) keeps its TCP socket "up" for many
        minutes; an unanswered request is how to notice. paramiko's global_request has no timeout,
        so it runs in a throwaway thread.
        """
        conn = self.conn
        done = threading.Event()

        def ask():
            try:
                conn.transport.global_request("keepalive@openssh.com", wait=True)
            except Exception:  # a dead transport: not answering is the answer
                return
            done.set()

        threading.Thread(target=ask, name="probe", daemon=True).start()
        return done.wait(timeout)

    def supervise(self) -> None:
        """Watch the link; reconnect with bounded backoff when it drops (a thread)."""
        interval = float(self.config.get("keepalive", 15))
        last_probe = time.monotonic()
        wall_offset = time.time() - time.monotonic()
        while not self.stopping.wait(0.2):
            if self.conn and self.conn.is_active():
                # The host's monotonic clock stops while it sleeps; its wall clock does not: a
                # jump between them means the guest's clock is now behind (or the host's was set).
                offset = time.time() - time.monotonic()
                if abs(offset - wall_offset) > 1.0:
                    wall_offset = offset
                    threading.Thread(target=self.sync_clock, args=(self.conn,), name="clock", daemon=True).start()
                if interval <= 0 or time.monotonic() - last_probe < interval:
                    continue
                last_probe = time.monotonic()
                if self.link_answers(interval):
                    continue
                log.warning("SSH link to %s does not answer keepalives; dropping it", self.status["host"])
                self.conn.close()
            self.set_status(state="reconnecting")
            log.warning("SSH link to %s lost; reconnecting", self.status["host"])
            down_since = time.monotonic()
            attempt = 0
            while not self.stopping.is_set():
                try:
                    conn = self.connect()
                except (HostKeyError, SSHAuthError) as e:  # will not fix itself by retrying
                    log.error("reconnect refused: %s", e)
                    self.fail(e)
                    self.stop()
                    return
                except (TunnelError, OSError, paramiko.SSHException) as e:
                    delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                    attempt += 1
                    if time.monotonic() - down_since > RECONNECT_GIVE_UP:
                        self.fail(AgentError("gave up reconnecting to %s after %d s: %s"
                                             % (self.status["host"], RECONNECT_GIVE_UP, e)))
                        self.stop()
                        return
                    log.info("reconnect attempt %d failed (%s); next in %.1f s", attempt, e, delay)
                    self.stopping.wait(delay)
                    continue
                old, self.conn = self.conn, conn
                if old:
                    old.close()
                self.sync_clock(conn)
                with self.link:
                    self.link.notify_all()
                self.set_status(state="connected", reconnects=self.status["reconnects"] + 1,
                                connected_at=time.time())
                log.info("reconnected after %.2f s", time.monotonic() - down_since)
                break

    def sync_clock(self, conn: Connection) -> None:
        """Set a VM guest's clock to the host's after a (re)connect (tunnel.json ``clock_sync``).

        A host that slept leaves the guest's clock behind, and the link usually drops with it:
        reconnecting is the moment to catch up. Failures are logged, never fatal.
        """
        if not self.config.get("clock_sync"):
            return
        from ..machines import clock

        try:
            check = clock.resync_ssh(conn)
            if check.adjusted:
                log.info("guest clock was %+.1f s off; set to the host's", check.drift)
        except Exception as e:  # a clock we cannot set must not take the tunnel down
            log.warning("guest clock resync failed: %s", e)

    # -- channels to the engine -----------------------------------------------------------
    def open_engine(self) -> paramiko.Channel:
        """A channel to the engine's socket: streamlocal, or the relay fallback.

        Raises:
            AgentError: the link is down.
            paramiko.ChannelException: the far side refused (e.g. no engine socket).
        """
        transport = self.transport()
        if self.mode != "relay":
            try:
                return self._open_streamlocal(transport)
            except paramiko.ChannelException:
                # OpenSSH answers "Connect failed" both when streamlocal is disabled and when
                # the socket is missing: the socket's presence tells the two apart. It may have
                # appeared in between (`up` starts the agent while the engine starts): then
                # streamlocal is tried once more before it is taken for refused, else every
                # connection would start a Python relay in the guest.
                if not self._remote_socket_exists(transport):
                    raise
                try:
                    return self._open_streamlocal(transport)
                except paramiko.ChannelException as e:
                    log.warning("the server refuses direct-streamlocal (%s); using a stdio relay", e.text)
                    self.mode = "relay"
                    self.set_status(channel_mode="relay")
        return open_relay(transport, self.remote_socket)

    def _open_streamlocal(self, transport) -> paramiko.Channel:
        chan = open_streamlocal(transport, self.remote_socket)
        if self.mode is None:
            self.mode = "streamlocal"
            self.set_status(channel_mode="streamlocal")
        return chan

    def _remote_socket_exists(self, transport) -> bool:
        chan = transport.open_session()
        try:
            chan.exec_command("test -S %s" % shlex.quote(self.remote_socket))
            return chan.recv_exit_status() == 0
        finally:
            chan.close()

    def open_tcp(self, port: int) -> paramiko.Channel:
        """A direct-tcpip channel to the far side's 127.0.0.1:``port``."""
        return self.transport().open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0))

    # -- the local endpoint ---------------------------------------------------------------
    def bind(self) -> None:
        """Bind the local endpoint: a 0600 unix socket, or on Windows a named pipe only this user
        can open (``npipe.PipeListener``).

        Never a TCP port, whatever tunnel.json says: an open 127.0.0.1 port lets any local user,
        or any web page, POST to the engine, which is root on the far side (``hostos.endpoint_kind``).
        """
        kind = self.config.get("endpoint") or endpoint_kind()
        if kind not in ("unix", "npipe"):
            log.warning("endpoint %r is not served (an open port would be root for anyone); using %s",
                        kind, endpoint_kind())
            kind = endpoint_kind()
        if kind == "npipe":
            from .npipe import PipeListener

            try:
                self.listener = PipeListener(pipe_path(self.paths.name))
            except PermissionError as e:
                raise AgentError("%s: another program has taken this machine's pipe name; stop it and retry" % e)
            self.endpoint = npipe_url(self.paths.name)
            return
        path = self.paths.agent_socket
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        st = os.stat(os.path.dirname(path))
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            # A shared temp dir someone else made could let them swap our socket.
            raise AgentError("%s is not a private directory of this user: remove it and retry"
                             % os.path.dirname(path))
        if os.path.exists(path):
            os.unlink(path)  # stale: we hold the lock, so no live agent owns it
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # born 0600: no window where others could connect
        try:
            s.bind(path)
        finally:
            os.umask(old)
        self.endpoint = "unix://" + path
        s.listen(128)
        s.settimeout(0.5)
        self.listener = s

    def serve(self) -> None:
        """Accept local connections until stopped; one thread per connection."""
        while not self.stopping.is_set():
            try:
                if isinstance(self.listener, socket.socket):
                    client, _ = self.listener.accept()
                else:  # a named pipe listener
                    client = self.listener.accept(timeout=0.5)
            except socket.timeout:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            client.settimeout(None)
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()

    def handle(self, client: socket.socket) -> None:
        """Join one local connection to a fresh engine channel; errors go to the log and client."""
        self.status["connections"] += 1
        try:
            chan = self.open_engine()
        except Exception as e:  # handed back: logged, counted, and told to the HTTP client
            log.error("cannot open a channel to %s: %s", self.remote_socket, e)
            self.status["errors"] += 1
            self.set_status(last_error="%s: %s" % (type(e).__name__, e))
            bad_gateway(client, "hostbridge tunnel: cannot reach the engine at %s on %s (%s)"
                        % (self.remote_socket, self.status["host"], e))
            return
        try:
            # select() watches sockets only: a named pipe gets a thread per direction.
            (pump if isinstance(client, socket.socket) else pump_threads)(client, chan)
        except (BrokenPipeError, ConnectionResetError) as e:
            log.debug("a side hung up early: %s", e)  # a client that got its answer and left
        except Exception as e:
            log.warning("connection ended with %s: %s", type(e).__name__, e)

    # -- life cycle -----------------------------------------------------------------------
    def stop(self, *_sig) -> None:
        """Stop serving (SIGTERM handler too)."""
        self.stopping.set()
        with self.link:
            self.link.notify_all()

    def run(self) -> int:
        """Connect, serve, supervise; returns the exit status."""
        try:
            self.conn = self.first_connect()
        except (TunnelError, OSError, paramiko.SSHException) as e:
            log.error("cannot connect: %s", e)
            self.fail(e if isinstance(e, TunnelError) else AgentError(str(e)))
            return 1
        try:
            self.bind()
        except (AgentError, OSError) as e:
            log.error("cannot serve the local endpoint: %s", e)
            self.fail(e if isinstance(e, AgentError) else AgentError("cannot serve the local endpoint: %s" % e))
            self.conn.close()
            return 1
        self.set_status(state="connected", endpoint=self.endpoint, connected_at=time.time(),
                        channel_mode=self.mode)
        log.info("serving %s -> %s:%s", self.endpoint, self.status["host"], self.remote_socket)
        threading.Thread(target=self.supervise, name="supervise", daemon=True).start()
        if self.config.get("forward_ports", True):
            from .forwards import PortForwarder

            self.forwarder = PortForwarder(self)
            threading.Thread(target=self.forwarder.run, name="forwards", daemon=True).start()
        try:
            self.serve()
        finally:
            self.shutdown()
        return 0 if self.status.get("state") != "failed" else 1

    def shutdown(self) -> None:
        """Close everything the agent owns."""
        self.stopping.set()
        if self.forwarder:
            self.forwarder.close_all()
        if self.listener:
            self.listener.close()
            if self.endpoint and self.endpoint.startswith("unix://"):
                try:
                    os.unlink(self.endpoint[len("unix://"):])
                except OSError:
                    pass
        if self.conn:
            self.conn.close()
        if self.status.get("state") != "failed":
            self.set_status(state="stopped")
        log.info("agent stopped")


def bad_gateway(client: socket.socket, message: str) -> None:
    """Answer an HTTP client with docker's error shape, so `docker` prints the reason."""
    body = json.dumps({"message": message}).encode()
    try:
        client.settimeout(2)
        client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n"
                       b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except OSError:
        pass
    finally:
        client.close()


def take_lock(paths: MachinePaths):
    """The machine's agent lock (held until the process exits), or None when another agent holds it."""
    fd = os.open(paths.agent_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows (untested here: no Windows host to run it on)
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # BlockingIOError (flock) or PermissionError (msvcrt): another agent has it
        os.close(fd)
        return None
    return fd


def _daemonize(log_path: str) -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    os.chdir("/")  # do not hold the caller's directory
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)


def main(argv=None) -> int:
    """Entry point: ``python3 -m hostbridge.tunnel.agent MACHINE_DIR [--foreground]``."""
    ap = argparse.ArgumentParser(prog="hostbridge.tunnel.agent")
    ap.add_argument("machine_dir")
    ap.add_argument("--foreground", action="store_true")
    args = ap.parse_args(argv)
    paths = MachinePaths.from_dir(args.machine_dir)
    config = read_json(paths.tunnel_json)
    if config is None:
        sys.stderr.write("no tunnel configuration at %s\n" % paths.tunnel_json)
        return 2
    if not args.foreground and hasattr(os, "fork"):
        _daemonize(paths.agent_log)
    lock = take_lock(paths)
    if lock is None:
        return 0  # another agent serves this machine
    logging.basicConfig(filename=paths.agent_log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    with open(paths.agent_pid, "w") as f:
        f.write("%d\n" % os.getpid())
    # Every request crosses 3-4 threads (accept, pump, paramiko's reader): hand the GIL over
    # sooner than the default 5 ms so a small request is not held up waiting for it.
    sys.setswitchinterval(0.0005)
    agent = Agent(paths, config)
    signal.signal(signal.SIGTERM, agent.stop)
    signal.signal(signal.SIGINT, agent.stop)
    agent.set_status(state="connecting")
    try:
        return agent.run()
    except Exception as e:
        log.exception("agent crashed")
        agent.fail(AgentError("the tunnel agent crashed (%s): see %s" % (e, paths.agent_log)))
        return 1
    finally:
        try:
            os.unlink(paths.agent_pid)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
