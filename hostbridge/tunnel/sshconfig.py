"""~/.ssh/config as users write it: ``Include`` expanded, every line checked, errors with file:line.

paramiko's ``SSHConfig`` parses Host/Match blocks and expands tokens, but it does not follow
``Include`` and its parse errors name neither the file nor the line. ``load`` reads the file
the way OpenSSH does (Include globs, relative to ~/.ssh, at most 16 levels deep, a missing
file skipped as OpenSSH skips it), checks each line, and hands paramiko the result.

An ``Include`` inside a ``Host``/``Match`` block applies only where that block matches: the
included file's own ``Host``/``Match`` lines are narrowed with the outer block's criteria
(``Match originalhost OUTER originalhost INNER``), and the outer block is re-opened after it.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shlex

import paramiko

from .errors import TunnelError

# OpenSSH's READCONF_MAX_DEPTH.
MAX_INCLUDE_DEPTH = 16
# The line shape paramiko accepts: ``Keyword value`` or ``Keyword=value``.
_LINE = re.compile(r"(\w+)(?:\s*=\s*|\s+)(.+)")
# Every keyword OpenSSH's client knows (readconf.c, 9.x, deprecated and unsupported ones too:
# ssh only warns about those), plus Apple's UseKeychain. Anything else is a typo that ssh itself
# refuses ("Bad configuration option"), unless an IgnoreUnknown pattern lists it.
KEYWORDS = frozenset("""
host match hostname user port include ignoreunknown
addkeystoagent addressfamily batchmode bindaddress bindinterface canonicaldomains canonicalizefallbacklocal
canonicalizehostname canonicalizemaxdots canonicalizepermittedcnames casignaturealgorithms certificatefile
challengeresponseauthentication channeltimeout checkhostip cipher ciphers clearallforwardings compression
compressionlevel connectionattempts connecttimeout controlmaster controlpath controlpersist dynamicforward
enableescapecommandline enablesshkeysign escapechar exitonforwardfailure fingerprinthash forkafterauthentication
forwardagent forwardx11 forwardx11timeout forwardx11trusted gatewayports globalknownhostsfile globalknownhostsfile2
gssapiauthentication gssapiclientidentity gssapidelegatecredentials gssapikeyexchange gssapikexalgorithms
gssapirenewalforcesrekey gssapiserveridentity gssapitrustdns hashknownhosts hostbasedacceptedalgorithms
hostbasedauthentication hostbasedkeytypes hostkeyalgorithms hostkeyalias identitiesonly identityagent identityfile
identityfile2 ipqos kbdinteractiveauthentication kbdinteractivedevices kexalgorithms knownhostscommand
localcommand localforward loglevel logverbose macs nohostauthenticationforlocalhost numberofpasswordprompts
obscurekeystroketiming passwordauthentication permitlocalcommand permitremoteopen pkcs11provider
preferredauthentications protocol protocolkeepalives proxycommand proxyjump proxyusefdpass
pubkeyacceptedalgorithms pubkeyacceptedkeytypes pubkeyauthentication rekeylimit remotecommand remoteforward
requesttty requiredrsasize revokedhostkeys securitykeyprovider sendenv serveralivecountmax serveraliveinterval
sessiontype setenv setuptimeout smartcarddevice stdinnull streamlocalbindmask streamlocalbindunlink
stricthostkeychecking syslogfacility tag tcpkeepalive tunnel tunneldevice updatehostkeys useprivilegedport
user userknownhostsfile userknownhostsfile2 verifyhostkeydns visualhostkey xauthlocation
afstokenpassing dsaauthentication fallbacktorsh kerberosauthentication kerberostgtpassing rhostsauthentication
rhostsrsaauthentication rsaauthentication skeyauthentication tisauthentication useblacklistedkeys useroaming usersh
usekeychain
""".split())


class SSHConfigError(TunnelError):
    """An ssh config file cannot be read or has a bad line; ``path`` and ``line`` say where."""

    def __init__(self, message="", hint=None, path=None, line=None):
        super().__init__(message, hint)
        self.path = path
        self.line = line


def _error(path: str, lineno: int, what: str) -> SSHConfigError:
    return SSHConfigError("%s line %d: %s: fix or remove that line" % (path, lineno, what), path=path, line=lineno)


def _criteria(path: str, lineno: int, key: str, value: str) -> list:
    """A Host/Match line as Match criteria tokens (Host patterns become ``originalhost``)."""
    try:
        words = shlex.split(value)
    except ValueError as e:
        raise _error(path, lineno, "bad quoting in %s (%s)" % (key, e)) from None
    if not words:
        raise _error(path, lineno, "%s needs a pattern" % key)
    if key == "host":
        return ["originalhost", ",".join(words)]
    try:
        paramiko.SSHConfig.from_text("Match " + value)  # paramiko's own checks of the criteria
    except paramiko.ssh_exception.ConfigParseError as e:
        raise _error(path, lineno, "bad Match line (%s)" % e) from None
    return [] if words == ["all"] else words


def _header(criteria: list) -> str:
    """The block line for combined criteria (``Host *`` for none)."""
    return "Match " + " ".join(shlex.quote(c) for c in criteria) if criteria else "Host *"


def _check_value(path: str, lineno: int, key: str, value: str) -> None:
    if key == "port" and "%" not in value and not (value.isdigit() and 0 < int(value) < 65536):
        raise _error(path, lineno, "Port %r is not a port number (1-65535)" % value)
    if key in ("identitiesonly",) and value.lower() not in ("yes", "no", "true", "false"):
        raise _error(path, lineno, "%s takes yes or no, not %r" % (key, value))


def _include_paths(value: str, path: str, lineno: int, ssh_dir: str) -> list:
    try:
        patterns = shlex.split(value)
    except ValueError as e:
        raise _error(path, lineno, "bad quoting in Include (%s)" % e) from None
    found = []
    for pat in patterns:
        pat = os.path.expanduser(os.path.expandvars(pat))
        if not os.path.isabs(pat):
            pat = os.path.join(ssh_dir, pat)
        found += sorted(glob.glob(pat))  # OpenSSH skips a pattern that matches nothing
    return found


def expand(path: str, ssh_dir: str | None = None, _depth: int = 0, _outer: list | None = None) -> list:
    """The lines of ``path`` with every ``Include`` replaced by the lines it names.

    Args:
        path: the ssh config file.
        ssh_dir: where relative Include paths start (default ``~/.ssh``).
    Returns:
        [(line for paramiko, file, line number)], comments and blanks left out.
    Raises:
        SSHConfigError: unreadable file, bad line, Include nested deeper than 16.
    """
    ssh_dir = ssh_dir or os.path.expanduser("~/.ssh")
    outer = list(_outer or [])
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SSHConfigError("cannot read the ssh config %s (%s)" % (path, getattr(e, "strerror", None) or e),
                             path=path) from None
    out = []
    ignore = []  # IgnoreUnknown patterns seen so far in this file (they apply below them, as in ssh)
    block = list(outer)  # the criteria in force at this point of the file
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise _error(path, lineno, "cannot parse %r (expected `Keyword value`)" % line)
        key, value = m.group(1).lower(), m.group(2).strip()
        if key not in KEYWORDS and not any(fnmatch.fnmatch(key, p) for p in ignore):
            raise _error(path, lineno, "unknown option %r (ssh says: Bad configuration option); fix the spelling, or "
                                       "list it in IgnoreUnknown" % m.group(1))
        if key == "ignoreunknown":
            ignore += [p.lower() for p in value.split(",") if p]
        if key in ("host", "match"):
            block = outer + _criteria(path, lineno, key, value)
            line = line if not outer else _header(block)
        elif key == "include":
            if _depth + 1 > MAX_INCLUDE_DEPTH:
                raise _error(path, lineno, "Include nested deeper than %d levels (a loop?)" % MAX_INCLUDE_DEPTH)
            for inc in _include_paths(value, path, lineno, ssh_dir):
                inner = expand(inc, ssh_dir, _depth + 1, block)
                out += inner
                if any(l.split(None, 1)[0].lower() in ("host", "match") for l, _, _ in inner):
                    out.append((_header(block), path, lineno))  # re-open this file's block
            continue
        else:
            _check_value(path, lineno, key, value)
        out.append((line, path, lineno))
    return out


def load(path: str, ssh_dir: str | None = None) -> paramiko.SSHConfig:
    """Parse an ssh config (Includes followed) into a paramiko ``SSHConfig``.

    Raises:
        SSHConfigError: see ``expand``.
    """
    lines = expand(path, ssh_dir)
    cfg = paramiko.SSHConfig()
    try:
        cfg.parse(l for l, _, _ in lines)
    except paramiko.ssh_exception.ConfigParseError as e:  # every line was checked; kept as a net
        raise SSHConfigError("%s: %s" % (path, e), path=path) from None
    return cfg


def lookup(host: str, path: str | None = None) -> dict:
    """The options for ``host`` from ``path`` (default ``~/.ssh/config``; none when it is absent).

    Raises:
        SSHConfigError: see ``expand``; also a Match line paramiko cannot evaluate.
    """
    path = path or os.path.expanduser("~/.ssh/config")
    if not os.path.exists(path):
        return {"hostname": host}
    try:
        return load(path).lookup(host)
    except (paramiko.ssh_exception.ConfigParseError, paramiko.ssh_exception.CouldNotCanonicalize) as e:
        raise SSHConfigError("%s: %s for host %s" % (path, e, host), path=path) from None
    except ImportError as e:  # `Match exec` needs the invoke package
        raise SSHConfigError("%s: a Match line needs something hostbridge lacks (%s)" % (path, e),
                             path=path) from None


def identity_agent(value: str | None) -> str | None:
    """Where ``IdentityAgent`` points: None for the default (``SSH_AUTH_SOCK``), "" for ``none``.

    ``$VAR``/``${VAR}`` and ``~`` are expanded as OpenSSH does; the bare word ``SSH_AUTH_SOCK``
    means that variable.
    """
    if value is None:
        return None
    v = value.strip().strip('"')
    if v.lower() == "none":
        return ""
    if v == "SSH_AUTH_SOCK":
        return None
    v = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: os.environ.get(m.group(1) or m.group(2), ""), v)
    return os.path.expanduser(v)


def _quote(value: str) -> str:
    """A value as ssh_config reads it back (double quotes around spaces)."""
    return '"%s"' % value if any(c.isspace() for c in value) else value


def render_block(name: str, target: dict, known_hosts: str) -> str:
    """An OpenSSH ``Host`` block reaching a machine as hostbridge does (``ssh -F FILE NAME``).

    The host key is checked against the machine's own pinned known_hosts, strictly, and only
    the machine's keys are offered when it has any (pure).

    Args:
        name: the Host alias to write.
        target: an ``SSHTarget.to_dict()`` (the machine record's ``ssh`` field).
        known_hosts: the machine's known_hosts file.
    Returns:
        The block, lines ending in newlines.
    """
    lines = ["Host " + name, "  HostName " + target["hostname"], "  Port %d" % int(target.get("port") or 22),
             "  User " + target["user"]]
    idents = target.get("identity_files") or []
    lines += ["  IdentityFile " + _quote(k) for k in idents]
    if idents or target.get("identities_only"):
        lines.append("  IdentitiesOnly yes")
    agent = target.get("identity_agent")
    if agent is not None:
        lines.append("  IdentityAgent " + (_quote(agent) if agent else "none"))
    if target.get("proxy_jump"):
        # As hostbridge connects: the last hop is checked against the machine's pins too (where
        # `remote add` pinned it), and offered the machine's keys; earlier hops go through -J.
        hops = [h.strip() for h in target["proxy_jump"].split(",") if h.strip()]
        inner = ["ssh", "-o", "UserKnownHostsFile=" + _quote(known_hosts), "-o", "StrictHostKeyChecking=yes"]
        inner += sum((["-i", _quote(k)] for k in idents), [])
        if hops[:-1]:
            inner += ["-J", ",".join(hops[:-1])]
        last = hops[-1] if "://" in hops[-1] else "ssh://" + hops[-1]  # a :port needs the ssh:// form
        inner += ["-W", "[%h]:%p", last]
        lines.append("  ProxyCommand " + " ".join(inner))
    elif target.get("proxy_command"):
        lines.append("  ProxyCommand " + target["proxy_command"].replace("%", "%%"))
    lines += ["  UserKnownHostsFile " + _quote(known_hosts), "  StrictHostKeyChecking yes",
              "  HashKnownHosts no", "  LogLevel ERROR"]
    return "\n".join(lines) + "\n"


__all__ = ["SSHConfigError", "expand", "load", "lookup", "identity_agent", "render_block", "MAX_INCLUDE_DEPTH"]
