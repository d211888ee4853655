"""`unerring export --format parquet`: a run's records as a Parquet file (pyarrow), for
pandas, polars and DuckDB. Nested values are typed columns, not JSON text: votes a list
of counts, flags a map of kind to count, features a map of name to value (as text), a
node's dependencies a list of ids (its input and output, any JSON value, as JSON text).
A batch's rows name their item (its id) in a first column."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.reporting.rows import export_rows

BATCH = 65536  # rows per record batch: memory stays flat in the run's length

DECISIONS = pa.schema(
    [
        ("step", pa.int64()),
        ("winner", pa.string()),
        ("votes", pa.list_(pa.int64())),
        ("samples", pa.int64()),
        ("surplus", pa.int64()),
        ("flags", pa.map_(pa.string(), pa.int64())),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("cost", pa.float64()),
        ("elapsed", pa.float64()),
        ("undecided", pa.bool_()),
        ("correct", pa.bool_()),
        ("features", pa.map_(pa.string(), pa.string())),
    ]
)

SAMPLES = pa.schema(
    [
        ("step", pa.int64()),
        ("idx", pa.int64()),
        ("text", pa.string()),
        ("vote", pa.int64()),
        ("flag", pa.string()),
        ("counted", pa.bool_()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("latency", pa.float64()),
        ("label", pa.string()),
        ("variant", pa.int64()),
        ("model", pa.string()),
    ]
)


# a graph's nodes: input and output are any JSON value, so JSON text here (as in CSV)
NODES = pa.schema(
    [
        ("id", pa.string()),
        ("parent", pa.string()),
        ("kind", pa.string()),
        ("dependencies", pa.list_(pa.string())),
        ("status", pa.string()),
        ("depth", pa.int64()),
        ("input", pa.string()),
        ("output", pa.string()),
        ("steps", pa.int64()),
        ("samples", pa.int64()),
        ("tokens", pa.int64()),
        ("errors", pa.int64()),
        ("reason", pa.string()),
    ]
)


def _node(d: dict[str, Any]) -> dict[str, Any]:
    for key in ("input", "output"):
        if d[key] is not None:
            d[key] = json.dumps(d[key])
    return d


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:  # no store writes that; exported as missing rather than guessed
        return None


def _feature_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _decision(d: dict[str, Any]) -> dict[str, Any]:
    flags = _loads(d["flags"])
    features = _loads(d["features"])
    return {
        **d,
        "votes": _loads(d["votes"]),
        "flags": None if not isinstance(flags, dict) else list(flags.items()),
        "features": (
            None
            if not isinstance(features, dict)
            else [(str(k), _feature_text(v)) for k, v in features.items()]
        ),
    }


def write_parquet(
    store: Store, run: RunRecord, what: str, path: str, item: ItemRecord | None = None
) -> int:
    """Write the run's decisions or samples to `path` (a new file); returns the rows.

    Of a batch (a graph), every item's (node's) rows with its id first (`item`), unless one
    item is asked for: then its rows in the single-run form, as the other formats do.
    """
    schema = {"decisions": DECISIONS, "samples": SAMPLES, "nodes": NODES}[what]
    if run.many_items and item is None and what != "nodes":
        schema = pa.schema([pa.field("item", pa.string()), *schema])
    # samples come typed from export_rows; decisions' JSON text becomes nested columns
    shape = {"decisions": _decision, "nodes": _node}.get(what)
    rows = 0
    with store.snapshot(), pq.ParquetWriter(path, schema, compression="zstd") as writer:
        batch: list[dict[str, Any]] = []
        for d in export_rows(store, run, what, item):
            batch.append(d if shape is None else shape(d))
            if len(batch) == BATCH:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                rows += len(batch)
                batch = []
        if batch or rows == 0:
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
            rows += len(batch)
    return rows
