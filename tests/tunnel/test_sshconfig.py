"""~/.ssh/config as users write it: Include, Match, ProxyCommand, IdentitiesOnly, IdentityAgent,
each resolved by hostbridge and then used against the real sshd in a network namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from hostbridge.tunnel.errors import SSHAuthError, SSHUnreachable
from hostbridge.tunnel.known_hosts import KnownHosts
from hostbridge.tunnel.ssh import Connection, resolve_target
from hostbridge.tunnel.sshconfig import SSHConfigError, expand


def _write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w") as f:
        f.write(text)
    return str(path)


@pytest.fixture
def ssh_home(tmp_path, monkeypatch):
    """HOME in tmp with an empty ~/.ssh; SSH_AUTH_SOCK unset (the tests set agents themselves)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    d = tmp_path / ".ssh"
    d.mkdir()
    return d


# -- parsing (no sshd) ----------------------------------------------------------------------

def test_include_globs_relative_to_dot_ssh_in_order(ssh_home):
    _write(ssh_home / "conf.d" / "20-b.conf", "Host b\n  HostName 10.0.0.2\n")
    _write(ssh_home / "conf.d" / "10-a.conf", "Host a\n  HostName 10.0.0.1\n  Port 2201\n")
    cfg = _write(ssh_home / "config", "Include conf.d/*.conf\nHost *\n  User ana\n")
    a, b = resolve_target("a", config_path=cfg), resolve_target("b", config_path=cfg)
    assert (a.hostname, a.port, a.user) == ("10.0.0.1", 2201, "ana")
    assert (b.hostname, b.port, b.user) == ("10.0.0.2", 22, "ana")
    # A pattern that matches nothing is skipped, as OpenSSH does.
    cfg2 = _write(ssh_home / "config2", "Include nothing-here/*\nHost c\n  HostName 10.0.0.3\n")
    assert resolve_target("c", config_path=cfg2).hostname == "10.0.0.3"


def test_include_inside_a_host_block_applies_only_there(ssh_home):
    # The included file's own Host block is narrowed to the outer one; the outer block goes on after it.
    _write(ssh_home / "inner", "User from-inner\nHost *\n  Port 2222\n")
    cfg = _write(ssh_home / "config", "Host work-*\n  Include inner\n  HostName 10.1.1.1\nHost *\n  User other\n")
    w = resolve_target("work-1", config_path=cfg)
    assert (w.user, w.port, w.hostname) == ("from-inner", 2222, "10.1.1.1")
    h = resolve_target("home", config_path=cfg)
    assert (h.user, h.port, h.hostname) == ("other", 22, "home")


def test_include_loop_is_an_error_naming_file_and_line(ssh_home):
    cfg = _write(ssh_home / "config", "# loops\nInclude config\n")
    with pytest.raises(SSHConfigError) as ei:
        resolve_target("x", config_path=cfg)
    assert "%s line 2:" % cfg in str(ei.value) and "deeper than 16" in str(ei.value)
    assert ei.value.line == 2


@pytest.mark.parametrize("text, line, what", [
    ("Host a\n  HostName 10.0.0.1\n  Port abc\n", 3, "not a port number"),
    ("Host a\n\n  JustAWord\n", 3, "cannot parse 'JustAWord'"),
    ("Host a\n  Match host\n", 2, "bad Match line"),
    ('Host "a\n', 1, "bad quoting in host"),
    ("Host a\n  IdentitiesOnly perhaps\n", 2, "takes yes or no"),
])
def test_malformed_lines_name_file_and_line(ssh_home, text, line, what):
    inc = _write(ssh_home / "bad.conf", text)
    cfg = _write(ssh_home / "config", "Host z\n  User u\nInclude bad.conf\n")
    with pytest.raises(SSHConfigError) as ei:
        resolve_target("a", config_path=cfg)
    msg = str(ei.value)
    assert msg.startswith("%s line %d: " % (inc, line)) and what in msg and "\n" not in msg
    assert (ei.value.path, ei.value.line) == (inc, line)


def test_unreadable_config_is_an_error_not_a_crash(ssh_home):
    cfg = _write(ssh_home / "config", "Host a\n")
    with open(cfg, "wb") as f:
        f.write(b"Host \xff\xfe\n")
    with pytest.raises(SSHConfigError, match="cannot read the ssh config %s" % cfg):
        resolve_target("a", config_path=cfg)


