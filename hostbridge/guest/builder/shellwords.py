"""Variable substitution and word splitting for Dockerfile arguments, as docker's ShellLex.

Docker does not run a shell to expand ``$VAR`` in ENV, COPY, WORKDIR…: it has its own small
lexer (moby/buildkit ``frontend/dockerfile/shell``). This module behaves as that lexer:

- ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:+alt}``, ``${VAR+alt}``,
  ``${VAR:?message}``, ``${VAR?message}``, and the pattern forms ``${VAR#p}``, ``${VAR##p}``,
  ``${VAR%p}``, ``${VAR%%p}``, ``${VAR/p/r}``, ``${VAR//p/r}``;
- single quotes keep everything literal; double quotes expand ``$`` and let the escape
  character escape ``"``, ``$`` and itself; outside quotes the escape character escapes any
  character and is dropped;
- ``process_words`` splits on unquoted whitespace, including whitespace that an unquoted
  expansion produced (``EXPOSE $PORTS``).
"""

from __future__ import annotations

import fnmatch
import re

from ..errors import InvalidParameter

_SPECIAL_PARAMS = "@*#?-$!0"


class ShellSyntaxError(InvalidParameter):
    """A word could not be expanded (unterminated quote, bad substitution, ``${X:?msg}``)."""


class _Words:
    """Accumulates words as the lexer goes; unquoted whitespace ends a word."""

    def __init__(self):
        self.word = ""
        self.words = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word, self.in_word = "", False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def done(self) -> list:
        if self.word:
            self.words.append(self.word)
            self.word, self.in_word = "", False
        return self.words


class Lexer:
    """docker's ShellLex.

    Args:
        escape: the escape character, ``\\`` or ``\\``` (from the ``# escape=`` directive).
        raw_quotes: keep quote characters in the result (the parser uses it for heredocs).
        skip_unset: leave ``$NAME`` as written when NAME is not set, instead of "".
    """

    def __init__(self, escape: str = "\\", raw_quotes: bool = False, skip_unset: bool = False):
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.skip_unset = skip_unset

    def process_word(self, word: str, env) -> str:
        """Expand one word: quotes removed, variables substituted, whitespace kept.

        Args:
            word: the text as written in the Dockerfile.
            env: a mapping of variable names to values.

        Returns:
            The expanded word.

        Raises:
            ShellSyntaxError: docker's message, e.g. ``failed to process "${B:?x}": B: x``.
        """
        return _Scan(self, word, env).run()[0]

    def process_words(self, word: str, env) -> list:
        """Expand and split on unquoted whitespace (what EXPOSE and the heredoc scan use).

        Raises:
            ShellSyntaxError: as ``process_word``.
        """
        return _Scan(self, word, env).run()[1]


