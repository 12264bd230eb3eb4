"""Read-only views of the store in the Docker Engine API's shapes: list, inspect, history."""

from __future__ import annotations

import re

from .. import filters as _filters
from .. import util
from ..goarch import go_arch
from ..errors import InvalidParameter

_LIST_FILTERS = {"dangling", "label", "before", "since", "reference", "until"}  # dockerd's: no label! here
_PRUNE_FILTERS = {"dangling", "label", "label!", "until"}

# container.Config as docker fills it in image inspect (keys in docker's order).
_CONTAINER_CONFIG = (("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
                     ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", None),
                     ("Tty", False), ("OpenStdin", False), ("StdinOnce", False), ("Env", None),
                     ("Cmd", None), ("Healthcheck", None), ("ArgsEscaped", None), ("Image", ""),
                     ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None),
                     ("NetworkDisabled", None), ("MacAddress", None), ("OnBuild", None),
                     ("Labels", None), ("StopSignal", None), ("StopTimeout", None), ("Shell", None))
_OMIT_WHEN_NONE = {"ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress",
                   "StopSignal", "StopTimeout", "Shell"}


def machine_arch() -> str:
    """This machine's architecture in Go's names (amd64, arm64, …)."""
    return go_arch()


def container_config(cfg) -> dict:
    """An image's ``config`` with every container.Config key docker shows (None → defaults)."""
    cfg = cfg or {}
    out = {}
    for key, default in _CONTAINER_CONFIG:
        v = cfg.get(key, default)
        if v is None and key in _OMIT_WHEN_NONE:
            continue
        out[key] = v
    for key, v in cfg.items():
        out.setdefault(key, v)
    return out


