"""Starting and resuming journaled runs: the composition of process, model, plan,
scheduler and journal that the CLI and the library API share.

A run is a set of items (a single chain is a run of one item). This module decides
nothing itself: it builds the parts, hands the items to the scheduler, and reads the
outcome back from the journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol

from unerring import reliability
from unerring.backends.base import Backend
from unerring.errors import UsageError
from unerring.events import Events, ItemEnd, NodesAdded, Totals
from unerring.executors import Execution, Executor, ExecutorSpec, Work, open_executor
from unerring.graph import MAX_DEPTH, Graph, GraphError, Node, check_nodes, check_stream
from unerring.journal.lock import RunLock, check_run_id
from unerring.journal.replay import restore_state
from unerring.journal.store import MEMORY, ItemRecord, RunRecord, Store, StoreRefused
from unerring.journal.writer import Durability, JournalWriter
from unerring.limits import MAX_ITEM_ID, MAX_ITEMS, MAX_K, check_at_most
from unerring.memory import JOURNAL_STATUS, PENDING, RestoredNode, TaskTree
from unerring.models import (
    ModelSpec,
    Transport,
    api_key,
    check_reachable,
    known_error_mixture,
    known_valid_rate,
    parse_model,
    price_table,
)
from unerring.process import Process
from unerring.scheduler import Item, Items, RunEnd, Source
from unerring.settings import Budget, Prices, VotingConfig
from unerring.stopping import AdaptiveConfig, AdaptiveRule, ErrorModel
from unerring.tasks.registry import get_task

if TYPE_CHECKING:
    from unerring.analysis.notebook import Notebook

__all__ = [
    "BatchItem",
    "RunOptions",
    "RunResult",
    "Session",
    "UsageError",
    "Watcher",
    "execute",
    "item_summary",
    "summary",
]


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
    stopping: str = "ahead-by-k"  # or "adaptive" (see unerring.stopping)
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
    """Watches one attempt from outside (telemetry): wraps the backend, learns each item's
    id as the item starts, and hears the scheduler's events through its on_* methods, as
    any subscriber."""

    def wrap(self, backend: Backend) -> Backend: ...

    def item_started(self, item: int, item_id: str) -> None: ...

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


@dataclass
class RunResult:
    """How a run ended, its summary, and its journal."""

    outcome: RunEnd
    run: RunRecord
    summary: dict[str, Any]
    store: Store

    def decisions(self, item_id: str | None = None) -> Iterator[dict[str, Any]]:
        """An item's decisions in step order (the only item of a chain by default),
        streamed from the journal."""
        index = 0
        if item_id is not None:
            found = self.store.item(self.run, item_id)
            if found is None:
                raise StoreRefused(f"run {self.run.run_id!r} has no item {item_id!r}")
            index = found.item
        return self.store.decisions(self.run, item=index)


def plan_k(options: RunOptions, steps: int | None) -> tuple[int, float | None]:
    """The k a run uses, and the valid-sample rate assumed (None when unknown)."""
    spec = parse_model(options.model)
    valid = known_valid_rate(spec)
    if options.k is not None:
        if options.k < 1:
            raise UsageError(f"--k must be at least 1, got {options.k}")
        try:
            check_at_most("--k", options.k, MAX_K)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return options.k, valid
    if not 0.0 < options.target < 1.0:
        raise UsageError(f"--target must be strictly between 0 and 1, got {options.target}")
    if steps is None:
        raise UsageError("this task's length is not known in advance: give --k")
    mixture = known_error_mixture(spec)
    if options.error_rate is not None:
        mixture = [(options.error_rate, 1.0)]
    if mixture is None:
        raise UsageError(
            "the model's error rate is unknown: give --k, or --error-rate E measured with "
            "`unerring plan --calibrate`"
        )
    try:
        # the planner looks no further than the largest k a run takes
        return reliability.k_min_mixture(mixture, steps, options.target, MAX_K), valid
    except ValueError as e:
        raise UsageError(str(e)) from None


def adaptive_prior(options: RunOptions) -> tuple[ErrorModel, float]:
    """The error model the adaptive rule starts from, and its weight in steps.

    A simulated model's own error model counts as a calibration of 100 steps; a measured
    --error-rate leaves room for hard steps (10% at error 0.45, worth 20 steps); nothing
    known starts from error 0.1 with 10% hard steps, worth 10 steps.
    """
    if options.error_rate is not None:
        return ErrorModel(0.1, min(options.error_rate, 0.45), 0.45), 20.0
    mixture = known_error_mixture(parse_model(options.model))
    if mixture is not None:
        return ErrorModel.from_components(mixture), 100.0
    return ErrorModel(0.1, 0.1, 0.45), 10.0


def adaptive_cap(k: int) -> int:
    """The adaptive rule's default cap: 50 x k, and room for a hard step near error 0.45."""
    return max(50 * k, 2000)


