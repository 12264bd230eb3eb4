"""OOM-killer scores, as dockerd sets them: the containers' processes go first, then the engine,
its shims last (a dead shim orphans its container). Standard library only and cheap to import:
the engine imports it at start-up."""

from __future__ import annotations

ENGINE_SCORE_ADJ, SHIM_SCORE_ADJ, CONTAINER_SCORE_ADJ = -500, -999, 0


def set_score_adj(value: int, pid="self") -> None:
    """Write ``/proc/PID/oom_score_adj`` (inherited by every process ``pid`` starts later).

    Raises:
        OSError: no such process, or lowering it without CAP_SYS_RESOURCE (some sandboxes
            refuse negative values with EIO).
    """
    with open("/proc/%s/oom_score_adj" % pid, "w") as f:
        f.write(str(int(value)))


def score_adj(pid="self") -> int:
    """Read ``/proc/PID/oom_score_adj``. Raises OSError."""
    with open("/proc/%s/oom_score_adj" % pid) as f:
        return int(f.read())
