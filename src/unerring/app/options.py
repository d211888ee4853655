"""One run's configuration, as one frozen tree checked when made: what decides its answers
(recorded in the journal: a resume must match it) and how this attempt runs (a resume may
change any of it). `configure` sets any option by its one name, as the library's keywords
and the CLI's flags spell it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

from unerring import defaults
from unerring.backends.base import Backend
from unerring.backends.factory import Transport
from unerring.backends.spec import ModelSpec, parse_model
from unerring.core.events import Events
from unerring.errors import UsageError
from unerring.executors import Execution, ExecutorSpec
from unerring.journal.store import MEMORY, RunRecord
from unerring.journal.writer import Durability
from unerring.planning.plan import VotingOptions
from unerring.planning.pricing import Prices
from unerring.voting.config import Budget

# parsed once, when this module is imported: a run parses only the model it is given
DEFAULT_MODEL = parse_model(defaults.MODEL)


@dataclass(frozen=True)
class Session:
    """How this attempt runs; may differ between attempts of one run (no decision
    depends on any of it)."""

    store: str = MEMORY  # a session keeps nothing unless given a store
    durability: Durability = defaults.DURABILITY
    budget: Budget = field(default_factory=Budget)
    prices: Prices = field(default_factory=Prices)  # (none given: the price table's)
    transport: Transport = field(default_factory=Transport)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)  # where items are decided
    speculate: int = defaults.SPECULATE  # steps a chain may open ahead of its vote
    window: int | None = None  # items deciding at once (default: from the concurrency)
    max_pages: int | None = None  # cap the store's size in pages (tests simulate a full disk)
    # SIGINT and SIGTERM stop the run cleanly; False (a library call): Ctrl-C stops it
    # cleanly, then raises one KeyboardInterrupt (see app.signals.interrupt_on_sigint)
    handle_signals: bool = True

    def __post_init__(self) -> None:
        if self.speculate < 0:
            raise UsageError(
                f"{{speculate}} must not be negative, got {self.speculate}", params=("speculate",)
            )
        if self.durability not in ("group", "sync"):
            raise UsageError(
                f"{{durability}} must be group or sync, got {self.durability!r}",
                params=("durability",),
            )


@dataclass(frozen=True)
class RunConfig:
    """One run's configuration: the model, the voting, the graph's depth and notes (all
    recorded with the run), and the session of this attempt."""

    model: ModelSpec = DEFAULT_MODEL
    voting: VotingOptions = field(default_factory=VotingOptions)
    notes: str | None = None  # a mistake notebook in the store: NAME or NAME@VERSION
    max_depth: int = defaults.MAX_DEPTH  # a graph deeper than this is refused
    # an item whose process has no total_steps() fails if done() is still false after
    # this many steps (None: no cap); a process with a total fails after its total
    max_steps: int | None = None
    session: Session = field(default_factory=Session)

    def __post_init__(self) -> None:
        if self.max_depth < 1:
            raise UsageError(
                f"{{max_depth}} must be at least 1, got {self.max_depth}", params=("max_depth",)
            )
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool)
            or not isinstance(self.max_steps, int)
            or self.max_steps < 1
        ):
            raise UsageError(
                f"{{max_steps}} must be a whole number of at least 1, got {self.max_steps!r}",
                params=("max_steps",),
            )
        if self.voting.stopping == "adaptive" and self.session.executor.kind != "local":
            # items learn from earlier items' steps, in one rule: it lives in one process
            raise UsageError(
                "{stopping} adaptive runs on the local executor (its rule learns from every "
                "item's decided steps, in this process); leave out {executor} ray",
                params=("stopping", "executor"),
            )


# every option by its one name (a library keyword, a CLI flag's dest) and its place
PLACES: Mapping[str, tuple[str, ...]] = {
    **{f.name: ("voting", f.name) for f in fields(VotingOptions)},
    "model": ("model",),
    "api": ("model", "api"),
    "notes": ("notes",),
    "max_depth": ("max_depth",),
    "max_steps": ("max_steps",),
    **{
        n: ("session", n)
        for n in ("store", "durability", "prices", "speculate", "window", "max_pages")
    },
    "handle_signals": ("session", "handle_signals"),
    "budget": ("session", "budget"),
    **{f.name: ("session", "budget", f.name) for f in fields(Budget)},
    "transport": ("session", "transport"),
    **{
        f.name: ("session", "transport", f.name)
        for f in fields(Transport)
        if f.name not in ("retry", "stop")
    },
    "max_outage_s": ("session", "transport", "retry", "max_outage_s"),
    "executor": ("session", "executor"),
}


def configure(config: RunConfig, given: Mapping[str, Any]) -> RunConfig:
    """`config` with the options in `given` (by their names in PLACES) replaced, each part
    rebuilt once (and so checked once); an unknown name is refused, naming the known."""
    unknown = sorted(set(given) - set(PLACES))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r} (known: {', '.join(sorted(PLACES))})")
    changes: dict[tuple[str, ...], Any] = {PLACES[n]: v for n, v in given.items()}
    api = changes.pop(("model", "api"), None)
    text = changes.pop(("model",), None)
    if text is not None or api is not None:
        asked = api or config.model.api
        if isinstance(text, ModelSpec):
            changes[("model",)] = text.asked(asked)
        else:
            try:
                changes[("model",)] = (
                    config.model.asked(asked) if text is None else parse_model(text, asked)
                )
            except UsageError:
                raise
            except ValueError as e:
                raise UsageError(str(e)) from None
    out: RunConfig = _replaced(config, changes)
    return out


def _replaced(obj: Any, changes: Mapping[tuple[str, ...], Any]) -> Any:
    """`obj` with each path's value replaced: one `replace` per object along the paths."""
    mine: dict[str, Any] = {}
    deeper: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in changes.items():
        if len(path) == 1:
            mine[path[0]] = value
        else:
            deeper.setdefault(path[0], {})[path[1:]] = value
    for name, inner in deeper.items():  # on top of a whole part given as well
        mine[name] = _replaced(mine.get(name, getattr(obj, name)), inner)
    return replace(obj, **mine) if mine else obj


class Watcher(Protocol):
    """Watches one attempt from outside (telemetry): wraps the backend, and hears the
    scheduler's events (items starting among them) through its on_* methods, as any
    subscriber."""

    def wrap(self, backend: Backend) -> Backend: ...

    def end(self, status: str, reason: str) -> None: ...


# (execution, run, (items, items completed before) for a batch, else None) -> a context
# manager that shows progress while the run goes on
ShowProgress = Callable[[Execution, RunRecord, tuple[int, int] | None], Any]


@dataclass(frozen=True)
class Hooks:
    """What the caller hears while a run goes on (none of it is configuration): events,
    the run's start, a progress display, a watcher per attempt, executor notices."""

    events: Events | None = None
    on_start: Callable[[RunRecord, int], None] | None = None  # (run, k) once it is open
    progress: ShowProgress | None = None
    # makes a Watcher for each attempt (run, k); None (the default) adds nothing to the hot path
    watch: Callable[[RunRecord, int], Watcher] | None = None
    notify: Callable[[str], None] | None = None  # hears what an executor reports (a restart)


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch: its id and its options (on top of the run's)."""

    item_id: str
    options: Mapping[str, Any] = field(default_factory=dict)
    # where the item was given ("--items FILE line N"), for messages; else its id is named
    origin: str | None = None

    def where(self) -> str:
        return self.origin or f"item {self.item_id!r}"
