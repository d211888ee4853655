"""The library entry points: run your own process (or a batch of them) with voting,
planning and a journal. Thin shims over the application layer (`unerring.app`).

Both take the same keywords (`RunOptions`, see unerring.app.keywords) and journal to
`.unerring/runs.db` in the current directory unless given another `store` (":memory:"
keeps nothing). Without a `run_id`, a run is named by what it runs (the process's class
and how it was made, the items, the model and the voting options), so the same call made
again, after a crash or a Ctrl-C or once done, goes on where the journal stopped or gives
back what it recorded, drawing nothing; another argument, model or option is another run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Unpack

from unerring.app.checks import check_made
from unerring.app.keywords import RunOptions, library_config
from unerring.app.options import BatchItem
from unerring.app.result import RunResult
from unerring.app.runner import execute
from unerring.errors import UsageError
from unerring.graph import Graph
from unerring.limits import MAX_ITEMS
from unerring.process import Process
from unerring.process_factory import OwnProcesses

__all__ = ["RunOptions", "run", "run_batch"]


def run(
    process: Process[Any, Any] | Graph,
    *,
    run_id: str | None = None,
    **options: Unpack[RunOptions],
) -> RunResult:
    """Decide every step of `process` (a chain, or a graph of them) by voting; k comes
    from `target` unless given. The keywords are `RunOptions`' (model, k, target, store,
    budget, ...); an unknown one is refused, naming those known.

    A `run_id` the store already holds resumes that run where it stopped (the
    configuration must match, option by option); a completed one is given back as
    recorded. Without one the run is named by what it runs: the same call again is the
    same run (see the module's docs). `result.output()` is the final state (a graph's
    result). `max_steps` caps a process whose `total_steps()` is None: an item whose
    `done()` is still false after that many steps (or after its `total_steps()`) fails,
    naming `done()`.
    """
    config = library_config("run", options)
    check_made(process)  # before its name is read
    return execute(config, OwnProcesses.of(process), run_id=run_id, named_by_content=True)


def run_batch(
    processes: Sequence[Process[Any, Any]] | Mapping[str, Process[Any, Any]],
    *,
    run_id: str | None = None,
    **options: Unpack[RunOptions],
) -> RunResult:
    """Decide every step of every process, as one run: one budget, one rate limit, one
    journal; many steps in flight (up to `concurrency` requests). `executor` spreads the
    items over Ray actors (`ExecutorSpec("ray", workers=N)`; the processes must pickle).
    The keywords are `run`'s (`RunOptions`).

    Items are named by the mapping's keys, else "1".."N" in order. k is planned over the
    steps of all items. An existing `run_id` resumes the batch: completed items stay as
    they are, the others go on from their last decision; a completed batch is given back
    as recorded. `result.outputs()` streams (item id, final state) pairs.
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
        raise UsageError("run_batch needs at least one process")
    for item_id, p in named:  # every one (a resume makes only those not completed)
        try:
            check_made(p)
        except UsageError as e:
            raise UsageError(f"item {item_id!r}: {e}") from None
    config = library_config("run_batch", options)
    factory = OwnProcesses(named[0][1].name, {}, dict(named))
    batch = [BatchItem(item_id, dict(p.options())) for item_id, p in named]
    return execute(config, factory, run_id=run_id, batch=batch, named_by_content=True)
