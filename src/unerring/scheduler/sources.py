"""Where a scheduler's items come from (a batch, a chain, a graph's ready nodes, a
remote worker's feed) and how a run ends."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from unerring.core.events import ItemEnd
from unerring.process import NoteSelector, Process

Status = Literal["completed", "stopped", "failed"]


@dataclass(slots=True)
class Item:
    """One chain of a run, and where it stands (updated as its steps are decided)."""

    index: int  # its place in the run (0 for a single chain); the simulator draws from it
    process: Process[Any, Any]
    state: Any
    step: int = 0
    notes: NoteSelector | None = None  # picks the mistake notes that apply to a step
    item_id: str = "1"  # its name, for messages


@runtime_checkable
class Source(Protocol):
    """Where a run's items come from: all at once (a batch) or as they become ready."""

    # no item will come that the run's own item ends do not make ready (a source fed from
    # outside stays open until it is closed)
    closed: bool

    def bind(self, wake: asyncio.Event) -> None:
        """The event that wakes the scheduler's idle workers: a source fed from outside
        sets it as items come (others need not keep it)."""
        ...

    def take(self) -> Item | None:
        """An item ready to start now, or None when none is (yet)."""
        ...

    def ended(self, item: Item, end: ItemEnd) -> ItemEnd:
        """An item ended; return its end as the journal should record it (a graph adds the
        node's output). May make other items ready."""
        ...


class Fed:
    """Items handed over while the run goes on (a remote executor's worker is fed by its
    driver): open until `close`; each `put` wakes the scheduler's idle workers."""

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self.closed = False
        self._wake: asyncio.Event | None = None

    def bind(self, wake: asyncio.Event) -> None:
        self._wake = wake

    def put(self, items: Iterable[Item]) -> None:
        self._items.extend(items)
        if self._wake is not None:
            self._wake.set()

    def close(self) -> None:
        self.closed = True
        if self._wake is not None:
            self._wake.set()

    def take(self) -> Item | None:
        return self._items.popleft() if self._items else None

    def ended(self, item: Item, end: ItemEnd) -> ItemEnd:
        return end


class Items:
    """A fixed sequence of items, taken in order (pulled lazily: a batch's processes are
    built only as their items start)."""

    closed = True

    def __init__(self, items: Iterable[Item]) -> None:
        self._items = iter(items)

    def bind(self, wake: asyncio.Event) -> None:
        pass  # every item is here from the start

    def take(self) -> Item | None:
        return next(self._items, None)

    def ended(self, item: Item, end: ItemEnd) -> ItemEnd:
        return end


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a scheduler run ended; `ended` counts items by how they ended."""

    status: Status
    reason: str
    ended: dict[str, int] = field(default_factory=dict)
    not_completed: tuple[ItemEnd, ...] = ()  # the first few that stopped or failed
    step: int = 0  # where the last item to end stopped (a single chain: where it ended)
    state: Any = None  # and its state


def run_end(
    ended: dict[str, int],
    not_completed: tuple[ItemEnd, ...],
    last: ItemEnd | None,
    failure: str | None,
    stop_reason: str | None,
) -> RunEnd:
    """How a run ended, from how its items ended (and a failure or a stop, if any)."""
    where = (0, None) if last is None else (last.next_step, last.state)
    ended = dict(ended)
    ends = not_completed
    if failure is not None:
        return RunEnd("failed", failure, ended, ends, *where)
    if stop_reason is not None:
        return RunEnd("stopped", stop_reason, ended, ends, *where)
    failed, stopped = ended["failed"], ended["stopped"]
    if not failed and not stopped:
        return RunEnd("completed", "", ended, ends, *where)
    status: Status = "failed" if failed and not stopped else "stopped"
    if failed + stopped == 1:
        return RunEnd(status, ends[0].reason, ended, ends, *where)
    parts = [f"{n} {s}" for s, n in (("stopped", stopped), ("failed", failed)) if n]
    return RunEnd(status, f"items {' and '.join(parts)}", ended, ends, *where)
