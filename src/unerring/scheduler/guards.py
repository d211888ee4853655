"""Guard rails on an item's chain: how far it may go before `done()` must be true, and how
an item ends when a step's samples are all red-flagged.

Each is read once per item or only on a rare path (an undecided step): a chain's steps pay
one integer comparison for the step limit and nothing for the rest.
"""

from __future__ import annotations

import sys
from typing import Any

from unerring.process import Process

# no limit: a chain without a total and without max_steps runs until done() says so
NO_LIMIT = sys.maxsize


def step_limit(process: Process[Any, Any], max_steps: int | None) -> int:
    """The step at which an item whose `done()` is still false fails: `total_steps()`
    when the process knows it, else `max_steps`, else none (NO_LIMIT)."""
    total = process.total_steps()
    if total is not None:
        return total
    return NO_LIMIT if max_steps is None else max_steps


def overrun_reason(process: Process[Any, Any], limit: int) -> str:
    """Why an item fails at its step limit, naming `done()` and where the limit came from."""
    if process.total_steps() is not None:
        return (
            f"done() still false after total_steps() = {limit:,} steps; fix done() or total_steps()"
        )
    return (
        f"done() still false after max_steps = {limit:,} steps (total_steps() is None); "
        "fix done(), or raise max_steps"
    )
