"""The security tier against the engine in the QEMU guest (Debian's 6.1 kernel, TCG here).

One guest is booted for the module (`hostbridge up --driver qemu`) and killed after. Two kinds
of checks run there:

- **Pure docker-CLI outcomes**, the root tier's own test functions imported unchanged and run
  through the machine's endpoint: masked and read-only /proc and /sys paths, capabilities,
  no_new_privs, mknod/kmsg/keyctl, /proc/self/exe, the seccomp filter and bad profiles (a
  profile file is read by the CLI), build RUN under the filter, namespace joins and the CLI's
  refusals, descriptors held by run/exec processes, bad log options.
- **Outcomes on the guest host**, checked over SSH: the guest's core_pattern and shmmax stay
  unchanged, the guest's processes are not visible, the engine and shims keep dockerd's
  oom_score_adj, and `--userns-remap default` on the guest kernel (root inside is a
  subordinate uid in the guest's /proc; a host folder shared into the guest is not writable
  by it).

Not run here, and why: the tests whose attempt needs a host path inside the container (`-v`
of the probes dir, hostile tars and symlink racers built on this host's filesystem, read-only
bind submounts made on the host, commit/cp races driven from the host) — the guest sees only
its shares, and the racers must run next to the engine, which the root tier does on this
machine; the log-size tests (they read the engine's log files on the engine's host); the tests
that compare with the test host's own /proc (sysctls, namespaces of "host" modes), replaced
here by the SSH checks above.
"""

import os
import shlex
import subprocess
import time
import uuid

import pytest

from tests.cli.conftest import Backend
from tests.security.test_descriptors import (  # noqa: F401  (collected here, against the guest)
    running, test_container_init_holds_only_stdio, test_exec_process_holds_only_stdio,
    test_exec_with_tty_holds_only_stdio, test_leaked_cwd_fd_cve_2024_21626, test_no_host_directory_reachable_through_fds,
    test_run_process_holds_only_stdio)
from tests.security.test_escapes import (  # noqa: F401
    test_cap_drop_all, test_default_capabilities_are_dockers, test_dev_has_only_dockers_nodes,
    test_host_pid_not_visible, test_keyctl_proc_keys_empty_for_container, test_kcore_masked, test_kmsg_not_readable,
    test_mknod_block_device_unusable, test_mknod_mem_unusable, test_no_new_privileges_with_setuid_binaries,
    test_proc_self_exe_not_writable_cve_2019_5736, test_raw_socket_with_default_caps, test_release_agent_not_reachable,
    test_sys_admin_operations_refused, test_sys_fs_cgroup_read_only, test_sys_not_writable,
    test_sysrq_trigger_not_writable)
from tests.security.test_log_limits import test_bad_log_opts_are_refused_with_dockerds_text  # noqa: F401
from tests.security.test_namespace_joins import (  # noqa: F401
    donor, test_ipc_join_refused_when_donor_is_private, test_join_container_namespace,
    test_network_host_gets_a_fresh_readonly_sysfs, test_pid_container_sees_only_the_donors_processes,
    test_uts_container_mode_refused_by_the_cli)
from tests.security.test_seccomp import (  # noqa: F401
    test_build_run_steps_run_under_the_filter, test_busybox_unshare_refused, test_default_profile_is_a_filter,
    test_exec_follows_the_containers_profile, test_filter_without_no_new_privileges, test_info_reports_the_builtin_profile,
    test_malformed_profile_refused, test_privileged_has_no_filter, test_profile_without_our_architecture_never_unconfined,
    test_unknown_syscall_never_unconfined)
from tests.support.hbhome import HostbridgeHome, shared_image_cache

pytestmark = [pytest.mark.vm, pytest.mark.skipif(not __import__("shutil").which("docker"),
                                                 reason="needs the stock docker CLI (Debian's docker.io)")]
BOOT = 600  # a cold `up` under TCG on a busy 2-core host
NAME = "vmsec%d" % os.getpid()


class Guest:
    """The booted machine: ``ssh(script)`` runs a shell script in the guest as root."""

    def __init__(self, home):
        self.home = home

    def ssh(self, script, timeout=120):
        r = self.home.hb("ssh", "--machine", NAME, "--", "sh", "-c", shlex.quote(script), timeout=timeout)
        assert r.returncode == 0, r.stderr
        return r.stdout


@pytest.fixture(scope="module")
def vm(tmp_path_factory, busybox_rootfs_tar):
    h = HostbridgeHome(str(tmp_path_factory.mktemp("vmsec")), shared_image_cache())
    h.share = os.path.join(h.home, "share")
    os.makedirs(h.share)
    try:
        r = h.hb("up", "--machine", NAME, "--driver", "qemu", "--cpus", "1", "--memory", "1024", "--disk", "4G",
                 "--share", h.share, timeout=BOOT)
        assert r.returncode == 0, r.stderr
        script = h.hb("env", "--shell", "bash", NAME, check=True).stdout
        url = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                             capture_output=True, text=True, check=True).stdout
        b = Backend("engine", url, str(tmp_path_factory.mktemp("vmsec-cli")))
        r = b.docker("import", busybox_rootfs_tar, "busybox:latest", timeout=300)
        assert r.returncode == 0, r.stderr
        yield b, Guest(h), h.share
    finally:
        h.hb("destroy", "-f", "--machine", NAME, timeout=120)


