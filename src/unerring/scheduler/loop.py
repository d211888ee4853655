"""The scheduler: many steps in flight over a run's items, one vote path, events out.

A run is a set of items; an item is a chain (a Process: state -> step). The scheduler
keeps up to `window` items deciding at once on one backend (whose wrappers hold the one
limiter: requests in flight, rates), under one budget, and emits events (decisions,
transport failures, discarded speculation, items ending). It knows the journal, the
progress display and failure recording by none of their names.

How a step's samples are drawn depends on the backend: one request per round where it
answers a round at once (the simulator without latency: no task, no wait), else one
request per sample, each fed to the step's vote as it arrives. The vote itself is
`vote.StepVote`, a pure function of a step's samples by index, so the decisions do not
depend on arrival order, concurrency or speculation. A single chain is the case of one
item: there is no second engine.

Speculation (`speculate` = D > 0, chains on backends that take time): when step t's
first valid sample arrives, step t+1 opens on the state that answer implies, up to D
steps ahead. If t's winner is that answer, t+1's samples stand (they are the very samples
a non-speculative run draws: randomness comes from seed, item, step and index);
otherwise t+1 and whatever was opened on it are cancelled and reported as `Discarded`:
paid for, never counted as votes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from functools import partial
from time import perf_counter
from typing import Any

from unerring.backends.base import Backend, FatalBackendError, StepOracle, TransportError
from unerring.core.events import Decision, Discarded, Events, ItemEnd, SampleOutcome
from unerring.core.flags import Flag
from unerring.core.samples import Sample, SampleRequest
from unerring.core.totals import Totals
from unerring.planning.pricing import Prices
from unerring.process import with_notes
from unerring.scheduler.sources import Item, Items, RunEnd, Source, Status, run_end
from unerring.voting.adaptive import AdaptiveRule
from unerring.voting.ahead_by_k import Tally
from unerring.voting.config import Budget, VotingConfig, variant_of
from unerring.voting.step import Judged, StepTally, StepVote, judge

# steps an item decides before it lets other items run, on a backend that never waits
BURST = 256
# item ends kept with their reasons for the run's summary (the journal keeps them all)
KEEP_ENDS = 20
_ONE_PROMPT: dict[int, str] = {}  # a run without prompt variants (never written to)


class _BudgetCut(Exception):
    """The sample cap leaves no room for a round that could decide the step."""

    def __init__(self, vote: StepVote, least: int) -> None:
        super().__init__("sample budget reached")
        self.vote = vote
        self.least = least  # the fewest samples that could have decided it


class _Open:
    """A step opened in an item's speculative pipeline."""

    __slots__ = ("basis", "first", "state", "step", "task", "vote")

    def __init__(self, step: int, state: Any, basis: tuple[Hashable, Any] | None) -> None:
        self.step = step
        self.state = state
        self.basis = basis  # the predecessor's answer this step was opened on; None: decided
        self.first: tuple[Hashable, Any] | None = None  # this step's first valid answer
        self.vote: StepVote | None = None
        self.task: asyncio.Task[Decision] | None = None


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
        burst: int = BURST,
        rule: AdaptiveRule | None = None,
    ) -> None:
        if speculate < 0:
            raise ValueError(f"speculate must not be negative, got {speculate}")
        if window < 1:
            raise ValueError(f"the item window must be at least 1, got {window}")
        self.backend = backend
        self.voting = voting
        self.events = events or Events()
        self.oracle = oracle  # what the model may know of a step (the simulated one's)
        self.prices = prices or Prices()
        self.budget = budget or Budget()
        self._budgeted = self.budget.active  # (a frozen Budget: asked once, not per item)
        # the sample cap is held at every round, not only between steps: samples asked for
        # by steps still voting (any item's) are counted before more go out
        self._sample_cap = self.budget.max_samples
        self._asked = 0  # samples asked for by steps not yet counted in the totals
        self.totals = totals or Totals()
        self.speculate = speculate
        self.window = window
        self.burst = burst  # steps an item decides at once on a backend that never waits
        # the adaptive stopping rule (None: ahead-by-k); it learns from every decided step
        if rule is None and voting.adaptive is not None:
            rule = AdaptiveRule(voting.adaptive)
        self.rule = rule
        self._learnt: asyncio.Event | None = None  # set when the rule has learnt more
        # the prompt variants a step's samples are spread over (None: the one prompt)
        self._variants = voting.variants if voting.varied else None
        self.whole = backend.batch_rounds
        self.stop_reason: str | None = None  # set from a signal handler or another thread
        self.failure: str | None = None
        self.in_flight = 0  # sample requests out (one-per-sample backends)
        # samples (and their tokens) the backend has returned, voted on or not: a remote
        # worker reports what it drew and has not yet handed over
        self.drawn = 0
        self.drawn_tokens = 0
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
        v = voting
        self._per_step = (
            v.k,
            v.cap,
            v.max_tokens,
            v.first_temperature,
            v.temperature,
            v.parallel,
        )

    def not_completed(self) -> tuple[ItemEnd, ...]:
        """The first items that stopped or failed in this attempt (read by the display)."""
        return tuple(self._not_completed)

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
            raise _first_error(eg) from None
        finally:
            if self._cancel_timer is not None:
                self._cancel_timer.cancel()
            totals.wall_s = wall0 + (perf_counter() - t0)
        return self._end()

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
            await self._drive(it)
            wake.set()

    def _end(self) -> RunEnd:
        return run_end(
            self.ended, tuple(self._not_completed), self._last_end, self.failure, self.stop_reason
        )

    async def _drive(self, it: Item) -> None:
        self.items_active += 1
        try:
            rule = self.rule
            if rule is not None:
                # the items this one learns from must have ended (they started before it)
                while not rule.ready(it.index):
                    reason = self._halt()
                    if reason is not None:
                        self._end_item(it, "stopped", reason)
                        return
                    await self._await_learning()
            if self.speculate and not self.whole:
                await self._chain_speculative(it)
            else:
                await self._chain(it)
        except FatalBackendError as e:
            reason = f"{e.kind}: {e}"
            if self.failure is None:
                self.failure = reason
            self.request_stop(reason)
            self._end_item(it, "stopped", reason)
        except TransportError as e:
            reason = f"model unreachable ({e.kind}): {e}"
            if not e.item_only:  # an outage: every item would fail the same way
                self.request_stop(reason)
            # else one request failed on every attempt while others did not: this item
            # stops, resumable, and the others go on
            self._end_item(it, "stopped", reason)
        except asyncio.CancelledError:
            if not self._stopped_here():
                raise
            # a stop cancelled the step in hand: nothing of it counts, the item stops after
            # its last decision (and the step is drawn again on resume)
            self._end_item(it, "stopped", self.stop_reason or "stopped")
        except Exception as e:  # the process's own code raised: this item fails, not the run
            self._end_item(it, "failed", f"step {it.step}: {type(e).__name__}: {e}")
        finally:
            self.items_active -= 1

    def _end_item(self, it: Item, status: Status, reason: str = "") -> None:
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

    def _halt(self) -> str | None:
        """Why no new step may open (a stop request or a reached budget), or None."""
        if self.stop_reason is None and self.budget.active:
            reason = self.budget.reached(self.totals)
            if reason is not None:
                self.request_stop(reason)
        return self.stop_reason

    def _grant(self, n: int, least: int) -> int:
        """How many of a round's n samples the sample cap lets out: all, or what is left
        when that could still decide the step (at least `least`), else none."""
        cap = self._sample_cap
        assert cap is not None
        t = self.totals
        left = cap - t.samples - t.speculative_samples - self._asked
        if left < n:
            n = left if left >= least else 0
        self._asked += n
        return n

    def _cut(self, it: Item, vote: StepVote, step: int, least: int) -> None:
        """The sample cap leaves a step short of a decision: the item stops before it, and
        what the step drew is discarded (paid for, journaled, never a vote; a resume draws
        the step again)."""
        self._asked -= len(vote.drawn)
        got = len(vote.drawn) - vote.outstanding
        if got:
            ptoks, ctoks = vote.prompt_tokens, vote.completion_tokens
            cost = ptoks * self.prices.prompt + ctoks * self.prices.completion
            x = Discarded(it.index, step, got, ptoks, ctoks, cost)
            self.totals.add_discarded(x)
            for fn in self.events.discarded:
                fn(x)
        t = self.totals
        used = t.samples + t.speculative_samples + self._asked
        reason = (
            f"sample budget reached ({used} of {self._sample_cap}; step {step} needs {least} more)"
        )
        self.request_stop(reason)
        self._end_item(it, "stopped", reason)

    def _emit(self, d: Decision) -> None:
        if self._sample_cap is not None:
            self._asked -= d.samples
        self.totals.add(d)
        for fn in self.events.decision:
            fn(d)
        if self.rule is not None and d.state_after is not None:
            self.rule.observe(d.step, d.votes.values(), d.item)
            self._learnt_more()

    def _undecided_reason(self, d: Decision) -> str:
        why = (
            f"no answer led by k={self.voting.k}"
            if self.rule is None
            else "no answer reached the adaptive rule's certainty"
        )
        return (
            f"step {d.step} undecided after {d.samples} samples ({why}); raise the cap with "
            "--max-samples-per-step, or pass --on-undecided plurality"
        )

    # -- chains ----------------------------------------------------------------------------
    async def _chain(self, it: Item) -> None:
        process = it.process
        state, step = it.state, it.step
        budgeted = self._budgeted
        totals = self.totals
        rule = self.rule
        burst = 0
        while not process.done(state, step):
            if budgeted or self.stop_reason is not None:
                reason = self._halt()
                if reason is not None:
                    self._end_item(it, "stopped", reason)
                    return
            try:
                d = await self._decide(it, state, step)
            except _BudgetCut as cut:
                self._cut(it, cut.vote, step, cut.least)
                return
            if budgeted:
                self._asked -= d.samples
            totals.add(d)  # as _emit does, inline: this loop runs for every step
            for fn in self.events.decision:
                fn(d)
            if rule is not None and d.state_after is not None:
                rule.observe(step, d.votes.values(), it.index)
                self._learnt_more()
            if d.state_after is None:  # undecided, and not taken by plurality
                self._end_item(it, "stopped", self._undecided_reason(d))
                return
            state = it.state = d.state_after
            step = it.step = step + 1
            burst += 1
            if burst == self.burst:  # a backend that never waits would never let others run
                burst = 0
                await asyncio.sleep(0)
        self._end_item(it, "completed")

    async def _chain_speculative(self, it: Item) -> None:
        process = it.process
        depth = self.speculate
        pipe: deque[_Open] = deque()

        def open_step(state: Any, step: int, basis: tuple[Hashable, Any] | None) -> None:
            if process.done(state, step) or self._halt() is not None:
                return
            o = _Open(step, state, basis)
            o.task = asyncio.create_task(self._decide(it, state, step, o, on_first))
            pipe.append(o)

        def extend() -> None:
            # open the step after the pipeline's last, on that step's first valid answer
            while pipe and len(pipe) <= depth and pipe[-1].first is not None:
                last = pipe[-1]
                first = last.first
                assert first is not None
                try:
                    state = process.advance(last.state, first[1])
                except Exception:
                    return  # an answer the process cannot advance on: wait for the vote
                before = len(pipe)
                open_step(state, last.step + 1, first)
                if len(pipe) == before:
                    return

        def on_first(o: _Open, judged: tuple[Hashable, Any]) -> None:
            if o.first is not None:
                return  # only the first valid answer to arrive opens the next step
            o.first = judged
            if pipe and pipe[-1] is o:
                extend()

        async def discard_all() -> None:
            thrown = list(pipe)
            pipe.clear()
            tasks = [o.task for o in thrown if o.task is not None]
            for t in tasks:
                t.cancel()
            # counted once the tasks have ended: a sample already on its way back when the
            # cancel was asked is still offered to its vote, and paid for
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for o in reversed(thrown):
                v = o.vote
                if v is not None and self._sample_cap is not None:
                    self._asked -= len(v.drawn)
                got = 0 if v is None else len(v.drawn) - v.outstanding
                if v is not None and got:
                    x = Discarded(
                        item=it.index,
                        step=o.step,
                        samples=got,
                        prompt_tokens=v.prompt_tokens,
                        completion_tokens=v.completion_tokens,
                        cost=v.prompt_tokens * self.prices.prompt
                        + v.completion_tokens * self.prices.completion,
                    )
                    self.totals.add_discarded(x)
                    for fn in self.events.discarded:
                        fn(x)

        open_step(it.state, it.step, None)
        try:
            while pipe:
                head = pipe[0]
                assert head.task is not None
                try:
                    d = await head.task
                except _BudgetCut as cut:
                    pipe.popleft()
                    await discard_all()
                    self._cut(it, cut.vote, head.step, cut.least)
                    return
                pipe.popleft()
                self._emit(d)
                if d.state_after is None:
                    await discard_all()
                    self._end_item(it, "stopped", self._undecided_reason(d))
                    return
                it.state, it.step = d.state_after, d.step + 1
                if pipe:
                    basis = pipe[0].basis
                    assert basis is not None
                    if not (basis[0] == d.key and basis[1] == d.answer):
                        await discard_all()  # opened on an answer that lost: nothing of it stands
                if pipe:
                    pipe[0].basis = None
                    extend()
                else:
                    if process.done(it.state, it.step):
                        break
                    open_step(it.state, it.step, None)
                    if not pipe:  # halted before the step could open
                        reason = self.stop_reason or "stopped"
                        self._end_item(it, "stopped", reason)
                        return
            self._end_item(it, "completed")
        finally:
            for o in pipe:
                if o.task is not None:
                    o.task.cancel()
            # collect what the cancelled tasks raised, so nothing is left unretrieved
            left = [o.task for o in pipe if o.task is not None]
            if left:
                await asyncio.gather(*left, return_exceptions=True)

    # -- one step --------------------------------------------------------------------------
    async def _decide(
        self,
        it: Item,
        state: Any,
        step: int,
        opened: _Open | None = None,
        on_first: Callable[[_Open, tuple[Hashable, Any]], None] | None = None,
    ) -> Decision:
        """Vote on one step and return its decision (emitted by the caller, in order)."""
        t_start = perf_counter()
        process = it.process
        k, cap, limit, t_first, t_rest, parallel = self._per_step
        prompt = process.prompt(state, step)
        notes: tuple[str, ...] = ()
        if it.notes is not None:
            notes = it.notes(state, step)
            if notes:
                prompt = with_notes(notes, prompt)
        make_oracle = self.oracle
        oracle = None if make_oracle is None else make_oracle(process, state, step, notes)
        system = process.system()
        tally: StepTally
        if self.rule is None:
            tally = Tally(k)
            n = k if k <= cap else cap  # the first round
        else:
            tally = await self._tally(it, step)
            n = min(tally.needed(), cap)
        vote = StepVote(tally, cap, limit, partial(judge, process, state))
        backend = self.backend
        item = it.index
        variants = self._variants
        prompts = _ONE_PROMPT
        if variants is not None:  # each sample asked with its variant's form of the prompt
            prompts = {}
            for v in variants:
                p = process.variant_prompt(state, step, v)
                prompts[v] = with_notes(notes, p) if notes else p
        capped = self._sample_cap is not None
        if self.whole:
            first = 0
            while n:  # a whole round per request, counted as it comes back
                if capped:
                    least = min(tally.needed(), n)
                    n = self._grant(n, least)
                    if not n:
                        raise _BudgetCut(vote, least)
                if variants is None:
                    got = await backend.sample(
                        SampleRequest(
                            prompt, step, first, n, limit, t_first, t_rest, system, oracle, item
                        )
                    )
                else:  # a round of several variants: one request per sample
                    got = []
                    for i in range(first, first + n):
                        v = variant_of(step, i, variants)
                        one = SampleRequest(
                            prompts[v], step, i, 1, limit, t_first, t_rest, system, oracle, item, v
                        )
                        got += await backend.sample(one)
                tokens = vote.prompt_tokens + vote.completion_tokens
                vote.offer(first, got)
                self.drawn += len(got)
                self.drawn_tokens += vote.prompt_tokens + vote.completion_tokens - tokens
                if vote.decided_at >= 0:  # the usual step: decided by its first round
                    break
                n = vote.next_round(parallel)
                first = len(vote.drawn)
        else:
            if opened is not None:
                opened.vote = vote

            def request(i: int) -> SampleRequest:
                if variants is None:
                    return SampleRequest(
                        prompt, step, i, 1, limit, t_first, t_rest, system, oracle, item
                    )
                v = variant_of(step, i, variants)
                return SampleRequest(
                    prompts[v], step, i, 1, limit, t_first, t_rest, system, oracle, item, v
                )

            first_seen: Callable[[tuple[Hashable, Any]], None] | None = None
            if opened is not None and on_first is not None:
                first_seen = partial(on_first, opened)
            while True:
                n = vote.next_round(parallel)
                if not n:
                    break
                if capped:
                    least = min(tally.needed(), n)
                    n = self._grant(n, least)
                    if not n:
                        raise _BudgetCut(vote, least)
                first = vote.expect(n)
                try:
                    async with asyncio.TaskGroup() as tg:
                        for i in range(first, first + n):
                            tg.create_task(self._one(vote, request(i), first_seen))
                except BaseExceptionGroup as eg:
                    raise _first_error(eg) from None
        return self._decision(it, vote, state, step, t_start)

    async def _one(
        self,
        vote: StepVote,
        request: SampleRequest,
        first_seen: Callable[[tuple[Hashable, Any]], None] | None,
    ) -> None:
        self.in_flight += 1
        try:
            got = await self.backend.sample(request)
        finally:
            self.in_flight -= 1
        tokens = vote.prompt_tokens + vote.completion_tokens
        vote.offer(request.first_index, got)
        self.drawn += len(got)
        self.drawn_tokens += vote.prompt_tokens + vote.completion_tokens - tokens
        if first_seen is not None and got:
            judged = vote.judged(got[0])
            if judged.__class__ is not Flag:
                first_seen(judged)  # type: ignore[arg-type]

    def _decision(
        self, it: Item, vote: StepVote, state: Any, step: int, t_start: float
    ) -> Decision:
        process = it.process
        key, answer, winner_text = vote.winner()
        undecided = not vote.decided
        correct: bool | None = None
        state_after = None
        if winner_text is not None:
            try:
                correct = process.check(state, step, answer)
            except Exception:
                correct = False
            if not undecided or self.voting.on_undecided == "plurality":
                state_after = process.advance(state, answer)
        drawn: list[Sample] = vote.drawn  # type: ignore[assignment]  # complete: no None
        n = len(drawn)
        decided_at = vote.decided_at
        flags = vote.flags or None
        counts = vote.tally.counts
        outcomes: Sequence[SampleOutcome] = ()
        level = self.voting.record
        if level == "samples" or (
            level == "contested" and (flags or len(counts) > 1 or undecided or correct is False)
        ):
            outcomes = _outcomes(vote, drawn, undecided, step, self._variants)
        ptoks, ctoks = vote.prompt_tokens, vote.completion_tokens
        return Decision(
            item=it.index,
            step=step,
            answer=answer,
            key=key,
            votes=counts,
            samples=n,
            surplus=0 if undecided else n - 1 - decided_at,
            flags=flags,
            prompt_tokens=ptoks,
            completion_tokens=ctoks,
            cost=ptoks * self.prices.prompt + ctoks * self.prices.completion,
            elapsed_s=perf_counter() - t_start,
            undecided=undecided,
            correct=correct,
            state_before=state,
            state_after=state_after,
            outcomes=outcomes,
            winner_text=winner_text,
        )


def _outcomes(
    vote: StepVote,
    drawn: list[Sample],
    undecided: bool,
    step: int,
    variants: tuple[int, ...] | None,
) -> list[SampleOutcome]:
    """Every sample of a step with the key it voted for or the flag that discarded it (and
    the prompt variant it was asked with, when the run spreads samples over several)."""
    out = []
    decided_at = vote.decided_at
    for position, s in enumerate(drawn):
        judged: Judged = vote.judged(s)
        counted = undecided or position <= decided_at
        v = None if variants is None else variant_of(step, position, variants)
        if judged.__class__ is Flag:
            out.append(SampleOutcome(position, s, None, judged, counted, v))
        else:
            out.append(SampleOutcome(position, s, judged[0], None, counted, v))
    return out


def _first_error(eg: BaseExceptionGroup[Any]) -> BaseException:
    """The error to raise from a round whose requests failed: a fatal one first."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [eg]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(reversed(e.exceptions))
        else:
            flat.append(e)
    for kind in (FatalBackendError, TransportError, Exception):
        for e in flat:
            if isinstance(e, kind):
                return e
    return flat[0]
