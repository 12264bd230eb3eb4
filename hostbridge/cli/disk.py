"""``system df``: disk use by images, containers, local volumes and the build cache, as docker sums it."""

from __future__ import annotations

import time

import click

from . import format as fmt

DF_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_COLUMNS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
_IMAGES_V = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t" \
            "{{.UniqueSize}}\t{{.Containers}}"
_CONTAINERS_V = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t" \
                "{{.Status}}\t{{.Names}}"
_VOLUMES_V = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
_CACHE_V = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t" \
           "{{.Shared}}"
_VERBOSE_COLUMNS = {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE", "ID": "CACHE ID",
                    "CacheType": "CACHE TYPE", "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                    "UsageCount": "USAGE", "Shared": "SHARED"}


def _reclaimable(reclaimable, total):
    # docker: "1.2MB (40%)" with an integer percentage, just "0B" when there is nothing at all
    if total > 0:
        return "%s (%d%%)" % (fmt.human_size(reclaimable, 4), reclaimable * 100 // total)
    return fmt.human_size(reclaimable, 4)


def _active_container(c):
    return c.get("State") in ("running", "paused", "restarting")


def summary_rows(df):
    """The four ``system df`` rows (docker's DiskUsageContext) from ``GET /system/df``."""
    images, containers = df.get("Images") or [], df.get("Containers") or []
    volumes, cache = df.get("Volumes") or [], df.get("BuildCache") or []
    layers = df.get("LayersSize") or 0
    used = sum(i.get("Size", 0) - i.get("SharedSize", 0) for i in images
               if i.get("Containers", 0) not in (0,) and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1)
    c_size = sum(c.get("SizeRw") or 0 for c in containers)
    c_free = sum(c.get("SizeRw") or 0 for c in containers if not _active_container(c))
    v_usage = [v.get("UsageData") or {} for v in volumes]
    v_size = sum(u.get("Size", 0) for u in v_usage if u.get("Size", -1) != -1)
    v_free = sum(u.get("Size", 0) for u in v_usage if u.get("Size", -1) != -1 and u.get("RefCount", 0) == 0)
    b_size = sum(b.get("Size", 0) for b in cache if not b.get("Shared"))
    b_free = sum(b.get("Size", 0) for b in cache if not b.get("Shared") and not b.get("InUse"))
    row = lambda t, n, a, s, r: {"Type": t, "TotalCount": str(n), "Active": str(a), "Size": s, "Reclaimable": r}
    return [
        row("Images", len(images), sum(1 for i in images if i.get("Containers", 0) > 0), fmt.human_size(layers, 4),
            _reclaimable(layers - used, layers)),
        row("Containers", len(containers), sum(1 for c in containers if _active_container(c)),
            fmt.human_size(c_size, 4), _reclaimable(c_free, c_size)),
        row("Local Volumes", len(volumes), sum(1 for u in v_usage if u.get("RefCount", 0) > 0),
            fmt.human_size(v_size, 4), _reclaimable(v_free, v_size)),
        row("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")), fmt.human_size(b_size, 4),
            _reclaimable(b_free, b_size)),
    ]


def _verbose(app, df, now):
    from .listing import PS_COLUMNS, ps_row
    from .listing import IMAGES_COLUMNS, image_rows
    from .template import render_rows

    images = [image_rows([i], now=now)[0] for i in df.get("Images") or ()]
    containers = []
    for c in df.get("Containers") or ():
        row = ps_row(c, now=now)
        row["Size"] = fmt.human_size(c.get("SizeRw") or 0)
        containers.append(row)
    volumes = [{"Name": v.get("Name", ""), "Links": str((v.get("UsageData") or {}).get("RefCount", 0)),
                "Size": "N/A" if (v.get("UsageData") or {}).get("Size", -1) == -1
                else fmt.human_size(v["UsageData"]["Size"], 4)} for v in df.get("Volumes") or ()]
    cache = [{"ID": b.get("ID", "")[:12], "CacheType": b.get("Type", ""), "Size": fmt.human_size(b.get("Size", 0), 4),
              "CreatedSince": fmt.since(b.get("CreatedAt"), now), "LastUsedSince": fmt.since(b.get("LastUsedAt"), now),
              "UsageCount": str(b.get("UsageCount", 0)), "Shared": "true" if b.get("Shared") else "false"}
             for b in df.get("BuildCache") or ()]
    cache_size = sum(b.get("Size", 0) for b in df.get("BuildCache") or ())
    app.out("Images space usage:\n\n" + render_rows(_IMAGES_V, images, IMAGES_COLUMNS)
            + "\nContainers space usage:\n\n" + render_rows(_CONTAINERS_V, containers, PS_COLUMNS)
            + "\nLocal Volumes space usage:\n\n" + render_rows(_VOLUMES_V, volumes, _VERBOSE_COLUMNS)
            + "\nBuild cache usage: %s\n\n" % fmt.human_size(cache_size, 4)
            + render_rows(_CACHE_V, cache, _VERBOSE_COLUMNS), nl=False)


@click.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@click.option("--format", "format_", help="Format output using a Go template subset, or 'table …', or 'json'.")
@click.pass_obj
def system_df(app, verbose, format_):
    """Show docker disk usage."""
    from .template import render_rows

    df = app.client.df()
    if verbose and not format_:
        _verbose(app, df, time.time())
        return
    template = "{{json .}}" if format_ == "json" else format_ or DF_FORMAT
    app.out(render_rows(template, summary_rows(df), DF_COLUMNS), nl=False)