@pytest.fixture
def backend(vm):
    """The root tier's ``backend``, here the engine in the guest (through the tunnel agent)."""
    return vm[0]


@pytest.fixture
def guest(vm):
    return vm[1]


def test_the_guest_runs_its_own_kernel(backend, guest):
    # the checks above ran against the guest's kernel, not this machine's
    assert guest.ssh("uname -r").strip() != os.uname().release


def test_core_pattern_of_the_guest_not_writable(backend, guest):
    before = guest.ssh("cat /proc/sys/kernel/core_pattern")
    r = backend.docker("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                       "echo '|/tmp/x' > /proc/sys/kernel/core_pattern")
    assert r.returncode != 0
    assert guest.ssh("cat /proc/sys/kernel/core_pattern") == before


def test_ipc_join_sysctl_stays_out_of_the_guest(backend, guest, donor):
    before = guest.ssh("cat /proc/sys/kernel/shmmax")
    r = backend.docker("run", "--rm", "--ipc", "container:" + donor, "--network", "none", "--sysctl",
                       "kernel.shmmax=4096", "busybox", "cat", "/proc/sys/kernel/shmmax")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "4096"
    assert guest.ssh("cat /proc/sys/kernel/shmmax") == before
    r = backend.docker("run", "--rm", "--ipc", "host", "--sysctl", "kernel.shmmax=4096", "busybox", "true")
    assert r.returncode != 0
    assert guest.ssh("cat /proc/sys/kernel/shmmax") == before


def test_guest_processes_are_not_visible(backend, guest):
    engine_pid = guest.ssh("cat /run/hostbridge/engine.pid").strip()
    r = backend.docker("run", "--rm", "--network", "none", "busybox", "ps", "-o", "pid,comm")
    assert r.returncode == 0, r.stderr
    assert "python" not in r.stdout and "sshd" not in r.stdout
    assert engine_pid not in r.stdout.split()[2:] or engine_pid in ("1", "2")


def test_engine_and_shims_keep_dockerds_oom_score_adj(backend, guest, running):
    pid = backend.docker("inspect", "-f", "{{.State.Pid}}", running).stdout.strip()
    out = guest.ssh("cat /proc/$(cat /run/hostbridge/engine.pid)/oom_score_adj; "
                    "cat /proc/$(cut -d' ' -f4 /proc/%s/stat)/oom_score_adj; cat /proc/%s/oom_score_adj" % (pid, pid))
    assert out.split() == ["-500", "-999", "0"]  # engine, the container's shim, the container


def _engine_answers(backend, guest):
    """Wait (up to 90 s: TCG) for the restarted engine to answer through the tunnel."""
    for _ in range(90):
        if backend.docker("version", "-f", "{{.Server.Version}}", timeout=30).returncode == 0:
            return
        time.sleep(1)
    raise AssertionError("the guest's engine did not come back:\n" + guest.ssh(
        "tail -n 20 /var/lib/hostbridge/engine.log"))


@pytest.fixture
def remapped(backend, guest):
    """The guest's engine restarted with --userns-remap default (the running guest's init
    script is edited in RAM, and restored after)."""
    guest.ssh("cp /etc/init.d/hostbridge /run/hostbridge.initd.orig && "
              "sed -i 's|^ARGS=\"daemon |ARGS=\"daemon --userns-remap default |' /etc/init.d/hostbridge && "
              "grep -q -- '--userns-remap default' /etc/init.d/hostbridge && /etc/init.d/hostbridge restart")
    try:
        _engine_answers(backend, guest)
        yield guest
    finally:
        guest.ssh("cp /run/hostbridge.initd.orig /etc/init.d/hostbridge && /etc/init.d/hostbridge restart")
        _engine_answers(backend, guest)


def test_userns_remap_on_the_guest_kernel(backend, remapped, vm):
    share = vm[2]
    assert "name=userns" in backend.docker("info", "-f", "{{json .SecurityOptions}}").stdout
    name = "remap-%s" % uuid.uuid4().hex[:6]
    r = backend.docker("run", "-d", "--name", name, "-v", share + ":/share", "busybox", "sleep", "120")
    assert r.returncode == 0, r.stderr
    try:
        assert backend.docker("exec", name, "id", "-u").stdout.strip() == "0"
        pid = backend.docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
        start = remapped.ssh("grep ^hostbridge-remap: /etc/subuid").strip().split(":")[1]
        assert remapped.ssh("grep ^Uid: /proc/%s/status" % pid).split()[1] == start
        # a host folder shared into the guest: owned by this host's user, not by the remapped root
        w = backend.docker("exec", name, "sh", "-c", "echo x > /share/from-remapped || echo refused")
        assert "refused" in w.stdout
        assert not os.path.exists(os.path.join(share, "from-remapped"))
        ok = backend.docker("run", "--rm", "busybox", "sh", "-c", "touch /x && ping -c1 -W2 127.0.0.1 >/dev/null && id -u")
        assert (ok.returncode, ok.stdout) == (0, "0\n"), ok.stderr
    finally:
        backend.docker("rm", "-f", name)
