"""The runs, attempts and items tables: what the runner writes, and reads back to resume."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

from unerring.journal.base import StoreBase, StoreError, StoreRefused
from unerring.journal.records import ItemRecord, RunRecord


class Runs(StoreBase):
    """The Store's methods over runs, their attempts and their items."""

    # -- runs -----------------------------------------------------------------------------
    def create_run(
        self,
        run_id: str,
        task: str,
        config: dict[str, Any],
        steps_total: int | None,
        items: Sequence[tuple[str, dict[str, Any], int | None]] = (("1", {}, None),),
        kind: str = "chain",
    ) -> RunRecord:
        """A new run and its items (id, options, steps), in one transaction.

        A single chain is a run of one item; its steps are the run's.
        """
        now = time.time()
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO runs (run_id, task, config, status, steps_total, created, updated,"
                " kind) VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                (run_id, task, json.dumps(config, sort_keys=True), steps_total, now, now, kind),
            )
            rid = cur.lastrowid
            rows = (
                (rid, i, item_id, json.dumps(options, sort_keys=True),
                 steps if kind == "batch" else steps_total)
                for i, (item_id, options, steps) in enumerate(items)
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO items (run, item, item_id, options, steps_total)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            raise StoreError(f"a run named {run_id!r} already exists in {self.path}") from None
        except sqlite3.OperationalError as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"cannot write to store {self.path}: {e}") from None
        return self.run(run_id)

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run of that name, or None."""
        row = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else RunRecord.from_row(row)

    def run(self, run_id: str) -> RunRecord:
        """The run of that name; none is bad input (StoreRefused: the CLI exits 2)."""
        run = self.get_run(run_id)
        if run is None:
            raise StoreRefused(f"no run {run_id!r} in {self.path} (see `unerring runs`)")
        return run

    def list_runs(self) -> list[RunRecord]:
        rows = self.conn.execute("SELECT * FROM runs ORDER BY created").fetchall()
        return [RunRecord.from_row(r) for r in rows]

    def set_status(self, run: RunRecord, status: str, reason: str = "") -> None:
        self.conn.execute(
            "UPDATE runs SET status = ?, reason = ?, updated = ? WHERE id = ?",
            (status, reason, time.time(), run.rowid),
        )

    def keep_stats(self, run: RunRecord, kept: dict[str, Any]) -> None:
        """Add `kept` to the run's stats (what its end computed, read back with no
        recomputation); the totals there stay as the journal writer wrote them."""
        row = self.conn.execute("SELECT stats FROM runs WHERE id = ?", (run.rowid,)).fetchone()
        stats = json.loads(row[0]) if row is not None and row[0] else {}
        stats.update(kept)
        self.conn.execute("UPDATE runs SET stats = ? WHERE id = ?", (json.dumps(stats), run.rowid))

    # -- attempts -------------------------------------------------------------------------
    def begin_attempt(self, run: RunRecord) -> int:
        with self._starting():
            row = self.conn.execute(
                "SELECT coalesce(max(attempt), 0) + 1 FROM attempts WHERE run = ?", (run.rowid,)
            ).fetchone()
            attempt = int(row[0])
            self.conn.execute(
                "INSERT INTO attempts (run, attempt, started, first_step, status, pid)"
                " VALUES (?, ?, ?, ?, 'running', ?)",
                (run.rowid, attempt, time.time(), run.next_step, os.getpid()),
            )
            self.conn.execute(
                "UPDATE runs SET status = 'running', reason = '', updated = ? WHERE id = ?",
                (time.time(), run.rowid),
            )
        return attempt

    def end_attempt(self, run: RunRecord, attempt: int, status: str, reason: str) -> None:
        now = time.time()
        self.conn.execute(
            "UPDATE attempts SET ended = ?, status = ?, reason = ? WHERE run = ? AND attempt = ?",
            (now, status, reason, run.rowid, attempt),
        )
        self.set_status(run, status, reason)

    def attempts(self, run: RunRecord) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM attempts WHERE run = ? ORDER BY attempt", (run.rowid,)
        ).fetchall()
        return [dict(r) for r in rows]

    # -- items ----------------------------------------------------------------------------
    def items(self, run: RunRecord, *, unfinished: bool = False) -> Iterator[ItemRecord]:
        """A run's items in order (streamed); `unfinished`: those not completed."""
        q = "SELECT * FROM items WHERE run = ?"
        if unfinished:
            q += " AND status != 'completed'"
        # a batch's items by index; a graph's nodes (indexes are hashes) as they were made
        order = " ORDER BY seq, item" if run.kind == "graph" else " ORDER BY item"
        ends = self.node_ends(run)
        for row in self.conn.execute(q + order, (run.rowid,)):
            it = ItemRecord.from_row(row)
            end = ends.get(it.item) if ends else None
            if end is not None:
                if unfinished:
                    continue
                it = it.ended(end)
            yield it

    def item(self, run: RunRecord, item_id: str) -> ItemRecord | None:
        row = self.conn.execute(
            "SELECT * FROM items WHERE run = ? AND item_id = ?", (run.rowid, item_id)
        ).fetchone()
        if row is None:
            return None
        it = ItemRecord.from_row(row)
        end = self.node_ends(run).get(it.item)
        return it if end is None else it.ended(end)

    def reset_items(self, run: RunRecord) -> None:
        """An attempt starts: every item not completed is pending again."""
        with self._starting():
            self.conn.execute(
                "UPDATE items SET status = 'pending', reason = ''"
                " WHERE run = ? AND status != 'completed'",
                (run.rowid,),
            )

    def longest_item_id(self, run: RunRecord) -> int:
        """The length of a run's longest item id (a table's column width)."""
        row = self.conn.execute(
            "SELECT coalesce(max(length(item_id)), 0) FROM items WHERE run = ?", (run.rowid,)
        ).fetchone()
        return int(row[0])

    def item_counts(self, run: RunRecord) -> dict[str, int]:
        """How many of a run's items are in each status."""
        rows = self.conn.execute(
            "SELECT status, count(*) FROM items WHERE run = ? GROUP BY status", (run.rowid,)
        ).fetchall()
        counts = {r[0]: int(r[1]) for r in rows}
        # nodes whose ends are packed (their rows say pending): 8 bytes an item
        packed = self.conn.execute(
            "SELECT coalesce(sum(length(items)), 0) / 8 FROM node_ends WHERE run = ?",
            (run.rowid,),
        ).fetchone()[0]
        if packed:
            counts["completed"] = counts.get("completed", 0) + packed
            pending = counts.pop("pending", 0) - packed
            if pending:
                counts["pending"] = pending
        return counts
