"""A vote that knows its voters (pure: no I/O, no asyncio).

Each sample counts with the weight of its source (model, prompt variant) on steps like
this one: the log-odds of that source's calibrated success rate in the step's cell
(`planning.reliability_table`). A step is decided when one answer's summed weight leads every
other's by the margin, the posterior log-odds that a target error per step asks for. The
samples of a step are drawn from its sources in order of weight, so a cell's trusted
sources are asked first and an untrusted one only if they disagree: weighing and routing
are one rule.

A step's order and weights depend on its features and the table only: a run stays a
function of (seed, item, step, index), and a resume decides as the first attempt did. The
table and the routes it gives are planning's (`planning.weighing`); this module counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from unerring.core.flags import Flag
from unerring.core.samples import Sample
from unerring.errors import UsageError
from unerring.voting.step import Judged, Raised, StepVote

# a source no better than chance on a cell keeps a small weight: asked last, it still
# breaks a tie among the others
MIN_WEIGHT = 0.05
# no source is trusted beyond this rate, whatever its record: one vote never decides alone
MAX_P = 0.995
_EPS = 1e-9  # float sums: a lead equal to the margin decides


def log_odds(p: float) -> float:
    return math.log(p / (1.0 - p))


def weight(p: float) -> float:
    """A vote's weight from its source's success rate on the step's cell."""
    return max(MIN_WEIGHT, log_odds(min(p, MAX_P)))


def margin_for(target: float, steps: int) -> float:
    """The lead in log-odds at which a step is decided: the posterior odds that the
    leader is right reach (1 - e) / e, e = (1 - target) / steps, the step's share of the
    run's error budget (Wald's bound for a sequential test)."""
    if not 0.0 < target < 1.0:
        raise UsageError(
            f"{{target}} must be strictly between 0 and 1, got {target}", params=("target",)
        )
    e = (1.0 - target) / max(1, steps)
    return math.log((1.0 - e) / e)


@dataclass(frozen=True, slots=True)
class StepRoute:
    """Where a step's samples come from: sample i from `order[i % len(order)]`, (member
    index, prompt variant), counted with `weights[i % len]`; `by_label` weighs a sample
    that came from another member than planned (a member's server went down)."""

    order: tuple[tuple[int, int], ...]
    weights: tuple[float, ...]
    by_label: Mapping[tuple[str | None, int], float]

    def member(self, i: int) -> int:
        return self.order[i % len(self.order)][0]

    def variant(self, i: int) -> int:
        return self.order[i % len(self.order)][1]

    def weight_of(self, label: str | None, i: int) -> float:
        planned = self.weights[i % len(self.weights)]
        return self.by_label.get((label, self.variant(i)), planned)

    def needed(self, start: int, lead: float, margin: float, cap: int) -> int:
        """Fewest samples from index `start` whose weights could take the lead to the
        margin (all of them for the leader); at most cap - start."""
        n = 0
        while start + n < cap and lead + _EPS < margin:
            lead += self.weights[(start + n) % len(self.weights)]
            n += 1
        return max(1, n) if start < cap else 0


class Router(Protocol):
    """What a weighted vote asks of the run's weighing (`planning.weighing.Weighing`): each
    step's route from its features, the margin, the prompt variants, and what the journal
    keeps of it."""

    margin: float
    variants: tuple[int, ...]

    def route(self, features: Mapping[str, object]) -> StepRoute: ...

    def sources(self) -> list[tuple[str, int]]: ...

    def as_dict(self) -> dict[str, Any]: ...


class WeightedTally:
    """Votes for one step, each with a weight; decided once one answer's summed weight
    leads every other's by the margin. `counts` holds the plain numbers of votes (what the
    journal records), `scores` the weights. Frozen once decided."""

    __slots__ = ("counts", "lead", "leader", "margin", "scores", "winner")

    def __init__(self, margin: float) -> None:
        if not margin > 0:
            raise ValueError(f"the vote margin must be positive, got {margin}")
        self.margin = margin
        self.counts: dict[Hashable, int] = {}
        self.scores: dict[Hashable, float] = {}
        self.leader: Hashable | None = None
        self.lead = 0.0
        self.winner: Hashable | None = None

    def add_weighted(self, key: Hashable, m: int, w: float) -> int:
        """Count m votes of weight w for one key; how many it took to decide, else 0."""
        if self.winner is not None:
            raise RuntimeError("step already decided: no vote is counted after the decision")
        scores = self.scores
        for j in range(m):
            self.counts[key] = self.counts.get(key, 0) + 1
            s = scores[key] = scores.get(key, 0.0) + w
            leader = self.leader
            if leader is None or (key != leader and s > scores[leader]):
                leader = self.leader = key
            best = scores[leader]
            self.lead = best - max((v for k, v in scores.items() if k != leader), default=0.0)
            if self.lead + _EPS >= self.margin:
                self.winner = leader
                return j + 1
        return 0

    def add_many(self, key: Hashable, m: int) -> int:
        """Votes of weight one (the StepTally protocol; the weighted vote uses
        add_weighted)."""
        return self.add_weighted(key, m, 1.0)

    def needed(self) -> int:
        # the weighted vote asks its route instead (it knows the next samples' weights)
        return 1

    def plurality(self) -> Hashable | None:
        """The answer with the most weight (the first to reach it on a tie)."""
        return self.leader


class WeightedVote(StepVote):
    """A step's vote whose samples count with their sources' weights (see StepVote)."""

    __slots__ = ("route",)

    def __init__(
        self,
        route: StepRoute,
        tally: WeightedTally,
        cap: int,
        max_tokens: int,
        judge_text: Callable[[str], Judged | Raised],
    ) -> None:
        super().__init__(tally, cap, max_tokens, judge_text)
        self.route = route

    def next_round(self, parallel: int) -> int:
        if self.outstanding or self.finished:
            return 0
        start = len(self.drawn)
        tally: WeightedTally = self.tally  # type: ignore[assignment]
        n = self.route.needed(start, tally.lead, tally.margin, self.cap)
        if not start:
            return n
        return min(max(parallel, n), self.cap - start)

    def _run(self, i: int, s: Sample, m: int) -> None:
        judged = self.judged(s)
        if judged.__class__ is Flag:
            self.flagged(judged, i, m)
        else:
            tally: WeightedTally = self.tally  # type: ignore[assignment]
            key = judged[0]
            for j in range(i, i + m):  # samples of one object may come from several sources
                if self.decided_at >= 0:
                    break
                if key not in self.firsts:
                    self.firsts[key] = j
                if tally.add_weighted(key, 1, self.route.weight_of(s.model, j)):
                    self.decided_at = j
                    if self.firsts[key] == j:
                        self.won = (key, judged[1], s.text)
        self.counted = i + m
