"""Are a run's errors independent across its steps? Two tests, and the error model to plan
with (pure: no I/O).

Hard steps: each step gives (votes, wrong votes). Independent errors make every vote wrong
at one rate e; hard steps make a share of steps err at e_h and the rest at e_e. The test is
a split likelihood ratio (universal inference, Wasserman, Ramdas and Balakrishnan 2020): the
mixture fitted on one half of the steps, against the best single rate on the other half,
both ways round, averaged. Under independent errors that average has expectation at most 1,
so it exceeds 1/alpha with probability at most alpha, whatever the number of steps and
without asymptotics. Votes drawn adaptively (ahead-by-k draws more exactly when the first
disagree) do not bias it: a step's stopping depends only on its own votes, so its
likelihood is the product over the votes drawn and the rule's factor cancels in the ratio.

Both wrong: the first two valid votes of a step are drawn whatever they say. Given how many
of them were wrong in all, independent errors place those wrong votes uniformly over the
slots; the chance of seeing as many steps with both wrong is then exact (hypergeometric).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from unerring.planning import reliability
from unerring.voting.posterior import ErrorModel

ALPHA = 1e-3  # each test's chance of a false alarm on independent errors
EFFECT = 2.0  # hard steps must err at least this many times as often as the rest
Z_BOUND = 3.09  # one-sided 99.9% bound on the error rate (a k is unsafe beyond doubt)
_TINY = 1e-12

Counts = Mapping[tuple[int, int], int]  # (votes, wrong votes) of a step -> steps


class StepCounts:
    """Each step's (votes, wrong votes), dealt alternately into two halves by the order
    the steps are added (an order fixed before any vote is seen: item, then step)."""

    __slots__ = ("_next", "halves")

    def __init__(self) -> None:
        self.halves: tuple[Counter[tuple[int, int]], Counter[tuple[int, int]]] = (
            Counter(),
            Counter(),
        )
        self._next = 0

    def add(self, votes: int, wrong: int) -> None:
        if votes <= 0:
            return  # a step without a valid vote says nothing about the error rate
        self.halves[self._next][(votes, wrong)] += 1
        self._next ^= 1

    def both(self) -> Counter[tuple[int, int]]:
        return self.halves[0] + self.halves[1]


def _log_binom(votes: int, wrong: int, e: float) -> float:
    """log of e^w (1-e)^(n-w): one step's votes at error e (the binomial factor cancels)."""
    e = min(1.0 - _TINY, max(_TINY, e))
    return wrong * math.log(e) + (votes - wrong) * math.log1p(-e)


def _log_mix(votes: int, wrong: int, m: ErrorModel) -> float:
    a = math.log(m.hard_share) + _log_binom(votes, wrong, m.hard_error) if m.hard_share else None
    b = (
        math.log1p(-m.hard_share) + _log_binom(votes, wrong, m.easy_error)
        if m.hard_share < 1.0
        else None
    )
    if a is None:
        assert b is not None
        return b
    if b is None:
        return a
    hi = max(a, b)
    return hi + math.log(math.exp(a - hi) + math.exp(b - hi))


def rate(counts: Counts) -> float:
    """The single error rate that fits best: wrong votes over votes."""
    votes = sum(n * c for (n, _), c in counts.items())
    wrong = sum(w * c for (_, w), c in counts.items())
    return wrong / votes if votes else 0.0


def log_likelihood(counts: Counts, model: ErrorModel | float) -> float:
    """Log-likelihood of the steps' votes under one error rate or a two-class mixture."""
    if isinstance(model, ErrorModel):
        return sum(c * _log_mix(n, w, model) for (n, w), c in counts.items())
    return sum(c * _log_binom(n, w, model) for (n, w), c in counts.items())


def fit_mixture(counts: Counts, iterations: int = 500, tol: float = 1e-7) -> ErrorModel | None:
    """Maximum-likelihood two-class mixture (EM from a few starts); None without errors.

    Any fit serves the test (a mixture fitted on one half is judged on the other), so EM
    stops once a round gains less than `tol` in log-likelihood."""
    e = rate(counts)
    if e <= 0.0 or not counts:
        return None
    cells = [(n, w, c) for (n, w), c in counts.items()]
    total = float(sum(c for _, _, c in cells))
    best: tuple[float, ErrorModel] | None = None
    for share0, hard0 in ((0.05, 0.45), (0.01, 0.8), (0.3, 2 * e)):
        share, easy, hard = share0, max(_TINY, e / 2), _clamp(max(hard0, 2 * e))
        last = -math.inf
        for _ in range(iterations):
            ls, l1s = math.log(share), math.log1p(-share)
            lh, l1h = math.log(hard), math.log1p(-hard)
            le, l1e = math.log(easy), math.log1p(-easy)
            sh = sw_h = sn_h = sw_e = sn_e = ll = 0.0
            for n, w, c in cells:
                # E step: the chance that a step with these votes is a hard one
                a = ls + w * lh + (n - w) * l1h
                b = l1s + w * le + (n - w) * l1e
                hi = a if a > b else b
                ea, eb = math.exp(a - hi), math.exp(b - hi)
                ll += c * (hi + math.log(ea + eb))
                r = c * ea / (ea + eb)
                sh += r
                sw_h += r * w
                sn_h += r * n
                sw_e += (c - r) * w
                sn_e += (c - r) * n
            share = _clamp(sh / total)
            hard = _clamp(sw_h / sn_h) if sn_h > 0 else hard
            easy = _clamp(sw_e / sn_e) if sn_e > 0 else easy
            if ll - last < tol:
                break
            last = ll
        if easy > hard:  # the labels are ours to choose: the hard class errs more
            share, easy, hard = 1 - share, hard, easy
        fitted = ErrorModel(share, easy, hard)
        ll = log_likelihood(counts, fitted)
        if best is None or ll > best[0]:
            best = (ll, fitted)
    assert best is not None
    return best[1]


