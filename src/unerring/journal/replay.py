"""Rebuilding an item's states from the journal: the one state replay.

A resume starts from the item's saved state when the process can serialise one, else from
the initial state advanced along the committed winners; failure analysis walks the same
path to know the state before each step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from unerring.core.flags import Flag
from unerring.journal.store import RunRecord, Store
from unerring.process import Process


def replay(
    process: Process[Any, Any],
    store: Store,
    run: RunRecord,
    item: int = 0,
    limit: int | None = None,
    initial: Any = None,
) -> Iterator[tuple[int, Any]]:
    """(step, state before the step) along an item's committed winners, from step 0.

    Stops early at `limit` steps, at an undecided step, or at a winner the process no
    longer parses (a changed process: what follows cannot be trusted).
    """
    state = process.initial_state() if initial is None else initial
    # the winners alone, without a dict per step
    for step, winner in store.decision_values(run, "winner", item):
        if limit is not None and step >= limit:
            return
        yield step, state
        if winner is None:
            return
        answer = process.parse(winner)
        if isinstance(answer, Flag):
            return
        state = process.advance(state, answer)


def restore_state(
    process: Process[Any, Any], store: Store, run: RunRecord, item: int, saved: str | None
) -> Any:
    """The state an item resumes from: its saved state, else the winners replayed."""
    if saved is not None:
        return process.load_state(saved)
    state = process.initial_state()
    for step, winner in store.decision_values(run, "winner", item):
        answer = process.parse(winner)
        if isinstance(answer, Flag):
            raise ValueError(
                f"step {step}'s committed winner no longer parses: the process "
                "changed since the run started; it cannot be resumed"
            )
        state = process.advance(state, answer)
    return state
