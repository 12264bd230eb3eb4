"""One method per Dockerfile instruction: its effect on the stage, its history, its layer.

Mixed into ``build.Builder``, which provides ``say``, ``expand``, ``cache_key``,
``probe_cache``, ``child_image``, ``commit_config`` and the backend.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import shutil
import tempfile
import urllib.parse
import urllib.request

from ..errors import GuestError, InvalidParameter, NotFound
from ..util import new_id
from . import copier
from . import imageconfig as ic
from . import instructions as ins
from . import sources as src


class BuildError(GuestError):
    """A step failed; ``code`` is RUN's exit code (None for other failures)."""

    def __init__(self, message: str, code=None):
        super().__init__(message)
        self.code = code


class BuildCancelled(GuestError):
    """The client went away during the build; what ran has been stopped and cleaned up."""

    def __init__(self):
        super().__init__("the build was cancelled: the client went away")


class StepsMixin:
    """Instruction handlers; see build.Builder."""

    def dispatch(self, state, inst) -> None:
        handler = getattr(self, "do_" + type(inst).__name__.lower())
        try:
            handler(state, inst)
        except (InvalidParameter, NotFound) as e:
            if inst.name in ("COPY", "ADD") and not e.message.startswith(inst.name):
                e.message = "%s failed: %s" % (inst.name, e.message)
                e.args = (e.message,)
            raise

    # -- metadata ------------------------------------------------------------------------

    def do_env(self, state, inst: ins.Env) -> None:
        self.expand(state, inst)
        for k, v in inst.pairs:
            ic.set_env(state.config, k, v)
        self.commit_config(state, "ENV " + " ".join("%s=%s" % (k, v) for k, v in inst.pairs))

    def do_label(self, state, inst: ins.Label) -> None:
        self.expand(state, inst)
        labels = dict(state.config.get("Labels") or {})
        for k, v in inst.pairs:
            labels[k] = v
        state.config["Labels"] = labels
        self.commit_config(state, "LABEL " + " ".join("%s=%s" % (k, v) for k, v in inst.pairs))

    def do_arg(self, state, inst: ins.Arg) -> None:
        self.expand(state, inst)
        texts = []
        for name, default in inst.args:
            self.consumed.add(name)
            if name in self.options.build_args:
                value = self.options.build_args[name]
            elif default is not None:
                value = default
            else:
                value = self.meta_values.get(name)
            state.args[name] = value
            texts.append(name if default is None else "%s=%s" % (name, default))
        self.commit_config(state, "ARG " + " ".join(texts))

    def do_user(self, state, inst: ins.User) -> None:
        self.expand(state, inst)
        state.config["User"] = inst.value
        self.commit_config(state, "USER " + inst.value)

    def do_stopsignal(self, state, inst: ins.StopSignal) -> None:
        self.expand(state, inst)
        ic.check_signal(inst.value)
        state.config["StopSignal"] = inst.value
        self.commit_config(state, "STOPSIGNAL " + inst.value)

    def do_maintainer(self, state, inst: ins.Maintainer) -> None:
        state.image["author"] = inst.value
        self.commit_config(state, "MAINTAINER " + inst.value)

    def do_expose(self, state, inst: ins.Expose) -> None:
        env = self.expansion_env(state)
        ports = []
        for p in inst.ports:
            ports += self.lexer.process_words(p, env)
        ic.add_to_set(state.config, "ExposedPorts", ic.exposed_ports(ports))
        self.commit_config(state, "EXPOSE " + " ".join(ports))

    def do_volume(self, state, inst: ins.Volume) -> None:
        self.expand(state, inst)
        ic.add_to_set(state.config, "Volumes", inst.volumes)
        self.commit_config(state, "VOLUME [%s]" % " ".join(inst.volumes))

    def do_shell(self, state, inst: ins.Shell) -> None:
        state.config["Shell"] = list(inst.shell)
        self.commit_config(state, "SHELL [%s]" % " ".join(inst.shell))

    def do_cmd(self, state, inst: ins.Cmd) -> None:
        state.config["Cmd"] = ic.command_line(state.config, inst.args, inst.json)
        state.cmd_set = True
        self.commit_config(state, "CMD " + ic.go_list(state.config["Cmd"]))

    def do_entrypoint(self, state, inst: ins.Entrypoint) -> None:
        state.config["Entrypoint"] = ic.command_line(state.config, inst.args, inst.json)
        if not state.cmd_set:
            state.config["Cmd"] = None
        self.commit_config(state, "ENTRYPOINT " + ic.go_list(state.config["Entrypoint"]))

    def do_healthcheck(self, state, inst: ins.Healthcheck) -> None:
        old = (state.config.get("Healthcheck") or {}).get("Test") or []
        if old and old[0] != "NONE":
            self.say("Note: overriding previous HEALTHCHECK: [%s]\n" % " ".join(old))
        state.config["Healthcheck"] = dict(inst.health)
        self.commit_config(state, "HEALTHCHECK " + inst.history_text())

    def do_onbuild(self, state, inst: ins.Onbuild) -> None:
        state.config["OnBuild"] = list(state.config.get("OnBuild") or []) + [inst.expression]
        self.commit_config(state, "ONBUILD " + inst.expression)

    # -- steps with a filesystem ---------------------------------------------------------

    def new_rootfs(self, state, announce: bool):
        rootfs = self.backend.create_rootfs(state.image_id)
        if announce:
            self.say(" ---> Running in %s\n" % rootfs.id[:12])
        return rootfs

    def commit_rootfs(self, state, rootfs, created_by, container_cmd, key, announce: bool) -> None:
        image = self.child_image(state, created_by, container_cmd, empty_layer=False)
        parent = state.image_id
        state.image_id = self.backend.commit(parent, rootfs, image)
        state.image = image
        self.backend.store_cache(parent, key, state.image_id)
        if announce:
            self.say("Removing intermediate container %s\n" % rootfs.id[:12])

    def output_writer(self):
        """``output(data, stream)`` for a RUN: UTF-8 decoded across chunk boundaries, stderr
        in red, as docker's classic builder shows it."""
        decoders = {1: codecs.getincrementaldecoder("utf-8")("replace"),
                    2: codecs.getincrementaldecoder("utf-8")("replace")}

        def output(data: bytes, stream: int) -> None:
            text = decoders.get(stream, decoders[1]).decode(data)
            if text:
                self.say("\x1b[91m%s\x1b[0m" % text if stream == 2 else text)
        return output

    def do_workdir(self, state, inst: ins.Workdir) -> None:
        self.expand(state, inst)
        wd = ic.workdir(state.config.get("WorkingDir"), inst.value)
        state.config["WorkingDir"] = wd
        text = "WORKDIR " + wd
        created_by = ic.nop_one_word(state.config, text)
        key = self.cache_key(state, created_by)
        if self.probe_cache(state, key, created_by):
            return
        rootfs = self.new_rootfs(state, announce=True)
        try:
            copier.Copier(rootfs.path).mkdirs(wd)
            self.commit_rootfs(state, rootfs, created_by, ic.shell_of(state.config) + ["#(nop) " + text],
                               key, announce=True)
        finally:
            self.backend.release(rootfs)

    def do_run(self, state, inst: ins.Run) -> None:
        argv = ic.command_line(state.config, inst.args, inst.json)
        script = None
        if inst.heredocs and not inst.json:
            argv, script = _heredoc_command(state.config, inst)
        build_env = state.build_env(self.options.build_args)
        created_by, env = ic.run_created_by(argv, build_env, set(state.args),
                                            ic.env_map(state.config.get("Env")))
        key = self.cache_key(state, created_by, script)
        if self.probe_cache(state, key, created_by):
            return
        run_config = dict(state.config)
        run_config["Env"] = list(state.config.get("Env") or []) + env
        rootfs = self.new_rootfs(state, announce=True)
        try:
            script_path = None
            if script is not None:
                name = ".hostbridge-heredoc-" + new_id()[:12]
                script_path = os.path.join(rootfs.path, name)
                with open(script_path, "w") as f:
                    f.write(script)
                os.chmod(script_path, 0o755)
                argv = ["/" + name]
            code = self.backend.run(rootfs, run_config, argv, self.output_writer(), self.cancelled,
                                    self.options.run)
            if script_path:
                os.unlink(script_path)
            if code != 0:
                raise BuildError("The command '%s' returned a non-zero code: %d"
                                 % (" ".join(ic.command_line(state.config, inst.args, inst.json)), code), code)
            self.commit_rootfs(state, rootfs, created_by, argv, key, announce=True)
        finally:
            self.backend.release(rootfs)

    def do_copy(self, state, inst: ins.Copy) -> None:
        self.expand(state, inst)
        owner_spec, mode = inst.chown, copier.parse_chmod(inst.chmod)
        tmp = tempfile.mkdtemp(prefix="build-add-") if inst.is_add else None
        source_rootfs = None
        try:
            if inst.from_:
                if inst.is_add:
                    raise InvalidParameter("ADD does not support --from")
                source_rootfs = self.backend.create_rootfs(self._from_image(state, inst.from_))
                root = source_rootfs.path
            else:
                root = self.context.root
            found, fetched = [], []
            for s in inst.sources:
                if inst.is_add and _is_url(s):
                    fetched.append(_fetch(s, tmp, inst.checksum))
                elif inst.checksum:
                    raise InvalidParameter("checksum can't be specified for non-HTTP(S) sources")
                else:
                    found += src.resolve(root, s)
            contents = [(n, d) for n, d, _ in inst.contents]
            checksum = src.checksum(found + fetched, contents)
            text = "%s %s in %s " % (inst.name, checksum, inst.dest)
            created_by = ic.nop_one_word(state.config, text)
            key = self.cache_key(state, created_by, [owner_spec, inst.chmod])
            if self.probe_cache(state, key, created_by):
                return
            rootfs = self.new_rootfs(state, announce=False)
            try:
                c = copier.Copier(rootfs.path, copier.parse_chown(rootfs.path, owner_spec), mode, inst.name,
                                  link=(rootfs.link_dir, root) if rootfs.link_dir and not inst.from_ else None)
                dest = copier.normalize_dest(state.config.get("WorkingDir"), inst.dest)
                c.copy(found + fetched, contents, dest,
                       extract_archives=[f.path for f in found] if inst.is_add else ())
                self.commit_rootfs(state, rootfs, created_by, ic.shell_of(state.config) + ["#(nop) " + text],
                                   key, announce=False)
            finally:
                self.backend.release(rootfs)
        finally:
            if source_rootfs is not None:
                self.backend.release(source_rootfs)
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)

    do_add = do_copy

    def _from_image(self, state, ref: str) -> str:
        stage = self.plan.find(ref, before=state.stage.index)
        if stage is not None:
            return self.stage_images[stage.index]
        if ref.isdigit():
            raise InvalidParameter("invalid from flag value %s: refers to current build stage" % ref)
        return self.backend.resolve_image(ref, pull=False)[0]


