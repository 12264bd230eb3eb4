"""The pure-Python guest assembler's parts, held to the real tools as oracles: cpio newc (read
back by our reader and by bsdcpio), .deb reading (dpkg-deb builds the package), ELF needed
libraries (ldd), modules.dep (depmod on the same module tree), the boot-failure scan and the
guest init's data-disk classification."""

import glob
import gzip
import io
import os
import shutil
import stat
import subprocess

import pytest

from hostbridge.machines import driver
from hostbridge.machines.guestimage import assemble, cpio, deb, elf, kmod
from hostbridge.machines.guestimage.tree import Tree, canonical
from tests.unit.vm.test_vm_guest_init import load_init


def sample_archive():
    out = io.BytesIO()
    w = cpio.Writer(out)
    w.add(".", stat.S_IFDIR | 0o755)
    w.add("etc", stat.S_IFDIR | 0o755, mtime=1700000000)
    w.add("etc/hostname", stat.S_IFREG | 0o644, b"hostbridge\n", mtime=1700000001)
    w.add("bin", stat.S_IFDIR | 0o755)
    w.add("bin/tool", stat.S_IFREG | 0o4755, b"\x7fELF" + bytes(range(256)) * 3)
    w.add("bin/sh", stat.S_IFLNK | 0o777, b"tool")
    ino = w.add("bin/a", stat.S_IFREG | 0o755, b"shared", nlink=2)
    w.add("bin/b", stat.S_IFREG | 0o755, b"", ino=ino, nlink=2)
    w.add("dev", stat.S_IFDIR | 0o755)
    w.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    w.add("odd", stat.S_IFREG | 0o600, b"x" * 5)  # a length that needs padding
    w.close()
    return out.getvalue()


def test_cpio_newc_round_trips_through_our_reader():
    entries = {e.name: e for e in cpio.read(sample_archive())}
    assert list(entries) == [".", "etc", "etc/hostname", "bin", "bin/tool", "bin/sh", "bin/a", "bin/b", "dev",
                             "dev/console", "odd"]
    assert entries["etc/hostname"].data == b"hostbridge\n" and entries["etc/hostname"].mtime == 1700000001
    assert stat.S_IMODE(entries["bin/tool"].mode) == 0o4755
    assert stat.S_ISLNK(entries["bin/sh"].mode) and entries["bin/sh"].data == b"tool"
    assert entries["bin/a"].ino == entries["bin/b"].ino and entries["bin/a"].nlink == 2
    assert (entries["dev/console"].rdevmajor, entries["dev/console"].rdevminor) == (5, 1)
    assert all(e.uid == 0 and e.gid == 0 for e in entries.values())
    assert entries["odd"].data == b"xxxxx"


@pytest.mark.skipif(not shutil.which("bsdcpio"), reason="needs bsdcpio (libarchive-tools) as the oracle")
def test_cpio_newc_is_what_bsdcpio_reads(tmp_path):
    data = sample_archive()
    listing = subprocess.run(["bsdcpio", "-it"], input=data, capture_output=True, check=True).stdout.decode().split()
    assert listing == [".", "etc", "etc/hostname", "bin", "bin/tool", "bin/sh", "bin/a", "bin/b", "dev",
                       "dev/console", "odd"]
    out = tmp_path / "x"
    out.mkdir()
    # As a user: no device node, no owners; the files, modes and links must come out right.
    subprocess.run(["bsdcpio", "-id", "--no-preserve-owner"], input=data.replace(b"dev/console", b"dev/consolx"),
                   cwd=out, capture_output=True)
    assert (out / "etc" / "hostname").read_bytes() == b"hostbridge\n"
    assert os.readlink(out / "bin" / "sh") == "tool"
    assert (out / "bin" / "b").read_bytes() == b"shared" and os.stat(out / "bin" / "a").st_ino == \
        os.stat(out / "bin" / "b").st_ino
    assert stat.S_IMODE(os.stat(out / "bin" / "tool").st_mode) & 0o755 == 0o755


def test_cpio_reader_refuses_bad_and_truncated_archives():
    data = sample_archive()
    with pytest.raises(cpio.CpioError, match="bad magic"):
        list(cpio.read(b"070707" + data[6:]))
    with pytest.raises(cpio.CpioError):
        list(cpio.read(data[:200]))
    with pytest.raises(cpio.CpioError, match="duplicate"):
        w = cpio.Writer(io.BytesIO())
        w.add("a", stat.S_IFREG | 0o644)
        w.add("/a", stat.S_IFREG | 0o644)


