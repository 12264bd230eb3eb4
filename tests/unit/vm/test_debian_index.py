"""Package indexes: parsing a Packages file, merging suites, and the dependency closure."""

import pytest

from hostbridge.errors import ArchiveError
from hostbridge.machines.debian.index import closure, merge, parse_packages


def _para(name, version="1.0", depends="", pre="", provides=""):
    lines = ["Package: %s" % name, "Version: %s" % version, "Architecture: amd64",
             "Filename: pool/main/%s/%s_%s_amd64.deb" % (name[0], name, version),
             "SHA256: %s" % ("ab" * 32), "Size: 100", "Description: %s\n some text" % name]
    for field, value in (("Depends", depends), ("Pre-Depends", pre), ("Provides", provides)):
        if value:
            lines.append("%s: %s" % (field, value))
    return "\n".join(lines) + "\n"


INDEX_TEXT = "\n".join([
    _para("app", depends="libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, mta | postfix", pre="dpkg (>= 1.19)"),
    _para("libc6", "2.36-9", depends="libgcc-s1"),
    _para("libgcc-s1", "12.2.0-14", depends="gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)"),
    _para("gcc-12-base", "12.2.0-14"),
    _para("dpkg", "1.21.22", depends="tar (>= 1.28-1)"),
    _para("tar", "1.34"),
    _para("debconf", "1.5.82", provides="debconf-2.0"),
    _para("cdebconf", "0.270", provides="debconf-2.0"),
    _para("exim4", "4.96", provides="mta", depends="perl-base"),
    _para("postfix", "3.7", provides="mta"),
    _para("perl-base", "5.36"),
    _para("python3", "3.11.2-1", depends="python3-minimal (= 3.11.2-1)"),
    _para("python3-minimal", "3.11.2-1"),
    _para("tool", depends="python3:any (>= 3.9~), awk"),
    _para("mawk", "1.3.4", provides="awk"),
    _para("needs-new", depends="libc6 (>= 3.0)"),
    _para("needs-virtual-version", depends="libfoo-abi (>= 2)"),
    _para("libfoo", "2.0", provides="libfoo-abi (= 2)"),
    _para("dup", "1.0"),
    _para("dup", "2.0"),
])


@pytest.fixture
def index():
    return parse_packages(INDEX_TEXT, "http://127.0.0.1/debian")


def test_parse_packages_fields(index):
    app = index["app"]
    assert (app.name, app.version, app.arch, app.size, app.sha256) == ("app", "1.0", "amd64", 100, "ab" * 32)
    assert app.url == "http://127.0.0.1/debian/pool/main/a/app_1.0_amd64.deb"
    # Pre-Depends come first, then Depends
    assert [[r.name for r in g] for g in app.depends] == [["dpkg"], ["libc6"], ["debconf", "debconf-2.0"],
                                                          ["mta", "postfix"]]
    assert [(r.name, r.version) for r in index["libfoo"].provides] == [("libfoo-abi", "2")]
    assert index["dup"].version == "2.0"  # the highest of two entries


def test_malformed_entry_is_an_error():
    with pytest.raises(ArchiveError, match="malformed Packages entry x"):
        parse_packages("Package: x\nVersion: 1\n")


def test_closure_follows_depends_and_pre_depends(index):
    names = [p.name for p in closure(index, ["app"], exclude=["debconf"])]
    assert names[0] == "app"
    assert set(names) == {"app", "dpkg", "libc6", "tar", "libgcc-s1", "gcc-12-base", "exim4", "perl-base"}


def test_closure_excluded_packages_and_what_only_they_need_are_left_out(index):
    names = {p.name for p in closure(index, ["app"], exclude=["debconf", "perl-base", "mta"])}
    # "debconf | debconf-2.0" is skipped (its first choice is excluded): cdebconf is not pulled in
    assert "cdebconf" not in names and "debconf" not in names
    # "mta | postfix": the virtual mta is excluded, so the whole group is skipped
    assert "postfix" not in names and "exim4" not in names and "perl-base" not in names


def test_closure_first_satisfiable_alternative_and_virtuals(index):
    names = {p.name for p in closure(index, ["app"], exclude=["exim4"])}
    # mta's only other provider is postfix; debconf-2.0 is satisfied by debconf itself
    assert {"postfix", "debconf"} <= names and "cdebconf" not in names
    assert {p.name for p in closure(index, ["tool"])} == {"tool", "python3", "python3-minimal", "mawk"}
    assert {p.name for p in closure(index, ["needs-virtual-version"])} == {"needs-virtual-version", "libfoo"}
    assert [p.name for p in closure(index, ["awk"])] == ["mawk"]  # a virtual name asked for directly


def test_closure_errors(index):
    with pytest.raises(ArchiveError, match="no such package: nope"):
        closure(index, ["nope"])
    with pytest.raises(ArchiveError, match=r"needs-new 1.0 depends on libc6 \(>= 3.0\)"):
        closure(index, ["needs-new"])


def test_merge_takes_the_highest_version(index):
    updates = parse_packages(_para("libc6", "2.36-9+deb12u14") + "\n" + _para("tar", "1.30"), "http://127.0.0.1/sec")
    merged = merge(index, updates)
    assert merged["libc6"].version == "2.36-9+deb12u14" and merged["libc6"].mirror == "http://127.0.0.1/sec"
    assert merged["tar"].version == "1.34" and merged["tar"].mirror == "http://127.0.0.1/debian"
    assert len(merged) == len(index)


def test_default_mirror_and_sources(tmp_path):
    from hostbridge import config
    from hostbridge.machines.debian.archive import default_mirror, default_sources, security_mirror

    cfg = config.load(environ={"HOSTBRIDGE_VM_MIRROR": "http://127.0.0.1:3142/debian/"}, path=str(tmp_path / "none"))
    assert default_mirror(cfg) == "http://127.0.0.1:3142/debian"
    assert security_mirror("http://ftp.fr.debian.org/debian") == "http://ftp.fr.debian.org/debian-security"
    assert security_mirror("http://mirror.example/deb") == "http://deb.debian.org/debian-security"
    assert default_sources("http://m/debian", "trixie") == [("http://m/debian-security", "trixie-security"),
                                                            ("http://m/debian", "trixie-updates")]
