"""The Dockerfile parser: text → instruction nodes, as docker's (moby/buildkit ``parser``).

This stage only splits the file into instructions and their raw arguments; it knows nothing of
what an instruction means (``instructions.py`` checks that) and expands no variable
(``shellwords.py`` does, at build time). What it handles, as docker does:

- parser directives (``# escape=``, ``# syntax=``, ``# check=``) in the leading comment block
  only; ``syntax`` is recorded and otherwise ignored (we have one frontend);
- comments, line continuations with the escape character (``\\`` or ``\\```), comment lines
  and blank lines inside a continuation (the latter with docker's warning);
- JSON (exec) form vs shell form, per instruction kind;
- heredocs after RUN, COPY and ADD (``<<EOF``, ``<<-EOF``, quoted names disable expansion,
  several per line);
- builder flags (``--from=x``) before the arguments.
"""

from __future__ import annotations

import json
import re

from ..errors import InvalidParameter
from .shellwords import Lexer, ShellSyntaxError

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_SHEBANG_RE = re.compile(r"^\s*#!.*$")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_WHITESPACE_RE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVES = ("escape", "syntax", "check")
_HEREDOC_INSTRUCTIONS = ("run", "copy", "add")
NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


class DockerfileParseError(InvalidParameter):
    """The Dockerfile is malformed; ``line`` is the 1-based line docker would name (0: none)."""

    def __init__(self, message: str, line: int = 0):
        text = "dockerfile parse error on line %d: %s" % (line, message) if line else message
        super().__init__(text)
        self.line = line
        self.detail = message


class Heredoc:
    """One here-document: ``name`` (the delimiter), its ``content`` (lines with their
    newlines), ``expand`` (False when the delimiter was quoted), ``chomp`` (``<<-``: leading
    tabs stripped), ``fd`` (the ``3<<EOF`` file descriptor, 0 when none)."""

    __slots__ = ("name", "content", "expand", "chomp", "fd")

    def __init__(self, name, content="", expand=True, chomp=False, fd=0):
        self.name, self.content, self.expand, self.chomp, self.fd = name, content, expand, chomp, fd

    def data(self) -> str:
        """The content as the build uses it: leading tabs stripped per line for ``<<-``."""
        if not self.chomp:
            return self.content
        return "".join(line.lstrip("\t") for line in self.content.splitlines(True))

    def __repr__(self):
        return "Heredoc(%r, %r, expand=%r, chomp=%r)" % (self.name, self.content, self.expand, self.chomp)


class Node:
    """One instruction as written.

    Attributes:
        name: the instruction, lower case (``run``); unknown names are kept for the error.
        original: the instruction's text, continuations joined.
        flags: builder flags as written, without their ``--`` (``["from=build"]``).
        args: the arguments: JSON elements or shell-form words per the instruction's kind;
            for ENV/LABEL, alternating keys and values; for HEALTHCHECK, the type then the command.
        json: True when the (command) arguments were a JSON array.
        legacy_kv: ENV/LABEL written as ``KEY value`` rather than ``KEY=value``.
        sub: the instruction inside an ONBUILD.
        heredocs: the here-documents that followed the line.
        start_line, end_line: 1-based lines the instruction spans (heredocs included).
    """

    __slots__ = ("name", "original", "flags", "args", "json", "legacy_kv", "sub", "heredocs",
                 "start_line", "end_line")

    def __init__(self, name, original, flags=None, args=None, is_json=False):
        self.name, self.original = name, original
        self.flags = flags or []
        self.args = args or []
        self.json = is_json
        self.legacy_kv = False
        self.sub = None
        self.heredocs = []
        self.start_line = self.end_line = 0

    def __repr__(self):
        return "Node(%s %r line %d)" % (self.name, self.args, self.start_line)


class ParseResult:
    """``nodes`` in order, the ``escape`` character, the ``syntax`` directive ("" when none),
    and ``warnings`` (strings, docker's wording) the build stream may show."""

    def __init__(self, nodes, escape, syntax, warnings):
        self.nodes, self.escape, self.syntax, self.warnings = nodes, escape, syntax, warnings


