"""What a run gives back: how it ended, its summary, its items' outputs, and its journal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from unerring.app.outputs import find_item, graph_result, output_of
from unerring.graph import Graph
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.process import Process
from unerring.process_factory import ProcessFactory
from unerring.reporting.rows import typed_decision
from unerring.reporting.streams import json_values
from unerring.reporting.summary import summary
from unerring.scheduler.sources import RunEnd


@dataclass
class RunResult:
    """How a run ended, its summary, its items' outputs and its journal.

    `status` is the run's status (completed, stopped or failed); `output()` an item's
    output (a chain's final state; a graph's result); `outputs()` every item's, streamed
    from the journal; `decisions()` an item's decisions. The run's `factory` makes its
    processes again, to decode their states (None: outputs cannot be decoded)."""

    outcome: RunEnd
    run: RunRecord
    summary: dict[str, Any]
    store: Store
    factory: ProcessFactory | None = None

    @classmethod
    def recorded(cls, store: Store, run: RunRecord, factory: ProcessFactory | None) -> RunResult:
        """The result a run's journal recorded (a completed run asked for again): its
        status, summary and outputs, nothing drawn."""
        outcome = RunEnd(run.status, run.reason, store.item_counts(run))  # type: ignore[arg-type]
        s = summary(run, run.stats, outcome, store, len(store.attempts(run)))
        return cls(outcome, run, s, store, factory)

    @property
    def status(self) -> str:
        """How the run ended: completed, stopped or failed."""
        return str(self.outcome.status)

    def decisions(self, item_id: str | None = None) -> Iterator[dict[str, Any]]:
        """An item's decisions in step order (the only item of a chain by default),
        streamed from the journal; as `unerring export` writes them: `votes` a list of
        counts (best first), `flags` and `features` dicts, `undecided` and `correct`
        booleans (`correct` None where the process has no checker)."""
        index = 0
        if item_id is not None:
            index = find_item(self.store, self.run, item_id).item
        for d in self.store.decisions(self.run, item=index):
            yield json_values(typed_decision(d))

    def output(self, item_id: str | None = None) -> Any:
        """An item's output: a chain's state where it ended (its final state once
        completed; None before its first decision), restored with its process's
        `load_state` (or replayed along its decisions); a graph node's output.

        With no `item_id`: a chain's only item, or a graph's result (the results of its
        nodes with neither parent nor dependents, by node id; None unless it completed).
        A batch needs `item_id`."""
        if item_id is None and self.run.kind == "graph":
            made = self._made(None)
            assert isinstance(made, Graph)
            return graph_result(self.run, made)
        it = find_item(self.store, self.run, item_id)
        return output_of(self.store, self.run, it, self._made(it))

    def outputs(self) -> Iterator[tuple[str, Any]]:
        """(item id, output) for every item in order, streamed from the journal (an
        iterator of pairs, not a mapping: a batch of a million items is never held at
        once; `dict(result.outputs())` makes one). A graph's items are its nodes."""
        for it in self.store.items(self.run):
            yield it.item_id, output_of(self.store, self.run, it, self._made(it))

    def _made(self, it: ItemRecord | None) -> Process[Any, Any] | Graph:
        if self.factory is None:
            from unerring.errors import UsageError

            raise UsageError(f"run {self.run.run_id!r}: no process to decode its outputs with")
        if it is None or self.run.kind == "graph":
            return self.factory.make({})
        return self.factory.make(it.options, it.item_id)
