"""guest/durations.py and guest/filters.py: docker's time values and filters, said once."""

import datetime

import pytest

from hostbridge.guest import filters
from hostbridge.guest.durations import parse_timestamp
from hostbridge.guest.errors import InvalidParameter

NOW = 1_700_000_000.0


@pytest.mark.parametrize("text,expected", [
    ("24h", NOW - 86400), ("1h30m", NOW - 5400), ("500ms", NOW - 0.5), ("0", 0.0),
    ("1699999999", 1699999999.0), ("1699999999.25", 1699999999.25),
    ("2023-11-14T22:13:20Z", NOW), ("2023-11-14T22:13:20.5Z", NOW + 0.5),
    ("2023-11-15T00:13:20+02:00", NOW), ("2023-11-14T22:13Z", NOW - 20), ("2023-11-14T22Z", NOW - 800),
    ("2023-11-14Z", NOW - 80000),
])
def test_parse_timestamp_reads_what_docker_reads(text, expected):
    assert parse_timestamp(text, now=NOW) == pytest.approx(expected)


def test_parse_timestamp_without_a_zone_is_local_time():
    local = datetime.datetime(2023, 11, 14, 22, 13, 20).timestamp()
    assert parse_timestamp("2023-11-14T22:13:20", now=NOW) == local
    assert parse_timestamp("2023-11-14", now=NOW) == datetime.datetime(2023, 11, 14).timestamp()


@pytest.mark.parametrize("text", ["", "yesterday", "1x", "2023-13-01", "2023-11-14T25:00Z", "--"])
def test_parse_timestamp_refuses_the_rest(text):
    with pytest.raises(InvalidParameter, match="failed to parse value as time or duration"):
        parse_timestamp(text, now=NOW)


def test_normalize_takes_both_wire_forms_and_refuses_unknown_names():
    assert filters.normalize({"label": {"a=b": True, "c": False}, "until": ["1h"]}) == \
        {"label": ["a=b"], "until": ["1h"]}
    with pytest.raises(InvalidParameter, match="Invalid filter 'x'"):
        filters.normalize({"x": ["1"]}, ("label",))
    with pytest.raises(InvalidParameter):
        filters.normalize({"label": "a"})


def test_labels_match_label_and_label_not():
    labels = {"a": "1", "b": "2"}
    assert filters.labels_match(labels, {"label": ["a", "b=2"]})
    assert not filters.labels_match(labels, {"label": ["a=2"]})
    assert not filters.labels_match(labels, {"label!": ["a"]})
    assert not filters.labels_match(labels, {"label!": ["b=2"]})
    assert filters.labels_match(labels, {"label!": ["b=3", "c"]})
    assert filters.labels_match(None, {"label!": ["a"]})


def test_until_and_created_before():
    f = {"until": ["24h"]}
    assert filters.until(f, now=NOW) == NOW - 86400
    assert filters.created_before(NOW - 90000, f, now=NOW)
    assert not filters.created_before(NOW - 100, f, now=NOW)
    assert filters.created_before(NOW, {}, now=NOW)
    assert filters.bool_value("dangling", ["TRUE"]) is True
    with pytest.raises(InvalidParameter, match="Invalid filter 'dangling=maybe'"):
        filters.bool_value("dangling", ["maybe"])
