"""The engine: decides steps one after another by voting, and emits events.

It knows the process, the backend and a tuple of subscribers; nothing else. Journal,
progress and failure recording subscribe to its events.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Literal

from unerring.backends.base import (
    Backend,
    FatalBackendError,
    Sample,
    SampleRequest,
    TransportError,
)
from unerring.events import Decision, Events, SampleOutcome, Stats
from unerring.process import Process
from unerring.redflags import Flag, estimate_tokens
from unerring.voting import Tally

RecordLevel = Literal["decisions", "contested", "samples"]
UndecidedPolicy = Literal["stop", "plurality"]
Status = Literal["completed", "stopped", "failed"]


@dataclass(frozen=True, slots=True)
class VotingConfig:
    """How each step is voted on."""

    k: int
    first_temperature: float = 0.0
    temperature: float = 0.1
    max_tokens: int = 750  # a longer response is red-flagged
    max_samples_per_step: int | None = None  # default 50 * k
    on_undecided: UndecidedPolicy = "stop"
    parallel: int = 1  # samples drawn per round after the first (at least the fewest needed)
    record: RecordLevel = "contested"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.max_tokens < 1:
            raise ValueError(f"the token limit must be at least 1, got {self.max_tokens}")
        if self.parallel < 1:
            raise ValueError(f"parallel must be at least 1, got {self.parallel}")
        if self.max_samples_per_step is not None and self.max_samples_per_step < self.k:
            raise ValueError(
                f"max samples per step ({self.max_samples_per_step}) must be at least k"
            )

    @property
    def cap(self) -> int:
        return self.max_samples_per_step or 50 * self.k


@dataclass(frozen=True, slots=True)
class Budget:
    """Caps for the whole run (across resumes). None means no cap."""

    max_samples: int | None = None
    max_cost: float | None = None
    max_tokens_total: int | None = None

    def reached(self, stats: Stats) -> str | None:
        """Which cap has been reached, or None."""
        if self.max_samples is not None and stats.samples >= self.max_samples:
            return f"sample budget reached ({stats.samples} of {self.max_samples})"
        if self.max_cost is not None and stats.cost >= self.max_cost:
            return f"cost budget reached (${stats.cost:.4f} of ${self.max_cost:.4f})"
        tokens = stats.prompt_tokens + stats.completion_tokens
        if self.max_tokens_total is not None and tokens >= self.max_tokens_total:
            return f"token budget reached ({tokens} of {self.max_tokens_total})"
        return None

    @property
    def active(self) -> bool:
        return not (
            self.max_samples is None and self.max_cost is None and self.max_tokens_total is None
        )


@dataclass(frozen=True, slots=True)
class Prices:
    """Dollars per token (not per million), input and output."""

    prompt: float = 0.0
    completion: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an engine run ended, and where (state and step to resume from)."""

    status: Status
    step: int
    state: Any
    reason: str = ""


NoteSelector = Callable[[Any, int], tuple[str, ...]]


def with_notes(notes: tuple[str, ...], prompt: str) -> str:
    """Put the notes that apply to a step in front of its prompt."""
    lines = "\n".join(f"- {n}" for n in notes)
    return (
        "Notes from earlier mistakes on steps like this one (apply a note only if it "
        f"fits this step):\n{lines}\n\n{prompt}"
    )


class ProcessOracle:
    """Lets the simulated model answer a process's step; computes only what is asked."""

    __slots__ = (
        "_correct",
        "_notes",
        "_right",
        "_step",
        "_wrong",
        "_wrong_text",
        "process",
        "state",
    )

    def __init__(
        self, process: Process[Any, Any], state: Any, step: int, notes: tuple[str, ...] = ()
    ) -> None:
        self.process = process
        self.state = state
        self._step = step
        self._notes = notes
        self._correct: str | None = None
        self._right: Any = None  # the correct answer, once solved
        self._wrong: list[Any] | None = None  # the process's wrong answers, unrendered
        self._wrong_text: dict[int, str] = {}

    def notes(self) -> tuple[str, ...]:
        return self._notes

    def correct(self) -> str:
        if self._correct is None:
            p = self.process
            self._right = p.solve(self.state, self._step)
            self._correct = p.render(self._right)
        return self._correct

    def wrong(self, variant: int) -> str:
        p = self.process
        wrong = self._wrong
        if wrong is None:
            if self._right is None:
                self._right = p.solve(self.state, self._step)
            wrong = self._wrong = p.wrong_answers(self.state, self._step, self._right)
            if not wrong:
                raise ValueError(f"process {p.name!r} offers no wrong answer to simulate")
        i = variant % len(wrong)
        text = self._wrong_text.get(i)
        if text is None:  # render only the wrong answers a sample actually gives
            text = self._wrong_text[i] = p.render(wrong[i])
        return text

    def features(self) -> Mapping[str, int | str | bool]:
        return self.process.features(self.state, self._step)


