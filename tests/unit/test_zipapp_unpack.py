"""The engine zipapp unpacks itself once beside the archive, so its modules are compiled once."""

import os
import subprocess
import sys

from hostbridge import deploy


def _run(pyz, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    return subprocess.run([sys.executable, "-S", pyz] + list(args), capture_output=True, text=True, env=env,
                          timeout=60)


def test_runs_from_an_unpacked_copy_that_keeps_compiled_modules(tmp_path):
    pyz = deploy.build_zipapp(str(tmp_path))
    unpacked = os.path.join(str(tmp_path), "." + os.path.basename(pyz) + ".d")
    r = _run(pyz, "version")
    assert r.returncode == 0 and r.stdout.startswith("hostbridge-engine "), r.stderr
    assert os.path.isfile(os.path.join(unpacked, "hostbridge", "guest", "__main__.py"))
    pycs = [f for _, _, files in os.walk(unpacked) for f in files if f.endswith(".pyc")]
    assert pycs, "no compiled module was kept beside the unpacked engine"
    stamp = open(os.path.join(unpacked, ".stamp")).read()
    st = os.stat(pyz)
    assert stamp == "%d %d\n" % (st.st_size, st.st_mtime_ns)
    # A second start reuses the copy: the stamp file is the same inode.
    ino = os.stat(os.path.join(unpacked, ".stamp")).st_ino
    assert _run(pyz, "version").returncode == 0
    assert os.stat(os.path.join(unpacked, ".stamp")).st_ino == ino


def test_a_replaced_archive_is_unpacked_again(tmp_path):
    pyz = deploy.build_zipapp(str(tmp_path))
    assert _run(pyz, "version").returncode == 0
    unpacked = os.path.join(str(tmp_path), "." + os.path.basename(pyz) + ".d")
    marker = os.path.join(unpacked, "left-over")
    open(marker, "w").close()
    os.utime(pyz, ns=(0, os.stat(pyz).st_mtime_ns + 10**9))  # an upgrade writes a new archive
    r = _run(pyz, "version")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(marker)
    assert not [n for n in os.listdir(str(tmp_path)) if ".tmp" in n or ".old" in n]


def _pycs(top):
    return {os.path.relpath(os.path.join(d, f), top): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(top) for f in files if f.endswith(".pyc")}


def test_the_archive_carries_the_engine_compiled_and_a_link_shares_the_unpacked_copy(tmp_path):
    pyz = deploy.build_zipapp(str(tmp_path))
    link = os.path.join(str(tmp_path), "engine.pyz")  # as the guest's init script runs it
    os.symlink(os.path.basename(pyz), link)
    unpacked = os.path.join(str(tmp_path), "." + os.path.basename(pyz) + ".d")
    r = _run(link, "version")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(str(tmp_path), ".engine.pyz.d"))  # one copy, for both names
    tag = sys.implementation.cache_tag
    main_pyc = os.path.join("hostbridge", "guest", "__pycache__", "__main__.%s.pyc" % tag)
    pycs = _pycs(unpacked)
    assert main_pyc in pycs
    # Checked-hash .pyc files (flags 0b11), so Python used them as shipped rather than compiling anew.
    assert int.from_bytes(pycs[main_pyc][4:8], "little") == 3


