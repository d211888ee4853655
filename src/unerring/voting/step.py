"""One step's vote: samples in (by index, in any order of arrival), decision out.

Pure: no I/O, no asyncio. Samples are counted in index order whatever order they arrive
in, so a step's outcome is the sequential vote's however its requests interleave with
other steps'. Red-flagged samples never vote; a run of one shared sample object (the
simulator hands out one object for equal responses) is judged and counted at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from unerring.core.flags import Flag, estimate_tokens
from unerring.core.samples import Sample
from unerring.process import Process

# a judged response: (vote key, parsed answer), or the red flag that discards it
Judged = tuple[Hashable, Any] | Flag
# a step that never gives up on red flags alone (it ends at its cap)
NEVER = sys.maxsize


class Raised:
    """A response whose `parse` raised: red-flagged as `parse_error`; the step's vote keeps
    its first exception (made only when parse raises)."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def judge(process: Process[Any, Any], state: Any, text: str) -> Judged:
    """Parse and validate one response; nothing the model returns may raise out of here
    (an exception out of `parse` is the red flag `parse_error`)."""
    j = judge_raised(process, state, text)
    return Flag.PARSE_ERROR if isinstance(j, Raised) else j


def judge_raised(process: Process[Any, Any], state: Any, text: str) -> Judged | Raised:
    """`judge`, with the exception `parse` raised handed back (what a step's vote judges
    with: it keeps the first)."""
    if not text or text.isspace():
        return Flag.EMPTY
    try:
        answer = process.parse(text)
    except Exception as e:
        return Raised(e)
    if isinstance(answer, Flag):
        return answer
    try:
        if not process.validate(state, answer):
            return Flag.INVALID
        return (process.key(answer), answer)
    except Exception:
        return Flag.INVALID


class StepTally(Protocol):
    """One step's votes under a stopping rule: `ahead_by_k.Tally` (first-to-ahead-by-k)
    or `adaptive.AdaptiveTally`. Frozen once decided."""

    counts: dict[Hashable, int]
    winner: Hashable | None

    def add_many(self, key: Hashable, m: int) -> int:
        """Count up to m votes for one key; return how many it took to decide, else 0."""
        ...

    def needed(self) -> int:
        """Fewest further votes that could decide the step (the first round's size before
        any vote)."""
        ...

    def plurality(self) -> Hashable | None: ...


def completion_tokens(s: Sample) -> int:
    """The backend's count of a response's tokens, or the documented estimate."""
    counted = s.completion_tokens
    return estimate_tokens(s.text) if counted is None else counted


