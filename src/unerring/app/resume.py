"""Resuming from the journal: the adaptive rule replayed, a graph's task tree rebuilt."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from unerring.core.events import Events
from unerring.errors import UsageError
from unerring.graph import Graph, Node
from unerring.journal.replay import restore_state
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.process import Process
from unerring.scheduler.tree import JOURNAL_STATUS, PENDING, RestoredNode, TaskTree
from unerring.voting.adaptive import AdaptiveConfig, AdaptiveRule


def learnt_rule(
    config: AdaptiveConfig, store: Store, run: RunRecord, pending: list[ItemRecord]
) -> AdaptiveRule:
    """The adaptive rule as the journal left it: every committed decision replayed.

    A batch's items learn from one another (by index); a graph's node indices are hashes,
    with no order to learn in, so each node learns from its own steps only."""
    rule = AdaptiveRule(config, across_items=run.kind != "graph")
    items = list(store.items(run))
    for it in items:
        if not it.next_step:
            continue
        for d in store.decisions(run, item=it.item):
            step = int(d["step"])
            if step >= it.next_step:  # an undecided step that stopped: decided again
                break
            rule.observe(step, json.loads(d["votes"]), it.item)
    if run.kind != "graph":
        rule.begin(len(items), (it.item for it in pending))
    return rule


Journaled = tuple[list[ItemRecord], Iterator[Node] | None, dict[str, int | None] | None]


def journaled_nodes(graph: Graph, store: Store, run: RunRecord) -> Journaled:
    """A graph's nodes in the journal (none: a new run) and, for a graph whose nodes are an
    iterator, the stream past those the journal holds and their uses (the nodes still to
    come may read their results). A stream that no longer makes the journal's nodes is
    refused before the attempt begins."""
    rows = list(store.items(run))
    first = graph.nodes() if rows else ()
    if isinstance(first, Sequence):
        return rows, None, None
    stream = iter(first)
    uses: dict[str, int | None] = {}
    claimed: Counter[str] = Counter()
    for r in rows:
        if r.parent is not None:
            continue
        n = next(stream, None)
        if n is None or n.id != r.item_id:
            raise UsageError(
                f"run {run.run_id!r}: the graph's nodes are not those the journal holds "
                f"(node {r.item_id!r} there, {'none' if n is None else repr(n.id)} now); "
                "a graph must make the same nodes each time"
            )
        uses[n.id] = n.uses
        claimed.update(d for d in n.deps if d in uses)
    over = [d for d, c in claimed.items() if (u := uses[d]) is not None and c > u]
    if over:
        raise UsageError(
            f"run {run.run_id!r}: more nodes depend on {over[0]!r} than its `uses` says"
        )
    return rows, stream, uses


def task_tree(
    graph: Graph,
    max_depth: int,
    store: Store,
    run: RunRecord,
    events: Events,
    journaled: Journaled,
    checked: list[Node] | None,
) -> TaskTree:
    """A graph run's task memory tree: its first nodes (`checked`: as checked before the
    store was touched), or the journal's (a resume). Nodes joining the run go to `events`."""

    def restore(process: Process[Any, Any], item: int, next_step: int, saved: str | None) -> Any:
        return restore_state(process, store, run, item, saved)

    tree = TaskTree(graph, max_depth=max_depth, events=events, restore=restore)
    rows, stream, uses = journaled
    if not rows:
        tree.start(checked)
        return tree
    by_index = {r.item: r.item_id for r in rows}
    tree.restore_rows(
        [
            RestoredNode(
                Node(
                    r.item_id,
                    r.kind or "step",
                    graph.load_output(r.input) if r.input else None,
                    tuple(json.loads(r.deps)) if r.deps else (),
                ),
                None if r.parent is None else by_index.get(r.parent),
                r.depth,
                JOURNAL_STATUS.get(r.status, PENDING),
                graph.load_output(r.output) if r.output is not None else None,
                r.next_step,
                r.state,
            )
            for r in rows
        ],
        uses,
    )
    if stream is not None:
        tree.follow(stream)
    return tree