class _Scan:
    """One pass over one source string."""

    def __init__(self, lexer: Lexer, source: str, env):
        self.lx = lexer
        self.src = source
        self.pos = 0
        self.env = env

    def run(self):
        try:
            return self.stop_on(None)
        except _Fail as e:
            raise ShellSyntaxError("failed to process %s: %s" % (_go_quote(self.src), e)) from None

    def peek(self):
        return self.src[self.pos] if self.pos < len(self.src) else None

    def next(self):
        ch = self.peek()
        if ch is not None:
            self.pos += 1
        return ch

    def stop_on(self, stop):
        result, words = [], _Words()
        while self.peek() is not None:
            ch = self.peek()
            if stop is not None and ch == stop:
                self.next()
                return "".join(result), words.done()
            if ch == "$":
                text = self.dollar()
                result.append(text)
                words.add_string(text)
            elif ch == "'":
                text = self.single_quote()
                result.append(text)
                words.add_raw(text)
            elif ch == '"':
                text = self.double_quote()
                result.append(text)
                words.add_raw(text)
            else:
                ch = self.next()
                if ch == self.lx.escape:
                    ch = self.next()
                    if ch is None:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise _Fail("unexpected end of statement while looking for matching %s" % stop)
        return "".join(result), words.done()

    def single_quote(self) -> str:
        opening = self.next()
        out = [opening] if self.lx.raw_quotes else []
        while True:
            ch = self.next()
            if ch is None:
                raise _Fail("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        opening = self.next()
        out = [opening] if self.lx.raw_quotes else []
        while True:
            ch = self.peek()
            if ch is None:
                raise _Fail("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.lx.escape:
                following = self.peek()
                if following is None:
                    continue
                if following in ('"', "$", self.lx.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        ch = self.peek()
        if ch is None:
            return ""
        if ch.isdigit():
            start = self.pos
            while self.peek() is not None and self.peek().isdigit():
                self.next()
            return self.src[start:self.pos]
        if ch in _SPECIAL_PARAMS:
            return self.next()
        start = self.pos
        while self.peek() is not None and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.src[start:self.pos]

    def lookup(self, name):
        return (self.env[name], True) if name in self.env else ("", False)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.lx.skip_unset:
                return "$" + name
            return value
        self.next()
        ch = self.peek()
        if ch is None:
            raise _Fail("syntax error: missing '}'")
        if ch in "{}:":
            raise _Fail("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        value, found = self.lookup(name)
        if op == "}":
            if not found and self.lx.skip_unset:
                return "${%s}" % name
            return value
        if op is None:
            raise _Fail("syntax error: missing '}'")
        if op == ":":
            modifier = self.next()
            word = self.word_until_brace()
            if not found and self.lx.skip_unset:
                return "${%s:%s%s}" % (name, modifier or "", word)
            if modifier == "+":
                return word if value else ""
            if modifier == "-":
                return value if value else word
            if modifier == "?":
                if not found:
                    raise _Fail("%s: %s" % (name, word or "is not allowed to be unset"))
                if not value:
                    raise _Fail("%s: %s" % (name, word or "is not allowed to be empty"))
                return value
            raise _Fail("unsupported modifier (%s) in substitution" % (modifier or ""))
        if op in "+-?":
            word = self.word_until_brace()
            if not found and self.lx.skip_unset:
                return "${%s%s%s}" % (name, op, word)
            if op == "+":
                return word if found else ""
            if op == "-":
                return value if found else word
            if not found:
                raise _Fail("%s: %s" % (name, word or "is not allowed to be unset"))
            return value
        if op in "#%":
            longest = self.peek() == op
            if longest:
                self.next()
            pattern = self.word_until_brace()
            return _trim(value, pattern, op == "#", longest)
        if op == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            pattern, _ = self.stop_on("/") if "/" in self.src[self.pos:] else (None, None)
            if pattern is None:
                pattern, replacement = self.word_until_brace(), ""
            else:
                replacement = self.word_until_brace()
            return _replace(value, pattern, replacement, replace_all)
        raise _Fail("unsupported modifier (%s) in substitution" % op)

    def word_until_brace(self) -> str:
        try:
            return self.stop_on("}")[0]
        except _Fail:
            if self.peek() is None:
                raise _Fail("syntax error: missing '}'") from None
            raise


class _Fail(Exception):
    """Internal: a lexing error before the source is named in the message."""


def _glob_re(pattern: str) -> str:
    return fnmatch.translate(pattern)[4:-3]  # strip fnmatch's "(?s:" … ")\Z" wrapper


def _trim(value: str, pattern: str, front: bool, longest: bool) -> str:
    rx = re.compile(_glob_re(pattern), re.S)
    cuts = range(len(value), -1, -1) if longest else range(len(value) + 1)
    for n in cuts:
        part = value[:n] if front else value[len(value) - n:]
        if rx.fullmatch(part):
            return value[n:] if front else value[:len(value) - n]
    return value


def _replace(value: str, pattern: str, replacement: str, replace_all: bool) -> str:
    if not pattern:
        return value
    rx = re.compile(_glob_re(pattern), re.S)
    return rx.sub(lambda m: replacement, value, count=0 if replace_all else 1)


def _go_quote(s: str) -> str:
    """Go's %q for the error messages docker prints."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