def _glob(pattern: str):
    """Go's path.Match as a regex: ``*`` and ``?`` never cross ``/``."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.find("]", i)
            if j == -1:
                raise InvalidParameter("invalid reference filter %r: unclosed '['" % pattern)
            body = pattern[i + 1:j]
            out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = j
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def _ref_matches(patterns, ref) -> bool:
    for p in patterns:
        rx = _glob(p)
        if rx.match(ref.familiar()) or (ref.tag and rx.match(ref.familiar_name)):
            return True
    return False


def created_unix(store, iid) -> int:
    return util.unix_time(store.config(iid).get("created") or "")


def _created_at(store, iid):
    return util.parse_time(store.config(iid).get("created") or "")


def matches_prune_filters(store, iid, filters) -> bool:
    f = _filters.normalize(filters, _PRUNE_FILTERS)
    if not _filters.created_before(created_unix(store, iid), f):
        return False
    return _filters.labels_match((store.config(iid).get("config") or {}).get("Labels"), f)


def list_images(store, all_images=False, filters=None) -> list:
    """Docker's ``GET /images/json``: ImageSummary dicts, newest first.

    Args:
        all_images: include intermediate images (untagged parents of other images).
        filters: ``dangling``, ``label``, ``before``, ``since``, ``reference``, ``until``.

    Raises:
        InvalidParameter: a bad filter. NotFound: ``before``/``since`` name no image.
    """
    f = _filters.normalize(filters, _LIST_FILTERS)
    dangling = _filters.bool_value("dangling", f["dangling"]) if "dangling" in f else None
    # full precision, as dockerd's Created.Before: images made within one second stay ordered
    before = _created_at(store, store.resolve(f["before"][-1])) if "before" in f else None
    since = _created_at(store, store.resolve(f["since"][-1])) if "since" in f else None
    until = _filters.until(f)
    out = []
    with store.lock:
        for iid in list(store.images):
            cfg = store.config(iid)
            created = created_unix(store, iid)
            if before is not None and _created_at(store, iid) >= before:
                continue
            if since is not None and _created_at(store, iid) <= since:
                continue
            if until is not None and created >= until:
                continue
            labels = (cfg.get("config") or {}).get("Labels")
            if not _filters.labels_match(labels, f):
                continue
            refs = store.refs(iid)
            if "reference" in f:
                refs = [r for r in refs if _ref_matches(f["reference"], r)]
                if not refs:
                    continue
            if not refs:
                if (not all_images and store.children(iid)) or dangling is False:
                    continue
            elif dangling and any(r.digest is None for r in refs):
                continue  # digest-only images count as dangling, as in docker
            out.append({
                "Containers": -1,
                "Created": created,
                "Id": iid,
                "Labels": labels or {},
                "ParentId": store.images[iid]["meta"].get("parent") or "",
                "RepoDigests": [r.familiar() for r in refs if r.digest is not None],
                "RepoTags": [r.familiar() for r in refs if r.digest is None],
                "SharedSize": -1,
                "Size": store.size(iid),
            })
    # newest first; images created in the same second keep one order across engine restarts
    out.sort(key=lambda s: (_created_precise(store, s["Id"]), s["Id"]), reverse=True)
    return out


def _created_precise(store, iid) -> float:
    text = store.config(iid).get("created") or ""
    try:
        return util.parse_time(text).timestamp() if text else 0.0
    except ValueError:
        return 0.0


def graph_driver(store, iid) -> dict:
    if store.driver != "overlay":
        return {"Data": None, "Name": store.driver}
    dirs = store.lower_dirs(iid)
    data = {}
    if len(dirs) > 1:
        data["LowerDir"] = ":".join(dirs[1:])
    if dirs:
        data["UpperDir"] = dirs[0]
    return {"Data": data, "Name": "overlay2"}


def inspect(store, iid) -> dict:
    """Docker's ``GET /images/{name}/json`` for an image id. Raises NotFound."""
    with store.lock:
        img = store.get(iid)
        cfg, meta = img["config"], img["meta"]
        out = {
            "Id": iid,
            "RepoTags": store.repo_tags(iid),
            "RepoDigests": store.repo_digests(iid),
            "Parent": meta.get("parent") or "",
            "Comment": cfg.get("comment", ""),
            "Created": cfg.get("created") or util.ZERO_TIME,
            "Container": cfg.get("container", ""),
            "ContainerConfig": container_config(cfg.get("container_config")),
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": container_config(cfg.get("config")),
            "Architecture": cfg.get("architecture") or machine_arch(),
            "Os": cfg.get("os") or "linux",
            "Size": store.size(iid),
            "GraphDriver": graph_driver(store, iid),
            "RootFS": {"Type": (cfg.get("rootfs") or {}).get("type", "layers"),
                       "Layers": list((cfg.get("rootfs") or {}).get("diff_ids") or [])},
            "Metadata": {"LastTagTime": meta.get("last_tag_time") or util.ZERO_TIME},
        }
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        if cfg.get("os.version"):
            out["OsVersion"] = cfg["os.version"]
        return out


def history(store, iid) -> list:
    """Docker's ``GET /images/{name}/history``: newest first; ids along the parent chain,
    ``<missing>`` for entries inherited from images not in the store.

    Raises:
        NotFound; InvalidParameter when the config has more non-empty entries than layers.
    """
    with store.lock:
        cfg = store.config(iid)
        chains = store.chains(iid)
        items, n = [], 0
        for h in cfg.get("history") or []:
            size = 0
            if not h.get("empty_layer"):
                if n >= len(chains):
                    raise InvalidParameter("too many non-empty layers in History section of %s" % iid)
                size = store.layers.meta(chains[n])["size"]
                n += 1
            items.insert(0, {"Comment": h.get("comment", ""),
                             "Created": util.unix_time(h.get("created") or ""),
                             "CreatedBy": h.get("created_by", ""), "Id": "<missing>",
                             "Size": size, "Tags": None})
        cur = iid
        for item in items:
            item["Id"] = cur
            item["Tags"] = store.repo_tags(cur) or None
            cur = store.images.get(cur, {}).get("meta", {}).get("parent") or ""
            if cur not in store.images:
                break
        return items
