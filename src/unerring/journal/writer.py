"""The journal writer: commits decisions in groups off the step loop, or one by one.

A decided record never changes after the engine emits it, so the writer keeps a reference
instead of a copy (DataStates-style) and turns it into rows in its own thread. Each group
is one transaction that also moves the run's resume point (next step, state, totals), so
the resume point never gets ahead of, or behind, the committed decisions.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Literal

from unerring.events import Decision, TransportFailure
from unerring.journal.store import BLOCK_SEPARATOR, RunRecord, Store, pack_block
from unerring.process import Process

Durability = Literal["group", "sync"]
MAX_TEXT = 8192  # characters of a response kept in the journal


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n...[{len(text) - limit} more characters not kept]"


def insert_rows(conn: sqlite3.Connection, insert: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows with a few multi-row statements.

    executemany releases and takes back the GIL around every row; with the step loop
    holding it, each handover can wait on the scheduler. Multi-row statements hand it
    over a few times per commit instead. Chunks are powers of two up to 256 rows, so
    that sqlite3's statement cache holds a handful of distinct statements, not one per
    commit size (a cached statement of thousands of parameters is large).
    """
    if not rows:
        return
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    i, n = 0, len(rows)
    while i < n:
        size = min(256, 1 << ((n - i).bit_length() - 1))
        chunk = rows[i : i + size]
        conn.execute(f"{insert} VALUES {','.join([one] * size)}", [v for row in chunk for v in row])
        i += size


