"""What every executor shares: the work to do, how it is split, and the view of a run in
progress that the runner, the signal handler and the progress display read."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from unerring.backends.base import Backend
from unerring.backends.factory import Transport
from unerring.core.events import Events, ItemEnd
from unerring.core.totals import Totals
from unerring.errors import UsageError
from unerring.scheduler.build import Work
from unerring.scheduler.sources import RunEnd, Source
from unerring.voting.config import Budget

EXECUTORS = ("local", "ray")

Notify = Callable[[str], None]


@dataclass(frozen=True)
class ExecutorSpec:
    """Where a run's items are decided: in this process, or over Ray actors.

    A session option: an attempt may use another executor or worker count than the one
    before it (the journal's record does not depend on either).
    """

    kind: str = "local"
    workers: int | None = None  # Ray actors (default: the CPUs Ray reports)
    address: str | None = None  # a running Ray cluster, HOST:PORT (default: start one here)

    def check(self) -> None:
        """Refuse what cannot work, in one line (before anything is started or written)."""
        if self.kind not in EXECUTORS:
            raise UsageError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"workers must be at least 1, got {self.workers}")
        if self.kind == "local":
            if self.workers is not None:
                raise UsageError("workers applies to the ray executor, not the local one")
            if self.address is not None:
                raise UsageError("address applies to the ray executor, not the local one")


def shares(work: Work, workers: int) -> list[Work]:
    """The work of each of `workers` workers: the limits divided among them.

    Requests in flight are split as evenly as whole numbers allow (their sum is the run's
    `concurrency`); requests and tokens per minute are split evenly. Each worker then
    holds its share with its own limiter, with no round trip per request. The budget is
    not split: the driver holds it (see executors/ray.py).
    """
    t = work.transport
    c = t.concurrency
    if c is not None and c < workers:
        raise ValueError(f"concurrency {c} cannot be split among {workers} workers")
    out = []
    for i in range(workers):
        share = replace(
            t,
            concurrency=None if c is None else c // workers + (1 if i < c % workers else 0),
            requests_per_min=None if t.requests_per_min is None else t.requests_per_min / workers,
            tokens_per_min=None if t.tokens_per_min is None else t.tokens_per_min / workers,
        )
        out.append(replace(work, transport=share, budget=Budget()))
    return out


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class Execution(Protocol):
    """A run in progress, as the runner, the signal handler and the progress display see
    it; `run` decides the items and returns how the run ended."""

    totals: Totals  # the run's totals as they arrive (committed or not)
    ended: dict[str, int]  # items ended in this attempt, by how

    @property
    def in_flight(self) -> int:
        """Sample requests out now."""
        ...

    def not_completed(self) -> tuple[ItemEnd, ...]: ...

    def request_stop(self, reason: str, cancel_after: float | None = None) -> None:
        """Start no more steps; with `cancel_after`, cancel what is still pending that many
        seconds later (drawn again on resume). Safe from a signal handler."""
        ...

    def run(self, items: Source) -> RunEnd:
        """Decide the items the source gives until all end, the run stops or fails."""
        ...

    def report(self) -> dict[str, Any]:
        """What the executor did, for the run's summary (kind, workers, restarts)."""
        ...


class Executor(Protocol):
    """Starts executions; `close` releases what it started (a local Ray cluster)."""

    def check(self, transport: Transport) -> None:
        """Refuse limits this executor cannot split (before anything is written)."""
        ...

    def start(
        self,
        work: Work,
        events: Events,
        totals: Totals,
        wrap: Callable[[Backend], Backend] | None = None,
    ) -> Execution:
        """An execution of `work` (its backend `wrap`ped, for telemetry, where given)."""
        ...

    def close(self) -> None: ...
