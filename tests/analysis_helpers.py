"""Shared set-up for the failure-analysis tests: real journaled runs in tmp_path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.helpers import config
from unerring.app.options import BatchItem
from unerring.app.result import RunResult
from unerring.app.runner import execute
from unerring.tasks.registry import task_processes
from unerring.voting.config import Budget

PLANTED = "modes=disk:2:0.3:cure+disk:4:0.3:w1"
# a systematic wrong answer on every disk=2 step of every item (not curable by a note)
BATCH_MODE = "modes=disk:2:0.3:w1"


def sim(seed: int, extra: str = PLANTED, error: float = 0.01) -> str:
    return f"sim:error={error},seed={seed}" + (f",{extra}" if extra else "")


def run(
    db: Path,
    run_id: str,
    model: str,
    *,
    disks: int = 8,
    k: int = 4,
    **options: Any,
) -> RunResult:
    cfg = config(model=model, k=k, store=str(db), handle_signals=False, **options)
    result = execute(cfg, task_processes("hanoi", {"disks": disks}), run_id=run_id)
    # tests open the store again; release this connection first
    result.store.close()
    return result


def batch(
    db: Path,
    run_id: str,
    model: str,
    sizes: Sequence[int] = (6,) * 8,
    *,
    k: int = 3,
    budget: Budget | None = None,
    **options: Any,
) -> RunResult:
    """A batch run of Hanoi items "1", "2", ... with the given numbers of disks."""
    cfg = config(
        model=model, k=k, store=str(db), handle_signals=False, budget=budget or Budget(), **options
    )
    items = [BatchItem(str(i), {"disks": d}) for i, d in enumerate(sizes, 1)]
    result = execute(cfg, task_processes("hanoi", {"disks": sizes[0]}), run_id=run_id, batch=items)
    result.store.close()
    return result
