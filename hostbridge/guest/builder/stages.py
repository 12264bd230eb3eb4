"""The stage graph: which instructions belong to which ``FROM``, and what a build must run.

A Dockerfile is a list of *meta* ARGs (before the first FROM; they may only be used in FROM
lines) followed by stages, each a FROM and its instructions. Stages are numbered from 0 and
may be named (``FROM x AS name``); ``FROM name``, ``COPY --from=name|index`` refer back to an
earlier stage. As docker's classic builder, a build runs every stage up to and including the
target (``--target``, default the last), in order, and the target's image is the result.
"""

from __future__ import annotations

from ..errors import InvalidParameter
from . import instructions as ins
from .parser import DockerfileParseError, ParseResult


class Stage:
    """One ``FROM`` and the instructions after it."""

    def __init__(self, index: int, from_: ins.From):
        self.index = index
        self.from_ = from_
        self.name = from_.stage_name
        self.commands = []

    def __repr__(self):
        return "Stage(%d %r, %d commands)" % (self.index, self.name, len(self.commands))


class Plan:
    """``meta_args`` (Arg instructions before the first FROM) and ``stages`` in order."""

    def __init__(self, meta_args, stages, escape="\\"):
        self.meta_args, self.stages, self.escape = meta_args, stages, escape

    def find(self, ref: str, before: int = None):
        """The stage named ``ref`` (case-insensitive) or numbered ``ref``, or None.

        Args:
            ref: a stage name or a decimal index.
            before: only stages with an index below this (a stage can refer only back).
        """
        limit = len(self.stages) if before is None else before
        for stage in self.stages[:limit]:
            if stage.name and stage.name == ref.lower():
                return stage
        if ref.isdigit():
            i = int(ref)
            if i < limit:
                return self.stages[i]
        return None

    def through(self, target: str = "") -> list:
        """The stages a build for ``target`` runs (all up to and including it).

        Raises:
            InvalidParameter: ``failed to reach build target NAME in Dockerfile``.
        """
        if not target:
            return list(self.stages)
        for stage in self.stages:
            if stage.name and stage.name == target.lower():
                return self.stages[:stage.index + 1]
        raise InvalidParameter("failed to reach build target %s in Dockerfile" % target)

    def step_count(self, stages) -> int:
        """docker's M in ``Step N/M``: meta ARGs, plus each stage's FROM and instructions."""
        return len(self.meta_args) + sum(1 + len(s.commands) for s in stages)


def plan(result: ParseResult) -> Plan:
    """Group parsed nodes into meta ARGs and stages.

    Raises:
        DockerfileParseError: an unknown or malformed instruction (with its line), or a
            non-ARG instruction before the first FROM (``no build stage in current context``).
        InvalidParameter: two stages with one name.
    """
    meta, stages = [], []
    for node in result.nodes:
        inst = ins.from_node(node)
        if isinstance(inst, ins.From):
            if inst.stage_name and any(s.name == inst.stage_name for s in stages):
                raise DockerfileParseError("duplicate name %s" % inst.stage_name, inst.line)
            stages.append(Stage(len(stages), inst))
        elif stages:
            stages[-1].commands.append(inst)
        elif isinstance(inst, ins.Arg):
            meta.append(inst)
        else:
            raise InvalidParameter("no build stage in current context")
    if not stages:
        raise InvalidParameter("no build stage in current context")
    return Plan(meta, stages, result.escape)