class Totals:
    """Committed totals of a run: the journal's view, which lags the engine's by a group."""

    __slots__ = (
        "checked",
        "completion_tokens",
        "cost",
        "errors",
        "flags",
        "prompt_tokens",
        "red_flags",
        "samples",
        "steps_decided",
        "transport_failures",
        "undecided",
        "wall_s",
    )

    def __init__(self, d: dict[str, Any]) -> None:
        self.steps_decided = int(d.get("steps_decided", 0))
        self.samples = int(d.get("samples", 0))
        self.red_flags = int(d.get("red_flags", 0))
        self.flags: dict[str, int] = dict(d.get("flags", {}))
        self.errors = int(d.get("errors", 0))
        self.checked = int(d.get("checked", 0))
        self.undecided = int(d.get("undecided", 0))
        self.prompt_tokens = int(d.get("prompt_tokens", 0))
        self.completion_tokens = int(d.get("completion_tokens", 0))
        self.cost = float(d.get("cost", 0.0))
        self.transport_failures = int(d.get("transport_failures", 0))
        self.wall_s = float(d.get("wall_s", 0.0))

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class JournalWriter:
    """Subscribes to engine events and writes them to the store."""

    def __init__(
        self,
        store: Store,
        run: RunRecord,
        process: Process[Any, Any],
        *,
        durability: Durability = "group",
        interval_s: float = 0.2,
        max_group: int = 4096,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.run = run
        self.process = process
        self.durability = durability
        self.interval_s = interval_s
        self.max_group = max_group
        self.on_error = on_error
        self.totals = Totals(run.stats)
        self.error: str | None = None
        self.next_step = run.next_step
        self._wall_base = self.totals.wall_s
        self._t0 = time.perf_counter()
        self._queue: deque[Decision | TransportFailure] = deque()
        self._wake = threading.Event()
        self._drained = threading.Event()
        self._closing = False
        self._conn = store.connect(sync=durability == "sync")
        self._thread: threading.Thread | None = None
        if durability == "group":
            self._thread = threading.Thread(target=self._loop, name="unerring-journal", daemon=True)
            self._thread.start()

    # -- engine events (hot path) ---------------------------------------------------------
    def on_decision(self, d: Decision) -> None:
        if self._thread is None:
            self._commit([d])
            return
        q = self._queue
        q.append(d)
        n = len(q)
        if n == self.max_group:  # the queue grows one by one: wake the writer once
            self._wake.set()
        elif n >= 2 * self.max_group:
            # the writer fell far behind (a slow disk, a starved thread): wait for it,
            # so memory stays bounded however long the run
            self._drained.clear()
            self._wake.set()
            self._drained.wait(5.0)

    def on_transport_failure(self, f: TransportFailure) -> None:
        if self._thread is None:
            self._commit([f])
        else:
            self._queue.append(f)

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
        q = self._queue
        n = len(q)
        if n and self.error is None:
            self._commit([q.popleft() for _ in range(n)])
        self._drained.set()

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
        self._conn.close()

    def _commit(self, items: list[Decision | TransportFailure]) -> None:
        if self.error is not None:
            return
        run_id = self.run.id
        full_rows: list[tuple[Any, ...]] = []
        sample_rows: list[tuple[Any, ...]] = []
        failure_rows: list[tuple[Any, ...]] = []
        # restored if the transaction fails: the totals must say what the journal holds
        saved = self.totals.as_dict()
        blocks = _Blocks(run_id, self.totals)
        plain = blocks.decisions.append
        last: Decision | None = None
        for item in items:
            if item.__class__ is TransportFailure:
                f: TransportFailure = item
                failure_rows.append(
                    (run_id, f.step, f.attempt, f.kind, f.time, int(f.retried), f.message[:500])
                )
                self.totals.transport_failures += 1
                continue
            d: Decision = item  # type: ignore[assignment]
            if d.outcomes:
                sample_rows += self._sample_rows(d)
            winner = d.winner_text
            if (
                d.flags is None
                and not d.undecided
                and d.correct is not False
                and len(d.votes) == 1
                and winner is not None
                and _SEP not in winner
            ):
                plain(d)  # the common case: counted when its block closes
                last = d
                continue
            blocks.close()
            self._count(d)
            if d.state_after is not None:
                full_rows.append(self._full_row(d))
                last = d
        blocks.close()
        t = self.totals
        t.wall_s = self._wall_base + (time.perf_counter() - self._t0)
        state_text = None
        next_step = self.next_step
        if last is not None:
            next_step = last.step + 1
            try:
                state_text = self.process.dump_state(last.state_after)
            except NotImplementedError:
                state_text = None
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            insert_rows(conn, "INSERT INTO decision_blocks", blocks.rows)
            insert_rows(conn, "INSERT INTO decisions", full_rows)
            # a retried undecided step redraws the same indices: keep the first record
            insert_rows(conn, "INSERT OR IGNORE INTO samples", sample_rows)
            insert_rows(conn, "INSERT INTO transport_failures", failure_rows)
            conn.execute(
                "UPDATE runs SET next_step = ?, state = coalesce(?, state), stats = ?,"
                " updated = ? WHERE id = ?",
                (next_step, state_text, json.dumps(t.as_dict()), time.time(), run_id),
            )
            conn.execute("COMMIT")
            self.next_step = next_step
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self.totals = Totals(saved)
            self.error = f"journal write failed ({e}); the run stops, what was committed is safe"
            if self.on_error is not None:
                self.on_error(self.error)

    def _count(self, d: Decision) -> None:
        """Add a noteworthy decision (or an undecided step) to the committed totals."""
        t = self.totals
        t.samples += d.samples
        t.prompt_tokens += d.prompt_tokens
        t.completion_tokens += d.completion_tokens
        t.cost += d.cost
        if d.flags:
            for fl, c in d.flags.items():
                t.red_flags += c
                t.flags[fl.value] = t.flags.get(fl.value, 0) + c
        if d.undecided:
            t.undecided += 1
        if d.state_after is not None:
            t.steps_decided += 1
            if d.correct is not None:
                t.checked += 1
                if not d.correct:
                    t.errors += 1

    def _sample_rows(self, d: Decision) -> list[tuple[Any, ...]]:
        run_id = self.run.id
        # a sample's vote is its answer's number within the step (0: the first answer
        # drawn), not the answer's repr: the text holds the answer and the repr nearly
        # doubled the samples table; equal answers get equal numbers
        numbers: dict[Hashable, str] = {}
        for o in d.outcomes:
            if o.key is not None and o.key not in numbers:
                numbers[o.key] = str(len(numbers))
        return [
            (
                run_id,
                d.step,
                o.index,
                bounded(o.sample.text),
                None if o.key is None else numbers[o.key],
                None if o.flag is None else o.flag.value,
                int(o.counted),
                o.sample.prompt_tokens,
                o.sample.completion_tokens,
                o.sample.latency_s,
                o.sample.label,
            )
            for o in d.outcomes
        ]

    def _full_row(self, d: Decision) -> tuple[Any, ...]:
        features = None
        if d.outcomes or d.correct is False:
            try:
                features = json.dumps(dict(self.process.features(d.state_before, d.step)))
            except Exception:
                features = None
        counts = sorted(d.votes.values(), reverse=True)
        flags = d.flags
        return (
            self.run.id,
            d.step,
            d.winner_text,
            json.dumps(counts),
            d.samples,
            d.surplus,
            None if not flags else json.dumps({k.value: c for k, c in flags.items()}),
            d.prompt_tokens,
            d.completion_tokens,
            d.cost,
            d.elapsed_s,
            int(d.undecided),
            None if d.correct is None else int(d.correct),
            features,
        )


_SEP = BLOCK_SEPARATOR  # ASCII record separator: joins the winner texts of a block


class _Blocks:
    """Packs runs of consecutive plain decisions (unanimous, unflagged, not rejected by
    the checker) into one row each: one bound row per ~25 steps instead of one per step,
    with columns built by comprehensions and totals by C-level sums, which together cost
    a fraction of a row per decision."""

    __slots__ = ("decisions", "rows", "run_id", "totals")

    def __init__(self, run_id: int, totals: Totals) -> None:
        self.run_id = run_id
        self.totals = totals
        self.rows: list[tuple[Any, ...]] = []
        self.decisions: list[Decision] = []

    def close(self) -> None:
        ds = self.decisions
        if not ds:
            return
        samples = [d.samples for d in ds]
        prompt = [d.prompt_tokens for d in ds]
        completion = [d.completion_tokens for d in ds]
        cost = [d.cost for d in ds]
        correct = [d.correct for d in ds]
        data = pack_block(
            samples,
            [d.surplus for d in ds],  # unanimous, unflagged: votes = samples - surplus
            prompt,
            completion,
            # integer microseconds: exact enough, and packs as an integer column
            [int(d.elapsed_s * 1e6) for d in ds],
            [None if c is None else int(c) for c in correct],
            cost,
        )
        first = ds[0].step
        # consecutive winners share most of their text (Hanoi: all but two pegs), so a
        # fast zlib pass shrinks the journal several times over
        winners = zlib.compress(_SEP.join([d.winner_text for d in ds]).encode(), 1)  # type: ignore[misc]
        self.rows.append((self.run_id, first, first + len(ds) - 1, winners, data))
        t = self.totals
        t.steps_decided += len(ds)
        t.samples += sum(samples)
        t.prompt_tokens += sum(prompt)
        t.completion_tokens += sum(completion)
        t.cost += sum(cost)
        t.checked += len(ds) - correct.count(None)
        ds.clear()  # in place: _commit holds its append
