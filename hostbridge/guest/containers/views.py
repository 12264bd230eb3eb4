"""Docker-shaped views of containers: the ``GET /containers/json`` summary, filters, status."""

from __future__ import annotations

import copy
import os
import time

from ..errors import InvalidParameter
from ..filters import check_names, label_match
from ..util import human_duration, parse_time, unix_time
from .health import STARTING, STATUSES, health_status

_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def status_text(st, now=None):
    """docker ps's STATUS: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created"…"""
    now = now or time.time()
    if st.get("Running"):
        up = human_duration(now - parse_time(st["StartedAt"]).timestamp())
        if st.get("Paused"):
            return "Up %s (Paused)" % up
        if st.get("Health") is not None:
            h = health_status(st)
            return "Up %s (%s)" % (up, "health: starting" if h == STARTING else h)
        return "Up %s" % up
    if st.get("Restarting"):
        return "Restarting (%d) %s ago" % (st.get("ExitCode", 0), human_duration(now - parse_time(st["FinishedAt"]).timestamp()))
    if st.get("Status") == "created" or st.get("FinishedAt", "").startswith("0001"):
        return "Created"
    if st.get("Dead"):
        return "Dead"
    return "Exited (%d) %s ago" % (st.get("ExitCode", 0), human_duration(now - parse_time(st["FinishedAt"]).timestamp()))


def state_name(st):
    if st.get("Running"):
        return "paused" if st.get("Paused") else "running"
    if st.get("Restarting"):
        return "restarting"
    if st.get("Dead"):
        return "dead"
    return st.get("Status") or "exited"


def inspect(c, size=False, dir_size=None):
    """GET /containers/{id}/json."""
    with c.lock:
        d = copy.deepcopy(c.data)
    d["State"]["Status"] = state_name(d["State"])
    d["ExecIDs"] = sorted(c.execs) or None
    if size and dir_size:
        d["SizeRw"], d["SizeRootFs"] = dir_size(c)
    return d


def command_text(d):
    """docker ps's COMMAND: the path and arguments, those with a space in single quotes."""
    args = ["'%s'" % a if " " in a else a for a in d.get("Args") or []]
    return " ".join([d["Path"]] + args)


def _ports(c):
    out = []
    for port, binds in sorted((c.data["NetworkSettings"].get("Ports") or {}).items()):
        num, _, proto = port.partition("/")
        if not binds:
            out.append({"PrivatePort": int(num), "Type": proto or "tcp"})
            continue
        for b in binds:
            out.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(num),
                        "PublicPort": int(b["HostPort"]), "Type": proto or "tcp"})
    return out


def summary(c, size=False, dir_size=None, image_names=None):
    with c.lock:
        d = c.data
        cfg = d["Config"]
        image = cfg.get("Image") or d["Image"]
        s = {
            "Id": d["Id"],
            "Names": ["/" + c.name],
            "Image": image,
            "ImageID": d["Image"],
            "Command": command_text(d),
            "Created": unix_time(d["Created"]),
            "Ports": _ports(c),
            "Labels": dict(cfg.get("Labels") or {}),
            "State": state_name(d["State"]),
            "Status": status_text(d["State"]),
            "HostConfig": {"NetworkMode": d["HostConfig"].get("NetworkMode", "bridge")},
            "NetworkSettings": {"Networks": copy.deepcopy(d["NetworkSettings"].get("Networks") or {})},
            "Mounts": copy.deepcopy(d.get("Mounts") or []),
        }
    if image_names is not None and image.startswith("sha256:"):
        s["Image"] = image_names(image) or image
    if size and dir_size:
        s["SizeRw"], s["SizeRootFs"] = dir_size(c)
    return s


_CONTAINER_FILTERS = ("id", "name", "status", "label", "ancestor", "exited", "before", "since",
                      "network", "volume", "health", "is-task", "publish", "expose",
                      "isolation")  # accepted and not applied on Linux, as by dockerd


def check_filters(filters):
    """Refuse unknown filter names and statuses (before any container is looked at)."""
    check_names(filters, _CONTAINER_FILTERS)
    for s in filters.get("status", ()):
        if s not in _STATUSES:
            raise InvalidParameter("invalid filter 'status=%s'" % s)
    for h in filters.get("health", ()):
        if h not in STATUSES:
            raise InvalidParameter("Unrecognised filter value for health: %s" % h)


def matches(c, filters, resolve_image, lookup):
    """Does container ``c`` pass ``filters`` (normalised, checked by ``check_filters``)?"""
    d = c.data
    st = d["State"]
    if "id" in filters and not any(d["Id"].startswith(x) for x in filters["id"]):
        return False
    if "name" in filters:
        import re
        if not any(re.search(x.lstrip("/") if x.startswith("/") else x, c.name) for x in filters["name"]):
            return False
    if "status" in filters:
        if state_name(st) not in filters["status"]:
            return False
    if "label" in filters and not label_match(d["Config"].get("Labels") or {}, filters["label"]):
        return False
    if "health" in filters and health_status(st) not in filters["health"]:
        return False
    if "exited" in filters:
        if st.get("Running") or state_name(st) != "exited" or str(st.get("ExitCode")) not in filters["exited"]:
            return False
    if "ancestor" in filters:
        ok = False
        for a in filters["ancestor"]:
            try:
                if resolve_image(a) == d["Image"]:
                    ok = True
            except Exception:
                pass
            if a == d["Config"].get("Image"):
                ok = True
        if not ok:
            return False
    for key, cmp in (("before", lambda mine, ref: mine < ref), ("since", lambda mine, ref: mine > ref)):
        if key in filters:
            for ref in filters[key]:
                other = lookup(ref)
                if not cmp(d["Created"], other.data["Created"]):
                    return False
    if "network" in filters:
        nets = set(d["NetworkSettings"].get("Networks") or {}) | {d["HostConfig"].get("NetworkMode")}
        if not nets & set(filters["network"]):
            return False
    if "volume" in filters:
        names = {m.get("Name") or m.get("Source") for m in d.get("Mounts") or []}
        dests = {m.get("Destination") for m in d.get("Mounts") or []}
        if not (names | dests) & set(filters["volume"]):
            return False
    return True


def dir_size_of(path):
    total = 0
    for base, dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(base, f)).st_size
            except OSError:
                pass
    return total
