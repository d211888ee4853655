"""The work a scheduler needs (it pickles: a Ray actor gets it) and the scheduler built
for it, with its backend stacked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from unerring.backends.base import Backend
from unerring.backends.factory import Transport, make_backend, oracle_for
from unerring.backends.spec import ModelSpec
from unerring.core.events import Events, TransportFailure
from unerring.core.totals import Totals
from unerring.planning.pricing import Prices
from unerring.scheduler.loop import LOCAL_BURST, Scheduler
from unerring.voting.adaptive import AdaptiveRule
from unerring.voting.config import Budget, VotingConfig


def local_scheduler(
    work: Work,
    events: Events,
    totals: Totals,
    wrap: Callable[[Backend], Backend] | None = None,
    burst: int = LOCAL_BURST,
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
        oracle=oracle_for(work.spec),
        prices=work.prices,
        budget=work.budget,
        totals=totals,
        speculate=work.speculate,
        window=work.items_window,
        burst=burst,
        rule=work.rule,
        max_steps=work.max_steps,
    )


@dataclass(frozen=True)
class Work:
    """What a scheduler needs to decide items, wherever it runs (it pickles)."""

    spec: ModelSpec
    transport: Transport
    voting: VotingConfig
    prices: Prices
    budget: Budget
    speculate: int = 0
    window: int | None = None  # items deciding at once (default: from the concurrency)
    # the adaptive stopping rule as the journal left it (local only: it learns in-process)
    rule: AdaptiveRule | None = None
    # where an item of no total_steps() fails if done() is still false (None: nowhere)
    max_steps: int | None = None

    @property
    def items_window(self) -> int:
        return self.window or max(16, 4 * (self.transport.concurrency or 8))
