"""Catalog search on a private registry, and a docker.io mirror (both on 127.0.0.1)."""

import json
import os

import pytest

from hostbridge.guest.errors import InvalidParameter

from hostbridge.guest.registry import client as rc
from hostbridge.guest.registry import pull, push, search
from hostbridge.guest.registry.auth import AuthConfig
from hostbridge.guest.registry.errors import TooManyRequests
from tests.registry import regsupport

CFG = rc.RegistryConfig(retries=1, backoff=0.05, timeout=10)


def _push(tmp_path, name):
    tar = regsupport.small_layer_tar(str(tmp_path / "l.tar"), {"x": os.urandom(100)})
    return push.push(name, regsupport.image_config([regsupport.file_digest(tar)]), [tar], config=CFG)


def test_catalog_search_filters_and_pages(tmp_path, registry, proxy):
    for repo in ("team/app", "team/web", "other/db", "teamless"):
        _push(tmp_path, "%s/%s:1" % (registry.domain, repo))
    found = search.search("%s/team" % registry.domain, config=CFG)
    assert [r["name"] for r in found] == ["%s/team/app" % registry.domain, "%s/team/web" % registry.domain,
                                          "%s/teamless" % registry.domain]
    assert found[0] == {"name": "%s/team/app" % registry.domain, "description": "", "star_count": 0,
                        "is_official": False, "is_automated": False}
    assert [r["name"] for r in search.search("%s/team" % registry.domain, limit=1, config=CFG)] == [
        "%s/team/app" % registry.domain]
    assert search.search("%s/nothing-like-it" % registry.domain, config=CFG) == []

    # tags on request
    _push(tmp_path, "%s/team/app:2" % registry.domain)
    tagged = [r["name"] for r in search.search("%s/team/app" % registry.domain, config=CFG, with_tags=True)]
    assert tagged == ["%s/team/app:1" % registry.domain, "%s/team/app:2" % registry.domain]
    with pytest.raises(InvalidParameter, match="private registry"):
        search.search("redis", config=CFG, with_tags=True)

    # pages of one repository each, followed through the Link header (via the proxy's log)
    names = list(search.catalog(rc.RegistryClient(proxy.domain, config=CFG), page_size=1))
    assert names == ["other/db", "team/app", "team/web", "teamless"]
    assert sum(1 for (m, p, _) in proxy.log if p.startswith("/v2/_catalog")) >= 4


def test_docker_io_pull_goes_to_the_mirror(tmp_path, registry, proxy):
    res = _push(tmp_path, "%s/library/hbmirror:1" % registry.domain)
    cfg = rc.RegistryConfig(mirrors=["http://%s" % proxy.domain], retries=1, backoff=0.05, timeout=10)
    msgs = []
    got = pull.pull("hbmirror:1", regsupport.new_store(str(tmp_path / "s")), str(tmp_path / "dl"),
                    auth=AuthConfig("hubuser", "hubsecret", "docker.io"), config=cfg, progress=msgs.append)
    assert got.digest == res["Digest"]
    assert msgs[0]["status"] == "Pulling from library/hbmirror"
    assert msgs[-1]["status"] == "Status: Downloaded newer image for hbmirror:1"
    assert any(p.startswith("/v2/library/hbmirror/manifests/1") for (_, p, _) in proxy.log)
    assert all(a is None for (_, a) in proxy.auth_seen)  # Docker Hub credentials never go to a mirror


def test_hub_search_shape_from_a_local_index(tmp_path, proxy):
    """Docker Hub's /v1/search answered by a local stand-in index (no traffic leaves 127.0.0.1)."""
    seen = []
    hub = {"num_results": 2, "query": "redis", "results": [
        {"name": "redis", "description": "Redis is an open source key-value store", "star_count": 12000,
         "is_official": True, "is_automated": False},
        {"name": "bitnami/redis", "description": "Bitnami Redis", "star_count": 250,
         "is_official": False, "is_automated": True}]}

    def index(h, meth, path):
        if not path.startswith("/v1/search"):
            return False
        seen.append(path)
        if "q=busy" in path:
            regsupport.reply(h, 429, b'{"message": "slow down"}')
        else:
            regsupport.reply(h, 200, json.dumps(hub).encode())
        return True
    proxy.rules.append(index)
    cfg = rc.RegistryConfig(hub_index="http://%s" % proxy.domain, retries=0)
    got = search.search("redis", limit=10, config=cfg)
    assert got == [
        {"name": "redis", "description": "Redis is an open source key-value store", "star_count": 12000,
         "is_official": True, "is_automated": False},
        {"name": "bitnami/redis", "description": "Bitnami Redis", "star_count": 250,
         "is_official": False, "is_automated": True}]
    assert seen == ["/v1/search?q=redis&n=10"]
    assert [r["name"] for r in search.search("redis", config=cfg, filters={"is-official": ["true"]})] == ["redis"]
    assert not any(p.startswith("/v2/") for (_, p, _) in proxy.log)  # the v1 index is not pinged
    with pytest.raises(TooManyRequests):
        search.search("busy", config=cfg)
