"""The local executor: one scheduler on one asyncio loop in this process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from unerring.backends.base import Backend
from unerring.backends.ensemble import members_down
from unerring.backends.factory import Transport
from unerring.core.events import Events, ItemEnd
from unerring.core.totals import Totals
from unerring.scheduler.build import Work, local_scheduler
from unerring.scheduler.loop import Scheduler
from unerring.scheduler.sources import RunEnd, Source


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
        out: dict[str, Any] = {"executor": "local"}
        down = members_down(self.scheduler.backend)
        if down:  # the run carried on without them: say so
            out["members_down"] = down
        return out


async def _run(scheduler: Scheduler, items: Source) -> RunEnd:
    try:
        return await scheduler.run(items)
    finally:
        await scheduler.backend.aclose()


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
