"""Wrappers that make any backend survive transport faults. Each is a Backend itself.

Stack them as httpx stacks transports: `Retrying(Limited(OpenAICompatible(...)))`. None of
them knows what it wraps or who calls it; failures go to an `on_failure` callback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from unerring.backends.base import Backend, FatalBackendError, TransportError, Wrapping
from unerring.core.flags import estimate_tokens
from unerring.core.hashing import mix64, unit
from unerring.core.samples import Sample, SampleRequest, TransportFailure

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


OnFailure = Callable[[TransportFailure], None]


class OutageError(TransportError):
    """The backend stayed unreachable longer than the run may wait: stop, resume later."""

    retryable = False


class RetriesExhausted(TransportError):
    """One request failed on every attempt while others did not (an outage opens the
    breaker instead): its item stops, resumable, and the run's other items go on."""

    retryable = False
    item_only = True


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry and circuit-breaker settings.

    Backoff is exponential with full jitter: attempt a sleeps uniform(0, min(cap, base*2^a)),
    at least the server's Retry-After, which is honoured up to `max_outage_s` (a server
    may ask for no longer than the run waits out a server that is down). After
    `breaker_after` consecutive failures (over all requests) the breaker opens: requests
    pause, one probe goes out every `probe_every_s`, and after `max_outage_s` without a
    success the run stops with OutageError.
    """

    # at 24% injected faults, 8 attempts of ~150,000 requests left ~2 failing them all
    max_attempts: int = 10
    base_s: float = 0.5
    cap_s: float = 30.0
    timeout_s: float | None = None
    malformed_attempts: int = 3
    # before any request has succeeded, a refused connection is likelier a wrong URL than an
    # outage: stop after a few attempts instead of waiting out max_outage_s
    first_contact_attempts: int = 3
    breaker_after: int = 5
    probe_every_s: float = 5.0
    max_outage_s: float = 300.0
    seed: int = 0

    def __post_init__(self) -> None:
        if (
            min(
                self.max_attempts,
                self.malformed_attempts,
                self.breaker_after,
                self.first_contact_attempts,
            )
            < 1
        ):
            raise ValueError("retry attempts and breaker threshold must be at least 1")
        if min(self.base_s, self.cap_s, self.probe_every_s, self.max_outage_s) < 0:
            raise ValueError("retry delays must not be negative")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"--timeout must be positive, got {self.timeout_s}")

    def retry_after_s(self, asked: float) -> float:
        """The wait a server's Retry-After buys: never past `max_outage_s`, so that one
        answer (`Retry-After: 100000000`) cannot hold a request longer than an outage."""
        return min(max(0.0, asked), self.max_outage_s)

    def backoff_s(self, step: int, first_index: int, attempt: int, item: int = 0) -> float:
        """Full-jitter delay before retry number `attempt` (1-based), seeded, no global RNG."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))
        h = mix64(
            mix64(self.seed * 0x9E37 + step + item * 0x1000193) ^ (first_index * 0x85EB + attempt)
        )
        return ceiling * unit(h)


class Breaker:
    """Shared circuit-breaker state for every request of one backend."""

    def __init__(self, policy: RetryPolicy, clock: Clock, sleep: Sleep) -> None:
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self.consecutive = 0
        self._outage_since: float | None = None
        self._open = False
        self._probing = False
        self._next_probe = 0.0

    @property
    def is_open(self) -> bool:
        return self._open

    async def admit(self) -> bool:
        """Wait until a request may go out. True if it goes out as the breaker's probe."""
        p = self._policy
        while self._open:
            now = self._clock()
            since = self._outage_since if self._outage_since is not None else now
            if now - since >= p.max_outage_s:
                raise OutageError(
                    "outage",
                    f"the model server failed every request for {now - since:.0f} s "
                    f"({self.consecutive} failures in a row); stopped",
                )
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return True
            wait = self._next_probe - now if not self._probing else p.probe_every_s
            await self._sleep(max(0.001, min(wait, p.probe_every_s, since + p.max_outage_s - now)))
        return False

    def success(self) -> None:
        self.consecutive = 0
        self._outage_since = None
        self._open = False
        self._probing = False

    def failure(self, probe: bool) -> None:
        now = self._clock()
        self.consecutive += 1
        if self._outage_since is None:
            self._outage_since = now
        if probe:
            self._probing = False
            self._next_probe = now + self._policy.probe_every_s
        elif not self._open and self.consecutive >= self._policy.breaker_after:
            self._open = True
            self._next_probe = now + self._policy.probe_every_s