@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="needs dpkg-deb to build the package")
@pytest.mark.parametrize("compression", ["xz", "gzip", "none"])
def test_deb_data_is_read_from_a_package_dpkg_deb_built(tmp_path, compression):
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: hb-test\nVersion: 1.0-1\nArchitecture: all\n"
                                             "Maintainer: t <t@example.org>\nDescription: test\n multi line\n")
    (root / "bin").mkdir()
    (root / "bin" / "hello").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "hello", 0o755)
    os.symlink("hello", root / "bin" / "hi")
    path = str(tmp_path / "hb-test.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Z" + compression, "--build", str(root), path], check=True,
                   capture_output=True)
    assert deb.control_fields(path)["Version"] == "1.0-1"
    tree = Tree()
    added = assemble.unpack(tree, path, "hb-test")
    assert "/usr/bin/hello" in added  # merged /usr, as an installed system has it
    assert tree.nodes["/usr/bin/hello"].data == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE(tree.nodes["/usr/bin/hello"].mode) == 0o755
    assert tree.resolve("/bin/hi") == "/usr/bin/hello"


def test_a_file_that_is_not_a_deb_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.deb"
    bad.write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(deb.DebError, match="not an ar archive"):
        deb.open_data_tar(str(bad))


def test_paths_are_canonical_and_merged_usr():
    assert canonical("./bin/sh") == "/usr/bin/sh"
    assert canonical("./lib/x86_64-linux-gnu/libc.so.6") == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    assert canonical("./usr/share/doc/x/../y") == "/usr/share/doc/y"
    assert canonical("./etc/ssh") == "/etc/ssh"


@pytest.mark.skipif(not shutil.which("ldd"), reason="needs ldd as the oracle")
@pytest.mark.parametrize("binary", ["/usr/bin/python3", "/usr/sbin/sshd", "/usr/bin/ssh"])
def test_elf_needed_libraries_are_what_the_dynamic_loader_loads(binary):
    if not os.path.exists(binary):
        pytest.skip("%s is not installed" % binary)
    with open(os.path.realpath(binary), "rb") as f:
        info = elf.dynamic_info(f.read())
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    loaded = {line.split()[0] for line in ldd.splitlines() if "=>" in line}
    assert info.needed and set(info.needed) <= loaded
    assert info.interpreter and info.interpreter in ldd


def test_a_static_binary_needs_nothing():
    busybox = shutil.which("busybox")
    if not busybox:
        pytest.skip("busybox is not installed")
    with open(busybox, "rb") as f:
        data = f.read()
    if elf.dynamic_info(data).needed:
        pytest.skip("this busybox is dynamically linked")
    assert elf.dynamic_info(data).interpreter is None


def test_elf_parsing_refuses_what_is_not_elf():
    with pytest.raises(elf.ELFError):
        elf.dynamic_info(b"MZ" + b"\0" * 100)


def kernel_deb():
    """A Debian kernel package: from HOSTBRIDGE_GUEST_DEBS or apt's cache, else the verified test
    cache of the guest's packages (filled from Debian's servers once, as the VM tier does)."""
    for d in filter(None, [os.environ.get("HOSTBRIDGE_GUEST_DEBS"), "/var/cache/apt/archives"]):
        found = sorted(glob.glob(os.path.join(d, "linux-image-[0-9]*.deb")))
        if found:
            return found[-1]
    from tests.vm.test_vm_guest_nonroot import guest_debs_cache

    guest_debs_cache()  # fills the cache; the .deb files there are named by their hash
    from hostbridge.machines import image
    from hostbridge.machines.debian import archive
    from hostbridge.machines.guestimage import assemble
    from tests.support.debmirror import test_cache_dir

    paths = archive.fetch_packages([assemble.KERNEL_META], image.debian_arch(),
                                   cache_dir=os.path.join(test_cache_dir(), "guest-debian"),
                                   exclude=assemble.EXCLUDE_PACKAGES)
    found = sorted(name for name in paths if name.startswith("linux-image-") and name[12:13].isdigit())
    return paths[found[-1]] if found else None


@pytest.fixture(scope="module")
def real_modules():
    """{relative path: bytes} of a Debian kernel package's modules (the selection we ship)."""
    path = kernel_deb()
    if path is None:
        pytest.skip("no linux-image .deb on this host (HOSTBRIDGE_GUEST_DEBS or apt's cache)")
    modules, release = {}, None
    with deb.open_data_tar(path) as tar:
        for m in tar:
            parts = canonical(m.name).split("/")
            if len(parts) > 5 and parts[3] == "modules" and m.isfile() and m.name.endswith(".ko"):
                release = parts[4]
                modules["/".join(parts[5:])] = tar.extractfile(m).read()
    return release, assemble.choose_modules(modules)


