"""`unerring export --format jsonl|csv`: a run's rows streamed as JSON lines or CSV.

Both carry what Parquet carries, with the same types: booleans as booleans, numbers as
numbers, None as null (JSON) or an empty cell (CSV). Nested values (votes, flags,
features, a node's dependencies, input and output) are JSON values in JSON lines and
JSON text in CSV, one column each.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from contextlib import suppress
from typing import Any, TextIO

# decision columns the journal keeps as JSON text: votes (counts, best first), flags
# (red flags by kind) and features (the step's features, for failure analysis)
JSON_COLUMNS = ("votes", "flags", "features")
# a cell a spreadsheet would take for a formula (or, after a tab or a carriage return,
# for the start of one): shown as text behind an apostrophe, as OWASP advises
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def json_values(d: dict[str, Any]) -> dict[str, Any]:
    """The JSON-text columns as the values they hold, so JSONL readers decode once."""
    for key in JSON_COLUMNS:
        text = d.get(key)
        # text that is not JSON (no store writes that) is exported as the text it is
        if isinstance(text, str):
            with suppress(ValueError):
                d[key] = json.loads(text)
    return d


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> None:
    for d in rows:
        out.write(json.dumps(json_values(d)) + "\n")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: booleans as true/false, nested values as JSON text, and text
    a spreadsheet would run as a formula (= + - @ first) behind an apostrophe."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        value = json.dumps(value)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> None:
    writer: Any = None
    for d in rows:
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(d))
            writer.writeheader()
        writer.writerow({k: csv_cell(v) for k, v in d.items()})
