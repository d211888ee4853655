"""A run's records as the rows every export writes (JSON lines, CSV, Parquet)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from unerring.errors import UsageError
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.scheduler.tree import JOURNAL_STATUS, PENDING


def export_rows(
    store: Store, run: RunRecord, what: str, item: ItemRecord | None = None
) -> Iterator[dict[str, Any]]:
    """A run's decisions or samples; of a batch or a graph, every item's (each row naming
    its item first) unless one item is asked for, which comes in the single-run form; or a
    graph's nodes."""
    if what == "nodes":
        if run.kind != "graph":
            raise UsageError(f"run {run.run_id!r} is a {run.kind}; --what nodes needs a graph")
        yield from node_rows(store, run)
        return
    if run.many_items and item is None:
        ids = {it.item: it.item_id for it in store.items(run)}
        if what == "decisions":
            for index, item_id in ids.items():
                for d in store.decisions(run, item=index):
                    yield {"item": item_id, **typed_decision(d)}
            return
        for d in _typed_samples(store.samples(run)):
            d["item"] = ids.get(d["item"], d["item"])
            yield d
        return
    index = 0 if item is None else item.item
    if what == "decisions":
        for d in store.decisions(run, item=index):
            yield typed_decision(d)
        return
    for d in _typed_samples(store.samples(run, item=index)):
        d.pop("item", None)
        yield d


def typed_decision(d: dict[str, Any]) -> dict[str, Any]:
    """The journal keeps flags as integers (SQLite has no booleans): every export gives
    them as booleans, `correct` None where the task has no checker."""
    d["undecided"] = bool(d["undecided"])
    correct = d["correct"]
    d["correct"] = None if correct is None else bool(correct)
    return d


def _typed_samples(rows: Iterable[sqlite3.Row]) -> Iterator[dict[str, Any]]:
    """Samples with `counted` a boolean and `vote` an integer: the number of the sample's
    answer within its step, in the order the answers were first drawn (None: red-flagged).

    Numbered here from the rows (in item, step, index order), not read as the number the
    journal keeps: stores written before numbering kept an answer's text there."""
    step: tuple[int, int] | None = None
    numbers: dict[str, int] = {}
    for row in rows:
        d = dict(row)
        d.pop("run", None)
        here = (d["item"], d["step"])
        if here != step:
            step, numbers = here, {}
        vote = d["vote"]
        if vote is not None:
            vote = numbers.setdefault(vote, len(numbers))
        d["vote"] = vote
        d["counted"] = bool(d["counted"])
        yield d


def node_status(it: ItemRecord) -> str:
    """A node's status as the task tree names it (decided, undecided, failed, pending),
    from its item's in the journal (completed, stopped, failed, pending)."""
    return JOURNAL_STATUS.get(it.status, PENDING)


def node_rows(store: Store, run: RunRecord) -> Iterator[dict[str, Any]]:
    """Every node: id, parent, kind, dependencies, status, depth, input, output (JSON
    values), voted steps, samples, tokens, errors (in the order the nodes were made)."""
    items = list(store.items(run))
    ids = {it.item: it.item_id for it in items}
    for it in items:
        st = it.stats
        yield {
            "id": it.item_id,
            "parent": None if it.parent is None else ids.get(it.parent),
            "kind": it.kind,
            "dependencies": json.loads(it.deps) if it.deps else [],
            "status": node_status(it),
            "depth": it.depth,
            "input": json.loads(it.input) if it.input else None,
            "output": json.loads(it.output) if it.output is not None else None,
            "steps": int(st.get("steps_decided", 0)),
            "samples": int(st.get("samples", 0)),
            "tokens": int(st.get("prompt_tokens", 0)) + int(st.get("completion_tokens", 0)),
            "errors": int(st.get("errors", 0)),
            "reason": it.reason,
        }
