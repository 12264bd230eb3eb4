"""Parsed nodes → typed instructions, checked as docker's ``instructions`` package checks them.

Each instruction keeps its node (line numbers, original text). Variables are not expanded
here: an instruction that docker expands has an ``expand(fn)`` method the build calls with the
stage's current variables (``fn`` = ShellLex.process_word with those variables).
"""

from __future__ import annotations

import re

from ..durations import format_duration, parse_duration
from .parser import DockerfileParseError, parse_heredoc
from ..errors import InvalidParameter

_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_ONBUILD_RE = re.compile(r"^\s*ONBUILD\s*", re.I)
_MIN_DURATION = 10 ** 6  # docker's container.MinimumDuration: 1ms


class Flags:
    """Builder flags (``--from=x``) checked against what an instruction accepts."""

    def __init__(self, raw, allowed, booleans=()):
        self.values = {}
        for text in raw:
            name, eq, value = text.partition("=")
            if name not in allowed and name not in booleans:
                raise InvalidParameter("Unknown flag: %s" % name)
            if name in booleans:
                if eq and value.lower() not in ("true", "false"):
                    raise InvalidParameter("expecting boolean value for flag %s, not: %s" % (name, value))
                self.values[name] = (not eq) or value.lower() == "true"
            else:
                if name in self.values:
                    raise InvalidParameter("Duplicate flag specified: %s" % name)
                if not eq:
                    raise InvalidParameter("Missing a value on flag: %s" % name)
                self.values[name] = value

    def get(self, name, default=""):
        return self.values.get(name, default)


class Instruction:
    """Base: ``name`` (upper case), ``node``, ``line`` and docker's ``original`` text."""

    expandable = False

    def __init__(self, node):
        self.node = node
        self.name = node.name.upper()
        self.line = node.start_line

    @property
    def original(self) -> str:
        return self.node.original.strip()

    def expand(self, fn) -> None:
        """Expand variables in the words docker expands, in place (``fn(word) -> str``)."""


class From(Instruction):
    def __init__(self, node):
        super().__init__(node)
        args = node.args
        if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
            raise InvalidParameter("FROM requires either one or three arguments")
        self.base = args[0]
        self.stage_name = args[2].lower() if len(args) == 3 else ""
        if self.stage_name and not _STAGE_NAME_RE.match(self.stage_name):
            raise InvalidParameter(
                "invalid name for build stage: %s, name can't start with a number or contain symbols"
                % _q(args[2]))
        self.platform = Flags(node.flags, ("platform",)).get("platform")


class Run(Instruction):
    """``args``: the JSON array, or [command line] in shell form (``json`` False)."""

    def __init__(self, node):
        super().__init__(node)
        for name in ("mount", "network", "security"):
            if any(f.split("=", 1)[0] == name for f in node.flags):
                raise InvalidParameter("the --%s option requires BuildKit" % name)
        Flags(node.flags, ())
        self.args, self.json, self.heredocs = list(node.args), node.json, list(node.heredocs)


class Cmd(Instruction):
    def __init__(self, node):
        super().__init__(node)
        Flags(node.flags, ())
        self.args, self.json = list(node.args), node.json


class Entrypoint(Cmd):
    pass


class Shell(Instruction):
    def __init__(self, node):
        super().__init__(node)
        Flags(node.flags, ())
        if not node.args:
            raise InvalidParameter("SHELL requires at least one argument")
        if not node.json:
            raise InvalidParameter("SHELL requires the arguments to be in JSON form")
        self.shell = list(node.args)


class _KeyValues(Instruction):
    """ENV and LABEL: ``pairs`` [[key, value]…] (values with their quotes until expanded)."""

    expandable = True

    def __init__(self, node):
        super().__init__(node)
        Flags(node.flags, ())
        if not node.args:
            raise InvalidParameter("%s requires at least one argument" % self.name)
        a = node.args
        self.pairs = [[a[i], a[i + 1]] for i in range(0, len(a), 2)]

    def expand(self, fn):
        self.pairs = [[fn(k), fn(v)] for k, v in self.pairs]


class Env(_KeyValues):
    pass


