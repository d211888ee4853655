"""The journal writer: commits decisions in groups off the step loop, or one by one.

A plain decision (the vast majority) is reduced in the step loop to a few column values,
so its Decision object dies at once; a noteworthy one never changes after the engine emits
it, so the writer keeps a reference instead of a copy (DataStates-style) and turns it into
rows in its own thread. Each group is one transaction that also moves the run's resume
point (next step, state, totals), so the resume point never gets ahead of, or behind, the
committed decisions.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Hashable
from typing import Any, Literal

from unerring.events import Decision, TransportFailure
from unerring.journal.store import BLOCK_SEPARATOR, RunRecord, Store, pack_block, pack_holes
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
        self._group = _Group()  # filled by the step loop, taken whole by the writer
        self._lock = threading.Lock()  # held for a few appends, or to take the group
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
        with self._lock:
            size = self._group.add(d)
        if self._thread is None:
            self._drain()
        elif size == self.max_group:  # the group grows one by one: wake the writer once
            self._wake.set()
        elif size >= 2 * self.max_group and self.error is None:
            # (after an error nothing more is committed: the step loop must not wait)
            # the writer fell far behind (a slow disk, a starved thread): wait for it,
            # so memory stays bounded however long the run
            self._drained.clear()
            self._wake.set()
            self._drained.wait(5.0)

    def on_transport_failure(self, f: TransportFailure) -> None:
        with self._lock:
            self._group.items.append(f)
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
            if group.size or group.items:
                self._group = _Group()
        if (group.size or group.items) and self.error is None:
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
        self._conn.close()

    def _commit(self, group: _Group) -> None:
        if self.error is not None:
            return
        state_text = None
        dump_failed: str | None = None
        last = group.last
        if last is not None:
            try:
                state_text = self.process.dump_state(last.state_after)
            except NotImplementedError:
                state_text = None  # no snapshot: a resume replays the committed winners
            except Exception as e:
                # user code: the group's decisions still commit, with no snapshot, so
                # that a resume replays every committed winner; then the run stops
                dump_failed = (
                    f"process {self.process.name!r} dump_state failed at step {last.step}: "
                    f"{type(e).__name__}: {e}"
                )
        run_id = self.run.id
        t = self.totals
        full_rows: list[tuple[Any, ...]] = []
        sample_rows: list[tuple[Any, ...]] = []
        failure_rows: list[tuple[Any, ...]] = []
        # restored if the transaction fails: the totals must say what the journal holds
        saved = t.as_dict()
        conn = self._conn
        try:
            for item in group.items:
                if item.__class__ is TransportFailure:
                    f: TransportFailure = item
                    failure_rows.append(
                        (run_id, f.step, f.attempt, f.kind, f.time, int(f.retried), f.message[:500])
                    )
                    t.transport_failures += 1
                    continue
                d: Decision = item  # type: ignore[assignment]
                if d.outcomes:
                    sample_rows += self._sample_rows(d)
                self._count(d)
                if d.state_after is not None:
                    full_rows.append(self._full_row(d))
            for d in group.sampled:
                sample_rows += self._sample_rows(d)
            block = group.block(run_id, t)
            t.wall_s = self._wall_base + (time.perf_counter() - self._t0)
            next_step = self.next_step if last is None else last.step + 1
            conn.execute("BEGIN IMMEDIATE")
            if block is not None:
                conn.execute(
                    "INSERT INTO decision_blocks (run, first_step, last_step, winners, data,"
                    " holes) VALUES (?, ?, ?, ?, ?, ?)",
                    block,
                )
            insert_rows(conn, "INSERT INTO decisions", full_rows)
            # a retried undecided step redraws the same indices: keep the first record
            insert_rows(conn, "INSERT OR IGNORE INTO samples", sample_rows)
            insert_rows(conn, "INSERT INTO transport_failures", failure_rows)
            conn.execute(
                "UPDATE runs SET next_step = ?,"
                " state = CASE ? WHEN 1 THEN NULL ELSE coalesce(?, state) END, stats = ?,"
                " updated = ? WHERE id = ?",
                (
                    next_step,
                    int(dump_failed is not None),
                    state_text,
                    json.dumps(t.as_dict()),
                    time.time(),
                    run_id,
                ),
            )
            conn.execute("COMMIT")
            self.next_step = next_step
        except Exception as e:
            # a full disk, or a value SQLite cannot store (a state that is not text): the
            # totals go back to what the journal holds
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self.totals = Totals(saved)
            what = str(e) if isinstance(e, sqlite3.Error) else f"{type(e).__name__}: {e}"
            self._fail(f"journal write failed ({what})")
            return
        if dump_failed is not None:
            self._fail(dump_failed)

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


class _Group:
    """The decisions of one commit. A plain decision (unanimous, unflagged, not rejected
    by the checker) is added as a few column values, built in the step loop, and the
    Decision can go at once; the writer then packs whole columns at C speed into one
    `decision_blocks` row. Noteworthy decisions (and transport failures) stay objects, in
    order, and get rows of their own; inside the block's range they are holes."""

    __slots__ = (
        "completion",
        "correct",
        "cost",
        "elapsed_us",
        "first",
        "holes",
        "items",
        "last",
        "last_plain",
        "prompt",
        "sampled",
        "samples",
        "size",
        "surplus",
        "winners",
    )

    def __init__(self) -> None:
        self.winners: list[str] = []
        self.samples: list[int] = []
        self.surplus: list[int] = []
        self.prompt: list[int] = []
        self.completion: list[int] = []
        self.elapsed_us: list[int] = []
        self.correct: list[int] = []  # 1 right, -1 unchecked (a plain step is never wrong)
        self.cost: list[float] = []
        self.first = 0  # the first plain step
        self.last_plain = 0
        self.holes: list[int] = []
        self.items: list[Decision | TransportFailure] = []
        self.sampled: list[Decision] = []  # plain decisions whose samples are recorded
        self.last: Decision | None = None  # the last decision that moved the state
        self.size = 0

    def add(self, d: Decision) -> int:
        """Take one decision; return how many the group holds."""
        winner = d.winner_text
        correct = d.correct
        if (
            d.flags is None
            and correct is not False
            and not d.undecided
            and len(d.votes) == 1
            and winner is not None
            and _SEP not in winner
        ):
            if not self.winners:
                self.first = d.step
            self.last_plain = d.step
            self.winners.append(winner)
            self.samples.append(d.samples)
            self.surplus.append(d.surplus)  # unanimous, unflagged: votes = samples - surplus
            self.prompt.append(d.prompt_tokens)
            self.completion.append(d.completion_tokens)
            # integer microseconds: exact enough, and packs as an integer column
            self.elapsed_us.append(int(d.elapsed_s * 1e6))
            self.correct.append(-1 if correct is None else 1)
            self.cost.append(d.cost)
            self.last = d
            if d.outcomes:  # `--record samples` keeps a plain step's samples too
                self.sampled.append(d)
        else:
            if d.state_after is not None:
                if self.winners:  # a step before the block's first needs no hole
                    self.holes.append(d.step)
                self.last = d
            # else undecided and stopped: nothing follows it (a resume decides it again)
            self.items.append(d)
        self.size += 1
        return self.size

    def block(self, run_id: int, totals: Totals) -> tuple[Any, ...] | None:
        """The block row of the plain decisions (None if none), counted into `totals`."""
        n = len(self.winners)
        if not n:
            return None
        first, last = self.first, self.last_plain
        holes = [h for h in self.holes if h < last]  # noteworthy steps after it: no holes
        data = pack_block(
            self.samples,
            self.surplus,
            self.prompt,
            self.completion,
            self.elapsed_us,
            self.correct,
            self.cost,
        )
        # consecutive winners share most of their text (Hanoi: all but two pegs), so a
        # fast zlib pass shrinks the journal several times over
        winners = zlib.compress(_SEP.join(self.winners).encode(), 1)
        totals.steps_decided += n
        totals.samples += sum(self.samples)
        totals.prompt_tokens += sum(self.prompt)
        totals.completion_tokens += sum(self.completion)
        totals.cost += sum(self.cost)
        totals.checked += n - self.correct.count(-1)
        return (run_id, first, last, winners, data, pack_holes(first, holes))
