"""Declarative options for the commands that also run without click (``fast.py``).

A command's options are declared once here as ``Opt``/``Arg`` lists. ``to_click`` turns a spec
into the click command everybody sees (help, errors, completion); ``parse`` reads the plain
forms of the same options in a few microseconds, and gives up (returns None) on anything else,
so click stays the one judge of odd or wrong input.
"""

from __future__ import annotations


class Opt:
    """An option: ``names`` (``-a``, ``--all``), the keyword it fills, and how it takes a value.

    Attributes:
        flag: takes no value (True when given).
        multiple: may repeat; the keyword gets a tuple.
        type: ``str`` or ``int`` for the value.
        default: the value when absent.
    """

    def __init__(self, names, dest, help_, flag=False, multiple=False, type_=str, default=None):
        self.names, self.dest, self.help = tuple(names), dest, help_
        self.flag, self.multiple, self.type = flag, multiple, type_
        self.default = () if multiple else (False if flag and default is None else default)


class Arg:
    """A positional argument: one optional value (``images [REPOSITORY]``)."""

    def __init__(self, dest, required=False):
        self.dest, self.required = dest, required


class Spec:
    """A command: its help line, options and positional arguments."""

    def __init__(self, help_, opts, args=()):
        self.help, self.opts, self.args = help_, list(opts), list(args)
        self.by_name = {name: o for o in self.opts for name in o.names}


def parse(spec: Spec, argv) -> dict | None:
    """The keyword values for ``argv``, or None when click should decide.

    Handles ``-a``, bundled flags (``-aq``), ``-n 3``, ``-n3``, ``--last 3``, ``--last=3``, ``--``
    and positionals. Gives up on help, unknown options, a missing or non-integer value, or too many
    positionals.
    """
    values = {o.dest: o.default for o in spec.opts}
    positionals = []
    i, argv = 0, list(argv)
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            positionals.extend(argv[i:])
            break
        if not a.startswith("-") or a == "-":
            positionals.append(a)
            continue
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            opt = spec.by_name.get(name)
            if opt is None or (opt.flag and eq):
                return None
            if not opt.flag and not eq:
                if i >= len(argv):
                    return None
                val, i = argv[i], i + 1
            if not _store(values, opt, val):
                return None
            continue
        j = 1  # short options, possibly bundled: -aq, -n3, -aqn 3
        while j < len(a):
            opt = spec.by_name.get("-" + a[j])
            if opt is None:
                return None
            j += 1
            if opt.flag:
                _store(values, opt, None)
                continue
            val = a[j:]
            if not val:
                if i >= len(argv):
                    return None
                val, i = argv[i], i + 1
            if not _store(values, opt, val):
                return None
            break
    if len(positionals) > len(spec.args) or any(
            a.required for a in spec.args[len(positionals):]):
        return None
    for arg, value in zip(spec.args, positionals + [None] * len(spec.args)):
        values[arg.dest] = value
    return values


def _store(values, opt, val) -> bool:
    if opt.flag:
        values[opt.dest] = True
        return True
    if opt.type is int:
        try:
            val = int(val)
        except ValueError:
            return False
    values[opt.dest] = values[opt.dest] + (val,) if opt.multiple else val
    return True


def to_click(name, spec: Spec, fn):
    """The click command for ``spec`` calling ``fn(app, **values)``."""
    import click

    params = [click.Option(list(o.names) + [o.dest], is_flag=o.flag, multiple=o.multiple,
                           type=None if o.flag else (int if o.type is int else str),
                           default=o.default, help=o.help) for o in spec.opts]
    params += [click.Argument([a.dest], required=a.required) for a in spec.args]

    @click.pass_obj
    def callback(app, **values):
        return fn(app, **values)

    return click.Command(name, callback=callback, params=params, help=spec.help)
