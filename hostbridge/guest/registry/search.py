"""Search: Docker Hub's v1 search endpoint for docker.io, ``/v2/_catalog`` for other registries.

Results have docker's SearchResult fields: name, description, star_count, is_official,
is_automated. ``myregistry:5000/team`` searches the catalog of ``myregistry:5000`` for ``team``.
"""

from __future__ import annotations

import json
import re
import urllib.parse

from ..errors import InvalidParameter
from .auth import repository_scope
from .client import RegistryClient
from .config import HUB_DOMAIN, RegistryConfig
from .errors import RegistryError

CATALOG_PAGE = 100
MAX_CATALOG_PAGES = 100  # 10,000 repositories: a bound, not a limit anyone should meet
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_DOMAIN_HINT = re.compile(r"[.:]|^localhost$")


def split_term(term: str):
    """``redis`` → ("docker.io", "redis"); ``reg:5000/team`` → ("reg:5000", "team").

    Raises:
        InvalidParameter: an empty term.
    """
    term = (term or "").strip()
    if not term:
        raise InvalidParameter("search term must not be empty — give part of a repository name")
    head, sep, rest = term.partition("/")
    if sep and _DOMAIN_HINT.search(head):
        domain = "docker.io" if head in ("index.docker.io", "registry-1.docker.io") else head
        return domain, rest
    return HUB_DOMAIN, term


def hub_result(item: dict) -> dict:
    """One Docker Hub search entry → docker's SearchResult."""
    return {"name": item.get("name") or item.get("repo_name", ""),
            "description": item.get("description") or item.get("short_description") or "",
            "star_count": int(item.get("star_count") or 0),
            "is_official": bool(item.get("is_official")),
            "is_automated": bool(item.get("is_automated"))}


def search(term, limit=25, auth=None, config=None, filters=None, with_tags=False) -> list:
    """Search a registry.

    Args:
        term: the search term, optionally prefixed by a registry (``reg:5000/team``).
        limit: the maximum number of results (docker's default 25, at most 100).
        auth: an AuthConfig for the registry.
        config: a RegistryConfig.
        filters: docker's ``{"is-official": ["true"], "stars": ["3"]}`` style filters.
        with_tags: list ``repo:tag`` for every tag of each matching repository (private
            registries only; Docker Hub's search has no tags).
    Returns:
        A list of SearchResult dicts.
    Raises:
        InvalidParameter, and the registry errors.
    """
    config = config or RegistryConfig()
    limit = max(1, min(int(limit or 25), 100))
    domain, text = split_term(term)
    if domain == HUB_DOMAIN:
        if with_tags:
            raise InvalidParameter("tags can be listed for a private registry's repositories only "
                                   "(REGISTRY/TERM), not for Docker Hub's search")
        results = _search_hub(text, limit, auth, config)
    else:
        results = _search_catalog(domain, text, limit, auth, config, with_tags=with_tags)
    return _apply_filters(results, filters or {})[:limit]


def _search_hub(text, limit, auth, config):
    client = RegistryClient("index.docker.io", auth, config, endpoint=config.hub_index, v2=False)
    query = urllib.parse.urlencode({"q": text, "n": limit})
    with client.request("GET", "/v1/search?" + query, what="search for %r" % text) as resp:
        doc = json.loads(resp.read_limited(16 << 20) or b"{}")
    return [hub_result(r) for r in (doc.get("results") or []) if isinstance(r, dict)]


def catalog(client, page_size=CATALOG_PAGE):
    """All repository names of a registry's ``/v2/_catalog``, following ``Link`` pages.

    Yields:
        Repository paths (``team/app``).
    Raises:
        RegistryError: the registry has no catalog, or the pages do not end.
    """
    return _paged(client, "/v2/_catalog", ["registry:catalog:*"], "repositories", "the catalog", page_size)


def tags(client, repo, page_size=CATALOG_PAGE):
    """All tags of a repository (``/v2/REPO/tags/list``, following ``Link`` pages).

    Yields:
        Tag names.
    Raises:
        RegistryNotFound: no such repository; RegistryError: the pages do not end.
    """
    return _paged(client, "/v2/%s/tags/list" % repo, [repository_scope(repo)], "tags", "tags of %s" % repo,
                  page_size)


def _paged(client, path, scopes, key, what, page_size):
    path += "?" + urllib.parse.urlencode({"n": page_size})
    for _ in range(MAX_CATALOG_PAGES):
        with client.request("GET", path, scopes, what=what) as resp:
            doc = json.loads(resp.read_limited(16 << 20) or b"{}")
            link = resp.headers.get("Link", "")
        for name in doc.get(key) or []:
            yield name
        m = _LINK_NEXT.search(link)
        if not m:
            return
        path = m.group(1)
    raise RegistryError("%s of %s span more than %d pages — narrow the request"
                        % (what, client.domain, MAX_CATALOG_PAGES))


def _search_catalog(domain, text, limit, auth, config, page_size=CATALOG_PAGE, with_tags=False):
    client = RegistryClient(domain, auth, config)
    needle = text.lower()
    out = []
    for name in catalog(client, page_size):
        if needle not in name.lower():
            continue
        names = ["%s:%s" % (name, t) for t in sorted(tags(client, name, page_size))] if with_tags else [name]
        for n in names:
            out.append({"name": "%s/%s" % (domain, n), "description": "", "star_count": 0,
                        "is_official": False, "is_automated": False})
            if len(out) >= limit:
                return out
    return out


def _apply_filters(results, filters):
    def first(key):
        vals = filters.get(key) or []
        return vals[0] if vals else None

    official, automated, stars = first("is-official"), first("is-automated"), first("stars")
    if stars is not None:
        try:
            stars = int(stars)
        except ValueError:
            raise InvalidParameter("invalid filter 'stars=%s': give a number" % stars) from None
    out = []
    for r in results:
        if official is not None and r["is_official"] != (official.lower() == "true"):
            continue
        if automated is not None and r["is_automated"] != (automated.lower() == "true"):
            continue
        if stars is not None and r["star_count"] < stars:
            continue
        out.append(r)
    return out
