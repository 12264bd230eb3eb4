""".dockerignore patterns as moby/patternmatcher matches them."""

import pytest

from hostbridge.guest.builder.dockerignore import Matcher, read_patterns


def test_read_patterns_cleans_and_strips():
    text = "# comment\n\n  *.log  \n/build/\n./a/../b\n! keep.log\n#x\n//abs\n!\n"
    assert read_patterns(text) == ["*.log", "build", "b", "!keep.log", "abs", "!"]


@pytest.mark.parametrize("patterns,path,excluded", [
    (["*.log"], "a.log", True),
    (["*.log"], "dir/a.log", False),  # * never crosses /
    (["**/*.log"], "dir/sub/a.log", True),
    (["**/*.log"], "a.log", True),
    (["dir/**/x"], "dir/x", True),
    (["dir/**/x"], "dir/a/b/x", True),
    (["dir/**"], "dir/a/b", True),
    (["dir/**"], "dir", False),
    (["**"], "anything/at/all", True),
    (["**/tmp"], "a/b/tmp/c", True),  # a dir matched: its contents too
    (["build"], "build/out/x.o", True),
    (["/build"], "build/x", True),
    (["a?c"], "abc", True),
    (["a?c"], "a/c", False),
    (["[a-c]x"], "bx", True),
    (["[^a-c]x"], "bx", False),
    (["[^a-c]x"], "dx", True),
    (["a\\*b"], "a*b", True),
    (["a\\*b"], "axb", False),
    (["a.b"], "axb", False),
    (["**.md"], "docs/README.md", True),  # docker's suffix fast path
])
def test_single_pattern(patterns, path, excluded):
    assert Matcher(read_patterns("\n".join(patterns))).excluded(path) is excluded


def test_exceptions_later_wins():
    m = Matcher(read_patterns("*.log\n!keep.log\n"))
    assert m.excluded("a.log") and not m.excluded("keep.log")
    m = Matcher(read_patterns("!keep.log\n*.log\n"))
    assert m.excluded("keep.log")  # the exception came first, the exclusion wins


def test_exception_inside_excluded_directory():
    m = Matcher(read_patterns("docs\n!docs/README.md\n"))
    assert m.excluded("docs/other.md")
    assert not m.excluded("docs/README.md")
    assert m.has_exceptions()


def test_reexcluded_after_exception():
    m = Matcher(read_patterns("*\n!src\nsrc/*.tmp\n"))
    assert m.excluded("top.txt")
    assert not m.excluded("src/a.py")
    assert m.excluded("src/a.tmp")


FILES = ["top.log", "keep.log", "a/x.log", "a/b/c/deep.log", "docs/README.md", "docs/other.md",
         "src/tmp/junk", "src/main.c", "build/out.o", "x.y/z", "abc", "axc", "a[b", "fa.go", "sub.go",
         "a/b/c/file.go", "README.md", "Dockerfile", ".dockerignore"]


def test_battery_matches_what_the_docker_cli_sent_to_dockerd():
    """data/battery.dockerd-kept.txt lists what `COPY . /ctx/` held in an image dockerd 20.10
    built from these files with data/battery.dockerignore (docker CLI 28 filtering)."""
    import os
    here = os.path.join(os.path.dirname(__file__), "data")
    with open(os.path.join(here, "battery.dockerignore")) as f:
        m = Matcher(read_patterns(f.read()))
    with open(os.path.join(here, "battery.dockerd-kept.txt")) as f:
        expected = set(f.read().split())
    assert {p for p in FILES if not m.excluded(p)} == expected
