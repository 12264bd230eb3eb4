"""The shipped Vagrantfile and the vagrant driver against the real `vagrant` binary (Debian's
2.3.4). VirtualBox is not installed here, so what needs it is checked for its error message;
nothing here boots a VM or reaches the network (box URL pinned to a missing local file)."""

import os
import shutil
import subprocess

import pytest

from hostbridge.errors import VMError
from hostbridge.machines import driver, vagrant

pytestmark = pytest.mark.skipif(not shutil.which("vagrant"), reason="vagrant is not installed: apt-get install vagrant")


@pytest.fixture
def env(monkeypatch, tmp_path):
    # No update checks, no box downloads: a box URL nothing can fetch, outside the network.
    monkeypatch.setenv("VAGRANT_CHECKPOINT_DISABLE", "1")
    monkeypatch.setenv("HOSTBRIDGE_BOX_URL", "file://%s/no-such.box" % tmp_path)
    monkeypatch.setenv("VAGRANT_HOME", str(tmp_path / "vagrant.d"))
    return tmp_path


def machine(tmp_path, provider=vagrant.PROVIDER):
    share = tmp_path / "home"
    share.mkdir(exist_ok=True)
    spec = driver.MachineSpec(name="t", dir=str(tmp_path / "m"), box="hostbridge-test/none", shares=(str(share),))
    d = vagrant.VagrantDriver(spec, provider=provider)
    d.create()
    return d


def run_vagrant(d, *args, provider=vagrant.PROVIDER):
    env = dict(os.environ, VAGRANT_DEFAULT_PROVIDER=provider)
    return subprocess.run(["vagrant"] + list(args), cwd=d.files.vagrant_dir, env=env, capture_output=True,
                          text=True, timeout=120)


def test_vagrantfile_validates(env):
    d = machine(env)
    # --ignore-provider: VirtualBox's own checks (vboxsf usable?) need VirtualBox installed.
    proc = run_vagrant(d, "validate", "--ignore-provider")
    assert proc.returncode == 0, proc.stderr
    assert "validated successfully" in proc.stdout


def test_full_validate_fails_only_for_want_of_virtualbox(env):
    proc = run_vagrant(machine(env), "validate")
    assert proc.returncode != 0
    # The only complaint is the missing hypervisor (the provider, or its vboxsf synced folder).
    assert "VirtualBox" in proc.stderr or "synced folder type 'virtualbox'" in proc.stderr, proc.stderr


def test_status_of_a_machine_never_created(env):
    d = machine(env)
    assert d.state() == driver.NOT_CREATED
    # vagrant's own answer, through a provider that can answer here without a hypervisor.
    assert machine(env, provider="libvirt").vagrant_state() == (driver.NOT_CREATED, "not_created")


def test_missing_virtualbox_says_what_to_install(env):
    d = machine(env)
    for action in (d.vagrant_state, d.start):
        with pytest.raises(VMError) as err:
            action()
        assert "Vagrant could not detect VirtualBox" in str(err.value)
        assert "install VirtualBox" in str(err.value) and "--driver qemu" in str(err.value)
    d.destroy()
    assert not os.path.exists(d.spec.dir)


def test_missing_vagrant_binary(env, monkeypatch):
    monkeypatch.setenv("PATH", str(env))
    d = machine(env)
    with pytest.raises(VMError, match="vagrant is not installed") as err:
        d.start()
    assert "install Vagrant" in err.value.hint


def test_ssh_config_from_vagrant_own_template(env):
    # The exact text `vagrant ssh-config` prints comes from this ERB template in vagrant 2.3.4;
    # render it with vagrant's ruby for a VirtualBox machine whose key path holds a space.
    gem = subprocess.run(["ruby", "-e", "print Gem::Specification.find_by_name('vagrant').gem_dir"],
                         capture_output=True, text=True)
    template = os.path.join(gem.stdout, "templates", "commands", "ssh_config", "config.erb")
    if gem.returncode != 0 or not os.path.exists(template):
        pytest.skip("vagrant's ssh_config template is not found")
    script = ('require "erb"; host_key="default"; config=nil; ssh_host="127.0.0.1"; ssh_user="vagrant";'
              'ssh_port=2201; verify_host_key=false; private_key_path=["/Users/ana b/m/private_key"];'
              'keys_only=true; log_level=nil; forward_agent=false; forward_x11=false; proxy_command=nil;'
              'print ERB.new(File.read(ARGV[0]), trim_mode: "-").result(binding)')
    out = subprocess.run(["ruby", "-e", script, template], capture_output=True, text=True, check=True).stdout
    info = vagrant.parse_ssh_config(out)
    assert (info.host, info.port, info.user, info.key_path) == ("127.0.0.1", 2201, "vagrant",
                                                                "/Users/ana b/m/private_key")
