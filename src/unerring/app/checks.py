"""What a run must pass before its store is touched: a bad item, graph, variant, model key
or unreachable server is refused in one line, with nothing written."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from unerring.app import fingerprint
from unerring.app.options import BatchItem, RunConfig
from unerring.backends.factory import api_key, check_reachable
from unerring.errors import GraphError, UsageError
from unerring.graph import Graph, Memory, Node
from unerring.journal.lock import check_run_id
from unerring.limits import MAX_ITEM_ID, MAX_ITEMS
from unerring.planning.plan import check_variants
from unerring.process import REQUIRED, Process, missing_required
from unerring.process_factory import ProcessFactory
from unerring.scheduler.graph_check import check_nodes, check_stream

Row = tuple[str, dict[str, Any], int | None]  # an item's id, options and steps


@dataclass(frozen=True)
class NewRun:
    """A new run, checked: its steps, its items' rows, and what was made to check it."""

    steps: int | None
    rows: list[Row] = field(default_factory=list)
    process: Process[Any, Any] | None = None  # a chain's process
    graph: Graph | None = None
    first_nodes: list[Node] | None = None  # a graph's first nodes, checked
    construction: Any = None  # how its processes were made (app.fingerprint), recorded

    @property
    def kind(self) -> str:
        if self.graph is not None:
            return "graph"
        return "batch" if self.process is None else "chain"


def check_new_run(
    config: RunConfig, factory: ProcessFactory, batch: Sequence[BatchItem] | None
) -> NewRun:
    """A new run's processes made and checked: its steps counted, its graph's first nodes
    read through, its prompt variants offered."""
    variants = config.voting.variants
    if batch is not None:
        check_batch(batch)
        steps: list[int | None] = []
        made_as: list[tuple[str, dict[str, Any]]] = []
        for b in batch:
            p = _made(factory, b)
            if isinstance(p, Graph):
                raise UsageError(
                    f"task {factory.name!r} is a graph: a batch of graphs is not supported; "
                    "run each graph on its own"
                )
            if variants != (0,):
                check_variants(p, variants)
            steps.append(p.total_steps())
            known = {**factory.options, **b.options}
            made_as.append((b.item_id, fingerprint.construction(p, known)))
        rows = [(b.item_id, dict(b.options), s) for b, s in zip(batch, steps, strict=True)]
        total = None if None in steps else sum(s for s in steps if s is not None)
        return NewRun(total, rows, construction=fingerprint.batch(made_as))
    made = factory.make({})
    construction = fingerprint.recorded(fingerprint.construction(made, factory.options))
    if isinstance(made, Graph):
        if variants != (0,):
            raise UsageError(
                f"{{variants}}: task {factory.name!r} is a graph; prompt variants are for "
                "chains and batches",
                params=("variants",),
            )
        try:  # a graph that cannot run is refused before anything is written
            first = made.nodes()
            checked = None
            if isinstance(first, Sequence):
                checked = check_nodes(first, (), config.max_depth)
                check_graph_processes(made, checked)
            else:  # a stream: read through once, holding an index per node
                check_stream(first)
        except GraphError as e:
            raise UsageError(str(e)) from None
        return NewRun(
            made.total_steps(), graph=made, first_nodes=checked, construction=construction
        )
    check_made(made)
    if variants != (0,):
        check_variants(made, variants)
    steps_total = made.total_steps()
    return NewRun(steps_total, [("1", {}, steps_total)], process=made, construction=construction)


def _made(factory: ProcessFactory, b: BatchItem) -> Process[Any, Any] | Graph:
    try:
        made = factory.make(b.options, b.item_id)
        check_made(made)
    except UsageError as e:
        raise UsageError(f"{b.where()}: {e.template}", params=e.params) from None
    return made


def check_made(obj: object) -> None:
    """`obj` is a Graph, or a Process whose class defines every required method; else a
    UsageError naming what it lacks (before anything is written)."""
    if isinstance(obj, Graph):
        return
    missing = missing_required(obj)
    cls = type(obj).__name__
    if not isinstance(obj, Process):
        lacks = f"; it lacks {', '.join(missing)}" if missing else ""
        raise UsageError(
            f"a run takes a Process or a Graph, got a {cls!r} object{lacks} (subclass "
            f"unerring.Process and define {', '.join(REQUIRED)})"
        )
    if missing:
        one = len(missing) == 1
        raise UsageError(
            f"process {obj.name!r} ({cls}) does not define the required "
            f"method{'' if one else 's'} {', '.join(missing)} (a Process defines "
            f"{', '.join(REQUIRED)})"
        )


def check_graph_processes(graph: Graph, first: Sequence[Node]) -> None:
    """The processes of a graph's first nodes that need no other node's result, one per
    kind (what can be made before the run): each defines every required method."""
    kinds: set[str] = set()
    for n in first:
        if n.deps or n.kind in kinds:
            continue
        kinds.add(n.kind)
        try:
            made = graph.process(Memory(n))
        except TypeError as e:  # (an abstract class cannot be made: Python names the method)
            raise UsageError(
                f"graph {graph.name!r}: node {n.id!r}'s process cannot be made: {e}"
            ) from None
        try:
            check_made(made)
        except UsageError as e:
            raise UsageError(f"graph {graph.name!r}: node {n.id!r}: {e}") from None


def check_model(config: RunConfig) -> None:
    """The model's key can be sent, and every ensemble member's server answers."""
    transport = config.session.transport
    try:
        api_key(config.model, transport)
        if config.model.members:
            check_reachable(config.model, transport, os.environ)
    except UsageError:
        raise
    except ValueError as e:
        raise UsageError(str(e)) from None


def check_given_run_id(run_id: str | None) -> None:
    if run_id is not None:
        try:
            check_run_id(run_id)
        except ValueError as e:
            raise UsageError(str(e)) from None


def _shown(value: object, limit: int = 40) -> str:
    """A value for a message, cut short: an id may be megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def item_id_problem(item_id: object) -> str | None:
    """What is wrong with an item id (None: nothing). Ids are names that messages, tables
    and the journal's index repeat: a short line of printable characters."""
    if not isinstance(item_id, str) or not item_id:
        return "must be a non-empty string"
    if len(item_id) > MAX_ITEM_ID:
        return f"is {len(item_id):,} characters long; ids are at most {MAX_ITEM_ID}"
    if not item_id.isprintable():
        return "holds a control character (a newline, a tab); ids are printable text"
    return None


def check_batch(batch: Sequence[BatchItem]) -> None:
    if not batch:
        raise UsageError("a batch needs at least one item")
    if len(batch) > MAX_ITEMS:
        raise UsageError(
            f"a batch takes at most {MAX_ITEMS:,} items, got {len(batch):,}; split it into "
            "several runs"
        )
    seen: set[str] = set()
    for b in batch:
        problem = item_id_problem(b.item_id)
        if problem is not None:
            raise UsageError(f"{b.origin or 'a batch item'}: item id {_shown(b.item_id)} {problem}")
        if b.item_id in seen:
            raise UsageError(f"item id {b.item_id!r} appears twice; ids must be unique")
        seen.add(b.item_id)
