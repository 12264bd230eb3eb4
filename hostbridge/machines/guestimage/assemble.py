"""Assemble the QEMU guest from Debian .deb files: a kernel and one gzip'd newc initramfs.

The recipe: the programs the guest runs (busybox, python3, sshd + sftp-server, iproute2,
iptables, e2fsprogs, tini, CA certificates) come whole, minus documentation and what a VM
without systemd or PAM never reads; shared libraries come only when an included ELF file
needs them (DT_NEEDED, followed transitively); kernel modules only those a VM engine loads,
with their ``depends=`` closure and a generated modules.dep/modules.alias. On amd64 the
kernel is the uncompressed vmlinux taken out of the bzImage, booted through PVH: QEMU under
TCG would spend ~5 s on the xz decompression otherwise.

Pure Python, unprivileged, any host OS.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

from ...errors import VMError
from . import deb, elf, kmod
from .tree import Node, Tree, canonical

# The kernel's meta package: its first Depends is the versioned image package. The generic
# flavour, not -cloud: the cloud kernel lacks 9p (CONFIG_NET_9P unset), which shares need.
KERNEL_META = "linux-image-amd64"
# Packages whose files are all taken (after EXCLUDE).
PROGRAMS = ("busybox-static", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
            "openssh-server", "openssh-sftp-server", "iptables", "tini", "ca-certificates")
# Packages of which only these files are taken: what busybox's applets lack (date +%N for the
# clock sync, mv -T for the engine's atomic switch, install, stat -f naming cgroup2), and dash
# as /bin/sh: Debian's busybox ash
# runs its own applet for a command name before searching PATH, so it would never run those.
# The same goes for busybox's nsenter and unshare: they would run busybox's own `ip`.
# Of iproute2 and e2fsprogs only what the engine and the data disk use (every byte of the
# initramfs is unpacked and copied at each boot). A name ending in / takes a whole tree.
PICKS = {"coreutils": ("/usr/bin/date", "/usr/bin/mv", "/usr/bin/install", "/usr/bin/stat"), "dash": ("/usr/bin/dash",),
         "util-linux": ("/usr/bin/nsenter", "/usr/bin/unshare"), "mount": ("/usr/bin/mount", "/usr/bin/umount"),
         "iproute2": ("/usr/bin/ip", "/usr/sbin/ip", "/etc/iproute2/"), "libc-bin": ("/usr/bin/getent",),
         "procps": ("/usr/bin/ps", "/usr/bin/pkill", "/usr/bin/pgrep"),
         "e2fsprogs": ("/usr/sbin/mke2fs", "/usr/sbin/mkfs.ext4", "/usr/sbin/e2fsck", "/usr/sbin/fsck.ext4",
                       "/usr/sbin/tune2fs", "/usr/sbin/resize2fs", "/etc/mke2fs.conf")}
# Packages the programs' dependency closure brings that the guest does not run.
EXCLUDE_PACKAGES = ("debconf", "perl-base", "adduser", "init-system-helpers", "dpkg", "ucf",
                    "runit-helper", "sensible-utils", "openssl", "debianutils", "base-files",
                    "login", "passwd", "systemd", "systemd-sysv", "initramfs-tools", "linux-base",
                    "lsb-base", "sysvinit-utils", "libpam-modules",
                    "libpam-modules-bin", "libpam-runtime", "tar", "grep", "sed", "bash", "findutils",
                    "gzip", "hostname", "ncurses-base", "ncurses-bin", "media-types", "netbase",
                    "openssh-client", "ucf", "logsave", "cpio", "kmod", "udev", "usrmerge",
                    "usr-is-merged", "tiny-initramfs", "dracut", "apparmor", "readline-common")
# Paths (canonical, prefixes) no guest process reads.
EXCLUDE_PATHS = (
    "/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/locale", "/usr/share/lintian",
    "/usr/share/bug", "/usr/share/bash-completion", "/usr/share/apport", "/usr/share/runit", "/etc/sv",
    "/var/log/runit", "/usr/lib/systemd", "/etc/systemd", "/usr/lib/udev", "/etc/init.d", "/etc/cron.",
    "/etc/logrotate.d", "/usr/share/binfmts", "/usr/lib/binfmt.d", "/usr/include", "/usr/share/zoneinfo",
    "/etc/ufw", "/usr/share/openssh", "/etc/pam.d", "/etc/ssh/moduli", "/usr/share/pixmaps",
    "/usr/share/applications", "/etc/default", "/etc/network", "/usr/share/initramfs-tools",
    "/usr/lib/python3.11/test/", "/usr/lib/python3.11/idlelib", "/usr/lib/python3.11/tkinter",
    "/usr/lib/python3.11/ensurepip", "/usr/lib/python3.11/lib2to3", "/usr/lib/python3.11/pydoc_data",
    "/usr/lib/python3.11/turtledemo", "/usr/lib/python3.11/distutils", "/usr/lib/python3.11/unittest/test",
    "/usr/lib/python3.11/ctypes/test", "/usr/lib/python3.11/sqlite3/test", "/usr/lib/python3.11/config-3.11",
    "/usr/lib/python3.11/turtle.py", "/usr/lib/python3.11/__phello__", "/usr/lib/python3.11/venv",
    "/usr/lib/python3.11/lib-dynload/_tkinter", "/usr/lib/python3.11/lib-dynload/_curses",
    "/usr/lib/python3.11/lib-dynload/readline", "/usr/lib/python3.11/lib-dynload/_dbm",
    "/usr/lib/python3.11/lib-dynload/_gdbm", "/usr/lib/python3.11/lib-dynload/nis",
    "/usr/lib/python3.11/lib-dynload/_test", "/usr/lib/python3.11/lib-dynload/xxlimited",
    "/usr/lib/python3.11/lib-dynload/_xxtestfuzz", "/usr/lib/python3.11/lib-dynload/_ctypes_test",
    "/usr/lib/python3.11/lib-dynload/_crypt", "/usr/lib/python3.11/lib-dynload/_sqlite3",
    "/usr/lib/python3.11/lib-dynload/_codecs_", "/usr/lib/python3.11/lib-dynload/_multibytecodec",
    "/usr/lib/python3.11/lib-dynload/_decimal", "/usr/lib/python3.11/lib-dynload/_lsprof",
    "/usr/lib/python3.11/lib-dynload/xxsubtype", "/usr/lib/python3.11/lib-dynload/_xxsubinterpreters",
    "/usr/lib/python3.11/lib-dynload/audioop", "/usr/lib/python3.11/_pydecimal.py",
    "/usr/lib/python3.11/asyncio", "/usr/lib/python3.11/multiprocessing", "/usr/lib/python3.11/unittest",
    "/usr/lib/python3.11/xml", "/usr/lib/python3.11/xmlrpc", "/usr/lib/python3.11/sqlite3",
    "/usr/lib/python3.11/dbm", "/usr/lib/python3.11/curses", "/usr/lib/python3.11/wsgiref",
    "/usr/lib/python3.11/pydoc.py", "/usr/lib/python3.11/doctest.py", "/usr/lib/python3.11/mailbox.py",
    "/usr/lib/python3.11/imaplib.py", "/usr/lib/python3.11/nntplib.py", "/usr/lib/python3.11/pdb.py",
)
# Python's codecs for legacy single-byte and CJK charsets (the CJK ones need the _codecs_* C
# modules, left out above): nothing in the guest reads them. zipfile's cp437 and the common cp1252 stay.
LEGACY_CODECS = ("cp", "mac_", "iso8859_", "koi8_", "kz1048", "hp_roman8", "ptcp154", "tis_620", "palmos", "big5",
                 "euc_", "gb", "hz", "iso2022_", "johab", "shift_jis")
KEPT_CODECS = ("cp437.py", "cp1252.py")
# Always taken from these library packages although nothing names them in DT_NEEDED:
# glibc dlopens libgcc_s for thread cancellation (Python's threads at exit).
DLOPENED = ("libgcc_s.so.1",)
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib", "/usr/lib64", "/usr/lib/aarch64-linux-gnu")
# Kernel modules: whole directories a container engine in a VM uses, and single modules.
MODULE_DIRS = ("kernel/net/9p/", "kernel/fs/9p/", "kernel/fs/overlayfs/", "kernel/fs/fuse/", "kernel/drivers/virtio/")
# Netfilter: what the engine's rules (NAT, DNAT, conntrack, addrtype, bridge filtering) and
# common iptables use need, through nf_tables (iptables-nft) and x_tables (legacy).
NETFILTER = ("nf_tables", "nft_compat", "nft_chain_nat", "nft_ct", "nft_nat", "nft_masq", "nft_redir", "nft_reject",
             "nft_reject_inet", "nft_reject_ipv4", "nft_reject_ipv6", "nft_fib", "nft_fib_inet", "nft_fib_ipv4",
             "nft_fib_ipv6", "nft_limit", "nft_log", "nf_conntrack", "nf_conntrack_netlink", "nf_nat", "nfnetlink",
             "x_tables", "xt_conntrack", "xt_MASQUERADE", "xt_addrtype", "xt_nat", "xt_comment", "xt_tcpudp",
             "xt_mark", "xt_multiport", "xt_state", "xt_REDIRECT", "xt_physdev", "xt_owner", "xt_limit", "xt_LOG",
             "xt_CHECKSUM", "nf_log_syslog", "ip_tables", "iptable_filter", "iptable_nat", "iptable_mangle",
             "iptable_raw", "ip6_tables", "ip6table_filter", "ip6table_nat", "ip6table_mangle", "ip6table_raw",
             "ipt_REJECT", "ip6t_REJECT", "nf_reject_ipv4", "nf_reject_ipv6", "bridge", "br_netfilter")
MODULE_SKIP = ("kernel/net/netfilter/ipvs/", "kernel/net/netfilter/xt_ipvs", "kernel/net/9p/9pnet_rdma", "kernel/net/9p/9pnet_xen",
               "kernel/drivers/virtio/virtio_mem", "kernel/drivers/virtio/virtio_vdpa")
MODULES = ("virtio_blk", "virtio_net", "virtio_rng", "virtio_console", "qemu_fw_cfg", "button", "evdev", "veth",
           "tun", "macvlan", "ipvlan", "vxlan", "dummy", "loop", "ext4", "crc32c_generic", "crc32c_intel",
           "af_packet", "nf_tables", "xt_conntrack", "ip_tables", "ip6_tables", "iptable_nat", "iptable_filter")
MIN_INITRD = 1 << 20
GUEST_FILES = ("guest-init.py", "initramfs-init.sh", "guest-power.sh", "hostbridge.initd")


class AssemblyError(VMError):
    """The .deb files do not make a guest (a package or file is missing or unreadable)."""


@dataclass
class Result:
    """What ``assemble`` wrote."""

    kernel: str
    initrd: str
    manifest: dict = field(default_factory=dict)


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed ELF vmlinux inside an x86 bzImage whose payload is xz.

    Raises:
        AssemblyError: no xz stream, or it does not decompress to an ELF file.
    """
    start = bzimage.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise AssemblyError("the kernel image has no xz payload (not a Debian amd64 bzImage)")
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        out = dec.decompress(bzimage[start:])
    except lzma.LZMAError as e:
        raise AssemblyError("the kernel's xz payload is corrupt: %s" % e) from e
    if not elf.is_elf(out):
        raise AssemblyError("the kernel's payload is not an ELF vmlinux")
    return out


