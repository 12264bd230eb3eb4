"""The build driver: runs a Dockerfile's stages against a BuildBackend, as docker's classic
builder does, and reports progress in docker's stream format.

``Builder(backend, options, emit).build(context)`` returns the final image id. ``emit`` gets
docker's JSON stream messages as dicts (``{"stream": "Step 1/3 : FROM busybox\\n"}``,
``{"aux": {"ID": "sha256:…"}}``); the API layer writes them. ``cancelled()``, when given, says
whether the client has gone; the build then stops (BuildCancelled), a running RUN killed. Errors raise: a ``GuestError``
before the first message (a parse error) is an HTTP error; after that the API
layer turns it into docker's in-stream ``{"errorDetail": …, "error": …}`` with
``error_message``. Whatever happens, every rootfs the build made is released.
"""

from __future__ import annotations

import copy
import hashlib
import json

from ..errors import InvalidParameter
from ..goarch import go_arch
from ..images import reference
from ..util import now_rfc3339
from . import imageconfig as ic
from . import instructions as ins
from . import parser, stages
from .runopts import RunOptions
from .shellwords import Lexer
from .steps import BuildCancelled, BuildError, StepsMixin


def error_message(exc: Exception) -> dict:
    """docker's in-stream error message for a failed build."""
    msg = str(exc)
    detail = {"message": msg}
    if isinstance(exc, BuildError) and exc.code is not None:
        detail["code"] = exc.code
    return {"errorDetail": detail, "error": msg}


class BuildOptions:
    """The ``POST /build`` parameters the driver uses.

    Args:
        tags: references to tag the result with (``t``).
        build_args: {name: value} (``buildargs``); a None value counts as not given.
        target: the stage to stop at.
        no_cache: do not reuse cached steps.
        pull: pull base images even when present.
        labels: labels to add to the result (``labels``).
        dockerfile: the Dockerfile's path in the context ("" = Dockerfile).
        quiet: ``q``; the driver streams the same either way, the API layer filters.
        run: what RUN steps run with (``runopts.RunOptions``: network, limits, extra hosts);
            None for the defaults (the default bridge).
        cache_from: images (``cachefrom``) whose history may stand in for steps, as dockerd's
            classic builder uses them: those present locally, in order.
    """

    def __init__(self, tags=(), build_args=None, target="", no_cache=False, pull=False, labels=None,
                 dockerfile="", quiet=False, run=None, cache_from=()):
        self.tags = list(tags)
        self.build_args = {k: v for k, v in (build_args or {}).items() if v is not None}
        self.target, self.no_cache, self.pull = target, no_cache, pull
        self.labels = dict(labels or {})
        self.dockerfile, self.quiet = dockerfile, quiet
        self.run = run or RunOptions()
        self.cache_from = list(cache_from)

    @classmethod
    def from_query(cls, query_all: dict) -> "BuildOptions":
        """Options from ``POST /build``'s query (each name → all its values, as parse_qs gives).

        Also carries ``dockerfile`` (for BuildContext.from_stream) and ``quiet`` (``q``: the
        API layer then shows only the final id).

        Raises:
            InvalidParameter: bad JSON in ``buildargs``/``labels``, an invalid tag, a
                ``remote`` context (git/URL contexts are not supported), ``squash`` (dockerd's
                experimental mode), a ``platform`` other than this engine's, or a bad RUN
                option (``runopts``: networkmode, memory, cpu…, ulimits, extrahosts).
        """
        def last(name, default=""):
            values = query_all.get(name) or [default]
            return values[-1]

        # dockerd reads a repeated value as Go's FormValue does: the first. The SDK relies on it
        # for a Dockerfile outside the context: it sends dockerfile=<generated name>&dockerfile=<text>.
        dockerfile = (query_all.get("dockerfile") or [""])[0]

        if last("remote"):
            raise InvalidParameter("building from a remote context (git or URL) is not supported by this "
                                   "engine: send the build context as a tar")
        if _truthy(last("squash")):
            raise InvalidParameter("squash is only supported with experimental mode")  # dockerd's words
        _check_platform(last("platform"))
        tags = [t for t in query_all.get("t") or [] if t]
        for t in tags:
            reference.parse_normalized(t)
        return cls(tags=tags, build_args=_json_map(last("buildargs"), "buildargs"),
                   target=last("target"), no_cache=_truthy(last("nocache")), pull=_truthy(last("pull")),
                   labels=_json_map(last("labels"), "labels"), dockerfile=dockerfile,
                   quiet=_truthy(last("q")), run=RunOptions.from_query(query_all),
                   cache_from=_json_list(last("cachefrom"), "cachefrom"))


