"""The local executor: one scheduler on one asyncio loop in this process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from unerring.backends.base import Backend
from unerring.events import Events, ItemEnd, Totals, TransportFailure
from unerring.executors.base import Work
from unerring.models import Transport, make_backend
from unerring.scheduler import BURST, RunEnd, Scheduler, Source


class LocalExecution:
    """A scheduler in this process, seen as an Execution."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.totals = scheduler.totals
        self.ended = scheduler.ended

    @property
    def in_flight(self) -> int:
        return self.scheduler.in_flight

    def not_completed(self) -> tuple[ItemEnd, ...]:
        return self.scheduler.not_completed()

    def request_stop(self, reason: str, cancel_after: float | None = None) -> None:
        self.scheduler.request_stop(reason, cancel_after)

    def run(self, items: Source) -> RunEnd:
        return asyncio.run(_run(self.scheduler, items))

    def report(self) -> dict[str, Any]:
        return {"executor": "local"}


async def _run(scheduler: Scheduler, items: Source) -> RunEnd:
    try:
        return await scheduler.run(items)
    finally:
        await scheduler.backend.aclose()


def local_scheduler(
    work: Work,
    events: Events,
    totals: Totals,
    wrap: Callable[[Backend], Backend] | None = None,
    burst: int = BURST,
) -> Scheduler:
    """A scheduler for `work` with its own backend (`wrap`ped, if given); transport
    failures count into `totals` and go out as events."""

    def on_failure(f: TransportFailure) -> None:
        totals.transport_failures += 1
        for fn in events.transport_failure:
            fn(f)

    backend = make_backend(work.spec, work.transport, on_failure)
    return Scheduler(
        backend if wrap is None else wrap(backend),
        work.voting,
        events,
        simulate=work.spec.simulated,
        prices=work.prices,
        budget=work.budget,
        totals=totals,
        speculate=work.speculate,
        window=work.items_window,
        burst=burst,
        rule=work.rule,
    )


class LocalExecutor:
    def check(self, transport: Transport) -> None:
        pass

    def start(
        self,
        work: Work,
        events: Events,
        totals: Totals,
        wrap: Callable[[Backend], Backend] | None = None,
    ) -> LocalExecution:
        return LocalExecution(local_scheduler(work, events, totals, wrap))

    def close(self) -> None:
        pass
