"""Failure records, built from what the journal already holds (no write on the hot path).

Sources: red-flagged and losing samples (the samples table: every sample of a contested
or flagged step at the default record level), decisions the checker rejected, undecided
steps, a run stopped by its budget, and transport failures. Each record gets a category,
a bounded excerpt, the step's features, an estimated time, and intermittent/systematic.
One item's records are built in item_records.py; the types are in failure.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from unerring.analysis.failure import FailureRecord, RunFailures, excerpt, safe, tokens_of
from unerring.analysis.incidents import incidents
from unerring.analysis.item_records import item_records, process_of
from unerring.analysis.taxonomy import transport_category
from unerring.errors import StoreRefused
from unerring.journal.replay import replay
from unerring.journal.store import ItemRecord, Store
from unerring.process import Feature
from unerring.process_factory import FactoryResolver

# `safe` (failure.py) is imported from here by cli/
__all__ = ["REPLAY_LIMIT", "build", "first_wrong_node", "safe", "step_features"]

REPLAY_LIMIT = 1 << 21  # steps replayed for features and baselines (covers 20-disk Hanoi)


def step_features(
    store: Store, run_id: str, item_id: str | None = None, *, resolve: FactoryResolver | None
) -> dict[int, dict[str, Feature]]:
    """Every decided step's features of one item (default: the first), replayed along its
    winners (for evaluation)."""
    run = store.run(run_id)
    if item_id is None:
        item = next(store.items(run), None)
    else:
        item = store.item(run, item_id)
        if item is None:
            raise StoreRefused(f"run {run_id!r} has no item {item_id!r}")
    if item is None:
        return {}
    process = process_of(run, item, resolve)
    if process is None:
        return {}
    return {
        s: dict(process.features(state, s))
        for s, state in replay(process, store, run, item=item.item)
    }


def build(
    store: Store,
    run_id: str,
    *,
    resolve: FactoryResolver | None,
    replay_limit: int = REPLAY_LIMIT,
) -> RunFailures:
    """Failure records of one run (every item of a batch), read from the journal.

    Features are replayed item by item along the committed winners (by the processes
    `resolve` makes again), `replay_limit` steps in all: items past it get the features
    journaled with their contested steps only.
    """
    run = store.run(run_id)
    attempts = store.attempts(run)
    items = list(store.items(run))
    names = {it.item: it.item_id for it in items}
    baseline: Counter[str] = Counter()
    baseline_steps = 0
    left = replay_limit
    records: list[FailureRecord] = []
    all_features: dict[tuple[int, int], dict[str, Feature]] = {}
    first_wrong: tuple[str, int] | None = None
    wrong_at: dict[str, int] = {}  # a graph's nodes with a wrong decision: the first step
    for it in items:
        found = item_records(store, run, it, attempts, left, resolve)
        records.extend(found.records)
        baseline.update(found.baseline)
        baseline_steps += found.replayed
        left -= found.replayed
        for s, f in found.features.items():
            all_features[(it.item, s)] = f
        if found.first_wrong is not None:
            wrong_at[it.item_id] = found.first_wrong
            if first_wrong is None:
                first_wrong = (it.item_id, found.first_wrong)
    if run.kind == "graph" and wrong_at:
        # the first wrong node on a path: one whose ancestors and dependencies, all the
        # way up, decided right (later wrong nodes may only inherit its mistake)
        first = first_wrong_node(items, set(wrong_at))
        if first is not None:
            first_wrong = (first, wrong_at[first])
    if baseline_steps == 0:
        for f in all_features.values():
            baseline.update(tokens_of(f))
        baseline_steps = len(all_features)
    for row in store.transport_failures(run):
        item = int(row["item"])
        records.append(
            FailureRecord(
                run_id=run.run_id,
                item_id=names.get(item, str(item + 1)),
                item=item,
                step=row["step"],
                index=None,
                category=transport_category(row["kind"]),
                excerpt=excerpt(row["message"]),
                answer=None,
                features=all_features.get((item, row["step"]), {}),
                time=row["time"],
                counted=False,
                systematic=not row["retried"],
                flip_rate=None,
                retried=bool(row["retried"]),
            )
        )
    out = RunFailures(
        run=run,
        records=records,
        steps=int(run.stats.get("steps_decided", 0)),
        samples=int(run.stats.get("samples", 0)),
        baseline=baseline,
        baseline_steps=baseline_steps,
        first_wrong=first_wrong,
        items=names,
    )
    out.incidents = incidents(records)
    return out


def first_wrong_node(items: Sequence[ItemRecord], wrong: set[str]) -> str | None:
    """Of a graph's wrong nodes, the first made whose upstream (parent and dependencies,
    transitively) has no wrong node."""
    ids = {it.item: it.item_id for it in items}
    up: dict[str, list[str]] = {}
    for it in items:
        deps = json.loads(it.deps) if it.deps else []
        parent = [] if it.parent is None else [ids[it.parent]] if it.parent in ids else []
        up[it.item_id] = [*parent, *deps]
    tainted: dict[str, bool] = {}

    def upstream_wrong(nid: str) -> bool:
        # iterative: a deep graph must not overflow the stack
        stack, seen = list(up.get(nid, ())), set()
        while stack:
            u = stack.pop()
            if u in seen:
                continue
            seen.add(u)
            if u in wrong or tainted.get(u):
                return True
            stack.extend(up.get(u, ()))
        return False

    for it in items:  # in the order the nodes were made
        if it.item_id in wrong:
            if not upstream_wrong(it.item_id):
                return it.item_id
            tainted[it.item_id] = True
    return None
