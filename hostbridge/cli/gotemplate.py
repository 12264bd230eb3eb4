"""Go's ``text/template`` language, the part docker's ``--format`` uses, with docker's functions.

Actions: fields (``.A.B``), variables (``$``, ``$x := …``, ``range $i, $v := …``), pipes (``|``),
parenthesised pipelines, ``if``/``else if``/``else``, ``range``/``else``, ``with``/``else``,
``{{-``/``-}}`` trimming and ``{{/* comments */}}``. Functions: Go's ``and or not len index
print printf println eq ne lt le gt ge slice`` and docker's ``json join split lower upper title
pad truncate``. Templates run with ``missingkey=error``, as docker runs them.

Parsing is separate from running (``parse`` → a node tree; ``execute(tree, dot)``), both raise
``GoTemplateError`` with Go's wording so that the CLI can print what docker prints.
"""

from __future__ import annotations

import json
import re


class GoTemplateError(Exception):
    """A template that does not parse or does not run (the text is Go's message)."""


class Struct(dict):
    """A Go struct rather than a map: a missing field reads "can't evaluate field X"."""


class Title(str):
    """A table header's column title: any field of it is itself (``{{.A.B}}`` heads as A's title)."""


# ---- lexing -------------------------------------------------------------------------------
_TOKEN = re.compile(r'''\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*") | (?P<raw>`[^`]*`) | (?P<char>'(?:[^'\\]|\\.)') |
    (?P<num>-?\d+(?:\.\d+)?) | (?P<decl>:=) | (?P<assign>=) | (?P<pipe>\|) | (?P<lp>\() |
    (?P<close>\)(?:\.\w+)+) | (?P<rp>\)) |
    (?P<comma>,) | (?P<var>\$\w*(?:\.\w+)*) | (?P<field>(?:\.\w+)+|\.) | (?P<word>[A-Za-z_]\w*) )''', re.X)


def _tokens(action, pos_text):
    out, i = [], 0
    while i < len(action):
        if action[i:].strip() == "":
            break
        m = _TOKEN.match(action, i)
        if not m or m.end() == i:
            raise GoTemplateError("template: :1: unexpected %r in %s" % (action[i:].strip()[:1], pos_text))
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        i = m.end()
    return out


def _split(text):
    """Text and actions: ``[("text", s), ("action", s)…]``, with ``{{-``/``-}}`` trimming applied."""
    out, i = [], 0
    while True:
        j = text.find("{{", i)
        if j < 0:
            out.append(["text", text[i:]])
            break
        out.append(["text", text[i:j]])
        k = text.find("}}", j + 2)
        if k < 0:
            raise GoTemplateError("template: :1: unclosed action")
        body = text[j + 2:k]
        if body.startswith("-") and body[1:2] in (" ", "\t", "\n", "\r"):
            out[-1][1] = out[-1][1].rstrip()
            body = body[1:]
        trim_right = body.endswith("-") and body[-2:-1] in (" ", "\t", "\n", "\r")
        if trim_right:
            body = body[:-1]
        out.append(["action", body.strip()])
        i = k + 2
        if trim_right:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
    return [(kind, s) for kind, s in out if kind == "action" or s]


