"""Retries, backoff, circuit breaker and limits, each against a scripted inner backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from unerring.backends.base import FatalBackendError, TransportError
from unerring.backends.resilience import (
    Limited,
    OutageError,
    RetriesExhausted,
    Retrying,
    RetryPolicy,
    TransportFailure,
)
from unerring.core.samples import Sample, SampleRequest


class FakeTime:
    """A virtual clock: sleeping advances it at once, so backoff tests take no time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s
        await asyncio.sleep(0)


class Scripted:
    """Answers by calling `script(call_number, request)`: it returns a text or raises."""

    batch_rounds = False  # one request per sample

    def __init__(self, script: Callable[[int, SampleRequest], str]) -> None:
        self.script = script
        self.calls = 0

    @property
    def model(self) -> str:
        return "scripted"

    async def sample(self, request: SampleRequest) -> list[Sample]:
        self.calls += 1
        text = self.script(self.calls, request)
        return [Sample(text, 10, 2) for _ in range(request.n)]

    async def aclose(self) -> None:
        return None


def _req(step: int = 3, n: int = 1, first: int = 0) -> SampleRequest:
    return SampleRequest(prompt="p", step=step, first_index=first, n=n, max_tokens=4)


def _fail_first(k: int, err: TransportError) -> Callable[[int, SampleRequest], str]:
    def script(call: int, request: SampleRequest) -> str:
        if call <= k:
            raise err
        return "ok"

    return script


@pytest.mark.parametrize("kind", ["timeout", "reset", "server_error", "rate_limit"])
def test_retryable_failures_are_retried_and_recorded(kind: str) -> None:
    t = FakeTime()
    failures: list[TransportFailure] = []
    inner = Scripted(_fail_first(3, TransportError(kind, "x")))
    policy = RetryPolicy(base_s=1.0, cap_s=3.0, breaker_after=10, first_contact_attempts=9)
    r = Retrying(inner, policy, failures.append, sleep=t.sleep, clock=t.clock)
    out = asyncio.run(r.sample(_req(step=9)))
    assert [s.text for s in out] == ["ok"] and inner.calls == 4
    assert [(f.kind, f.step, f.attempt, f.retried) for f in failures] == [
        (kind, 9, a, True) for a in (1, 2, 3)
    ]
    # full jitter: each delay lies in [0, min(cap, base * 2^(attempt-1))]
    assert len(t.sleeps) == 3
    for a, s in enumerate(t.sleeps, start=1):
        assert 0.0 <= s <= min(3.0, 2.0 ** (a - 1))


def test_retry_after_is_honoured() -> None:
    t = FakeTime()
    inner = Scripted(_fail_first(1, TransportError("rate_limit", "429", retry_after=7.5)))
    r = Retrying(inner, RetryPolicy(base_s=0.1), sleep=t.sleep, clock=t.clock)
    asyncio.run(r.sample(_req()))
    assert t.sleeps == [7.5]


@pytest.mark.parametrize("asked", [1e8, 1e308])
def test_retry_after_is_honoured_no_longer_than_the_outage_limit(asked: float) -> None:
    # one answer asking for years must not hold the request: the run waits out a server
    # that is down for max_outage_s at most, and a server asking for more gets no more
    t = FakeTime()
    inner = Scripted(_fail_first(1, TransportError("rate_limit", "429", retry_after=asked)))
    r = Retrying(inner, RetryPolicy(base_s=0.1, max_outage_s=42.0), sleep=t.sleep, clock=t.clock)
    out = asyncio.run(r.sample(_req()))
    assert [s.text for s in out] == ["ok"] and t.sleeps == [42.0]


@pytest.mark.parametrize("kind", ["auth", "not_found", "bad_request"])
def test_fatal_errors_are_never_retried(kind: str) -> None:
    t = FakeTime()
    failures: list[TransportFailure] = []
    inner = Scripted(_fail_first(100, FatalBackendError(kind, "no")))
    r = Retrying(inner, RetryPolicy(), failures.append, sleep=t.sleep, clock=t.clock)
    with pytest.raises(FatalBackendError) as info:
        asyncio.run(r.sample(_req()))
    assert info.value.kind == kind and inner.calls == 1 and t.sleeps == []
    assert [(f.kind, f.retried) for f in failures] == [(kind, False)]


def test_gives_up_after_max_attempts_when_no_outage() -> None:
    t = FakeTime()
    failures: list[TransportFailure] = []
    inner = Scripted(_fail_first(100, TransportError("server_error", "500")))
    policy = RetryPolicy(max_attempts=4, breaker_after=50)
    r = Retrying(inner, policy, failures.append, sleep=t.sleep, clock=t.clock)
    with pytest.raises(RetriesExhausted) as info:
        asyncio.run(r.sample(_req()))
    assert inner.calls == 4 and "4 attempts" in str(info.value)
    assert info.value.kind == "server_error" and not info.value.retryable
    assert not isinstance(info.value, FatalBackendError)  # a stop to resume, not a failure
    assert [f.retried for f in failures] == [True, True, True, False]


def test_malformed_answers_get_few_attempts_and_never_open_the_breaker() -> None:
    t = FakeTime()
    inner = Scripted(_fail_first(100, TransportError("malformed", "non-JSON")))
    r = Retrying(
        inner, RetryPolicy(malformed_attempts=3, breaker_after=2), sleep=t.sleep, clock=t.clock
    )
    with pytest.raises(RetriesExhausted) as info:
        asyncio.run(r.sample(_req()))
    assert inner.calls == 3 and "non-JSON" in str(info.value)
    assert not r.breaker.is_open