def _picked(path: str, picks) -> bool:
    return path in picks or any(path.startswith(p) for p in picks if p.endswith("/"))


def _excluded(path: str) -> bool:
    if path.startswith("/usr/lib/python3.11/encodings/"):
        name = path[len("/usr/lib/python3.11/encodings/"):]
        if name.startswith(LEGACY_CODECS) and name.endswith(".py") and name not in KEPT_CODECS:
            return True
    return any(path.startswith(p) for p in EXCLUDE_PATHS)


def unpack(tree: Tree, deb_path: str, package: str, keep: Callable[[str], bool] = lambda p: True) -> List[str]:
    """Add the files of one .deb to ``tree``. Returns the canonical paths added.

    Args:
        keep: a filter on canonical paths (after EXCLUDE_PATHS).
    Raises:
        AssemblyError: the .deb is unreadable.
    """
    added = []
    links = []
    try:
        with deb.open_data_tar(deb_path) as tar:
            for m in tar:
                path = canonical(m.name)
                if path == "/" or _excluded(path) or not keep(path):
                    continue
                if m.isdir():
                    tree.mkdir(path, m.mode, int(m.mtime))
                elif m.issym():
                    tree.add(path, Node(stat.S_IFLNK | 0o777, m.linkname.encode(), int(m.mtime), package))
                elif m.islnk():
                    links.append((path, canonical(m.linkname), m))
                elif m.isfile():
                    data = tar.extractfile(m).read()
                    tree.add(path, Node(stat.S_IFREG | (m.mode & 0o7777), data, int(m.mtime), package))
                else:
                    continue  # devices and fifos: none in the packages we take
                added.append(path)
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as e:
        raise AssemblyError("cannot read %s: %s" % (deb_path, e)) from e
    for path, target, m in links:  # hard links become copies: the initramfs is unpacked once
        src = tree.nodes.get(target)
        if src is not None:
            tree.add(path, Node(src.mode, src.data, int(m.mtime), package))
            added.append(path)
    return added


