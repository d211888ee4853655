"""What the adaptive stopping rule will spend and achieve on a given error model, and the
planner's side-by-side view of both stopping rules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from unerring.planning import reliability
from unerring.planning.plan import adaptive_cap
from unerring.voting.adaptive import AdaptiveConfig, Fitted
from unerring.voting.posterior import ERROR_CAP, ErrorModel, Posterior


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the adaptive rule is expected to spend and achieve on a known error model."""

    samples_per_step: float  # valid votes per step (divide by the valid rate for samples)
    p_step_wrong: float  # chance that one step is decided wrong
    p_undecided: float  # chance that one step hits the cap
    p_full: float  # chance that every step is right
    first_round: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "samples_per_step": self.samples_per_step,
            "p_step_wrong": self.p_step_wrong,
            "p_undecided": self.p_undecided,
            "p_full": self.p_full,
            "first_round": self.first_round,
        }


def predict(config: AdaptiveConfig, truth: ErrorModel | None = None) -> Prediction:
    """Expected votes per step and P(every step right) of the adaptive rule, exactly.

    The rule is taken at its learnt state (it decides with `truth`, default the prior) and
    the error budget's even share per step; votes are followed state by state (correct
    count, wrong count) until the rule stops or the cap, with all wrong votes on one answer.
    """
    truth = truth or config.prior
    model = ErrorModel(
        truth.hard_share,
        min(ERROR_CAP, truth.easy_error),
        min(ERROR_CAP, max(config.hard_floor, truth.hard_error)),
    )
    rule = Fitted(Posterior.make(model, (1.0 - config.target) / config.steps), config.cap, 0, 0.0)
    votes = wrong = undecided = 0.0
    for err, share in truth.components():
        v, w, u = _follow(rule, err, config.cap)
        votes += share * v
        wrong += share * w
        undecided += share * u
    p_full = math.exp(config.steps * math.log1p(-min(wrong + undecided, 1.0 - 1e-300)))
    return Prediction(votes, wrong, undecided, p_full, rule.first_round())


def _follow(rule: Fitted, err: float, cap: int) -> tuple[float, float, float]:
    """(expected votes, P(decided wrong), P(undecided)) on a step whose samples err at err."""
    states = {(0, 0): 1.0}
    votes = wrong = 0.0
    p, q = 1.0 - err, err
    for n in range(cap):
        nxt: dict[tuple[int, int], float] = {}
        for (x, y), mass in states.items():
            for nx, ny, pm in ((x + 1, y, mass * p), (x, y + 1, mass * q)):
                if pm < 1e-300:
                    continue
                hi, lo = (nx, ny) if nx >= ny else (ny, nx)
                if rule.stops((hi, lo) if lo else (hi,)):
                    votes += pm * (n + 1)
                    if ny > nx:
                        wrong += pm
                else:
                    nxt[(nx, ny)] = nxt.get((nx, ny), 0.0) + pm
        # masses this small cannot move the answer: drop them (bounded work per vote)
        states = {s: m for s, m in nxt.items() if m > 1e-18}
        if not states:
            break
    left = sum(states.values())
    return votes + left * cap, wrong, left


def side_by_side(
    components: list[tuple[float, float]],
    steps: int,
    target: float,
    valid_rate: float,
    cost_per_sample: float | None,
    k: int | None,
) -> dict[str, Any]:
    """Both stopping rules on one error model (components of (error, share of steps)):
    samples per step, in all, P(every step right) and cost; k planned unless given."""
    if k is None:
        k = reliability.k_min_mixture(components, steps, target)
    fixed = reliability.mixture_samples(components, k) / valid_rate
    model = ErrorModel.from_components(components)
    pred = predict(AdaptiveConfig(steps, target, model, cap=adaptive_cap(k)))
    adaptive = pred.samples_per_step / valid_rate

    def cost(per_step: float) -> float | None:
        return None if cost_per_sample is None else per_step * steps * cost_per_sample

    return {
        "ahead-by-k": {
            "k": k,
            "samples_per_step": fixed,
            "samples_total": fixed * steps,
            "p_full": reliability.p_full_mixture(components, k, steps),
            "cost_total": cost(fixed),
        },
        "adaptive": {
            "first_round": pred.first_round,
            "samples_per_step": adaptive,
            "samples_total": adaptive * steps,
            "p_full": pred.p_full,
            "p_undecided_step": pred.p_undecided,
            "cap": adaptive_cap(k),
            "cost_total": cost(adaptive),
        },
    }