def _voting_k(options: RunOptions, steps: int | None) -> int:
    """k for ahead-by-k; for the adaptive rule only the default cap (50 x k) uses it."""
    if options.stopping not in STOPPING_RULES:
        raise UsageError(
            f"unknown stopping rule {options.stopping!r} (known: {', '.join(STOPPING_RULES)})"
        )
    if options.stopping == "ahead-by-k":
        return plan_k(options, steps)[0]
    if steps is None:
        raise UsageError(
            "--stopping adaptive spreads the run's error budget over its steps: this "
            "task's length is not known in advance"
        )
    try:
        return plan_k(options, steps)[0]
    except UsageError:
        if options.k is not None:
            raise
        return 20  # the model's error rate is unknown: the rule learns it


def check_variants(process: Process[Any, Any], variants: tuple[int, ...]) -> None:
    """Refuse prompt variants the process does not offer."""
    offered = process.prompt_variants()
    if max(variants) >= offered:
        raise UsageError(
            f"--variants: process {process.name!r} offers "
            + (f"prompt variants 0-{offered - 1}" if offered > 1 else "one prompt only")
            + f", not variant {max(variants)}"
        )


def new_run_id(task: str) -> str:
    return f"{task}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def make_process(options: RunOptions, item_options: dict[str, Any] | None = None) -> Any:
    """A built-in task's process (or graph) for the run's options (an item's own options
    on top)."""
    opts = dict(options.task_options)
    if item_options:
        opts.update(item_options)
    try:
        return get_task(options.task).make(opts)
    except UsageError:
        raise
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def voting_config(options: RunOptions, steps: int | None) -> VotingConfig:
    """The voting settings, with k planned for `steps` steps when not given."""
    try:
        parse_model(options.model)
        if options.api not in ("chat", "completions"):
            raise UsageError(f"--api must be chat or completions, got {options.api!r}")
        variants = tuple(options.variants)
        if not variants or len(set(variants)) != len(variants) or min(variants) < 0:
            raise UsageError(f"--variants {variants}: give distinct variant numbers from 0")
        k = _voting_k(options, steps)
        adaptive = None
        if options.stopping == "adaptive":
            assert steps is not None
            prior, weight = adaptive_prior(options)
            adaptive = AdaptiveConfig(
                steps,
                options.target,
                prior,
                prior_steps=weight,
                cap=options.max_samples_per_step or adaptive_cap(k),
            )
        return VotingConfig(
            k=k,
            first_temperature=options.first_temperature,
            temperature=options.temperature,
            max_tokens=options.max_tokens,
            max_samples_per_step=adaptive.cap if adaptive else options.max_samples_per_step,
            on_undecided=options.on_undecided,  # type: ignore[arg-type]
            parallel=options.parallel,
            record=options.record,  # type: ignore[arg-type]
            adaptive=adaptive,
            variants=variants,
        )
    except UsageError:
        raise
    except ValueError as e:
        raise UsageError(str(e)) from None


