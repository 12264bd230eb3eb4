"""``--format`` and ``inspect -f``: docker's Go templates over hostbridge's values.

The language is ``gotemplate`` (Go's text/template with docker's functions). This module adds
docker's formatting conventions: ``\\t``/``\\n`` escapes in the format, a leading ``table`` that
makes an aligned table with a header row, and errors as the CLI reports them.
"""

from __future__ import annotations

import re

from ..errors import HostbridgeError
from . import gotemplate as gt
from .gotemplate import go_print  # noqa: F401  (printing rules, used by the listing commands)


class TemplateError(HostbridgeError):
    """A ``--format`` template that does not parse or does not run."""


class Row(gt.Struct):
    """A formatting context (a ``ps``/``images`` row): a Go struct to the template, so
    ``{{json .}}`` prints it with sorted keys and ``<>&`` escaped, as docker's context does."""


class _Header(gt.Struct):
    """The dot a table's header row is rendered with: every field is its column title."""

    def __init__(self, names):
        super().__init__()
        self.names = names

    def __contains__(self, key):
        return True

    def __getitem__(self, key):
        return gt.Title(self.names.get(key, key.upper()))


class Template:
    """A parsed format.

    Attributes:
        is_table: the format started with ``table``.
        fmt: the format without ``table``, escapes applied.
    """

    def __init__(self, fmt):
        fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
        self.is_table = fmt.startswith("table")
        if self.is_table:
            fmt = fmt[len("table"):].lstrip(" ")
        self.fmt = fmt
        try:
            self.tree = gt.parse(fmt)
        except gt.GoTemplateError as e:
            raise TemplateError("failed to parse template: %s" % e, hint="check the --format template") from None

    def render(self, dot) -> str:
        """Evaluate the template against ``dot`` (a dict; a ``Row`` reads as a Go struct)."""
        try:
            return gt.execute(self.tree, dot)
        except gt.GoTemplateError as e:
            raise TemplateError(str(e), hint="check the --format template") from None

    def header(self, names) -> str:
        """The header row: the template run with each field reading as its column title."""
        try:
            return gt.execute(self.tree, _Header(names), header=True)
        except gt.GoTemplateError:
            return ""


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