class StageState:
    """Where a stage is: its image id (None = scratch so far), the image JSON being built,
    and the ARGs declared in it (``args``: name → value or None)."""

    def __init__(self, stage, image_id, image):
        self.stage, self.image_id, self.image = stage, image_id, image
        self.config = ic.stage_config(image.get("config"))
        self.args = {}
        self.cmd_set = False

    def build_env(self, options_args: dict) -> dict:
        """Build args visible to RUN and to expansion: declared ones with a value, and
        proxy args given with --build-arg."""
        env = {k: v for k, v in self.args.items() if v is not None}
        for k in ic.PROXY_ARGS:
            if k in options_args and k not in env:
                env[k] = options_args[k]
        return env


class Builder(StepsMixin):
    """One build. See the module docstring."""

    def __init__(self, backend, options: BuildOptions, emit, cancelled=None):
        self.backend, self.options, self.emit = backend, options, emit
        self.cancelled = cancelled
        self.step, self.total = 0, 0
        self.consumed = set()
        self.stage_images = {}
        self.meta_values = {}
        self.context = None
        self.plan = None
        self.lexer = Lexer()

    def say(self, text: str) -> None:
        self.emit({"stream": text})

    def build(self, context) -> str:
        """Run the build.

        Args:
            context: a BuildContext (its Dockerfile and files).

        Returns:
            The final image id (``sha256:…``).

        Raises:
            GuestError: DockerfileParseError and other InvalidParameter/NotFound before or
                during the steps; BuildError for a failed RUN (with its exit code).
        """
        self.context = context
        self.cache_sources = []  # (id, image JSON) of the cache_from images that are present
        for ref in self.options.cache_from:
            found = self.backend.find_image(ref)
            if found is None:
                self.say("[Warning] could not look up %s for cache resolution, skipping\n" % ref)
            else:
                self.cache_sources.append(found)
        result = parser.parse(context.dockerfile)
        self.lexer = Lexer(result.escape)
        self.plan = stages.plan(result)
        todo = self.plan.through(self.options.target)
        if self.options.labels:
            todo[-1].commands.append(_labels_instruction(self.options.labels))
        self.total = self.plan.step_count(todo)
        if result.syntax:
            self.say("Note: the syntax directive (%s) is ignored; hostbridge builds with its "
                     "classic builder\n" % result.syntax)
        for warning in result.warnings:
            self.say("[WARNING]: %s\n" % warning)
        for arg in self.plan.meta_args:
            self.begin_step(arg)
            self.meta_arg(arg)
        image_id = None
        for stage in todo:
            image_id = self.run_stage(stage)
        if image_id is None:
            raise InvalidParameter("No image was generated. Is your Dockerfile empty?")
        unused = sorted(k for k in self.options.build_args
                        if k not in self.consumed and k not in ic.PROXY_ARGS)
        if unused:
            self.say("[Warning] One or more build-args [%s] were not consumed\n" % " ".join(unused))
        self.emit({"aux": {"ID": image_id}})
        self.say("Successfully built %s\n" % _short(image_id))
        for tag in self.options.tags:
            name = reference.parse_normalized(tag).familiar()
            self.backend.tag(image_id, name)
            self.say("Successfully tagged %s\n" % name)
        return image_id

    def begin_step(self, inst) -> None:
        if self.cancelled is not None and self.cancelled():
            raise BuildCancelled()
        self.step += 1
        self.say("Step %d/%d : %s\n" % (self.step, self.total, inst.original))

    def meta_arg(self, arg: ins.Arg) -> None:
        arg.expand(lambda w: self.lexer.process_word(w, self.meta_values))
        for name, default in arg.args:
            self.consumed.add(name)
            value = self.options.build_args.get(name, default)
            if value is not None:
                self.meta_values[name] = value
            else:
                self.meta_values.pop(name, None)

    def run_stage(self, stage) -> str:
        self.begin_step(stage.from_)
        base = self.lexer.process_word(stage.from_.base, self.meta_values)
        if not base:
            raise InvalidParameter("base name (%s) should not be blank" % stage.from_.base)
        earlier = self.plan.find(base, before=stage.index)
        if earlier is not None and earlier.index in self.stage_images:
            image_id = self.stage_images[earlier.index]
            image_id, image = self.backend.resolve_image(image_id) if image_id else (None, {})
        elif base.lower() == "scratch":
            image_id, image = None, {}
        else:
            image_id, image = self.backend.resolve_image(base, pull=self.options.pull)
        state = StageState(stage, image_id, copy.deepcopy(image))
        triggers = state.config.get("OnBuild") or []
        if triggers:
            state.config["OnBuild"] = None
            self.run_triggers(state, triggers)
        self.say(" ---> %s\n" % _short(state.image_id))  # empty for scratch, as docker prints it
        for inst in stage.commands:
            self.begin_step(inst)
            self.dispatch(state, inst)
            self.say(" ---> %s\n" % _short(state.image_id))
        self.stage_images[stage.index] = state.image_id
        return state.image_id

    def run_triggers(self, state, triggers) -> None:
        self.say("# Executing %d build trigger%s\n" % (len(triggers), "s" if len(triggers) > 1 else ""))
        for text in triggers:
            result = parser.parse(text.encode())
            node = result.nodes[0]
            if node.name in ("onbuild", "from", "maintainer"):
                raise InvalidParameter("%s isn't allowed as an ONBUILD trigger" % node.name.upper())
            self.dispatch(state, ins.from_node(node))

    # -- expansion and cache -------------------------------------------------------------

    def expansion_env(self, state) -> dict:
        env = state.build_env(self.options.build_args)
        env.update(ic.env_map(state.config.get("Env")))
        return env

    def expand(self, state, inst) -> None:
        env = self.expansion_env(state)
        inst.expand(lambda w: self.lexer.process_word(w, env))

    def cache_key(self, state, created_by: str, extra=None) -> str:
        material = json.dumps([state.image_id or "", created_by, extra], sort_keys=True)
        return "sha256:" + hashlib.sha256(material.encode()).hexdigest()

    def probe_cache(self, state, key: str, created_by: str = "") -> bool:
        """Reuse a cached image for this step when allowed; say so as docker does.

        The local cache first (this engine's earlier builds), then the ``cache_from`` images
        whose history continues this step (``created_by``), as dockerd's image cache does.
        """
        if self.options.no_cache:
            return False
        cached = self.backend.find_cache(state.image_id, key)
        if not cached and created_by:
            cached = self._from_cache_sources(state, created_by)
        if not cached:
            return False
        self.say(" ---> Using cache\n")
        state.image_id, state.image = self.backend.resolve_image(cached)
        return True

    def _from_cache_sources(self, state, created_by: str):
        """A ``cache_from`` image whose history, past this stage's, goes on with ``created_by``.

        When the step is the source's last, the source itself; otherwise an image made of its
        history and layers up to this step (dockerd's restoreCachedImage). Returns an id or None.
        """
        parent = state.image if state.image_id else {}
        hist = list(parent.get("history") or [])
        diffs = list((parent.get("rootfs") or {}).get("diff_ids") or [])
        n = len(hist)
        for sid, src in self.cache_sources:
            shist = list(src.get("history") or [])
            sdiffs = list((src.get("rootfs") or {}).get("diff_ids") or [])
            if len(shist) <= n or shist[:n] != hist or sdiffs[:len(diffs)] != diffs:
                continue
            entry = shist[n]
            if entry.get("created_by") != created_by:
                continue
            self.cache_sources = [(sid, src)]  # stay with one source from here on, as dockerd does
            if len(shist) == n + 1:
                return sid
            if not entry.get("empty_layer") and len(sdiffs) <= len(diffs):
                continue
            image = {k: v for k, v in src.items() if k not in ("id", "container", "container_config", "config",
                                                                "created", "history", "rootfs")}
            config = copy.deepcopy(state.config)
            config["Image"] = state.image_id or ""
            image.update(config=config, created=entry.get("created") or now_rfc3339(), history=hist + [entry],
                         rootfs={"type": "layers",
                                 "diff_ids": diffs + ([] if entry.get("empty_layer") else [sdiffs[len(diffs)]])})
            return self.backend.restore(state.image_id, image)
        return None

    def child_image(self, state, created_by: str, container_cmd: list, empty_layer: bool) -> dict:
        """The new image JSON for a step: the stage's config, the parent's history + one."""
        now = now_rfc3339()
        image = {k: v for k, v in state.image.items()
                 if k not in ("rootfs", "id", "container", "container_config", "created", "history")}
        image.setdefault("architecture", _arch())
        image["os"] = image.get("os") or "linux"
        config = copy.deepcopy(state.config)
        config["Image"] = state.image_id or ""
        image["config"] = config
        container_config = copy.deepcopy(config)
        container_config["Cmd"] = container_cmd
        image["container_config"] = container_config
        image["created"] = now
        entry = {"created": now, "created_by": created_by}
        if image.get("author"):
            entry["author"] = image["author"]
        if empty_layer:
            entry["empty_layer"] = True
        image["history"] = list(state.image.get("history") or []) + [entry]
        return image

    def commit_config(self, state, text: str) -> None:
        """A metadata step: no layer, one ``#(nop)`` history entry, cached by its text."""
        created_by = ic.nop(state.config, text)
        key = self.cache_key(state, created_by)
        if self.probe_cache(state, key, created_by):
            return
        cmd = ic.shell_of(state.config) + ["#(nop) ", text]
        image = self.child_image(state, created_by, cmd, empty_layer=True)
        parent = state.image_id
        state.image_id = self.backend.commit(parent, None, image)
        state.image = image
        self.backend.store_cache(parent, key, state.image_id)


