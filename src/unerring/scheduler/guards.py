"""Guard rails on an item's chain: how far it may go before `done()` must be true, and how
an item ends when a step's samples are all red-flagged.

Each is read once per item or only on a rare path (an undecided step): a chain's steps pay
one integer comparison for the step limit and nothing for the rest.
"""

from __future__ import annotations

import sys
from typing import Any

from unerring.core.events import Decision
from unerring.core.flags import Flag, raised_text
from unerring.process import Process

# no limit: a chain without a total and without max_steps runs until done() says so
NO_LIMIT = sys.maxsize


def step_limit(process: Process[Any, Any], max_steps: int | None) -> int:
    """The step at which an item whose `done()` is still false fails: the process's
    `step_limit()` (its `total_steps()` unless it says otherwise) when it has one, else
    `max_steps`, else none (NO_LIMIT)."""
    limit = process.step_limit()
    if limit is not None:
        return limit
    return NO_LIMIT if max_steps is None else max_steps


def overrun_reason(process: Process[Any, Any], limit: int) -> str:
    """Why an item fails at its step limit, naming `done()` and where the limit came from.

    A process whose chain a wrong decision can lengthen says so with a `step_limit()` past
    its total; the reason still says a wrong decision may be the cause."""
    total = process.total_steps()
    if total is not None:
        named = "total_steps()" if limit == total else "step_limit()"
        return (
            f"done() still false after {named} = {limit:,} steps: done() or {named} is "
            "wrong, or a wrong decision took the chain off its course"
        )
    return (
        f"done() still false after max_steps = {limit:,} steps (total_steps() is None); "
        "fix done(), or raise max_steps"
    )


# what to look at, by the flag most of an all-flagged step's samples got
_HINTS = {
    Flag.PARSE_ERROR: "fix parse(): return Flag.PARSE for a response it cannot read",
    Flag.PARSE: "the responses are not in the format parse() reads: restate it in the prompt",
    Flag.INVALID: "validate() rejects every answer: check it, and the prompt",
    Flag.OVERLONG: "every response is over max_tokens: raise it, or ask for the answer only",
    Flag.EMPTY: "the model returns no text: check the model and its server",
}


def all_flagged(d: Decision) -> bool:
    """An undecided step none of whose samples was valid: its first 2k were all red-flagged
    (the step gave up) or every sample to its cap was."""
    return not d.votes and bool(d.flags)


def flagged_reason(d: Decision) -> str:
    """Why an item ends at a step whose samples were all red-flagged: the kind most of them
    got (and what `parse` raised, if it did), not the sample cap."""
    flags = d.flags or {}
    ranked = sorted(flags.items(), key=lambda fc: -fc[1])
    kind = ranked[0][0]
    counts = ", ".join(f"{f.value} {n:,}" for f, n in ranked)
    text = f"step {d.step}: all {d.samples:,} samples red-flagged, most as {kind.value} ({counts})"
    if d.parse_error is not None:
        text += f"; parse() raised {raised_text(d.parse_error)}"
    hint = _HINTS.get(kind)
    return f"{text}; {hint}" if hint else text
