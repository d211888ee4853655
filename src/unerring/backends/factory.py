"""The backend a model spec needs, with its wrappers stacked in one place, and how
samples are fetched (`Transport`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from unerring import defaults
from unerring.backends.base import Backend, StepOracle
from unerring.backends.ensemble import Ensemble
from unerring.backends.faults import FaultInjecting, FaultSpec
from unerring.backends.members import member_key
from unerring.backends.openai_config import NMode, OpenAIConfig
from unerring.backends.resilience import Limited, OnFailure, Retrying, RetryPolicy
from unerring.backends.secrets import Redacting, Redactor, redacting
from unerring.backends.sim import ProcessOracle, SimBackend
from unerring.backends.spec import ModelSpec
from unerring.errors import UsageError
from unerring.limits import MAX_CONCURRENCY, check_at_most


@dataclass(frozen=True, slots=True)
class Transport:
    """How samples are fetched (not what is decided): may change between attempts of a run.

    The API key is not kept here, only the name of the variable that holds it.
    """

    base_url: str | None = None
    api_key_env: str = defaults.API_KEY_ENV
    timeout_s: float = defaults.TIMEOUT_S
    concurrency: int | None = defaults.CONCURRENCY
    requests_per_min: float | None = None
    tokens_per_min: float | None = None
    faults: str | None = None
    fault_seed: int = defaults.FAULT_SEED
    stop: tuple[str, ...] = ()
    n_mode: NMode = defaults.N_MODE
    estimate_usage: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    prices_file: str | None = None
    max_response_bytes: int = defaults.MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        if self.base_url is not None:
            try:  # refuse a bad or credential-bearing URL early
                OpenAIConfig("check", self.base_url)
            except ValueError as e:
                raise UsageError(f"{{base_url}}: {e}", params=("base_url",)) from None
        if self.timeout_s <= 0:
            raise UsageError(
                f"{{timeout_s}} must be positive, got {self.timeout_s}", params=("timeout_s",)
            )
        check_at_most("concurrency", self.concurrency, MAX_CONCURRENCY)
        for name, v in (
            ("concurrency", self.concurrency),
            ("requests_per_min", self.requests_per_min),
            ("tokens_per_min", self.tokens_per_min),
        ):
            if v is not None and v <= 0:
                raise UsageError(f"{{{name}}} must be positive, got {v}", params=(name,))
        if self.faults:
            try:
                FaultSpec.parse(self.faults)
            except ValueError as e:
                raise UsageError(f"{{faults}}: {e}", params=("faults",)) from None
        if self.n_mode not in ("auto", "n", "separate"):
            raise UsageError(
                f"{{n_mode}} must be auto, n or separate, got {self.n_mode!r}", params=("n_mode",)
            )
        if self.max_response_bytes < 1:
            raise UsageError(
                f"{{max_response_bytes}} must be at least 1, got {self.max_response_bytes}",
                params=("max_response_bytes",),
            )
        if not self.api_key_env.strip():
            raise UsageError(
                "{api_key_env} must name an environment variable", params=("api_key_env",)
            )


def base_url(transport: Transport, env: Mapping[str, str]) -> str:
    url = transport.base_url or env.get("UNERRING_BASE_URL") or env.get("OPENAI_BASE_URL")
    return url or "https://api.openai.com/v1"


def api_key(
    spec: ModelSpec, transport: Transport, env: Mapping[str, str] | None = None
) -> str | None:
    """The API key a model needs (None: none, or the simulated model); ValueError, which
    never quotes the key, when it cannot be sent as it is."""
    if not spec.remote:
        return None
    env = os.environ if env is None else env
    if spec.members:  # each member's own key, checked before anything is written
        for _, m in spec.members:
            api_key(m, transport, env)
        return None
    return member_key(spec.endpoint, transport.api_key_env, env, f"model {spec.label!r}")


def make_backend(
    spec: ModelSpec,
    transport: Transport | None = None,
    on_failure: OnFailure | None = None,
    env: Mapping[str, str] | None = None,
) -> Backend:
    """The backend for a model spec, wrapped in fault injection, limits and retries."""
    t = transport or Transport()
    env = os.environ if env is None else env
    if spec.members:  # each member with its own wrappers (limits, retries): its own server
        return Ensemble(
            [(w, m.label, make_backend(m, t, on_failure, env)) for w, m in spec.members],
            on_failure,
        )
    inner: Backend
    redactor = None
    if spec.backend is not None:  # the user's own: wrapped in limits and retries as any
        inner = spec.backend
    elif spec.sim is not None:
        inner = SimBackend(spec.sim)
    elif spec.provider == "openai":
        key = api_key(spec, t, env)
        redactor = Redactor(key) if key else None
        config = OpenAIConfig(
            model=spec.name,
            base_url=spec.endpoint.base_url if spec.endpoint else base_url(t, env),
            api=spec.api,
            timeout_s=t.timeout_s,
            n_mode=t.n_mode,
            require_usage=not t.estimate_usage,
            stop=t.stop,
            max_response_bytes=t.max_response_bytes,
            # as many idle connections as requests may be in flight: no reconnecting
            keepalive=max(16, t.concurrency or 16),
        )
        from unerring.backends.openai import OpenAICompatible  # the HTTP client, when needed

        inner = OpenAICompatible(config, api_key=key)
    else:
        raise ValueError(f"no backend for provider {spec.provider!r}")
    if t.faults:
        # at the transport: the injected faults take the same retry path as real ones
        inner = FaultInjecting(inner, FaultSpec.parse(t.faults), seed=t.fault_seed)
    # the one limiter of a run: requests in flight (inside the retries, so that a request
    # waiting out its backoff holds no slot), requests and tokens per minute. A simulated
    # model that answers at once has nothing in flight to bound.
    instant = spec.sim is not None and not spec.sim.latency.median_ms
    concurrency = None if instant else t.concurrency
    if concurrency or t.requests_per_min or t.tokens_per_min:
        inner = Limited(inner, concurrency, t.requests_per_min, t.tokens_per_min)
    if spec.sim is not None and not t.faults and t.retry.timeout_s is None:
        return inner  # nothing to retry: the simulated model fails only when told to
    retry = t.retry
    if concurrency and retry.breaker_after < concurrency:
        # with many requests in flight, a few failures in a row are ordinary (a 20% fault
        # rate gives 5 in a row every ~3,000 requests); an outage fails them all
        retry = replace(retry, breaker_after=concurrency)
    if redactor is None:
        return Retrying(inner, retry, on_failure)
    # the backend masks its key where its texts are made; this is the last line, where
    # they leave the stack: a failure's message as journaled, an error as it ends a run
    if on_failure is not None:
        on_failure = redacting(on_failure, redactor)
    return Redacting(Retrying(inner, retry, on_failure), redactor)


def oracle_for(spec: ModelSpec) -> StepOracle | None:
    """What a step tells the model a spec names about itself: the process's oracle for a
    simulated model (or an ensemble with one), nothing for a real one."""
    return ProcessOracle if spec.simulated else None


def check_reachable(spec: ModelSpec, transport: Transport, env: Mapping[str, str]) -> None:
    """Every server an ensemble's members need answers `GET /models`; ValueError if not."""
    for _, m in spec.members:
        if m.provider != "openai":
            continue
        import httpx  # the HTTP client, only for a model served over HTTP

        where = m.endpoint.base_url if m.endpoint else base_url(transport, env)
        url = where.rstrip("/") + "/models"
        try:
            httpx.get(url, timeout=min(transport.timeout_s, 10.0))
        except httpx.HTTPError as e:
            raise ValueError(
                f"ensemble member {m.text!r} cannot be reached at {url}: {type(e).__name__}"
            ) from None
