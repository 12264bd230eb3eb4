"""`hostbridge doctor` against a real QEMU machine: all green, then each check broken on purpose
in the guest and named by doctor (exit 1, `--json`): the engine stopped, the guest clock
skewed, the data disk filled, a route in the guest that clashes with the container subnet, the
share unmounted. DNS is answered by a tiny server the test runs in the guest, on the bridge
gateway: no lookup leaves the machine. One machine for the module, destroyed after.
"""

import base64
import inspect
import json
import os
import time

import pytest

from tests.cli.test_doctor import TinyDNS
from tests.support.hbhome import HostbridgeHome, shared_image_cache

pytestmark = pytest.mark.vm
BOOT = 600  # seconds an `up` may take under TCG on a busy 2-core host
NAME = "doc%d" % (os.getpid() % 10000)
DNS_NAME = "doctor.hostbridge.test"


@pytest.fixture(scope="module")
def host(tmp_path_factory, busybox_rootfs_tar):
    h = HostbridgeHome(str(tmp_path_factory.mktemp("vmdoctor")), shared_image_cache())
    h.share = os.path.join(h.home, "share dir")  # a space: /proc/mounts escapes it
    os.makedirs(h.share)
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        h.env.pop(k, None)
    h.env["PYTHON_KEYRING_BACKEND"] = "tests.unit.filekeyring.FileKeyring"  # an encrypted-enough stand-in
    h.env["HOSTBRIDGE_TEST_KEYRING"] = os.path.join(h.home, "keyring.json")
    r = h.hb("up", "--machine", NAME, "--driver", "qemu", "--cpus", "1", "--memory", "768", "--disk", "4G",
             "--share", h.share, timeout=BOOT)
    assert r.returncode == 0, r.stderr
    h.hb("--machine", NAME, "import", busybox_rootfs_tar, "busybox:latest", check=True, timeout=300)
    h.env["DOCKER_CONTEXT"] = "hostbridge-%s" % NAME  # the context `up` wrote: the docker CLI check's answer
    yield h
    if os.path.exists(os.path.join(h.machine_dir(NAME), "machine.json")):
        h.hb("destroy", "-f", "--machine", NAME, timeout=120)


def _guest(host, script, check=True):
    return host.hb("ssh", "--machine", NAME, "--", script, check=check, timeout=120)


def _doctor(host, *args):
    r = host.hb("doctor", "--machine", NAME, "--json", *args, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, {c["check"]: c for c in json.loads(r.stdout)}


def _gateway(host):
    r = host.hb("--machine", NAME, "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}",
                check=True)
    return r.stdout.strip()


def _start_dns(host, ip):
    """TinyDNS (the native test's) run by the guest's python3 on ``ip`` for at most 10 minutes."""
    source = "import time\n%s\nd = TinyDNS(%r, {%r: '10.9.8.7'})\ntime.sleep(600)\n" % (
        inspect.getsource(TinyDNS), ip, DNS_NAME)
    code = base64.b64encode(source.encode()).decode()
    _guest(host, "echo %s | base64 -d > /run/tinydns.py; (python3 /run/tinydns.py </dev/null >/dev/null 2>&1 &)" % code)
    time.sleep(2)


def test_all_green(host):
    gw = _gateway(host)
    _start_dns(host, gw)
    code, checks = _doctor(host, "--dns-name", DNS_NAME, "--dns-server", gw)
    failed = {k: v for k, v in checks.items() if v["ok"] is False}
    assert code == 0 and not failed, failed
    assert checks["engine"]["ok"] and checks["tunnel"]["ok"] and checks["host key"]["ok"]
    assert checks["clock"]["figure"].startswith("the guest's clock is ")
    assert checks["dns"]["ok"] and "10.9.8.7" in checks["dns"]["figure"]
    assert checks["subnets"]["ok"] and "the guest's" in checks["subnets"]["figure"]
    assert checks["guest disk"]["figure"].startswith("/var/lib/hostbridge ")
    assert checks["accelerator"]["figure"].startswith(("tcg", "kvm"))
    assert checks["shares"]["figure"] == "%s mounted and writable" % host.share


def test_a_skewed_guest_clock(host):
    # The guest init keeps its clock on the RTC's (it would set this skew right within a second):
    # its RTC made unreadable, as a guest without that watch (a Vagrant box, a remote host) is.
    _guest(host, "echo none > /run/no-rtc && mount --bind /run/no-rtc /sys/class/rtc/rtc0/since_epoch && "
                 "date -u -s @$(( $(date +%s) + 120 )) >/dev/null")
    try:
        code, checks = _doctor(host)
        assert code == 1 and checks["clock"]["ok"] is False, checks["clock"]
        assert "+1" in checks["clock"]["figure"] and "hostbridge restart" in checks["clock"]["fix"]
    finally:
        _guest(host, "date -u -s @$(( $(date +%s) - 120 )) >/dev/null; umount /sys/class/rtc/rtc0/since_epoch")


def test_a_full_guest_disk(host):
    # All but 50 MiB of the free space, allocated at once (busybox has no fallocate; dd would take minutes).
    _guest(host, "python3 -c \"import os; st = os.statvfs('/var/lib/hostbridge'); "
                 "fd = os.open('/var/lib/hostbridge/doctor-fill', os.O_CREAT | os.O_WRONLY, 0o600); "
                 "os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize - (50 << 20))\"")
    try:
        code, checks = _doctor(host)
        assert code == 1 and checks["guest disk"]["ok"] is False, checks["guest disk"]
        fix = checks["guest disk"]["fix"]
        assert "hostbridge down --machine %s" % NAME in fix and "--disk" in fix
    finally:
        _guest(host, "rm -f /var/lib/hostbridge/doctor-fill")


def test_a_route_in_the_guest_that_clashes_with_the_container_subnet(host):
    subnet = host.hb("--machine", NAME, "network", "inspect", "bridge", "--format",
                     "{{(index .IPAM.Config 0).Subnet}}", check=True).stdout.strip()
    first = subnet.split("/")[0].rsplit(".", 2)[0]  # 172.17.0.0/16 -> 172.17
    clash = "%s.200.0/24" % first
    _guest(host, "ip link add vpn0 type veth peer name vpn1 && ip link set vpn1 up && ip link set vpn0 up && "
                 "ip route add %s dev vpn0" % clash)
    try:
        code, checks = _doctor(host)
        assert code == 1 and checks["subnets"]["ok"] is False, checks["subnets"]
        figure = checks["subnets"]["figure"]
        assert "network bridge (%s) overlaps the guest route %s via vpn0" % (subnet, clash) in figure
    finally:
        _guest(host, "ip link del vpn0")


def test_an_unmounted_share(host):
    _guest(host, "umount '%s'" % host.share)
    try:
        code, checks = _doctor(host)
        assert code == 1 and checks["shares"]["ok"] is False
        assert checks["shares"]["figure"] == "%s is not mounted in the guest" % host.share
    finally:
        _guest(host, "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap share0 '%s'" % host.share)


def test_the_engine_stopped(host):
    _guest(host, "/etc/init.d/hostbridge stop")
    try:
        code, checks = _doctor(host)
        assert code == 1 and checks["engine"]["ok"] is False, checks["engine"]
        assert "hostbridge up --machine %s" % NAME in checks["engine"]["fix"]
    finally:
        _guest(host, "/etc/init.d/hostbridge start")