def test_module_selection_holds_what_a_vm_engine_loads_with_its_dependencies(real_modules):
    _, chosen = real_modules
    names = {kmod.module_name(p) for p in chosen}
    assert {"overlay", "veth", "bridge", "br_netfilter", "nf_tables", "virtio_net", "virtio_blk"} <= names
    infos = kmod.read_infos(chosen)
    for path, info in infos.items():  # closed under depends=
        assert set(info.get("depends", [])) <= names, path


@pytest.mark.skipif(not shutil.which("depmod") and not os.path.exists("/usr/sbin/depmod"),
                    reason="needs depmod (kmod) as the oracle")
def test_modules_dep_and_alias_are_what_depmod_writes(real_modules, tmp_path):
    release, chosen = real_modules
    base = tmp_path / "lib" / "modules" / release
    for rel, data in chosen.items():
        (base / os.path.dirname(rel)).mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    subprocess.run([shutil.which("depmod") or "/usr/sbin/depmod", "-b", str(tmp_path), release], check=True,
                   capture_output=True)
    infos = kmod.read_infos(chosen)

    def parse_dep(text):
        return {line.split(":")[0]: line.split(":")[1].split() for line in text.splitlines() if line}

    ours = parse_dep(kmod.modules_dep(infos))
    theirs = parse_dep((base / "modules.dep").read_text())
    assert set(ours) == set(theirs)
    for path in theirs:
        assert set(ours[path]) == set(theirs[path]), path
        # Loading ours from its end must respect every dependency, as depmod's does.
        order = list(reversed(ours[path]))
        for i, p in enumerate(order):
            assert set(kmod.dependency_lists(infos)[p]) <= set(order[:i]), (path, p)

    def aliases(text):
        return {tuple(line.split()[1:]) for line in text.splitlines() if line.startswith("alias ")}

    assert aliases(kmod.modules_alias(infos)) == aliases((base / "modules.alias").read_text())


def test_boot_failures_are_found_in_the_console_and_quoted():
    ok = "[    1.0] Linux version 6.1\nhostbridge-init [ 2.0] sshd started\n"
    assert driver.boot_failure(ok) is None
    panic = ok + "[    3.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\r\n"
    assert driver.boot_failure(panic) == "[    3.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"
    assert "Initramfs unpacking failed" in driver.boot_failure("[ 0.5] Initramfs unpacking failed: junk in compressed archive\n")
    disk = "hostbridge-init [ 9.0] HOSTBRIDGE-GUEST-ERROR: data disk: /dev/vda is neither blank nor ext4\n"
    err = driver.GuestBootError("dev", driver.boot_failure(disk), "/m/disk.qcow2")
    assert "the guest failed to boot: HOSTBRIDGE-GUEST-ERROR: data disk" in err.message
    assert "hostbridge destroy --machine dev" in err.hint and "/m/disk.qcow2" in err.hint


def test_the_guest_init_formats_only_a_blank_data_disk():
    init = load_init()
    assert init.ERROR_MARK == driver.GUEST_ERROR_MARK
    assert init.classify_disk(b"\0" * (1 << 20)) == "blank"
    sb = bytearray(1 << 20)
    sb[1080:1082] = b"\x53\xef"
    assert init.classify_disk(bytes(sb)) == "ext4"
    assert init.classify_disk(b"\0" * 512 + b"garbage" + b"\0" * 4096) == "unknown"


def test_the_guest_init_checks_only_a_data_disk_not_cleanly_unmounted(tmp_path):
    """The superblock's clean flag as mke2fs and a clean unmount leave it, and what the kernel
    leaves while mounted or on errors (the real mke2fs and debugfs are the oracles)."""
    init = load_init()
    img = str(tmp_path / "disk.img")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", img], check=True)
    with open(img, "rb") as f:
        head = f.read(1 << 20)
    assert init.classify_disk(head) == "ext4" and init.cleanly_unmounted(head)
    sb = bytearray(head)
    sb[1120] |= 4  # needs_recovery: mounted, or not unmounted cleanly
    assert not init.cleanly_unmounted(bytes(sb))
    sb = bytearray(head)
    sb[1082] = 2 | 1  # errors found by the kernel
    assert not init.cleanly_unmounted(bytes(sb))
    sb[1082] = 0  # not valid
    assert not init.cleanly_unmounted(bytes(sb))
    subprocess.run(["debugfs", "-w", "-R", "feature needs_recovery", img], check=True, capture_output=True)
    with open(img, "rb") as f:
        assert not init.cleanly_unmounted(f.read(1 << 20))