def _library_index(tree: Tree) -> Dict[str, str]:
    """soname -> path for the shared libraries of the library packages' trees."""
    index = {}
    for path, node in tree.nodes.items():
        if posixpath.dirname(path) in LIB_DIRS and ".so" in posixpath.basename(path) and not node.is_dir:
            index.setdefault(posixpath.basename(path), path)
    return index


def add_needed_libraries(tree: Tree, libs: Tree) -> List[str]:
    """Copy from ``libs`` into ``tree`` every shared library an ELF file of ``tree`` needs.

    Returns:
        sonames nothing provides (an extension module whose library is not there still
        lets the rest run; the caller reports them).
    """
    index = _library_index(libs)
    missing = set()
    todo = [p for p, n in tree.nodes.items() if n.is_file and elf.is_elf(n.data)]
    todo += [index[s] for s in DLOPENED if s in index]
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        node = tree.nodes.get(path) or libs.nodes.get(path)
        if node is None:
            continue
        try:
            info = elf.dynamic_info(node.data)
        except elf.ELFError:
            continue
        if info.interpreter and not tree.resolve(canonical(info.interpreter)):
            _copy_with_links(libs, tree, canonical(info.interpreter))
            real = libs.resolve(canonical(info.interpreter))
            if real is None:
                missing.add(info.interpreter)
        wanted = list(info.needed)
        for soname in wanted:
            if any(tree.resolve(posixpath.join(d, soname)) for d in LIB_DIRS):
                continue
            lib = index.get(soname)
            if lib is None:
                missing.add(soname)
                continue
            _copy_with_links(libs, tree, lib)
            real = libs.resolve(lib)
            if real:
                todo.append(real)
    return sorted(missing)


