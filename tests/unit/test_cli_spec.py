"""spec.parse reads the plain forms of the listing options, and leaves everything else to click."""

import pytest

from hostbridge.cli import fast, listing
from hostbridge.cli.spec import parse, to_click


def _ps(**changed):
    values = {"all_": False, "quiet": False, "size": False, "last": -1, "latest": False, "no_trunc": False,
              "filters": (), "format_": None}
    values.update(changed)
    return values


@pytest.mark.parametrize("argv,expected", [
    ([], _ps()),
    (["-a"], _ps(all_=True)),
    (["-aq"], _ps(all_=True, quiet=True)),
    (["-aqn", "3"], _ps(all_=True, quiet=True, last=3)),
    (["-n3"], _ps(last=3)),
    (["--last", "2"], _ps(last=2)),
    (["--last=2"], _ps(last=2)),
    (["-f", "status=exited", "--filter=label=a=b"], _ps(filters=("status=exited", "label=a=b"))),
    (["--format", "{{.ID}}", "--no-trunc"], _ps(format_="{{.ID}}", no_trunc=True)),
    (["--format="], _ps(format_="")),
])
def test_plain_forms(argv, expected):
    assert parse(listing.PS, argv) == expected


@pytest.mark.parametrize("argv", [
    ["--help"], ["-h"], ["-x"], ["--bogus"], ["-n"], ["-n", "many"], ["--last=x"], ["--all=1"], ["extra"],
    ["-a", "--format"],
])
def test_gives_up_on_anything_else(argv):
    assert parse(listing.PS, argv) is None


def test_positionals_and_double_dash():
    assert parse(listing.IMAGES, ["busybox"])["repository"] == "busybox"
    assert parse(listing.IMAGES, ["--", "-odd"])["repository"] == "-odd"
    assert parse(listing.IMAGES, ["a", "b"]) is None


@pytest.mark.parametrize("spec", [listing.PS, listing.IMAGES])
def test_click_command_has_the_same_options(spec):
    import click

    cmd = to_click("x", spec, lambda app, **v: v)
    declared = {name for p in cmd.params for name in p.opts if isinstance(p, click.Option)}
    assert declared == set(spec.by_name)
    ctx = cmd.make_context("x", ["-aq"] if spec is listing.PS else ["-a", "busybox"])
    assert ctx.params == parse(spec, ["-aq"] if spec is listing.PS else ["-a", "busybox"])


@pytest.mark.parametrize("argv,handled", [
    (["ps"], True), (["-vv", "--host", "unix:///x", "ps", "-a"], True), (["--machine=m", "images", "-q"], True),
    (["container", "ls", "-a"], True), (["image", "list"], True),
    (["--version"], False), (["ps", "--help"], False), (["run", "busybox"], False), (["-H"], False),
    (["--debug", "ps"], False), (["container", "rm", "x"], False), ([], False),
])
def test_fast_path_takes_only_listing_commands(argv, handled, monkeypatch):
    calls = []
    monkeypatch.setattr(listing, "ps", lambda app, **v: calls.append((app.flags, app.verbosity, v)))
    monkeypatch.setattr(listing, "images", lambda app, **v: calls.append((app.flags, app.verbosity, v)))
    status = fast.run(argv)
    assert (status is not None) == handled == bool(calls)
    if argv[:4] == ["-vv", "--host", "unix:///x", "ps"]:
        assert calls[0][:2] == ({"host": "unix:///x", "machine": None}, 2) and calls[0][2]["all_"]
