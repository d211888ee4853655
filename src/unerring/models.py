"""`--model` specs: which backend a run uses, and what is known about its error rate."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from unerring.backends.base import Backend
from unerring.backends.ensemble import Ensemble
from unerring.backends.faults import FaultInjecting, FaultSpec
from unerring.backends.openai_config import Api, NMode, OpenAIConfig
from unerring.backends.resilience import Limited, OnFailure, Retrying, RetryPolicy
from unerring.backends.secrets import Redacting, Redactor, key_problem, redacting
from unerring.backends.sim import SimBackend, SimConfig
from unerring.limits import MAX_CONCURRENCY, check_at_most
from unerring.pricing import PriceTable, load_prices


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed `--model`: `sim:NAME=VALUE,...`, `PROVIDER:MODEL_NAME`, or an ensemble of
    several, `A + 2*B` (samples spread over the members by weight, votes pooled)."""

    provider: str
    name: str
    sim: SimConfig | None = None
    members: tuple[tuple[float, ModelSpec], ...] = ()  # (weight, model) of an ensemble
    given: str = ""  # the text as given (an ensemble member's name in the journal)

    @property
    def label(self) -> str:
        return self.given or self.text

    @property
    def text(self) -> str:
        if self.members:
            return self.name
        return self.sim.describe() if self.sim is not None else f"{self.provider}:{self.name}"

    @property
    def simulated(self) -> bool:
        """Does any sample come from the simulated model (which needs the process's oracle)?"""
        return self.sim is not None or any(m.simulated for _, m in self.members)

    @property
    def remote(self) -> bool:
        """Does any sample come from a server (which may need a key)?"""
        if self.members:
            return any(m.remote for _, m in self.members)
        return self.sim is None


PROVIDERS = ("sim", "openai")
# members of an ensemble: `A + B` (a plus sign between spaces; sim modes use a bare `+`)
_MEMBER_SEPARATOR = re.compile(r"\s+\+\s+")
_WEIGHT = re.compile(r"^\s*([^*:\s]+)\s*\*\s*(.+)$")


def ensemble_text(models: list[str]) -> str:
    """One `--model` text for several given one by one (`--model A --model 2*B`)."""
    return " + ".join(m.strip() for m in models)


def parse_model(text: str) -> ModelSpec:
    """Parse a `--model` value; ValueError says what is wrong and what is expected."""
    parts = _MEMBER_SEPARATOR.split(text.strip())
    if len(parts) > 1 or _WEIGHT.match(text):
        members = []
        for part in parts:
            weight = 1.0
            m = _WEIGHT.match(part)
            if m is not None:
                try:
                    weight = float(m.group(1))
                except ValueError:
                    raise ValueError(
                        f"ensemble member {part!r}: weight {m.group(1)!r} is not a number"
                    ) from None
                if not weight > 0 or weight == float("inf"):
                    raise ValueError(f"ensemble member {part!r}: weight must be positive")
                part = m.group(2)
            try:
                members.append((weight, replace(_parse_one(part), given=part.strip())))
            except ValueError as e:
                raise ValueError(f"ensemble member {part.strip()!r}: {e}") from None
        if len(members) == 1 and members[0][0] == 1.0:
            return members[0][1]
        name = " + ".join((f"{w:g}*" if w != 1.0 else "") + m.label for w, m in members)
        return ModelSpec("ensemble", name, None, tuple(members))
    return _parse_one(text)


def _parse_one(text: str) -> ModelSpec:
    provider, colon, rest = text.partition(":")
    provider = provider.strip()
    if provider == "sim":
        return ModelSpec("sim", "sim", SimConfig.parse(rest))
    if not colon or not rest.strip():
        raise ValueError(
            f"--model {text!r} is not PROVIDER:NAME (for example sim:error=0.01,seed=7)"
        )
    if provider == "openai":
        return ModelSpec("openai", rest.strip())
    raise ValueError(
        f"unknown model provider {provider!r} in --model {text!r} (known: {', '.join(PROVIDERS)})"
    )


