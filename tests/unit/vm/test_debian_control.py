"""Debian control data: version order (dpkg's algorithm), relations, deb822 paragraphs."""

import shutil
import subprocess

import pytest

from hostbridge.machines.debian.control import Relation, compare_versions, paragraphs, parse_relations, parse_version

# (a, b, expected sign of compare(a, b)); most from dpkg's own tests (t-version, dpkg_version.t).
VERSIONS = [
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0a", -1),
    ("1.0a", "1.0+", -1),  # letters sort before non-letters
    ("1.0", "1.0-0", 0),  # no revision equals revision 0
    ("0:1.0", "1.0", 0),
    ("1:0.1", "2.0", 1),  # the epoch wins
    ("2:1.0", "1:2.0", 1),
    ("1.0-1", "1.0-2", -1),
    ("1.0-1", "1.0-1.1", -1),
    ("1.2.3", "1.10", -1),  # numbers compare as numbers
    ("1.001", "1.1", 0),  # leading zeros do not count
    ("00", "0", 0),
    ("2.36-9+deb12u9", "2.36-9+deb12u14", -1),
    ("1.2.3-1~deb12u1", "1.2.3-1", -1),  # a backport sorts before the release
    ("3.0.17-1~deb12u2", "3.0.15-1~deb12u1", 1),
    ("1:9.2p1-2+deb12u10", "1:9.2p1-2+deb12u3", 1),
    ("0.5.12-2", "0.5.12-2", 0),
    ("1.0.0", "1.0", 1),
    ("a", "b", -1),
    ("1-a-1", "1-a", 1),  # the revision is after the last hyphen
]


def _sign(n):
    return (n > 0) - (n < 0)


@pytest.mark.parametrize("a,b,want", VERSIONS)
def test_version_order(a, b, want):
    assert _sign(compare_versions(a, b)) == want
    assert _sign(compare_versions(b, a)) == -want


@pytest.mark.skipif(not shutil.which("dpkg"), reason="dpkg (the oracle) is not installed")
@pytest.mark.parametrize("a,b,want", VERSIONS)
def test_version_order_agrees_with_dpkg(a, b, want):
    ops = {-1: "lt", 0: "eq", 1: "gt"}
    assert subprocess.run(["dpkg", "--compare-versions", a, ops[want], b]).returncode == 0


@pytest.mark.parametrize("bad", ["", "x:1.0", "1.0 beta", "1:", "-1", "1.0é"])
def test_bad_versions_are_refused(bad):
    with pytest.raises(ValueError):
        parse_version(bad)


def test_parse_version_splits_epoch_upstream_revision():
    assert parse_version("1:2.3-4-5") == (1, "2.3-4", "5")
    assert parse_version("2.3") == (0, "2.3", "")


def test_relations_groups_alternatives_and_constraints():
    rels = parse_relations("libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, python3:any (>= 3.9~), "
                           "foo (<< 2), bar (< 1.0), baz [amd64] <!nocheck>, qux(=1:1.0-1)")
    assert rels == (
        (Relation("libc6", ">=", "2.34"),),
        (Relation("debconf", ">=", "0.5"), Relation("debconf-2.0")),
        (Relation("python3", ">=", "3.9~", "any"),),
        (Relation("foo", "<<", "2"),),
        (Relation("bar", "<=", "1.0"),),  # "<" is dpkg's obsolete spelling of "<="
        (Relation("baz"),),
        (Relation("qux", "=", "1:1.0-1"),),
    )


def test_relation_multiline_field_and_empty():
    assert parse_relations("") == ()
    assert parse_relations("a,\n b (>= 1)") == ((Relation("a"),), (Relation("b", ">=", "1"),))


@pytest.mark.parametrize("bad", ["Foo", "a (>= )", "a (~ 1)", "a | | b", "a (>= 1.0 beta)"])
def test_bad_relations_are_refused(bad):
    with pytest.raises(ValueError):
        parse_relations(bad)


def test_relation_satisfaction():
    r = Relation("libc6", ">=", "2.34")
    assert r.satisfied_by("2.36-9") and not r.satisfied_by("2.33-1")
    assert Relation("x", "<<", "2").satisfied_by("2~rc1") and not Relation("x", "<<", "2").satisfied_by("2")
    assert Relation("x", "=", "1.0").satisfied_by("0:1.0")
    assert Relation("x").satisfied_by(None)  # an unversioned Provides meets an unversioned need
    assert not Relation("x", ">=", "1").satisfied_by(None)  # … but never a versioned one
    assert str(Relation("python3", ">=", "3.9", "any")) == "python3:any (>= 3.9)"


def test_paragraphs_fields_and_continuations():
    text = ("Origin: Debian\nSHA256:\n aa 10 main/x\n bb 20 main/y\n\n\n"
            "Package: a\nDescription: one\n more\nVersion: 1\n\n# comment\nPackage: b\n")
    paras = paragraphs(text)
    assert paras[0] == {"Origin": "Debian", "SHA256": "\naa 10 main/x\nbb 20 main/y"}
    assert paras[1] == {"Package": "a", "Description": "one\nmore", "Version": "1"}
    assert paras[2] == {"Package": "b"}
    assert paragraphs(text, fields={"Package"}) == [{"Package": "a"}, {"Package": "b"}]