def test_expand_keeps_origins(ssh_home):
    inc = _write(ssh_home / "x.conf", "Host x\n  Port 1\n")
    cfg = _write(ssh_home / "config", "Include x.conf\nPort 2\n")
    assert expand(cfg) == [("Host x", inc, 1), ("Port 1", inc, 2), ("Host *", cfg, 1), ("Port 2", cfg, 2)]


# -- against the real sshd ------------------------------------------------------------------

def _connect(target, sshd, tmp_path, **kw):
    kh = KnownHosts(str(tmp_path / "known_hosts"))
    return Connection(target, kh, accept_host_keys=sshd.host_fingerprint, look_for_keys=False, **kw)


class _Agent:
    """A real ssh-agent on a socket in tmp, holding ``keys``."""

    def __init__(self, sock, keys):
        self.sock = sock
        self.proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        for k in keys:
            subprocess.run(["ssh-add", "-q", k], env=dict(os.environ, SSH_AUTH_SOCK=sock), check=True,
                           capture_output=True)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(5)


@pytest.fixture
def stranger(tmp_path):
    from remotehost import keygen

    path = str(tmp_path / "id_stranger")
    keygen(path)
    return path


@pytest.mark.root
def test_included_host_with_match_and_identityfile_list(sshd, ssh_home, tmp_path, stranger):
    # The host, its port (from a Match block) and a list of keys (a wrong one first) all come
    # from an included file; the login uses the second key.
    _write(ssh_home / "conf.d" / "far.conf",
           "Host far\n  HostName %s\n  IdentityFile %s\n  IdentityFile %s\n" % (sshd.host, stranger, sshd.user_key))
    # Include first: a line after `Match` belongs to that block, whatever its indentation.
    cfg = _write(ssh_home / "config", "Include conf.d/*\nMatch host %s\n  Port %d\nHost *\n  User root\n"
                 % (sshd.host, sshd.port))
    t = resolve_target("far", config_path=cfg)
    assert (t.hostname, t.port, t.user, t.identity_files) == (sshd.host, sshd.port, "root", [stranger, sshd.user_key])
    with _connect(t, sshd, tmp_path, allow_agent=False) as c:
        assert c.run("echo included") == (0, b"included\n", b"")


@pytest.mark.root
def test_proxycommand_carries_the_connection(sshd, ssh_home, tmp_path):
    # socat relays stdio to the namespace's sshd: the ProxyCommand is the only way in, since
    # the HostName given does not resolve.
    log = tmp_path / "proxy.log"
    cfg = _write(ssh_home / "config",
                 "Host via-cmd\n  HostName %s\n  Port %d\n  User root\n  IdentityFile %s\n"
                 "  ProxyCommand sh -c 'echo %%h:%%p >> %s; exec socat - TCP:%%h:%%p'\n"
                 % (sshd.host, sshd.port, sshd.user_key, log))
    t = resolve_target("via-cmd", config_path=cfg)
    assert "socat - TCP:%s:%d" % (sshd.host, sshd.port) in t.proxy_command
    with _connect(t, sshd, tmp_path, allow_agent=False) as c:
        assert c.run("echo proxied")[1] == b"proxied\n"
    assert log.read_text() == "%s:%d\n" % (sshd.host, sshd.port)
    # A command that fails says so, naming it.
    cfg = _write(ssh_home / "config", "Host broken\n  HostName %s\n  User root\n  ProxyCommand false\n" % sshd.host)
    with pytest.raises(SSHUnreachable, match="through ProxyCommand 'false'"):
        _connect(resolve_target("broken", config_path=cfg), sshd, tmp_path, allow_agent=False, timeout=5).open()