def test_breaker_pauses_and_probes_through_an_outage() -> None:
    t = FakeTime()
    failures: list[TransportFailure] = []

    def down_until_60s(call: int, request: SampleRequest) -> str:
        if call > 1 and t.now < 60.0:
            raise TransportError("reset", "connection refused")
        return f"step {request.step}"

    inner = Scripted(down_until_60s)
    policy = RetryPolicy(
        base_s=0.5, cap_s=2.0, breaker_after=5, probe_every_s=10.0, max_outage_s=300.0
    )
    r = Retrying(inner, policy, failures.append, sleep=t.sleep, clock=t.clock)

    async def many() -> list[list[Sample]]:
        return await asyncio.gather(*(r.sample(_req(step=s)) for s in range(8)))

    outs = asyncio.run(many())
    # every request got its own real answer: the outage cost time, never a decision
    assert [o[0].text for o in outs] == [f"step {s}" for s in range(8)]
    assert t.now >= 60.0 and not r.breaker.is_open
    # while open, only probes went out: far fewer calls than 8 requests x 8 attempts
    assert inner.calls < 8 + 5 + 60 / 10 + 8
    assert all(f.retried for f in failures)


def test_long_outage_stops_with_outage_error() -> None:
    t = FakeTime()
    failures: list[TransportFailure] = []
    inner = Scripted(_fail_first(10**9, TransportError("reset", "no answer")))
    policy = RetryPolicy(breaker_after=3, probe_every_s=5.0, max_outage_s=60.0)
    r = Retrying(inner, policy, failures.append, sleep=t.sleep, clock=t.clock)
    r.contacted = True  # the server answered earlier in the run: this is an outage
    with pytest.raises(OutageError) as info:
        asyncio.run(r.sample(_req()))
    assert info.value.kind == "outage" and "stopped" in str(info.value)
    assert not info.value.retryable and not isinstance(info.value, FatalBackendError)
    assert 60.0 <= t.now < 80.0
    assert inner.calls <= 3 + 60 / 5 + 1


def test_unreachable_at_first_contact_stops_after_a_few_attempts() -> None:
    t = FakeTime()
    inner = Scripted(_fail_first(10**9, TransportError("reset", "connection refused")))
    r = Retrying(inner, RetryPolicy(first_contact_attempts=3), sleep=t.sleep, clock=t.clock)
    with pytest.raises(FatalBackendError) as info:
        asyncio.run(r.sample(_req()))
    assert info.value.kind == "unreachable" and "connection refused" in str(info.value)
    assert inner.calls == 3


def test_per_attempt_timeout_applies_to_any_backend() -> None:
    calls = 0

    class Hangs(Scripted):
        async def sample(self, request: SampleRequest) -> list[Sample]:
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.sleep(5)
            return await super().sample(request)

    failures: list[TransportFailure] = []
    r = Retrying(
        Hangs(lambda c, q: "late"), RetryPolicy(timeout_s=0.05, base_s=0.0), failures.append
    )
    out = asyncio.run(r.sample(_req()))
    assert out[0].text == "late" and [f.kind for f in failures] == ["timeout"]


def test_jitter_is_seeded() -> None:
    a = [RetryPolicy(seed=1).backoff_s(5, 0, n) for n in range(1, 6)]
    b = [RetryPolicy(seed=1).backoff_s(5, 0, n) for n in range(1, 6)]
    c = [RetryPolicy(seed=2).backoff_s(5, 0, n) for n in range(1, 6)]
    assert a == b and a != c


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(timeout_s=0)


def test_concurrency_limit_holds() -> None:
    in_flight = 0
    peak = 0

    class Counting(Scripted):
        async def sample(self, request: SampleRequest) -> list[Sample]:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return await super().sample(request)

    lim = Limited(Counting(lambda c, q: "x"), concurrency=3)

    async def many() -> None:
        await asyncio.gather(*(lim.sample(_req(step=s)) for s in range(12)))

    asyncio.run(many())
    assert peak == 3


def test_requests_per_minute_paces_requests() -> None:
    t = FakeTime()
    lim = Limited(Scripted(lambda c, q: "x"), requests_per_min=600, sleep=t.sleep, clock=t.clock)

    async def seq() -> None:
        for s in range(40):
            await lim.sample(_req(step=s))

    asyncio.run(seq())
    # 10 per second with a burst of 10: 40 requests need about 3 seconds, not less
    assert 2.9 <= t.now <= 3.2


def test_tokens_per_minute_paces_by_tokens() -> None:
    t = FakeTime()
    # each request: estimate 1 prompt token + 4 max tokens; usage 12 tokens (10 + 2)
    lim = Limited(Scripted(lambda c, q: "x"), tokens_per_min=60 * 24, sleep=t.sleep, clock=t.clock)

    async def seq() -> None:
        for s in range(20):
            await lim.sample(_req(step=s))

    asyncio.run(seq())
    # 24 tokens per second, 12 used per request: 2 requests a second after the first burst
    assert 8.0 <= t.now <= 10.5


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Limited(Scripted(lambda c, q: "x"), concurrency=0)