def test_vmlinux_extraction_and_compaction_refuse_what_is_not_a_kernel():
    with pytest.raises(assemble.AssemblyError, match="no xz payload"):
        assemble.extract_vmlinux(b"MZ" + b"\0" * 4096)
    import lzma
    with pytest.raises(assemble.AssemblyError, match="not an ELF"):
        assemble.extract_vmlinux(b"MZ" + lzma.compress(b"not elf", format=lzma.FORMAT_XZ))


def test_initrd_of_a_tree_is_gzip_newc_with_root_owned_entries(tmp_path):
    tree = Tree()
    tree.file("/etc/hostname", b"hb\n")
    tree.symlink("/usr/bin/sh", "dash")
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        tree.write_cpio(gz)
    entries = {e.name: e for e in cpio.read(gzip.decompress(raw.getvalue()))}
    assert entries["etc/hostname"].data == b"hb\n"
    assert stat.S_ISLNK(entries["bin"].mode) and entries["bin"].data == b"usr/bin"
    assert entries["usr/bin/sh"].data == b"dash"


@pytest.mark.skipif(__import__("sys").version_info[:2] != assemble.GUEST_PYTHON, reason="needs the guest's Python")
def test_precompiled_modules_load_without_their_source_being_checked(tmp_path):
    """They are below IMAGE_PYCACHE, where the guest's Python looks with it as its pycache
    prefix (the init's -X pycache_prefix; the data disk's stdlib tree links there)."""
    import subprocess
    import sys

    tree = Tree()
    lib = "/usr/lib/python3.11/json/"
    tree.file(lib + "__init__.py", b"WHO = 'compiled'\n")
    tree.file("/usr/lib/python3.11/unrelated.py", b"X = 1\n")
    assert assemble.precompile(tree) == 1
    pyc = assemble.IMAGE_PYCACHE + lib + "__init__.cpython-311.pyc"
    assert pyc in tree.nodes and not [p for p in tree.nodes if "unrelated" in p and p.endswith(".pyc")]
    assert not [p for p in tree.nodes if "__pycache__" in p]
    pkg, prefix = tmp_path / "json_copy", tmp_path / "prefix"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("WHO = 'source'\n")  # another source, another mtime: the .pyc still serves
    placed = prefix / str(pkg).lstrip("/") / "__init__.cpython-311.pyc"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(tree.nodes[pyc].data)
    code = "import sys; sys.path.insert(0, %r); import json_copy; print(json_copy.WHO)" % str(tmp_path)
    out = subprocess.run([sys.executable, "-I", "-S", "-B", "-X", "pycache_prefix=%s" % prefix, "-c", code],
                         capture_output=True, text=True, check=True).stdout
    assert out == "compiled\n"


@pytest.mark.skipif(__import__("sys").version_info[:2] != assemble.GUEST_PYTHON, reason="needs the guest's Python")
def test_the_guest_init_is_compiled_ahead_and_runs_from_its_pyc(tmp_path):
    import subprocess
    import sys

    tree = Tree()
    tree.file(assemble.INIT, b"#!/usr/bin/python3 -IS\nimport sys\nprint('init', __name__, sys.flags.isolated)\n", 0o755)
    assert assemble.precompile(tree) == 1
    pyc = tmp_path / "hostbridge-init.pyc"
    pyc.write_bytes(tree.nodes[assemble.INIT_PYC].data)
    out = subprocess.run([sys.executable, "-IS", str(pyc)], capture_output=True, text=True, check=True).stdout
    assert out == "init __main__ 1\n"
    assert assemble.precompile(Tree()) == 0  # no init, no pyc


def _loaded(image):
    """What an ELF loader puts in memory for ``image``: {paddr: byte run}, zero-filled to MemSiz,
    merged into one bytes object per contiguous range; and the PT_NOTE bytes."""
    import struct

    phoff, = struct.unpack_from("<Q", image, 32)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    mem, notes = bytearray(), []
    for i in range(phnum):
        ptype, _, off, _, paddr, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", image, phoff + i * phentsize)
        if ptype == 1:
            mem.extend(b"\0" * max(0, paddr + memsz - len(mem)))
            mem[paddr:paddr + memsz] = image[off:off + filesz] + b"\0" * (memsz - filesz)
        else:
            notes.append(image[off:off + filesz])
    return bytes(mem), notes


