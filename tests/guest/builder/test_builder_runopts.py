"""POST /build's RUN options (network, limits, ulimits, extra hosts) → RunOptions."""

import os
import urllib.parse

import pytest

from hostbridge.guest.builder.build import BuildOptions
from hostbridge.guest.errors import InvalidParameter


def q(text):
    return urllib.parse.parse_qs(text, keep_blank_values=True)


def test_the_stock_cli_query():
    # recorded from `DOCKER_BUILDKIT=0 docker build -m 32m --memory-swap 64m --cpu-shares 512
    # --cpuset-cpus 0 --cpu-period 100000 --cpu-quota 50000 --shm-size 128m --ulimit nofile=100:200
    # --add-host foo:1.2.3.4 --add-host bar=5.6.7.8 --network host --platform linux/amd64 -t x .`
    # (docker CLI 28.2; it turns bar=5.6.7.8 into bar:5.6.7.8)
    o = BuildOptions.from_query(q(
        "cpuperiod=100000&cpuquota=50000&cpusetcpus=0&cpushares=512&dockerfile=Dockerfile"
        "&extrahosts=foo%3A1.2.3.4&extrahosts=bar%3A5.6.7.8&memory=33554432&memswap=67108864&networkmode=host"
        "&platform=linux%2Famd64&shmsize=134217728&t=x&ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Hard%22"
        "%3A200%2C%22Soft%22%3A100%7D%5D&version=1".replace("amd64", _own_goarch())))
    r = o.run
    assert r.network == "host"
    assert r.cgroup == {"memory": 33554432, "memory_swap": 67108864, "cpu_shares": 512, "cpu_period": 100000,
                        "cpu_quota": 50000, "cpuset_cpus": "0"}
    assert (r.shm_size, r.ulimits, r.extra_hosts) == (
        134217728, [("RLIMIT_NOFILE", 100, 200)], [("foo", "1.2.3.4"), ("bar", "5.6.7.8")])


def test_defaults_are_the_default_bridge_and_no_limits():
    # the CLI sends no networkmode by default; the SDK may send "default"
    for query in ("dockerfile=Dockerfile&version=1", "networkmode=default", "networkmode=bridge"):
        r = BuildOptions.from_query(q(query)).run
        assert (r.network, r.cgroup, r.shm_size, r.ulimits, r.extra_hosts) == ("bridge", {}, 0, [], [])
    assert BuildOptions.from_query(q("networkmode=mynet")).run.network == "mynet"  # the engine checks it
    assert BuildOptions.from_query(q("memswap=-1&memory=8000000")).run.cgroup == {
        "memory": 8000000, "memory_swap": -1}
    assert BuildOptions.from_query(q("extrahosts=gw%3Ahost-gateway&extrahosts=v6%3A%3A%3A1")).run.extra_hosts == [
        ("gw", "host-gateway"), ("v6", "::1")]


@pytest.mark.parametrize("query,message", [
    ("memory=abc", "invalid memory 'abc'"), ("memory=-1", "invalid memory -1"),
    ("cpushares=1e3", "invalid cpushares"), ("shmsize=big", "invalid shmsize"),
    ("cpusetcpus=0-", "invalid cpusetcpus"), ("memory=1000", "Minimum memory limit allowed is 6MB"),
    ("ulimits=%7B%7D", "invalid ulimits"),
    ("ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Soft%22%3A300%2C%22Hard%22%3A200%7D%5D", "above its hard"),
    ("extrahosts=justaname", "invalid extrahosts"), ("networkmode=container%3Aabc", "invalid networkmode"),
    ("squash=1", "squash is only supported with experimental mode"),
    ("platform=linux%2Fmips64", "invalid platform linux/mips64"), ("platform=windows", "invalid platform windows"),
])
def test_bad_values_name_their_parameter(query, message):
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(")):
        BuildOptions.from_query(q(query))


# a fixed table, not the builder's own: this machine's name → Go's name, and another Go arch
_GOARCH = {"x86_64": ("amd64", "arm64"), "aarch64": ("arm64", "amd64")}


def _own_goarch():
    return _GOARCH[os.uname().machine][0]


def test_platform_of_this_engine_is_accepted_and_another_refused():
    own, other = _GOARCH[os.uname().machine]
    for p in ("linux", "linux/" + own, own, "LINUX/" + own.upper(), "linux/" + os.uname().machine):
        assert BuildOptions.from_query(q("platform=" + urllib.parse.quote(p, safe=""))) is not None
    with pytest.raises(InvalidParameter, match="this engine builds for linux/%s only" % own):
        BuildOptions.from_query(q("platform=linux%2F" + other))
