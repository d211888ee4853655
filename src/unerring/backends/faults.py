"""Seeded fault injection in front of any backend, raising what a real transport raises.

Faults are drawn from (seed, step, first sample index, attempt) so that a run with injected
faults is reproducible, and each retry of a request draws afresh.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields

from unerring.backends.base import Backend, TransportError, Wrapping
from unerring.backends.resilience import Sleep
from unerring.core.hashing import mix64, unit
from unerring.core.samples import Sample, SampleRequest

# the order in which a draw's unit interval is cut into fault kinds
KINDS = ("timeout", "rate_limit", "server_error", "reset", "malformed", "truncated", "slow")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Chance of each fault per request; `slow_s` is how long a slow request stalls and
    `retry_after_s` the Retry-After an injected 429 carries."""

    timeout: float = 0.0
    rate_limit: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    malformed: float = 0.0
    truncated: float = 0.0
    slow: float = 0.0
    slow_s: float = 2.0
    retry_after_s: float = 0.0

    def __post_init__(self) -> None:
        total = 0.0
        for kind in KINDS:
            v = getattr(self, kind)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"fault chance {kind}={v} must be between 0 and 1")
            total += v
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault chances add up to {total:g}, more than 1")
        if self.slow_s < 0 or self.retry_after_s < 0:
            raise ValueError("slow_s and retry_after_s must not be negative")

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse 'timeout=0.1,rate_limit=0.05,slow=0.05,slow_s=1.5'."""
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, eq, value = item.partition("=")
            name = name.strip()
            if not eq or name not in known:
                raise ValueError(
                    f"item {item!r} is not KIND=CHANCE (kinds: {', '.join(sorted(known))})"
                )
            try:
                values[name] = float(value)
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a number") from None
        return cls(**values)

    def pick(self, u: float) -> str | None:
        """The fault a uniform draw `u` in [0, 1) selects, or None."""
        edge = 0.0
        for kind in KINDS:
            edge += getattr(self, kind)
            if u < edge:
                return kind
        return None


class FaultInjecting(Wrapping):
    """Injects seeded faults into the requests to `inner`, at the transport."""

    def __init__(
        self, inner: Backend, spec: FaultSpec, seed: int = 0, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.inner = inner
        self.spec = spec
        self._base = mix64(seed * 0x2545F4914F6CDD1D + 0xFA17)
        self._sleep = sleep
        # attempts so far per request still failing; an entry goes once its request succeeds
        self._attempts: dict[tuple[int, int, int], int] = {}
        self.injected: dict[str, int] = {}

    async def sample(self, request: SampleRequest) -> list[Sample]:
        key = (request.item, request.step, request.first_index)
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        h = mix64(self._base ^ mix64(request.step * 0x9E3779B1 + request.first_index))
        if request.item:  # items of a batch draw their own faults (item 0 as before)
            h = mix64(h ^ request.item)
        kind = self.spec.pick(unit(mix64(h + attempt)))
        if kind is not None:
            self.injected[kind] = self.injected.get(kind, 0) + 1
        where = f"step {request.step}, attempt {attempt + 1}"
        if request.item:
            where = f"item {request.item}, " + where
        if kind == "rate_limit":
            raise TransportError(
                "rate_limit", f"injected fault: rate limited ({where})", self.spec.retry_after_s
            )
        if kind in ("timeout", "server_error", "reset", "malformed"):
            raise TransportError(kind, f"injected fault: {kind} ({where})")
        if kind == "slow":
            await self._sleep(self.spec.slow_s)
        out = await self.inner.sample(request)
        self._attempts.pop(key, None)
        if kind == "truncated":
            # the connection dropped mid-answer: a cut-off text that the red flags discard
            # (new samples: a sample never changes, and one may stand for several)
            cut: dict[int, Sample] = {}
            for s in out:
                if id(s) not in cut:
                    cut[id(s)] = Sample(
                        s.text[: len(s.text) // 2],
                        s.prompt_tokens,
                        s.completion_tokens,
                        s.latency_s,
                        "flag:truncated" if s.label is not None else None,
                    )
            out = [cut[id(s)] for s in out]
        return out
