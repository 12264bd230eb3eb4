"""hostbridge.resources in a checkout (the wheel's layout is tests/packaging/test_wheel.py's)."""

import os

import pytest

from hostbridge import resources
from hostbridge.errors import HostbridgeError
from tests.support.hbhome import REPO


def test_a_checkout_uses_its_top_level_provision_and_vagrantfile():
    assert resources.provision_dir() == os.path.join(REPO, "provision")
    assert resources.vagrantfile() == os.path.join(REPO, "Vagrantfile")


def test_packaged_files_win_over_the_checkout(tmp_path, monkeypatch):
    pkg = tmp_path / "hostbridge"
    (pkg / "_provision").mkdir(parents=True)
    (pkg / "_provision" / "bootstrap.sh").write_text("#!/bin/sh\n")
    (pkg / "_provision" / "Vagrantfile").write_text("# -*- mode: ruby -*-\n")
    monkeypatch.setattr(resources.resources, "files", lambda name: pkg)
    assert resources.provision_dir() == str(pkg / "_provision")
    assert resources.vagrantfile() == str(pkg / "_provision" / "Vagrantfile")


def test_neither_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(resources.resources, "files", lambda name: tmp_path)
    monkeypatch.setattr(resources, "CHECKOUT", str(tmp_path))
    with pytest.raises(HostbridgeError, match="provision files are missing") as err:
        resources.provision_dir()
    assert "\n" not in str(err.value) and err.value.hint == "reinstall hostbridge"