def _copy_with_links(src: Tree, dst: Tree, path: str) -> None:
    """Copy ``path`` from ``src`` to ``dst``, following and copying symlinks to the real file."""
    for _ in range(10):
        node = src.nodes.get(path)
        if node is None:
            return
        dst.add(path, node)
        if not node.is_link:
            return
        target = node.data.decode()
        path = posixpath.normpath(target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target))


def choose_modules(modules: Dict[str, bytes]) -> Dict[str, bytes]:
    """The modules (paths relative to /lib/modules/VER) a VM engine uses, with their dependencies."""
    infos = kmod.read_infos(modules)
    wanted = [kmod.module_name(p) for p in modules
              if p.startswith(MODULE_DIRS) and not p.startswith(MODULE_SKIP)] + list(MODULES) + list(NETFILTER)
    return {p: modules[p] for p in kmod.closure(wanted, infos)}


def add_kernel(tree: Tree, kernel_deb: str, arch: str) -> tuple:
    """Put the chosen modules and generated indexes into ``tree``. Returns (release, kernel bytes).

    Raises:
        AssemblyError: no kernel image or module tree in the package.
    """
    bootimg, release, modules, extra = None, None, {}, {}
    try:
        with deb.open_data_tar(kernel_deb) as tar:
            for m in tar:
                path = canonical(m.name)
                parts = path.split("/")
                if path.startswith("/boot/vmlinuz-") and m.isfile():
                    bootimg = tar.extractfile(m).read()
                elif path.startswith("/usr/lib/modules/") and len(parts) > 5 and m.isfile():
                    release = parts[4]
                    rel = "/".join(parts[5:])
                    if rel.endswith(".ko"):
                        modules[rel] = tar.extractfile(m).read()
                    elif rel in ("modules.builtin", "modules.order"):
                        extra[rel] = tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as e:
        raise AssemblyError("cannot read %s: %s" % (kernel_deb, e)) from e
    if bootimg is None or release is None:
        raise AssemblyError("%s holds no kernel image or modules" % kernel_deb)
    chosen = choose_modules(modules)
    base = "/usr/lib/modules/%s/" % release
    for rel, data in chosen.items():
        tree.file(base + rel, kmod.strip_signature(data))
    for rel, data in extra.items():
        tree.file(base + rel, data)
    infos = kmod.read_infos(chosen)
    order = extra.get("modules.order", b"").decode().split()
    tree.file(base + "modules.dep", kmod.modules_dep(infos, order).encode())
    tree.file(base + "modules.alias", kmod.modules_alias(infos).encode())
    kernel = elf.loadable_only(extract_vmlinux(bootimg), min_gap=4096) if arch == "amd64" else bootimg
    return release, kernel


