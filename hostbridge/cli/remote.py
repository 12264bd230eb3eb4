"""`hostbridge remote …` and `hostbridge tunnel status`: click commands over ``machines.remote``.

Register in the root group with ``root.add_command(remote_group)``, ``root.add_command(context_group)`` and
``root.add_command(tunnel_group)``. Errors become ``click.ClickException`` (one line, exit 1)
until the CLI's app object offers ``abort()``.
"""

from __future__ import annotations

import click

from ..errors import HostbridgeError, HostKeyError


def _fail(e: Exception):
    raise click.ClickException(str(e)) from None


def _interactive() -> bool:
    """Whether a person can answer a question on stdin."""
    return click.get_text_stream("stdin").isatty()


def _engine_settings():
    """(proxies, CA files) for a remote engine from the config and this host's environment, after
    printing the notes (a loopback proxy the far side cannot reach)."""
    from .. import config as configuration
    from .. import engine_settings

    cfg = configuration.load()
    proxies, notes = engine_settings.proxies(cfg, remote=True)
    for note in notes:
        click.echo("note: " + note, err=True)
    return proxies, engine_settings.ca_files(cfg)


@click.group("remote")
def remote_group():
    """Manage remote machines: Linux hosts reached over SSH."""


@remote_group.command("add")
@click.argument("name")
@click.argument("url")
@click.option("-i", "--identity", type=click.Path(dir_okay=False), help="SSH private key file.")
@click.option("--accept-host-key", "accept", metavar="SHA256:…", help="Trust this host key fingerprint.")
@click.option("--remember-passphrase", is_flag=True, help="Ask for the key's passphrase and keep it in the OS keyring.")
@click.option("--endpoint", type=click.Choice(["unix", "npipe"]), default=None,
              help="Local endpoint: a unix socket (default), or a named pipe (default on Windows).")
@click.option("--no-port-forwarding", is_flag=True, help="Do not forward published ports to 127.0.0.1.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask; refuse an unknown host key unless --accept-host-key.")
@click.option("-F", "--ssh-config", "ssh_config", type=click.Path(dir_okay=False),
              help="An ssh config file instead of ~/.ssh/config.")
def remote_add(name, url, identity, accept, remember_passphrase, endpoint, no_port_forwarding, yes, ssh_config):
    """Add NAME at URL (ssh://user@host[:port]): pin the key, deploy and start the engine."""
    from ..machines import remote

    passphrase = click.prompt("Passphrase for %s" % identity, hide_input=True) if remember_passphrase and identity else None
    try:
        settings = _engine_settings()
    except HostbridgeError as e:
        _fail(e)
    for _attempt in range(2):  # at most one interactive confirmation
        try:
            rec = remote.add_remote(name, url, identity=identity, accept_host_key=accept, passphrase=passphrase,
                                    remember_passphrase=remember_passphrase, endpoint=endpoint,
                                    forward_ports=not no_port_forwarding, ssh_config=ssh_config,
                                    settings=settings)
            break
        except HostKeyError as e:
            if e.expected is not None or accept or yes or not _interactive():
                _fail(e)
            click.echo("The host key of %s has the fingerprint %s." % (e.hostname, e.got), err=True)
            if not click.confirm("Trust it and continue?", err=True):
                _fail(e)
            accept = e.got
        except HostbridgeError as e:
            _fail(e)
    click.echo("%s: engine %s running on %s; endpoint %s" % (name, rec["layout"]["version"], url, rec["endpoint_url"]))
    click.echo('Use it with: hostbridge use %s   or   eval "$(hostbridge env %s)"' % (name, name))


def _emit(format_, rows, columns) -> bool:
    """``--format`` output for these click commands (no app object here); see machine.emit."""
    if not format_:
        return False
    from .template import render_rows

    try:
        click.echo(render_rows("{{json .}}" if format_ == "json" else format_, rows, columns), nl=False)
    except HostbridgeError as e:
        _fail(e)
    return True


_FORMAT_HELP = "Format output with a Go template (as `docker ps`), 'table …', or 'json'."


@remote_group.command("ls")
@click.option("--format", "format_", metavar="TEMPLATE", help=_FORMAT_HELP)
@click.option("-q", "--quiet", is_flag=True, help="Only machine names.")
def remote_ls(format_, quiet):
    """List remote machines."""
    from ..machines import remote

    rows = remote.list_remotes()
    if quiet:
        for r in rows:
            click.echo(r["name"])
        return
    if _emit(format_, [{"Name": r["name"], "Tunnel": r["state"], "Engine": r["engine_version"] or "", "URL": r["url"],
                        "Endpoint": r["endpoint"] or ""} for r in rows],
             {"Name": "NAME", "Tunnel": "TUNNEL", "Engine": "ENGINE", "URL": "URL", "Endpoint": "ENDPOINT"}):
        return
    click.echo("%-16s %-12s %-10s %-40s %s" % ("NAME", "TUNNEL", "ENGINE", "URL", "ENDPOINT"))
    for r in rows:
        click.echo("%-16s %-12s %-10s %-40s %s" % (r["name"], r["state"], r["engine_version"] or "-", r["url"],
                                                  r["endpoint"] or "-"))


