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
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Literal

from unerring.events import Decision, TransportFailure
from unerring.journal.store import RunRecord, Store
from unerring.process import Process

Durability = Literal["group", "sync"]
MAX_TEXT = 8192  # characters of a response kept in the journal


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n...[{len(text) - limit} more characters not kept]"


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
        if len(q) >= self.max_group:
            self._wake.set()

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
        process = self.process
        level_rows: list[tuple[Any, ...]] = []
        sample_rows: list[tuple[Any, ...]] = []
        failure_rows: list[tuple[Any, ...]] = []
        t = self.totals
        # restored if the transaction fails: the totals must say what the journal holds
        saved = t.as_dict()
        last: Decision | None = None
        for d in items:
            if d.__class__ is TransportFailure:
                f: TransportFailure = d
                failure_rows.append(
                    (run_id, f.step, f.attempt, f.kind, f.time, int(f.retried), f.message[:500])
                )
                t.transport_failures += 1
                continue
            t.samples += d.samples  # type: ignore[union-attr]
            t.prompt_tokens += d.prompt_tokens  # type: ignore[union-attr]
            t.completion_tokens += d.completion_tokens  # type: ignore[union-attr]
            t.cost += d.cost  # type: ignore[union-attr]
            flags = d.flags  # type: ignore[union-attr]
            if flags:
                for fl, c in flags.items():
                    t.red_flags += c
                    t.flags[fl.value] = t.flags.get(fl.value, 0) + c
            outcomes = d.outcomes  # type: ignore[union-attr]
            if outcomes:
                # a sample's vote is its answer's number within the step (0: the first
                # answer drawn), not the answer's repr: the text holds the answer, and the
                # repr nearly doubled the samples table; equal answers get equal numbers
                answers: dict[Hashable, str] = {}
                for o in outcomes:
                    s = o.sample
                    key = o.key
                    vote = None
                    if key is not None:
                        vote = answers.get(key)
                        if vote is None:
                            vote = answers[key] = str(len(answers))
                    sample_rows.append(
                        (
                            run_id,
                            d.step,
                            s.index,
                            bounded(s.text),
                            vote,
                            None if o.flag is None else o.flag.value,
                            int(o.counted),
                            s.prompt_tokens,
                            s.completion_tokens,
                            s.latency_s,
                            s.label,
                        )
                    )
            if d.undecided:  # type: ignore[union-attr]
                t.undecided += 1
            if d.state_after is None:  # type: ignore[union-attr]
                continue  # undecided and not taken: the step will be decided again
            dd: Decision = d  # type: ignore[assignment]
            t.steps_decided += 1
            if dd.correct is not None:
                t.checked += 1
                if not dd.correct:
                    t.errors += 1
            features = None
            if outcomes:
                try:
                    features = json.dumps(dict(process.features(dd.state_before, dd.step)))
                except Exception:
                    features = None
            counts = sorted(dd.votes.values(), reverse=True)
            level_rows.append(
                (
                    run_id,
                    dd.step,
                    dd.winner_text,
                    json.dumps(counts) if len(counts) > 1 else f"[{counts[0] if counts else 0}]",
                    dd.samples,
                    dd.surplus,
                    None if not flags else json.dumps({k.value: c for k, c in flags.items()}),
                    dd.prompt_tokens,
                    dd.completion_tokens,
                    dd.cost,
                    dd.elapsed_s,
                    int(dd.undecided),
                    None if dd.correct is None else int(dd.correct),
                    features,
                )
            )
            last = dd
        t.wall_s = self._wall_base + (time.perf_counter() - self._t0)
        state_text = None
        next_step = self.next_step
        if last is not None:
            next_step = last.step + 1
            try:
                state_text = process.dump_state(last.state_after)
            except NotImplementedError:
                state_text = None
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            if level_rows:
                conn.executemany(
                    "INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", level_rows
                )
            if sample_rows:
                # a retried undecided step redraws the same indices: keep the first record
                conn.executemany(
                    "INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?)", sample_rows
                )
            if failure_rows:
                conn.executemany(
                    "INSERT INTO transport_failures VALUES (?,?,?,?,?,?,?)", failure_rows
                )
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
