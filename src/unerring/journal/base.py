"""What every part of the Store stands on: its errors, and one open connection with the
graph runs' node ends decoded from it (store.py opens it; runs.py, reads.py and
notebooks.py read and write through it)."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager

# defined with every other error (errors.py); imported from here by the store's parts
from unerring.errors import StoreBusy as StoreBusy
from unerring.errors import StoreError as StoreError
from unerring.errors import StoreRefused as StoreRefused
from unerring.journal.codec import NodeEnd, NodeEndsRow
from unerring.journal.records import RunRecord


def is_busy(e: sqlite3.Error) -> bool:
    """Another connection holds a lock (SQLITE_BUSY or SQLITE_LOCKED, extended or not)."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(e) or "database table is locked" in str(e)


class StoreBase:
    """One open store as its parts see it: the connection, the path its messages name, and
    the node ends of graph runs decoded so far. `Store` (store.py) sets these up."""

    conn: sqlite3.Connection
    path: str
    # a graph run's packed node ends, decoded, by run: kept while the journal adds none
    _ends: dict[int, tuple[tuple[int, int], dict[int, NodeEnd]]]

    def _starting(self) -> AbstractContextManager[None]:
        """Around an attempt's first writes: busy past the timeout raises StoreBusy. Defined
        by `Store`, whose module holds the busy timeout."""
        raise NotImplementedError

    def node_ends(self, run: RunRecord) -> dict[int, NodeEnd]:
        """A graph run's nodes whose ends are packed many to a row (journal/codec.py), by
        item; their items rows say only what they were made with (status pending)."""
        if run.kind != "graph":
            return {}
        key = self.conn.execute(
            "SELECT count(*), coalesce(max(seq), 0) FROM node_ends WHERE run = ?", (run.rowid,)
        ).fetchone()
        key = (int(key[0]), int(key[1]))
        held = self._ends.get(run.rowid)
        if held is not None and held[0] == key:
            return held[1]
        ends: dict[int, NodeEnd] = {}
        for row in self.conn.execute(
            "SELECT * FROM node_ends WHERE run = ? ORDER BY seq", (run.rowid,)
        ):
            ends.update(NodeEndsRow(row).ends)
        self._ends[run.rowid] = (key, ends)
        return ends

    def forget_node_ends(self) -> None:
        """Drop the decoded node ends held (a resume reads them once; a long attempt then
        must not hold every decided node of its graph)."""
        self._ends.clear()
