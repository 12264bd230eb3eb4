"""Remote mode: any Linux host reachable by SSH becomes a machine.

``add_remote`` sequences the stages — connect (pin the host key) → deploy → start → tunnel →
ping — each named, so an error says which one failed, and a failed add leaves nothing behind.
The machine's record (machine.json) keeps the SSH target and the far side's layout, which
``upgrade_remote`` and ``remove_remote`` need.
"""

from __future__ import annotations

import os
import shutil
import time

from .. import deploy
from ..errors import HostbridgeError, MachineError
from ..tunnel import control, localhttp
from ..tunnel.errors import TunnelError
from ..paths import MachinePaths, machines_dir

MODE = "remote"


def _connection(record_or_target, paths: MachinePaths, accept_host_key=None, passphrase=None):
    from ..tunnel.known_hosts import KnownHosts
    from ..tunnel.ssh import Connection, SSHTarget

    target = record_or_target if isinstance(record_or_target, SSHTarget) else SSHTarget.from_dict(record_or_target["ssh"])
    return Connection(target, KnownHosts(paths.known_hosts), accept_host_keys=accept_host_key or (),
                      passphrase=passphrase)


def load_record(name: str) -> dict:
    """A remote machine's record.

    Raises:
        MachineError: no such remote machine.
    """
    paths = MachinePaths.for_name(name)
    rec = control.read_json(paths.machine_json)
    if not rec or rec.get("mode") != MODE:
        raise MachineError("no remote machine named %r: see `hostbridge remote ls`" % name, machine=name)
    return rec


def save_record(paths: MachinePaths, record: dict) -> None:
    """Write machine.json atomically."""
    control.write_json_atomic(paths.machine_json, record)


def _stage(name: str, stage: str, fn, *args, **kw):
    """Run one stage; a non-hostbridge error becomes a MachineError naming the stage."""
    try:
        return fn(*args, **kw)
    except HostbridgeError:
        raise
    except Exception as e:
        raise MachineError("adding %s failed at %s: %s" % (name, stage, e), machine=name, stage=stage) from e


def add_remote(name: str, url: str, identity: str | None = None, accept_host_key: str | None = None,
               passphrase: str | None = None, remember_passphrase: bool = False, remote_dir: str | None = None,
               start: str = "auto", shim: str = "auto", shim_path: str | None = None, endpoint: str | None = None,
               forward_ports: bool = True, ssh_config: str | None = None, allow_rootless: bool = False,
               settings: tuple | None = None) -> dict:
    """Add a remote machine: pin its key, deploy and start the engine, start the tunnel, ping.

    Args:
        name: the machine's name.
        url: ``ssh://user@host:port`` (or an alias from ~/.ssh/config).
        identity: ``-i`` key file.
        accept_host_key: the host key fingerprint the user confirmed (first contact).
        passphrase, remember_passphrase: the key's passphrase, kept in the OS keyring if asked.
        remote_dir, start, shim, shim_path, allow_rootless: see ``deploy.deploy``.
        endpoint: "unix" or "npipe" for the local endpoint (default: unix, npipe on Windows).
        forward_ports: forward published container ports to host 127.0.0.1.
        ssh_config: an ssh config file instead of ~/.ssh/config.
        settings: (proxies, CA files) the engine is given (see ``engine_settings``); None: none.
    Returns:
        The machine record (``endpoint_url`` included).
    Raises:
        HostKeyError: the key is not confirmed yet (``got`` holds its fingerprint) or changed.
        SSHAuthError, SSHUnreachable, RemoteHostError, MachineError (``stage`` says where).
    """
    from ..tunnel.ssh import parse_ssh_url, remember_passphrase as keep, resolve_target

    paths = MachinePaths.for_name(name)
    endpoint = endpoint or control.default_endpoint()
    if os.path.exists(paths.machine_json):
        raise MachineError("a machine named %r exists already: pick another name or `hostbridge remote rm %s`"
                           % (name, name), machine=name, stage="create")
    user, host, port = parse_ssh_url(url)
    target = resolve_target(host, user=user, port=port, identity_files=[identity] if identity else (),
                            config_path=ssh_config)
    created = not os.path.isdir(paths.dir)
    os.makedirs(paths.dir, exist_ok=True)
    try:
        with _connection(target, paths, accept_host_key, passphrase) as conn:
            if remember_passphrase and passphrase and target.identity_files:
                keep(target.identity_files[0], passphrase)
            layout = _stage(name, "deploy", deploy.deploy, conn, paths.engine_zipapp_dir, remote_dir=remote_dir,
                            start=start, shim=shim, shim_path=shim_path, allow_rootless=allow_rootless)
            if settings is not None:
                _stage(name, "deploy", deploy.write_settings, conn, layout, *settings)
            _stage(name, "start", deploy.start_engine, conn, layout)
        control.write_config(paths, {"ssh": target.to_dict(), "remote_socket": layout.socket,
                                     "endpoint": endpoint, "forward_ports": forward_ports, "keepalive": 15})
        url_local = _stage(name, "tunnel", control.ensure_agent, paths)
        if not localhttp.ping(url_local):
            raise MachineError("the engine on %s does not answer /_ping through the tunnel: see %s and the "
                               "engine log %s there" % (host, paths.agent_log, layout.log), machine=name, stage="ping")
        record = {"name": name, "mode": MODE, "driver": "", "endpoint_url": url_local, "url": url,
                  "ssh": target.to_dict(), "layout": layout.to_dict(), "endpoint_kind": endpoint,
                  "created_at": time.time()}
        save_record(paths, record)
        return record
    except BaseException:
        control.stop_agent(paths)
        if created:
            shutil.rmtree(paths.dir, ignore_errors=True)
        raise