@remote_group.command("rm")
@click.argument("name")
@click.option("--stop-engine", is_flag=True, help="Also stop the engine on the host (its data stays).")
def remote_rm(name, stop_engine):
    """Forget remote machine NAME (its host key pin, tunnel and logs)."""
    from ..machines import remote

    try:
        remote.remove_remote(name, stop_engine=stop_engine)
        from .. import contexts

        contexts.remove(name)
    except HostbridgeError as e:
        _fail(e)
    click.echo("removed %s" % name)


@remote_group.command("upgrade")
@click.argument("name")
def remote_upgrade(name):
    """Replace NAME's engine with this hostbridge's version (images and containers are kept)."""
    from ..machines import remote

    try:
        res = remote.upgrade_remote(name, settings=_engine_settings())
    except HostbridgeError as e:
        _fail(e)
    click.echo("%s: engine %s -> %s" % (name, res["from"], res["to"]))
    if res["running"]:
        click.echo("%d container(s) kept running: %s" % (len(res["running"]), " ".join(c[:12] for c in res["running"])))


@click.group("tunnel")
def tunnel_group():
    """Inspect the SSH tunnel agent of a machine."""


@tunnel_group.command("status")
@click.argument("name", required=False, envvar="HOSTBRIDGE_MACHINE")
@click.option("--format", "format_", metavar="TEMPLATE", help=_FORMAT_HELP)
@click.option("-q", "--quiet", is_flag=True, help="Only the state (connected, reconnecting, stopped…).")
def tunnel_status(name, format_, quiet):
    """Show NAME's tunnel: state, endpoint, reconnects, forwarded ports, last error."""
    if not name:
        raise click.UsageError("name a machine (or set HOSTBRIDGE_MACHINE)")
    from ..tunnel import control
    from ..paths import MachinePaths

    paths = MachinePaths.for_name(name)
    st = control.tunnel_status(paths)
    if quiet:
        click.echo(st["state"])
        return
    row = {"Machine": name, "State": st["state"], "Alive": bool(st["alive"]), "Host": st.get("host") or "",
           "Endpoint": st.get("endpoint") or "", "Channel": st.get("channel_mode") or "",
           "Reconnects": st.get("reconnects") or 0, "Connections": st.get("connections") or 0,
           "Error": st.get("error") or "", "LastError": st.get("last_error") or "",
           "Forwards": list(st.get("forwards") or []), "Log": paths.agent_log}
    if _emit(format_, [row], {"Machine": "MACHINE", "State": "STATE", "Endpoint": "ENDPOINT"}):
        return
    click.echo("machine:     %s" % name)
    click.echo("state:       %s%s" % (st["state"], "" if st["alive"] else " (no agent running)"))
    for key, label in (("host", "host"), ("endpoint", "endpoint"), ("channel_mode", "channel"),
                       ("reconnects", "reconnects"), ("connections", "connections"), ("error", "error"),
                       ("last_error", "last error")):
        if st.get(key) not in (None, ""):
            click.echo("%-12s %s" % (label + ":", st[key]))
    if st.get("forwards"):
        click.echo("forwards:    %s" % ", ".join("127.0.0.1:%d" % p for p in st["forwards"]))
    for clash in st.get("forward_clashes") or []:
        click.echo("not forwarded: %s" % clash)
    click.echo("log:         %s" % paths.agent_log)


@click.group("context")
def context_group():
    """Docker contexts for hostbridge machines (for the stock docker CLI)."""


@context_group.command("create")
@click.argument("machine", required=False, envvar="HOSTBRIDGE_MACHINE")
def context_create(machine):
    """Create (or update) docker context hostbridge-MACHINE pointing at MACHINE's local endpoint.

    ``up`` does this itself; a context of that name the user made is never overwritten.
    """
    from .. import contexts
    from .env import machine_endpoint

    try:
        endpoint = machine_endpoint(machine)
        name = contexts.write(machine or _configured_machine(), endpoint)
    except HostbridgeError as e:
        _fail(e)
    click.echo("docker context %s -> %s (use: docker --context %s ps, or docker context use %s)"
               % (name, endpoint, name, name))


@context_group.command("rm")
@click.argument("machine")
def context_rm(machine):
    """Remove docker context hostbridge-MACHINE (only one hostbridge made)."""
    from .. import contexts

    try:
        removed = contexts.remove(machine)
    except HostbridgeError as e:
        _fail(e)
    click.echo("removed docker context %s" % contexts.context_name(machine) if removed
               else "no docker context %s made by hostbridge" % contexts.context_name(machine))


def _configured_machine():
    from .. import config as configuration

    return configuration.load()["machine"]