def read_provision(provision_dir: str) -> Dict[str, bytes]:
    """The guest's own files from provision/ (see GUEST_FILES).

    Raises:
        AssemblyError: one is missing.
    """
    out = {}
    for name in GUEST_FILES:
        try:
            with open(os.path.join(provision_dir, name), "rb") as f:
                out[name] = f.read()
        except OSError as e:
            raise AssemblyError("cannot read %s: %s" % (os.path.join(provision_dir, name), e.strerror),
                                hint="reinstall hostbridge") from e
    return out


# busybox applets linked where no package provides the command (the scripts the host runs
# over SSH, the init script, and a usable shell for `hostbridge ssh`).
APPLETS = ("ash", "cat", "cp", "mv", "rm", "ln", "ls", "mkdir", "rmdir", "chmod", "chown", "touch", "sleep",
           "kill", "ps", "grep", "egrep", "sed", "awk", "head", "tail", "cut", "tr", "sort", "uniq", "wc", "find",
           "xargs", "env", "id", "hostname", "uname", "date", "dmesg", "sync", "true", "false", "test", "[", "[[",
           "printf", "echo", "readlink", "realpath", "basename", "dirname", "mktemp", "stat", "which", "nproc",
           "timeout", "nsenter", "unshare", "sysctl", "less", "vi", "tar", "gzip", "gunzip", "zcat", "xz", "unxz",
           "mount", "umount", "modprobe", "insmod", "rmmod", "lsmod", "modinfo", "switch_root", "setsid",
           "start-stop-daemon", "free", "df", "du", "top", "pidof", "killall", "nc", "ping", "wget", "nslookup",
           "md5sum", "sha256sum", "seq", "yes", "tee", "expr", "pwd", "dd", "hexdump", "od", "base64", "mknod",
           "mkfifo", "chroot", "pivot_root", "losetup", "blockdev", "fstrim", "uptime", "clear", "reset", "more",
           "diff", "cmp", "patch", "gzip", "bzip2", "bunzip2", "ipcalc", "watch", "usleep", "logger", "setpriv")


SBIN_APPLETS = ("modprobe", "insmod", "rmmod", "lsmod", "modinfo", "switch_root", "pivot_root", "sysctl", "losetup",
                "blockdev", "fstrim", "start-stop-daemon", "chroot", "mknod")