@pytest.mark.root
def test_identitiesonly_keeps_agent_keys_out(sshd, ssh_home, tmp_path, stranger):
    agent = _Agent(str(tmp_path / "agent.sock"), [sshd.user_key])
    try:
        os.environ["SSH_AUTH_SOCK"] = agent.sock  # ssh_home's monkeypatch restores it
        base = "Host far\n  HostName %s\n  Port %d\n  User root\n  IdentityFile %s\n" % (sshd.host, sshd.port, stranger)
        cfg = _write(ssh_home / "config", base)
        with _connect(resolve_target("far", config_path=cfg), sshd, tmp_path) as c:  # the agent's key gets in
            assert c.run("echo agent")[1] == b"agent\n"
        cfg = _write(ssh_home / "config", base + "  IdentitiesOnly yes\n")
        t = resolve_target("far", config_path=cfg)
        assert t.identities_only
        with pytest.raises(SSHAuthError):
            _connect(t, sshd, tmp_path).open()
        # An agent key that IS a configured identity is still used (as OpenSSH does).
        cfg = _write(ssh_home / "config", base.replace(stranger, sshd.user_key) + "  IdentitiesOnly yes\n")
        os.rename(sshd.user_key, sshd.user_key + ".moved")  # only the .pub and the agent's copy remain
        try:
            with _connect(resolve_target("far", config_path=cfg), sshd, tmp_path) as c:
                assert c.run("echo matched")[1] == b"matched\n"
        finally:
            os.rename(sshd.user_key + ".moved", sshd.user_key)
    finally:
        agent.stop()


@pytest.mark.root
def test_identityagent_path_none_and_env(sshd, ssh_home, tmp_path, monkeypatch):
    agent = _Agent(str(tmp_path / "agent.sock"), [sshd.user_key])
    try:
        base = "Host far\n  HostName %s\n  Port %d\n  User root\n" % (sshd.host, sshd.port)
        # A socket path (with ~ and ${VAR}) while SSH_AUTH_SOCK is unset.
        monkeypatch.setenv("AGENT_DIR", str(tmp_path))
        cfg = _write(ssh_home / "config", base + "  IdentityAgent ${AGENT_DIR}/agent.sock\n")
        t = resolve_target("far", config_path=cfg)
        assert t.identity_agent == agent.sock
        with _connect(t, sshd, tmp_path) as c:
            assert c.run("echo by-path")[1] == b"by-path\n"
        # The word SSH_AUTH_SOCK means the variable.
        monkeypatch.setenv("SSH_AUTH_SOCK", agent.sock)
        cfg = _write(ssh_home / "config", base + "  IdentityAgent SSH_AUTH_SOCK\n")
        with _connect(resolve_target("far", config_path=cfg), sshd, tmp_path) as c:
            assert c.run("echo by-env")[1] == b"by-env\n"
        # none: the agent is not asked, even though SSH_AUTH_SOCK points at it.
        cfg = _write(ssh_home / "config", base + "  IdentityAgent none\n")
        t = resolve_target("far", config_path=cfg)
        assert t.identity_agent == ""
        with pytest.raises(SSHAuthError):
            _connect(t, sshd, tmp_path).open()
    finally:
        agent.stop()


@pytest.mark.root
def test_target_with_ssh_config_options_survives_the_agents_json(sshd, ssh_home, tmp_path):
    # The tunnel agent rebuilds the target from tunnel.json: the options must come back.
    from hostbridge.tunnel.ssh import SSHTarget

    cfg = _write(ssh_home / "config", "Host far\n  HostName %s\n  Port %d\n  User root\n  IdentityFile %s\n"
                 "  IdentitiesOnly yes\n  IdentityAgent none\n  ProxyCommand socat - TCP:%%h:%%p\n"
                 % (sshd.host, sshd.port, sshd.user_key))
    t = SSHTarget.from_dict(resolve_target("far", config_path=cfg).to_dict())
    assert (t.identities_only, t.identity_agent) == (True, "")
    assert t.proxy_command == "socat - TCP:%s:%d" % (sshd.host, sshd.port)
    with _connect(t, sshd, tmp_path) as c:
        assert c.run("echo again")[1] == b"again\n"


def _cli(*args):
    import sys

    return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), capture_output=True, text=True,
                          timeout=60)


