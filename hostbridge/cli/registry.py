"""Registry commands: login, logout, search, pull, push.

Credentials live in the OS keyring (``hostbridge.credentials``); ``login`` stores them only after
the engine's ``POST /auth`` accepted them, and pull/push send them per request as
``X-Registry-Auth``. The engine itself never keeps them.

The commands reach the engine through ``RegistryCalls(client)`` (over a ``hostbridge.client``
API client); they find the client and the output helpers on ``ctx.obj`` (the CLI's ``App``).
``cli/main.py`` loads them lazily like every other command.
"""

from __future__ import annotations

import sys

import click

from .. import credentials
from ..errors import APIError, HostbridgeError

HUB_SERVER = credentials.HUB_SERVER_URL
DESCRIPTION_WIDTH = 45  # docker's search truncates descriptions here


class RegistryCalls:
    """The registry endpoints over an engine API client (its ``_get``/``_post``/``_json``).

    Args:
        client: a ``hostbridge.client.APIClient``.
    """

    def __init__(self, client):
        self.client = client

    def login(self, username, password, server):
        """``POST /auth``: ``{"Status": "Login Succeeded", …}``. Raises APIError (401: refused)."""
        body = {"username": username, "password": password, "serveraddress": server}
        return self.client._json(self.client._post("/auth", json_body=body))

    def search(self, term, limit=None, filters=None, auth="", tags=False):
        """``GET /images/search``: docker's SearchResult dicts (``tags``: one per repo:tag)."""
        return self.client._json(self.client._get(
            "/images/search", params={"term": term, "limit": limit, "filters": filters or None, "tags": tags or None},
            headers={"X-Registry-Auth": auth} if auth else None))

    def pull(self, name, platform=None, auth="", all_tags=False):
        """``POST /images/create?fromImage=`` (no tag: every tag). Yields docker's progress messages."""
        repo, tag = _split_tag(name)
        params = {"fromImage": repo, "tag": None if all_tags else tag, "platform": platform or None}
        return self._stream("/images/create", params, auth)

    def push(self, name, tag=None, auth=""):
        """``POST /images/NAME/push?tag=``. Yields docker's progress messages."""
        return self._stream("/images/{}/push", {"tag": tag}, auth, name)

    def _stream(self, path, params, auth, *args):
        from ..client.streams import json_stream

        resp = self.client._post(path, *args, params=params, headers={"X-Registry-Auth": auth or "e30="},
                                 stream=True, timeout=None)
        try:
            yield from json_stream(resp.iter_content(None))
        finally:
            resp.close()


def _split_tag(name):
    """``repo:tag`` / ``repo@sha256:…`` → (repo, tag or digest); a bare repo gets ``latest``."""
    if "@" in name:
        repo, _, digest = name.partition("@")
        return repo, digest
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, "latest"


class ProgressPrinter:
    """docker's jsonmessage display: on a terminal one line per layer id, updated in place;
    otherwise one line per status change (progress bars dropped), as the docker CLI prints.

    Args:
        write: writes a string (the CLI's stdout).
        tty: whether the output is a terminal.
    """

    def __init__(self, write, tty=False):
        self.write, self.tty = write, tty
        self.lines = {}  # layer id -> line index (terminal mode)

    def feed(self, msg):
        """Show one message. Raises HostbridgeError for an ``error`` message (the stream failed)."""
        if msg.get("error") or msg.get("errorDetail"):
            raise StreamError((msg.get("errorDetail") or {}).get("message") or msg.get("error"))
        if "aux" in msg and "status" not in msg:
            return
        has_bar = bool(msg.get("progress") or (msg.get("progressDetail") or {}).get("total"))
        if has_bar and not self.tty:
            return
        text = ("%s: " % msg["id"] if msg.get("id") else "") + msg.get("status", "")
        if has_bar:
            text += " " + msg.get("progress", "")
        ident = msg.get("id")
        if not self.tty or not ident:
            self.write(text + "\n")
            return
        if ident not in self.lines:
            self.lines[ident] = len(self.lines)
            self.write(text + "\n")
            return
        up = len(self.lines) - self.lines[ident]
        self.write("\x1b[%dA\r\x1b[2K%s\x1b[%dB\r" % (up, text, up))


class StreamError(HostbridgeError):
    """A pull or push failed after it started (the engine's ``errorDetail`` line)."""


def format_search(results, no_trunc=False):
    """docker's ``search`` table: NAME DESCRIPTION STARS OFFICIAL (tabwriter padding 3)."""
    rows = [("NAME", "DESCRIPTION", "STARS", "OFFICIAL")]
    for r in results:
        desc = " ".join((r.get("description") or "").split())
        if not no_trunc and len(desc) > DESCRIPTION_WIDTH:
            desc = desc[:DESCRIPTION_WIDTH - 1] + "…"
        rows.append((r.get("name", ""), desc, str(r.get("star_count", 0)), "[OK]" if r.get("is_official") else ""))
    widths = [max(10, max(len(row[i]) for row in rows) + 3) for i in range(3)]
    return ["".join(c.ljust(w) for c, w in zip(row[:3], widths)) + row[3] for row in rows]