# Made by the initramfs' /init (provision/initramfs-init.sh), not in the image: the kernel's own
# initcalls ask /sbin/modprobe for crypto algorithms they find built in (IPv6's segment routing
# HMAC), each time after the whole initramfs is unpacked and before /init runs: ~0.2 s of busybox
# runs under emulation, for nothing. Missing, the kernel's asks fail at once.
LINKED_AT_BOOT = ("/usr/sbin/modprobe",)


# Compiled ahead (when this host runs the guest's Python version): what the guest init imports
# before the data disk, which keeps every later compilation, is mounted — compiling them at
# each boot costs seconds under emulation.
GUEST_PYTHON = (3, 11)
PRECOMPILED = ("ctypes", "json", "re", "enum", "functools", "collections", "keyword", "operator", "reprlib",
               "signal", "struct", "types", "copyreg", "warnings", "weakref", "_weakrefset", "heapq", "threading",
               "socket", "selectors", "subprocess", "contextlib", "locale", "traceback", "linecache", "tokenize",
               "token", "textwrap", "string", "bisect", "datetime", "logging", "tempfile", "shutil", "fnmatch",
               "random", "hashlib", "base64", "errno", "sre_compile", "sre_parse", "sre_constants", "copy")
# Single modules of packages that are large as a whole (every Python start loads these codecs).
PRECOMPILED_MODULES = ("encodings", "encodings.aliases", "encodings.utf_8", "encodings.latin_1", "encodings.ascii",
                       "encodings.idna")


# The guest init compiled ahead, which the initramfs' /init runs when it is there: Python never
# caches the compilation of a script, and compiling the init costs tenths of a second at each
# boot under emulation.
INIT = "/usr/sbin/hostbridge-init"
INIT_PYC = "/usr/lib/hostbridge/hostbridge-init.pyc"
# The guest's Python keeps what it compiles of the image's own modules here, in RAM: the init
# runs with it as its pycache prefix (provision/initramfs-init.sh), and the data disk's prefix
# (/var/cache/hostbridge/pycache) links its stdlib tree to it. What is here is either compiled
# ahead (PRECOMPILED) or the image's bytecode seed, which the host appends to the initrd
# (hostbridge/machines/image.py keep_bytecode_seed).
IMAGE_PYCACHE = "/usr/lib/hostbridge/pycache"


def image_pyc_path(source: str, tag: str) -> str:
    """Where the guest's Python looks for ``source``'s compiled module with IMAGE_PYCACHE as its
    pycache prefix (importlib's cache_from_source under sys.pycache_prefix: no __pycache__)."""
    name = posixpath.basename(source)[:-3]
    return IMAGE_PYCACHE + posixpath.join(posixpath.dirname(source), "%s.%s.pyc" % (name, tag))


def precompile(tree: Tree, version=None) -> int:
    """Add unchecked hash-based .pyc files (valid whatever the files' mtimes) for PRECOMPILED
    (below IMAGE_PYCACHE) and the guest init (INIT_PYC) when this interpreter is the guest's
    Python version. Returns how many were added (0 on any other host: the image's first guest
    compiles them, and its bytecode seed brings them to every next one)."""
    import sys

    from ...deploy import hash_pyc

    if (version or sys.version_info[:2]) != GUEST_PYTHON:
        return 0
    lib = "/usr/lib/python%d.%d/" % GUEST_PYTHON
    tag = "cpython-%d%d" % GUEST_PYTHON
    count = 0
    for path in [p for p in tree.nodes if p.startswith(lib) and p.endswith(".py")]:
        modname = path[len(lib):-3].replace("/", ".")
        modname = modname[:-len(".__init__")] if modname.endswith(".__init__") else modname
        if modname.split(".")[0] not in PRECOMPILED and modname not in PRECOMPILED_MODULES:
            continue
        if not tree.nodes[path].is_file:
            continue
        pyc = hash_pyc(tree.nodes[path].data, path, checked=False)
        if pyc is None:
            continue
        tree.file(image_pyc_path(path, tag), pyc)
        count += 1
    init = tree.nodes.get(INIT)
    pyc = hash_pyc(init.data, INIT, checked=False) if init is not None and init.is_file else None
    if pyc is not None:
        tree.file(INIT_PYC, pyc)
        count += 1
    return count


