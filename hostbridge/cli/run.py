"""``run``, ``create`` and ``start``: docker's flags → the create body; create → attach → start."""

from __future__ import annotations

import sys

import click

from ..errors import APIError, HostbridgeError, NotFound
from . import options as opt

# Exit statuses of `docker run` when the container could not run at all.
EXIT_DAEMON, EXIT_CANNOT_EXEC, EXIT_NOT_FOUND = 125, 126, 127


def create_options(f):
    """The flags ``run`` and ``create`` share (docker's names)."""
    decorators = [
        click.option("--name", help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, help="Set environment variables (KEY=value, or KEY from here)."),
        click.option("--env-file", multiple=True, type=click.Path(dir_okay=False),
                     help="Read in a file of environment variables."),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
        click.option("-m", "--memory", help="Memory limit (e.g. 512m, 1g)."),
        click.option("--cpus", help="Number of CPUs (e.g. 1.5)."),
        click.option("--pids-limit", type=int, help="Tune the container's pids limit (-1 for unlimited)."),
        click.option("-l", "--label", multiple=True, help="Set meta data on a container (key=value)."),
        click.option("-h", "--hostname", help="Container host name."),
        click.option("--init", is_flag=True, default=None,
                     help="Run an init inside the container that forwards signals and reaps processes."),
        click.option("--restart", help="Restart policy: no, always, unless-stopped, on-failure[:N]."),
        click.option("--stop-signal", help="Signal to stop the container."),
        click.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities."),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports."),
        click.option("-v", "--volume", multiple=True, help="Bind mount a volume (src:dst[:ro], name:dst, /dst)."),
        click.option("--mount", multiple=True, help="Attach a filesystem mount (type=bind,source=…,target=…)."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory (/path[:options])."),
        click.option("--volumes-from", multiple=True, help="Mount volumes from the specified container(s)."),
        click.option("--network", "--net", "network", help="Connect a container to a network (none, host, bridge)."),
        click.option("--network-alias", multiple=True, help="Add network-scoped alias for the container."),
        click.option("--ip", help="IPv4 address (e.g., 172.30.100.104)."),
        click.option("--ip6", help="IPv6 address (e.g., 2001:db8::33)."),
        click.option("--dns", multiple=True, help="Set custom DNS servers."),
        click.option("--dns-search", multiple=True, help="Set custom DNS search domains."),
        click.option("--dns-option", multiple=True, help="Set DNS options."),
        click.option("--add-host", multiple=True, help="Add a custom host-to-IP mapping (host:ip)."),
        click.option("--rm", is_flag=True, help="Automatically remove the container when it exits."),
        click.option("--pull", "pull_policy", default="missing", metavar="missing|always|never",
                     help='Pull image before running ("always", "missing", "never").'),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def build_config(image, cmd, o, attach=False, environ=None):
    """Build the ``POST /containers/create`` body from parsed flags, as the docker CLI does.

    Args:
        image: the image reference.
        cmd: the command words after the image (may be empty: the image's CMD).
        o: the option values (a dict of the flag names above).
        attach: the CLI will attach to stdout/stderr (``run`` without ``-d``).
        environ: where bare ``-e KEY`` values are read from.
    Returns:
        The create body (a dict).
    Raises:
        UsageError: a malformed flag value.
    """
    env = []
    for path in o.get("env_file") or ():
        env += opt.parse_env_file(path, environ)
    env += opt.parse_env(o.get("env"), environ)
    host = {}
    body = {"Image": image, "AttachStdin": bool(attach and o.get("interactive")), "AttachStdout": attach,
            "AttachStderr": attach, "Tty": bool(o.get("tty")), "OpenStdin": bool(o.get("interactive")),
            "StdinOnce": bool(attach and o.get("interactive")), "HostConfig": host}
    if cmd:
        body["Cmd"] = list(cmd)
    if env:
        body["Env"] = env
    for flag, key in (("workdir", "WorkingDir"), ("user", "User"), ("hostname", "Hostname"),
                      ("stop_signal", "StopSignal"), ("stop_timeout", "StopTimeout")):
        if o.get(flag) is not None:
            body[key] = o[flag]
    if o.get("entrypoint") is not None:
        # One argv word, not shell-split; --entrypoint "" resets the image's entrypoint.
        body["Entrypoint"] = [o["entrypoint"]]
    if o.get("label"):
        body["Labels"] = opt.parse_labels(o["label"])
    if o.get("memory"):
        host["Memory"] = opt.parse_bytes(o["memory"])
    if o.get("cpus"):
        host["NanoCpus"] = opt.parse_cpus(o["cpus"])
    if o.get("pids_limit") is not None:
        host["PidsLimit"] = o["pids_limit"]
    if o.get("init"):
        host["Init"] = True
    restart = opt.parse_restart(o.get("restart"))
    if restart:
        host["RestartPolicy"] = restart
    if o.get("read_only"):
        host["ReadonlyRootfs"] = True
    if o.get("cap_add"):
        host["CapAdd"] = list(o["cap_add"])
    if o.get("cap_drop"):
        host["CapDrop"] = list(o["cap_drop"])
    if o.get("network"):
        host["NetworkMode"] = o["network"]
    if o.get("rm"):
        host["AutoRemove"] = True
    if o.get("publish"):
        exposed, bindings = {}, {}
        for spec in o["publish"]:
            for port, binding in opt.parse_port(spec):
                exposed[port] = {}
                bindings.setdefault(port, []).append(binding)
        body["ExposedPorts"] = exposed
        host["PortBindings"] = bindings
    for spec in o.get("expose") or ():
        for port, _ in opt.parse_port(spec):
            body.setdefault("ExposedPorts", {})[port] = {}
    if o.get("publish_all"):
        host["PublishAllPorts"] = True
    for spec in o.get("volume") or ():
        kind, value = opt.parse_volume(spec)
        if kind == "anonymous":
            body.setdefault("Volumes", {})[value] = {}
        else:
            host.setdefault("Binds", []).append(value)
    if o.get("mount"):
        host["Mounts"] = [opt.parse_mount(spec) for spec in o["mount"]]
    if o.get("tmpfs"):
        host["Tmpfs"] = dict(opt.parse_tmpfs(spec) for spec in o["tmpfs"])
    if o.get("volumes_from"):
        host["VolumesFrom"] = list(o["volumes_from"])
    for flag, key in (("dns", "Dns"), ("dns_search", "DnsSearch"), ("dns_option", "DnsOptions")):
        if o.get(flag):
            host[key] = list(o[flag])
    if o.get("add_host"):
        host["ExtraHosts"] = [opt.parse_add_host(spec) for spec in o["add_host"]]
    if o.get("network_alias") or o.get("ip") or o.get("ip6"):
        endpoint = {}
        if o.get("network_alias"):
            endpoint["Aliases"] = list(o["network_alias"])
        ipam = {k: o[f] for f, k in (("ip", "IPv4Address"), ("ip6", "IPv6Address")) if o.get(f)}
        if ipam:
            endpoint["IPAMConfig"] = ipam
        body["NetworkingConfig"] = {"EndpointsConfig": {o.get("network") or "default": endpoint}}
    return body


def _familiar(image):
    # "busybox" → "busybox:latest", as docker names a missing image.
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in image else image + ":latest"


def create_container(app, image, cmd, o, attach):
    """Create the container; a missing image is reported as docker does.

    Returns:
        The new container's ID.
    Raises:
        APIError: the daemon refused (a missing image with a hint of what to do instead).
    """
    body = build_config(image, cmd, o, attach=attach)
    policy = o.get("pull_policy") or "missing"
    if policy not in ("missing", "always", "never"):
        raise opt.UsageError('invalid pull option: \'%s\': must be one of "always", "missing" or "never"' % policy)
    if policy == "always":
        _pull(app, image)
    try:
        reply = app.client.create_container(body, name=o.get("name"))
    except NotFound as e:
        if "image" not in str(e).lower() or policy != "missing":
            raise
        app.err("Unable to find image '%s' locally" % _familiar(image))
        _pull(app, image)
        reply = app.client.create_container(body, name=o.get("name"))
    for warning in reply.get("Warnings") or ():
        app.err("WARNING: %s" % warning)
    return reply["Id"]


def _pull(app, image):
    """Pull ``image`` for run/create, its progress on stderr as docker's run shows it."""
    from .registry import ProgressPrinter, RegistryCalls, StreamError, _auth_for

    def write(text):
        sys.stderr.write(text)
        sys.stderr.flush()

    printer = ProgressPrinter(write, tty=sys.stderr.isatty())
    try:
        for msg in RegistryCalls(app.client).pull(_familiar(image), None, _auth_for(image)):
            printer.feed(msg)
    except StreamError as e:
        raise APIError(str(e)) from None


def start_error_status(message):
    """The exit status for a failed start (docker's runStartContainerErr): 127, 126 or 125."""
    if any(s in message for s in ("executable file not found", "no such file or directory",
                                  "system cannot find the file specified")):
        return EXIT_NOT_FOUND
    if "permission denied" in message or "is a directory" in message:
        return EXIT_CANNOT_EXEC
    return EXIT_DAEMON


def attach_and_wait(app, cid, tty, stdin, start, condition="next-exit"):
    """Attach to ``cid``, register a wait, run ``start()``, stream until the end; the exit status.

    Raises:
        APIError: the start failed (``exit_code`` set as ``docker run`` would exit).
    """
    from .attach import SignalProxy, Terminal, quietly, stream

    client = app.client
    sock = client.attach_socket(cid, stdin=stdin, stdout=True, stderr=True, stream=True)
    waiter = client.wait_later(cid, condition)
    try:
        start()
    except APIError as e:
        sock.close()
        waiter.close()
        e.exit_code = start_error_status(str(e))
        raise

    def resize():
        size = Terminal.size()
        if size:
            client.resize(cid, *size)

    proxy = SignalProxy(lambda sig: client.kill(cid, sig), resize=resize if tty else None, forward=not tty)
    with Terminal(tty and stdin), proxy:
        if tty:
            quietly(resize)  # a resize the engine refuses is not worth failing the run
        stream(app, sock, tty, stdin)
    result = waiter.json() or {}
    err = (result.get("Error") or {}).get("Message") if isinstance(result.get("Error"), dict) else None
    if err:
        app.err(err)
    return int(result.get("StatusCode", 0))


# Flags stop at the image: what follows is the container's command, as in docker.
COMMAND_SETTINGS = {"allow_interspersed_args": False}


@click.command(context_settings=COMMAND_SETTINGS)
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@create_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(app, detach, image, command, **o):
    """Create and run a new container from an image."""
    if detach and o["rm"] and o.get("restart") not in (None, "no"):
        app.abort("Error: conflicting options: --restart and --rm", 125)
    attach = not detach
    try:
        cid = create_container(app, image, command, o, attach)
    except HostbridgeError as e:
        e.exit_code = EXIT_DAEMON  # docker run: 125 when the container could not be made
        raise
    if detach:
        try:
            app.client.start(cid)
        except APIError as e:
            e.exit_code = start_error_status(str(e))
            raise
        app.out(cid)
        return
    condition = "removed" if o["rm"] else "next-exit"
    code = attach_and_wait(app, cid, o["tty"], o["interactive"], lambda: app.client.start(cid), condition)
    click.get_current_context().exit(code)


@click.command(context_settings=COMMAND_SETTINGS)
@create_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create(app, image, command, **o):
    """Create a new container (prints its ID)."""
    app.out(create_container(app, image, command, o, attach=False))


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def start(app, attach, interactive, containers):
    """Start one or more stopped containers."""
    client = app.client
    if attach or interactive:
        if len(containers) > 1:
            app.abort("Error: you cannot start and attach multiple containers at once", 1)
        info = client.inspect_container(containers[0])
        tty = bool(info.get("Config", {}).get("Tty"))
        code = attach_and_wait(app, info["Id"], tty, interactive, lambda: client.start(info["Id"]))
        click.get_current_context().exit(code)
    app.for_each(containers, client.start)
