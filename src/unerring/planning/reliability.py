"""Reliability math for first-to-ahead-by-k voting (pure; formulas from the MAKER paper)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from unerring import defaults


def _odds(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError(f"per-sample success rate must be in (0, 1), got {p}")
    return (1.0 - p) / p


def p_sub(p: float, k: int) -> float:
    """Probability that one step is decided correctly with margin k."""
    return 1.0 / (1.0 + _odds(p) ** k)


def p_full(p: float, k: int, steps: int, steps_per_call: int = 1) -> float:
    """Probability that every one of `steps` steps is decided correctly."""
    # log-space: (1 + r^k)^(-s/m) underflows nothing and stays exact for big s
    return math.exp(-(steps / steps_per_call) * math.log1p(_odds(p) ** k))


def k_min(p: float, steps: int, target: float, steps_per_call: int = 1) -> int:
    """Smallest margin k for which the whole task succeeds with probability >= target."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in (0, 1), got {target}")
    if p <= 0.5:
        raise ValueError(
            f"per-sample success rate {p:.4g} is not above 0.5: voting cannot converge"
        )
    r = _odds(p)
    if r == 0.0:
        return 1
    # t^(-m/s) - 1, via expm1 so that s = 1e6 keeps its precision
    x = math.expm1(-(steps_per_call / steps) * math.log(target))
    k = math.ceil(math.log(x) / math.log(r))
    return max(1, k)


def expected_samples(p: float, k: int) -> float:
    """Expected valid samples per step for a two-candidate race (gambler's ruin)."""
    if p == 0.5:
        return float(k * k)
    r = _odds(p)
    rk = r**k
    return k * (1.0 - rk) / ((1.0 + rk) * (2.0 * p - 1.0))


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will take before anything is spent."""

    p: float
    steps: int
    target: float
    valid_rate: float
    k: int
    p_sub: float
    p_full: float
    samples_per_step: float  # including red-flagged redraws
    samples_total: float
    cost_per_sample: float | None
    cost_total: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "p": self.p,
            "error_rate": 1.0 - self.p,
            "steps": self.steps,
            "target": self.target,
            "valid_rate": self.valid_rate,
            "k_min": self.k,
            "p_sub": self.p_sub,
            "p_full": self.p_full,
            "samples_per_step": self.samples_per_step,
            "samples_total": self.samples_total,
            "cost_per_sample": self.cost_per_sample,
            "cost_total": self.cost_total,
        }


def plan(
    error_rate: float,
    steps: int,
    target: float = defaults.TARGET,
    valid_rate: float = 1.0,
    cost_per_sample: float | None = None,
    k: int | None = None,
) -> Plan:
    """Plan k (unless given) and the expected samples and cost of a run."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not 0.0 < valid_rate <= 1.0:
        raise ValueError(f"valid rate must be in (0, 1], got {valid_rate}")
    p = 1.0 - error_rate
    if k is None:
        k = k_min(p, steps, target)
    per_step = expected_samples(p, k) / valid_rate
    total = per_step * steps
    return Plan(
        p=p,
        steps=steps,
        target=target,
        valid_rate=valid_rate,
        k=k,
        p_sub=p_sub(p, k),
        p_full=p_full(p, k, steps),
        samples_per_step=per_step,
        samples_total=total,
        cost_per_sample=cost_per_sample,
        cost_total=None if cost_per_sample is None else total * cost_per_sample,
    )


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if trials <= 0:
        return (0.0, 1.0)
    phat = successes / trials
    denom = 1.0 + z * z / trials
    centre = (phat + z * z / (2 * trials)) / denom
    half = z * math.sqrt(phat * (1 - phat) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def k_min_mixture(
    components: list[tuple[float, float]], steps: int, target: float, k_max: int = 1000
) -> int:
    """Smallest k reaching `target` when steps differ: components are (error rate, share).

    Errors that are not i.i.d. across steps (a share of hard steps) need a larger k than the
    mean error rate suggests; the product of per-step success rates gives the honest plan.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in (0, 1), got {target}")
    for err, share in components:
        if share > 0 and err >= 0.5:
            raise ValueError(
                f"{share:.0%} of steps have an error rate of {err:.3g}: at 0.5 or more "
                "voting cannot converge; no k reaches the target"
            )
    log_t = math.log(target)
    for k in range(1, k_max + 1):
        log_p = 0.0
        for err, share in components:
            if share > 0 and err > 0:
                log_p -= steps * share * math.log1p(_odds(1.0 - err) ** k)
        if log_p >= log_t:
            return k
    raise ValueError(f"no k up to {k_max} reaches the target {target}")


def mixture_samples(components: list[tuple[float, float]], k: int) -> float:
    """Expected valid votes per step under ahead-by-k when steps differ (error, share)."""
    total = 0.0
    for err, share in components:
        if share <= 0:
            continue
        if err >= 0.5:
            return math.inf
        total += share * (k if err <= 0 else expected_samples(1.0 - err, k))
    return total


def p_full_mixture(components: list[tuple[float, float]], k: int, steps: int) -> float:
    """P(every step right) under ahead-by-k when steps differ: components (error, share)."""
    log_p = 0.0
    for err, share in components:
        if share <= 0 or err <= 0:
            continue
        if err >= 0.5:
            return 0.0
        log_p -= steps * share * math.log1p(_odds(1.0 - err) ** k)
    return math.exp(log_p)