def run_prices(spec: ModelSpec, session: Session) -> Prices:
    """Dollars per token: the session's, else the price table's; a cost cap needs one."""
    if session.prices != Prices():
        return session.prices
    try:
        price = price_table(session.transport).lookup(spec.name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if price is None:
        if session.budget.max_cost is not None:
            raise UsageError(
                f"--max-cost needs the price of model {spec.name!r}: add it to a price file "
                '(--prices FILE, TOML: [prices."NAME"] input = $/M, output = $/M)'
            )
        return Prices()
    return Prices(price.input_per_m / 1e6, price.output_per_m / 1e6)


def _load_notes(store: Store, ref: str) -> Notebook:
    # imported here: the analysis package is an outer layer, needed only with --notes
    from unerring.analysis.notebook import load_notebook

    try:
        return load_notebook(store, ref)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _selector(notes: Notebook, process: Process[Any, Any]) -> Any:
    from unerring.analysis.notebook import selector

    return selector(notes.notes, process)


# a stop (Ctrl-C, SIGTERM) lets the steps in flight finish this long, so that answers on
# their way are not paid for twice, then cancels what is still pending (a server that
# stalls, a back-off sleep, the circuit breaker's wait): a resume draws it again
STOP_GRACE_S = 3.0
# a second signal cancels at once; if the run has still not ended this long after it
# (the loop held by a process's own code), the process exits without waiting
FORCE_S = 2.0


@contextmanager
def _signals(execution: Execution, enabled: bool, say: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run; a second one forces it. `say`: tell stderr."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = 0
    over = threading.Event()

    def tell(text: str) -> None:
        if say:  # (os.write: a signal handler must not re-enter a buffered stream)
            with contextlib.suppress(OSError):
                clear = "\r\x1b[K" if os.isatty(2) else ""  # over a live progress line
                os.write(2, f"{clear}unerring: {text}\n".encode())

    def handler(signum: int, _frame: object) -> None:
        nonlocal signals
        signals += 1
        name = signal.Signals(signum).name
        if signals == 1:
            tell(
                f"stopping ({name}): steps in flight get {STOP_GRACE_S:g} s to finish, "
                "then what is pending is cancelled (resume draws it again); "
                f"{name} again to stop at once"
            )
            execution.request_stop(f"interrupted by {name}", STOP_GRACE_S)
        elif signals == 2:
            execution.request_stop(f"interrupted by {name}", 0.0)
            threading.Thread(target=_force, args=(over, signum, tell), daemon=True).start()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        over.set()
        for s, h in old.items():
            signal.signal(s, h)


def _force(over: threading.Event, signum: int, tell: Callable[[str], None]) -> None:
    """Exit if the run has not ended FORCE_S after a second signal. What the journal
    writer committed stands (it commits on its own thread); the rest is drawn again."""
    if over.wait(FORCE_S):
        return
    tell(
        f"forced to stop ({signal.Signals(signum).name}); what was committed stands, "
        "resume the run to go on"
    )
    os._exit(128 + signum)


def summary(
    run: RunRecord,
    totals: dict[str, Any],
    outcome: RunEnd | None,
    store: Store,
    attempts: int,
) -> dict[str, Any]:
    """The run's summary (the `--json` line): totals over all its items."""
    cfg = run.config
    decided = int(totals.get("steps_decided", 0))
    samples = int(totals.get("samples", 0))
    wall = float(totals.get("wall_s", 0.0))
    k = cfg.get("k_resolved")
    has_checker = int(totals.get("checked", 0)) > 0 or decided == 0
    out = {
        "run_id": run.run_id,
        "task": run.task,
        "task_options": cfg.get("task_options", {}),
        "model": cfg.get("model"),
        "k": k,
        "stopping": cfg.get("stopping", "ahead-by-k"),
        "status": outcome.status if outcome else run.status,
        "reason": outcome.reason if outcome else run.reason,
        "steps_total": run.steps_total,
        "steps_decided": decided,
        "errors": int(totals.get("errors", 0)) if has_checker else None,
        "undecided": int(totals.get("undecided", 0)),
        "samples": samples,
        "red_flags": int(totals.get("red_flags", 0)),
        "flags": totals.get("flags", {}),
        "samples_per_step": samples / decided if decided else 0.0,
        "prompt_tokens": int(totals.get("prompt_tokens", 0)),
        "completion_tokens": int(totals.get("completion_tokens", 0)),
        "cost": float(totals.get("cost", 0.0)),
        "transport_failures": int(totals.get("transport_failures", 0)),
        "speculative_samples": int(totals.get("speculative_samples", 0)),
        "wall_s": wall,
        "us_per_step": wall * 1e6 / decided if decided else 0.0,
        "attempts": attempts,
        "store": store.path,
    }
    if run.kind == "batch":
        counts = store.item_counts(run)
        out["items"] = sum(counts.values())
        out["items_completed"] = counts.get("completed", 0)
        out["items_stopped"] = counts.get("stopped", 0)
        out["items_failed"] = counts.get("failed", 0)
        out["items_pending"] = counts.get("pending", 0)
        out["items_not_completed"] = [
            {"id": it.item_id, "status": it.status, "reason": it.reason}
            for it in _first_unfinished(store, run, 20)
        ]
    return out


def item_summary(run: RunRecord, item: ItemRecord, store: Store) -> dict[str, Any]:
    """One item of a batch in the single-run form of `summary`."""
    s = summary(replace(run, kind="chain"), item.stats, None, store, len(store.attempts(run)))
    s["task_options"] = {**run.config.get("task_options", {}), **item.options}
    s["item"] = item.item_id
    s["status"] = item.status
    s["reason"] = item.reason
    s["steps_total"] = item.steps_total
    return s


def _first_unfinished(store: Store, run: RunRecord, n: int) -> list[ItemRecord]:
    out = []
    for it in store.items(run, unfinished=True):
        out.append(it)
        if len(out) == n:
            break
    return out


def _batch_steps(options: RunOptions, batch: Sequence[BatchItem]) -> list[int | None]:
    """Each item's number of steps (building each item's process once, to check it)."""
    steps: list[int | None] = []
    for b in batch:
        try:
            p = b.process if b.process is not None else make_process(options, b.options)
        except UsageError as e:
            raise UsageError(f"{b.where()}: {e}") from None
        if isinstance(p, Graph):
            raise UsageError(
                f"task {options.task!r} is a graph: a batch of graphs is not supported; "
                "run each graph on its own"
            )
        if options.variants != (0,):
            check_variants(p, tuple(options.variants))
        steps.append(p.total_steps())
    return steps


def _shown(value: object, limit: int = 40) -> str:
    """A value for a message, cut short: an id may be megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def item_id_problem(item_id: object) -> str | None:
    """What is wrong with an item id (None: nothing). Ids are names that messages, tables
    and the journal's index repeat: a short line of printable characters."""
    if not isinstance(item_id, str) or not item_id:
        return "must be a non-empty string"
    if len(item_id) > MAX_ITEM_ID:
        return f"is {len(item_id):,} characters long; ids are at most {MAX_ITEM_ID}"
    if not item_id.isprintable():
        return "holds a control character (a newline, a tab); ids are printable text"
    return None


def check_batch(batch: Sequence[BatchItem]) -> None:
    if not batch:
        raise UsageError("a batch needs at least one item")
    if len(batch) > MAX_ITEMS:
        raise UsageError(
            f"a batch takes at most {MAX_ITEMS:,} items, got {len(batch):,}; split it into "
            "several runs"
        )
    seen: set[str] = set()
    for b in batch:
        problem = item_id_problem(b.item_id)
        if problem is not None:
            raise UsageError(f"{b.origin or 'a batch item'}: item id {_shown(b.item_id)} {problem}")
        if b.item_id in seen:
            raise UsageError(f"item id {b.item_id!r} appears twice; ids must be unique")
        seen.add(b.item_id)


def execute(
    options: RunOptions,
    session: Session,
    run_id: str | None = None,
    *,
    resume: bool = False,
    events: Events | None = None,
    on_start: Callable[[RunRecord, int], None] | None = None,
    process: Process[Any, Any] | Graph | None = None,
    batch: Sequence[BatchItem] | None = None,
) -> RunResult:
    """Start (or resume) a run and drive it to its end; the journal holds everything.

    `process` runs a user's own process (or graph) instead of the built-in task
    `options.task`; `batch` makes the run a batch of items (each a built-in task with its
    own options, or a process of the user's own). Resuming a batch of own processes needs
    the same batch, a graph of one's own the same graph.
    """
    if session.speculate < 0:
        raise UsageError(f"--speculate must not be negative, got {session.speculate}")
    if run_id is not None:
        try:
            check_run_id(run_id)
        except ValueError as e:
            raise UsageError(str(e)) from None
    # everything a new run needs is checked before the store is touched
    rows: list[tuple[str, dict[str, Any], int | None]] = []
    steps: int | None = None
    checked: list[Node] | None = None  # a graph's first nodes, checked here
    if batch is not None:
        check_batch(batch)
        if not resume:
            item_steps = _batch_steps(options, batch)
            if None not in item_steps:
                steps = sum(s for s in item_steps if s is not None)
            rows = [(b.item_id, b.options, s) for b, s in zip(batch, item_steps, strict=True)]
    elif not resume:
        if process is None:
            process = make_process(options)
        steps = process.total_steps()
        if isinstance(process, Graph):
            try:  # a graph that cannot run is refused before anything is written
                first = process.nodes()
                if isinstance(first, Sequence):
                    checked = check_nodes(first, (), options.max_depth)
                else:  # a stream: read through once, holding an index per node
                    check_stream(first)
            except GraphError as e:
                raise UsageError(str(e)) from None
            if options.variants != (0,):
                raise UsageError(
                    f"--variants: task {options.task!r} is a graph; prompt variants are "
                    "for chains and batches"
                )
        else:
            rows = [("1", {}, steps)]
            if options.variants != (0,):
                check_variants(process, tuple(options.variants))
    if not resume:
        voting_config(options, steps)
    try:
        spec = parse_model(options.model)
        api_key(spec, session.transport)  # refused before any record
        if spec.members:  # an ensemble: every member's server answers before anything
            check_reachable(spec, session.transport, os.environ)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if options.stopping == "adaptive" and session.executor.kind != "local":
        # items learn from earlier items' steps, in one rule: it lives in one process
        raise UsageError(
            "--stopping adaptive runs on the local executor (its rule learns from every "
            "item's decided steps, in this process); leave out --executor ray"
        )
    # the last check before the store: an executor that cannot start (Ray missing, an
    # address where nothing answers) writes nothing
    executor = open_executor(session.executor, session.notify)
    try:
        executor.check(session.transport)
        return _execute(
            options, session, run_id, resume, events, on_start, process, batch, steps, rows,
            executor, checked,
        )  # fmt: skip
    finally:
        executor.close()


def _execute(
    options: RunOptions,
    session: Session,
    run_id: str | None,
    resume: bool,
    events: Events | None,
    on_start: Callable[[RunRecord, int], None] | None,
    process: Process[Any, Any] | Graph | None,
    batch: Sequence[BatchItem] | None,
    steps: int | None,
    rows: list[tuple[str, dict[str, Any], int | None]],
    executor: Executor,
    checked: list[Node] | None = None,
) -> RunResult:
    """`execute` once its executor is open: the store, the run, its lock, the drive."""
    store = Store(session.store, max_pages=session.max_pages)
    run = store.get_run(run_id) if run_id else None
    if run is None and resume:
        raise StoreRefused(f"no run {run_id!r} in {session.store} (see `unerring runs`)")
    if run is not None:
        if (run.kind == "batch") != (batch is not None) and not (run.kind == "batch" and resume):
            raise UsageError(
                f"run {run.run_id!r} is a {run.kind} in the journal; resume it as one "
                f"(`unerring resume {run.run_id}`)"
            )
        steps = run.steps_total  # planned when the run started: the same k again
    voting = voting_config(options, steps)
    notes = None
    if options.notes is not None:
        # pinned to a version, so that a resume puts the same notes in the same prompts
        notes = _load_notes(store, options.notes)
        options = replace(options, notes=f"{notes.name}@{notes.version}")
    config = options.config()
    config["k_resolved"] = voting.k
    if voting.adaptive is not None:
        config["stopping_resolved"] = voting.adaptive.as_dict()
    if run is None:
        kind = "batch" if batch is not None else "graph" if isinstance(process, Graph) else "chain"
        run = store.create_run(
            run_id or new_run_id(options.task), options.task, config, steps, rows, kind
        )
    else:
        diff = config_difference(run.config, config)
        if diff:
            raise UsageError(
                f"run {run.run_id!r} in the journal was made with other options; "
                f"refusing to mix them: {'; '.join(diff)}"
            )
        if run.status == "completed":
            raise StoreRefused(f"run {run.run_id!r} is already completed; nothing to resume")
        kept = run.config.get("stopping_resolved")
        if kept is not None:  # the rule's parameters as the run started, not recomputed
            voting = replace(voting, adaptive=AdaptiveConfig.from_dict(kept))
    lock = None if store.memory else RunLock(session.store, run.run_id)
    if lock is not None:
        lock.acquire()
    try:
        if on_start is not None:
            on_start(run, voting.k)
        own: dict[str, Process[Any, Any]] = {
            b.item_id: b.process for b in batch or () if b.process is not None
        }
        graph = process if isinstance(process, Graph) else None
        if run.kind == "graph" and graph is None:
            graph = make_process(options)
        if batch is None and isinstance(process, Process):
            own["1"] = process
        return _drive(
            voting, options, session, store, run, events, own, executor, notes, graph,
            checked=checked,
        )  # fmt: skip
    finally:
        if lock is not None:
            lock.release()


def _drive(
    voting: VotingConfig,
    options: RunOptions,
    session: Session,
    store: Store,
    run: RunRecord,
    events: Events | None,
    own: dict[str, Process[Any, Any]],
    executor: Executor,
    notes: Notebook | None = None,
    graph: Graph | None = None,
    *,
    checked: list[Node] | None = None,
) -> RunResult:
    spec = parse_model(options.model)
    prices = run_prices(spec, session)
    first_own = next(iter(own.values()), None)
    stop = (
        first_own.stop
        if first_own is not None
        else graph.stop
        if graph is not None
        else make_process(options).stop
    )
    transport = replace(
        session.transport,
        api="completions" if options.api == "completions" else "chat",
        base_url=session.transport.base_url or options.base_url,
    )
    if not transport.stop:
        # a completion prompt's answer ends where the process says (one line for addition)
        transport = replace(transport, stop=stop)
    events = events or Events()
    totals = Totals(run.stats)
    store.reset_items(run)
    pending = list(store.items(run, unfinished=True))
    done = store.item_counts(run).get("completed", 0)
    # the processes of items started and not yet seen by the journal writer, which asks
    # once per item and keeps it until the item's end is committed
    live: dict[int, Process[Any, Any]] = {}
    watcher = session.watch(run, voting.k) if session.watch is not None else None
    if watcher is not None:
        events.subscribe(watcher)
    rule = None
    if voting.adaptive is not None:
        rule = _learnt_rule(voting.adaptive, store, run, pending)
    journaled = _journaled(graph, store, run) if graph is not None else ([], None, None)
    attempt = store.begin_attempt(run)
    work = Work(
        spec, transport, voting, prices, session.budget, session.speculate, session.window, rule
    )
    execution = executor.start(work, events, totals, None if watcher is None else watcher.wrap)
    writer = JournalWriter(
        store,
        run,
        live.pop,
        durability=session.durability,
        on_error=execution.request_stop,
    )
    events.subscribe(writer)

    def items() -> Iterator[Item]:
        for rec in pending:
            p = own.get(rec.item_id) or make_process(options, rec.options)
            state = (
                p.initial_state()
                if rec.next_step == 0 and rec.state is None
                else restore_state(p, store, run, rec.item, rec.state)
            )
            yield Item(
                rec.item,
                p,
                state,
                rec.next_step,
                None if notes is None else _selector(notes, p),
                rec.item_id,
            )

    tree: TaskTree | None = None
    source: Source
    if graph is not None:
        tree = _tree(graph, options, store, run, events, journaled, checked)
        source = Tracked(tree, live, watcher)
    else:
        source = Tracked(Items(items()), live, watcher)
    store.forget_node_ends()  # (read to resume: not held through the attempt)

    outcome: RunEnd | None = None
    try:
        with _signals(execution, session.handle_signals, session.notify is not None):
            counts = (len(pending) + done, done) if run.kind == "batch" else None
            progress = session.progress(execution, run, counts) if session.progress else None
            with progress if progress is not None else contextlib.nullcontext():
                outcome = execution.run(source)
    finally:
        writer.close()
        if outcome is None:
            status, reason = "stopped", "interrupted"
        else:
            status, reason = outcome.status, outcome.reason
        failure = writer.error or (None if tree is None else tree.failure)
        if failure is not None:
            status, reason = "failed", failure
            if outcome is not None:
                outcome = replace(outcome, status="failed", reason=failure)
        # if the store itself failed (disk full), the committed records still stand
        with contextlib.suppress(Exception):
            store.end_attempt(run, attempt, status, reason)
        if watcher is not None:
            watcher.end(status, reason)
    fresh = store.get_run(run.run_id) or run
    assert outcome is not None
    s = summary(fresh, writer.totals.as_dict(), outcome, store, attempt)
    if rule is not None:
        s["stopping_state"] = rule.describe()
    if tree is not None and graph is not None:
        s["nodes"] = len(tree.seen)
        s["result_correct"] = graph.check(tree.outputs()) if outcome.status == "completed" else None
    s.update(execution.report())
    return RunResult(outcome, fresh, s, store)


def _learnt_rule(
    config: AdaptiveConfig, store: Store, run: RunRecord, pending: list[ItemRecord]
) -> AdaptiveRule:
    """The adaptive rule as the journal left it: every committed decision replayed.

    A batch's items learn from one another (by index); a graph's node indices are hashes,
    with no order to learn in, so each node learns from its own steps only."""
    rule = AdaptiveRule(config, across_items=run.kind != "graph")
    items = list(store.items(run))
    for it in items:
        if not it.next_step:
            continue
        for d in store.decisions(run, item=it.item):
            step = int(d["step"])
            if step >= it.next_step:  # an undecided step that stopped: decided again
                break
            rule.observe(step, json.loads(d["votes"]), it.item)
    if run.kind != "graph":
        rule.begin(len(items), (it.item for it in pending))
    return rule


Journaled = tuple[list[ItemRecord], Iterator[Node] | None, dict[str, int | None] | None]


def _journaled(graph: Graph, store: Store, run: RunRecord) -> Journaled:
    """A graph's nodes in the journal (none: a new run) and, for a graph whose nodes are an
    iterator, the stream past those the journal holds and their uses (the nodes still to
    come may read their results). A stream that no longer makes the journal's nodes is
    refused before the attempt begins."""
    rows = list(store.items(run))
    first = graph.nodes() if rows else ()
    if isinstance(first, Sequence):
        return rows, None, None
    stream = iter(first)
    uses: dict[str, int | None] = {}
    claimed: Counter[str] = Counter()
    for r in rows:
        if r.parent is not None:
            continue
        n = next(stream, None)
        if n is None or n.id != r.item_id:
            raise UsageError(
                f"run {run.run_id!r}: the graph's nodes are not those the journal holds "
                f"(node {r.item_id!r} there, {'none' if n is None else repr(n.id)} now); "
                "a graph must make the same nodes each time"
            )
        uses[n.id] = n.uses
        claimed.update(d for d in n.deps if d in uses)
    over = [d for d, c in claimed.items() if (u := uses[d]) is not None and c > u]
    if over:
        raise UsageError(
            f"run {run.run_id!r}: more nodes depend on {over[0]!r} than its `uses` says"
        )
    return rows, stream, uses


def _tree(
    graph: Graph,
    options: RunOptions,
    store: Store,
    run: RunRecord,
    events: Events,
    journaled: Journaled,
    checked: list[Node] | None,
) -> TaskTree:
    """A graph run's task memory tree: its first nodes (`checked`: as checked before the
    store was touched), or the journal's (a resume)."""

    def added(x: NodesAdded) -> None:
        for fn in events.nodes_added:
            fn(x)

    def restore(process: Process[Any, Any], item: int, next_step: int, saved: str | None) -> Any:
        return restore_state(process, store, run, item, saved)

    tree = TaskTree(graph, max_depth=options.max_depth, on_added=added, restore=restore)
    rows, stream, uses = journaled
    if not rows:
        tree.start(checked)
        return tree
    by_index = {r.item: r.item_id for r in rows}
    tree.restore_rows(
        [
            RestoredNode(
                Node(
                    r.item_id,
                    r.kind or "step",
                    graph.load_output(r.input) if r.input else None,
                    tuple(json.loads(r.deps)) if r.deps else (),
                ),
                None if r.parent is None else by_index.get(r.parent),
                r.depth,
                JOURNAL_STATUS.get(r.status, PENDING),
                graph.load_output(r.output) if r.output is not None else None,
                r.next_step,
                r.state,
            )
            for r in rows
        ],
        uses,
    )
    if stream is not None:
        tree.follow(stream)
    return tree


class Tracked:
    """A source whose items' processes are kept (by item index) until the journal has
    taken their end: the journal writer asks for them (dump_state, features)."""

    def __init__(
        self,
        source: Source,
        live: dict[int, Process[Any, Any]],
        watcher: Watcher | None = None,
    ) -> None:
        self.source = source
        self.live = live
        self.watcher = watcher
        # the source's own: every item's end passes here (no call of this layer's)
        self.ended: Callable[[Item, ItemEnd], ItemEnd] = source.ended

    def take(self) -> Item | None:
        it = self.source.take()
        if it is not None:
            self.live[it.index] = it.process
            if self.watcher is not None:
                self.watcher.item_started(it.index, it.item_id)
        return it
