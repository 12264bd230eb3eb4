"""The container process's identity and exec: user, groups, env, cwd, capabilities.

Used by the container's pid 1 (after pivot_root, so /etc/passwd is the container's) and by
the exec helper (after setns). Error texts are runc's, which docker shows verbatim.
"""

from __future__ import annotations

import os
import signal
import stat

from ..errors import RuntimeFailure
from . import caps, ns

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PY_IGNORED = [getattr(signal, n) for n in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, n)]


class ExecError(RuntimeFailure):
    """The process could not be started: ``message`` as docker prints it, ``exit_code`` to report."""

    def __init__(self, message: str, exit_code: int = 126):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _entries(path: str) -> list:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(spec: str) -> tuple:
    """``"uid[:gid]"`` / ``"name[:group]"`` / ``""`` → ``(uid, gid, [supplementary gids], home)``.

    Names come from the (container's) /etc/passwd and /etc/group; numeric ids need no entry.

    Raises:
        ExecError: a user or group name that the files do not list (docker's message).
    """
    user, _, group = (spec or "").partition(":")
    user = user or "0"
    passwd = [e for e in _entries("/etc/passwd") if len(e) >= 7]
    match = [e for e in passwd if e[0] == user] or (
        [e for e in passwd if e[2] == user] if user.isdigit() else [])
    if match:
        name, uid, gid, home = match[0][0], int(match[0][2]), int(match[0][3]), match[0][5]
    elif user.isdigit():
        name, uid, gid, home = None, int(user), 0, "/"
    else:
        raise ExecError("unable to find user %s: no matching entries in passwd file" % user)
    groups = [e for e in _entries("/etc/group") if len(e) >= 3]
    if group:
        g = [e for e in groups if e[0] == group] or (
            [e for e in groups if e[2] == group] if group.isdigit() else [])
        if g:
            gid = int(g[0][2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise ExecError("unable to find group %s: no matching entries in group file" % group)
    extra = []
    if name is not None:
        extra = [int(e[2]) for e in groups if len(e) >= 4 and name in e[3].split(",")]
    supplementary = [gid] + [g for g in extra if g != gid]
    return uid, gid, supplementary, home or "/"


def resolve_groups(specs) -> list:
    """``--group-add`` values (names or numeric ids) → gids, looked up in the container's /etc/group.

    Raises:
        ExecError: a group name the file does not list (runc's message).
    """
    groups = [e for e in _entries("/etc/group") if len(e) >= 3]
    out = []
    for spec in specs or []:
        spec = str(spec)
        g = [e for e in groups if e[0] == spec]
        if g:
            out.append(int(g[0][2]))
        elif spec.isdigit():
            out.append(int(spec))
        else:
            raise ExecError("Unable to find group %s: no matching entries in group file" % spec)
    return out


def build_env(env, home: str, extra: dict | None = None) -> list:
    """The final environment: HOME and PATH filled in as docker does, ``extra`` when unset."""
    out = list(env or [])
    keys = {e.split("=", 1)[0] for e in out}
    if "PATH" not in keys:
        out.insert(0, "PATH=" + DEFAULT_PATH)
    if "HOME" not in keys:
        out.append("HOME=" + home)
    for k, v in (extra or {}).items():
        if k not in keys:
            out.append("%s=%s" % (k, v))
    return out


def _is_exec_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def find_executable(name: str, env: list) -> str:
    """Look ``name`` up the way runc (Go's exec.LookPath) does, in this mount namespace.

    Raises:
        ExecError: docker's "executable file not found in $PATH" (127), a missing path (127),
            or permission denied (126).
    """
    if not name:
        raise ExecError('exec: "": executable file not found in $PATH', 127)
    if "/" in name:
        try:
            st = os.stat(name)
        except FileNotFoundError:
            raise ExecError('exec: "%s": stat %s: no such file or directory' % (name, name), 127)
        except OSError as e:
            raise ExecError('exec: "%s": stat %s: %s' % (name, name, e.strerror.lower()), 126)
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            raise ExecError('exec: "%s": permission denied' % name, 126)
        return name
    path = DEFAULT_PATH
    for e in env:
        if e.startswith("PATH="):
            path = e[5:]
    for d in path.split(":"):
        cand = os.path.join(d or ".", name)
        if _is_exec_file(cand):
            return cand
    raise ExecError('exec: "%s": executable file not found in $PATH' % name, 127)


class Prepared:
    """Everything resolved about a process before it drops privileges and execs."""

    def __init__(self, args, env, cwd, uid, gid, groups, cap_mask, no_new_privs, path, seccomp=None):
        self.args, self.env, self.cwd = args, env, cwd
        self.uid, self.gid, self.groups = uid, gid, groups
        self.cap_mask, self.no_new_privs, self.path = cap_mask, no_new_privs, path
        self.seccomp = seccomp  # the BPF program to load last, or None (unconfined)


def prepare(proc: dict, extra_env: dict | None = None) -> Prepared:
    """Resolve config.json's "process" (or an exec spec) against the current root.

    ``proc["seccomp"]``: absent or ``"builtin"`` → docker's default profile, None → unconfined
    (``--privileged``, ``seccomp=unconfined``), a profile → that one (checked at create).

    Raises:
        ExecError: unknown user, empty command, or an executable that cannot be found.
    """
    args = list(proc.get("args") or [])
    if not args:
        raise ExecError("no command specified", 126)
    uid, gid, groups, home = resolve_user(proc.get("user") or "")
    groups += [g for g in resolve_groups(proc.get("group_add")) if g not in groups]
    env = build_env(proc.get("env"), home, extra_env)
    names = caps.effective_names(proc.get("cap_add"), proc.get("cap_drop"),
                                 bool(proc.get("privileged")))
    cwd = proc.get("cwd") or "/"
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)  # docker creates a missing working dir
        os.chdir(cwd)  # a relative command ("./run") is found from there
    except OSError:
        pass  # become() reports an unusable working dir
    nnp = proc.get("no_new_privileges")
    path = find_executable(args[0], env)
    from . import seccomp  # here: the engine imports this module but never loads a filter

    try:
        program = seccomp.program_for(proc.get("seccomp", "builtin"), names)
    except (RuntimeFailure, ValueError) as e:  # never run unconfined because a profile is bad
        raise ExecError("seccomp: %s" % e, 1)
    return Prepared(args, env, cwd, uid, gid, groups, caps.mask(names) & caps.own_bounding(),
                    True if nnp is None else bool(nnp), path, program)


def become(p: Prepared) -> None:
    """Enter the cwd, drop the bounding set, switch user, set capabilities and no_new_privs.

    Raises:
        ExecError: the working directory cannot be entered (runc's message).
    """
    try:
        os.chdir(p.cwd)
    except OSError as e:
        raise ExecError('chdir to cwd ("%s") set in config.json failed: %s'
                        % (p.cwd, e.strerror.lower()), 126)
    os.umask(0o022)  # runc's; the engine's own umask says nothing about the container
    if p.seccomp is not None and not p.no_new_privs:
        # without no_new_privs only CAP_SYS_ADMIN may load a filter: load it while we hold it
        # (runc's order too); the calls below are all in docker's allowlist
        _load_seccomp(p.seccomp)
    caps.drop_bounding(p.cap_mask)
    os.setgroups(p.groups)
    os.setgid(p.gid)
    os.setuid(p.uid)
    caps.apply_after_setuid(p.cap_mask, p.uid)
    if p.no_new_privs:
        ns.prctl(ns.PR_SET_NO_NEW_PRIVS, 1)


def exec_prepared(p: Prepared) -> None:
    """execve the prepared process; returns only by raising.

    Raises:
        ExecError: execve failed (docker's wording; 126 for permission, 127 for missing).
    """
    for sig in _PY_IGNORED:  # ignored signals survive execve: give the process the defaults
        signal.signal(sig, signal.SIG_DFL)
    ns.default_all_signals()  # and whatever the engine's own starter left ignored
    close_on_exec_from(3)  # no descriptor of the engine's, shim's or helper's gets past execve
    if p.seccomp is not None and p.no_new_privs:
        _load_seccomp(p.seccomp)  # last: nothing of ours runs under the container's filter
    try:
        os.execve(p.path, p.args, dict(e.split("=", 1) if "=" in e else (e, "") for e in p.env))
    except PermissionError:
        raise ExecError('exec: "%s": permission denied' % p.args[0], 126)
    except FileNotFoundError:
        raise ExecError("exec %s: no such file or directory" % p.path, 127)
    except OSError as e:
        raise ExecError("exec %s: %s" % (p.path, e.strerror.lower()), 126)


def _load_seccomp(program: bytes) -> None:
    from . import seccomp

    try:
        seccomp.install(program)
    except OSError as e:
        raise ExecError("seccomp: cannot load the filter: %s" % e.strerror, 1)


def close_on_exec_from(low: int) -> None:
    """Mark every descriptor >= ``low`` close-on-exec (``close_range(low, ~0,
    CLOSE_RANGE_CLOEXEC)``, Linux 5.11+; a loop over /proc/self/fd before that).

    Marked, not closed: the pipe that reports an exec failure must live until execve.
    """
    try:
        ns.close_range(low, 0xFFFFFFFF, ns.CLOSE_RANGE_CLOEXEC)
        return
    except OSError:
        pass
    import fcntl

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= low:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
            except OSError:
                pass  # the listing's own descriptor, closed already

