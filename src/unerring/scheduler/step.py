"""One step of an item: its prompts, its requests, its vote and its Decision.

How a step's samples are drawn depends on the backend: one request per round where it
answers a round at once (the simulator without latency: no task, no wait), else one
request per sample, each fed to the step's vote as it arrives. The vote itself is
`voting.step.StepVote`, a pure function of a step's samples by index, so the decisions do
not depend on arrival order, concurrency or speculation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import replace
from functools import partial
from time import perf_counter
from typing import Any, Protocol

from unerring.backends.base import Backend, FatalBackendError, StepOracle, TransportError
from unerring.core.events import Decision, SampleOutcome
from unerring.core.flags import Flag, parse_error_record
from unerring.core.samples import Sample, SampleRequest
from unerring.core.totals import Totals
from unerring.planning.pricing import Prices
from unerring.process import with_notes
from unerring.scheduler.sources import Item
from unerring.voting.ahead_by_k import Tally
from unerring.voting.config import VotingConfig, variant_of
from unerring.voting.step import Judged, StepTally, StepVote, judge_raised
from unerring.voting.weighted import StepRoute, WeightedTally, WeightedVote

# a step's tally under the adaptive rule, once the steps it learns from are in
TallyOf = Callable[[Item, int], Awaitable[StepTally]]


class BudgetCut(Exception):
    """The sample cap leaves no room for a round that could decide the step."""

    def __init__(self, vote: StepVote, least: int) -> None:
        super().__init__("sample budget reached")
        self.vote = vote
        self.least = least  # the fewest samples that could have decided it


class SampleCap:
    """The run's cap on samples, held at every round, not only between steps: samples
    asked for by steps still voting (any item's) count before more go out."""

    __slots__ = ("asked", "cap", "totals")

    def __init__(self, cap: int, totals: Totals) -> None:
        self.cap = cap
        self.totals = totals
        self.asked = 0  # samples asked for by steps not yet counted in the totals

    def used(self) -> int:
        """Samples counted (voted or discarded) and asked for."""
        t = self.totals
        return t.samples + t.speculative_samples + self.asked

    def grant(self, n: int, least: int) -> int:
        """How many of a round's n samples may go out: all, or what is left when that
        could still decide the step (at least `least`), else none."""
        left = self.cap - self.used()
        if left < n:
            n = left if left >= least else 0
        self.asked += n
        return n


class Opened(Protocol):
    """A step opened ahead of its predecessor's decision (a chain's speculation): it holds
    the step's vote (what a discarded step drew is counted from it) and hears the step's
    first valid answer, on which the step after it may open."""

    vote: StepVote | None

    def first_answer(self, judged: tuple[Hashable, Any]) -> None: ...


class Steps:
    """Decides the steps of a run's items on one backend: what every step shares (voting,
    prices, the oracle, the sample cap) and what the backend has drawn so far."""

    def __init__(
        self,
        backend: Backend,
        voting: VotingConfig,
        prices: Prices,
        *,
        oracle: StepOracle | None = None,
        sample_cap: SampleCap | None = None,
        tally_of: TallyOf | None = None,
    ) -> None:
        self.backend = backend
        self.voting = voting
        self.prices = prices
        self.oracle = oracle  # what the model may know of a step (the simulated one's)
        self.sample_cap = sample_cap  # the run's, over all its steps (None: no cap)
        self.tally_of = tally_of  # None: first-to-ahead-by-k
        self.whole = backend.batch_rounds
        # the prompt variants a step's samples are spread over (None: the one prompt)
        self.variants = voting.variants if voting.varied else None
        # a vote that weighs and routes each sample by its source, or None
        self.weighing = voting.weighing
        if self.weighing is not None:
            self.variants = self.weighing.variants
        self.step_cap = voting.cap  # samples a step may draw (a property: read once)
        # a step whose first 2k samples are all red-flagged draws no more: its item ends
        self.give_up = 2 * voting.k
        self.in_flight = 0  # sample requests out (one-per-sample backends)
        # samples (and their tokens) the backend has returned, voted on or not: a remote
        # worker reports what it drew and has not yet handed over
        self.drawn = 0
        self.drawn_tokens = 0

    async def decide(
        self, it: Item, state: Any, step: int, opened: Opened | None = None
    ) -> Decision:
        """Vote on one step and return its decision (emitted by the caller, in order);
        BudgetCut when the sample cap leaves no room for a round that could decide it."""
        t_start = perf_counter()
        process = it.process
        whole = self.whole
        prompt = process.prompt(state, step)
        notes: tuple[str, ...] = ()
        if it.notes is not None:
            notes = it.notes(state, step)
            if notes:
                prompt = with_notes(notes, prompt)
        prompts = None
        if self.variants is not None:  # each sample asked with its variant's form
            prompts = {}
            for v in self.variants:
                p = process.variant_prompt(state, step, v)
                prompts[v] = with_notes(notes, p) if notes else p
        voting = self.voting
        cap = self.step_cap
        judge_text = partial(judge_raised, process, state)
        route: StepRoute | None = None
        vote: StepVote
        if self.weighing is not None:
            # the step's cell ranks its sources by trust: each sample from the next in rank,
            # counted with its weight
            route = self.weighing.route(process.features(state, step))
            vote = WeightedVote(
                route, WeightedTally(self.weighing.margin), cap, voting.max_tokens, judge_text
            )
            n = vote.next_round(voting.parallel)
        else:
            tally: StepTally
            if self.tally_of is None:
                k = voting.k
                tally = Tally(k)
                n = k if k <= cap else cap  # the first round (`StepVote.next_round`'s)
            else:
                tally = await self.tally_of(it, step)
                n = min(tally.needed(), cap)
            vote = StepVote(tally, cap, voting.max_tokens, judge_text, self.give_up)
        if whole and self.sample_cap is not None:
            n = self._granted(vote, n)
        make_oracle = self.oracle
        # The step's first request, by keyword (its first round where rounds go out whole,
        # else its first sample): every other request of the step is this one with its
        # sample indices, and in a varied run its prompt variant, replaced.
        ask = SampleRequest(
            prompt=prompt,
            step=step,
            first_index=0,
            n=n if whole else 1,
            max_tokens=voting.max_tokens,
            first_temperature=voting.first_temperature,
            temperature=voting.temperature,
            system=process.system(),
            oracle=None if make_oracle is None else make_oracle(process, state, step, notes),
            item=it.index,
        )
        if whole and prompts is None:
            # the first round inline (a whole round: one request): the usual step ends here
            got = await self.backend.sample(ask)
            vote.offer(0, got)
            self.drawn += len(got)
            self.drawn_tokens += vote.prompt_tokens + vote.completion_tokens
            if vote.decided_at < 0:
                n = vote.next_round(voting.parallel)
                if n:
                    await self._rounds(ask, None, vote, len(vote.drawn), self._granted(vote, n))
        elif whole:
            await self._rounds(ask, prompts, vote, 0, ask.n, route)
        else:
            if opened is not None:
                opened.vote = vote
            await self._one_by_one(ask, prompts, vote, opened, route)
        return self._decision(it, state, step, vote, t_start)

    def _request(
        self,
        ask: SampleRequest,
        prompts: dict[int, str] | None,
        first: int,
        n: int,
        route: StepRoute | None = None,
    ) -> SampleRequest:
        """The step's request of samples first .. first + n - 1 (in a varied run, of one
        sample, with its variant's prompt; in a weighted one, from its route's source),
        made from its first request `ask`."""
        variants = self.variants
        if variants is None or prompts is None:
            if first == ask.first_index and n == ask.n:
                return ask
            return replace(ask, first_index=first, n=n)
        if route is not None:
            v = route.variant(first)
            return replace(
                ask,
                first_index=first,
                n=n,
                prompt=prompts[v],
                variant=v,
                member=route.member(first),
            )
        v = variant_of(ask.step, first, variants)
        return replace(ask, first_index=first, n=n, prompt=prompts[v], variant=v)

    def _granted(self, vote: StepVote, n: int) -> int:
        """The samples of a round the sample cap lets out (BudgetCut when none may)."""
        cap = self.sample_cap
        if cap is None:
            return n
        least = min(vote.tally.needed(), n)
        n = cap.grant(n, least)
        if not n:
            raise BudgetCut(vote, least)
        return n

    async def _rounds(
        self,
        ask: SampleRequest,
        prompts: dict[int, str] | None,
        vote: StepVote,
        first: int,
        n: int,
        route: StepRoute | None = None,
    ) -> None:
        """Whole rounds from samples first .. first + n - 1 on (`ask` is the step's first
        request), each counted as it comes back."""
        backend = self.backend
        while True:
            if prompts is None:
                got = await backend.sample(self._request(ask, None, first, n))
            else:  # a round of several variants: one request per sample
                got = []
                for i in range(first, first + n):
                    got += await backend.sample(self._request(ask, prompts, i, 1, route))
            tokens = vote.prompt_tokens + vote.completion_tokens
            vote.offer(first, got)
            self.drawn += len(got)
            self.drawn_tokens += vote.prompt_tokens + vote.completion_tokens - tokens
            if vote.decided_at >= 0:
                return
            n = vote.next_round(self.voting.parallel)
            if not n:
                return
            n = self._granted(vote, n)
            first = len(vote.drawn)

    async def _one_by_one(
        self,
        ask: SampleRequest,
        prompts: dict[int, str] | None,
        vote: StepVote,
        opened: Opened | None,
        route: StepRoute | None,
    ) -> None:
        """One request per sample, a round's requests at once, each counted as it comes."""
        parallel = self.voting.parallel
        while True:
            n = vote.next_round(parallel)
            if not n:
                return
            n = self._granted(vote, n)
            first = vote.expect(n)
            try:
                async with asyncio.TaskGroup() as tg:
                    for i in range(first, first + n):
                        request = self._request(ask, prompts, i, 1, route)
                        tg.create_task(self._one(vote, request, opened))
            except BaseExceptionGroup as eg:
                raise first_error(eg) from None

    async def _one(self, vote: StepVote, request: SampleRequest, opened: Opened | None) -> None:
        self.in_flight += 1
        try:
            got = await self.backend.sample(request)
        finally:
            self.in_flight -= 1
        tokens = vote.prompt_tokens + vote.completion_tokens
        vote.offer(request.first_index, got)
        self.drawn += len(got)
        self.drawn_tokens += vote.prompt_tokens + vote.completion_tokens - tokens
        if opened is not None and got:
            judged = vote.judged(got[0])
            if judged.__class__ is not Flag:
                opened.first_answer(judged)  # type: ignore[arg-type]

    def _decision(
        self, it: Item, state: Any, step: int, vote: StepVote, t_start: float
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
        flags = vote.flags or None
        counts = vote.tally.counts
        outcomes: Sequence[SampleOutcome] = ()
        level = self.voting.record
        if level == "samples" or (
            level == "contested" and (flags or len(counts) > 1 or undecided or correct is False)
        ):
            route = vote.route if isinstance(vote, WeightedVote) else None
            outcomes = _outcomes(vote, drawn, undecided, step, self.variants, route)
        ptoks, ctoks = vote.prompt_tokens, vote.completion_tokens
        d = Decision(
            item=it.index,
            step=step,
            answer=answer,
            key=key,
            votes=counts,
            samples=n,
            surplus=0 if undecided else n - 1 - vote.decided_at,
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
        if vote.raised is not None:  # parse raised on one of the step's samples
            d.parse_error = parse_error_record(step, vote.raised)
        return d


def _outcomes(
    vote: StepVote,
    drawn: list[Sample],
    undecided: bool,
    step: int,
    variants: tuple[int, ...] | None,
    route: StepRoute | None = None,
) -> list[SampleOutcome]:
    """Every sample of a step with the key it voted for or the flag that discarded it (and
    the prompt variant it was asked with, when the run spreads samples over several or a
    weighted vote routes them)."""
    out = []
    decided_at = vote.decided_at
    for position, s in enumerate(drawn):
        judged: Judged = vote.judged(s)
        counted = undecided or position <= decided_at
        if route is not None:
            v: int | None = route.variant(position)
        else:
            v = None if variants is None else variant_of(step, position, variants)
        if judged.__class__ is Flag:
            out.append(SampleOutcome(position, s, None, judged, counted, v))
        else:
            out.append(SampleOutcome(position, s, judged[0], None, counted, v))
    return out


def first_error(eg: BaseExceptionGroup[Any]) -> BaseException:
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
