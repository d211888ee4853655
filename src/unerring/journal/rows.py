"""What a noteworthy decision becomes in the journal: its `decisions` row and its
`samples` rows.

Built by the journal writer for the decisions of its own step loop, and by a remote
executor's worker for its own (it holds the item's process, which a row's features need),
so what crosses the wire to the driver is rows of plain values, not Decision objects.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

from unerring.core.events import Decision
from unerring.process import Process

MAX_TEXT = 8192  # characters of a response kept in the journal


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n...[{len(text) - limit} more characters not kept]"


def decision_row(
    run_id: int, d: Decision, process: Process[Any, Any], *, plain: bool = False
) -> tuple[Any, ...]:
    """The decision's `decisions` row; `plain`: a plain step's row has no features."""
    features = None
    if not plain and (d.outcomes or d.correct is False):
        try:
            features = json.dumps(dict(process.features(d.state_before, d.step)))
        except Exception:
            features = None  # features only help analysis: never stop a run for them
    votes = d.votes
    if len(votes) == 1:  # (json.dumps of a one-number list, made faster: most steps)
        counted = f"[{next(iter(votes.values()))}]"
    else:
        counted = json.dumps(sorted(votes.values(), reverse=True))
    flags = d.flags
    return (
        run_id,
        d.item,
        d.step,
        d.winner_text,
        counted,
        d.samples,
        d.surplus,
        None if not flags else json.dumps({k.value: c for k, c in flags.items()}),
        d.prompt_tokens,
        d.completion_tokens,
        d.cost,
        d.elapsed_s,
        int(d.undecided),
        None if d.correct is None else int(d.correct),
        features,
    )


def sample_rows(run_id: int, d: Decision) -> list[tuple[Any, ...]]:
    """The decision's recorded samples as `samples` rows."""
    # a sample's vote is its answer's number within the step (0: the first answer
    # drawn), not the answer's repr: the text holds the answer and the repr nearly
    # doubled the samples table; equal answers get equal numbers
    numbers: dict[Hashable, str] = {}
    for o in d.outcomes:
        if o.key is not None and o.key not in numbers:
            numbers[o.key] = str(len(numbers))
    return [
        (
            run_id,
            d.item,
            d.step,
            o.index,
            bounded(o.sample.text),
            None if o.key is None else numbers[o.key],
            None if o.flag is None else o.flag.value,
            int(o.counted),
            o.sample.prompt_tokens,
            o.sample.completion_tokens,
            o.sample.latency_s,
            o.sample.label,
            o.variant,
            o.sample.model,
        )
        for o in d.outcomes
    ]
