"""Model specs (`sim:error=0.01`, `openai:NAME`, ensembles `A + 2*B`): parsed once, and
what a simulated model's spec says about its error rate."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from unerring import defaults
from unerring.backends.members import Endpoint, split_endpoint
from unerring.backends.openai_config import Api
from unerring.backends.sim import SimConfig
from unerring.errors import UsageError


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed `--model`: `sim:NAME=VALUE,...`, `PROVIDER:MODEL_NAME` (optionally on its
    own server, `openai:NAME@URL[#KEY_VAR]`), or an ensemble of several, `A + 2*B`
    (samples spread over the members by weight, votes pooled), and the form a served model
    is asked in (`api`: it can change answers, so a run records it)."""

    provider: str
    name: str
    sim: SimConfig | None = None
    members: tuple[tuple[float, ModelSpec], ...] = ()  # (weight, model) of an ensemble
    given: str = ""  # the text as given (the journal's record; an ensemble member's name)
    api: Api = defaults.API  # chat messages or a completion prompt
    # a Backend object of the user's own (provider "own"): it draws every sample
    backend: Any = field(default=None, compare=False, repr=False)
    endpoint: Endpoint | None = None  # its own server and key variable (else the run's)

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

    def asked(self, api: Api) -> ModelSpec:
        """This model (every member of an ensemble) asked in the form `api`."""
        if api not in ("chat", "completions"):
            raise UsageError(f"{{api}} must be chat or completions, got {api!r}", params=("api",))
        members = tuple((w, m.asked(api)) for w, m in self.members)
        return replace(self, api=api, members=members)

    @property
    def remote(self) -> bool:
        """Does any sample come from a server (which may need a key)?"""
        if self.members:
            return any(m.remote for _, m in self.members)
        return self.sim is None and self.backend is None


PROVIDERS = ("sim", "openai")


# members of an ensemble: `A + B` (a plus sign between spaces; sim modes use a bare `+`)
_MEMBER_SEPARATOR = re.compile(r"\s+\+\s+")


_WEIGHT = re.compile(r"^\s*([^*:\s]+)\s*\*\s*(.+)$")


def own_model(backend: Any) -> ModelSpec:
    """A Backend object of one's own as a model: journaled as "own:NAME" (its `model`
    name); a run made with one resumes only given a backend again."""
    name = str(backend.model)
    return ModelSpec("own", name, given=f"own:{name}", backend=backend)


def ensemble_text(models: list[str]) -> str:
    """One `--model` text for several given one by one (`--model A --model 2*B`)."""
    return " + ".join(m.strip() for m in models)


def parse_model(text: str, api: Api = defaults.API) -> ModelSpec:
    """Parse a `--model` value, asked in the form `api`; ValueError says what is wrong and
    what is expected."""
    return replace(_parse(text), given=text).asked(api)


def _parse(text: str) -> ModelSpec:
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
            where = f"ensemble member {part.strip()!r}: "
            try:
                members.append((weight, replace(_parse_one(part), given=part.strip())))
            except UsageError as e:
                raise UsageError(where + e.template, params=e.params) from None
            except ValueError as e:
                raise ValueError(where + str(e)) from None
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
        raise UsageError(
            f"{{model}} {text!r} is not PROVIDER:NAME (for example sim:error=0.01,seed=7)",
            params=("model",),
        )
    if provider == "openai":
        name, endpoint = split_endpoint(rest)
        return ModelSpec("openai", name, endpoint=endpoint)
    if provider == "own":
        raise UsageError(
            f"{{model}} {text!r} was a backend object of one's own: pass the object itself "
            "(model=backend) from Python to run or resume with it",
            params=("model",),
        )
    raise UsageError(
        f"unknown model provider {provider!r} in {{model}} {text!r} "
        f"(known: {', '.join(PROVIDERS)})",
        params=("model",),
    )


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