def _completion_tokens(s: Sample) -> int:
    """The backend's count of a response's tokens, or the documented estimate."""
    counted = s.completion_tokens
    return estimate_tokens(s.text) if counted is None else counted


def _judge(process: Process[Any, Any], state: Any, text: str) -> tuple[Hashable, Any] | Flag:
    """Parse and validate one response; nothing the model returns may raise out of here."""
    if not text or text.isspace():
        return Flag.EMPTY
    try:
        answer = process.parse(text)
    except Exception:
        return Flag.PARSE
    if isinstance(answer, Flag):
        return answer
    try:
        if not process.validate(state, answer):
            return Flag.INVALID
        return (process.key(answer), answer)
    except Exception:
        return Flag.INVALID


def _count(
    tally: Tally,
    flags: dict[Flag, int],
    judged: tuple[Hashable, Any] | Flag | None,
    m: int,
    idx: int,
    decided_at: int,
) -> int:
    """Count m identical judgements from sample index idx; return the deciding index."""
    if isinstance(judged, Flag):
        flags[judged] = flags.get(judged, 0) + m
    elif decided_at < 0 and judged is not None:
        used = tally.add_many(judged[0], m)
        if used:
            return idx + used - 1
    return decided_at


class Engine:
    """Drives one process on one backend: one voted decision per step."""

    def __init__(
        self,
        process: Process[Any, Any],
        backend: Backend,
        voting: VotingConfig,
        events: Events | None = None,
        *,
        simulate: bool = False,
        prices: Prices = Prices(),
        budget: Budget = Budget(),
        stats: Stats | None = None,
        notes: NoteSelector | None = None,
    ) -> None:
        self.process = process
        self.backend = backend
        self.voting = voting
        self.events = events or Events()
        self.simulate = simulate  # hand the backend an oracle (the sim model needs one)
        self.prices = prices
        self.budget = budget
        self.stats = stats or Stats()
        self.notes = notes  # picks the mistake notes that apply to a step (or none)
        v = voting
        # read once: the step loop would otherwise look each up a million times
        self._per_step = (
            v.k,
            v.cap,
            v.max_tokens,
            v.first_temperature,
            v.temperature,
            v.parallel,
            process.system(),
        )
        self.stop_requested: str | None = None  # set from a signal handler or another thread

    def request_stop(self, reason: str) -> None:
        self.stop_requested = reason

    async def run(self, state: Any, step: int = 0) -> Outcome:
        """Decide steps from (state, step) until done, stopped or failed."""
        process = self.process
        stats = self.stats
        budget = self.budget if self.budget.active else None
        on_undecided = self.voting.on_undecided
        t0 = perf_counter()
        wall0 = stats.wall_s
        try:
            while not process.done(state, step):
                if self.stop_requested is not None:
                    return Outcome("stopped", step, state, self.stop_requested)
                if budget is not None:
                    reason = budget.reached(stats)
                    if reason is not None:
                        return Outcome("stopped", step, state, reason)
                try:
                    d = await self.decide(state, step)
                except FatalBackendError as e:
                    return Outcome("failed", step, state, f"{e.kind}: {e}")
                except TransportError as e:
                    return Outcome("stopped", step, state, f"model unreachable ({e.kind}): {e}")
                if d.undecided and (on_undecided == "stop" or d.answer is None):
                    return Outcome(
                        "stopped",
                        step,
                        state,
                        f"step {step} undecided after {d.samples} samples "
                        f"(no answer led by k={self.voting.k}); raise the cap with "
                        "--max-samples-per-step, or pass --on-undecided plurality",
                    )
                state = d.state_after
                step += 1
            return Outcome("completed", step, state)
        finally:
            stats.wall_s = wall0 + (perf_counter() - t0)

    async def decide(self, state: Any, step: int) -> Decision:
        """Vote on one step, emit the decision, and return it."""
        t_start = perf_counter()
        process = self.process
        k, cap, limit, t_first, t_rest, parallel, system = self._per_step
        prompt = process.prompt(state, step)
        notes: tuple[str, ...] = ()
        if self.notes is not None:
            notes = self.notes(state, step)
            if notes:
                prompt = with_notes(notes, prompt)
        oracle = ProcessOracle(process, state, step, notes) if self.simulate else None
        samples = await self.backend.sample(
            SampleRequest(prompt, step, 0, k, limit, t_first, t_rest, system, oracle)
        )
        one = samples[0] if samples else None
        if one is not None and len(samples) == k and samples.count(one) == k:
            # the usual step: one response object for the whole first round (the simulator
            # shares equal responses); a valid answer then has its k votes, and wins. The
            # same outcome as the vote below, without its bookkeeping.
            ct = _completion_tokens(one)
            if ct <= limit:
                judged = _judge(process, state, one.text)
                if not isinstance(judged, Flag):
                    key, answer = judged
                    return self._finish(
                        state,
                        step,
                        key,
                        answer,
                        one.text,
                        {key: k},
                        {one.text: judged},
                        samples,
                        None,
                        (one.prompt_tokens or 0) * k,
                        ct * k,
                        k - 1,
                        t_start,
                    )
        tally = Tally(k)
        memo: dict[str, tuple[Hashable, Any] | Flag] = {}
        drawn: list[Any] = []
        flags: dict[Flag, int] = {}
        ptoks = ctoks = 0
        decided_at = -1
        idx = 0  # index of the next sample to count
        while True:
            drawn += samples
            # a run of one shared sample object (the simulator's identical responses) is
            # judged, costed and counted once; equal texts in other objects hit the memo
            last = None
            run_len = 0
            run: tuple[Hashable, Any] | Flag | None = None
            pt = ct = 0
            for s in samples:
                if s is last:
                    run_len += 1
                    continue
                if run_len:
                    ptoks += pt * run_len
                    ctoks += ct * run_len
                    decided_at = _count(tally, flags, run, run_len, idx, decided_at)
                    idx += run_len
                last = s
                run_len = 1
                text = s.text
                pt = s.prompt_tokens or 0
                ct = _completion_tokens(s)
                if ct > limit:
                    run = Flag.OVERLONG
                else:
                    run = memo.get(text)
                    if run is None:
                        run = memo[text] = _judge(process, state, text)
            if run_len:
                ptoks += pt * run_len
                ctoks += ct * run_len
                decided_at = _count(tally, flags, run, run_len, idx, decided_at)
                idx += run_len
            if decided_at >= 0 or idx >= cap:
                break
            n = min(max(parallel, tally.needed()), cap - idx)
            samples = await self.backend.sample(
                SampleRequest(prompt, step, idx, n, limit, t_first, t_rest, system, oracle)
            )
        key = tally.winner if decided_at >= 0 else tally.plurality()
        answer = winner_text = None
        if key is not None:
            for text, r in memo.items():
                if r.__class__ is not Flag and r[0] == key:
                    answer = r[1]
                    winner_text = text
                    break
        return self._finish(
            state,
            step,
            key,
            answer,
            winner_text,
            tally.counts,
            memo,
            drawn,
            flags or None,
            ptoks,
            ctoks,
            decided_at,
            t_start,
        )

    def _finish(
        self,
        state: Any,
        step: int,
        key: Hashable | None,
        answer: Any,
        winner_text: str | None,
        counts: dict[Hashable, int],
        memo: dict[str, tuple[Hashable, Any] | Flag],
        drawn: list[Any],
        flags: dict[Flag, int] | None,
        ptoks: int,
        ctoks: int,
        decided_at: int,
        t_start: float,
    ) -> Decision:
        process = self.process
        stats = self.stats
        undecided = decided_at < 0
        correct: bool | None = None
        state_after = None
        if answer is not None:
            try:
                correct = process.check(state, step, answer)
            except Exception:
                correct = False
            if not undecided or self.voting.on_undecided == "plurality":
                state_after = process.advance(state, answer)
        n = len(drawn)
        surplus = n - 1 - decided_at if not undecided else 0
        # a unanimous, unflagged step keeps no sample, unless the checker rejected it
        outcomes: Sequence[SampleOutcome] = ()
        level = self.voting.record
        if level == "samples" or (
            level == "contested" and (flags or len(counts) > 1 or undecided or correct is False)
        ):
            outcomes = kept = []
            for position, s in enumerate(drawn):
                ct = _completion_tokens(s)
                counted = undecided or position <= decided_at
                seen = None if ct > self.voting.max_tokens else memo.get(s.text)
                if seen is None:
                    kept.append(SampleOutcome(position, s, None, Flag.OVERLONG, counted))
                elif isinstance(seen, Flag):
                    kept.append(SampleOutcome(position, s, None, seen, counted))
                else:
                    kept.append(SampleOutcome(position, s, seen[0], None, counted))
        cost = ptoks * self.prices.prompt + ctoks * self.prices.completion
        d = Decision(
            step,
            answer,
            key,
            counts,
            n,
            surplus,
            flags,
            ptoks,
            ctoks,
            cost,
            perf_counter() - t_start,
            undecided,
            correct,
            state,
            state_after,
            outcomes,
            winner_text,
        )
        stats.samples += n
        if flags:
            for f, c in flags.items():
                stats.red_flags += c
                stats.flags[f.value] = stats.flags.get(f.value, 0) + c
        stats.prompt_tokens += ptoks
        stats.completion_tokens += ctoks
        stats.cost += cost
        if undecided:
            stats.undecided += 1
        if state_after is not None:
            stats.steps_decided += 1
            if correct is not None:
                stats.checked += 1
                if not correct:
                    stats.errors += 1
        for fn in self.events.decision:
            fn(d)
        return d