def list_remotes() -> list:
    """Every remote machine: name, url, agent state, endpoint, engine version deployed."""
    out = []
    base = machines_dir()
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        rec = control.read_json(os.path.join(base, name, "machine.json"))
        if not rec or rec.get("mode") != MODE:
            continue
        st = control.tunnel_status(MachinePaths.for_name(name))
        out.append({"name": name, "url": rec.get("url"), "state": st.get("state"),
                    "endpoint": st.get("endpoint") or rec.get("endpoint_url"),
                    "engine_version": rec.get("layout", {}).get("version")})
    return out


def endpoint_for(name: str, check_version: bool = True) -> str:
    """The machine's local endpoint, starting its agent if needed.

    When the agent had to be (re)started and ``check_version`` is set, the engine is checked
    through it: one that does not answer (the host rebooted without systemd) is started again,
    and one whose ``/version`` is older than this host's is upgraded in place.

    Raises:
        MachineError: no such machine; TunnelError subclasses from the agent; RemoteHostError
            when the engine cannot be started.
    """
    paths = MachinePaths.for_name(name)
    rec = load_record(name)
    was_up = control.agent_alive(paths)
    url = control.ensure_agent(paths)
    if not check_version or was_up:
        return url
    try:
        remote = localhttp.get_json(url, "/version").get("Version", "")
    except HostbridgeError:
        with _connection(rec, paths) as conn:
            deploy.start_engine(conn, deploy.Layout.from_dict(rec["layout"]))
        remote = localhttp.get_json(url, "/version").get("Version", "")
    if deploy.version_tuple(remote) < deploy.version_tuple(deploy.engine_version()):
        upgrade_remote(name, _record=rec)
        url = control.ensure_agent(paths)
    return url


def upgrade_remote(name: str, _record: dict | None = None, settings: tuple | None = None) -> dict:
    """Swap the machine's engine for this host's version and restart it.

    ``settings`` (proxies, CA files), when given, replace the engine's before it restarts.

    Returns:
        {"from": old version, "to": new version, "running": [container ids still running]} —
        running containers survive (their shims are not the engine) and are reported.
    """
    paths = MachinePaths.for_name(name)
    rec = _record or load_record(name)
    layout = deploy.Layout.from_dict(rec["layout"])
    running = []
    try:
        url = control.ensure_agent(paths)
        running = [c.get("Id", "") for c in localhttp.get_json(url, "/containers/json")]
    except HostbridgeError:
        pass  # an engine that does not answer has nothing running to report; upgrade anyway
    with _connection(rec, paths) as conn:
        if settings is not None:
            deploy.write_settings(conn, layout, *settings)
        new = deploy.upgrade(conn, layout, paths.engine_zipapp_dir)
    rec["layout"] = new.to_dict()
    save_record(paths, rec)
    return {"from": layout.version, "to": new.version, "running": running}


def remove_remote(name: str, stop_engine: bool = False) -> None:
    """Forget a remote machine: stop its agent, delete its dir (pins, logs).

    Args:
        stop_engine: also stop the engine on the far side (images and containers stay there).
    """
    paths = MachinePaths.for_name(name)
    rec = load_record(name)
    control.stop_agent(paths)
    if stop_engine:
        try:
            with _connection(rec, paths) as conn:
                deploy.stop_engine(conn, deploy.Layout.from_dict(rec["layout"]))
        except TunnelError as e:
            raise MachineError("cannot stop the engine on %s (%s): remove without --stop-engine to forget it anyway"
                               % (rec["ssh"]["hostname"], e), machine=name, stage="stop") from None
    shutil.rmtree(paths.dir, ignore_errors=True)
