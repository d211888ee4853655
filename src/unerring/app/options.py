"""A run's options (recorded in the journal, a resume must match them) and an attempt's
session (how it runs: store, budget, transport, executor, progress)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from unerring.backends.base import Backend
from unerring.backends.factory import Transport
from unerring.executors import Execution, ExecutorSpec
from unerring.graph import MAX_DEPTH
from unerring.journal.store import MEMORY, RunRecord
from unerring.journal.writer import Durability
from unerring.planning.pricing import Prices
from unerring.process import Process
from unerring.voting.config import Budget

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class RunOptions:
    """Everything that determines a run's decisions; recorded in the journal."""

    task: str
    task_options: dict[str, Any] = field(default_factory=dict)
    model: str = "sim:error=0.01"
    k: int | None = None
    target: float = 0.95
    error_rate: float | None = None  # a real model's measured error rate, for planning
    first_temperature: float = 0.0
    temperature: float = 0.1
    max_tokens: int = 750
    max_samples_per_step: int | None = None
    on_undecided: str = "stop"
    parallel: int = 1
    record: str = "contested"
    api: str = "chat"  # chat or completions: the prompt's form, so it can change answers
    base_url: str | None = None  # the endpoint of an openai: model (never a key)
    notes: str | None = None  # a mistake notebook in the store: NAME or NAME@VERSION
    max_depth: int = MAX_DEPTH  # a graph deeper than this is refused (its node fails)
    stopping: str = "ahead-by-k"  # or "adaptive" (see unerring.voting.adaptive)
    variants: tuple[int, ...] = (0,)  # prompt variants spread over each step's samples

    def config(self) -> dict[str, Any]:
        from unerring import __version__

        c = asdict(self)
        c["variants"] = list(self.variants)  # as the journal's JSON gives it back
        c["unerring_version"] = __version__
        return c

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RunOptions:
        names = {f.name for f in fields(cls)}
        given = {k: v for k, v in config.items() if k in names}
        if "variants" in given:
            given["variants"] = tuple(given["variants"])
        return cls(**given)


# options a resume may change: they do not change which answers win
CHANGEABLE = frozenset({"parallel", "record", "unerring_version", "base_url"})


# resolved when a run starts and kept by every resume (never recomputed)
KEPT = frozenset({"stopping_resolved"})


STOPPING_RULES = ("ahead-by-k", "adaptive")


# each option's default as the journal holds it (an option newer than a run is at it)
_DEFAULTS = {
    **{f.name: f.default for f in fields(RunOptions)},
    "variants": list(RunOptions(task="").variants),
}


def config_difference(journal: dict[str, Any], given: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(journal) | set(given)):
        if name in CHANGEABLE or name in KEPT:
            continue
        if name not in journal and given.get(name) == _DEFAULTS.get(name):
            continue  # an option newer than the run, at its default: what the run used
        if journal.get(name) != given.get(name):
            out.append(f"{name}: journal has {journal.get(name)!r}, given {given.get(name)!r}")
    return out


class Watcher(Protocol):
    """Watches one attempt from outside (telemetry): wraps the backend, and hears the
    scheduler's events (items starting among them) through its on_* methods, as any
    subscriber."""

    def wrap(self, backend: Backend) -> Backend: ...

    def end(self, status: str, reason: str) -> None: ...


@dataclass(frozen=True)
class Session:
    """How this attempt runs; may differ between attempts of one run (no decision
    depends on any of it)."""

    store: str = MEMORY
    durability: Durability = "group"
    budget: Budget = field(default_factory=Budget)
    prices: Prices = field(default_factory=Prices)
    # (execution, run, (items, items completed before) for a batch, else None) -> a context
    # manager that shows progress while the run goes on
    progress: Callable[[Execution, RunRecord, tuple[int, int] | None], Any] | None = None
    handle_signals: bool = True
    transport: Transport = field(default_factory=Transport)
    max_pages: int | None = None  # cap the store's size in pages (tests simulate a full disk)
    speculate: int = 0  # steps a chain may open ahead of its vote (0: none)
    window: int | None = None  # items deciding at once (default: from the concurrency)
    # makes a Watcher for each attempt (run, k); None (the default) adds nothing to the hot path
    watch: Callable[[RunRecord, int], Watcher] | None = None
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)  # where items are decided
    notify: Callable[[str], None] | None = None  # hears what an executor reports (a restart)


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch: its id, its task options, or a process of the user's own."""

    item_id: str
    options: dict[str, Any] = field(default_factory=dict)
    process: Process[Any, Any] | None = None
    # where the item was given ("--items FILE line N"), for messages; else its id is named
    origin: str | None = None

    def where(self) -> str:
        return self.origin or f"item {self.item_id!r}"
