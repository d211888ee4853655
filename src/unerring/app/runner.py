"""Starting and resuming journaled runs: the composition of processes, model, plan,
executor and journal that the CLI and the library share.

A run is a set of items (a single chain is a run of one item). This module decides
nothing itself: it checks the run, opens its journal, hands its items to an executor,
and reads the outcome back from the journal.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from unerring.analysis.notebook import Notebook, load_notebook
from unerring.analysis.notebook import selector as note_selector
from unerring.app.checks import NewRun, check_given_run_id, check_model, check_new_run
from unerring.app.options import BatchItem, Hooks, RunConfig
from unerring.app.outputs import graph_stats
from unerring.app.recorded import config_difference, content_run_id, recorded
from unerring.app.result import RunResult
from unerring.app.resume import journaled_nodes, learnt_rule, task_tree
from unerring.app.signals import interrupt_on_sigint, stop_on_signals
from unerring.core.events import Events
from unerring.core.totals import Totals
from unerring.errors import StoreRefused, UsageError
from unerring.executors import Executor, open_executor
from unerring.graph import Graph
from unerring.journal.lock import RunLock
from unerring.journal.replay import restore_state
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.journal.writer import JournalWriter
from unerring.planning.plan import plan_voting, run_prices
from unerring.planning.pricing import Prices
from unerring.process import Process
from unerring.process_factory import ProcessFactory, short_name
from unerring.reporting.summary import summary
from unerring.scheduler.build import Work
from unerring.scheduler.sources import Item, Items, RunEnd, Source
from unerring.voting.adaptive import AdaptiveConfig
from unerring.voting.config import VotingConfig

__all__ = ["BatchItem", "Hooks", "RunConfig", "RunResult", "execute"]


def execute(
    config: RunConfig,
    factory: ProcessFactory,
    *,
    run_id: str | None = None,
    resume: bool = False,
    batch: Sequence[BatchItem] | None = None,
    hooks: Hooks | None = None,
    named_by_content: bool = False,
) -> RunResult:
    """Start (or resume) a run and drive it to its end; the journal holds everything.

    `factory` makes the run's processes: its one chain or graph, or with `batch` each
    item's. `resume` continues the journal's run `run_id`, which must be there; a new run
    whose `run_id` the journal holds goes on from where that one stopped.
    `named_by_content`: a new run without a `run_id` is named by what it runs, so that the
    same call again gives back its result or goes on where it stopped (the library's).
    """
    hooks = hooks or Hooks()
    check_given_run_id(run_id)
    # everything a new run needs is checked (and its k planned) before the store is touched
    new = None if resume else check_new_run(config, factory, batch)
    voting = (
        None if new is None else plan_voting(config.voting, config.model, new.steps, factory.name)
    )
    check_model(config)
    session = config.session
    prices = run_prices(config.model, session.prices, session.transport, session.budget)
    # the last check before the store: an executor that cannot start (Ray missing, an
    # address where nothing answers) writes nothing
    executor = open_executor(session.executor, hooks.notify)
    try:
        executor.check(session.transport)
        store = Store(session.store, max_pages=session.max_pages)
        opened = open_run(
            store=store,
            config=config,
            factory=factory,
            run_id=run_id,
            new=new,
            voting=voting,
            batch=batch,
            named_by_content=named_by_content,
        )
        if opened.completed:  # the same run asked for again: what it recorded
            return RunResult.recorded(store, opened.run, factory)
        with _locked(store, opened.run):
            if hooks.on_start is not None:
                hooks.on_start(opened.run, opened.voting.k)
            return drive(
                opened,
                store=store,
                factory=factory,
                new=new,
                prices=prices,
                executor=executor,
                hooks=hooks,
            )
    finally:
        executor.close()


@contextlib.contextmanager
def _locked(store: Store, run: RunRecord) -> Iterator[None]:
    """The run held by this process while it writes (a store in memory is its alone)."""
    lock = None if store.memory else RunLock(store.path, run.run_id)
    if lock is not None:
        lock.acquire()
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


@dataclass(frozen=True)
class Opened:
    """A run as the journal holds it once opened, and what it votes with."""

    run: RunRecord
    config: RunConfig  # notes pinned to a version
    voting: VotingConfig
    notes: Notebook | None
    completed: bool = False  # a completed run asked for again: nothing to decide


def open_run(
    *,
    store: Store,
    config: RunConfig,
    factory: ProcessFactory,
    run_id: str | None,
    new: NewRun | None,
    voting: VotingConfig | None,
    batch: Sequence[BatchItem] | None,
    named_by_content: bool = False,
) -> Opened:
    """The run in the journal: made for a new run, checked against the configuration for
    one the journal holds (another configuration is refused, by name). A completed run
    started again with its configuration is `completed` (a resume of one is refused).
    `named_by_content`: a new run given no id is named by what it runs (a library call:
    the same call again finds it)."""
    notes = None
    if config.notes is not None:
        # pinned to a version, so that a resume puts the same notes in the same prompts
        notes = _load_notes(store, config.notes)
        config = replace(config, notes=f"{notes.name}@{notes.version}")
    journaled = recorded(config, factory, None if new is None else new.construction)
    if run_id is None and named_by_content and new is not None:
        run_id = content_run_id(factory.name, journaled, new.rows)
    run = store.get_run(run_id) if run_id else None
    if run is None and new is None:
        raise StoreRefused(f"no run {run_id!r} in {config.session.store} (see `unerring runs`)")
    if run is not None:
        other_kind = (run.kind == "batch") != (batch is not None)
        if other_kind and not (run.kind == "batch" and new is None):  # a resume needs no batch
            raise UsageError(
                f"run {run.run_id!r} is a {run.kind} in the journal; resume it as one "
                f"(`unerring resume {run.run_id}`)"
            )
        if voting is None or run.steps_total != (new.steps if new else None):
            # k as planned when the run started: for the steps the journal holds
            voting = plan_voting(config.voting, config.model, run.steps_total, factory.name)
    assert voting is not None
    journaled["k_resolved"] = voting.k
    if voting.weighing is not None:
        journaled["margin_resolved"] = voting.weighing.margin
    if voting.adaptive is not None:
        journaled["stopping_resolved"] = voting.adaptive.as_dict()
    if run is None:
        assert new is not None
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        name = run_id or f"{short_name(factory.name)}-{stamp}"
        run = store.create_run(name, factory.name, journaled, new.steps, new.rows, new.kind)
        return Opened(run, config, voting, notes)
    diff = config_difference(run.config, journaled)
    if diff:
        raise UsageError(
            f"run {run.run_id!r} in the journal was made with other options; "
            f"refusing to mix them: {'; '.join(diff)}"
        )
    if run.status == "completed" and new is not None:
        return Opened(run, config, voting, notes, completed=True)
    if run.status == "completed":
        raise StoreRefused(f"run {run.run_id!r} is already completed; nothing to resume")
    kept = run.config.get("stopping_resolved")
    if kept is not None:  # the rule's parameters as the run started, not recomputed
        voting = replace(voting, adaptive=AdaptiveConfig.from_dict(kept))
    return Opened(run, config, voting, notes)


def drive(
    opened: Opened,
    *,
    store: Store,
    factory: ProcessFactory,
    new: NewRun | None,
    prices: Prices,
    executor: Executor,
    hooks: Hooks,
) -> RunResult:
    """One attempt of the run: its pending items to the executor, its decisions to the
    journal, its end and summary read back."""
    run, config, voting, session = opened.run, opened.config, opened.voting, opened.config.session
    graph = new.graph if new is not None and new.graph is not None else None
    if run.kind == "graph" and graph is None:
        made = factory.make({})
        if not isinstance(made, Graph):
            raise UsageError(f"run {run.run_id!r} is a graph; {factory.name!r} makes a chain")
        graph = made
    store.reset_items(run)
    pending = list(store.items(run, unfinished=True))
    done = store.item_counts(run).get("completed", 0)
    first = None  # the first pending item's process (its `stop` is needed before it runs)
    if pending and graph is None:
        checked = None if new is None else new.process
        first = checked if checked is not None else _process_of(factory, pending[0])
    stop = graph.stop if graph is not None else first.stop if first is not None else ()
    transport = session.transport
    if not transport.stop:
        # a completion prompt's answer ends where the process says (one line for addition)
        transport = replace(transport, stop=stop)
    events = hooks.events or Events()
    totals = Totals(run.stats)
    watcher = hooks.watch(run, voting.k) if hooks.watch is not None else None
    if watcher is not None:
        events.subscribe(watcher)
    rule = learnt_rule(voting.adaptive, store, run, pending) if voting.adaptive else None
    journaled = journaled_nodes(graph, store, run) if graph is not None else ([], None, None)
    attempt = store.begin_attempt(run)
    work = Work(
        spec=config.model,
        transport=transport,
        voting=voting,
        prices=prices,
        budget=session.budget,
        speculate=session.speculate,
        window=session.window,
        rule=rule,
        max_steps=config.max_steps,
    )
    execution = executor.start(work, events, totals, None if watcher is None else watcher.wrap)
    writer = JournalWriter(
        store, run, durability=session.durability, on_error=execution.request_stop
    )
    events.subscribe(writer)

    def items() -> Iterator[Item]:
        for i, rec in enumerate(pending):
            p = first if i == 0 and first is not None else _process_of(factory, rec)
            state = (
                p.initial_state()
                if rec.next_step == 0 and rec.state is None
                else restore_state(p, store, run, rec.item, rec.state)
            )
            selector = None if opened.notes is None else _selector(opened.notes, p)
            yield Item(rec.item, p, state, rec.next_step, selector, rec.item_id)

    tree = None
    source: Source
    if graph is not None:
        first_nodes = None if new is None else new.first_nodes
        tree = task_tree(graph, config.max_depth, store, run, events, journaled, first_nodes)
        source = tree
    else:
        source = Items(items())
    store.forget_node_ends()  # read to resume, and not held through the attempt

    outcome: RunEnd | None = None
    try:
        signals = (
            stop_on_signals(execution, True, hooks.notify is not None)
            if session.handle_signals
            else interrupt_on_sigint(execution)  # a library call: one KeyboardInterrupt
        )
        with signals:
            counts = (len(pending) + done, done) if run.kind == "batch" else None
            progress = hooks.progress(execution, run, counts) if hooks.progress else None
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
        kept = graph_stats(graph, tree, outcome.status, store, fresh)
        with contextlib.suppress(Exception):  # (as the end above: the records stand)
            store.keep_stats(fresh, kept)
        s.update({k: kept[k] for k in ("nodes", "node_statuses", "result_correct")})
        fresh = replace(fresh, stats={**fresh.stats, **kept})
    s.update(execution.report())
    return RunResult(outcome, fresh, s, store, factory)


def _process_of(factory: ProcessFactory, rec: ItemRecord) -> Process[Any, Any]:
    p = factory.make(rec.options, rec.item_id)
    if not isinstance(p, Process):
        raise UsageError(f"item {rec.item_id!r}: {factory.name!r} makes a graph, not a chain")
    return p


def _load_notes(store: Store, ref: str) -> Notebook:
    try:
        return load_notebook(store, ref)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _selector(notes: Notebook, process: Process[Any, Any]) -> Any:
    return note_selector(notes.notes, process)
