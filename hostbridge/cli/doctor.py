"""`hostbridge doctor [--machine NAME] [--json]`: prints ``hostbridge.doctor``'s checks."""

from __future__ import annotations

import json
import sys

import click

from .machine import machine_option


def _marks():
    """✓/✗/- where stdout can show them, else ok/FAIL/skip."""
    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(enc)
        return {True: "✓", False: "✗", None: "-"}
    except (UnicodeEncodeError, LookupError):
        return {True: "ok", False: "FAIL", None: "skip"}


@click.command()
@machine_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document: a list of {check, ok, skipped, figure, fix}.")
@click.option("--dns-name", default="registry-1.docker.io", show_default=True,
              help="The name the DNS check resolves in a container.")
@click.option("--dns-image", default="busybox:latest", show_default=True,
              help="A local image with nslookup for the DNS check (never pulled).")
@click.option("--dns-server", default="", metavar="IP", help="Ask this resolver instead of the container's default.")
@click.pass_obj
def doctor(app, as_json, dns_name, dns_image, dns_server):
    """Check the selected machine: one line per check, with what was seen and a fix; exit 1 if any fails."""
    from .. import doctor as checks

    results = checks.run(app.config, dns_name=dns_name, dns_image=dns_image, dns_server=dns_server)
    if as_json:
        app.out(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        marks = _marks()
        width = max(len(r.name) for r in results)
        for r in results:
            line = "%s %-*s  %s" % (marks[r.ok], width, r.name, r.figure)
            if r.ok is False and r.fix:
                line += "  → fix: %s" % r.fix if marks[True] == "✓" else "  -> fix: %s" % r.fix
            app.out(line)
    if any(r.ok is False for r in results):
        raise click.exceptions.Exit(1)