def configure(tree: Tree, files: Dict[str, bytes], release: str) -> None:
    """The guest's own configuration: init, users, sshd, alternatives, busybox applets."""
    tree.file("/init", files["initramfs-init.sh"], 0o755)
    tree.file(INIT, files["guest-init.py"], 0o755)
    for cmd in ("poweroff", "reboot", "halt"):
        tree.file("/usr/sbin/" + cmd, files["guest-power.sh"], 0o755)
    tree.file("/etc/init.d/hostbridge", files["hostbridge.initd"], 0o755)
    for applet in APPLETS:
        for d in ("/usr/bin/", "/usr/sbin/"):
            if tree.resolve(d + applet):
                break
        else:
            # The kernel runs /sbin/modprobe itself (request_module): system tools go there.
            where = "/usr/sbin/" if applet in SBIN_APPLETS else "/usr/bin/"
            if where + applet in LINKED_AT_BOOT:
                continue
            tree.symlink(where + applet, "../bin/busybox" if where == "/usr/sbin/" else "busybox")
    # What update-ca-certificates writes on install: the one bundle OpenSSL and Python read.
    certs = sorted(p for p in tree.nodes if p.startswith("/usr/share/ca-certificates/") and p.endswith(".crt"))
    bundle = b"".join(tree.nodes[p].data.rstrip(b"\n") + b"\n" for p in certs)
    tree.remove("/usr/share/ca-certificates")
    tree.file("/etc/ssl/certs/ca-certificates.crt", bundle)
    tree.symlink("/usr/lib/ssl/cert.pem", "/etc/ssl/certs/ca-certificates.crt")
    tree.symlink("/usr/bin/python3", "python3.11")
    tree.symlink("/usr/bin/sh", "dash")
    # Debian's update-alternatives defaults: iptables through nf_tables, legacy alongside.
    for name in ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                 "ip6tables-restore"):
        tree.symlink("/usr/sbin/" + name, "xtables-nft-multi")
    tree.file("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
                             b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    tree.file("/etc/group", b"root:x:0:\ntty:x:5:\nnogroup:x:65534:\nhostbridge:x:999:\n")
    # "*": no password, yet not a locked account (sshd refuses key logins of locked ones).
    tree.file("/etc/shadow", b"root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
              0o640)
    tree.file("/etc/nsswitch.conf", b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n")
    tree.file("/etc/hostname", b"hostbridge\n")
    tree.file("/etc/os-release", b'PRETTY_NAME="hostbridge guest (Debian %s)"\nID=hostbridge\n' % release.encode())
    tree.file("/etc/ssh/sshd_config", b"# hostbridge: key-only root login; the host key comes from the machine"
                                      b" (fw_cfg) at boot.\nHostKey /etc/ssh/ssh_host_ed25519_key\n"
                                      b"PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                                      b"KbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\n"
                                      b"Subsystem sftp /usr/lib/openssh/sftp-server\nAcceptEnv LANG LC_*\n")
    tree.file("/etc/sysctl.d/90-hostbridge.conf", b"net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n")
    tree.file("/etc/resolv.conf", b"nameserver 10.0.2.3\n")
    for d, mode in (("/root", 0o700), ("/tmp", 0o1777), ("/run", 0o755), ("/proc", 0o555), ("/sys", 0o555),
                    ("/dev", 0o755), ("/var/lib/hostbridge", 0o711), ("/var/tmp", 0o1777), ("/sysroot", 0o755),
                    ("/mnt", 0o755), (IMAGE_PYCACHE, 0o755)):
        tree.mkdir(d, mode)
        tree.nodes[d].mode = stat.S_IFDIR | mode


def assemble(debs: Dict[str, str], kernel_deb: str, out_dir: str, provision_dir: str, arch: str = "amd64",
             gzip_level: int = 6) -> Result:
    """Write ``kernel``, ``initrd.img`` and ``manifest.json`` into ``out_dir``.

    Args:
        debs: package name -> verified .deb path (the PROGRAMS and their dependency closure).
        kernel_deb: the versioned linux-image package's .deb.
        out_dir: an existing, empty directory.
        provision_dir: where the guest's own files are (GUEST_FILES).
        arch: Debian architecture.
        gzip_level: the initramfs' gzip level.
    Returns:
        A Result.
    Raises:
        AssemblyError: a package is missing or unreadable, or the result is not a guest.
    """
    missing = [p for p in PROGRAMS + tuple(PICKS) if p not in debs]
    if missing:
        raise AssemblyError("the guest needs packages that were not fetched: %s" % ", ".join(missing))
    tree, libs = Tree(), Tree()
    for name in sorted(debs):
        if name in PROGRAMS:
            unpack(tree, debs[name], name)
        elif name in PICKS:
            unpack(tree, debs[name], name, keep=lambda p, picks=PICKS[name]: _picked(p, picks))
        elif name not in EXCLUDE_PACKAGES and not name.startswith("linux-image"):
            unpack(libs, debs[name], name, keep=lambda p: posixpath.dirname(p) in LIB_DIRS)
    unmet = add_needed_libraries(tree, libs)
    release, kernel = add_kernel(tree, kernel_deb, arch)
    configure(tree, read_provision(provision_dir), release)
    compiled = precompile(tree)
    for need in ("/usr/bin/python3.11", "/usr/sbin/sshd", "/usr/bin/busybox", "/usr/sbin/mke2fs", "/usr/bin/ip"):
        if not tree.resolve(need):
            raise AssemblyError("the assembled guest lacks %s" % need)
    kernel_path = os.path.join(out_dir, "kernel")
    with open(kernel_path, "wb") as f:
        f.write(kernel)
    initrd_path = os.path.join(out_dir, "initrd.img")
    with open(initrd_path, "wb") as raw:
        # mtime=0: the same inputs give the same bytes.
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=gzip_level, mtime=0) as gz:
            tree.write_cpio(gz)
    manifest = {
        "format": 2, "arch": arch, "kernel_release": release, "root": "initramfs",
        "init": "/usr/sbin/hostbridge-init", "rootfs_bytes": tree.size(), "files": len(tree.nodes),
        "packages": {n: os.path.basename(p) for n, p in sorted(debs.items())},
        "kernel_package": os.path.basename(kernel_deb), "unmet_libraries": unmet, "precompiled": compiled,
        "parts": {name: {"size": os.path.getsize(os.path.join(out_dir, name)),
                         "sha256": _sha256(os.path.join(out_dir, name))} for name in ("kernel", "initrd.img")},
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return Result(kernel_path, initrd_path, manifest)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_debs(directory: str, names: Optional[Iterable[str]] = None) -> Dict[str, str]:
    """package name -> path for the .deb files in ``directory`` (tests, offline builds).

    Raises:
        AssemblyError: a named package is not there.
    """
    found = {}
    for entry in sorted(os.listdir(directory)):
        if entry.endswith(".deb"):
            found.setdefault(entry.split("_", 1)[0], os.path.join(directory, entry))
    if names is not None:
        missing = [n for n in names if n not in found]
        if missing:
            raise AssemblyError("no .deb for %s in %s" % (", ".join(missing), directory))
    return found


def split_kernel(debs: Dict[str, str]) -> tuple:
    """Take the kernel out of a package map: ({other packages}, the versioned image's .deb).

    The versioned ``linux-image-6.1.0-N-amd64`` package (signed or -unsigned) is chosen; the
    meta package and other flavours (-cloud lacks 9p, -rt) are dropped.

    Raises:
        AssemblyError: no kernel image package.
    """
    others = {n: p for n, p in debs.items() if not n.startswith("linux-image-")}
    kernels = sorted(n for n in debs if n.startswith("linux-image-") and n[len("linux-image-"):][:1].isdigit()
                     and "-cloud-" not in n and "-rt-" not in n)
    if not kernels:
        raise AssemblyError("no linux-image package among the guest's packages")
    return others, debs[kernels[-1]]
