"""A run and an item as the journal holds them: `RunRecord`, `ItemRecord`, read from rows."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace
from typing import Any

from unerring.journal.codec import DamagedRecord, NodeEnd


def json_column(text: str, what: str, name: str) -> Any:
    """A record's JSON column; text that is not JSON is a damaged file (the writer wrote
    JSON), named as such rather than failing as a parse error."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise DamagedRecord(f"{what} {name!r} holds a column that is not JSON") from None


@dataclass(frozen=True, slots=True)
class RunRecord:
    rowid: int  # the runs table's key: what every other table's `run` column holds
    run_id: str  # the run's name
    task: str
    config: dict[str, Any]
    status: str
    reason: str
    steps_total: int | None
    next_step: int
    state: str | None
    stats: dict[str, Any]
    created: float
    updated: float
    kind: str = "chain"  # chain: one item; batch: many items; graph: items are its nodes

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        return cls(
            rowid=row["id"],
            run_id=row["run_id"],
            task=row["task"],
            config=json_column(row["config"], "run", row["run_id"]),
            status=row["status"],
            reason=row["reason"],
            steps_total=row["steps_total"],
            next_step=row["next_step"],
            state=row["state"],
            stats=json_column(row["stats"], "run", row["run_id"]),
            created=row["created"],
            updated=row["updated"],
            kind=row["kind"],
        )

    @property
    def id(self) -> int:
        """`rowid` by its old name, for journal/writer.py until it reads `rowid`."""
        return self.rowid

    @property
    def many_items(self) -> bool:
        """A batch or a graph: its decisions belong to many items deciding side by side,
        each counting its own steps from 0 (a chain's all belong to item 0)."""
        return self.kind != "chain"


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One item of a run: a chain with its own options, status and resume point."""

    item: int  # its index in the run (0 for a single chain)
    item_id: str  # its name (a batch line's "id", else its line number from 1)
    options: dict[str, Any]
    status: str  # pending, completed, stopped or failed
    reason: str
    steps_total: int | None
    next_step: int
    state: str | None
    stats: dict[str, Any]
    # a graph's node: its parent's index, kind, input and deps (JSON), depth, output (JSON)
    parent: int | None = None
    kind: str | None = None
    input: str | None = None
    deps: str | None = None
    depth: int = 0
    output: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ItemRecord:
        return cls(
            item=row["item"],
            item_id=row["item_id"],
            options=json_column(row["options"], "item", row["item_id"]),
            status=row["status"],
            reason=row["reason"],
            steps_total=row["steps_total"],
            next_step=row["next_step"],
            state=row["state"],
            stats=json_column(row["stats"], "item", row["item_id"]),
            parent=row["parent"],
            kind=row["kind"],
            input=row["input"],
            deps=row["deps"],
            depth=row["depth"],
            output=row["output"],
        )

    def ended(self, end: NodeEnd) -> ItemRecord:
        """A node's items row as its packed end completes it (as an unpacked end's update)."""
        return replace(
            self,
            status="completed",
            reason="",
            next_step=end.steps,
            state=None,
            stats=end.totals(),
            output=end.output,
        )
