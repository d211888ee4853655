"""Starting and resuming journaled runs: the composition of process, model, plan, engine
and journal that the CLI and the library API share."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol

from unerring import reliability
from unerring.backends.base import Backend
from unerring.engine import Budget, Engine, Outcome, Prices, VotingConfig
from unerring.events import Events, Stats, TransportFailure
from unerring.journal.lock import RunLock, check_run_id
from unerring.journal.store import MEMORY, RunRecord, Store, StoreError
from unerring.journal.writer import Durability, JournalWriter
from unerring.models import (
    ModelSpec,
    Transport,
    known_error_mixture,
    known_valid_rate,
    make_backend,
    parse_model,
    price_table,
)
from unerring.process import Process
from unerring.tasks.registry import get_task

if TYPE_CHECKING:
    from unerring.analysis.notebook import Notebook


class UsageError(ValueError):
    """Bad input from the user: exit code 2, one line."""


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

    def config(self) -> dict[str, Any]:
        from unerring import __version__

        c = asdict(self)
        c["unerring_version"] = __version__
        return c

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RunOptions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})


# options a resume may change: they do not change which answers win
CHANGEABLE = frozenset({"parallel", "record", "unerring_version", "base_url"})


def config_difference(journal: dict[str, Any], given: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(journal) | set(given)):
        if name in CHANGEABLE:
            continue
        if journal.get(name) != given.get(name):
            out.append(f"{name}: journal has {journal.get(name)!r}, given {given.get(name)!r}")
    return out


class Watcher(Protocol):
    """Watches one attempt from outside (telemetry): wraps the backend, and hears the
    engine's events through its on_decision/on_transport_failure, as any subscriber."""

    def wrap(self, backend: Backend) -> Backend: ...

    def end(self, status: str, reason: str) -> None: ...


@dataclass(frozen=True)
class Session:
    """How this attempt runs; may differ between attempts of one run."""

    store: str = MEMORY
    durability: Durability = "group"
    budget: Budget = field(default_factory=Budget)
    prices: Prices = field(default_factory=Prices)
    progress: Callable[[Engine, RunRecord], Any] | None = None  # returns a context manager
    handle_signals: bool = True
    transport: Transport = field(default_factory=Transport)
    max_pages: int | None = None  # cap the store's size in pages (tests simulate a full disk)
    # makes a Watcher for each attempt (run, k); None (the default) adds nothing to the hot path
    watch: Callable[[RunRecord, int], Watcher] | None = None


@dataclass
class RunResult:
    """How a run ended, its summary, and its journal."""

    outcome: Outcome
    run: RunRecord
    summary: dict[str, Any]
    store: Store

    def decisions(self) -> Iterator[dict[str, Any]]:
        """The run's decisions in step order (streamed from the journal)."""
        return self.store.decisions(self.run)


def plan_k(options: RunOptions, steps: int | None) -> tuple[int, float | None]:
    """The k a run uses, and the valid-sample rate assumed (None when unknown)."""
    spec = parse_model(options.model)
    valid = known_valid_rate(spec)
    if options.k is not None:
        if options.k < 1:
            raise UsageError(f"--k must be at least 1, got {options.k}")
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
        return reliability.k_min_mixture(mixture, steps, options.target), valid
    except ValueError as e:
        raise UsageError(str(e)) from None


def new_run_id(task: str) -> str:
    return f"{task}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def build(
    options: RunOptions, process: Process[Any, Any] | None = None
) -> tuple[Process[Any, Any], VotingConfig]:
    """The process (a built-in task unless one is given) and the voting settings."""
    try:
        if process is None:
            process = get_task(options.task).make(options.task_options)
        parse_model(options.model)
        if options.api not in ("chat", "completions"):
            raise UsageError(f"--api must be chat or completions, got {options.api!r}")
        k, _ = plan_k(options, process.total_steps())
        voting = VotingConfig(
            k=k,
            first_temperature=options.first_temperature,
            temperature=options.temperature,
            max_tokens=options.max_tokens,
            max_samples_per_step=options.max_samples_per_step,
            on_undecided=options.on_undecided,  # type: ignore[arg-type]
            parallel=options.parallel,
            record=options.record,  # type: ignore[arg-type]
        )
    except UsageError:
        raise
    except ValueError as e:
        raise UsageError(str(e)) from None
    return process, voting


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


def _restore_state(process: Process[Any, Any], store: Store, run: RunRecord) -> Any:
    if run.state is not None:
        return process.load_state(run.state)
    # no snapshot: replay the committed winners from the initial state
    state = process.initial_state()
    for row in store.decisions(run):
        answer = process.parse(row["winner"])
        state = process.advance(state, answer)
    return state