def test_a_kernel_is_compacted_to_what_its_loader_puts_in_memory():
    import struct

    page = 4096
    text = b"\x90" * page * 3 + b"\0" * page * 20 + b"rodata" + b"\0" * (page - 6) + b"NOTE" * 8 + b"\xcc" * page
    note_off = 24 * page
    data = bytearray(page) + text
    struct.pack_into("<4sBBBB", data, 0, b"\x7fELF", 2, 1, 1, 0)
    struct.pack_into("<HHIQQQIHHHHHH", data, 16, 2, 62, 1, 0x1000, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    struct.pack_into("<IIQQQQQQ", data, 64, 1, 5, page, 0x1000, 0x1000, len(text), len(text) + 8 * page, 0x200000)
    struct.pack_into("<IIQQQQQQ", data, 120, 4, 4, page + note_off, 0x1000 + note_off, 0x1000 + note_off, 32, 32, 4)
    small = elf.loadable_only(bytes(data), min_gap=16 * page)
    assert len(small) < len(data) - 19 * page  # the 20 zero pages in the middle are not in the file
    assert struct.unpack_from("<H", small, 56)[0] == 3  # two PT_LOADs and the note
    assert _loaded(small) == _loaded(bytes(data))
    assert _loaded(small)[1] == [b"NOTE" * 8]
    # A gap shorter than min_gap stays in the file: one PT_LOAD.
    assert struct.unpack_from("<H", elf.loadable_only(bytes(data), min_gap=32 * page), 56)[0] == 2


def test_module_signatures_are_stripped_to_the_module_as_it_was_before_signing(real_modules, tmp_path):
    _, chosen = real_modules
    signed = {p: d for p, d in chosen.items() if d.endswith(kmod.SIGNATURE_MARK)}
    assert signed, "Debian's modules are signed: the package should hold some"
    for path, data in signed.items():
        stripped = kmod.strip_signature(data)
        assert not stripped.endswith(kmod.SIGNATURE_MARK), path
        assert data.startswith(stripped) and len(data) - len(stripped) > len(kmod.SIGNATURE_MARK) + 12, path
        assert elf.modinfo(stripped) == elf.modinfo(data), path  # the module itself is untouched
    modinfo = shutil.which("modinfo") or ("/usr/sbin/modinfo" if os.path.exists("/usr/sbin/modinfo") else None)
    if modinfo:  # kmod as the oracle: it reads a signer from the original, none from ours
        path, data = sorted(signed.items())[0]
        (tmp_path / "signed.ko").write_bytes(data)
        (tmp_path / "stripped.ko").write_bytes(kmod.strip_signature(data))
        signer = [subprocess.run([modinfo, "-F", "signer", str(tmp_path / name)], capture_output=True, text=True,
                                 check=True).stdout.strip() for name in ("signed.ko", "stripped.ko")]
        assert signer[0] and signer[1] == ""


def test_a_module_without_a_whole_signature_is_left_as_it_is():
    assert kmod.strip_signature(b"\x7fELF-no-signature") == b"\x7fELF-no-signature"
    assert kmod.strip_signature(kmod.SIGNATURE_MARK) == kmod.SIGNATURE_MARK
    bogus = b"\x7fELF" + kmod.SIGNATURE_INFO.pack(0, 0, 2, 0, 0, 1 << 30) + kmod.SIGNATURE_MARK
    assert kmod.strip_signature(bogus) == bogus  # a length beyond the file: not a signature
    ok = b"\x7fELF" + b"S" * 5 + kmod.SIGNATURE_INFO.pack(0, 0, 2, 0, 0, 5) + kmod.SIGNATURE_MARK
    assert kmod.strip_signature(ok) == b"\x7fELF"


def test_the_module_loader_link_is_left_to_the_guest_boot():
    """The kernel's initcalls ask /sbin/modprobe for built-in crypto before /init (~0.2 s under
    emulation): the image leaves that link out and the initramfs' /init makes it, first thing,
    as the image would have it (the VM tier boots it: its modules load through it)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    files = assemble.read_provision(os.path.join(repo, "provision"))
    tree = Tree()
    tree.file("/usr/bin/busybox", b"\x7fELF", 0o755)
    assemble.configure(tree, files, "12")
    assert tree.resolve("/usr/sbin/insmod") and tree.nodes["/usr/sbin/insmod"].data == b"../bin/busybox"
    init = files["initramfs-init.sh"].decode().splitlines()
    first_command = next(i for i, line in enumerate(init) if line.startswith("$bb "))
    for path in assemble.LINKED_AT_BOOT:
        assert not tree.resolve(path)
        assert init[first_command] == '$bb ln -sf ../bin/busybox %s || fail "cannot link %s"' % (path, path)
        first_command += 1