class _Directives:
    """Parser directives: only in the comment block that opens the file."""

    def __init__(self):
        self.escape = "\\"
        self.values = {}
        self.done = False
        self.lines = 0
        self.continuation = re.compile(r"\\[ \t]*$")

    def see(self, line: str) -> None:
        self.lines += 1
        if self.done:
            return
        if self.lines == 1 and _SHEBANG_RE.match(line):
            return
        m = _DIRECTIVE_RE.match(line)
        if not m or m.group(1).lower() not in _DIRECTIVES:
            self.done = True
            return
        key, value = m.group(1).lower(), m.group(2)
        if key in self.values:
            raise DockerfileParseError("only one %s parser directive can be used" % key, self.lines)
        self.values[key] = value
        if key == "escape":
            if value not in ("`", "\\"):
                raise DockerfileParseError(
                    "invalid escape token '%s' does not match ` or \\" % value, self.lines)
            self.escape = value
            self.continuation = re.compile(re.escape(value) + r"[ \t]*$")


def _is_comment(line: str) -> bool:
    return line.lstrip(" \t").startswith("#")


def parse(text) -> ParseResult:
    """Parse a Dockerfile.

    Args:
        text: the file's contents (str or bytes, UTF-8; a leading BOM is ignored).

    Returns:
        A ParseResult.

    Raises:
        DockerfileParseError: a directive, JSON, heredoc or flag error, with its line; or the
            file has no instruction (``file with no instructions``).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    d = _Directives()
    nodes, warnings = [], []
    i = 0
    while i < len(lines):
        raw = lines[i].rstrip("\r")
        i += 1
        d.see(raw)
        start = i
        if _is_comment(raw):
            continue
        line, ended = _trim_continuation(raw.lstrip(" \t"), d)
        if ended and not line.strip():
            continue
        empty_continuation = False
        while not ended and i < len(lines):
            raw = lines[i].rstrip("\r")
            i += 1
            d.see(raw)
            if _is_comment(raw):
                continue
            if not raw.strip(" \t"):
                empty_continuation = True
                continue
            more, ended = _trim_continuation(raw, d)
            line += more
        if empty_continuation:
            warnings.append("Empty continuation line found in: " + line)
        node = _node_from_line(line, d, start, i)
        if node.name in _HEREDOC_INSTRUCTIONS and not node.json and "<<" in line:
            for doc in _heredocs_in(line, start, i):
                body = []
                while True:
                    if i >= len(lines):
                        raise DockerfileParseError("unterminated heredoc", start)
                    raw = lines[i]
                    i += 1
                    candidate = raw.rstrip("\r")
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        break
                    body.append(raw.rstrip("\r") + "\n")
                doc.content = "".join(body)
                node.heredocs.append(doc)
        node.start_line, node.end_line = start, i
        nodes.append(node)
    if not nodes:
        raise DockerfileParseError("file with no instructions")
    return ParseResult(nodes, d.escape, d.values.get("syntax", ""), warnings)


def _trim_continuation(line: str, d: _Directives):
    """Strip a trailing escape character; return (text, True when the instruction ends here)."""
    m = d.continuation.search(line)
    if m:
        return line[:m.start()], False
    return line, True


def _node_from_line(line: str, d: _Directives, start: int, end: int) -> Node:
    parts = _WHITESPACE_RE.split(line.strip(), 1)
    cmd = parts[0]
    rest, flags = ("", [])
    if len(parts) == 2:
        rest, flags = extract_flags(parts[1])
    rest = rest.strip()
    node = Node(cmd.lower(), line, flags)
    try:
        _ARG_PARSERS.get(node.name, _parse_ignore)(node, rest, d)
    except DockerfileParseError as e:
        if e.line:
            raise
        raise DockerfileParseError(e.detail, start) from None
    node.start_line, node.end_line = start, end
    return node


def extract_flags(line: str):
    """Split leading ``--flag[=value]`` words off an instruction's arguments.

    Returns:
        (the rest of the line, [flag text without the leading ``--``]).
    """
    words, pos, n = [], 0, len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if pos >= n:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        word, quote, blank_ok = "", None, False
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = None
                elif ch == "\\" and pos + 1 < n:
                    pos += 1
                    word += line[pos]
                elif ch != "\\":
                    word += ch
            elif ch.isspace():
                break
            elif ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == "\\":
                if pos + 1 < n:
                    pos += 1
                    word += line[pos]
            else:
                word += ch
            pos += 1
        if word == "--":
            return line[pos:].lstrip(), words
        if word or blank_ok:
            words.append(word[2:] if word.startswith("--") else word)


def _parse_ignore(node, rest, d):
    node.args = []


def _parse_json(rest: str):
    """A JSON array of strings, or None when ``rest`` is not JSON (then it is shell form)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise DockerfileParseError(NOT_STRING_ARRAY)
    return value


