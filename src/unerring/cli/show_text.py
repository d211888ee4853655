"""`unerring show` as text: a run's summary, one field a line, numbers for people."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from unerring.analysis.records import safe
from unerring.core.flags import parse_error_text

# the fields shown, in order (`--json` has them all, as numbers)
FIELDS = (
    "run_id",
    "task",
    "task_options",
    "model",
    "k",
    "stopping",
    "status",
    "reason",
    "steps_decided",
    "steps_total",
    "errors",
    "undecided",
    "samples",
    "samples_per_step",
    "red_flags",
    "flags",
    "parse_error",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "transport_failures",
    "wall_s",
    "us_per_step",
    "attempts",
    "last_activity",
)
BATCH_FIELDS = ("items", "items_completed", "items_stopped", "items_failed", "items_pending")
GRAPH_FIELDS = ("nodes", "node_statuses", "result_correct")
# counts of what did not happen say nothing: left out at zero (errors and undecided stay:
# zero of those is the news)
_QUIET_AT_ZERO = frozenset({"cost", "transport_failures"})


def duration(seconds: float) -> str:
    """0.0056 s, 12.40 s, 3 min 05 s, 2 h 07 min."""
    if seconds < 1:
        return f"{seconds:.2g} s"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours:,} h {minutes:02d} min"


def number(value: float) -> str:
    """A float without exponents: 90,930 rather than 9.093e+04; small ones to 4 digits."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _mapping(value: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{safe(str(k), 80)}={v if isinstance(v, int | float | str) else json.dumps(v)}"
        for k, v in value.items()
    )


def value_text(key: str, value: Any) -> str | None:
    """A field's value as shown, or None to leave its line out (nothing to say)."""
    if key == "errors" and value is None:
        return "no checker"
    if key == "result_correct" and value is None:
        return "unknown (no checker, or not completed)"
    if value is None or value == "" or value == {} or value == []:
        return None
    if key in _QUIET_AT_ZERO and not value:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if key == "wall_s":
            return duration(value)
        if key == "cost":
            return f"${value:,.4f}"
        if key == "samples_per_step":
            return f"{value:,.2f}"
        if key == "us_per_step":
            return f"{value:,.1f}"
        return number(value)
    if key == "parse_error" and isinstance(value, Mapping):
        return safe(parse_error_text(value), 400)
    if isinstance(value, Mapping):
        return _mapping(value)
    return safe(str(value), 400)


def summary_lines(s: Mapping[str, Any]) -> Iterator[str]:
    """The summary's fields that have something to say, `key  value` a line."""
    keys = FIELDS + (BATCH_FIELDS if "items" in s else ()) + (GRAPH_FIELDS if "nodes" in s else ())
    for key in keys:
        text = value_text(key, s.get(key))
        if text is not None:
            yield f"{key:<18} {text}"