def _heredoc_command(config, inst):
    """The argv for ``RUN <<EOF`` (and a script to run when the heredoc has a #! line)."""
    line = inst.args[0]
    if len(inst.heredocs) == 1 and line.strip() == _opening(line):
        data = inst.heredocs[0].data()
        if data.startswith("#!"):
            # run as a script file; this argv only names the step
            return ic.shell_of(config) + [line], data
        return ic.shell_of(config) + [data], None
    full = line
    for doc in inst.heredocs:
        full += "\n" + doc.content + doc.name
    return ic.shell_of(config) + [full], None


def _opening(line: str) -> str:
    words = line.split()
    return words[0] if len(words) == 1 and words[0].lstrip("0123456789").startswith("<<") else ""


def _is_url(s: str) -> bool:
    return s.startswith("http://") or s.startswith("https://")


def _fetch(url: str, tmp: str, checksum: str = ""):
    """Download an ADD URL into ``tmp``; a Source named after the URL's last path part.

    Raises:
        InvalidParameter: the download failed, or its sha256 is not ``--checksum``'s.
    """
    name = os.path.basename(urllib.parse.urlparse(url).path) or "index.html"
    path = os.path.join(tmp, name)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as out:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, ValueError) as e:
        raise InvalidParameter("failed to download %s: %s" % (url, e)) from None
    if checksum and checksum != "sha256:" + digest.hexdigest():
        raise InvalidParameter("digest mismatch %s: %s" % ("sha256:" + digest.hexdigest(), checksum))
    os.chmod(path, 0o600)
    return src.Source(name, path, False)
