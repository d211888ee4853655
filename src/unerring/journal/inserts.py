"""The rows one commit of the journal writer inserts, and the statements that insert them.

The writer turns a group of events into these rows in its own thread, then inserts them
in one transaction with the items' and the run's resume points (journal/writer.py).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from unerring.core.events import Decision
from unerring.core.totals import Totals
from unerring.journal.codec import pack_node_ends
from unerring.journal.group import Columns

Row = tuple[Any, ...]


def insert_rows(conn: sqlite3.Connection, insert: str, rows: list[Row]) -> None:
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


@dataclass(slots=True)
class GroupRows:
    """What one commit inserts, table by table (each row starts with the run's id)."""

    nodes: list[Row] = field(default_factory=list)  # items: a graph's new nodes
    blocks: list[Row] = field(default_factory=list)  # decision_blocks
    decisions: list[Row] = field(default_factory=list)  # decisions: noteworthy ones
    samples: list[Row] = field(default_factory=list)
    failures: list[Row] = field(default_factory=list)  # transport_failures
    discards: list[Row] = field(default_factory=list)  # discarded
    # the node_ends row without its run and seq: (items, steps, outputs, winners, data)
    node_ends: tuple[bytes, bytes, str, bytes, bytes] | None = None

    def insert(self, conn: sqlite3.Connection, run_id: int, ends_seq: int) -> None:
        """Insert every row, inside the caller's transaction; `ends_seq` numbers the
        node_ends row, if there is one."""
        # a graph's new nodes first: the rows the caller's updates move
        insert_rows(
            conn,
            "INSERT OR IGNORE INTO items (run, item, item_id, parent, kind, input, deps,"
            " depth, seq)",
            self.nodes,
        )
        if self.node_ends is not None:
            conn.execute(
                "INSERT INTO node_ends (run, seq, items, steps, outputs, winners, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, ends_seq, *self.node_ends),
            )
        insert_rows(
            conn,
            "INSERT INTO decision_blocks (run, first_step, last_step, winners, data, holes, item)",
            self.blocks,
        )
        insert_rows(
            conn,
            "INSERT INTO decisions (run, item, step, winner, votes, samples, surplus, flags,"
            " prompt_tokens, completion_tokens, cost, elapsed, undecided, correct, features)",
            self.decisions,
        )
        # a retried undecided step redraws the same indices: keep the first record
        insert_rows(
            conn,
            "INSERT OR IGNORE INTO samples (run, item, step, idx, text, vote, flag, counted,"
            " prompt_tokens, completion_tokens, latency, label, variant, model)",
            self.samples,
        )
        insert_rows(
            conn,
            "INSERT INTO transport_failures (run, step, attempt, kind, time, retried, message,"
            " item)",
            self.failures,
        )
        insert_rows(
            conn,
            "INSERT INTO discarded (run, item, step, samples, prompt_tokens,"
            " completion_tokens, cost, time)",
            self.discards,
        )


class NodeEnds:
    """The nodes a commit packs into its node_ends row (see journal/codec.py)."""

    __slots__ = ("decisions", "items", "outputs", "steps")

    def __init__(self) -> None:
        self.items: list[int] = []
        self.steps: list[int] = []
        self.outputs: list[str] = []
        self.decisions: list[Decision] = []

    def add(self, item: int, decisions: list[Decision], output: str) -> None:
        self.items.append(item)
        self.steps.append(len(decisions))
        self.outputs.append(output)
        self.decisions += decisions

    def row(self, run_totals: Totals) -> tuple[bytes, bytes, str, bytes, bytes]:
        """(items, steps, outputs, winners, data) of the node_ends row, its decisions
        counted into the run's totals."""
        packed = Columns.of(self.decisions).pack([])
        assert packed is not None  # (a node has a decision at least)
        packed.add_to(run_totals)
        items, steps, outputs = pack_node_ends(self.items, self.steps, self.outputs)
        return items, steps, outputs, packed.winners, packed.data
