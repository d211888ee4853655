"""Shared set-up for the failure-analysis tests: real journaled runs in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unerring.runner import RunOptions, RunResult, Session, execute

PLANTED = "modes=disk:2:0.3:cure+disk:4:0.3:w1"


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
    opts = RunOptions(task="hanoi", task_options={"disks": disks}, model=model, k=k, **options)
    result = execute(opts, Session(store=str(db), handle_signals=False), run_id)
    # tests open the store again; release this connection first
    result.store.close()
    return result
