"""One line of a run's status, as `unerring runs` lists it and `show` heads it: whether a
writer still holds it, how far it got, when it started and last moved."""

from __future__ import annotations

import time
from typing import Any

from unerring.journal.lock import live_status
from unerring.journal.store import MEMORY, RunRecord


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def status_line(run: RunRecord, store: str = MEMORY) -> dict[str, Any]:
    """A run's status (`running` only while a writer holds it), steps and times."""
    total = run.steps_total
    decided = int(run.stats.get("steps_decided", 0))
    return {
        "run_id": run.run_id,
        "task": run.task,
        "kind": run.kind,
        "status": run.status if store == MEMORY else live_status(store, run.status, run.run_id),
        "steps_decided": decided,
        "steps_total": total,
        "progress": decided / total if total else None,
        "started": _when(run.created),
        "last_activity": _when(run.updated),
    }
