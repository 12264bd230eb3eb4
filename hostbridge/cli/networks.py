"""``network ls/create/inspect/rm/connect/disconnect`` (``network prune`` is in prune.py)."""

from __future__ import annotations

import re
import time

import click

from . import format as fmt
from .inspect import inspect_each
from .options import parse_filters, parse_labels

NETWORK_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_COLUMNS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
                   "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def go_time_string(ts):
    """An RFC 3339 time as Go's ``time.Time.String()`` in local time (``2026-11-28 07:22:02.30952078 +0000 UTC``)."""
    t = fmt.parse_time(ts)
    if t is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    m = re.search(r"\.(\d+)", ts or "")
    frac = (m.group(1)[:9].rstrip("0") if m else "")
    local = time.localtime(int(t))
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + ("." + frac if frac else "") + \
        time.strftime(" %z %Z", local)


def natural_key(text):
    """docker's sortorder.NaturalLess as a sort key: digit runs compare as numbers."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|\D+", text)]


def network_row(n, trunc=True):
    """One ``network ls`` row (docker's networkContext fields)."""
    labels = n.get("Labels") or {}
    return {"ID": fmt.short_id(n.get("Id")) if trunc else n.get("Id", ""), "Name": n.get("Name", ""),
            "Driver": n.get("Driver", ""), "Scope": n.get("Scope", ""),
            "IPv4": "true" if n.get("EnableIPv4") else "false", "IPv6": "true" if n.get("EnableIPv6") else "false",
            "Internal": "true" if n.get("Internal") else "false",
            "Labels": ",".join("%s=%s" % (k, v) for k, v in sorted(labels.items())),
            "CreatedAt": go_time_string(n.get("Created"))}


@click.command("ls")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge').")
@click.option("--format", "format_", help="Format output using a Go template subset, or 'table …', or 'json'.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.pass_obj
def network_ls(app, filters, format_, no_trunc, quiet):
    """List networks."""
    from .template import render_rows

    items = sorted(app.client.networks(parse_filters(filters)), key=lambda n: natural_key(n.get("Name", "")))
    rows = [network_row(n, not no_trunc) for n in items]
    if quiet:
        for r in rows:
            app.out(r["ID"])
        return
    template = "{{json .}}" if format_ == "json" else format_ or NETWORK_FORMAT
    app.out(render_rows(template, rows, NETWORK_COLUMNS), nl=False)


@click.command("create")
@click.option("-d", "--driver", default="bridge", help="Driver to manage the Network.")
@click.option("--subnet", multiple=True, help="Subnet in CIDR format that represents a network segment.")
@click.option("--gateway", multiple=True, help="IPv4 or IPv6 Gateway for the master subnet.")
@click.option("--ip-range", multiple=True, help="Allocate container ip from a sub-range.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment.")
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking.")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options (key=value).")
@click.option("--label", multiple=True, help="Set metadata on a network (key=value).")
@click.argument("name")
@click.pass_obj
def network_create(app, driver, subnet, gateway, ip_range, internal, attachable, ipv6, opt, label, name):
    """Create a network (prints its ID)."""
    if len(gateway) > len(subnet) or len(ip_range) > len(subnet):
        app.abort("Error: every --gateway and --ip-range needs its own --subnet")
    config = []
    for i, sub in enumerate(subnet):
        entry = {"Subnet": sub}
        if i < len(gateway):
            entry["Gateway"] = gateway[i]
        if i < len(ip_range):
            entry["IPRange"] = ip_range[i]
        config.append(entry)
    body = {"Name": name, "Driver": driver, "Options": parse_labels(opt), "Labels": parse_labels(label),
            "Internal": internal, "Attachable": attachable, "EnableIPv6": ipv6, "CheckDuplicate": True,
            "IPAM": {"Driver": "default", "Config": config, "Options": {}}}
    reply = app.client.create_network(body)
    if reply.get("Warning"):
        app.err("WARNING: %s" % reply["Warning"])
    app.out(reply["Id"])


@click.command("inspect")
@click.option("-f", "--format", "format_", help="Format output using a Go template subset.")
@click.option("-v", "--verbose", is_flag=True, help="Verbose output for diagnostics.")
@click.argument("networks", nargs=-1, required=True)
@click.pass_obj
def network_inspect(app, format_, verbose, networks):
    """Display detailed information on one or more networks."""
    inspect_each(app, networks, lambda n: app.client.inspect_network(n, verbose), format_)


@click.command("rm")
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
@click.argument("networks", nargs=-1, required=True)
@click.pass_obj
def network_rm(app, force, networks):
    """Remove one or more networks."""
    from ..errors import NotFound

    def remove(name):
        try:
            app.client.remove_network(name)
        except NotFound:
            if not force:
                raise
            return []

    app.for_each(networks, remove)


@click.command("connect")
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container.")
@click.option("--ip", help="IPv4 address (e.g., 172.30.100.104).")
@click.option("--ip6", help="IPv6 address (e.g., 2001:db8::33).")
@click.option("--link", multiple=True, help="Add link to another container.")
@click.argument("network")
@click.argument("container")
@click.pass_obj
def network_connect(app, alias, ip, ip6, link, network, container):
    """Connect a container to a network."""
    app.client.connect_container_to_network(container, network, aliases=alias, ipv4_address=ip, links=link,
                                            ipv6_address=ip6)


@click.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network.")
@click.argument("network")
@click.argument("container")
@click.pass_obj
def network_disconnect(app, force, network, container):
    """Disconnect a container from a network."""
    app.client.disconnect_container_from_network(container, network, force=force)
