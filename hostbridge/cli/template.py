"""A subset of Go templates, enough for docker's ``--format`` and ``inspect -f``.

Supported actions: ``{{.}}``, ``{{.Field}}``, ``{{.A.B}}``, ``{{json .}}``, ``{{json .A}}``,
``{{index .A "key"}}``, ``{{upper .A}}``, ``{{lower .A}}``, ``{{join .A ","}}``, ``{{println}}``;
a leading ``table`` makes a docker-style table with a header row. ``\\t`` and ``\\n`` in the
format are escapes, as in docker.
"""

from __future__ import annotations

import json
import re

from ..errors import HostbridgeError

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


class TemplateError(HostbridgeError):
    """A ``--format`` template this subset cannot parse or evaluate."""


def go_print(value) -> str:
    """How Go's ``text/template`` prints a value (``map[a:b]``, ``[x y]``, ``true``, ``<no value>``)."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return "%d" % value
    if isinstance(value, dict):
        return "map[" + " ".join("%s:%s" % (k, go_print(value[k])) for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def _lookup(dot, path):
    value = dot
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            if part not in value:  # docker runs templates with missingkey=error
                why = ("can't evaluate field %s" % part if isinstance(value, Row)  # a Go struct
                       else 'map has no entry for key "%s"' % part)
                raise TemplateError('template: executing "" at <%s>: %s' % (path, why),
                                    hint="check the --format template")
            value = value[part]
        else:
            raise TemplateError("template: can't evaluate field %s in type %s" % (part, type(value).__name__),
                                hint="check the --format template")
    return value


def _arg(dot, token):
    if token.startswith('"'):
        return json.loads(token)
    if token.startswith("."):
        return _lookup(dot, token)
    raise TemplateError("template: unsupported argument %r" % token, hint="use .Field or \"string\" arguments")


class Row(dict):
    """A formatting context (a ``ps``/``images`` row): ``{{json .}}`` prints it with sorted keys
    and ``<>&`` escaped, as Go's json.Marshal of docker's context does; other values keep them."""


def _json(value):
    if isinstance(value, Row):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_FUNCS = {
    "json": lambda v: _json(v),
    "index": lambda v, k: (v or {}).get(k) if isinstance(v, dict) else (v[int(k)] if v else None),
    "upper": lambda v: go_print(v).upper(),
    "lower": lambda v: go_print(v).lower(),
    "join": lambda v, sep: sep.join(go_print(x) for x in (v or [])),
    "println": lambda *v: " ".join(go_print(x) for x in v) + "\n",
}


def _eval(dot, action):
    tokens = _TOKEN.findall(action)
    if not tokens:
        raise TemplateError("template: empty action", hint="check the --format template")
    head = tokens[0]
    if head in _FUNCS:
        result = _FUNCS[head](*[_arg(dot, t) for t in tokens[1:]])
        return result if isinstance(result, str) else go_print(result)
    if len(tokens) == 1 and head.startswith("."):
        return go_print(_lookup(dot, head))
    raise TemplateError("template: unsupported action {{%s}}" % action,
                        hint="supported: .Field, json, index, upper, lower, join, println")


class Template:
    """A parsed format.

    Attributes:
        is_table: the format started with ``table``.
        fields: the top-level field of each action (for table headers).
    """

    def __init__(self, fmt):
        fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
        self.is_table = fmt.startswith("table")
        if self.is_table:
            fmt = fmt[len("table"):].lstrip(" ")
        self.fmt = fmt
        self.actions = _ACTION.findall(fmt)
        self.pieces = _ACTION.split(fmt)  # literal, action, literal, action, …
        if any("{{" in literal for literal in self.pieces[::2]):
            raise TemplateError("failed to parse template: template: :1: unclosed action",
                                hint="check the --format template")

    def render(self, dot) -> str:
        """Evaluate the template against ``dot`` (a dict)."""
        out = []
        for i, piece in enumerate(self.pieces):
            out.append(piece if i % 2 == 0 else _eval(dot, piece))
        return "".join(out)

    def header(self, names) -> str:
        """The header row: each action replaced by ``names[Field]`` (docker's column titles)."""
        out = []
        for i, piece in enumerate(self.pieces):
            if i % 2 == 0:
                out.append(piece)
            else:
                tokens = _TOKEN.findall(piece)
                field = next((t for t in tokens if t.startswith(".")), "")
                key = field.lstrip(".").split(".")[0]
                out.append(names.get(key, key.upper()))
        return "".join(out)


def wants_field(fmt, field):
    """Whether ``fmt`` reads ``.field`` (directly or through ``{{json .}}``)."""
    return ("." + field) in fmt or re.search(r"json\s+\.\s*-?}}", fmt) is not None


def render_rows(fmt, rows, names):
    """Render ``rows`` (dicts) with ``fmt``; a ``table`` format gets a header and aligned columns.

    Args:
        fmt: the format string.
        rows: one dict per line.
        names: field → column title (``{"ID": "CONTAINER ID"}``).
    Returns:
        The output text, each line ending in ``\\n``.
    """
    from .format import table

    tpl = Template(fmt)
    lines = [tpl.render(Row(r)) for r in rows]
    if not tpl.is_table:
        return "".join(line + "\n" for line in lines)
    if "\t" not in tpl.fmt and not rows:
        return tpl.header(names) + "\n"
    return table([tpl.header(names).split("\t")] + [line.split("\t") for line in lines])
