"""The scheduler: many steps in flight over a run's items, one vote path, events out.

A run is a set of items; an item is a chain (a Process: state -> step). The scheduler
keeps up to `window` items deciding at once on one backend (whose wrappers hold the one
limiter: requests in flight, rates), under one budget, and emits events (items starting,
decisions, transport failures, discarded speculation, items ending). It knows the journal,
the progress display and failure recording by none of their names, and the backend only
by its protocol. A single chain is the case of one item: there is no second engine.

One step is `step.Steps.decide`; a chain that opens steps ahead of its vote is
`speculation.Pipeline`; this module holds the rest: the workers, the budget, the stop,
and how items end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from time import perf_counter

from unerring.backends.base import Backend, FatalBackendError, StepOracle, TransportError
from unerring.core.events import Decision, Discarded, Events, ItemEnd, ItemStart
from unerring.core.totals import Totals
from unerring.planning.pricing import Prices
from unerring.scheduler.guards import all_flagged, flagged_reason, overrun_reason, step_limit
from unerring.scheduler.sources import Item, Items, RunEnd, Source, Status, run_end
from unerring.scheduler.speculation import Pipeline
from unerring.scheduler.step import BudgetCut, SampleCap, Steps, first_error
from unerring.voting.adaptive import AdaptiveRule
from unerring.voting.config import Budget, VotingConfig
from unerring.voting.step import StepTally, StepVote

# Steps an item decides in a row before it lets the event loop run anything else, on a
# backend that never waits (the simulator without latency). Locally the rest is other
# items and the progress display: a yield per 256 steps costs nothing measurable. A remote
# executor's worker must also answer its driver's next exchange promptly, so it yields
# every 32 steps (about a millisecond of work).
LOCAL_BURST = 256
REMOTE_BURST = 32
# item ends kept with their reasons for the run's summary (the journal keeps them all)
KEEP_ENDS = 20


class Scheduler:
    """Decides the steps of a run's items on one backend, emitting events."""

    def __init__(
        self,
        backend: Backend,
        voting: VotingConfig,
        events: Events | None = None,
        *,
        oracle: StepOracle | None = None,
        prices: Prices | None = None,
        budget: Budget | None = None,
        totals: Totals | None = None,
        speculate: int = 0,
        window: int = 64,
        burst: int = LOCAL_BURST,
        rule: AdaptiveRule | None = None,
        max_steps: int | None = None,
    ) -> None:
        if speculate < 0:
            raise ValueError(f"speculate must not be negative, got {speculate}")
        if window < 1:
            raise ValueError(f"the item window must be at least 1, got {window}")
        self.backend = backend
        self.voting = voting
        self.events = events or Events()
        self.prices = prices or Prices()
        self.budget = budget or Budget()
        self._budgeted = self.budget.active  # (a frozen Budget: asked once, not per item)
        self.totals = totals or Totals()
        cap = self.budget.max_samples
        # held at every round, not only between steps (see SampleCap)
        self.sample_cap = None if cap is None else SampleCap(cap, self.totals)
        self.speculate = speculate
        self.window = window
        self.burst = burst  # steps an item decides at once on a backend that never waits
        # where an item of no total_steps() fails if done() is still false (None: nowhere)
        self.max_steps = max_steps
        # the adaptive stopping rule (None: ahead-by-k); it learns from every decided step
        if rule is None and voting.adaptive is not None:
            rule = AdaptiveRule(voting.adaptive)
        self.rule = rule
        self._learnt: asyncio.Event | None = None  # set when the rule has learnt more
        self.steps = Steps(
            backend,
            voting,
            self.prices,
            oracle=oracle,
            sample_cap=self.sample_cap,
            tally_of=None if rule is None else self._tally,
        )
        self.stop_reason: str | None = None  # set from a signal handler or another thread
        self.failure: str | None = None
        self.items_active = 0
        self.workers = 0  # made as items come (see run), at most `window`
        self.ended: dict[str, int] = {"completed": 0, "stopped": 0, "failed": 0}
        self._not_completed: list[ItemEnd] = []
        self._source: Source = Items(())
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_end: ItemEnd | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._cancel_timer: asyncio.TimerHandle | None = None
        self._cancel_in: float | None = None
        self._cancelled = False  # the stop has cancelled what was pending

    # -- what the display and a remote worker's driver read ----------------------------------
    @property
    def in_flight(self) -> int:
        """Sample requests out now (one-per-sample backends)."""
        return self.steps.in_flight

    @property
    def drawn(self) -> int:
        """Samples the backend has returned, voted on or not."""
        return self.steps.drawn

    @property
    def drawn_tokens(self) -> int:
        return self.steps.drawn_tokens

    def not_completed(self) -> tuple[ItemEnd, ...]:
        """The first items that stopped or failed in this attempt (read by the display)."""
        return tuple(self._not_completed)

    # -- stopping ----------------------------------------------------------------------------
    def request_stop(self, reason: str, cancel_after: float | None = None) -> None:
        """Open no more steps. With `cancel_after`, what is still pending that many seconds
        later (requests, back-off sleeps, waits on the circuit breaker) is cancelled: its
        items stop where their last decision left them, and a resume draws it again.

        Safe from a signal handler and from another thread (the journal writer's)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        loop = self._loop
        if loop is not None:
            # through the loop's own wake-up: a signal handler runs between the loop's
            # steps, and a plain call there would not wake a loop waiting on its sockets
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing waits
                loop.call_soon_threadsafe(self._stopping, cancel_after)
        elif cancel_after is not None:
            self._cancel_in = cancel_after  # (asked before the run began: armed when it does)

    def _stopping(self, cancel_after: float | None) -> None:
        """On the loop: wake the workers waiting for items, arm the cancellation."""
        if self._wake is not None:
            self._wake.set()
        loop = self._loop
        if cancel_after is None or self._cancelled or loop is None:
            return
        at = loop.time() + max(0.0, cancel_after)
        timer = self._cancel_timer
        if timer is not None:
            if timer.when() <= at:
                return  # an earlier cancellation is armed already
            timer.cancel()
        self._cancel_timer = loop.call_at(at, self._cancel_pending)

    def _cancel_pending(self) -> None:
        self._cancelled = True
        for t in self._workers:
            t.cancel()

    def _stopped_here(self) -> bool:
        """Is the cancellation being raised the stop's own? If so it is taken (the task
        goes on to record its item's end); any other cancellation passes on."""
        task = asyncio.current_task()
        if not self._cancelled or task is None:
            return False
        while task.uncancel():  # (a deadline that expired at the same moment counts too)
            pass
        return True

    def halt(self) -> str | None:
        """Why no new step may open (a stop request or a reached budget), or None."""
        if self.stop_reason is None and self._budgeted:
            reason = self.budget.reached(self.totals)
            if reason is not None:
                self.request_stop(reason)
        return self.stop_reason

    # -- learning (the adaptive rule) --------------------------------------------------------
    def _learnt_more(self) -> None:
        """The rule learnt something: steps waiting for it look again."""
        ev = self._learnt
        if ev is not None:
            self._learnt = None
            ev.set()

    async def _await_learning(self) -> None:
        """Wait until the rule learns more (or a moment passes: a stop request, set from a
        signal handler or another thread, is seen without a wake-up)."""
        ev = self._learnt
        if ev is None:
            ev = self._learnt = asyncio.Event()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
        # arrives as its wait ends, and a cancelled speculative step would then wait on
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await ev.wait()

    async def _tally(self, it: Item, step: int) -> StepTally:
        """The step's tally under the adaptive rule, once the steps it learns from are in
        (only a speculative step, opened before the steps before it are decided, waits)."""
        rule = self.rule
        assert rule is not None
        fitted = rule.fitted(step, it.index)
        while fitted is None:
            await self._await_learning()
            fitted = rule.fitted(step, it.index)
        return fitted.tally()

    # -- the run ---------------------------------------------------------------------------
    async def run(self, items: Source | Iterable[Item]) -> RunEnd:
        """Decide every item's steps until all end, the run stops, or it fails.

        `items` is a fixed sequence (a batch, or one chain), or a Source whose items become
        ready as others end (a graph). Workers each take the next ready item and drive it
        to its end: no task per item, and at most `window` items at once. A worker is made
        when every other is busy, so there are never many more than items: a window of
        16,384 (the largest concurrency's) costs a chain of one item two tasks.
        """
        source = items if isinstance(items, Source) else Items(items)
        self._source = source
        totals = self.totals
        t0 = perf_counter()
        wall0 = totals.wall_s
        wake = self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        source.bind(wake)  # a source fed from outside wakes the workers as items come
        self.workers = 0
        self._workers = []
        try:
            async with asyncio.TaskGroup() as group:

                def hire() -> None:
                    """One more worker, unless the window is full."""
                    if self.workers < self.window:
                        self.workers += 1
                        self._workers.append(group.create_task(self._worker(source, wake, hire)))

                hire()
                if self.stop_reason is not None:  # asked before the loop ran
                    self._stopping(self._cancel_in)
        except BaseExceptionGroup as eg:
            raise first_error(eg) from None
        finally:
            if self._cancel_timer is not None:
                self._cancel_timer.cancel()
            totals.wall_s = wall0 + (perf_counter() - t0)
        return run_end(
            self.ended, tuple(self._not_completed), self._last_end, self.failure, self.stop_reason
        )

    async def _worker(self, source: Source, wake: asyncio.Event, hire: Callable[[], None]) -> None:
        while self.stop_reason is None:
            it = source.take()
            if it is None:
                if not self.items_active and source.closed:
                    # nothing ready, nothing deciding that could make it so, and nothing
                    # more to come from outside
                    wake.set()
                    return
                wake.clear()
                try:
                    await wake.wait()  # an item ended: maybe others are ready now
                except asyncio.CancelledError:
                    if self._stopped_here():
                        return
                    raise
                continue
            if self.items_active + 1 >= self.workers:
                hire()  # every worker is busy now: one more for the next ready item
            starts = self.events.item_start
            if starts:  # (a test's bare scheduler has no subscriber: nothing to make)
                x = ItemStart(it.index, it.item_id, it.process)
                for fn in starts:
                    fn(x)
            await self._drive(it)
            wake.set()

    async def _drive(self, it: Item) -> None:
        self.items_active += 1
        try:
            rule = self.rule
            if rule is not None:
                # the items this one learns from must have ended (they started before it)
                while not rule.ready(it.index):
                    reason = self.halt()
                    if reason is not None:
                        self.end_item(it, "stopped", reason)
                        return
                    await self._await_learning()
            if self.speculate and not self.steps.whole:
                await Pipeline(self, it).run()
            else:
                await self._chain(it)
        except FatalBackendError as e:
            reason = f"{e.kind}: {e}"
            if self.failure is None:
                self.failure = reason
            self.request_stop(reason)
            self.end_item(it, "stopped", reason)
        except TransportError as e:
            reason = f"model unreachable ({e.kind}): {e}"
            if not e.item_only:  # an outage: every item would fail the same way
                self.request_stop(reason)
            # else one request failed on every attempt while others did not: this item
            # stops, resumable, and the others go on
            self.end_item(it, "stopped", reason)
        except asyncio.CancelledError:
            if not self._stopped_here():
                raise
            # a stop cancelled the step in hand: nothing of it counts, the item stops after
            # its last decision (and the step is drawn again on resume)
            self.end_item(it, "stopped", self.stop_reason or "stopped")
        except Exception as e:  # the process's own code raised: this item fails, not the run
            self.end_item(it, "failed", f"step {it.step}: {type(e).__name__}: {e}")
        finally:
            self.items_active -= 1

    # -- a chain ---------------------------------------------------------------------------
    async def _chain(self, it: Item) -> None:
        """Decide an item's steps one after another to its end (or its stop)."""
        process = it.process
        state, step = it.state, it.step
        budgeted = self._budgeted
        decide = self.steps.decide
        limit = step_limit(process, self.max_steps)
        burst = 0
        while not process.done(state, step):
            if step >= limit:  # (one comparison a step: the guard costs nothing else)
                self.end_item(it, "failed", overrun_reason(process, limit))
                return
            if budgeted or self.stop_reason is not None:
                reason = self.halt()
                if reason is not None:
                    self.end_item(it, "stopped", reason)
                    return
            try:
                d = await decide(it, state, step)
            except BudgetCut as cut:
                self.cut(it, cut, step)
                return
            self.emit(d)
            if d.state_after is None:  # undecided, and not taken by plurality
                self.end_item(it, *self.undecided_end(d))
                return
            state = it.state = d.state_after
            step = it.step = step + 1
            burst += 1
            if burst == self.burst:  # a backend that never waits would never let others run
                burst = 0
                await asyncio.sleep(0)
        self.end_item(it, "completed")

    # -- events ------------------------------------------------------------------------------
    def emit(self, d: Decision) -> None:
        """A step decided (or not): counted, told to the subscribers, learnt from."""
        if self.sample_cap is not None:
            self.sample_cap.asked -= d.samples
        self.totals.add(d)
        for fn in self.events.decision:
            fn(d)
        if self.rule is not None and d.state_after is not None:
            self.rule.observe(d.step, d.votes.values(), d.item)
            self._learnt_more()

    def discard(self, it: Item, step: int, vote: StepVote) -> None:
        """What a step drew that will never vote (speculation thrown away, a step the cap
        cut short): paid for and journaled, never counted as votes."""
        if self.sample_cap is not None:
            self.sample_cap.asked -= len(vote.drawn)
        got = len(vote.drawn) - vote.outstanding
        if not got:
            return
        ptoks, ctoks = vote.prompt_tokens, vote.completion_tokens
        x = Discarded(
            item=it.index,
            step=step,
            samples=got,
            prompt_tokens=ptoks,
            completion_tokens=ctoks,
            cost=ptoks * self.prices.prompt + ctoks * self.prices.completion,
        )
        self.totals.add_discarded(x)
        for fn in self.events.discarded:
            fn(x)

    def cut(self, it: Item, cut: BudgetCut, step: int) -> None:
        """The sample cap leaves a step short of a decision: the item stops before it, and
        what the step drew is discarded (a resume draws the step again)."""
        self.discard(it, step, cut.vote)
        used = 0 if self.sample_cap is None else self.sample_cap.used()
        reason = (
            f"sample budget reached ({used} of {self.budget.max_samples}; "
            f"step {step} needs {cut.least} more)"
        )
        self.request_stop(reason)
        self.end_item(it, "stopped", reason)

    def end_item(self, it: Item, status: Status, reason: str = "") -> None:
        end = ItemEnd(it.index, status, it.step, it.state, reason, it.item_id)
        # the source first: a graph turns an ended node into its output and ready nodes
        # (or fails a node whose expansion is bad)
        end = self._last_end = self._source.ended(it, end)
        if self.rule is not None:
            self.rule.item_ended(it.index)
            self._learnt_more()
        self.ended[end.status] += 1
        if end.status != "completed" and len(self._not_completed) < KEEP_ENDS:
            self._not_completed.append(end)
        for fn in self.events.item_end:
            fn(end)

    def undecided_end(self, d: Decision) -> tuple[Status, str]:
        """How an item ends at a step that moved no state: failed, naming the flag, where
        every sample was red-flagged (its first 2k gave up; a resume draws it again), else
        stopped at the cap."""
        if all_flagged(d):
            return "failed", flagged_reason(d)
        return "stopped", self.undecided_reason(d)

    def undecided_reason(self, d: Decision) -> str:
        why = (
            f"no answer led by k={self.voting.k}"
            if self.rule is None
            else "no answer reached the adaptive rule's certainty"
        )
        return (
            f"step {d.step} undecided after {d.samples} samples ({why}); raise the cap with "
            "--max-samples-per-step, or pass --on-undecided plurality"
        )