def test_compiled_modules_are_placed_under_the_pycache_prefix_once(tmp_path):
    pyz = deploy.build_zipapp(str(tmp_path / "app"))
    prefix = str(tmp_path / "pycache")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = prefix
    r = subprocess.run([sys.executable, "-S", pyz, "version"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    unpacked = os.path.join(str(tmp_path / "app"), "." + os.path.basename(pyz) + ".d")
    placed = os.path.join(prefix, unpacked.lstrip(os.sep))
    tag = sys.implementation.cache_tag
    rel = os.path.join("hostbridge", "guest", "engine.%s.pyc" % tag)
    import zipfile
    with zipfile.ZipFile(pyz) as zf:
        shipped = zf.read("hostbridge/guest/__pycache__/engine.%s.pyc" % tag)
    with open(os.path.join(placed, rel), "rb") as f:
        assert f.read() == shipped
    # Written once, where Python looks for it: not beside the sources as well.
    assert not os.path.exists(os.path.join(unpacked, "hostbridge", "guest", "__pycache__", "engine.%s.pyc" % tag))
    assert open(os.path.join(placed, ".placed")).read() == open(os.path.join(unpacked, ".stamp")).read()
    os.utime(os.path.join(placed, rel), ns=(0, 10**9))
    assert subprocess.run([sys.executable, "-S", pyz, "version"], env=env, capture_output=True,
                          timeout=60).returncode == 0
    assert os.stat(os.path.join(placed, rel)).st_mtime_ns == 10**9  # not copied again
    # A cleared prefix (the unpacked copy kept) gets them again from the archive.
    import shutil
    shutil.rmtree(prefix)
    r = subprocess.run([sys.executable, "-S", pyz, "version"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(placed, rel), "rb") as f:
        assert f.read() == shipped


def test_a_prefix_that_cannot_be_written_still_runs_the_engine_from_its_unpacked_copy(tmp_path):
    pyz = deploy.build_zipapp(str(tmp_path / "app"))
    blocker = tmp_path / "pycache"
    blocker.write_text("a file where the prefix's directory would be")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(blocker)
    r = subprocess.run([sys.executable, "-S", pyz, "version"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("hostbridge-engine "), r.stderr
    unpacked = os.path.join(str(tmp_path / "app"), "." + os.path.basename(pyz) + ".d")
    assert os.path.isfile(os.path.join(unpacked, ".stamp"))


def test_a_start_under_a_prefix_without_this_pythons_modules_opens_no_archive(tmp_path):
    # An archive with no compiled modules for this Python (a host of another Python): the guest
    # compiles them below the prefix, and a later start neither places nor unpacks anything.
    pyz = deploy.build_zipapp(str(tmp_path / "app"), compile_here=False)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    assert subprocess.run([sys.executable, "-S", pyz, "version"], env=env, capture_output=True,
                          timeout=60).returncode == 0
    unpacked = os.path.join(str(tmp_path / "app"), "." + os.path.basename(pyz) + ".d")
    assert not os.path.exists(os.path.join(str(tmp_path / "pycache"), unpacked.lstrip(os.sep), ".placed"))
    r = subprocess.run([sys.executable, "-S", "-X", "importtime", pyz, "version"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "hostbridge.guest.__main__" in imported and "zipfile" not in imported


def test_the_first_start_unpacks_every_file_as_zipfile_reads_it_without_importing_zipfile(tmp_path):
    import zipfile
    pyz = deploy.build_zipapp(str(tmp_path))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    r = subprocess.run([sys.executable, "-S", "-X", "importtime", pyz, "version"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "hostbridge.guest.__main__" in imported and "zipfile" not in imported
    unpacked = os.path.join(str(tmp_path), "." + os.path.basename(pyz) + ".d")
    with zipfile.ZipFile(pyz) as zf:
        for name in zf.namelist():
            with open(os.path.join(unpacked, name), "rb") as f:
                assert f.read() == zf.read(name), name


def test_the_init_scripts_boot_runs_the_zipapp_without_runpy_nor_compiling_its_main(tmp_path):
    import re
    import zipimport
    with open(os.path.join(os.path.dirname(deploy.__file__), os.pardir, "provision", "hostbridge.initd")) as f:
        boot = re.search(r"^BOOT='(.*)'$", f.read(), re.M).group(1)
    pyz = deploy.build_zipapp(str(tmp_path))
    link = os.path.join(str(tmp_path), "engine.pyz")
    os.symlink(os.path.basename(pyz), link)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    for _ in range(2):  # unpacking, then from the unpacked copy
        r = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", boot, link, "version"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.startswith("hostbridge-engine "), r.stderr
        imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
        assert "hostbridge.guest.__main__" in imported and not imported & {"runpy", "importlib.util", "zipfile"}
    assert os.path.isdir(os.path.join(str(tmp_path), "." + os.path.basename(pyz) + ".d"))
    # __main__ comes compiled (zipimport would compile the source at every start)
    assert zipimport.zipimporter(pyz).get_code("__main__").co_filename == "__main__.py"


class _LocalShell:
    """Runs deploy's far-side commands in a local shell (the far side is this host here)."""

    class target:
        hostname = "localhost"

    def run(self, command, stdin=b"", timeout=60):
        r = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr


def test_modules_compiled_by_one_far_side_are_valid_in_the_next(tmp_path):
    """A host whose Python is not the guest's: the first guest compiles the engine, the host keeps
    that, the next machine's zipapp ships it and its Python imports it without compiling."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    first = deploy.build_zipapp(str(tmp_path / "first"), compile_here=False)  # as if no Python of ours
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pfx1")
    assert subprocess.run([sys.executable, "-S", first, "version"], env=env, capture_output=True,
                          timeout=60).returncode == 0
    layout = deploy.Layout(dir=str(tmp_path / "first"), root="/r", socket="/s", pidfile="/p", log="/l",
                           version=deploy.engine_version())
    kept = str(tmp_path / "kept")
    n = deploy.harvest_pycs(_LocalShell(), layout, str(tmp_path / "pfx1"), kept)
    assert n >= 3  # `version` imports a few modules: __init__, guest/__init__, guest/__main__
    tag = sys.implementation.cache_tag
    assert os.path.isfile(os.path.join(kept, "hostbridge", "guest", "__pycache__", "__main__.%s.pyc" % tag))
    second = deploy.build_zipapp(str(tmp_path / "second"), pyc_dirs=[kept], compile_here=False)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pfx2")
    r = subprocess.run([sys.executable, "-S", "-v", second, "version"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    compiled = [ln for ln in r.stderr.splitlines() if ln.startswith("# created") and "hostbridge" in ln]
    assert not compiled, compiled[:3]
    # Once this host's own compiled modules ship (the same Python as the far side): nothing to keep.
    assert deploy.harvest_pycs(_LocalShell(), layout, str(tmp_path / "pfx2"), str(tmp_path / "none")) == 0


def test_the_hosts_compiled_engine_is_kept_once_and_shipped_as_compiled_here(tmp_path):
    kept = deploy.compile_pycs(str(tmp_path / "kept"))
    tag = sys.implementation.cache_tag
    main = os.path.join(kept, "hostbridge", "guest", "__pycache__", "__main__.%s.pyc" % tag)
    os.utime(main, ns=(0, 10**9))
    assert deploy.compile_pycs(kept) == kept and os.stat(main).st_mtime_ns == 10**9  # not compiled again
    import zipfile
    a = deploy.build_zipapp(str(tmp_path / "a"))
    b = deploy.build_zipapp(str(tmp_path / "b"), pyc_dirs=[kept], compile_here=False)
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        assert sorted(za.namelist()) == sorted(zb.namelist())
        assert za.read("hostbridge/guest/__pycache__/__main__.%s.pyc" % tag) == zb.read(
            "hostbridge/guest/__pycache__/__main__.%s.pyc" % tag)


def test_only_the_named_pythons_compiled_modules_are_shipped(tmp_path):
    """The QEMU guest's Python is known: another one's modules (this host's, when it is not the
    guest's) would only be unpacked there for nothing."""
    import shutil
    import zipfile

    kept = deploy.compile_pycs(str(tmp_path / "kept"))
    tag = sys.implementation.cache_tag
    for top, _dirs, files in os.walk(kept):  # as if another Python's had been kept beside
        for fn in [f for f in files if f.endswith(".%s.pyc" % tag)]:
            shutil.copy(os.path.join(top, fn), os.path.join(top, fn.replace(tag, "cpython-399")))
    pyz = deploy.build_zipapp(str(tmp_path / "a"), pyc_dirs=[kept], compile_here=False, tags={"cpython-399"})
    with zipfile.ZipFile(pyz) as z:
        pycs = [n for n in z.namelist() if n.endswith(".pyc") and n.startswith("hostbridge/")]
    assert pycs and all(n.endswith(".cpython-399.pyc") for n in pycs)
    everything = deploy.build_zipapp(str(tmp_path / "b"), pyc_dirs=[kept], compile_here=False)
    with zipfile.ZipFile(everything) as z:
        assert {n.rsplit(".", 2)[-2] for n in z.namelist() if n.endswith(".pyc")} >= {tag, "cpython-399"}


def test_a_start_from_a_fresh_copy_imports_no_unpacking_module(tmp_path):
    # zipfile and its imports cost a fair part of the engine's start in an emulated guest:
    # only a start that unpacks needs them.
    pyz = deploy.build_zipapp(str(tmp_path))
    assert _run(pyz, "version").returncode == 0
    r = _run("-X", "importtime", pyz, "version")
    assert r.returncode == 0, r.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "hostbridge.guest.__main__" in imported
    assert "zipfile" not in imported
