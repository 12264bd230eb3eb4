"""``version`` and ``info``: the client's and the engine's, laid out like docker's."""

from __future__ import annotations

import platform
import sys

import click

from .. import __version__
from . import format as fmt


def _block(lines):
    # Docker lays these out with tabwriter(minwidth 20, padding 1), one block per run of
    # tab-separated lines.
    out, block = [], []

    def flush():
        if block:
            out.append(fmt.table(block, minwidth=20, padding=1))
            block.clear()

    for line in lines:
        if "\t" in line:
            block.append(line.split("\t"))
        else:
            flush()
            out.append(line + "\n")
    flush()
    return "".join(out)


def _arch():
    from ..guest.goarch import go_arch  # stdlib only, shared with the engine
    return go_arch()


def client_lines(app, server_api=None):
    """The ``Client:`` section."""
    return [
        "Client:",
        " Version:\t%s" % __version__,
        " API version:\t%s" % (server_api or "1.44"),
        " Python version:\t%s" % platform.python_version(),
        " OS/Arch:\t%s/%s" % (sys.platform if sys.platform != "darwin" else "darwin", _arch()),
        " Endpoint:\t%s" % app.endpoint.url,
    ]


def server_lines(v):
    """The ``Server:`` section from ``/version``, as the docker CLI prints it."""
    lines = ["Server:" + (" %s" % v["Platform"]["Name"] if (v.get("Platform") or {}).get("Name") else "")]
    components = v.get("Components") or [{"Name": "Engine", "Version": v.get("Version"), "Details": {
        "ApiVersion": v.get("ApiVersion"), "MinAPIVersion": v.get("MinAPIVersion"), "GoVersion": v.get("GoVersion"),
        "GitCommit": v.get("GitCommit"), "BuildTime": v.get("BuildTime"), "Os": v.get("Os"),
        "Arch": v.get("Arch"), "Experimental": str(v.get("Experimental", False)).lower()}}]
    for comp in components:
        d = comp.get("Details") or {}
        lines.append(" %s:" % comp.get("Name"))
        if comp.get("Name") == "Engine":
            lines += [
                "  Version:\t%s" % comp.get("Version"),
                "  API version:\t%s (minimum version %s)" % (d.get("ApiVersion"), d.get("MinAPIVersion")),
                "  Go version:\t%s" % d.get("GoVersion"),
                "  Git commit:\t%s" % d.get("GitCommit"),
                "  Built:\t%s" % fmt.ansic(d.get("BuildTime")),
                "  OS/Arch:\t%s/%s" % (d.get("Os"), d.get("Arch")),
                "  Experimental:\t%s" % d.get("Experimental"),
            ]
        else:
            lines.append("  Version:\t%s" % comp.get("Version"))
            lines += ["  %s:\t%s" % (k, d[k]) for k in sorted(d)]
    return lines


@click.command()
@click.option("-f", "--format", "format_", help="Format output using a Go template subset ({{.Server.Version}}).")
@click.pass_obj
def version(app, format_):
    """Show the hostbridge and engine version information."""
    from ..errors import HostbridgeError

    try:
        server, error = app.client.version(), None
    except HostbridgeError as e:
        server, error = None, e
    if format_:
        from .template import Template

        app.out(Template(format_).render({"Client": {"Version": __version__}, "Server": server}))
    else:
        lines = client_lines(app, (server or {}).get("ApiVersion"))
        if server:
            lines += [""] + server_lines(server)
        app.out(_block(lines), nl=False)
    if error:
        raise error


INFO_FIELDS = [
    ("Containers", "Containers"), (" Running", "ContainersRunning"), (" Paused", "ContainersPaused"),
    (" Stopped", "ContainersStopped"), ("Images", "Images"), ("Server Version", "ServerVersion"),
    ("Storage Driver", "Driver"), ("Logging Driver", "LoggingDriver"), ("Cgroup Driver", "CgroupDriver"),
    ("Cgroup Version", "CgroupVersion"), ("Kernel Version", "KernelVersion"),
    ("Operating System", "OperatingSystem"), ("OSType", "OSType"), ("Architecture", "Architecture"),
    ("CPUs", "NCPU"), ("Total Memory", "MemTotal"), ("Name", "Name"), ("ID", "ID"),
    ("Docker Root Dir", "DockerRootDir"), ("Debug Mode", "Debug"),
]


def info_lines(info):
    """The ``Server:`` part of ``info``: docker's field names, indented one space."""
    lines = ["Server:"]
    for title, key in INFO_FIELDS:
        if key not in info:
            continue
        value = info[key]
        if key == "MemTotal":
            value = fmt.bytes_size(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        lines.append(" %s: %s" % (title, value))
    labels = info.get("Labels") or []
    if labels:
        lines.append(" Labels:")
        lines += ["  %s" % label for label in labels]
    return lines


@click.command()
@click.option("-f", "--format", "format_", help="Format output using a Go template subset ({{.NCPU}}).")
@click.pass_obj
def info(app, format_):
    """Display system-wide information."""
    data = app.client.info()
    if format_:
        from .template import Template

        app.out(Template(format_).render(data))
        return
    app.out("\n".join(["Client:", " Version:    %s" % __version__, " Endpoint:   %s" % app.endpoint.url, ""]
                      + info_lines(data)))
