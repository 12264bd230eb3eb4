"""What each instruction does to the image config, and the history text docker writes for it.

Pure functions over docker-shaped dicts: the container config (``Env``, ``Cmd``, ``Entrypoint``,
``WorkingDir``, ``User``, ``ExposedPorts``, ``Volumes``, ``Labels``, ``StopSignal``,
``Healthcheck``, ``OnBuild``, ``Shell``) and the ``CreatedBy`` strings of the classic builder:

- metadata steps: ``<shell> #(nop)  ENV A=1`` (two spaces: docker joins ``"#(nop) "`` and the
  text as two words);
- WORKDIR, COPY, ADD: ``<shell> #(nop) COPY file:<hash> in /dest `` (one word, trailing space
  after COPY/ADD);
- RUN: the command itself, ``|N K=V …`` in front when build args are in scope.
"""

from __future__ import annotations

import copy
import posixpath
import re

from ..errors import InvalidParameter

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?$")
_SIGNALS = {
    "ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8, "HUP": 1,
    "ILL": 4, "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29, "PROF": 27,
    "PWR": 30, "QUIT": 3, "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15,
    "TRAP": 5, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12,
    "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25,
}


def empty_config() -> dict:
    """The container config of ``FROM scratch``, as docker writes one."""
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
            "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
            "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
            "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}


def stage_config(base_config) -> dict:
    """A stage's starting config: a copy of the base's, with PATH defaulted, stdin off."""
    config = copy.deepcopy(base_config) if base_config else empty_config()
    env = config.get("Env") or []
    if not any(e.split("=", 1)[0] == "PATH" for e in env):
        env = env + ["PATH=" + DEFAULT_PATH]
    config["Env"] = env
    config["OpenStdin"] = config["StdinOnce"] = False
    return config


def shell_of(config: dict) -> list:
    return list(config.get("Shell") or DEFAULT_SHELL)


def nop(config: dict, text: str) -> str:
    """CreatedBy of a metadata step (two words after the shell)."""
    return " ".join(shell_of(config) + ["#(nop) ", text])


def nop_one_word(config: dict, text: str) -> str:
    """CreatedBy of WORKDIR, COPY and ADD (one word after the shell)."""
    return " ".join(shell_of(config) + ["#(nop) " + text])


def go_list(items) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join('"%s"' % i.replace("\\", "\\\\").replace('"', '\\"') for i in items) + "]"


def env_map(env_list) -> dict:
    out = {}
    for e in env_list or []:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def set_env(config: dict, key: str, value: str) -> None:
    """Set one variable, keeping its place in ``Env`` when it exists."""
    env = list(config.get("Env") or [])
    for i, e in enumerate(env):
        if e.split("=", 1)[0] == key:
            env[i] = "%s=%s" % (key, value)
            break
    else:
        env.append("%s=%s" % (key, value))
    config["Env"] = env


def command_line(config: dict, args: list, json_form: bool) -> list:
    """CMD/ENTRYPOINT/RUN args as stored: shell form gets the stage's SHELL in front."""
    return list(args) if json_form else shell_of(config) + [" ".join(args)]


def workdir(current: str, requested: str) -> str:
    """The new WorkingDir: relative paths are joined to the current one."""
    if not requested:
        raise InvalidParameter("cannot normalize nothing")
    if requested.startswith("/"):
        return posixpath.normpath(requested).replace("//", "/")
    return posixpath.normpath(posixpath.join("/", current or "/", requested))


def exposed_ports(ports) -> list:
    """``80``, ``80/udp``, ``8000-8002/tcp`` → docker's port keys (``80/tcp``…).

    Raises:
        InvalidParameter: docker's ``Invalid proto: x`` / ``Invalid containerPort: x``.
    """
    keys = []
    for spec in ports:
        port, _, proto = spec.rpartition(":")[2].partition("/")
        proto = proto or "tcp"
        if proto.lower() not in ("tcp", "udp", "sctp"):
            raise InvalidParameter("Invalid proto: %s" % proto)
        m = _PORT_RE.match(port)
        if not m:
            raise InvalidParameter("Invalid containerPort: %s" % port)
        start, end = int(m.group(1)), int(m.group(2) or m.group(1))
        if start > 65535 or end > 65535 or end < start:
            raise InvalidParameter("Invalid containerPort: %s" % port)
        keys.extend("%d/%s" % (p, proto.lower()) for p in range(start, end + 1))
    return keys


def check_signal(sig: str) -> None:
    """Accept ``SIGTERM``, ``TERM``, ``15``, ``SIGRTMIN+3`` as docker's ParseSignal does.

    Raises:
        InvalidParameter: ``Invalid signal: X``.
    """
    if sig.isdigit():
        if 0 < int(sig) <= 64:
            return
    else:
        name = sig.upper()
        name = name[3:] if name.startswith("SIG") else name
        if name in _SIGNALS or re.match(r"^RTM(IN|AX)([+-]\d+)?$", name):
            return
    raise InvalidParameter("Invalid signal: %s" % sig)


def add_to_set(config: dict, field: str, keys) -> None:
    current = dict(config.get(field) or {})
    for k in keys:
        current[k] = {}
    config[field] = current


def run_created_by(argv: list, build_env: dict, declared: set, config_env: dict) -> tuple:
    """CreatedBy of a RUN, and the env it runs with.

    Args:
        argv: the command as run.
        build_env: the build args in scope with a value (declared ARGs and given proxy args).
        declared: the names declared with ARG in this stage.
        config_env: the stage's ENV, which shadows build args.

    Returns:
        (created_by, [K=V…] build args to add to the process environment).
    """
    visible = {k: v for k, v in build_env.items() if k not in config_env}
    env = ["%s=%s" % kv for kv in sorted(visible.items())]
    if not visible:
        return " ".join(argv), env
    shown = sorted("%s=%s" % (k, v) for k, v in visible.items() if k in declared or k not in PROXY_ARGS)
    return " ".join(["|%d" % len(shown)] + shown + list(argv)), env
