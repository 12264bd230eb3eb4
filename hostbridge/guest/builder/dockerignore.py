""".dockerignore patterns, matched as docker's (moby/patternmatcher).

- one pattern per line; ``#`` lines are comments; surrounding spaces trimmed; blank lines skipped;
- ``!pattern`` re-includes; patterns are applied in order, the last that matches wins;
- a pattern is cleaned like a path (``./a/`` → ``a``) and a leading ``/`` is dropped;
- ``*`` and ``?`` never match ``/``; ``**`` matches any number of directories (also none);
  ``[a-z]`` classes and ``\\`` escapes as Go's ``filepath.Match``;
- a pattern that matches a directory excludes everything under it.
"""

from __future__ import annotations

import posixpath
import re


def read_patterns(text) -> list:
    """Parse a .dockerignore file.

    Args:
        text: the file's contents (str or bytes).

    Returns:
        The patterns in order, exceptions still starting with ``!``.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    patterns = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = posixpath.normpath(pattern)
            if pattern.startswith("//"):
                pattern = "/" + pattern.lstrip("/")
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


class Pattern:
    """One compiled pattern: ``exclusion`` is True for a ``!`` exception."""

    def __init__(self, text: str):
        self.exclusion = text.startswith("!")
        self.text = text[1:] if self.exclusion else text
        self.regex = re.compile(_to_regex(self.text), re.S)
        # docker's fast path: "**" then only literal characters is a suffix match
        rest = self.text[2:]
        self.suffix = rest if self.text.startswith("**") and rest and not re.search(r"[*?\[\]\\]", rest) else None

    def match(self, path: str) -> bool:
        if self.suffix is not None:
            return path.endswith(self.suffix) or (self.suffix[0] == "/" and path == self.suffix[1:])
        return bool(self.regex.match(path))


def _to_regex(pattern: str) -> str:
    out, i, n = ["^"], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append("\\\\")
        elif ch == "[":
            j = pattern.find("]", i + 1 if i < n and pattern[i] in "^]" else i)
            if j == -1:
                out.append("\\[")
                continue
            body = pattern[i:j]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append("[" + ("^" if negate else "") + body + "]")
            i = j + 1
        else:
            out.append(re.escape(ch))
    out.append("$")
    return "".join(out)


class Matcher:
    """A list of patterns; ``excluded(path)`` says whether a context path is left out."""

    def __init__(self, patterns):
        self.patterns = [Pattern(p) for p in patterns if p not in ("", "!")]

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) is excluded.

        A path is excluded when it or one of its parent directories matches, unless a later
        ``!`` exception matches it (docker's MatchesOrParentMatches).
        """
        path = posixpath.normpath(path).lstrip("/")
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            hit = p.match(path)
            if not hit:
                for k in range(1, len(parents) + 1):
                    if p.match("/".join(parents[:k])):
                        hit = True
                        break
            if hit:
                matched = not p.exclusion
        return matched

    def has_exceptions(self) -> bool:
        """Whether any ``!`` pattern exists (then an excluded dir may still hold included files)."""
        return any(p.exclusion for p in self.patterns)