class Retrying(Wrapping):
    """Retries retryable transport failures with backoff; a circuit breaker spots outages.

    Fatal failures (bad key, unknown model, bad request) pass through at once, untried.
    """

    def __init__(
        self,
        inner: Backend,
        policy: RetryPolicy | None = None,
        on_failure: OnFailure | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.on_failure = on_failure
        self._sleep = sleep
        self._clock = clock
        self.breaker = Breaker(self.policy, clock, sleep)
        self.contacted = False  # has any request succeeded yet

    def _record(
        self, err: TransportError, request: SampleRequest, attempt: int, retried: bool
    ) -> None:
        if self.on_failure is not None:
            self.on_failure(
                TransportFailure(
                    err.kind,
                    request.step,
                    attempt,
                    time.time(),
                    retried,
                    str(err),
                    request.item,
                    request.first_index,
                )
            )

    async def _attempt(self, request: SampleRequest) -> list[Sample]:
        timeout = self.policy.timeout_s
        if timeout is None:
            return await self.inner.sample(request)
        try:
            # a deadline on this task, not wait_for's extra task: cheap on the hot path
            async with asyncio.timeout(timeout):
                return await self.inner.sample(request)
        except TimeoutError:
            raise TransportError("timeout", f"no answer within {timeout:g} s") from None

    async def sample(self, request: SampleRequest) -> list[Sample]:
        p = self.policy
        attempt = 0
        counted: dict[bool, int] = {True: 0, False: 0}  # by "is malformed"
        while True:
            # closed breaker (the usual case): no await, nothing to wait for
            probe = await self.breaker.admit() if self.breaker.is_open else False
            attempt += 1
            try:
                out = await self._attempt(request)
            except TransportError as e:
                if not e.retryable:
                    self._record(e, request, attempt, retried=False)
                    raise
                err = e
            else:
                self.breaker.success()
                self.contacted = True
                return out
            # a server that answers garbage (or far too much) is reachable: not an outage,
            # and not worth long
            malformed = err.kind in ("malformed", "oversize")
            if not malformed:
                self.breaker.failure(probe)
            if not probe:
                counted[malformed] += 1
            limit = p.malformed_attempts if malformed else p.max_attempts
            if err.kind == "reset" and not self.contacted and attempt >= p.first_contact_attempts:
                self._record(err, request, attempt, retried=False)
                raise FatalBackendError(
                    "unreachable",
                    f"no answer from the model on {attempt} first attempts: {err}",
                ) from None
            if counted[malformed] >= limit and not self.breaker.is_open:
                self._record(err, request, attempt, retried=False)
                raise RetriesExhausted(
                    err.kind, f"gave up after {attempt} attempts: {err}"
                ) from None
            self._record(err, request, attempt, retried=True)
            if self.breaker.is_open:
                continue  # admit() paces the probes
            delay = p.backoff_s(request.step, request.first_index, attempt, request.item)
            if err.retry_after is not None:
                delay = max(delay, p.retry_after_s(err.retry_after))
            await self._sleep(delay)


class _Bucket:
    """A token bucket: `rate` per second, holding at most `capacity`; may go into debt."""

    def __init__(self, per_min: float, clock: Clock) -> None:
        self.rate = per_min / 60.0
        # one second's worth, and room for at least one unit, so a burst stays small
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._last) * self.rate)
        self._last = now

    async def take(self, cost: float, sleep: Sleep) -> None:
        need = min(cost, self.capacity)
        while True:
            self._refill()
            if self.level >= need - 1e-9:  # float refills land a hair short
                # a request bigger than the bucket goes once it is full, leaving a debt
                self.level -= cost
                return
            await sleep(max(1e-3, (need - self.level) / self.rate))

    def adjust(self, delta: float) -> None:
        self.level = min(self.capacity, self.level - delta)


class Limited(Wrapping):
    """At most `concurrency` requests in flight, and requests/tokens per minute."""

    def __init__(
        self,
        inner: Backend,
        concurrency: int | None = None,
        requests_per_min: float | None = None,
        tokens_per_min: float | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        for name, v in (
            ("concurrency", concurrency),
            ("requests per minute", requests_per_min),
            ("tokens per minute", tokens_per_min),
        ):
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be positive, got {v}")
        self.inner = inner
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._requests = _Bucket(requests_per_min, clock) if requests_per_min else None
        self._tokens = _Bucket(tokens_per_min, clock) if tokens_per_min else None
        self._sleep = sleep

    async def sample(self, request: SampleRequest) -> list[Sample]:
        if self._slots is None:
            return await self._limited(request)
        async with self._slots:
            return await self._limited(request)

    async def _limited(self, request: SampleRequest) -> list[Sample]:
        if self._requests is not None:
            await self._requests.take(1, self._sleep)
        # servers count the prompt plus max_tokens against the limit before answering
        estimate = estimate_tokens((request.system or "") + request.prompt) + (
            request.n * request.max_tokens
        )
        if self._tokens is not None:
            await self._tokens.take(estimate, self._sleep)
        out = await self.inner.sample(request)
        if self._tokens is not None:
            used = sum((s.prompt_tokens or 0) + (s.completion_tokens or 0) for s in out)
            self._tokens.adjust(used - estimate)
        return out