@pytest.mark.root
@pytest.mark.parametrize("via", ["direct", "proxycommand", "proxyjump"])
def test_ssh_config_block_works_with_openssh(sshd, ssh_home, hb_home, tmp_path, via):
    from hostbridge.paths import MachinePaths
    from hostbridge.machines.record import Machine

    text = "Host far\n  HostName %s\n  Port %d\n  User root\n  IdentityFile %s\n" % (sshd.host, sshd.port, sshd.user_key)
    if via == "proxycommand":
        text += "  ProxyCommand socat - TCP:%h:%p\n"
    if via == "proxyjump":  # the namespace's sshd is its own jump host
        text += "  ProxyJump root@%s:%d\n" % (sshd.host, sshd.port)
    t = resolve_target("far", config_path=_write(ssh_home / "config", text))
    with Connection(t, KnownHosts(MachinePaths.for_name("far").known_hosts), accept_host_keys=sshd.host_fingerprint,
                    look_for_keys=False, allow_agent=False):
        pass  # pins the host key, as `remote add` does
    Machine("far", "remote", fields={"ssh": t.to_dict()}).save()
    res = _cli("ssh-config", "far")
    assert res.returncode == 0, res.stderr
    block = res.stdout
    assert block.startswith("Host far\n") and "StrictHostKeyChecking yes" in block
    assert ("ProxyCommand socat - TCP:%s:%d\n" % (sshd.host, sshd.port) in block) == (via == "proxycommand")
    assert ("-W [%%h]:%%p ssh://root@%s:%d\n" % (sshd.host, sshd.port) in block) == (via == "proxyjump")
    f = _write(tmp_path / "ssh_config", block)
    out = subprocess.run(["ssh", "-F", f, "-o", "BatchMode=yes", "far", "echo", "openssh-ok"], capture_output=True,
                         text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, "openssh-ok\n"), out.stderr
    # The pin is enforced: another host key is refused by ssh itself.
    sshd.regenerate_host_key()
    out = subprocess.run(["ssh", "-F", f, "-o", "BatchMode=yes", "far", "true"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 255 and "host key" in out.stderr.lower()


def test_ssh_config_of_unknown_or_native_machine_is_one_line(hb_home):
    res = _cli("ssh-config", "nosuch")
    assert res.returncode == 1 and "no machine named 'nosuch'" in res.stderr and res.stderr.count("\n") == 1


def test_remote_add_with_a_malformed_ssh_config_names_file_and_line(ssh_home, hb_home):
    from click.testing import CliRunner

    from hostbridge.cli.remote import remote_group

    cfg = _write(ssh_home / "config", "Host far\n  HostName 10.0.0.1\n  Port twenty-two\n")
    res = CliRunner().invoke(remote_group, ["add", "far", "far", "--yes"])
    assert res.exit_code == 1
    assert "%s line 3: Port 'twenty-two' is not a port number" % cfg in res.output
    from hostbridge.paths import MachinePaths

    assert not os.path.exists(MachinePaths.for_name("far").dir)  # nothing half-done


def test_a_misspelt_option_is_an_error_unless_ignored(ssh_home):
    cfg = _write(ssh_home / "config", "Host a\n  Hostnme 10.0.0.1\n")
    with pytest.raises(SSHConfigError, match="line 2: unknown option 'Hostnme' .*IgnoreUnknown"):
        resolve_target("a", config_path=cfg)
    cfg = _write(ssh_home / "config", "IgnoreUnknown UseAppleThing,hostn*\nHost a\n  Hostnme 10.0.0.1\n"
                                      "  UseAppleThing yes\n  HostName 10.0.0.2\n")
    assert resolve_target("a", config_path=cfg).hostname == "10.0.0.2"


def test_every_known_option_is_one_openssh_knows(tmp_path):
    # OpenSSH here is the oracle: none of our keywords may be one it calls a bad option.
    from hostbridge.tunnel.sshconfig import KEYWORDS

    apple_only = {"usekeychain"}
    newer = {"channeltimeout", "obscurekeystroketiming", "tag"}  # OpenSSH 9.4-9.7; Debian 12 has 9.2
    lines = ["%s x" % k for k in sorted(KEYWORDS - apple_only - newer - {"host", "match", "include"})]
    bad = []
    for kw_line in lines:
        f = tmp_path / "c"
        f.write_text(kw_line + "\n")
        r = subprocess.run(["ssh", "-G", "-F", str(f), "h"], capture_output=True, text=True, timeout=30)
        if "Bad configuration option" in r.stderr:
            bad.append(kw_line.split()[0])
    assert bad == []
