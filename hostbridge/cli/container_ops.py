"""Container commands on one container's state: port, diff, commit, export, update."""

from __future__ import annotations

import click

from . import options as opt

_CHANGE_KIND = {0: "C", 1: "A", 2: "D"}


def _join_host_port(ip, port):
    return "[%s]:%s" % (ip, port) if ":" in ip else "%s:%s" % (ip, port)


def port_lines(ports, private=None):
    """``docker port`` lines from inspect's ``NetworkSettings.Ports``.

    Args:
        ports: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], …}``.
        private: ``"80"`` or ``"80/udp"``: only that port's host addresses.
    Returns:
        The lines, sorted as docker sorts them; ``None`` when ``private`` is not published.
    """
    ports = ports or {}
    if private is not None:
        number, _, proto = private.partition("/")
        bindings = ports.get("%s/%s" % (number, proto or "tcp")) or []
        if not bindings:
            return None
        out = [_join_host_port(b.get("HostIp", ""), b.get("HostPort", "")) for b in bindings]
    else:
        out = ["%s -> %s" % (key, _join_host_port(b.get("HostIp", ""), b.get("HostPort", "")))
               for key, bindings in ports.items() for b in bindings or ()]
    from .networks import natural_key

    return sorted(out, key=natural_key)


@click.command()
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
@click.pass_obj
def port(app, container, private_port):
    """List port mappings or a specific mapping for the container."""
    if private_port is not None:
        number = private_port.partition("/")[0]
        if not number.isdigit() or int(number) > 65535:
            app.abort("Error: invalid port (%s): use a number from 1 to 65535, with an optional /tcp or /udp"
                      % number)
    info = app.client.inspect_container(container)
    lines = port_lines((info.get("NetworkSettings") or {}).get("Ports"), private_port)
    if lines is None:
        app.abort("Error: No public port '%s' published for %s" % (private_port, container))
    for line in lines:
        app.out(line)


@click.command()
@click.argument("container")
@click.pass_obj
def diff(app, container):
    """Inspect changes to files or directories on a container's filesystem (A added, C changed, D deleted)."""
    for change in app.client.changes(container):
        app.out("%s %s" % (_CHANGE_KIND.get(change.get("Kind"), "?"), change.get("Path", "")))


@click.command()
@click.option("-a", "--author", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option("-c", "--change", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", help="Commit message.")
@click.option("-p", "--pause", type=click.BOOL, is_flag=False, flag_value=True, default=True,
              help="Pause container during commit (--pause=false to not).")
@click.argument("container")
@click.argument("reference", required=False, metavar="[REPOSITORY[:TAG]]")
@click.pass_obj
def commit(app, author, change, message, pause, container, reference):
    """Create a new image from a container's changes (prints its ID)."""
    from .listing import split_reference

    repo, tag = split_reference(reference) if reference else (None, None)
    reply = app.client.commit(container, repo, tag or None, message, author, list(change), pause)
    app.out(reply["Id"])


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file, instead of STDOUT.")
@click.argument("container")
@click.pass_obj
def export(app, output, container):
    """Export a container's filesystem as a tar archive (streamed to STDOUT by default)."""
    app.write_stream(app.client.export(container), output)


def update_body(o):
    """The ``POST /containers/ID/update`` body from ``update``'s flags (only those given).

    Raises:
        UsageError: a malformed value.
    """
    body = {}
    if o.get("memory"):
        body["Memory"] = opt.parse_bytes(o["memory"])
    if o.get("memory_reservation"):
        body["MemoryReservation"] = opt.parse_bytes(o["memory_reservation"])
    if o.get("memory_swap"):
        body["MemorySwap"] = -1 if o["memory_swap"] == "-1" else opt.parse_bytes(o["memory_swap"])
    if o.get("cpus"):
        body["NanoCpus"] = opt.parse_cpus(o["cpus"])
    for flag, key in (("cpu_shares", "CpuShares"), ("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota"),
                      ("pids_limit", "PidsLimit"), ("cpuset_cpus", "CpusetCpus")):
        if o.get(flag) is not None:
            body[key] = o[flag]
    if o.get("restart"):
        body["RestartPolicy"] = opt.parse_restart(o["restart"])
    return body


@click.command()
@click.option("-m", "--memory", help="Memory limit.")
@click.option("--memory-reservation", help="Memory soft limit.")
@click.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap.")
@click.option("--cpus", help="Number of CPUs.")
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight).")
@click.option("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period.")
@click.option("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota.")
@click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1).")
@click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited).")
@click.option("--restart", help="Restart policy to apply when a container exits.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def update(app, containers, **o):
    """Update configuration of one or more containers."""
    body = update_body(o)
    if not body:
        app.abort("Error: you must provide one or more flags when using this command")

    def apply(name):
        for warning in app.client.update_container(name, body).get("Warnings") or ():
            app.err(warning)

    app.for_each(containers, apply)
