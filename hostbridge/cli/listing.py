"""The listing commands, ``ps`` and ``images``: their options, rows and output, free of click.

``fast.py`` runs them straight from ``sys.argv`` (a plain ``hostbridge ps`` must start about as
fast as ``docker ps``); ``containers.py`` and ``images.py`` turn the same specs into the click
commands for help and for anything unusual.
"""

from __future__ import annotations

import time

from . import format as fmt
from .options import parse_filters
from .spec import Arg, Opt, Spec

PS_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_COLUMNS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES"}


def _go_time(ts):
    # Go's time.Time.String() for a UNIX time, in local time: "2026-11-28 06:35:01 +0000 UTC".
    t = time.localtime(ts)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", t) + time.strftime("%Z", t)


def _image(c, trunc):
    image = c.get("Image") or ""
    if not image:
        return "<no image>"
    if trunc:
        if fmt.short_id(c.get("ImageID")) == fmt.short_id(image):
            return fmt.short_id(image)
        return image.split("@", 1)[0]
    return image


def ps_row(c, trunc=True, now=None):
    """One ``ps`` row as docker's ContainerContext fields (strings), for tables and ``{{json .}}``."""
    names = [n.lstrip("/") for n in c.get("Names") or ()]
    if trunc:
        names = [n for n in names if "/" not in n][:1] or names[:1]
    size = ""
    if "SizeRw" in c or "SizeRootFs" in c:
        size = fmt.human_size(c.get("SizeRw") or 0)
        if c.get("SizeRootFs"):
            size = "%s (virtual %s)" % (size, fmt.human_size(c["SizeRootFs"]))
    labels = c.get("Labels") or {}
    nets = sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    mounts = [m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or ()]
    return {
        "ID": fmt.short_id(c.get("Id")) if trunc else c.get("Id", ""),
        "Image": _image(c, trunc),
        "Command": fmt.command(c.get("Command"), trunc),
        "CreatedAt": _go_time(c.get("Created", 0)),
        "RunningFor": fmt.since(c.get("Created"), now),
        "Ports": fmt.ports(c.get("Ports")),
        "State": c.get("State", ""),
        "Status": c.get("Status", ""),
        "Size": size,
        "Names": ",".join(names),
        "Labels": ",".join("%s=%s" % (k, v) for k, v in sorted(labels.items())),
        "Mounts": ",".join(fmt.ellipsis(m, 15) if trunc else m for m in mounts),
        "Networks": ",".join(nets),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or () if m.get("Driver") == "local")),
        "Platform": c.get("ImageManifestDescriptor", {}).get("platform") if c.get("ImageManifestDescriptor") else None,
    }


PS = Spec("List containers.", [
    Opt(("-a", "--all"), "all_", "Show all containers (default shows just running).", flag=True),
    Opt(("-q", "--quiet"), "quiet", "Only display container IDs.", flag=True),
    Opt(("-s", "--size"), "size", "Display total file sizes.", flag=True),
    Opt(("-n", "--last"), "last", "Show n last created containers (includes all states).", type_=int, default=-1),
    Opt(("-l", "--latest"), "latest", "Show the latest created container (includes all states).", flag=True),
    Opt(("--no-trunc",), "no_trunc", "Don't truncate output.", flag=True),
    Opt(("-f", "--filter"), "filters", "Filter output based on conditions (name=value).", multiple=True),
    Opt(("--format",), "format_", "Format output using a Go template subset, or 'table …', or 'json'."),
])


def ps(app, all_, quiet, size, last, latest, no_trunc, filters, format_):
    """List containers (``hostbridge ps``)."""
    from .template import render_rows, wants_field

    limit = 1 if latest else last
    template = format_ or (PS_FORMAT + ("\t{{.Size}}" if size else ""))
    if template == "json":
        template = "{{json .}}"
    size = size or (not quiet and wants_field(template, "Size"))
    items = app.client.containers(all=all_, limit=limit, size=size, filters=parse_filters(filters))
    if quiet:
        for c in items:
            app.out(c["Id"] if no_trunc else fmt.short_id(c["Id"]))
        return
    now = time.time()
    app.out(render_rows(template, [ps_row(c, not no_trunc, now) for c in items], PS_COLUMNS), nl=False)


IMAGES_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_COLUMNS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                  "CreatedAt": "CREATED AT", "Size": "SIZE", "Digest": "DIGEST", "Containers": "CONTAINERS",
                  "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}
def split_reference(ref):
    """``repo[:tag][@digest]`` → ``(repo, tag)``; the tag is ``""`` when absent."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, ""


def image_rows(images, trunc=True, now=None):
    """``images`` rows: one per repository tag (``<none>`` for untagged), docker's ImageContext fields."""
    rows = []
    for img in images:
        tags = [t for t in img.get("RepoTags") or () if t != "<none>:<none>"]
        digests = [d for d in img.get("RepoDigests") or () if d != "<none>@<none>"]
        refs = [split_reference(t) for t in tags]
        if not refs:
            refs = [(d.split("@", 1)[0], "<none>") for d in digests[:1]] or [("<none>", "<none>")]
        digest = digests[0].split("@", 1)[1] if digests else "<none>"
        for repo, tag in refs:
            rows.append({
                "Repository": repo, "Tag": tag or "<none>",
                "ID": fmt.short_id(img.get("Id")) if trunc else img.get("Id", ""),
                "CreatedSince": fmt.since(img.get("Created"), now),
                "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(img.get("Created", 0))),
                "Size": fmt.human_size(img.get("Size", 0)),
                "VirtualSize": fmt.human_size(img.get("VirtualSize", img.get("Size", 0)), 4),
                "Digest": digest,
                "Containers": "N/A" if img.get("Containers", -1) < 0 else str(img["Containers"]),
                "SharedSize": "N/A" if img.get("SharedSize", -1) < 0 else fmt.human_size(img["SharedSize"], 4),
                "UniqueSize": "N/A" if img.get("SharedSize", -1) < 0
                else fmt.human_size(img.get("Size", 0) - img["SharedSize"], 4),
            })
    return rows


IMAGES = Spec("List images.", [
    Opt(("-a", "--all"), "all_", "Show all images (default hides intermediate images).", flag=True),
    Opt(("-q", "--quiet"), "quiet", "Only show image IDs.", flag=True),
    Opt(("--no-trunc",), "no_trunc", "Don't truncate output.", flag=True),
    Opt(("-f", "--filter"), "filters", "Filter output based on conditions (name=value).", multiple=True),
    Opt(("--format",), "format_", "Format output using a Go template subset, or 'table …', or 'json'."),
], [Arg("repository")])


def images(app, all_, quiet, no_trunc, filters, format_, repository):
    """List images (``hostbridge images``)."""
    from .template import render_rows

    flt = parse_filters(filters)
    if repository:
        flt.setdefault("reference", []).append(repository)
    items = app.client.images(all=all_, filters=flt)
    if quiet:
        seen = []
        for img in items:
            ident = img["Id"] if no_trunc else fmt.short_id(img["Id"])
            if ident not in seen:
                seen.append(ident)
                app.out(ident)
        return
    template = format_ or IMAGES_FORMAT
    if template == "json":
        template = "{{json .}}"
    app.out(render_rows(template, image_rows(items, not no_trunc), IMAGES_COLUMNS), nl=False)
