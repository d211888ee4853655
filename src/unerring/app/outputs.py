"""What a run's items produced, read back from the journal: a chain's state where it ended
(its final state once completed), a graph node's output, the graph's result; and whether
an item was right, as far as its process's checker says.

Two forms: Python objects (the library's `RunResult.output`: states restored by the
process's own `load_state`, or replayed along the committed winners) and JSON values (the
CLI's `show --item --json` and `export --what outputs`: the text the journal holds).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from unerring.errors import StoreRefused, UsageError
from unerring.graph import Graph
from unerring.journal.replay import restore_state
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.process import Process
from unerring.scheduler.tree import TaskTree

# run stats kept at the end of a graph run (read back by `show` and the report with no
# recomputation): its node count, each status's count, its checker's verdict, its result
GRAPH_STATS = ("nodes", "node_statuses", "result_correct", "result")

MakeProcess = Callable[[ItemRecord], "Process[Any, Any] | Graph"]


def item_correct(item: ItemRecord) -> bool | None:
    """Was the item right? None where its process has no checker (no step was checked).

    A chain has no check of its final state: an item is right when it completed and no
    checked step was wrong (every decided step the checker judged was right). Steps
    the checker returned None for are not judged."""
    st = item.stats
    if int(st.get("checked", 0)) == 0:
        return None
    return item.status == "completed" and int(st.get("errors", 0)) == 0


def chain_output(store: Store, run: RunRecord, item: ItemRecord, process: Process[Any, Any]) -> Any:
    """A chain item's state where it ended (None: it decided no step yet), as the
    process's `load_state` restores it, else replayed along its committed winners."""
    if item.state is None and item.next_step == 0:
        return None
    try:
        return restore_state(process, store, run, item.item, item.state)
    except ValueError as e:
        raise StoreRefused(f"run {run.run_id!r} item {item.item_id!r}: {e}") from None


def output_of(
    store: Store, run: RunRecord, item: ItemRecord, made: Process[Any, Any] | Graph
) -> Any:
    """An item's output as a Python object: a chain's state, a graph node's output."""
    if isinstance(made, Graph):
        return None if item.output is None else made.load_output(item.output)
    return chain_output(store, run, item, made)


def graph_stats(
    graph: Graph, tree: TaskTree, status: str, store: Store, run: RunRecord
) -> dict[str, Any]:
    """What a graph run's end keeps in its stats (GRAPH_STATS): its node count and the
    count in each status, and once completed its checker's verdict and its result."""
    completed = status == "completed"
    result = (
        {
            nid: graph.dump_output(t.result)
            for nid, t in tree.nodes.items()
            if t.complete and t.parent is None and not t.depended
        }
        if completed
        else None
    )
    return {
        "nodes": len(tree.seen),
        "node_statuses": store.item_counts(run),
        "result_correct": graph.check(tree.outputs()) if completed else None,
        "result": result,
    }


def graph_result(run: RunRecord, graph: Graph) -> dict[str, Any] | None:
    """A completed graph run's result: the results of its nodes with neither parent nor
    dependents, by node id, as kept when the run ended (None: it did not complete)."""
    kept = run.stats.get("result")
    if not isinstance(kept, Mapping):
        return None
    return {str(k): graph.load_output(str(v)) for k, v in kept.items()}


def output_json(
    store: Store, run: RunRecord, item: ItemRecord, make: MakeProcess | None = None
) -> Any:
    """An item's output as a JSON value: the text the journal holds (a chain's saved
    state, a node's output). A chain that journals no state is replayed with `make`'s
    process and dumped; without `make` (or a process that cannot dump) it is None."""
    if run.kind == "graph":
        return None if item.output is None else json.loads(item.output)
    if item.state is not None:
        return json.loads(item.state)
    if make is None or item.next_step == 0:
        return None
    p = make(item)
    if not isinstance(p, Process):
        return None
    try:
        return json.loads(p.dump_state(chain_output(store, run, item, p)))
    except NotImplementedError:
        return None


def output_rows(
    store: Store, run: RunRecord, make: MakeProcess | None = None
) -> Iterator[dict[str, Any]]:
    """One row per item (streamed): id, status, output (a JSON value), and `correct`
    where the process has a checker (see `item_correct`)."""
    for it in store.items(run):
        row: dict[str, Any] = {
            "id": it.item_id,
            "status": it.status,
            "output": output_json(store, run, it, make),
        }
        correct = item_correct(it)
        if correct is not None:
            row["correct"] = correct
        yield row


def find_item(store: Store, run: RunRecord, item_id: str | None) -> ItemRecord:
    """The item named (a chain's only item by default), refused by name when absent."""
    if item_id is None:
        if run.kind != "chain":
            raise UsageError(
                f"run {run.run_id!r} is a {run.kind}: name its item (`item_id`), or "
                "read them all with outputs()"
            )
        found = next(iter(store.items(run)), None)
    else:
        found = store.item(run, item_id)
    if found is None:
        raise StoreRefused(f"run {run.run_id!r} has no item {item_id!r}")
    return found
