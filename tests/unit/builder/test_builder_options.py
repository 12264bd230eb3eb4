"""POST /build query parameters → BuildOptions, as docker reads them."""

import urllib.parse

import pytest

from hostbridge.guest.builder.build import BuildOptions
from hostbridge.guest.errors import InvalidParameter


def q(text):
    return urllib.parse.parse_qs(text, keep_blank_values=True)


def test_the_stock_cli_query():
    # recorded from `DOCKER_BUILDKIT=0 docker build -t a -t b:2 -f sub/Df --build-arg X=1 --target t
    # --no-cache --pull --label k=v -q .` (docker CLI 28 talking to dockerd 20.10, API 1.41)
    o = BuildOptions.from_query(q("buildargs=%7B%22X%22%3A%221%22%7D&dockerfile=sub%2FDf"
                                  "&labels=%7B%22k%22%3A%22v%22%7D&nocache=1&pull=1&q=1&t=a&t=b%3A2&target=t"
                                  "&version=1"))
    assert (o.tags, o.build_args, o.labels, o.target, o.no_cache, o.pull, o.quiet, o.dockerfile) == (
        ["a", "b:2"], {"X": "1"}, {"k": "v"}, "t", True, True, True, "sub/Df")


def test_defaults_and_booleans():
    o = BuildOptions.from_query(q("nocache=false&pull=0&q="))
    assert (o.tags, o.build_args, o.labels, o.no_cache, o.pull, o.quiet, o.dockerfile) == ([], {}, {}, False, False,
                                                                                          False, "")
    assert BuildOptions.from_query(q("nocache=True")).no_cache is True


def test_null_build_arg_is_not_given():
    assert BuildOptions.from_query(q("buildargs=%7B%22X%22%3Anull%7D")).build_args == {}


@pytest.mark.parametrize("query,message", [
    ("buildargs=nope", "invalid buildargs"),
    ("labels=%5B1%5D", "invalid labels"),
    ("t=Bad%20Tag", "invalid reference format"),
    ("remote=https%3A%2F%2Fexample.invalid%2Frepo.git", "remote context"),
])
def test_bad_queries(query, message):
    with pytest.raises(InvalidParameter, match=message):
        BuildOptions.from_query(q(query))
