"""Seccomp: docker's default profile, typed as a user would, against dockerd and our engine.

Each probe is a tiny static binary (tests/support/syscall_elf.py) that makes one raw system
call and exits with its errno, so the same attempt runs unchanged in both engines' containers.
"""

import json
import os

import pytest

from tests.support import syscall_elf

pytestmark = pytest.mark.skipif(not syscall_elf.supported(), reason="the syscall probes are x86_64 code")

EPERM, EFAULT, ENOSYS = 1, 14, 38
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x20000, 17

# name: (x86_64 syscall number, args, errno expected under docker's default profile as root)
PROBES = {
    "getpid": (39, (), 0),
    "unshare_user": (272, (CLONE_NEWUSER,), EPERM),  # the way into every userns kernel bug
    "unshare_mnt": (272, (CLONE_NEWNS,), EPERM),
    "clone_newuser": (56, (CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0), EPERM),
    "clone3": (435, (0, 0), ENOSYS),  # libcs fall back to clone, whose flags the filter sees
    "keyctl": (250, (0, 0xFFFFFFFD, 0), EPERM),  # the kernel keyring is not namespaced
    "add_key": (248, (0, 0, 0, 0, 0), EPERM),
    "request_key": (249, (0, 0, 0, 0), EPERM),
    "bpf": (321, (0, 0, 0), EPERM),
    "perf_event_open": (298, (0, 0, 0, 0, 0), EPERM),
    "kexec_load": (246, (0, 0, 0, 0), EPERM),
    "open_by_handle_at": (304, (0, 0, 0), EPERM),  # the "shocker" escape
    "mount": (165, (0, 0, 0, 0, 0), EPERM),
    "umount2": (166, (0, 0), EPERM),
    "setns": (308, (0, 0), EPERM),
    "pivot_root": (155, (0, 0), EPERM),
    "fsopen": (430, (0, 0), EPERM),
    "userfaultfd": (323, (0,), EPERM),
    "socket_vsock": (41, (40, 1, 0), EPERM),  # AF_VSOCK reaches the hypervisor
    "personality_norandom": (135, (0x0040000,), EPERM),  # ADDR_NO_RANDOMIZE
    "personality_query": (135, (0xFFFFFFFF,), 0),
    "ptrace_traceme": (101, (0, 0, 0, 0), 0),  # allowed on Linux >= 4.8, as docker allows it
    "swapon": (167, (0, 0), EPERM),
    "syslog": (103, (3, 0, 0), EPERM),
    "reboot": (169, (0, 0, 0, 0), EPERM),
    "init_module": (175, (0, 0, 0), EPERM),
    "acct": (163, (0,), EPERM),
    "settimeofday": (164, (0, 0), EPERM),
}


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    d = tmp_path_factory.mktemp("probes")
    os.chmod(str(d), 0o755)
    for name, (nr, args, _) in PROBES.items():
        syscall_elf.write(str(d), name, nr, *args)
    return str(d)


