"""``stats``: docker's CPU %, MEM USAGE / LIMIT, MEM %, NET I/O, BLOCK I/O and PIDS per container.

The numbers come from the engine's stats JSON exactly as the docker CLI computes them
(cli/command/container/stats_helpers.go), so both CLIs print the same table for one sample.
"""

from __future__ import annotations

import threading
import time

import click

from . import format as fmt

STATS_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
STATS_COLUMNS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}


def cpu_percent(s):
    """CPU % of one stats sample: the container's CPU time over the system's since the previous sample."""
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or ())
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(mem):
    """Memory in use without the page cache (cgroup v1 ``total_inactive_file``, v2 ``inactive_file``)."""
    usage, stats = mem.get("usage", 0), mem.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
        return usage - stats["total_inactive_file"]
    if stats.get("inactive_file", 0) < usage:
        return usage - stats.get("inactive_file", 0)
    return usage


def block_io(blkio):
    """``(read, written)`` bytes summed from ``io_service_bytes_recursive``."""
    read = written = 0
    for entry in (blkio or {}).get("io_service_bytes_recursive") or ():
        op = (entry.get("op") or " ")[0].lower()
        if op == "r":
            read += entry.get("value", 0)
        elif op == "w":
            written += entry.get("value", 0)
    return read, written


def stats_row(s, container, trunc=True):
    """One ``stats`` row (docker's StatsEntry fields as strings) from a stats sample."""
    mem = s.get("memory_stats") or {}
    used, limit = float(memory_usage(mem)), float(mem.get("limit", 0))
    nets = (s.get("networks") or {}).values()
    rx, tx = sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)
    blk_read, blk_write = block_io(s.get("blkio_stats"))
    ident = s.get("id") or ""
    return {
        "Container": container, "Name": (s.get("name") or "").lstrip("/"),
        "ID": fmt.short_id(ident) if trunc else ident,
        "CPUPerc": "%.2f%%" % cpu_percent(s),
        "MemUsage": "%s / %s" % (fmt.bytes_size(used), fmt.bytes_size(limit)),
        "MemPerc": "%.2f%%" % (used / limit * 100.0 if limit else 0.0),
        "NetIO": "%s / %s" % (fmt.human_size(rx), fmt.human_size(tx)),
        "BlockIO": "%s / %s" % (fmt.human_size(blk_read), fmt.human_size(blk_write)),
        "PIDs": "%d" % ((s.get("pids_stats") or {}).get("current") or 0),
    }


def _invalid_row(container):
    return {"Container": container, "Name": "--", "ID": container, "CPUPerc": "--", "MemUsage": "-- / --",
            "MemPerc": "--", "NetIO": "--", "BlockIO": "--", "PIDs": "--"}


class _Collector(threading.Thread):
    """Reads one container's stats on its own connection; ``latest`` is the newest sample (or an error)."""

    def __init__(self, endpoint, container, stream):
        super().__init__(daemon=True)
        self.endpoint, self.container, self.stream = endpoint, container, stream
        self.latest, self.error = None, None
        self.first = threading.Event()

    def run(self):
        from ..client import APIClient
        from ..errors import HostbridgeError

        try:
            with APIClient(self.endpoint, timeout=60) as client:
                for sample in client.stats(self.container, stream=self.stream):
                    self.latest = sample
                    self.first.set()
        except (HostbridgeError, OSError, ValueError) as e:
            self.error = e
        finally:
            self.first.set()


def _render(template, collectors, trunc):
    from .template import render_rows

    rows = [stats_row(c.latest, c.container, trunc) if c.latest else _invalid_row(c.container)
            for c in collectors if c.latest or not c.error]
    return render_rows(template, rows, STATS_COLUMNS)


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("--format", "format_", help="Format output using a Go template subset, or 'table …', or 'json'.")
@click.argument("containers", nargs=-1)
@click.pass_obj
def stats(app, all_, no_stream, no_trunc, format_, containers):
    """Display a live stream of container(s) resource usage statistics."""
    template = format_ or STATS_FORMAT
    if template == "json":
        template = "{{json .}}"
    names = list(containers)
    if not names:
        names = [c["Id"] for c in app.client.containers(all=all_)]
    else:
        for name in names:
            app.client.inspect_container(name)  # a missing container: docker's error, before any output
    collectors = [_Collector(app.endpoint, name, not no_stream) for name in names]
    for c in collectors:
        c.start()
    for c in collectors:
        c.first.wait(60)
    if no_stream:
        for c in collectors:
            c.join(60)
        app.out(_render(template, collectors, not no_trunc), nl=False)
        failed = [c for c in collectors if c.error and containers]
        for c in failed:
            app.report(c.error)
        if failed:
            raise click.exceptions.Exit(1)
        return
    while True:  # until Ctrl-C, as docker: clear the screen, print the table, once a second
        app.out("\033[2J\033[H" + _render(template, collectors, not no_trunc), nl=False)
        if collectors and all(not c.is_alive() for c in collectors) and containers:
            return
        time.sleep(1)
        if not containers:  # watching all: follow containers that start and stop meanwhile
            collectors = _refresh(app, collectors, all_)


def _refresh(app, collectors, all_):
    """Collectors for the containers listed now: new ones started, those gone dropped."""
    current = [c["Id"] for c in app.client.containers(all=all_)]
    known = {c.container: c for c in collectors}
    fresh = []
    for cid in current:
        if cid not in known:
            known[cid] = _Collector(app.endpoint, cid, True)
            known[cid].start()
            fresh.append(known[cid])
    for c in fresh:
        c.first.wait(5)
    return [known[cid] for cid in current]
