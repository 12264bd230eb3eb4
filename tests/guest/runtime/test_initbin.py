"""Finding --init's binary: only a static ELF for this machine will do (unit tier, no root)."""

from __future__ import annotations

import os
import struct

import pytest

from hostbridge.guest.errors import NotFound
from hostbridge.guest.runtime import initbin

# e_machine by the ELF spec, a fixed table (not the code under test reading its own binary)
OWN_MACHINE = {"x86_64": 62, "aarch64": 183}[os.uname().machine]


def write_elf(path, interp=False, machine=OWN_MACHINE, wide=True, big=False, e_type=2, mode=0o755):
    """A minimal ELF executable header with a PT_LOAD (and a PT_INTERP when ``interp``)."""
    end = ">" if big else "<"
    types = [6, 3, 1] if interp else [6, 1]  # PT_PHDR, (PT_INTERP,) PT_LOAD
    if wide:
        phentsize, ehsize = 56, 64
        head = struct.pack(end + "HHIQQQIHHHHHH", e_type, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize,
                           len(types), 0, 0, 0)
    else:
        phentsize, ehsize = 32, 52
        head = struct.pack(end + "HHIIIIIHHHHHH", e_type, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize,
                           len(types), 0, 0, 0)
    ident = b"\x7fELF" + bytes([2 if wide else 1, 2 if big else 1, 1]) + b"\0" * 9
    phdrs = b"".join(struct.pack(end + "I", t) + b"\0" * (phentsize - 4) for t in types)
    with open(path, "wb") as f:
        f.write(ident + head + phdrs)
    os.chmod(path, mode)
    return str(path)


def test_static_elf_is_usable_in_every_layout(tmp_path):
    for wide in (True, False):
        for big in (False, True):
            p = write_elf(tmp_path / ("s%d%d" % (wide, big)), wide=wide, big=big)
            assert initbin.why_unusable(p) is None, (wide, big)
    assert initbin.why_unusable(write_elf(tmp_path / "pie", e_type=3)) is None  # static-pie


def test_dynamic_foreign_and_non_elf_files_are_refused(tmp_path):
    assert "dynamically linked" in initbin.why_unusable(write_elf(tmp_path / "dyn", interp=True))
    assert "another architecture" in initbin.why_unusable(write_elf(tmp_path / "arm", machine=OWN_MACHINE + 1))
    assert "not an executable ELF" in initbin.why_unusable(write_elf(tmp_path / "obj", e_type=1))
    assert "not executable" in initbin.why_unusable(write_elf(tmp_path / "noexec", mode=0o644))
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexec tini \"$@\"\n")
    script.chmod(0o755)
    assert "not an executable ELF" in initbin.why_unusable(str(script))
    trunc = tmp_path / "trunc"
    trunc.write_bytes(open(write_elf(tmp_path / "full"), "rb").read()[:70])
    trunc.chmod(0o755)
    assert "truncated" in initbin.why_unusable(str(trunc))
    assert "does not exist" in initbin.why_unusable(str(tmp_path / "none"))
    assert "not a regular file" in initbin.why_unusable(str(tmp_path))


def test_search_prefers_names_in_order_and_skips_dynamic_ones(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_elf(a / "docker-init", interp=True)  # dynamic: skipped, although named first
    write_elf(b / "tini", interp=False)
    write_elf(b / "tini-static")
    found = initbin.find(dirs=[str(a), str(b)])
    assert found.path == str(b / "tini-static")
    os.unlink(b / "tini-static")
    assert initbin.find(dirs=[str(a), str(b)]).path == str(b / "tini")
    os.unlink(b / "tini")
    with pytest.raises(NotFound, match="no static docker-init or tini-static or tini found.*dynamically linked"):
        initbin.find(dirs=[str(a), str(b)])


def test_search_follows_symlinks_and_keeps_the_found_name(tmp_path):
    real = write_elf(tmp_path / "tini-static")
    os.symlink("tini-static", tmp_path / "docker-init")  # Debian's docker.io: docker-init -> tini-static
    assert initbin.find(dirs=[str(tmp_path)]).path == str(tmp_path / "docker-init")
    os.unlink(real)  # a dangling link is no binary
    with pytest.raises(NotFound, match="docker-init does not exist"):
        initbin.find(dirs=[str(tmp_path)])


def test_configured_path_is_the_only_one_tried(tmp_path):
    write_elf(tmp_path / "tini-static")
    with pytest.raises(NotFound, match="init path: .*/nope does not exist"):
        initbin.find(str(tmp_path / "nope"), dirs=[str(tmp_path)])
    with pytest.raises(NotFound, match="dynamically linked"):
        initbin.find(write_elf(tmp_path / "dyn", interp=True))
    own = write_elf(tmp_path / "my-init")
    assert initbin.find(own).path == own


def test_selector_looks_again_when_the_binary_goes_or_comes(tmp_path):
    sel = initbin.Selector(str(tmp_path / "init"))
    assert sel.binary() is None and "does not exist" in sel.reason
    write_elf(tmp_path / "init")
    assert sel.binary().path == str(tmp_path / "init") and sel.reason == ""
    os.unlink(tmp_path / "init")
    assert sel.binary() is None and "does not exist" in sel.reason


def test_version_parse_as_dockerd():
    assert initbin.parse_version("tini version 0.18.0 - git.fec3683\n") == ("0.18.0", "fec3683")
    assert initbin.parse_version("tini version 0.19.0\n") == ("0.19.0", "")  # Debian's build
    assert initbin.parse_version("usage: foo") == ("", None)


def test_version_of_a_binary_that_prints_none_is_na(tmp_path):
    b = initbin.InitBinary(write_elf(tmp_path / "init"))  # not runnable: exec fails
    assert b.commit == "N/A" and b.version == ""


def test_command_and_mount_are_dockers():
    assert initbin.command(["sh", "-c", "x"]) == ["/sbin/docker-init", "--", "sh", "-c", "x"]
    assert initbin.bind_mount("/usr/bin/tini-static") == {
        "type": "bind", "source": "/usr/bin/tini-static", "destination": "/sbin/docker-init", "options": ["bind", "ro"]}