def _run_probes(backend, probes, *opts):
    script = 'for p in /probe/*; do "$p"; echo "${p##*/} $?"; done'
    r = backend.docker("run", "--rm", "--network", "none", "-v", probes + ":/probe:ro", *opts,
                       "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    return {line.split()[0]: int(line.split()[1]) for line in r.stdout.splitlines() if line.strip()}


def _seccomp_mode(backend, *opts):
    r = backend.docker("run", "--rm", "--network", "none", *opts, "busybox", "grep", "^Seccomp:",
                       "/proc/self/status")
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[1]


# moby added the AF_VSOCK rule after 20.10 (Debian's dockerd here): ours follows the newer profile
_NEWER_THAN_DOCKERD_20 = {"socket_vsock"}


def test_default_profile_refuses_what_docker_refuses(backend, probes):
    got = _run_probes(backend, probes)
    want = {name: want for name, (_, _, want) in PROBES.items()}
    if backend.name == "dockerd":
        for name in _NEWER_THAN_DOCKERD_20:
            want.pop(name)
            got.pop(name)
    assert got == want


def test_default_profile_is_a_filter(backend):
    assert _seccomp_mode(backend) == "2"


def test_exec_runs_under_the_filter(backend, probes):
    name = "sc-exec-" + backend.name
    r = backend.docker("run", "-d", "--name", name, "--network", "none", "-v", probes + ":/probe:ro",
                       "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    try:
        status = backend.docker("exec", name, "grep", "^Seccomp:", "/proc/self/status")
        assert status.stdout.split()[1] == "2"
        for probe in ("unshare_user", "keyctl", "add_key"):
            assert backend.docker("exec", name, "/probe/" + probe).returncode == EPERM
    finally:
        backend.docker("rm", "-f", name)


def test_privileged_has_no_filter(backend):
    r = backend.docker("run", "--rm", "--network", "none", "--privileged", "busybox", "grep", "^Seccomp:",
                       "/proc/self/status")
    if backend.name == "dockerd" and "unable to apply caps" in r.stderr:
        pytest.skip("host kernel: knows capabilities Debian's runc does not, so dockerd cannot run --privileged here")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == "0"


def test_unconfined_has_no_filter(backend, probes):
    assert _seccomp_mode(backend, "--security-opt", "seccomp=unconfined") == "0"
    # the EPERM above was the filter's: unconfined, the kernel sees the call (and its NULLs)
    got = _run_probes(backend, probes, "--security-opt", "seccomp=unconfined")
    assert got["add_key"] == EFAULT


def test_busybox_unshare_refused(backend):
    r = backend.docker("run", "--rm", "--network", "none", "busybox", "unshare", "-U", "true")
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr


def test_custom_profile_file(backend, tmp_path, probes):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    r = backend.docker("run", "--rm", "--network", "none", "--security-opt", "seccomp=%s" % path,
                       "busybox", "sh", "-c", "mkdir /x; grep ^Seccomp: /proc/self/status")
    assert "Permission denied" in r.stderr
    assert r.stdout.split()[1] == "2"
    name = "sc-inspect-" + backend.name
    assert backend.docker("create", "--name", name, "--network", "none", "--security-opt",
                          "seccomp=%s" % path, "busybox", "true").returncode == 0
    try:
        opts = json.loads(backend.docker("inspect", "-f", "{{json .HostConfig.SecurityOpt}}", name).stdout)
        assert len(opts) == 1 and opts[0].startswith("seccomp=")
        assert json.loads(opts[0][len("seccomp="):]) == profile
    finally:
        backend.docker("rm", "-f", name)


def test_malformed_profile_refused(backend, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [')
    r = backend.docker("run", "--rm", "--network", "none", "--security-opt", "seccomp=%s" % path,
                       "busybox", "true")
    assert r.returncode != 0
    # dockerd's CLI refuses before sending; where a body reaches an engine it must say so
    assert r.stderr.strip()


def _never_unconfined(backend, path):
    r = backend.docker("run", "--rm", "--network", "none", "--security-opt", "seccomp=%s" % path,
                       "busybox", "grep", "^Seccomp:", "/proc/self/status")
    if r.returncode == 0:
        assert r.stdout.split()[1] == "2", "ran without a filter"
    return r


def test_unknown_syscall_never_unconfined(backend, tmp_path):
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}]}))
    r = _never_unconfined(backend, path)
    if backend.name == "engine":
        assert r.returncode == 125
        assert "syscalls[0].names" in r.stderr and "no_such_call" in r.stderr


def test_profile_without_our_architecture_never_unconfined(backend, tmp_path):
    path = tmp_path / "s390.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_S390X"],
                                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}))
    r = _never_unconfined(backend, path)
    if backend.name == "engine":
        assert r.returncode == 125
        assert "architectures" in r.stderr


def test_info_reports_the_builtin_profile(backend):
    r = backend.docker("info", "-f", "{{json .SecurityOptions}}")
    opts = json.loads(r.stdout)
    assert any(o.startswith("name=seccomp,profile=") and "unconfined" not in o for o in opts), opts


def test_build_run_steps_run_under_the_filter(backend, tmp_path):
    import subprocess

    syscall_elf.write(str(tmp_path), "add_key", *PROBES["add_key"][:1], *PROBES["add_key"][1])
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\n"
        "COPY add_key /add_key\n"
        "RUN grep ^Seccomp: /proc/self/status > /seccomp; /add_key; echo $? > /add_key.rc\n")
    tag = "sc-build-%s" % backend.name
    r = subprocess.run(["docker", "build", "--network", "none", "-t", tag, str(tmp_path)], capture_output=True,
                       text=True, timeout=120, env=backend.env(DOCKER_BUILDKIT="0"))
    assert r.returncode == 0, r.stderr
    try:
        out = backend.docker("run", "--rm", "--network", "none", tag, "cat", "/seccomp", "/add_key.rc")
        assert out.stdout.split() == ["Seccomp:", "2", str(EPERM)]
    finally:
        backend.docker("rmi", "-f", tag)


def test_exec_follows_the_containers_profile(backend):
    name = "sc-unconf-" + backend.name
    r = backend.docker("run", "-d", "--name", name, "--network", "none", "--security-opt", "seccomp=unconfined",
                       "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    try:
        status = backend.docker("exec", name, "grep", "^Seccomp:", "/proc/self/status")
        assert status.stdout.split()[1] == "0"
    finally:
        backend.docker("rm", "-f", name)


def test_filter_without_no_new_privileges(backend):
    # without no_new_privs the filter is loaded while the process still holds CAP_SYS_ADMIN
    r = backend.docker("run", "--rm", "--network", "none", "--security-opt", "no-new-privileges:false",
                       "busybox", "sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; unshare -U true")
    fields = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert fields == {"NoNewPrivs": "0", "Seccomp": "2"}
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
