"""Seeded fault injection: parsing, reproducibility, and that faults never change samples."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from unerring.backends.base import TransportError
from unerring.backends.faults import FaultInjecting, FaultSpec
from unerring.backends.resilience import Retrying, RetryPolicy, TransportFailure
from unerring.backends.sim import SimBackend, SimConfig
from unerring.core.samples import Sample, SampleRequest


class Oracle:
    def __init__(self, step: int) -> None:
        self.step = step

    def correct(self) -> str:
        return f"answer = {self.step * 7}"

    def wrong(self, variant: int) -> str:
        return f"answer = {self.step * 7 + 1 + variant}"

    def features(self) -> Mapping[str, int | str | bool]:
        return {}


def _req(step: int, first: int = 0, n: int = 3) -> SampleRequest:
    return SampleRequest(
        prompt="p", step=step, first_index=first, n=n, max_tokens=50, oracle=Oracle(step)
    )


async def _no_sleep(s: float) -> None:
    await asyncio.sleep(0)


def test_parse_reads_every_kind() -> None:
    spec = FaultSpec.parse(
        "timeout=0.1, rate_limit=0.05,server_error=0.05,reset=0.02,truncated=0.02,slow=0.05,"
        "slow_s=0.5"
    )
    assert (spec.timeout, spec.rate_limit, spec.server_error) == (0.1, 0.05, 0.05)
    assert (spec.reset, spec.truncated, spec.slow, spec.slow_s) == (0.02, 0.02, 0.05, 0.5)
    assert spec.pick(0.0) == "timeout" and spec.pick(0.12) == "rate_limit"
    assert spec.pick(0.99) is None


@pytest.mark.parametrize(
    "text", ["timeout", "timeout=x", "lightning=0.1", "timeout=1.5", "timeout=0.6,reset=0.6"]
)
def test_bad_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        FaultSpec.parse(text)


def _draw(seed: int, spec: FaultSpec, steps: int) -> list[str]:
    inj = FaultInjecting(SimBackend(SimConfig(error=0.0)), spec, seed=seed, sleep=_no_sleep)

    async def go() -> list[str]:
        out = []
        for s in range(steps):
            try:
                await inj.sample(_req(s))
                out.append("ok")
            except TransportError as e:
                out.append(e.kind)
        return out

    return asyncio.run(go())


def test_faults_are_seeded_and_near_their_rates() -> None:
    spec = FaultSpec(rate_limit=0.2, server_error=0.1)
    a, b, c = _draw(1, spec, 2000), _draw(1, spec, 2000), _draw(2, spec, 2000)
    assert a == b and a != c
    assert 0.17 < a.count("rate_limit") / 2000 < 0.23
    assert 0.08 < a.count("server_error") / 2000 < 0.12


def test_a_retry_draws_afresh() -> None:
    inj = FaultInjecting(
        SimBackend(SimConfig(error=0.0)), FaultSpec(reset=0.5), seed=3, sleep=_no_sleep
    )

    async def attempts_until_ok(step: int) -> int:
        for attempt in range(1, 60):
            try:
                await inj.sample(_req(step))
                return attempt
            except TransportError:
                continue
        return -1

    attempts = [asyncio.run(attempts_until_ok(step)) for step in range(40)]
    # a fault that repeated on every retry would never let a request through
    assert min(attempts) >= 1 and max(attempts) > 1
    assert inj._attempts == {}  # nothing kept for requests that went through


def test_truncated_and_slow() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    sim = SimBackend(SimConfig(error=0.0))
    trunc = FaultInjecting(sim, FaultSpec(truncated=1.0), sleep=sleep)
    out = asyncio.run(trunc.sample(_req(4)))
    assert all(s.text == "answer = 28"[: len("answer = 28") // 2] for s in out)
    slow = FaultInjecting(sim, FaultSpec(slow=1.0, slow_s=1.25), sleep=sleep)
    out = asyncio.run(slow.sample(_req(4)))
    assert slept == [1.25] and all(s.text == "answer = 28" for s in out)


def test_retried_faults_give_exactly_the_samples_of_a_clean_run() -> None:
    """Faults cost attempts, never samples: the retry path yields what no fault would."""
    sim = SimBackend(SimConfig(error=0.2, wrong_answers=2, seed=11))
    spec = FaultSpec.parse("timeout=0.1,rate_limit=0.05,server_error=0.05,reset=0.02,slow=0.05")
    failures: list[TransportFailure] = []
    stack = Retrying(
        FaultInjecting(sim, spec, seed=4, sleep=_no_sleep),
        RetryPolicy(base_s=0.0, breaker_after=100),
        failures.append,
        sleep=_no_sleep,
    )

    async def texts(backend: object) -> list[list[str]]:
        out = []
        for step in range(300):
            got: list[Sample] = await backend.sample(_req(step, first=step % 3, n=4))  # type: ignore[attr-defined]
            out.append([s.text for s in got])
        return out

    assert asyncio.run(texts(stack)) == asyncio.run(texts(sim))
    kinds = {f.kind for f in failures}
    assert {"timeout", "rate_limit", "server_error"} <= kinds
    assert 300 * 0.17 < len(failures) < 300 * 0.35
    assert all(f.retried for f in failures)