@contextmanager
def _signals(engine: Engine, enabled: bool) -> Iterator[None]:
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        engine.request_stop(f"interrupted by {signal.Signals(signum).name}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def summary(
    run: RunRecord, totals: dict[str, Any], outcome: Outcome | None, store: Store, attempts: int
) -> dict[str, Any]:
    cfg = run.config
    decided = int(totals.get("steps_decided", 0))
    samples = int(totals.get("samples", 0))
    wall = float(totals.get("wall_s", 0.0))
    k = cfg.get("k_resolved")
    has_checker = int(totals.get("checked", 0)) > 0 or decided == 0
    return {
        "run_id": run.run_id,
        "task": run.task,
        "task_options": cfg.get("task_options", {}),
        "model": cfg.get("model"),
        "k": k,
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
        "wall_s": wall,
        "us_per_step": wall * 1e6 / decided if decided else 0.0,
        "attempts": attempts,
        "store": store.path,
    }


def execute(
    options: RunOptions,
    session: Session,
    run_id: str | None = None,
    *,
    resume: bool = False,
    events: Events | None = None,
    on_start: Callable[[RunRecord, int], None] | None = None,
    process: Process[Any, Any] | None = None,
) -> RunResult:
    """Start (or resume) a run and drive it to its end; the journal holds everything.

    `process` runs a user's own process instead of the built-in task `options.task`.
    """
    process, voting = build(options, process)
    store = Store(session.store, max_pages=session.max_pages)
    notes = None
    if options.notes is not None:
        # pinned to a version, so that a resume puts the same notes in the same prompts
        notes = _load_notes(store, options.notes)
        options = replace(options, notes=f"{notes.name}@{notes.version}")
    config = options.config()
    config["k_resolved"] = voting.k
    if run_id is not None:
        try:
            check_run_id(run_id)
        except ValueError as e:
            raise UsageError(str(e)) from None
    run = store.get_run(run_id) if run_id else None
    if run is None:
        if resume:
            raise StoreError(f"no run {run_id!r} in {session.store} (see `unerring runs`)")
        run = store.create_run(
            run_id or new_run_id(options.task), options.task, config, process.total_steps()
        )
    else:
        diff = config_difference(run.config, config)
        if diff:
            raise UsageError(
                f"run {run.run_id!r} in the journal was made with other options; "
                f"refusing to mix them: {'; '.join(diff)}"
            )
        if run.status == "completed":
            raise StoreError(f"run {run.run_id!r} is already completed; nothing to resume")
    lock = None if store.memory else RunLock(session.store, run.run_id)
    if lock is not None:
        lock.acquire()
    try:
        if on_start is not None:
            on_start(run, voting.k)
        return _drive(process, voting, options, session, store, run, events, notes)
    finally:
        if lock is not None:
            lock.release()


def _drive(
    process: Process[Any, Any],
    voting: VotingConfig,
    options: RunOptions,
    session: Session,
    store: Store,
    run: RunRecord,
    events: Events | None,
    notes: Notebook | None = None,
) -> RunResult:
    state = _restore_state(process, store, run)
    spec = parse_model(options.model)
    prices = run_prices(spec, session)
    transport = replace(
        session.transport,
        api="completions" if options.api == "completions" else "chat",
        base_url=session.transport.base_url or options.base_url,
    )
    if not transport.stop:
        # a completion prompt's answer ends where the process says (one line for addition)
        transport = replace(transport, stop=process.stop)
    events = events or Events()
    stats = Stats(**{k: v for k, v in run.stats.items() if k in Stats.__dataclass_fields__})

    def on_failure(f: TransportFailure) -> None:
        stats.transport_failures += 1
        for fn in events.transport_failure:
            fn(f)

    backend = make_backend(spec, transport, on_failure)
    watcher = session.watch(run, voting.k) if session.watch is not None else None
    if watcher is not None:
        backend = watcher.wrap(backend)
        events.subscribe(watcher)
    attempt = store.begin_attempt(run)
    engine = Engine(
        process,
        backend,
        voting,
        events,
        simulate=spec.sim is not None,
        prices=prices,
        budget=session.budget,
        stats=stats,
        notes=None if notes is None else _selector(notes, process),
    )
    writer = JournalWriter(
        store,
        run,
        process,
        durability=session.durability,
        on_error=lambda msg: engine.request_stop(msg),
    )
    events.subscribe(writer)
    outcome: Outcome | None = None
    try:
        with _signals(engine, session.handle_signals):
            progress = session.progress(engine, run) if session.progress else None
            if progress is not None:
                with progress:
                    outcome = asyncio.run(_run_engine(engine, state, run.next_step))
            else:
                outcome = asyncio.run(_run_engine(engine, state, run.next_step))
    finally:
        writer.close()
        if outcome is None:
            status, reason = "stopped", "interrupted"
        else:
            status, reason = outcome.status, outcome.reason
        if writer.error is not None:
            status, reason = "failed", writer.error
            if outcome is not None:
                outcome = Outcome("failed", outcome.step, outcome.state, writer.error)
        # if the store itself failed (disk full), the committed records still stand
        with contextlib.suppress(Exception):
            store.end_attempt(run, attempt, status, reason)
        if watcher is not None:
            watcher.end(status, reason)
    fresh = store.get_run(run.run_id) or run
    assert outcome is not None
    return RunResult(
        outcome, fresh, summary(fresh, writer.totals.as_dict(), outcome, store, attempt), store
    )


async def _run_engine(engine: Engine, state: Any, step: int) -> Outcome:
    try:
        return await engine.run(state, step)
    finally:
        await engine.backend.aclose()