class Label(_KeyValues):
    pass


class Arg(Instruction):
    """``args`` [[name, default or None]…]."""

    expandable = True

    def __init__(self, node):
        super().__init__(node)
        Flags(node.flags, ())
        if not node.args:
            raise InvalidParameter("ARG requires at least one argument")
        self.args = []
        for word in node.args:
            name, eq, value = word.partition("=")
            if not name:
                raise InvalidParameter("ARG names can not be blank")
            self.args.append([name, value if eq else None])

    def expand(self, fn):
        self.args = [[fn(k), None if v is None else fn(v)] for k, v in self.args]


class _OneValue(Instruction):
    """WORKDIR, USER, STOPSIGNAL, MAINTAINER: one ``value``."""

    expandable = True

    def __init__(self, node):
        super().__init__(node)
        Flags(node.flags, ())
        if len(node.args) != 1:
            raise InvalidParameter("%s requires exactly one argument" % self.name)
        self.value = node.args[0]

    def expand(self, fn):
        self.value = fn(self.value)


class Workdir(_OneValue):
    pass


class User(_OneValue):
    pass


class StopSignal(_OneValue):
    pass


class Maintainer(_OneValue):
    expandable = False

    def expand(self, fn):
        pass


class Expose(Instruction):
    """``ports`` as written, sorted as docker sorts them; split further when expanded."""

    expandable = True

    def __init__(self, node):
        super().__init__(node)
        Flags(node.flags, ())
        if not node.args:
            raise InvalidParameter("EXPOSE requires at least one argument")
        self.ports = sorted(node.args)


class Volume(Instruction):
    expandable = True

    def __init__(self, node):
        super().__init__(node)
        Flags(node.flags, ())
        if not node.args:
            raise InvalidParameter("VOLUME requires at least one argument")
        self.volumes = list(node.args)
        self.json = node.json
        self._check()

    def _check(self):
        if any(not v.strip() for v in self.volumes):
            raise InvalidParameter("VOLUME specified can not be an empty string")

    def expand(self, fn):
        self.volumes = [fn(v) for v in self.volumes]
        self._check()


class Copy(Instruction):
    """COPY (and ADD, ``is_add``): ``sources`` (paths), ``contents`` (heredoc sources as
    [name, data, expand]), ``dest``, ``chown``, ``chmod``, ``from_`` (COPY only), ``link``."""

    expandable = True

    def __init__(self, node):
        super().__init__(node)
        self.is_add = self.name == "ADD"
        # --link only changes how BuildKit stores the layer: accepted, same result here
        if self.is_add:
            flags = Flags(node.flags, ("chown", "chmod", "checksum"), booleans=("link",))
        else:
            flags = Flags(node.flags, ("from", "chown", "chmod"), booleans=("link",))
        if len(node.args) < 2:
            raise InvalidParameter("%s requires at least two arguments, but only one was provided. "
                                   "Destination could not be determined." % self.name)
        self.dest = node.args[-1]
        if parse_heredoc(self.dest) is not None:
            raise InvalidParameter("%s cannot accept a heredoc as a destination" % self.name)
        docs = {d.name: d for d in node.heredocs}
        self.sources, self.contents = [], []
        for src in node.args[:-1]:
            doc = parse_heredoc(src) if not node.json else None
            if doc is not None and doc.name in docs:
                self.contents.append([doc.name, docs[doc.name].data(), doc.expand])
            else:
                self.sources.append(src)
        self.from_ = flags.get("from")
        self.chown, self.chmod = flags.get("chown"), flags.get("chmod")
        self.checksum = flags.get("checksum")
        self.link = bool(flags.get("link", False))

    def expand(self, fn):
        self.sources = [fn(s) for s in self.sources]
        self.dest = fn(self.dest)
        self.chown, self.chmod, self.from_ = fn(self.chown), fn(self.chmod), fn(self.from_)
        self.contents = [[n, fn(data) if exp else data, exp] for n, data, exp in self.contents]