class StepVote:
    """One step's vote over its samples, with red flags, under the stopping rule of the
    tally it is given (`Tally(k)`: first-to-ahead-by-k; or the adaptive rule's).

    The caller reserves indices with `expect(n)` (one round), hands samples back with
    `offer(first_index, samples)` as they arrive, and asks `next_round` what to draw next.
    """

    __slots__ = (
        "_judge",
        "_limit",
        "cap",
        "completion_tokens",
        "counted",
        "decided_at",
        "drawn",
        "firsts",
        "flags",
        "give_up",
        "memo",
        "outstanding",
        "prompt_tokens",
        "raised",
        "tally",
        "won",
    )

    def __init__(
        self,
        tally: StepTally,
        cap: int,
        max_tokens: int,
        judge_text: Callable[[str], Judged | Raised],
        give_up: int = NEVER,
    ) -> None:
        self.tally = tally
        self.cap = cap
        # a step whose first `give_up` samples are all red-flagged draws no more (2k in a
        # run: the scheduler then ends its item, naming the flag)
        self.give_up = give_up
        self.raised: Exception | None = None  # the first exception `parse` raised here
        self._limit = max_tokens
        self._judge = judge_text
        self.memo: dict[str, Judged] = {}  # equal texts are judged once
        self.drawn: list[Sample | None] = []  # by index; None: asked for, not arrived
        self.outstanding = 0  # samples asked for and not arrived
        self.counted = 0  # the prefix of `drawn` already counted
        self.decided_at = -1  # index of the deciding sample
        self.flags: dict[Flag, int] | None = None  # by kind, made at the first flag
        self.firsts: dict[Hashable, int] = {}  # each key's lowest sample index
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.won: tuple[Hashable, Any, str] | None = None  # key, answer, text of the winner

    # -- drawing --------------------------------------------------------------------------
    def expect(self, n: int) -> int:
        """Reserve the next n sample indices; return the first."""
        first = len(self.drawn)
        self.drawn += [None] * n
        self.outstanding += n
        return first

    def next_round(self, parallel: int) -> int:
        """How many samples to draw next: 0 while a round is out or once finished.

        The first round is what the rule needs to decide a unanimous step (k for
        ahead-by-k); later ones as many as could still decide (at least `parallel`), never
        past the cap.
        """
        if self.outstanding or self.finished:
            return 0
        if not self.drawn:
            return min(self.tally.needed(), self.cap)
        n = min(max(parallel, self.tally.needed()), self.cap - len(self.drawn))
        if not self.tally.counts:  # nothing valid yet: no further than where it gives up
            left = self.give_up - len(self.drawn)
            if 0 < left < n:
                n = left
        return n

    def offer(self, first: int, samples: list[Sample]) -> None:
        """Samples first .. first+len-1 arrived; count whatever prefix is now complete."""
        n = len(samples)
        if not n:
            return
        if not first and not self.drawn:  # the first round, whole: the list is ours now
            self.drawn = samples  # type: ignore[assignment]
        elif first == len(self.drawn):  # a whole round at once, nothing reserved
            self.drawn += samples
        else:
            self.drawn[first : first + n] = samples
            self.outstanding -= n
        s0 = samples[0]
        if n == 1 or samples.count(s0) == n:  # one object (the simulator's usual round)
            ct = s0.completion_tokens
            self.prompt_tokens += (s0.prompt_tokens or 0) * n
            self.completion_tokens += (estimate_tokens(s0.text) if ct is None else ct) * n
            if first == self.counted:
                self._run(first, s0, n)
                if self.counted < len(self.drawn):
                    self._count()  # later samples that arrived before these
            return
        last = None
        pt = ct = 0
        for s in samples:  # tokens are paid for every sample drawn, counted or not
            if s is not last:
                last = s
                pt = s.prompt_tokens or 0
                ct = s.completion_tokens
                if ct is None:
                    ct = estimate_tokens(s.text)
            self.prompt_tokens += pt
            self.completion_tokens += ct
        if first == self.counted:
            self._count()

    def judged(self, s: Sample) -> Judged:
        """A sample's judgement (memoised by text); over the token limit it is overlong."""
        ct = s.completion_tokens
        if (estimate_tokens(s.text) if ct is None else ct) > self._limit:
            return Flag.OVERLONG
        text = s.text
        j = self.memo.get(text)
        if j is None:
            got = self._judge(text)
            if isinstance(got, Raised):  # (one test a new text: equal texts are memoised)
                if self.raised is None:
                    self.raised = got.error
                j = Flag.PARSE_ERROR
            else:
                j = got
            self.memo[text] = j
        return j

    def _count(self) -> None:
        """Count the complete prefix, a run of one shared object at a time."""
        drawn = self.drawn
        end = len(drawn)
        i = self.counted
        while i < end:
            s = drawn[i]
            if s is None:
                break
            j = i + 1
            while j < end and drawn[j] is s:
                j += 1
            self._run(i, s, j - i)
            i = j

    def flagged(self, f: Flag, i: int, m: int) -> None:
        """Count m red-flagged samples from index i; a step whose first `give_up` samples
        are all flagged is over (its cap falls to what it drew)."""
        flags = self.flags
        if flags is None:
            flags = self.flags = {}
        flags[f] = flags.get(f, 0) + m
        if i + m >= self.give_up and not self.tally.counts:
            self.cap = i + m

    def _run(self, i: int, s: Sample, m: int) -> None:
        """Count m samples from index i that are all the one object s: judged once.

        Red-flagged samples are counted by kind even after the decision; valid ones
        vote only until it."""
        judged = self.judged(s)
        if judged.__class__ is Flag:
            self.flagged(judged, i, m)
        elif self.decided_at < 0:
            key = judged[0]
            if key not in self.firsts:
                self.firsts[key] = i
            used = self.tally.add_many(key, m)
            if used:
                self.decided_at = i + used - 1
                if self.firsts[key] == i:  # the usual case: the winner's first sample is here
                    self.won = (key, judged[1], s.text)
        self.counted = i + m

    # -- outcome --------------------------------------------------------------------------
    @property
    def decided(self) -> bool:
        return self.decided_at >= 0

    @property
    def finished(self) -> bool:
        """Decided, or the cap is reached with every sample counted."""
        return self.decided_at >= 0 or (
            self.counted >= self.cap and self.counted == len(self.drawn)
        )

    @property
    def complete(self) -> bool:
        """Finished and no sample still out: the decision can be made."""
        return self.finished and not self.outstanding

    def winner(self) -> tuple[Hashable | None, Any, str | None]:
        """(key, answer, response text of the lowest-index sample voting for it): the
        winner, or the plurality of an undecided step (all None when none was valid).

        The lowest index, not the first to arrive: the same text whatever the order."""
        if self.won is not None:
            return self.won
        key = self.tally.winner if self.decided_at >= 0 else self.tally.plurality()
        if key is None:
            return None, None, None
        s = self.drawn[self.firsts[key]]
        assert s is not None
        j = self.judged(s)
        return key, j[1], s.text

    def samples(self) -> list[Sample]:
        """The samples drawn, in index order (once complete)."""
        return [s for s in self.drawn if s is not None]
