"""The tests of independent errors: their false-alarm rate, their power, the fitted mixture."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from unerring.planning.independence import (
    ALPHA,
    StepCounts,
    fit_mixture,
    hard_steps,
    log_likelihood,
    pairs_test,
    rate,
)


def _ahead_by_k(rng: random.Random, error: float, k: int) -> tuple[int, int]:
    """One step voted to a lead of k (one wrong answer): (votes, wrong votes)."""
    right = wrong = 0
    while abs(right - wrong) < k:
        if rng.random() < error:
            wrong += 1
        else:
            right += 1
    return right + wrong, wrong


def _counts(seed: int, steps: int, k: int, share: float, hard: float, easy: float) -> StepCounts:
    rng = random.Random(seed)
    counts = StepCounts()
    for _ in range(steps):
        counts.add(*_ahead_by_k(rng, hard if rng.random() < share else easy, k))
    return counts


def test_step_counts_deal_steps_alternately_and_skip_steps_without_votes() -> None:
    c = StepCounts()
    for n, w in [(3, 0), (3, 1), (0, 0), (5, 2), (3, 0)]:
        c.add(n, w)
    assert c.halves[0] == {(3, 0): 1, (5, 2): 1} and c.halves[1] == {(3, 1): 1, (3, 0): 1}
    assert c.both() == {(3, 0): 2, (3, 1): 1, (5, 2): 1}
    assert rate(c.both()) == pytest.approx(3 / 14)


@pytest.mark.parametrize("error", [0.01, 0.05, 0.1, 0.3])
def test_independent_errors_voted_ahead_by_k_are_not_called_hard(error: float) -> None:
    # adaptive sampling (more votes exactly where the first disagree) is not a hard step
    for seed in range(10):
        h = hard_steps(_counts(seed, 2000, 3, 0.0, 0.0, error).halves)
        assert not h.significant and not h.found, (seed, h)
        assert h.components() == [(h.error, 1.0)]
        assert h.error_low < error < h.error_high


def test_the_split_likelihood_ratio_keeps_its_false_alarm_rate() -> None:
    # 400 runs of independent errors at a loose threshold (alpha 0.05): the share that
    # exceeds it stays under 0.05 (the bound is for any number of steps)
    over = 0
    for seed in range(400):
        h = hard_steps(_counts(1000 + seed, 300, 3, 0.0, 0.0, 0.08).halves, alpha=0.05)
        over += h.significant
    assert over / 400 < 0.05


@pytest.mark.parametrize(("steps", "k"), [(1023, 3), (5000, 4)])
def test_planted_hard_steps_are_found_and_fitted(steps: int, k: int) -> None:
    for seed in range(5):
        h = hard_steps(_counts(seed, steps, k, 0.05, 0.45, 0.01).halves)
        assert h.found and h.evidence > 10 * h.threshold
        f = h.fitted
        assert f is not None
        assert 0.03 < f.hard_share < 0.08 and 0.35 < f.hard_error < 0.55
        assert f.easy_error < 0.02
        assert h.components() == f.components()


def test_the_mixture_fit_beats_one_rate_and_needs_an_error() -> None:
    c = _counts(3, 3000, 3, 0.1, 0.4, 0.02).both()
    m = fit_mixture(c)
    assert m is not None
    assert log_likelihood(c, m) > log_likelihood(c, rate(c)) + 50
    assert fit_mixture({(3, 0): 100}) is None
    assert hard_steps(({(3, 0): 50}, {(3, 0): 50})).evidence == -math.inf


def test_hard_steps_need_a_margin_over_the_rest() -> None:
    # two rates close together are told apart on a big run, but are not "hard steps"
    h = hard_steps(_counts(5, 40000, 3, 0.5, 0.06, 0.04).halves)
    assert h.fitted is not None
    if h.significant:
        assert h.fitted.hard_error < 2 * h.fitted.easy_error
    assert not h.found


def _exact_tail(n: int, w: int, both: int) -> float:
    """P(at least `both` steps with two wrong) by enumerating placements (small cases)."""
    from itertools import combinations

    hits = total = 0
    for chosen in combinations(range(2 * n), w):
        steps = [0] * n
        for slot in chosen:
            steps[slot // 2] += 1
        total += 1
        hits += sum(1 for s in steps if s == 2) >= both
    return hits / total


@pytest.mark.parametrize(("n", "w", "both"), [(5, 3, 1), (6, 4, 2), (6, 6, 3), (4, 2, 1)])
def test_the_pairs_test_is_exact(n: int, w: int, both: int) -> None:
    pairs = [2] * both + [1] * (w - 2 * both) + [0] * (n - w + both)
    bw = pairs_test(Counter(pairs))
    assert (bw.steps, bw.wrong, bw.both) == (n, w, both)
    assert bw.p_value == pytest.approx(_exact_tail(n, w, both))


def test_the_pairs_test_keeps_its_false_alarm_rate_and_finds_repeats() -> None:
    rng = random.Random(7)
    low = 0
    for _ in range(500):
        bw = pairs_test(Counter((rng.random() < 0.1) + (rng.random() < 0.1) for _ in range(500)))
        low += bw.p_value < 0.05
        assert not bw.significant
    assert low / 500 < 0.05
    # 5% of steps wrong both times on top of 2% independent errors
    pairs = [
        2 if rng.random() < 0.05 else (rng.random() < 0.02) + (rng.random() < 0.02)
        for _ in range(1000)
    ]
    bw = pairs_test(Counter(pairs))
    assert bw.significant and bw.p_value < ALPHA and bw.both > 3 * bw.expected


def test_the_pairs_test_wants_a_margin_as_well_as_a_small_p() -> None:
    # two both-wrong steps where 0.01 are expected: unlikely, but too few to warn on
    bw = pairs_test({2: 2, 0: 5000})
    assert bw.p_value < ALPHA and not bw.significant
    assert pairs_test({}).p_value == 1.0 and pairs_test({1: 1, 0: 1}).p_value == 1.0