class Healthcheck(Instruction):
    """``health``: docker's HealthConfig dict (``Test``, ``Interval``… in nanoseconds)."""

    def __init__(self, node):
        super().__init__(node)
        if not node.args:
            raise InvalidParameter("HEALTHCHECK requires at least one argument")
        kind, args = node.args[0].upper(), node.args[1:]
        if kind == "NONE":
            if args:
                raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
            Flags(node.flags, ())
            self.health = {"Test": ["NONE"]}
            return
        flags = Flags(node.flags, ("interval", "timeout", "start-period", "start-interval", "retries"))
        if kind != "CMD":
            raise InvalidParameter('Unknown type "%s" in HEALTHCHECK (try CMD)' % kind)
        command = args if node.json else ([" ".join(args)] if args else [])
        if not command:
            raise InvalidParameter("Missing command after HEALTHCHECK CMD")
        health = {"Test": [kind if node.json else "CMD-SHELL"] + command}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                          ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
            value = _interval(flag, flags.get(flag))
            if value:
                health[key] = value
        retries = flags.get("retries")
        if retries:
            try:
                n = int(retries)
            except ValueError:
                raise InvalidParameter('strconv.ParseInt: parsing %s: invalid syntax' % _q(retries)) from None
            if n < 0:
                raise InvalidParameter("--retries cannot be negative (%d)" % n)
            health["Retries"] = n
        self.health = health

    def history_text(self) -> str:
        """Go's ``%q`` of the HealthConfig pointer, as docker's history shows it."""
        h = self.health
        test = "[" + " ".join(_q(t) for t in h["Test"]) + "]"
        durations = " ".join(_q(format_duration(h.get(k, 0))) for k in ("Interval", "Timeout", "StartPeriod"))
        return "&{%s %s %s}" % (test, durations, _go_rune(h.get("Retries", 0)))


class Onbuild(Instruction):
    """``expression``: the trigger's text, as stored in the image's OnBuild list."""

    def __init__(self, node):
        super().__init__(node)
        sub = node.sub
        if sub is None:
            raise InvalidParameter("ONBUILD requires at least one argument")
        if sub.name == "onbuild":
            raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if sub.name in ("maintainer", "from"):
            raise InvalidParameter("%s isn't allowed as an ONBUILD trigger" % sub.name.upper())
        self.expression = _ONBUILD_RE.sub("", node.original, count=1).strip()


def _interval(flag: str, text: str) -> int:
    if not text:
        return 0
    ns = parse_duration(text)
    if ns and ns < _MIN_DURATION:
        raise InvalidParameter("Interval %s cannot be less than %s" % (_q(flag), format_duration(_MIN_DURATION)))
    return ns


def _q(s: str) -> str:
    """Go's %q (enough of it for the strings builds print)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def _go_rune(n: int) -> str:
    """Go's %q of an int, which prints it as a quoted rune."""
    if n < 0x20 or n == 0x7f:
        return "'\\x%02x'" % n
    if n == ord("'"):
        return "'\\''"
    return "'%s'" % chr(n)


_KINDS = {
    "from": From, "run": Run, "cmd": Cmd, "entrypoint": Entrypoint, "shell": Shell, "env": Env,
    "label": Label, "arg": Arg, "workdir": Workdir, "user": User, "stopsignal": StopSignal,
    "maintainer": Maintainer, "expose": Expose, "volume": Volume, "copy": Copy, "add": Copy,
    "healthcheck": Healthcheck, "onbuild": Onbuild,
}


def from_node(node) -> Instruction:
    """The typed instruction for a parsed node.

    Raises:
        DockerfileParseError: ``unknown instruction: FOO`` or the instruction's own error, each
            with the node's line.
    """
    kind = _KINDS.get(node.name)
    if kind is None:
        raise DockerfileParseError("unknown instruction: %s" % node.name.upper(), node.start_line)
    try:
        return kind(node)
    except DockerfileParseError as e:
        raise DockerfileParseError(e.detail, e.line or node.start_line) from None
    except InvalidParameter as e:
        raise DockerfileParseError(e.message, node.start_line) from None


def from_nodes(nodes) -> list:
    """``from_node`` for each node, in order."""
    return [from_node(n) for n in nodes]
