"""A run's records as the rows every export writes (JSON lines, CSV, Parquet)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from unerring.journal.store import ItemRecord, RunRecord, Store


def export_rows(
    store: Store, run: RunRecord, what: str, item: ItemRecord | None = None
) -> Iterator[dict[str, Any]]:
    """A run's decisions or samples; of a batch, every item's (each row naming its item
    first) unless one item is asked for, which comes in the single-run form."""
    if run.kind == "batch" and item is None:
        ids = {it.item: it.item_id for it in store.items(run)}
        if what == "decisions":
            for index, item_id in ids.items():
                for d in store.decisions(run, item=index):
                    yield {"item": item_id, **d}
            return
        for row in store.samples(run):
            d = dict(row)
            d.pop("run", None)
            d["item"] = ids.get(d["item"], d["item"])
            yield d
        return
    index = 0 if item is None else item.item
    if what == "decisions":
        yield from store.decisions(run, item=index)
        return
    for row in store.samples(run, item=index):
        d = dict(row)
        d.pop("run", None)
        d.pop("item", None)
        yield d
