"""What a run gives back: how it ended, its summary, and its journal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from unerring.errors import StoreRefused
from unerring.journal.store import RunRecord, Store
from unerring.scheduler.sources import RunEnd


@dataclass
class RunResult:
    """How a run ended, its summary, and its journal."""

    outcome: RunEnd
    run: RunRecord
    summary: dict[str, Any]
    store: Store

    def decisions(self, item_id: str | None = None) -> Iterator[dict[str, Any]]:
        """An item's decisions in step order (the only item of a chain by default),
        streamed from the journal."""
        index = 0
        if item_id is not None:
            found = self.store.item(self.run, item_id)
            if found is None:
                raise StoreRefused(f"run {self.run.run_id!r} has no item {item_id!r}")
            index = found.item
        return self.store.decisions(self.run, item=index)
