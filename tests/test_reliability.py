import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unerring.planning import reliability as r

# the paper's projection table: t = 0.95, s = 1,048,575
PAPER = [
    ("gpt-4.1-nano", 0.3571, 29),
    ("gpt-4.1-mini T=1.0", 0.0040, 4),
    ("gpt-4.1-mini T=0.1", 0.0022, 3),
    ("o3-mini low", 0.0018, 3),
    ("haiku-4.5", 0.1839, 12),
    ("gpt-oss-20B", 0.0358, 6),
    ("qwen3", 0.2342, 15),
    ("deepseek-v3.1", 0.0569, 6),
    ("kimi-k2", 0.0393, 6),
]


@pytest.mark.parametrize(("model", "error", "k"), PAPER)
def test_k_min_reproduces_the_paper_table(model: str, error: float, k: int) -> None:
    assert r.k_min(1 - error, 1_048_575, 0.95) == k


def test_k_min_is_the_smallest_k_reaching_the_target() -> None:
    for _, error, k in PAPER:
        p = 1 - error
        assert r.p_full(p, k, 1_048_575) >= 0.95
        if k > 1:
            assert r.p_full(p, k - 1, 1_048_575) < 0.95


def test_hanoi_20_disks_at_one_percent_needs_k4() -> None:
    # k = 3 would leave about one expected error in a million steps
    assert r.k_min(0.99, 2**20 - 1, 0.95) == 4
    assert r.p_full(0.99, 3, 2**20 - 1) < 0.5


def test_p_sub_matches_formula() -> None:
    p, k = 0.8, 3
    assert r.p_sub(p, k) == pytest.approx(1 / (1 + (0.2 / 0.8) ** 3))


def test_expected_samples_matches_closed_form_and_limit() -> None:
    p, k = 0.9, 4
    rk = (0.1 / 0.9) ** k
    assert r.expected_samples(p, k) == pytest.approx(k * (1 - rk) / ((1 + rk) * (2 * p - 1)))
    # p = 1: exactly k samples
    assert r.expected_samples(1 - 1e-12, 5) == pytest.approx(5, rel=1e-6)
    # symmetric race: k^2
    assert r.expected_samples(0.5, 3) == 9


def test_expected_samples_agrees_with_a_simulated_race() -> None:
    import random

    rng = random.Random(1)
    p, k, trials = 0.7, 3, 20000
    total = 0
    for _ in range(trials):
        lead = n = 0
        while abs(lead) < k:
            lead += 1 if rng.random() < p else -1
            n += 1
        total += n
    assert total / trials == pytest.approx(r.expected_samples(p, k), rel=0.03)


def test_plan_includes_valid_rate_and_cost() -> None:
    plan = r.plan(0.01, 1_048_575, 0.95, valid_rate=0.9, cost_per_sample=0.001)
    assert plan.k == 4
    assert plan.samples_per_step == pytest.approx(r.expected_samples(0.99, 4) / 0.9)
    assert plan.cost_total == pytest.approx(plan.samples_total * 0.001)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"error_rate": 0.5, "steps": 10}, "not above 0.5"),
        ({"error_rate": 0.01, "steps": 0}, "steps"),
        ({"error_rate": 0.01, "steps": 10, "target": 1.0}, "target"),
        ({"error_rate": 0.01, "steps": 10, "valid_rate": 0.0}, "valid rate"),
    ],
)
def test_plan_rejects_impossible_input(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        r.plan(**kwargs)  # type: ignore[arg-type]


@given(
    st.floats(0.001, 0.45),
    st.integers(1, 10**7),
    st.floats(0.5, 0.999),
)
def test_mixture_with_one_component_equals_k_min(err: float, steps: int, t: float) -> None:
    assert r.k_min_mixture([(err, 1.0)], steps, t) == r.k_min(1 - err, steps, t)


def test_hard_steps_need_a_larger_k() -> None:
    easy = r.k_min_mixture([(0.05, 1.0)], 1023, 0.99)
    mixed = r.k_min_mixture([(0.05, 0.9), (0.3, 0.1)], 1023, 0.99)
    assert mixed > easy
    with pytest.raises(ValueError, match="cannot converge"):
        r.k_min_mixture([(0.05, 0.9), (0.6, 0.1)], 1023, 0.99)


def test_wilson_interval_contains_the_estimate() -> None:
    lo, hi = r.wilson_interval(80, 100)
    assert lo < 0.8 < hi
    assert 0.70 < lo < 0.72 and 0.86 < hi < 0.88
    assert r.wilson_interval(0, 0) == (0.0, 1.0)
    assert math.isclose(r.wilson_interval(10, 10)[1], 1.0)