def _truthy(text: str) -> bool:
    """docker's form booleans: anything but "", 0, no, false, none."""
    return text.strip().lower() not in ("", "0", "no", "false", "none")


def _json_list(text: str, name: str) -> list:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidParameter("invalid %s: not a JSON list: %s" % (name, text)) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter("invalid %s: expected a JSON list of strings" % name)
    return value


def _json_map(text: str, name: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidParameter("invalid %s: not a JSON object: %s" % (name, text)) from None
    if not isinstance(value, dict) or not all(isinstance(v, (str, type(None))) for v in value.values()):
        raise InvalidParameter("invalid %s: expected a JSON object of strings" % name)
    return value


def _check_platform(text: str) -> None:
    """Accept ``linux``, this machine's architecture, ``linux/ARCH[/VARIANT]``; the classic
    builder builds for its own platform only."""
    if not text:
        return
    parts = text.lower().split("/")
    ok = (len(parts) == 1 and parts[0] in ("linux", _arch())) or \
        (len(parts) in (2, 3) and parts[0] == "linux" and go_arch(parts[1]) == _arch())
    if not ok:
        raise InvalidParameter("invalid platform %s: this engine builds for linux/%s only" % (text, _arch()))


def _labels_instruction(labels: dict):
    keys = sorted(labels)
    node = parser.Node("label", "LABEL " + " ".join("%s='%s'" % (json.dumps(k), labels[k]) for k in keys))
    for k in keys:
        node.args += [k, "'%s'" % labels[k]]
    return ins.Label(node)


def _short(image_id: str) -> str:
    return (image_id or "").split(":")[-1][:12]


def _arch() -> str:
    return go_arch()