def _parse_maybe_json(node, rest, d):
    if not rest:
        return
    value = _parse_json(rest)
    if value is not None:
        node.args, node.json = value, True
    else:
        node.args = [rest]


def _parse_maybe_json_to_list(node, rest, d):
    value = _parse_json(rest)
    if value is not None:
        node.args, node.json = value, True
    else:
        _parse_whitespace_delimited(node, rest, d)


def _parse_whitespace_delimited(node, rest, d):
    node.args = [w for w in _WHITESPACE_RE.split(rest) if w] if rest else []


def _parse_string(node, rest, d):
    node.args = [rest] if rest else []


def parse_words(rest: str, escape: str = "\\") -> list:
    """Split on whitespace outside quotes, keeping quotes and escapes (ENV, LABEL, ARG)."""
    words, word, quote, blank_ok = [], "", None, False
    in_word, i, n = False, 0, len(rest)
    while i < n:
        ch = rest[i]
        if not in_word:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote is None and ch.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok, in_word = "", False, False
            i += 1
            continue
        if quote is None and ch in "'\"":
            quote, blank_ok = ch, True
        elif quote is not None and ch == quote:
            quote = None
        elif ch == escape and quote != "'":
            # the escape character and what it escapes are kept; a trailing one is dropped
            if i + 1 == n:
                break
            word += ch
            i += 1
            ch = rest[i]
        word += ch
        i += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def _parse_name_val(node, rest, d):
    words = parse_words(rest, d.escape)
    if not words:
        return
    if "=" not in words[0]:
        parts = _WHITESPACE_RE.split(rest, 1)
        if len(parts) < 2 or not parts[1]:
            raise DockerfileParseError("%s must have two arguments" % node.name.upper())
        node.args, node.legacy_kv = [parts[0], parts[1]], True
        return
    args = []
    for word in words:
        if "=" not in word:
            raise DockerfileParseError(
                "Syntax error - can't find = in %s. Must be of the form: name=value" % _quote(word))
        key, value = word.split("=", 1)
        args += [key, value]
    node.args = args


def _parse_name_or_name_val(node, rest, d):
    node.args = parse_words(rest, d.escape)


def _parse_healthcheck(node, rest, d):
    parts = rest.split(None, 1)
    if not parts:
        return
    sub = Node("", "")
    _parse_maybe_json(sub, parts[1].strip() if len(parts) > 1 else "", d)
    node.args, node.json = [parts[0]] + sub.args, sub.json


def _parse_subcommand(node, rest, d):
    if rest:
        node.sub = _node_from_line(rest, d, 0, 0)


def _quote(s: str) -> str:
    return json.dumps(s)


def _heredocs_in(line: str, start: int, end: int) -> list:
    """The heredocs a RUN/COPY/ADD line opens, in order (docker scans its shell words)."""
    try:
        words = Lexer("\\", raw_quotes=True).process_words(line, {})
    except ShellSyntaxError:
        return []
    docs = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def parse_heredoc(word: str):
    """A Heredoc for a word like ``<<EOF``, ``<<-"EOF"``, ``3<<EOF``; None for other words."""
    m = _HEREDOC_RE.match(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    lexer = Lexer("\\", skip_unset=True)
    try:
        plain = lexer.process_words(rest, {})
        lexer.raw_quotes = True
        raw = lexer.process_words(rest, {})
    except ShellSyntaxError:
        return None
    if len(plain) != 1 or len(raw) != 1:
        return None
    quotes = lambda w: w.count("'") + w.count('"')  # noqa: E731
    return Heredoc(plain[0], expand=quotes(plain[0]) == quotes(raw[0]), chomp=m.group(2) == "-",
                   fd=int(m.group(1) or 0))


_ARG_PARSERS = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_name_val,
    "expose": _parse_whitespace_delimited,
    "from": _parse_whitespace_delimited,
    "healthcheck": _parse_healthcheck,
    "label": _parse_name_val,
    "maintainer": _parse_string,
    "onbuild": _parse_subcommand,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}
KNOWN_INSTRUCTIONS = tuple(sorted(_ARG_PARSERS))
