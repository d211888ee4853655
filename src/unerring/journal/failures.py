"""The failures table: the failure records analysis saves for a run, and reads back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unerring.journal.base import StoreBase
from unerring.journal.records import RunRecord


class Failures(StoreBase):
    """The Store's methods over the failures table (analysis writes it; nothing else does)."""

    def replace_failures(self, runs: Sequence[RunRecord], rows: Sequence[dict[str, Any]]) -> int:
        """Replace the runs' rows of the `failures` table (one transaction); returns the
        rows written. A row names its columns: run, item, step, idx, category, nature,
        flip_rate, answer, excerpt, features, time, counted, pattern."""
        cols = (
            "run", "item", "step", "idx", "category", "nature", "flip_rate", "answer",
            "excerpt", "features", "time", "counted", "pattern",
        )  # fmt: skip
        values = [tuple(r[c] for c in cols) for r in rows]
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for run in runs:
                conn.execute("DELETE FROM failures WHERE run = ?", (run.rowid,))
            marks = ", ".join("?" for _ in cols)
            conn.executemany(f"INSERT INTO failures ({', '.join(cols)}) VALUES ({marks})", values)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(values)

    def saved_failures(self, run: RunRecord) -> list[dict[str, Any]]:
        """A run's saved failure records, each with its item's id, by item, step, index."""
        rows = self.conn.execute(
            "SELECT f.*, i.item_id FROM failures f JOIN items i ON i.run = f.run"
            " AND i.item = f.item WHERE f.run = ? ORDER BY f.item, f.step, f.idx",
            (run.rowid,),
        ).fetchall()
        return [dict(r) for r in rows]
