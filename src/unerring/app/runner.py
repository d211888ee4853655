"""Starting and resuming journaled runs: the composition of process, model, plan,
scheduler and journal that the CLI and the library API share.

A run is a set of items (a single chain is a run of one item). This module decides
nothing itself: it builds the parts, hands the items to the scheduler, and reads the
outcome back from the journal.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from unerring.app.options import BatchItem, RunOptions, Session, Watcher, config_difference
from unerring.app.result import RunResult
from unerring.app.resume import _journaled, _learnt_rule, _tree
from unerring.app.signals import _signals
from unerring.backends.factory import api_key, check_reachable
from unerring.backends.spec import parse_model
from unerring.core.events import Events
from unerring.core.totals import Totals
from unerring.errors import UsageError
from unerring.executors import Executor, open_executor
from unerring.graph import Graph, GraphError, Node
from unerring.journal.lock import RunLock, check_run_id
from unerring.journal.replay import restore_state
from unerring.journal.store import RunRecord, Store, StoreRefused
from unerring.journal.writer import JournalWriter
from unerring.limits import MAX_ITEM_ID, MAX_ITEMS
from unerring.planning.plan import check_variants, run_prices, voting_config
from unerring.process import Process
from unerring.reporting.summary import summary
from unerring.scheduler.build import Work
from unerring.scheduler.graph_check import check_nodes, check_stream
from unerring.scheduler.sources import Item, Items, RunEnd, Source
from unerring.scheduler.tree import TaskTree
from unerring.tasks.registry import get_task
from unerring.voting.adaptive import AdaptiveConfig
from unerring.voting.config import VotingConfig

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
]


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
        store, run, durability=session.durability, on_error=execution.request_stop
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
        source = tree
    else:
        source = Items(items())
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