def _filters(values):
    out = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not eq:
            raise click.BadParameter("bad format of filter (expected name=value): %s" % v)
        out.setdefault(k.strip(), []).append(val.strip())
    return out


def _auth_for(image):
    """The keyring's credentials for the image's registry ("" for a name the engine will refuse)."""
    from ..guest.errors import InvalidParameter

    try:
        return credentials.auth_header_for_image(image)
    except InvalidParameter:
        return ""


def _show(app, messages, quiet=False):
    """Print a pull/push stream as the docker CLI does (nothing but errors when ``quiet``)."""
    write = (lambda s: None) if quiet else (lambda s: app.out(s, nl=False))
    printer = ProgressPrinter(write, tty=sys.stdout.isatty())
    try:
        for msg in messages:
            printer.feed(msg)
    except StreamError as e:
        app.abort(str(e))


@click.command()
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password or token (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.option("--configure-docker", is_flag=True,
              help="Make the stock docker CLI keep its logins in hostbridge's keyring (credsStore: hostbridge).")
@click.argument("server", required=False)
@click.pass_obj
def login(app, username, password, password_stdin, server, configure_docker):
    """Log in to a registry (checked by the engine, kept in the OS keyring)."""
    if configure_docker:
        _configure_docker(app)
        if not (server or username or password or password_stdin):
            return
    if password_stdin:
        if password:
            app.abort("--password and --password-stdin are mutually exclusive")
        if not username:
            app.abort("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    server = server or HUB_SERVER
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    try:
        result = RegistryCalls(app.client).login(username, password, server)
    except APIError as e:
        app.abort("Error response from daemon: %s" % e)
    credentials.store(server, username, password)
    app.out((result or {}).get("Status") or "Login Succeeded")


def _configure_docker(app):
    import shutil

    from .. import dockerconfig

    file, previous = dockerconfig.configure_store()
    app.out("docker CLI: credsStore set to %s in %s%s" % (dockerconfig.OWN_STORE, file,
                                                         " (was %s)" % previous if previous and
                                                         previous != dockerconfig.OWN_STORE else ""))
    if not shutil.which("docker-credential-" + dockerconfig.OWN_STORE):
        app.err("warning: docker-credential-%s is not on PATH: docker cannot use it until it is (it is installed "
                "with hostbridge's scripts)" % dockerconfig.OWN_STORE)


@click.command()
@click.argument("server", required=False)
@click.pass_obj
def logout(app, server):
    """Log out from a registry (forget its credentials)."""
    server = server or HUB_SERVER
    if credentials.erase(server):
        app.out("Removing login credentials for %s" % credentials.normalize_registry(server))
    else:
        app.out("Not logged in to %s" % server)


@click.command()
@click.option("--limit", type=int, help="Max number of search results.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (is-official=true, stars=3).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--tags", is_flag=True, help="List every tag of the matching repositories (private registries).")
@click.argument("term")
@click.pass_obj
def search(app, limit, filters, no_trunc, tags, term):
    """Search a registry for images (Docker Hub, or REGISTRY/TERM for another registry's catalog)."""
    from ..guest.registry.search import split_term

    from ..guest.errors import InvalidParameter

    try:
        domain, _ = split_term(term)
    except InvalidParameter as e:
        app.abort("Error: %s" % e)
    results = RegistryCalls(app.client).search(term, limit, _filters(filters), credentials.auth_header(domain), tags)
    for line in format_search(results or [], no_trunc):
        app.out(line)


@click.command()
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository.")
@click.option("--platform", help="Pull this platform (os/arch[/variant]).")
@click.option("-q", "--quiet", is_flag=True, help="Only print the image reference.")
@click.argument("name")
@click.pass_obj
def pull(app, all_tags, platform, quiet, name):
    """Pull an image (or, with -a, every tag of a repository) from a registry."""
    bare = _split_tag(name)[0] == name
    if all_tags and not bare:
        app.abort("tag can't be used with --all-tags/-a")
    if bare and not all_tags and not quiet:
        app.out("Using default tag: latest")
    _show(app, RegistryCalls(app.client).pull(name, platform, _auth_for(name), all_tags), quiet)
    app.out(_full_name(name, all_tags))


@click.command()
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.argument("name")
@click.pass_obj
def push(app, all_tags, quiet, name):
    """Push an image (or, with -a, every tag of a repository) to a registry."""
    repo, tag = _split_tag(name)
    if all_tags:
        if repo != name:
            app.abort("tag can't be used with --all-tags/-a")
        tag = None
    elif repo == name and not quiet:
        app.out("Using default tag: latest")
    _show(app, RegistryCalls(app.client).push(repo, tag, _auth_for(name)), quiet)


def _full_name(name, bare=False):
    """What docker prints after a pull: the full reference (``docker.io/library/busybox:latest``)."""
    from ..guest.images.reference import parse

    ref = parse(name)
    return str(ref if bare else ref.with_default_tag())
