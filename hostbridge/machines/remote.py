"""Remote mode: any Linux host reachable by SSH becomes a machine.

``add_remote`` runs its steps through the one sequencer (``stages.Stages``) — connect (pin
the host key) → deploy → start → tunnel → ping — each named, so an error says which one
failed, and a failed add leaves nothing behind. The machine's record is the one every mode
has (``record.Machine``, mode ``remote``); its fields keep the SSH target and the far side's
layout, which ``upgrade_remote`` and ``remove_remote`` need. While an add runs the record
says ``starting``, so one that crashed is seen (``hostbridge ls``) and cleared by the next add.
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
from . import stages
from .record import Machine, load, lock

MODE = "remote"

# Stage name → progress text, and what to do when it fails (NAME: the machine).
STAGES = {
    "connect": ("connecting over SSH", "check the URL, the key and the host key; see `hostbridge remote add --help`"),
    "deploy": ("deploying the engine", "check that the host has python3 >= 3.9 and free space"),
    "start": ("starting the engine", "see the engine log on the host"),
    "tunnel": ("starting the tunnel", "see `hostbridge tunnel status NAME`"),
    "ping": ("waiting for the engine", "see the agent log and the engine log on the host"),
}


def _error(name, stage, cause):
    # Ours pass as they are (the CLI asks about a HostKeyError's fingerprint); a library's error
    # becomes one naming the stage.
    if isinstance(cause, HostbridgeError):
        if getattr(cause, "stage", None) is None:
            cause.stage = stage
        return cause
    return stages.StageFailed(name, stage, cause, hint=STAGES[stage][1].replace("NAME", name),
                              action="`remote add`")


def _connection(record_or_target, paths: MachinePaths, accept_host_key=None, passphrase=None):
    from ..tunnel.known_hosts import KnownHosts
    from ..tunnel.ssh import Connection, SSHTarget

    target = record_or_target if isinstance(record_or_target, SSHTarget) else SSHTarget.from_dict(record_or_target["ssh"])
    return Connection(target, KnownHosts(paths.known_hosts), accept_host_keys=accept_host_key or (),
                      passphrase=passphrase)


def load_machine(name: str) -> Machine:
    """A remote machine's record.

    Raises:
        MachineError: no such remote machine.
    """
    record = load(name)
    if record is None or record.mode != MODE:
        raise MachineError("no remote machine named %r: see `hostbridge remote ls`" % name, machine=name)
    return record


def load_record(name: str) -> dict:
    """A remote machine's record as a dict (``load_machine(name).to_dict()``).

    Raises:
        MachineError: no such remote machine.
    """
    return load_machine(name).to_dict()


def save_record(paths: MachinePaths, record: dict) -> None:
    """Write ``record`` (a dict with ``name``) as the machine record in ``paths``."""
    Machine.from_dict(record.get("name") or paths.name, dict(record, mode=MODE)).save(paths)


def add_remote(name: str, url: str, identity: str | None = None, accept_host_key: str | None = None,
               passphrase: str | None = None, remember_passphrase: bool = False, remote_dir: str | None = None,
               start: str = "auto", shim: str = "auto", shim_path: str | None = None, endpoint: str | None = None,
               forward_ports: bool = True, ssh_config: str | None = None, allow_rootless: bool = False,
               settings: tuple | None = None, progress=None) -> dict:
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
        progress: ``(stage, text)`` callback, one call per stage.
    Returns:
        The machine record as a dict (``endpoint_url`` included).
    Raises:
        HostKeyError: the key is not confirmed yet (``got`` holds its fingerprint) or changed.
        SSHAuthError, SSHUnreachable, RemoteHostError, MachineError (``stage`` says where).
    """
    from ..tunnel.ssh import parse_ssh_url, remember_passphrase as keep, resolve_target

    paths = MachinePaths.for_name(name)
    endpoint = endpoint or control.default_endpoint()
    existing = load(name)
    if existing is not None and not _crashed_add(existing):
        raise MachineError("a machine named %r exists already: pick another name or `hostbridge remote rm %s`"
                           % (name, name), machine=name, stage="create")
    user, host, port = parse_ssh_url(url)
    target = resolve_target(host, user=user, port=port, identity_files=[identity] if identity else (),
                            config_path=ssh_config)
    created = existing is not None or not os.path.isdir(paths.dir)
    run = stages.Stages(name, STAGES, progress, action="`remote add`", error=_error)
    with lock(name):
        if existing is not None:  # what a crashed add left: its agent and files
            control.stop_agent(paths)
        record = Machine(name, MODE, "", "", {"url": url, "ssh": target.to_dict(), "endpoint_kind": endpoint,
                                              "created_at": time.time()})
        run.on_failure(control.stop_agent, paths)
        if created:
            run.on_failure(shutil.rmtree, paths.dir, ignore_errors=True)
        else:
            run.on_failure(_remove_file, paths.machine_json)
        stages.mark_starting(record)
        try:
            conn = _connection(target, paths, accept_host_key, passphrase)
            with run.run("connect", conn.open):
                if remember_passphrase and passphrase and target.identity_files:
                    keep(target.identity_files[0], passphrase)
                layout = run.run("deploy", deploy.deploy, conn, paths.engine_zipapp_dir, remote_dir=remote_dir,
                                 start=start, shim=shim, shim_path=shim_path, allow_rootless=allow_rootless)
                if settings is not None:
                    run.run("deploy", deploy.write_settings, conn, layout, *settings)
                run.run("start", deploy.start_engine, conn, layout)
            control.write_config(paths, {"ssh": target.to_dict(), "remote_socket": layout.socket,
                                         "endpoint": endpoint, "forward_ports": forward_ports, "keepalive": 15})
            url_local = run.run("tunnel", control.ensure_agent, paths)
            if not run.run("ping", localhttp.ping, url_local):
                raise MachineError("the engine on %s does not answer /_ping through the tunnel: see %s and the "
                                   "engine log %s there" % (host, paths.agent_log, layout.log), machine=name,
                                   stage="ping")
            record.endpoint_url = url_local
            record.fields["layout"] = layout.to_dict()
            for key in ("state", "up_pid"):  # a remote machine's state is its tunnel's (`remote ls`)
                record.fields.pop(key, None)
            record.save()
            return record.to_dict()
        except BaseException:
            run.cleanup()
            raise


