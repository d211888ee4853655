"""The library entry point: run your own process with voting, planning and a journal."""

from __future__ import annotations

from typing import Any

from unerring.engine import Budget
from unerring.journal.store import MEMORY
from unerring.journal.writer import Durability
from unerring.process import Process
from unerring.runner import RunOptions, RunResult, Session, execute


def run(
    process: Process[Any, Any],
    *,
    model: str = "sim:error=0.01",
    k: int | None = None,
    target: float = 0.95,
    error_rate: float | None = None,
    store: str = MEMORY,
    run_id: str | None = None,
    durability: Durability = "group",
    budget: Budget | None = None,
    **voting: Any,
) -> RunResult:
    """Decide every step of `process` by voting; k comes from `target` unless given.

    Extra keyword arguments are voting options of RunOptions (temperature, max_tokens,
    max_samples_per_step, on_undecided, parallel, record). With a file `store` and a
    `run_id` that is already there, the run resumes where it stopped.
    """
    options = RunOptions(
        task=process.name,
        task_options=dict(process.options()),
        model=model,
        k=k,
        target=target,
        error_rate=error_rate,
        **voting,
    )
    session = Session(
        store=store, durability=durability, budget=budget or Budget(), handle_signals=False
    )
    return execute(options, session, run_id, process=process)
