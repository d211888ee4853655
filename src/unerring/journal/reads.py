"""Reading a run's record back: its decisions (rows and packed blocks alike), samples,
commits and transport failures, and the queries failure analysis and the report make."""

from __future__ import annotations

import heapq
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from unerring.journal.base import StoreBase, StoreRefused
from unerring.journal.codec import (
    BlockColumns,
    DamagedRecord,
    block_columns,
    block_steps,
    block_winners,
    check_decision_row,
    unpack_block,
    unpack_holes,
)
from unerring.journal.records import RunRecord


class Reads(StoreBase):
    """The Store's reads of what a run decided, drew and spent."""

    # -- decisions and samples --------------------------------------------------------------
    def decisions(self, run: RunRecord, start: int = 0, item: int = 0) -> Iterator[dict[str, Any]]:
        """One item's decisions from step `start` in step order, streamed (constant memory).

        Noteworthy steps have a row of their own; runs of plain steps are packed in blocks
        (see journal.codec); both come back here in one shape (and so do a graph node's
        whose end is packed: its every decision is there).
        """
        with self._decoding(run):
            end = self.node_ends(run).get(item)
            if end is not None:
                yield from (d for d in end.decisions() if d["step"] >= start)
                return
        full = self.conn.execute(
            "SELECT * FROM decisions WHERE run = ? AND item = ? AND step >= ? ORDER BY step",
            (run.rowid, item, start),
        )
        blocks = self.conn.execute(
            "SELECT * FROM decision_blocks WHERE run = ? AND item = ? AND last_step >= ?"
            " ORDER BY first_step",
            (run.rowid, item, start),
        )
        rows = (_decision_dict(r) for r in full)
        unpacked = (d for b in blocks for d in unpack_block(b) if d["step"] >= start)
        with self._decoding(run):
            expected = start
            for d in heapq.merge(rows, unpacked, key=lambda d: int(d["step"])):
                # an item's steps are decided one after another, each journaled once
                if d["step"] != expected:
                    raise DamagedRecord(f"item {item}: step {d['step']} where {expected} was due")
                expected += 1
                yield d

    @contextmanager
    def _decoding(self, run: RunRecord) -> Iterator[None]:
        """Packed decisions that do not decode are a damaged file: refused, named."""
        try:
            yield
        except (DamagedRecord, zlib.error, UnicodeDecodeError) as e:
            raise StoreRefused(
                f"{self.path} is damaged: run {run.run_id!r} holds packed decisions that "
                f"do not decode ({e}); it was not modified; restore it from a copy"
            ) from None

    def samples(self, run: RunRecord, item: int | None = None) -> Iterator[sqlite3.Row]:
        """A run's recorded samples (of one item, or all) in item, step, index order."""
        if item is None:
            cur = self.conn.execute(
                "SELECT * FROM samples WHERE run = ? ORDER BY item, step, idx", (run.rowid,)
            )
        else:
            cur = self.conn.execute(
                "SELECT * FROM samples WHERE run = ? AND item = ? ORDER BY step, idx",
                (run.rowid, item),
            )
        yield from cur

    def decision_values(
        self, run: RunRecord, column: str, item: int = 0
    ) -> Iterator[tuple[int, Any]]:
        """(step, value) of one column ("winner" or "elapsed") for each of an item's
        decisions, in step order: what a replay or a clock needs, without a dict per step."""
        if column not in ("winner", "elapsed"):
            raise ValueError(f"decision_values reads winner or elapsed, not {column!r}")
        end = self.node_ends(run).get(item)
        if end is not None:
            if column == "winner":
                yield from enumerate(end.winners())
            else:
                yield from enumerate(e / 1e6 for e in end.block(item).elapsed_us)
            return
        full = self.conn.execute(
            f"SELECT step, {column} FROM decisions WHERE run = ? AND item = ? ORDER BY step",
            (run.rowid, item),
        )
        rows = (tuple(r) for r in full)
        packed: Iterator[tuple[int, Any]]
        if column == "winner":
            blocks = self.conn.execute(
                "SELECT first_step, last_step, holes, winners FROM decision_blocks"
                " WHERE run = ? AND item = ? ORDER BY first_step",
                (run.rowid, item),
            )
            packed = (
                pair
                for b in blocks
                for pair in zip(
                    block_steps(b["first_step"], b["last_step"], unpack_holes(b["holes"])),
                    block_winners(b),
                    strict=True,
                )
            )
        else:
            packed = (
                pair
                for c in self.block_columns(run, item)
                for pair in zip(
                    block_steps(c.first_step, c.last_step, c.holes),
                    (e / 1e6 for e in c.elapsed_us),
                    strict=True,
                )
            )
        # steps are unique across the two streams: tuples never compare their values
        yield from heapq.merge(rows, packed)

    def commits(self, run: RunRecord) -> Iterator[tuple[float, int, int, int, float]]:
        """What each commit of the run's journal writer added, in time order: (time,
        steps decided, samples, tokens, cost); none for what was written before schema 8."""
        cur = self.conn.execute(
            "SELECT time, steps, samples, tokens, cost FROM commits WHERE run = ? ORDER BY time",
            (run.rowid,),
        )
        for row in cur:
            yield row[0], row[1], row[2], row[3], row[4]

    def transport_failures(self, run: RunRecord) -> Iterator[sqlite3.Row]:
        cur = self.conn.execute(
            "SELECT * FROM transport_failures WHERE run = ? ORDER BY time", (run.rowid,)
        )
        yield from cur

    def count_decisions(self, run: RunRecord, item: int | None = None) -> int:
        """Decisions journaled for a run (or one of its items)."""
        where, args = "run = ?", [run.rowid]
        if item is not None:
            where, args = "run = ? AND item = ?", [run.rowid, item]
        full = self.conn.execute(f"SELECT count(*) FROM decisions WHERE {where}", args).fetchone()[
            0
        ]
        packed = self.conn.execute(
            "SELECT coalesce(sum(last_step - first_step + 1 - coalesce(length(holes), 0) / 4),"
            f" 0) FROM decision_blocks WHERE {where}",
            args,
        ).fetchone()[0]
        ends = self.node_ends(run)
        if item is not None:
            nodes = ends[item].steps if item in ends else 0
        else:
            nodes = sum(e.steps for e in ends.values())
        return int(full) + int(packed) + nodes

    # -- analysis queries -------------------------------------------------------------------
    # what failure analysis reads from the journal (the two tables it writes are in
    # failures.py and notebooks.py): the analysis modules hold no SQL of their own
    def noteworthy_decisions(self, run: RunRecord, item: int = 0) -> Iterator[dict[str, Any]]:
        """An item's decisions that may hold a failure: rejected by the checker, undecided,
        or with samples kept (step, winner, votes, undecided, correct, features)."""
        cur = self.conn.execute(
            "SELECT step, winner, votes, undecided, correct, features FROM decisions"
            " WHERE run = ? AND item = ? AND (correct = 0 OR undecided = 1 OR step IN"
            " (SELECT step FROM samples WHERE run = ? AND item = ?)) ORDER BY step",
            (run.rowid, item, run.rowid, item),
        )
        for row in cur:
            yield dict(row)

    def wrong_decisions(self, run: RunRecord) -> tuple[int, int]:
        """How many decisions the checker rejected, and in how many items."""
        row = self.conn.execute(
            "SELECT count(*), count(DISTINCT item) FROM decisions WHERE run = ? AND correct = 0",
            (run.rowid,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def first_wrong_decision(self, run: RunRecord) -> dict[str, Any] | None:
        """The first decision the checker rejected, by item then step (item, step, winner,
        votes), or None."""
        row = self.conn.execute(
            "SELECT item, step, winner, votes FROM decisions WHERE run = ? AND correct = 0"
            " ORDER BY item, step LIMIT 1",
            (run.rowid,),
        ).fetchone()
        return None if row is None else dict(row)

    def step_samples(self, run: RunRecord, item: int, step: int) -> list[dict[str, Any]]:
        """One step's recorded samples in index order (idx, text, vote, flag, counted)."""
        rows = self.conn.execute(
            "SELECT idx, text, vote, flag, counted FROM samples"
            " WHERE run = ? AND item = ? AND step = ? ORDER BY idx",
            (run.rowid, item, step),
        ).fetchall()
        return [dict(r) for r in rows]

    def sample_votes(self, run: RunRecord, item: int = 0) -> Iterator[tuple[int, int, str]]:
        """(step, index, vote) of an item's recorded valid samples, in step, index order."""
        cur = self.conn.execute(
            "SELECT step, idx, vote FROM samples WHERE run = ? AND item = ? AND vote IS NOT NULL"
            " ORDER BY step, idx",
            (run.rowid, item),
        )
        for row in cur:
            yield int(row[0]), int(row[1]), str(row[2])

    def sample_sources(
        self, run: RunRecord, item: int = 0
    ) -> dict[int, dict[int, tuple[int | None, str | None]]]:
        """Step -> index -> (prompt variant, model) of an item's recorded valid samples that
        name either (a run with prompt variants or a model ensemble)."""
        out: dict[int, dict[int, tuple[int | None, str | None]]] = {}
        cur = self.conn.execute(
            "SELECT step, idx, variant, model FROM samples WHERE run = ? AND item = ?"
            " AND vote IS NOT NULL AND (variant IS NOT NULL OR model IS NOT NULL)",
            (run.rowid, item),
        )
        for step, idx, variant, model in cur:
            out.setdefault(int(step), {})[int(idx)] = (variant, model)
        return out

    def winning_votes(self, run: RunRecord, item: int = 0) -> dict[int, str]:
        """Step -> the vote of the samples whose text won, where a sample of it was kept."""
        rows = self.conn.execute(
            "SELECT s.step, s.vote FROM samples s JOIN decisions d ON d.run = s.run"
            " AND d.item = s.item AND d.step = s.step WHERE s.run = ? AND s.item = ?"
            " AND s.vote IS NOT NULL AND s.text = d.winner",
            (run.rowid, item),
        ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    # -- report queries ---------------------------------------------------------------------
    # what `unerring report` reads: the decisions as columns, never a dict per plain step
    def block_columns(self, run: RunRecord, item: int | None = None) -> Iterator[BlockColumns]:
        """The plain decisions of one item (or of every item), one packed block at a time,
        as columns; an item's blocks in step order, items in order.

        With `decision_rows` this covers every decision once, without building a dict per
        step: what aggregates over a million steps need.
        """
        where, args = _of_item(run, item)
        cur = self.conn.execute(
            "SELECT item, first_step, last_step, data, holes FROM decision_blocks"
            f" WHERE {where} ORDER BY item, first_step",
            args,
        )
        blocks = (block_columns(row) for row in cur)
        ends = self.node_ends(run)
        if item is not None:
            ends = {item: ends[item]} if item in ends else {}
        if not ends:
            yield from blocks
            return
        # a packed node's decisions as its block, in item order among the others
        packed = (ends[i].block(i) for i in sorted(ends))
        yield from heapq.merge(blocks, packed, key=lambda c: c.item)

    def decision_rows(self, run: RunRecord, item: int | None = None) -> Iterator[dict[str, Any]]:
        """The decisions of one item (or of every item) with a row of their own (contested,
        flagged, rejected, undecided), by item then step, without their texts (winner,
        features)."""
        where, args = _of_item(run, item)
        cur = self.conn.execute(
            "SELECT item, step, votes, samples, surplus, flags, prompt_tokens,"
            " completion_tokens, cost, elapsed, undecided, correct FROM decisions"
            f" WHERE {where} ORDER BY item, step",
            args,
        )
        for row in cur:
            yield dict(row)

    def item_numbers(self, run: RunRecord) -> Iterator[tuple[int, str, int, int, float, int]]:
        """(item, status, steps decided, samples, cost, errors) of each of a run's items, in
        order: read from each item's totals inside SQLite (no JSON parsed here)."""
        cur = self.conn.execute(
            "SELECT item, status, coalesce(json_extract(stats, '$.steps_decided'), 0),"
            " coalesce(json_extract(stats, '$.samples'), 0),"
            " coalesce(json_extract(stats, '$.cost'), 0.0),"
            " coalesce(json_extract(stats, '$.errors'), 0)"
            " FROM items WHERE run = ? ORDER BY item",
            (run.rowid,),
        )
        ends = self.node_ends(run)
        for row in cur:
            end = ends.get(row[0]) if ends else None
            if end is not None:
                t = end.totals()
                yield row[0], "completed", end.steps, t.get("samples", 0), t.get("cost", 0.0), 0
                continue
            yield int(row[0]), str(row[1]), int(row[2]), int(row[3]), float(row[4]), int(row[5])

    def item_extent(self, run: RunRecord) -> int:
        """The furthest any item of the run got: the largest next step."""
        row = self.conn.execute(
            "SELECT coalesce(max(next_step), 0) FROM items WHERE run = ?", (run.rowid,)
        ).fetchone()
        return max(int(row[0]), *(e.steps for e in self.node_ends(run).values()), 0)

    def item_ids(self, run: RunRecord, items: Iterable[int]) -> dict[int, str]:
        """The ids (names) of a few of a run's items, by index."""
        out: dict[int, str] = {}
        for i in sorted(set(items)):
            row = self.conn.execute(
                "SELECT item_id FROM items WHERE run = ? AND item = ?", (run.rowid, i)
            ).fetchone()
            if row is not None:
                out[i] = str(row[0])
        return out


def _of_item(run: RunRecord, item: int | None) -> tuple[str, tuple[int, ...]]:
    """The WHERE clause (and its arguments) for one item of a run, or all of them."""
    if item is None:
        return "run = ?", (run.rowid,)
    return "run = ? AND item = ?", (run.rowid, item)


def _decision_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d.pop("run", None)
    d.pop("item", None)
    check_decision_row(d)
    return d
