"""The error model of the adaptive rule: easy and hard steps, and the posterior over a
step's answers given its votes (pure statistics)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ERROR_CAP = 0.49  # a class error at 0.5 or more cannot be voted right: treat it as 0.49


@dataclass(frozen=True, slots=True)
class ErrorModel:
    """A share `hard_share` of steps err at `hard_error` per sample, the rest at `easy_error`."""

    hard_share: float
    easy_error: float
    hard_error: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.hard_share <= 1.0:
            raise ValueError(f"hard share must be in [0, 1], got {self.hard_share}")
        for name in ("easy_error", "hard_error"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name.replace('_', ' ')} must be in (0, 1), got {v}")

    @classmethod
    def from_components(cls, components: list[tuple[float, float]]) -> ErrorModel:
        """From (error rate, share) components: the lowest error is easy, the rest hard."""
        parts = sorted((max(e, 1e-6), s) for e, s in components if s > 0)
        if not parts:
            raise ValueError("an error model needs at least one component with a share")
        easy_e, easy_s = parts[0]
        rest = parts[1:]
        hard_s = sum(s for _, s in rest)
        total = easy_s + hard_s
        if not rest:
            return cls(0.0, easy_e, 0.45)
        hard_e = sum(e * s for e, s in rest) / hard_s
        return cls(hard_s / total, easy_e, hard_e)

    def components(self) -> list[tuple[float, float]]:
        if self.hard_share == 0.0:
            return [(self.easy_error, 1.0)]
        return [(self.easy_error, 1.0 - self.hard_share), (self.hard_error, self.hard_share)]

    def as_dict(self) -> dict[str, float]:
        return {
            "hard_share": self.hard_share,
            "easy_error": self.easy_error,
            "hard_error": self.hard_error,
        }


def _lse(xs: list[float]) -> float:
    if len(xs) == 2:  # two classes, the usual case: the same sum, without a generator
        a, b = xs
        m = a if a >= b else b
        if m == -math.inf:
            return m
        return m + math.log(math.exp(a - m) + math.exp(b - m))
    m = max(xs)
    if m == -math.inf:
        return m
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _drift(e: float) -> float:
    """Expected log-likelihood ratio one vote adds on a class with error e (its speed)."""
    return math.log((1.0 - e) / e) * (1.0 - 2.0 * e)


@dataclass(frozen=True, slots=True)
class Posterior:
    """The model the rule decides with, and each class's error allowance for one step."""

    model: ErrorModel
    allowance: tuple[float, float]  # (easy, hard): the per-step error each class may keep
    step_budget: float  # sum of share * allowance
    _logs: tuple[tuple[float, float, float, float], ...] = field(repr=False, default=())

    @classmethod
    def make(cls, model: ErrorModel, step_budget: float) -> Posterior:
        """Allowances: the hard class gets sqrt(drift_e / drift_h) times the easy one.

        First-order optimal would be drift_e / drift_h (cheap error where votes buy little
        certainty); its geometric mean with the uniform split is within a few percent of
        the Bayes-optimal rule in every case tried (docs/stopping.md)."""
        pi_h = model.hard_share
        e_e, e_h = model.easy_error, model.hard_error
        ratio = 1.0
        if pi_h > 0.0 and e_h > e_e:
            ratio = max(1.0, math.sqrt(_drift(e_e) / _drift(e_h)))
        a_e = step_budget / ((1.0 - pi_h) + pi_h * ratio)
        a_h = min(1.0, a_e * ratio)
        logs = []
        for share, err, allow in ((1.0 - pi_h, e_e, a_e), (pi_h, e_h, a_h)):
            if share <= 0.0:
                continue
            logs.append((math.log(share), math.log(err), math.log1p(-err), math.log(allow)))
        return cls(model, (a_e, a_h), step_budget, tuple(logs))

    def _classes(self, counts: tuple[int, ...]) -> tuple[list[float], list[float]]:
        """Per class of step (easy, hard), unnormalised logs: of the counts with the leader
        wrong, and of the counts at all."""
        n = sum(counts)
        lead = counts[0]
        rest = counts[1:]
        log1p, exp = math.log1p, math.exp
        wrong: list[float] = []
        total: list[float] = []
        for lp, le, lq, _ in self._logs:
            w = lp + n * le  # no answer seen so far is right
            for c in rest:
                x = lp + c * lq + (n - c) * le
                w = x + log1p(exp(w - x)) if x > w else w + log1p(exp(x - w))
            right = lp + lead * lq + (n - lead) * le
            total.append(right + log1p(exp(w - right)) if right > w else w + log1p(exp(right - w)))
            wrong.append(w)
        return wrong, total

    def p_wrong(self, counts: tuple[int, ...]) -> float:
        """P(the leader is wrong | counts), counts sorted from the most votes down."""
        if not counts or counts[0] == 0:
            return 1.0
        wrong, total = self._classes(counts)
        return math.exp(_lse(wrong) - _lse(total))

    def stops(self, counts: tuple[int, ...]) -> bool:
        """Is the leader certain enough to decide the step (counts sorted, most first)?"""
        if not counts or counts[0] == 0:
            return False
        if len(counts) > 1 and counts[0] == counts[1]:
            return False  # a tie has no leader
        # stop when P(leader wrong, counts) <= sum over classes of allowance x P(counts,
        # class): both sides share P(counts), so no normalising is needed
        wrong, total = self._classes(counts)
        return _lse(wrong) <= _lse([t + log[3] for t, log in zip(total, self._logs, strict=True)])
