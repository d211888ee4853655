"""A worker of a remote executor: a scheduler over the items the driver hands it, whose
events it gathers into commit groups for the driver to journal.

Plain Python, no Ray: the Ray executor runs one per actor, and tests drive one directly.
Everything goes through one call, `exchange`: the driver hands items (and a stop, or the
end of its items) and gets back what was decided since the last call.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from unerring.core.events import (
    Decision,
    Discarded,
    Events,
    ItemEnd,
    ItemStart,
    TransportFailure,
)
from unerring.core.totals import Totals
from unerring.journal.group import Group
from unerring.process import Process
from unerring.scheduler.build import Work, local_scheduler
from unerring.scheduler.loop import REMOTE_BURST, Scheduler
from unerring.scheduler.sources import Fed, Item

GATHER_S = 0.02  # how long a call lets a group gather before it answers


@dataclass
class Report:
    """What a worker hands the driver at each exchange."""

    group: Group  # the events since the last exchange
    totals: Totals  # what they add to the run's totals
    drawn: int  # samples drawn so far, whether handed over or not
    unreported: int  # of those, samples not yet in any group (steps still deciding)
    unreported_tokens: int
    cpu_s: float  # CPU seconds the worker's process spent since the last exchange
    active: int  # items deciding
    in_flight: int  # sample requests out
    stop_reason: str | None = None  # why the worker's scheduler stopped, if it did
    failure: str | None = None
    done: bool = False  # the worker's run has ended: nothing more will come


class Worker:
    """A scheduler fed by the driver; its events gathered into groups."""

    def __init__(self, work: Work) -> None:
        self.group = Group()
        self.totals = Totals()
        self._sent = Totals()
        self._sent_tokens = 0
        events = Events()
        events.subscribe(self)
        self.scheduler: Scheduler = local_scheduler(work, events, self.totals, burst=REMOTE_BURST)
        self.fed = Fed()  # the items the driver hands over
        # the processes of items started here, until their end ships (sealing a group
        # turns an item's noteworthy decisions into rows, which its process helps make)
        self._processes: dict[int, Process[Any, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self.failure: str | None = None
        self.done = False
        self._cpu = time.process_time()

    # -- the scheduler's events ----------------------------------------------------------------
    def on_item_start(self, x: ItemStart) -> None:
        self._processes[x.item] = x.process

    def on_decision(self, d: Decision) -> None:
        self.group.add(d)

    def _other(self, x: TransportFailure | Discarded | ItemEnd) -> None:
        self.group.items.append(x)

    on_transport_failure = _other
    on_discarded = _other
    on_item_end = _other

    # -- the driver's calls --------------------------------------------------------------------
    def pid(self) -> int:
        return os.getpid()

    async def exchange(
        self,
        items: Sequence[Item] = (),
        stop: str | None = None,
        close: bool = False,
        wait_s: float = 0.2,
        cancel_after: float | None = None,
    ) -> Report:
        """Take items (a stop, the end of the items), then hand over what was decided
        since the last call: at least GATHER_S later, at most `wait_s` if nothing was.
        `cancel_after`: a stop's deadline, after which what is pending is cancelled."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        self.fed.put(items)
        if stop is not None:
            self.scheduler.request_stop(stop, cancel_after)
            self.fed.close()
        elif cancel_after is not None:  # (the scheduler keeps the earliest deadline)
            self.scheduler.request_stop(self.scheduler.stop_reason or "stopped", cancel_after)
        if close:
            self.fed.close()
        t0 = time.monotonic()
        await asyncio.sleep(GATHER_S)
        while not (self.group or self.done) and time.monotonic() - t0 < wait_s:
            await asyncio.sleep(GATHER_S)
        return self._report()

    def _report(self) -> Report:
        group, self.group = self.group, Group()
        processes = self._processes
        group.seal(processes.__getitem__)
        for x in group.items:
            if isinstance(x, ItemEnd):
                processes.pop(x.item, None)
        now = self.totals.copy()
        delta = now.minus(self._sent)
        self._sent = now
        handed = now.samples + now.speculative_samples
        tokens = now.prompt_tokens + now.completion_tokens
        s = self.scheduler
        cpu, self._cpu = self._cpu, time.process_time()
        return Report(
            group=group,
            totals=delta,
            drawn=s.drawn,
            unreported=s.drawn - handed,
            unreported_tokens=s.drawn_tokens - tokens,
            cpu_s=self._cpu - cpu,
            active=s.items_active,
            in_flight=s.in_flight,
            stop_reason=s.stop_reason,
            failure=self.failure or s.failure,
            done=self.done,
        )

    async def _run(self) -> None:
        try:
            await self.scheduler.run(self.fed)
        except Exception as e:  # a bug of ours: the driver must hear of it, in one line
            self.failure = f"worker failed ({type(e).__name__}: {e})"
        finally:
            try:
                await self.scheduler.backend.aclose()
            finally:
                self.done = True
