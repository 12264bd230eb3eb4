"""The listing commands without click: ``hostbridge [GLOBAL…] ps|images …`` straight from argv.

Importing click costs more than the whole of ``docker ps``; people run ``ps`` in loops and
prompts. So the plain forms of the listing commands skip click: the root's options and the
command's (declared once in ``listing.py``) are read by ``spec.parse``. Anything else —
help, ``--version``, an unknown or malformed option — returns None and click takes over, so
click alone words usage errors and help.
"""

from __future__ import annotations

# argv words → (spec, function) in ``listing``: docker's names for the two listings.
COMMANDS = {("ps",): "ps", ("images",): "images", ("container", "ls"): "ps", ("container", "ps"): "ps",
            ("container", "list"): "ps", ("image", "ls"): "images", ("image", "list"): "images"}
_SPECS = {"ps": "PS", "images": "IMAGES"}


def _globals(argv):
    """The root group's options → (verbose count, quiet, host, machine, index of the command)."""
    verbose, quiet, flags, i = 0, False, {"host": None, "machine": None}, 0
    while i < len(argv):
        a = argv[i]
        if a == "--verbose":
            verbose += 1
        elif a.startswith("-v") and set(a[1:]) == {"v"}:  # -v, -vv
            verbose += len(a) - 1
        elif a in ("-q", "--quiet"):
            quiet = True
        elif a in ("-H", "--host", "-m", "--machine"):
            if i + 1 >= len(argv):
                return None
            flags["host" if a in ("-H", "--host") else "machine"] = argv[i + 1]
            i += 1
        elif a.startswith(("--host=", "--machine=")):
            key, _, value = a[2:].partition("=")
            flags[key] = value
        elif a.startswith("-"):
            return None
        else:
            return verbose, quiet, flags, i
        i += 1
    return None


def run(argv) -> int | None:
    """Run ``argv`` if it is a plain listing command.

    Args:
        argv: the arguments after the program name.
    Returns:
        The exit status, or None when click must handle ``argv``.
    """
    found = _globals(argv)
    if found is None:
        return None
    verbose, quiet, flags, i = found
    name = COMMANDS.get(tuple(argv[i:i + 2])) or COMMANDS.get(tuple(argv[i:i + 1]))
    if name is None:
        return None
    rest = argv[i + (1 if (argv[i],) in COMMANDS else 2):]
    from . import listing
    from .spec import parse

    values = parse(getattr(listing, _SPECS[name]), rest)
    if values is None:
        return None
    from .app import App

    app = App()
    app.verbosity = -1 if quiet else verbose
    app.flags = flags
    fn = getattr(listing, name)
    return app.run(lambda: fn(app, **values))