def _crashed_add(record) -> bool:
    """Whether ``record`` is what an ``add_remote`` that died left (``starting``, its pid gone)."""
    from .vmmode import pid_alive

    return (record.mode == MODE and record.fields.get("state") == stages.STARTING
            and not pid_alive(record.fields.get("up_pid")))


def _remove_file(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def list_remotes() -> list:
    """Every remote machine: name, url, agent state, endpoint, engine version deployed."""
    out = []
    base = machines_dir()
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        try:
            record = load(name)
        except MachineError:
            continue  # not a machine this lists
        if record is None or record.mode != MODE:
            continue
        rec = record.to_dict()
        st = control.tunnel_status(MachinePaths.for_name(name))
        starting = rec.get("state") == stages.STARTING
        out.append({"name": name, "url": rec.get("url"),
                    "state": ("half-added" if _crashed_add(record) else "adding") if starting else st.get("state"),
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
    if stop_engine and rec.get("layout"):  # an add that crashed deployed nothing to stop
        try:
            with _connection(rec, paths) as conn:
                deploy.stop_engine(conn, deploy.Layout.from_dict(rec["layout"]))
        except TunnelError as e:
            raise MachineError("cannot stop the engine on %s (%s): remove without --stop-engine to forget it anyway"
                               % (rec["ssh"]["hostname"], e), machine=name, stage="stop") from None
    shutil.rmtree(paths.dir, ignore_errors=True)
