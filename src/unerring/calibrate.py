"""Measure a model's per-step success rate on a process before a run spends anything."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from unerring import reliability
from unerring.backends.base import Backend, SampleRequest
from unerring.backends.sim import ProcessOracle, mix64, unit
from unerring.process import Process
from unerring.redflags import Flag, estimate_tokens
from unerring.vote import judge


@dataclass(frozen=True, slots=True)
class Calibration:
    steps: int  # steps sampled
    samples: int
    valid: int
    correct: int
    p: float
    p_low: float
    p_high: float
    valid_rate: float
    both_wrong: int  # steps whose first two valid samples were both wrong
    collisions: int  # ... and equal
    expected_both_wrong: float  # what independent errors would give
    warnings: tuple[str, ...]

    @property
    def collision_rate(self) -> float:
        return self.collisions / self.steps if self.steps else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps_sampled": self.steps,
            "samples": self.samples,
            "valid": self.valid,
            "correct": self.correct,
            "p": self.p,
            "p_ci95": [self.p_low, self.p_high],
            "error_rate": 1.0 - self.p,
            "valid_rate": self.valid_rate,
            "both_wrong": self.both_wrong,
            "expected_both_wrong": self.expected_both_wrong,
            "collisions": self.collisions,
            "collision_rate": self.collision_rate,
            "warnings": list(self.warnings),
        }


def _steps_to_sample(process: Process[Any, Any], n: int, seed: int) -> list[int]:
    total = process.total_steps()
    horizon = min(total, max(50 * n, 1000)) if total else 50 * n
    if n >= horizon:
        return list(range(horizon))
    chosen: set[int] = set()
    i = 0
    while len(chosen) < n:
        chosen.add(int(unit(mix64(seed * 7919 + i)) * horizon))
        i += 1
    return sorted(chosen)


async def calibrate(
    process: Process[Any, Any],
    backend: Backend,
    samples: int,
    *,
    simulate: bool,
    seed: int = 0,
    per_step: int = 2,
    first_temperature: float = 0.0,
    temperature: float = 0.1,
    max_tokens: int = 750,
) -> Calibration:
    """Sample `per_step` answers on `samples` steps of the correct trajectory."""
    chosen = _steps_to_sample(process, samples, seed)
    wanted = set(chosen)
    state = process.initial_state()
    step = 0
    n_samples = valid = correct = both_wrong = collisions = 0
    last = chosen[-1] if chosen else -1
    while step <= last and not process.done(state, step):
        right = process.solve(state, step)
        if step in wanted:
            right_key = process.key(right)
            oracle = ProcessOracle(process, state, step) if simulate else None
            got = await backend.sample(
                SampleRequest(
                    process.prompt(state, step),
                    step,
                    0,
                    per_step,
                    max_tokens,
                    first_temperature,
                    temperature,
                    process.system(),
                    oracle,
                )
            )
            wrong_keys = []
            for s in got:
                n_samples += 1
                ct = s.completion_tokens or estimate_tokens(s.text)
                r = Flag.OVERLONG if ct > max_tokens else judge(process, state, s.text)
                if isinstance(r, Flag):
                    continue
                valid += 1
                if r[0] == right_key:
                    correct += 1
                else:
                    wrong_keys.append(r[0])
            if len(wrong_keys) >= 2:
                both_wrong += 1
                if wrong_keys[0] == wrong_keys[1]:
                    collisions += 1
        state = process.advance(state, right)
        step += 1
    n_steps = len(chosen)
    p = correct / valid if valid else 0.0
    lo, hi = reliability.wilson_interval(correct, valid)
    expected = n_steps * (1.0 - p) ** 2
    warnings = []
    if valid == 0:
        warnings.append(
            "no sample passed the red flags: the model does not follow the "
            "output format; no k can help"
        )
    elif p <= 0.5:
        warnings.append(
            f"per-sample success rate {p:.2f} is not above 0.5: voting will "
            "converge on wrong answers; do not run this process on this model"
        )
    # both-wrong far above what independent errors give: errors repeat on the same steps
    if n_steps and both_wrong > expected + 3 * math.sqrt(max(expected, 1.0)):
        warnings.append(
            f"errors look correlated: {both_wrong} of {n_steps} steps had both samples "
            f"wrong where independent errors would give about {expected:.1f}; "
            f"{collisions} of them agreed on the same wrong answer. Voting does not fix "
            "errors that repeat on the same step, so the planned k is not safe: change the "
            "prompt, decorrelate (another model, temperature, prompt diversity), or add a "
            "red flag"
        )
    return Calibration(
        n_steps,
        n_samples,
        valid,
        correct,
        p,
        lo,
        hi,
        valid / n_samples if n_samples else 0.0,
        both_wrong,
        collisions,
        expected,
        tuple(warnings),
    )


def run_calibration(
    process: Process[Any, Any], backend: Backend, samples: int, **kwargs: Any
) -> Calibration:
    async def go() -> Calibration:
        try:
            return await calibrate(process, backend, samples, **kwargs)
        finally:
            await backend.aclose()

    return asyncio.run(go())
