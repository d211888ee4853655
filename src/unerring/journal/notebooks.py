"""The notebooks table: each notebook's versions of mistake notes, accepted or not."""

from __future__ import annotations

import sqlite3
import time

from unerring.journal.base import StoreBase


class Notebooks(StoreBase):
    """The Store's methods over the notebooks table."""

    def add_notebook(
        self, name: str, notes: str, accepted: bool, reason: str, source: str
    ) -> tuple[int, float]:
        """Journal the next version of a notebook (notes as JSON); returns (version, created)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT coalesce(max(version), 0) FROM notebooks WHERE name = ?", (name,)
            ).fetchone()
            version = int(row[0]) + 1
            now = time.time()
            conn.execute(
                "INSERT INTO notebooks (name, version, notes, accepted, reason, source, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, version, notes, int(accepted), reason, source, now),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return version, now

    def notebook_row(
        self, name: str, version: int | None = None, *, accepted_only: bool = True
    ) -> sqlite3.Row | None:
        """One notebook version; without a version the latest (accepted, unless told)."""
        if version is not None:
            return self.conn.execute(  # type: ignore[no-any-return]
                "SELECT * FROM notebooks WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        q = "SELECT * FROM notebooks WHERE name = ?"
        if accepted_only:
            q += " AND accepted = 1"
        return self.conn.execute(  # type: ignore[no-any-return]
            q + " ORDER BY version DESC LIMIT 1", (name,)
        ).fetchone()

    def notebook_rows(self) -> list[sqlite3.Row]:
        """Every notebook version, by name then version."""
        return self.conn.execute("SELECT * FROM notebooks ORDER BY name, version").fetchall()