@dataclass(frozen=True, slots=True)
class Transport:
    """How samples are fetched (not what is decided): may change between attempts of a run.

    The API key is not kept here, only the name of the variable that holds it.
    """

    base_url: str | None = None
    api: Api = "completions"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    concurrency: int | None = 8
    requests_per_min: float | None = None
    tokens_per_min: float | None = None
    faults: str | None = None
    fault_seed: int = 0
    stop: tuple[str, ...] = ()
    n_mode: NMode = "auto"
    estimate_usage: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    prices_file: str | None = None
    max_response_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        if self.base_url is not None:
            OpenAIConfig("check", self.base_url)  # refuse a bad or credential-bearing URL early
        if self.api not in ("chat", "completions"):
            raise ValueError(f"--api must be chat or completions, got {self.api!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"--timeout must be positive, got {self.timeout_s}")
        check_at_most("--concurrency", self.concurrency, MAX_CONCURRENCY)
        for flag, v in (
            ("--concurrency", self.concurrency),
            ("--rpm", self.requests_per_min),
            ("--tpm", self.tokens_per_min),
        ):
            if v is not None and v <= 0:
                raise ValueError(f"{flag} must be positive, got {v}")
        if self.faults:
            FaultSpec.parse(self.faults)
        if self.max_response_bytes < 1:
            raise ValueError(
                f"--max-response-bytes must be at least 1, got {self.max_response_bytes}"
            )
        if not self.api_key_env.strip():
            raise ValueError("--api-key-env must name an environment variable")


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
    key = env.get(transport.api_key_env)
    if key:
        problem = key_problem(key)
        if problem is not None:
            raise ValueError(
                f"the API key in ${transport.api_key_env} {problem}; fix it (the key is not shown)"
            )
    return key or None


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
            [(w, m.label, make_backend(m, t, on_failure, env)) for w, m in spec.members]
        )
    inner: Backend
    redactor = None
    if spec.sim is not None:
        inner = SimBackend(spec.sim)
    elif spec.provider == "openai":
        key = api_key(spec, t, env)
        redactor = Redactor(key) if key else None
        config = OpenAIConfig(
            model=spec.name,
            base_url=base_url(t, env),
            api=t.api,
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


def price_table(transport: Transport | None = None) -> PriceTable:
    """The built-in prices, extended by the user's price file (or UNERRING_PRICES)."""
    table = PriceTable.default()
    path = (transport.prices_file if transport else None) or os.environ.get("UNERRING_PRICES")
    if path:
        table = table.extended(load_prices(Path(path)))
    return table


def known_error_mixture(spec: ModelSpec) -> list[tuple[float, float]] | None:
    """(per-sample error rate, share of steps) components when the model's errors are known.

    An ensemble of simulated models pools its members' errors: a step is hard for each
    member on its own draw (members of one seed share their hard steps), and the step's
    error is the members' errors weighted by their share of the samples."""
    if spec.members:
        return _ensemble_mixture(spec)
    c = spec.sim
    if c is None:
        return None
    if c.hard == 0.0:
        return [(c.error, 1.0)]
    return [(c.error, 1.0 - c.hard), (c.hard_error, c.hard)]


def _ensemble_mixture(spec: ModelSpec) -> list[tuple[float, float]] | None:
    sims = [(w, m.sim) for w, m in spec.members]
    if any(c is None for _, c in sims):
        return None
    total = sum(w for w, _ in sims)
    seeds = sorted({c.seed for _, c in sims if c is not None and c.hard > 0})
    combos: list[tuple[float, float]] = []
    for mask in range(1 << len(seeds)):
        hard_seeds = {s for i, s in enumerate(seeds) if mask >> i & 1}
        share = 1.0
        for i, seed in enumerate(seeds):
            # members of one seed share their hard steps; their hard share is their own
            h = max(c.hard for _, c in sims if c is not None and c.seed == seed)
            share *= h if mask >> i & 1 else 1.0 - h
        err = 0.0
        for w, c in sims:
            assert c is not None
            hard = c.seed in hard_seeds and c.hard > 0
            err += w / total * (c.hard_error if hard else c.error)
        if share > 0:
            combos.append((err, share))
    return combos


def known_valid_rate(spec: ModelSpec) -> float | None:
    if spec.members:
        rates = [(w, known_valid_rate(m)) for w, m in spec.members]
        if any(r is None for _, r in rates):
            return None
        total = sum(w for w, _ in rates)
        return sum(w * r for w, r in rates if r is not None) / total
    return None if spec.sim is None else 1.0 - spec.sim.flag


def check_reachable(spec: ModelSpec, transport: Transport, env: Mapping[str, str]) -> None:
    """Every server an ensemble's members need answers `GET /models`; ValueError if not."""
    for _, m in spec.members:
        if m.provider != "openai":
            continue
        import httpx  # the HTTP client, only for a model served over HTTP

        url = base_url(transport, env).rstrip("/") + "/models"
        try:
            httpx.get(url, timeout=min(transport.timeout_s, 10.0))
        except httpx.HTTPError as e:
            raise ValueError(
                f"ensemble member {m.text!r} cannot be reached at {url}: {type(e).__name__}"
            ) from None
