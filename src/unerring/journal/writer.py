"""The journal writer: commits decisions in groups off the step loop, or one by one.

A plain decision (the vast majority) is reduced in the step loop to a few column values of
its item's block, so its Decision object dies at once; a noteworthy one never changes after
it is emitted, so the writer keeps a reference instead of a copy (DataStates-style) and
turns it into rows in its own thread. Each group is one transaction that also moves every
touched item's resume point (next step, state, totals) and the run's totals, so a resume
point never gets ahead of, or behind, the committed decisions.

Anything that raises while a group is turned into rows (the process's own `dump_state` or
`features`, SQLite) stops the run cleanly: the group is not committed, what was committed
before stands, and `error` says why in one line.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from unerring.core.events import (
    Decision,
    Discarded,
    ItemEnd,
    ItemStart,
    NodesAdded,
    TransportFailure,
)
from unerring.core.totals import Totals
from unerring.journal.group import Group, Noted
from unerring.journal.inserts import GroupRows, NodeEnds
from unerring.journal.rows import decision_row, sample_rows
from unerring.journal.store import RunRecord, Store
from unerring.process import Process

Durability = Literal["group", "sync"]
# a batch's or a graph's `commits` rows (its clock for the report): at most one per this
# many seconds when every decision is its own commit (--durability sync)
PROGRESS_EVERY_S = 0.2
# a graph's nodes decided whole within one commit end many to a node_ends row (see
# `_packable`); off, every node's end and decisions get rows of their own (tests compare)
PACK_NODES = True


class JournalWriter:
    """Subscribes to scheduler events and writes them to the store.

    An item's `ItemStart` hands over its process (for its `dump_state` and `features`),
    kept until the item's end is committed: every other event of an item follows it.
    """

    def __init__(
        self,
        store: Store,
        run: RunRecord,
        *,
        durability: Durability = "group",
        interval_s: float = 0.2,
        max_group: int = 4096,
        max_items: int = 1024,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.run = run
        self.durability = durability
        self.interval_s = interval_s
        self.max_group = max_group  # decisions a group holds before the writer wakes
        # items with work in a group before it wakes: an item's pending events (its block,
        # its end, its process) weigh far more than a decision in a chain's block, and a
        # graph of one-step nodes would hold thousands of them while the writer catches up
        self.max_items = max_items
        self.on_error = on_error
        self.chain = run.kind == "chain"
        self.graph = run.kind == "graph"
        # what commits added and no `commits` row says yet (steps, samples, tokens, cost):
        # a chain's clock is its steps' own times, so only runs of many items keep rows
        self._unlogged: Totals | None = None
        self._log_due = 0.0
        self.totals = Totals(run.stats)  # the run's committed totals
        self.error: str | None = None
        self._items: dict[int, _ItemLog] = {}  # items with work not yet committed
        self._seq = self._last_seq(store, run, "items")  # creation order of a graph's nodes
        self._fresh: set[int] = set()  # nodes made in this attempt, not committed yet
        self.pack_nodes = self.graph and PACK_NODES
        self._ends_seq = self._last_seq(store, run, "node_ends") if self.pack_nodes else 0
        self._wall_base = self.totals.wall_s
        self._t0 = time.perf_counter()
        self._group = Group()  # filled by the step loop, taken whole by the writer
        self._lock = threading.Lock()  # held for a few appends, or to take the group
        self._wake = threading.Event()
        self._drained = threading.Event()
        self._closing = False
        self._conn = store.connect(sync=durability == "sync")
        self._thread: threading.Thread | None = None
        if durability == "group":
            self._thread = threading.Thread(target=self._loop, name="unerring-journal", daemon=True)
            self._thread.start()

    # -- scheduler events (hot path) -------------------------------------------------------
    def on_item_start(self, x: ItemStart) -> None:
        log = _ItemLog(x.process)
        with self._lock:  # (the writer copies the items under it)
            self._items[x.item] = log

    def on_decision(self, d: Decision) -> None:
        with self._lock:
            group = self._group
            size = group.add(d)
            items = len(group.blocks)
        if self._thread is None:
            self._drain()
        elif size == self.max_group or items == self.max_items:
            self._wake.set()  # (the group grows one by one: the writer is woken once)
        elif (size >= 2 * self.max_group or items >= 2 * self.max_items) and self.error is None:
            # (after an error nothing more is committed: the step loop must not wait)
            # the writer fell far behind (a slow disk, a starved thread): wait for it,
            # so memory stays bounded however long the run
            self._drained.clear()
            self._wake.set()
            self._drained.wait(5.0)

    def on_group(self, group: Group) -> None:
        """Take a whole group of events at once (a remote worker's, in the order made)."""
        with self._lock:
            self._group.merge(group)
            size = self._group.size
            items = len(self._group.blocks)
        if self._thread is None:
            self._drain()
        elif (size >= 2 * self.max_group or items >= 2 * self.max_items) and self.error is None:
            self._drained.clear()  # as on_decision
            self._wake.set()
            self._drained.wait(5.0)
        elif size >= self.max_group or items >= self.max_items:
            self._wake.set()

    def _other(self, x: TransportFailure | Discarded | ItemEnd) -> None:
        with self._lock:
            self._group.items.append(x)
        if self._thread is None:
            self._drain()

    on_transport_failure = _other
    on_discarded = _other
    on_item_end = _other

    def on_nodes_added(self, x: NodesAdded) -> None:
        with self._lock:
            self._group.items.append(x)
        if self._thread is None:
            self._drain()

    # -- writer ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self._drain()
            if self._closing:
                self._drain()
                return

    def _drain(self) -> None:
        with self._lock:
            group = self._group
            if group:
                self._group = Group()
        if group and self.error is None:
            try:
                self._commit(group)
            except Exception as e:
                # the writer must never die silently: the run would go on committing
                # nothing, and block once the group is full
                self._fail(f"journal writer failed: {type(e).__name__}: {e}")
        self._drained.set()

    def _fail(self, cause: str) -> None:
        """Stop committing and stop the run; what was committed stays the resume point."""
        if self.error is None:
            self.error = f"{cause}; the run stops, what was committed is safe"
            if self.on_error is not None:
                self.on_error(self.error)

    def flush(self) -> None:
        """Commit everything handed over so far (blocks until done)."""
        if self._thread is not None and self._thread.is_alive():
            self._closing = True
            self._wake.set()
            self._thread.join()
            self._thread = None
        self._drain()

    def close(self) -> None:
        self.flush()
        if self._unlogged is not None and self.error is None:
            with contextlib.suppress(sqlite3.Error):  # only the report's clock is at stake
                self._log_progress(self._conn, time.time(), self._unlogged)
                self._unlogged = None
        self._conn.close()

    def _log_progress(self, conn: sqlite3.Connection, now: float, added: Totals) -> None:
        conn.execute(
            "INSERT INTO commits (run, time, steps, samples, tokens, cost)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                self.run.id,
                now,
                added.steps_decided,
                added.samples,
                added.prompt_tokens + added.completion_tokens,
                added.cost,
            ),
        )
        self._log_due = now + PROGRESS_EVERY_S

    @staticmethod
    def _last_seq(store: Store, run: RunRecord, table: str) -> int:
        """The run's last `seq` in `table` (items: nodes made; node_ends: rows written)."""
        row = store.conn.execute(
            f"SELECT coalesce(max(seq), 0) FROM {table} WHERE run = ?", (run.id,)
        ).fetchone()
        return int(row[0])

    def _packable(self, group: Group, ends: dict[int, ItemEnd]) -> set[int]:
        """The nodes whose whole record is in this group: made in this attempt and nothing
        of them committed yet, decided in a few plain steps from step 0, and completed;
        their ends go into one node_ends row instead of an items update and a decisions row
        each. (Anything counted for an item before, in this group or an earlier one, this
        attempt or another: a failure, discarded work, a noteworthy or undecided step, has
        had its totals read, and reading them takes it out of `_fresh`.)"""
        out: set[int] = set()
        if not self.pack_nodes:
            return out
        fresh, blocks = self._fresh, group.blocks
        for item, end in ends.items():
            if end.status != "completed" or end.output is None or item not in fresh:
                continue
            b = blocks.get(item)
            if b is None:
                continue
            few = b.few
            if few and not b.sealed and few[0].step == 0 and b.last_step == len(few) - 1:
                out.add(item)
        return out

    def _log(self, item: int) -> tuple[Process[Any, Any], Totals]:
        """An item's process and committed totals (read from the journal when first needed).

        No lock: one dict lookup is atomic, and the step loop only adds items (the writer
        alone removes them). Taking the lock here, twice a node, left the step loop
        waiting on it, and then on the interpreter, while the writer went on."""
        log = self._items.get(item)
        if log is None:  # a bug of the caller's, said in one line
            raise LookupError(f"item {item} has events but no ItemStart")
        totals = log.totals
        if totals is None:
            totals = log.totals = self._item_totals(item)
        return log.process, totals

    def _item_totals(self, item: int) -> Totals:
        if item in self._fresh:
            self._fresh.discard(item)
            return Totals()
        row = self._conn.execute(
            "SELECT stats FROM items WHERE run = ? AND item = ?", (self.run.id, item)
        ).fetchone()
        return Totals(json.loads(row[0]) if row is not None else None)

    def _commit(self, group: Group) -> None:
        run_id = self.run.id
        t = self.totals
        rows = GroupRows()
        full_rows, sampled_rows = rows.decisions, rows.samples
        failure_rows, discard_rows = rows.failures, rows.discards
        block_rows, node_rows = rows.blocks, rows.nodes
        ends: dict[int, ItemEnd] = {}
        # restored if the group fails: the totals must say what the journal holds
        saved = t.copy()
        dump_failed: str | None = None
        with self._lock:  # (held for a copy at C speed: the step loop waits on it)
            logs = dict(self._items)
        saved_items = {i: log.totals.copy() for i, log in logs.items() if log.totals is not None}
        try:
            for x in group.items:
                cls = x.__class__
                if cls is TransportFailure:
                    f: TransportFailure = x  # type: ignore[assignment]
                    failure_rows.append(
                        (run_id, f.step, f.attempt, f.kind, f.time, int(f.retried),
                         f.message[:500], f.item)
                    )  # fmt: skip
                    t.transport_failures += 1
                    self._log(f.item)[1].transport_failures += 1
                elif cls is Discarded:
                    y: Discarded = x  # type: ignore[assignment]
                    discard_rows.append(
                        (run_id, y.item, y.step, y.samples, y.prompt_tokens,
                         y.completion_tokens, y.cost, time.time())
                    )  # fmt: skip
                    t.add_discarded(y)
                    self._log(y.item)[1].add_discarded(y)
                elif cls is ItemEnd:
                    e: ItemEnd = x  # type: ignore[assignment]
                    ends[e.item] = e
                    if e.children is not None:  # a graph node's expansion, with its end
                        node_rows += self._node_rows(e.children)
                elif cls is NodesAdded:
                    node_rows += self._node_rows(x)  # type: ignore[arg-type]
                elif cls is Noted:  # sealed by a worker: its rows, made there
                    z: Noted = x  # type: ignore[assignment]
                    if z.row is not None:
                        full_rows.append((run_id, *z.row[1:]))
                    sampled_rows += [(run_id, *r[1:]) for r in z.samples]
                    t.merge(z.totals)
                    self._log(z.item)[1].merge(z.totals)
                else:
                    d: Decision = x  # type: ignore[assignment]
                    process, item_totals = self._log(d.item)
                    if d.outcomes:
                        sampled_rows += sample_rows(run_id, d)
                    t.add(d)
                    item_totals.add(d)
                    if d.state_after is not None:
                        full_rows.append(decision_row(run_id, d, process))
            packable = self._packable(group, ends) if ends else set()
            packed = NodeEnds() if packable else None
            for d in group.sampled:
                sampled_rows += sample_rows(run_id, d)
            sampled_rows += [(run_id, *r[1:]) for r in group.sample_rows]
            # item -> (next step, state text, whether to clear a stale state)
            touched: dict[int, tuple[int | None, str | None, bool]] = {}
            for item, b in group.blocks.items():
                if packed is not None and item in packable:
                    packed.add(item, b.few, ends[item].output)  # type: ignore[arg-type]
                    continue
                process, item_totals = self._log(item)
                for p in b.sealed:  # packed by a worker
                    block_rows.append(p.row(run_id, item, t, item_totals))
                if b.few:  # a block of a handful costs more than their rows of their own
                    for d in b.few:
                        t.add(d)
                        item_totals.add(d)
                        # as in a block: a plain step's row has no features
                        full_rows.append(decision_row(run_id, d, process, plain=True))
                else:
                    row = b.block(run_id, item, t, item_totals)
                    if row is not None:
                        block_rows.append(row)
                if b.last_step >= 0:
                    nxt = b.last_step + 1
                    end = ends.get(item)
                    if self.graph and end is not None and end.status == "completed":
                        # a decided node's record is its output: it never resumes
                        touched[item] = (nxt, None, True)
                        continue
                    try:
                        touched[item] = (nxt, _dump(process, b.last_state), False)
                    except Exception as e:
                        # user code: the decisions still commit, with no snapshot (a
                        # resume replays the committed winners); then the run stops
                        touched[item] = (nxt, None, True)
                        dump_failed = dump_failed or (
                            f"process {process.name!r} dump_state failed at step "
                            f"{b.last_step}: {type(e).__name__}: {e}"
                        )
            for item in ends:
                if item not in packable:
                    touched.setdefault(item, (None, None, False))
            rows.node_ends = None if packed is None else packed.row(t)
        except Exception:
            self._restore(saved, saved_items)
            raise
        t.wall_s = self._wall_base + (time.perf_counter() - self._t0)
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            if rows.node_ends is not None:
                self._ends_seq += 1
            rows.insert(conn, run_id, self._ends_seq)
            updates = []
            for item, (next_step, state_text, clear) in touched.items():
                end = ends.get(item)
                updates.append(
                    (
                        next_step,
                        int(clear),
                        state_text,
                        self._log(item)[1].item_json(),
                        None if end is None else end.status,
                        None if end is None else end.reason,
                        None if end is None else end.output,
                        run_id,
                        item,
                    )
                )
            conn.executemany(
                "UPDATE items SET next_step = coalesce(?, next_step),"
                " state = CASE ? WHEN 1 THEN NULL ELSE coalesce(?, state) END, stats = ?,"
                " status = coalesce(?, status),"
                " reason = coalesce(?, reason), output = coalesce(?, output)"
                " WHERE run = ? AND item = ?",
                updates,
            )
            unlogged = self._unlogged
            added = None if self.chain else _progress(t, saved)
            if added is not None:
                if unlogged is not None:
                    added.merge(unlogged)  # (a new object: what is held stays as it was)
                unlogged = added
                now = time.time()
                if self.durability == "group" or now >= self._log_due:
                    self._log_progress(conn, now, unlogged)
                    unlogged = None
            chain = touched.get(0) if self.chain else None
            conn.execute(
                "UPDATE runs SET next_step = coalesce(?, next_step),"
                " state = CASE ? WHEN 1 THEN NULL ELSE coalesce(?, state) END,"
                " stats = ?, updated = ? WHERE id = ?",
                (
                    None if chain is None else chain[0],
                    int(chain is not None and chain[2]),
                    None if chain is None else chain[1],
                    t.to_json(),
                    time.time(),
                    run_id,
                ),
            )
            conn.execute("COMMIT")
            self._unlogged = unlogged
        except Exception as e:
            # a full disk, or a value SQLite cannot store (a state that is not text): the
            # totals go back to what the journal holds
            if rows.node_ends is not None:
                self._ends_seq -= 1
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._restore(saved, saved_items)
            what = str(e) if isinstance(e, sqlite3.Error) else f"{type(e).__name__}: {e}"
            self._fail(f"journal write failed ({what})")
            return
        with self._lock:
            for item in ends:  # ended and committed: nothing more will come for it
                self._items.pop(item, None)
        self._fresh.difference_update(packable)  # (never read back: they are complete)
        if dump_failed is not None:
            self._fail(dump_failed)

    def _restore(self, saved: Totals, saved_items: dict[int, Totals]) -> None:
        self.totals = saved
        with self._lock:
            for i, log in self._items.items():
                log.totals = saved_items.get(i)

    def _node_rows(self, a: NodesAdded) -> list[tuple[Any, ...]]:
        """New graph nodes as items rows, numbered in the order they were made."""
        run_id, last = self.run.id, self._seq
        self._seq += len(a.rows)
        self._fresh.update([r[0] for r in a.rows])  # no totals in the journal to read back
        return [(run_id, *r, seq) for seq, r in enumerate(a.rows, last + 1)]


def _progress(now: Totals, before: Totals) -> Totals | None:
    """What a commit adds to the run, or None when it adds nothing to draw (a commit of
    only ends or failures: no step decided, no sample, no token)."""
    added = now.minus(before)
    if not (added.steps_decided or added.samples or added.prompt_tokens + added.completion_tokens):
        return None
    return added


def _dump(process: Process[Any, Any], state: Any) -> str | None:
    """The state as the process serialises it (None: it cannot; resume replays winners).
    Anything else it raises is the caller's to handle."""
    try:
        return process.dump_state(state)
    except NotImplementedError:
        return None


class _ItemLog:
    __slots__ = ("process", "totals")

    def __init__(self, process: Process[Any, Any]) -> None:
        self.process = process
        self.totals: Totals | None = None  # the item's committed totals, read when needed
