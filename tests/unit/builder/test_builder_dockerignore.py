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