# ---- parsing ------------------------------------------------------------------------------
class _Parser:
    def __init__(self, items):
        self.items, self.i = items, 0

    def parse_list(self, stop=()):
        nodes = []
        while self.i < len(self.items):
            kind, s = self.items[self.i]
            if kind == "text":
                nodes.append(("text", s))
                self.i += 1
                continue
            if s.startswith("/*"):
                self.i += 1
                continue
            word = s.split(None, 1)[0] if s else ""
            if word in stop:
                return nodes, word
            self.i += 1
            if word in ("if", "with", "range"):
                nodes.append(self._control(word, s[len(word):].strip()))
            elif word in ("end", "else"):
                raise GoTemplateError("template: :1: unexpected {{%s}}" % word)
            elif word in ("define", "template", "block", "break", "continue"):
                raise GoTemplateError("template: :1: {{%s}} is not supported here" % word)
            else:
                nodes.append(("action", _pipeline(_tokens(s, s), s)))
        if stop:
            raise GoTemplateError("template: :1: unexpected EOF")
        return nodes, None

    def _control(self, word, rest, chained=False):
        # An `else if`/`else with` chain shares the outer {{end}}: only the outermost consumes it.
        if not rest and not chained:
            raise GoTemplateError("template: :1: missing value for %s" % word)
        pipe = _pipeline(_tokens(rest, rest), rest)
        body, end = self.parse_list(("else", "end"))
        other = []
        if end == "else":
            s = self.items[self.i][1]
            self.i += 1
            tail = s[len("else"):].strip()
            if tail.startswith("if ") or tail.startswith("with "):
                w = tail.split(None, 1)[0]
                other = [self._control(w, tail[len(w):].strip(), chained=True)]
            else:
                other, end = self.parse_list(("end",))
        if not chained:
            self.i += 1  # the {{end}}
        return (word, pipe, body, other)


def _pipeline(tokens, text):
    """``[decl vars], [commands]``; a command is a list of operands."""
    decl = []
    if any(k == "decl" for k, _ in tokens):
        while tokens and tokens[0][0] in ("var", "comma"):
            k, v = tokens.pop(0)
            if k == "var":
                decl.append(v)
        if not tokens or tokens[0][0] != "decl":
            raise GoTemplateError("template: :1: bad declaration in %s" % text)
        tokens.pop(0)
    cmds, cur, depth, group = [], [], 0, []
    for k, v in tokens:
        if depth:
            if k == "lp":
                depth += 1
            elif k in ("rp", "close"):
                depth -= 1
                if depth == 0:
                    inner = _pipeline(group, text)
                    cur.append(("sub", inner, v[1:] if k == "close" else ""))
                    group = []
                    continue
            group.append((k, v))
            continue
        if k == "lp":
            depth = 1
        elif k == "pipe":
            if not cur:
                raise GoTemplateError("template: :1: missing command in %s" % text)
            cmds.append(cur)
            cur = []
        elif k in ("rp", "close", "comma", "decl", "assign"):
            raise GoTemplateError("template: :1: unexpected %r in %s" % (v, text))
        else:
            cur.append((k, v))
    if depth:
        raise GoTemplateError("template: :1: unclosed left paren in %s" % text)
    if not cur:
        raise GoTemplateError("template: :1: missing value for command")
    cmds.append(cur)
    for c in cmds:
        if c[0][0] == "word" and c[0][1] not in FUNCS and c[0][1] not in ("true", "false", "nil"):
            raise GoTemplateError('template: :1: function "%s" not defined' % c[0][1])
    return decl, cmds


def parse(text):
    """The node tree of ``text``. Raises GoTemplateError (Go's parse messages)."""
    nodes, _ = _Parser(_split(text)).parse_list()
    return nodes


# ---- running ------------------------------------------------------------------------------
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


def truth(value) -> bool:
    """Go's template truth: false, 0, nil and empty strings, slices and maps are false."""
    return not (value is None or value is False or value == 0 or (hasattr(value, "__len__") and len(value) == 0))


def _field(value, name, where):
    if isinstance(value, Title):
        return value
    if isinstance(value, dict):
        if name in value:
            return value[name]
        why = "can't evaluate field %s" % name if isinstance(value, Struct) else 'map has no entry for key "%s"' % name
        raise GoTemplateError('template: executing "" at <%s>: %s' % (where, why))
    if value is None:
        raise GoTemplateError('template: executing "" at <%s>: nil pointer evaluating interface {}.%s'
                              % (where, name))
    raise GoTemplateError('template: executing "" at <%s>: can\'t evaluate field %s in type %s'
                          % (where, name, _go_type(value)))


def _go_type(v):
    return {str: "string", bool: "bool", int: "int", float: "float64", list: "[]interface {}"}.get(
        type(v), "interface {}")


