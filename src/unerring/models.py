"""`--model` specs: which backend a run uses, and what is known about its error rate."""

from __future__ import annotations

from dataclasses import dataclass

from unerring.backends.base import Backend
from unerring.backends.sim import SimBackend, SimConfig


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed `--model`: `sim:NAME=VALUE,...` or `PROVIDER:MODEL_NAME`."""

    provider: str
    name: str
    sim: SimConfig | None = None

    @property
    def text(self) -> str:
        return self.sim.describe() if self.sim is not None else f"{self.provider}:{self.name}"


PROVIDERS = ("sim",)


def parse_model(text: str) -> ModelSpec:
    """Parse a `--model` value; ValueError says what is wrong and what is expected."""
    provider, colon, rest = text.partition(":")
    provider = provider.strip()
    if provider == "sim":
        return ModelSpec("sim", "sim", SimConfig.parse(rest))
    if not colon or not rest.strip():
        raise ValueError(
            f"--model {text!r} is not PROVIDER:NAME (for example sim:error=0.01,seed=7)"
        )
    raise ValueError(
        f"unknown model provider {provider!r} in --model {text!r} (known: {', '.join(PROVIDERS)})"
    )


def make_backend(spec: ModelSpec) -> Backend:
    if spec.sim is not None:
        return SimBackend(spec.sim)
    raise ValueError(f"no backend for provider {spec.provider!r}")


def known_error_mixture(spec: ModelSpec) -> list[tuple[float, float]] | None:
    """(per-sample error rate, share of steps) components when the model's errors are known."""
    c = spec.sim
    if c is None:
        return None
    if c.hard == 0.0:
        return [(c.error, 1.0)]
    return [(c.error, 1.0 - c.hard), (c.hard_error, c.hard)]


def known_valid_rate(spec: ModelSpec) -> float | None:
    return None if spec.sim is None else 1.0 - spec.sim.flag