def _clamp(x: float) -> float:
    return min(1.0 - _TINY, max(_TINY, x))


def split_evidence(a: Counts, b: Counts) -> float:
    """log of the cross-fitted split likelihood ratio: mixture fitted on one half against
    the best single rate on the other, both ways, averaged. Under independent errors
    its exponent exceeds 1/alpha with probability at most alpha."""
    terms = []
    for fit_on, judge_on in ((b, a), (a, b)):
        m = fit_mixture(fit_on)
        if m is None or not judge_on:
            terms.append(0.0)  # nothing fitted or nothing to judge: a ratio of 1
            continue
        terms.append(log_likelihood(judge_on, m) - log_likelihood(judge_on, rate(judge_on)))
    hi = max(terms)
    return hi + math.log(sum(math.exp(t - hi) for t in terms) / len(terms))


@dataclass(frozen=True, slots=True)
class HardSteps:
    """The hard-step test's result and the error model a plan should use."""

    steps: int
    votes: int
    wrong: int
    error: float  # one rate: wrong votes / votes
    error_low: float  # its one-sided 99.9% bounds
    error_high: float
    evidence: float  # log of the split likelihood ratio (see `split_evidence`)
    threshold: float  # log(1 / alpha)
    fitted: ErrorModel | None  # the maximum-likelihood mixture over all steps

    @property
    def significant(self) -> bool:
        return self.evidence >= self.threshold

    @property
    def found(self) -> bool:
        """Hard steps beyond chance, and harder than the rest by a margin that matters."""
        f = self.fitted
        return (
            self.significant
            and f is not None
            and f.hard_share > 0.0
            and f.hard_error >= EFFECT * f.easy_error
        )

    def components(self) -> list[tuple[float, float]]:
        """(error rate, share of steps) to plan with: the mixture if hard steps were
        found, else the one rate."""
        if self.found:
            assert self.fitted is not None
            return self.fitted.components()
        return [(self.error, 1.0)]

    def as_dict(self) -> dict[str, object]:
        f = self.fitted
        return {
            "steps": self.steps,
            "votes": self.votes,
            "wrong": self.wrong,
            "error_rate": self.error,
            "error_bounds": [self.error_low, self.error_high],
            "evidence": self.evidence,
            "threshold": self.threshold,
            "significant": self.significant,
            "found": self.found,
            "fitted": None if f is None else f.as_dict(),
        }


def hard_steps(halves: tuple[Counts, Counts], alpha: float = ALPHA) -> HardSteps:
    """Test independent errors against a share of hard steps (see the module's doc)."""
    a, b = halves
    both: Counter[tuple[int, int]] = Counter(a)
    both.update(b)
    steps = sum(both.values())
    votes = sum(n * c for (n, _), c in both.items())
    wrong = sum(w * c for (_, w), c in both.items())
    lo, hi = reliability.wilson_interval(wrong, votes, Z_BOUND) if votes else (0.0, 1.0)
    evidence = split_evidence(a, b) if wrong else -math.inf
    return HardSteps(
        steps=steps,
        votes=votes,
        wrong=wrong,
        error=wrong / votes if votes else 0.0,
        error_low=lo,
        error_high=hi,
        evidence=evidence,
        threshold=math.log(1.0 / alpha),
        fitted=fit_mixture(both) if wrong else None,
    )


@dataclass(frozen=True, slots=True)
class BothWrong:
    """Steps whose first two valid votes were both wrong, against independent errors."""

    steps: int  # steps with two valid votes
    wrong: int  # wrong votes among their first two
    both: int  # steps with both wrong
    expected: float  # what independent errors give, given `wrong`
    p_value: float  # P(as many or more | independent errors, `wrong`)

    @property
    def significant(self) -> bool:
        # a margin too: at least 3 steps and twice the expectation, so that a tiny
        # expectation does not turn one or two chance pairs into a warning
        return self.p_value < ALPHA and self.both >= 3 and self.both >= 2 * self.expected

    def as_dict(self) -> dict[str, object]:
        return {
            "steps": self.steps,
            "wrong": self.wrong,
            "both_wrong": self.both,
            "expected": self.expected,
            "p_value": self.p_value,
            "significant": self.significant,
        }


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def pairs_test(hist: Mapping[int, int]) -> BothWrong:
    """From how many steps had 0, 1 or 2 wrong votes among their first two: the exact
    chance, given the total, that independent errors put two on as many steps."""
    n = sum(hist.values())
    both = hist.get(2, 0)
    w = hist.get(1, 0) + 2 * both
    if n == 0 or w < 2:
        return BothWrong(n, w, both, 0.0, 1.0)
    # b steps with two: C(n, b) C(n - b, w - 2b) 2^(w - 2b) of the C(2n, w) placements
    total = _log_comb(2 * n, w)
    logs = {
        b: _log_comb(n, b) + _log_comb(n - b, w - 2 * b) + (w - 2 * b) * math.log(2) - total
        for b in range(max(0, w - n), w // 2 + 1)
    }
    expected = sum(b * math.exp(v) for b, v in logs.items())
    tail = [v for b, v in logs.items() if b >= both]
    p = min(1.0, sum(math.exp(v) for v in tail)) if tail else 0.0
    return BothWrong(n, w, both, expected, p)