def _chain(value, path, where):
    for part in [p for p in path.split(".") if p]:
        value = _field(value, part, where)
    return value


class _Run:
    def __init__(self, root, funcs):
        self.vars = [{"$": root}]
        self.funcs = funcs

    def lookup_var(self, name):
        for scope in reversed(self.vars):
            if name in scope:
                return scope[name]
        raise GoTemplateError("template: :1: undefined variable: %s" % name)

    def operand(self, dot, tok):
        kind, v = tok[0], tok[1]
        if kind == "str":
            return json.loads(v)
        if kind == "raw":
            return v[1:-1]
        if kind == "char":
            return ord(json.loads('"%s"' % v[1:-1]))
        if kind == "num":
            return float(v) if "." in v else int(v)
        if kind == "field":
            return dot if v == "." else _chain(dot, v, v)
        if kind == "var":
            name, _, path = v.partition(".")
            return _chain(self.lookup_var(name), path, v)
        if kind == "word":
            if v in ("true", "false"):
                return v == "true"
            if v == "nil":
                return None
            return self.funcs[v]()
        if kind == "sub":
            value = self.pipeline(dot, tok[1])
            return _chain(value, tok[2], tok[2]) if tok[2] else value
        raise GoTemplateError("template: :1: unexpected %s" % v)

    def command(self, dot, cmd, piped, has_piped):
        head = cmd[0]
        if head[0] == "word" and head[1] in self.funcs:
            args = [self.operand(dot, t) for t in cmd[1:]] + ([piped] if has_piped else [])
            try:
                return self.funcs[head[1]](*args)
            except GoTemplateError:
                raise
            except (TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
                raise GoTemplateError('template: executing "" at <%s>: error calling %s: %s'
                                      % (head[1], head[1], e)) from None
        if len(cmd) > 1 or has_piped:
            raise GoTemplateError("template: :1: can't give argument to non-function %s" % head[1])
        return self.operand(dot, head)

    def pipeline(self, dot, pipe):
        decl, cmds = pipe
        value, has = None, False
        for cmd in cmds:
            value, has = self.command(dot, cmd, value, has), True
        if decl:
            self.vars[-1][decl[-1]] = value
        return value

    def nodes(self, dot, nodes, out):
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                value = self.pipeline(dot, node[1])
                if not node[1][0]:  # a declaration prints nothing
                    out.append(value if isinstance(value, str) else go_print(value))
            else:
                self.control(dot, node, out)

    def control(self, dot, node, out):
        word, pipe, body, other = node
        self.vars.append({})
        try:
            if word == "range":
                decl, cmds = pipe
                value = self.pipeline(dot, ([], cmds))
                items = ([(k, value[k]) for k in sorted(value)] if isinstance(value, dict)
                         else list(enumerate(value)) if isinstance(value, (list, tuple))
                         else list(enumerate(range(value))) if isinstance(value, int) and not isinstance(value, bool)
                         else None)
                if items is None and value is not None:
                    raise GoTemplateError("template: :1: range can't iterate over %s" % go_print(value))
                for k, v in items or ():
                    if len(decl) == 1:
                        self.vars[-1][decl[0]] = v
                    elif len(decl) == 2:
                        self.vars[-1][decl[0]], self.vars[-1][decl[1]] = k, v
                    self.nodes(v, body, out)
                if not items:
                    self.nodes(dot, other, out)
                return
            value = self.pipeline(dot, pipe)
            if truth(value):
                self.nodes(value if word == "with" else dot, body, out)
            else:
                self.nodes(dot, other, out)
        finally:
            self.vars.pop()


def execute(nodes, dot, header=False) -> str:
    """Run a parsed template against ``dot``. Raises GoTemplateError (Go's execution messages).

    ``header``: docker's header functions (``json`` gives "", the string functions give their
    argument back), for a table's title row.
    """
    out = []
    _Run(dot, HEADER_FUNCS if header else FUNCS).nodes(dot, nodes, out)
    return "".join(out)


# ---- functions ----------------------------------------------------------------------------
def to_json(value) -> str:
    """docker's ``json``: Go's json.Marshal (a formatting context's keys sorted, ``<>&`` escaped)."""
    if isinstance(value, Struct):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _index(value, *keys):
    for k in keys:
        if isinstance(value, dict):
            value = value.get(k)
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(k, int) or not 0 <= k < len(value):
                raise GoTemplateError('template: executing "" at <index>: error calling index: index out of '
                                      'range: %s' % k)
            value = value[k]
        elif value is None:
            raise GoTemplateError('template: executing "" at <index>: error calling index: index of untyped nil')
        else:
            raise GoTemplateError("template: executing \"\" at <index>: error calling index: can't index item "
                                  "of type %s" % _go_type(value))
    return value


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(fmt, *args):
    args = list(args)

    def one(m):
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        if not args:
            return "%!" + verb + "(MISSING)"
        a = args.pop(0)
        if verb in "vs":
            text = a if isinstance(a, str) else go_print(a)
            if prec:
                text = text[:int(prec)]
        elif verb == "q":
            text = json.dumps(go_print(a) if not isinstance(a, str) else a, ensure_ascii=False)
        elif verb == "d":
            text = "%d" % int(a)
        elif verb in "xX":
            text = ("%x" % a) if isinstance(a, int) else (go_print(a).encode().hex())
            text = text.upper() if verb == "X" else text
        elif verb in "feg":
            text = ("%" + ("." + prec if prec else "") + verb) % float(a)
        elif verb == "t":
            text = go_print(bool(a))
        else:
            text = go_print(a)
        if width and width != "*":
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width), "0" if "0" in flags and verb in "dfeg" else " ")
        return text

    out = _VERB.sub(one, fmt)
    if args:
        out += "%!(EXTRA " + ", ".join(go_print(a) for a in args) + ")"
    return out


