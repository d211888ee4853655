"""The library entry points: run your own process (or a batch of them) with voting,
planning and a journal. Thin shims over the application layer (`unerring.app`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

from unerring import defaults
from unerring.app.checks import check_made
from unerring.app.options import BatchItem, RunConfig, configure
from unerring.app.result import RunResult
from unerring.app.runner import execute
from unerring.backends.openai_config import Api
from unerring.errors import UsageError
from unerring.executors import ExecutorSpec
from unerring.graph import Graph
from unerring.journal.store import MEMORY
from unerring.journal.writer import Durability
from unerring.limits import MAX_ITEMS
from unerring.process import Process
from unerring.process_factory import OwnProcesses
from unerring.voting.config import Budget, RecordLevel, UndecidedPolicy


class VotingKeywords(TypedDict, total=False):
    """The further keywords `run` and `run_batch` take: how steps are voted and asked."""

    first_temperature: float
    temperature: float
    max_tokens: int
    max_samples_per_step: int | None
    on_undecided: UndecidedPolicy
    parallel: int
    record: RecordLevel
    stopping: str  # "ahead-by-k" or "adaptive"
    variants: tuple[int, ...]
    api: Api
    base_url: str | None
    notes: str | None
    max_depth: int
    max_steps: int | None


def _config(caller: str, named: dict[str, Any], more: Mapping[str, Any]) -> RunConfig:
    """The configuration of a library call; a keyword it does not take is refused by name."""
    known = set(VotingKeywords.__annotations__)
    unknown = sorted(set(more) - known)
    if unknown:
        names = ", ".join(sorted(known | set(named) | {"run_id"}))
        raise UsageError(f"{caller}() takes no keyword {unknown[0]!r} (known: {names})")
    given = {**named, **more, "handle_signals": False}
    return configure(RunConfig(), {k: v for k, v in given.items() if v is not None})


def run(
    process: Process[Any, Any] | Graph,
    *,
    model: str = defaults.MODEL,
    k: int | None = None,
    target: float = defaults.TARGET,
    error_rate: float | None = None,
    store: str = MEMORY,
    run_id: str | None = None,
    durability: Durability = defaults.DURABILITY,
    budget: Budget | None = None,
    speculate: int = defaults.SPECULATE,
    **voting: Unpack[VotingKeywords],
) -> RunResult:
    """Decide every step of `process` (a chain, or a graph of them) by voting; k comes
    from `target` unless given.

    Further keywords set how steps are voted (temperature, max_tokens,
    max_samples_per_step, on_undecided, parallel, record, stopping="adaptive", variants: a
    tuple of prompt variants). `max_steps` caps a process whose `total_steps()` is None:
    an item whose `done()` is still false after that many steps (or after its
    `total_steps()`) fails, naming `done()`. With a file `store` and a `run_id` that is
    already there, the run resumes where it stopped.
    """
    named = {
        "model": model,
        "k": k,
        "target": target,
        "error_rate": error_rate,
        "store": store,
        "durability": durability,
        "budget": budget,
        "speculate": speculate,
    }
    config = _config("run", named, voting)
    check_made(process)  # before its name is read
    return execute(config, OwnProcesses.of(process), run_id=run_id)


def run_batch(
    processes: Sequence[Process[Any, Any]] | Mapping[str, Process[Any, Any]],
    *,
    model: str = defaults.MODEL,
    k: int | None = None,
    target: float = defaults.TARGET,
    error_rate: float | None = None,
    store: str = MEMORY,
    run_id: str | None = None,
    durability: Durability = defaults.DURABILITY,
    budget: Budget | None = None,
    concurrency: int = defaults.CONCURRENCY,
    executor: ExecutorSpec | None = None,
    **voting: Unpack[VotingKeywords],
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
        raise UsageError("run_batch needs at least one process")
    for item_id, p in named:  # every one (a resume makes only those not completed)
        try:
            check_made(p)
        except UsageError as e:
            raise UsageError(f"item {item_id!r}: {e}") from None
    given = {
        "model": model,
        "k": k,
        "target": target,
        "error_rate": error_rate,
        "store": store,
        "durability": durability,
        "budget": budget,
        "concurrency": concurrency,
        "executor": executor,
    }
    config = _config("run_batch", given, voting)
    factory = OwnProcesses(named[0][1].name, {}, dict(named))
    batch = [BatchItem(item_id, dict(p.options())) for item_id, p in named]
    return execute(config, factory, run_id=run_id, batch=batch)
