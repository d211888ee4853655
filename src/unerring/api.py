"""The library entry points: run your own process (or a batch of them) with voting,
planning and a journal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from unerring.app.options import BatchItem, RunOptions, Session
from unerring.app.result import RunResult
from unerring.app.runner import execute
from unerring.backends.factory import Transport
from unerring.errors import UsageError
from unerring.executors import ExecutorSpec
from unerring.graph import Graph
from unerring.journal.store import MEMORY
from unerring.journal.writer import Durability
from unerring.limits import MAX_ITEMS
from unerring.process import Process
from unerring.voting.config import Budget


def _options(name: str, task_options: dict[str, Any], **given: Any) -> RunOptions:
    return RunOptions(task=name, task_options=task_options, **given)


def run(
    process: Process[Any, Any] | Graph,
    *,
    model: str = "sim:error=0.01",
    k: int | None = None,
    target: float = 0.95,
    error_rate: float | None = None,
    store: str = MEMORY,
    run_id: str | None = None,
    durability: Durability = "group",
    budget: Budget | None = None,
    speculate: int = 0,
    **voting: Any,
) -> RunResult:
    """Decide every step of `process` (a chain, or a graph of them) by voting; k comes
    from `target` unless given.

    Extra keyword arguments are voting options of RunOptions (temperature, max_tokens,
    max_samples_per_step, on_undecided, parallel, record, stopping="adaptive", variants:
    a tuple of prompt variants). With a file `store` and a `run_id` that is already there,
    the run resumes where it stopped.
    """
    options = _options(
        process.name,
        dict(process.options()),
        model=model,
        k=k,
        target=target,
        error_rate=error_rate,
        **voting,
    )
    session = Session(
        store=store,
        durability=durability,
        budget=budget or Budget(),
        handle_signals=False,
        speculate=speculate,
    )
    return execute(options, session, run_id, process=process)


def run_batch(
    processes: Sequence[Process[Any, Any]] | Mapping[str, Process[Any, Any]],
    *,
    model: str = "sim:error=0.01",
    k: int | None = None,
    target: float = 0.95,
    error_rate: float | None = None,
    store: str = MEMORY,
    run_id: str | None = None,
    durability: Durability = "group",
    budget: Budget | None = None,
    concurrency: int = 8,
    executor: ExecutorSpec | None = None,
    **voting: Any,
) -> RunResult:
    """Decide every step of every process, as one run: one budget, one rate limit, one
    journal; many steps in flight (up to `concurrency` requests). `executor` spreads the
    items over Ray actors (`ExecutorSpec("ray", workers=N)`; the processes must pickle).

    Items are named by the mapping's keys, else "1".."N" in order. k is planned over the
    steps of all items. With a file `store` and an existing `run_id`, the batch resumes:
    completed items stay as they are, the others go on from their last decision.
    """
    if len(processes) > MAX_ITEMS:  # before an item is made of each
        raise UsageError(
            f"run_batch takes at most {MAX_ITEMS:,} processes, got {len(processes):,}; split "
            "them into several runs"
        )
    named = (
        list(processes.items())
        if isinstance(processes, Mapping)
        else [(str(i + 1), p) for i, p in enumerate(processes)]
    )
    if not named:
        raise ValueError("run_batch needs at least one process")
    first = named[0][1]
    batch = [BatchItem(item_id, dict(p.options()), p) for item_id, p in named]
    options = _options(
        first.name, {}, model=model, k=k, target=target, error_rate=error_rate, **voting
    )
    session = Session(
        store=store,
        durability=durability,
        budget=budget or Budget(),
        handle_signals=False,
        transport=Transport(concurrency=concurrency),
        executor=executor or ExecutorSpec(),
    )
    return execute(options, session, run_id, batch=batch)