def _eq(a, *others):
    return any(a == b for b in others)


def _print(*args):
    # Go's fmt.Sprint: a space between operands when neither is a string
    out = ""
    for i, x in enumerate(args):
        if i and not isinstance(x, str) and not isinstance(args[i - 1], str):
            out += " "
        out += _text(x)
    return out


def _and(*args):
    for a in args:
        if not truth(a):
            return a
    return args[-1] if args else None


def _or(*args):
    for a in args:
        if truth(a):
            return a
    return args[-1] if args else None


def _title(s):
    # Go's strings.Title: every letter that follows a non-letter goes upper-case
    out, prev = [], " "
    for ch in go_print(s) if not isinstance(s, str) else s:
        out.append(ch.upper() if not prev.isalnum() and prev != "'" else ch)
        prev = ch
    return "".join(out)


def _text(v):
    return v if isinstance(v, str) else go_print(v)


FUNCS = {
    "json": to_json,
    "join": lambda v, sep: sep.join(_text(x) for x in (v or [])),
    "split": lambda s, sep: _text(s).split(sep) if sep else list(_text(s)),
    "lower": lambda s: _text(s).lower(),
    "upper": lambda s: _text(s).upper(),
    "title": _title,
    "pad": lambda s, left, right: " " * int(left) + _text(s) + " " * int(right),
    "truncate": lambda s, n: _text(s)[:int(n)],
    "index": _index,
    "len": lambda v: len(v) if v is not None else 0,
    "print": _print,
    "printf": _printf,
    "println": lambda *a: " ".join(_text(x) for x in a) + "\n",
    "and": _and, "or": _or, "not": lambda v: not truth(v),
    "eq": _eq, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    "slice": lambda v, *ix: v[ix[0] if ix else 0: ix[1] if len(ix) > 1 else None],
}

# docker's HeaderFunctions: a title row keeps the titles as they are
HEADER_FUNCS = dict(FUNCS, json=lambda v: "", split=lambda v, sep: v, join=lambda v, sep: v, title=lambda v: v,
                    lower=lambda v: v, upper=lambda v: v, pad=lambda v, left, right: v, truncate=lambda v, n: v)
