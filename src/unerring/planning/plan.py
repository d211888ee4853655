"""Planning a run's voting before it spends anything: the voting options as asked, k
planned from the target, the adaptive rule's prior and cap, prices per token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from unerring import defaults
from unerring.backends.factory import Transport
from unerring.backends.spec import ModelSpec, known_error_mixture
from unerring.errors import UsageError
from unerring.limits import MAX_K, MAX_PARALLEL, MAX_SAMPLES_PER_STEP, check_at_most
from unerring.planning import reliability
from unerring.planning.pricing import Prices, price_table
from unerring.process import Process
from unerring.voting.adaptive import AdaptiveConfig
from unerring.voting.config import Budget, RecordLevel, UndecidedPolicy, VotingConfig
from unerring.voting.posterior import ErrorModel

RECORD_LEVELS = ("decisions", "contested", "samples")
UNDECIDED_POLICIES = ("stop", "plurality")


@dataclass(frozen=True, slots=True)
class VotingOptions:
    """How each step is voted on, as asked (checked when made); `plan_voting` turns it into
    the VotingConfig a scheduler runs, with k planned when not given."""

    k: int | None = None  # None: planned from `target`
    target: float = defaults.TARGET
    error_rate: float | None = None  # a real model's measured error rate, for planning
    first_temperature: float = defaults.FIRST_TEMPERATURE
    temperature: float = defaults.TEMPERATURE
    max_tokens: int = defaults.MAX_TOKENS
    max_samples_per_step: int | None = None  # None: SAMPLES_PER_K x k
    on_undecided: UndecidedPolicy = defaults.ON_UNDECIDED
    parallel: int = defaults.PARALLEL
    record: RecordLevel = defaults.RECORD
    stopping: str = defaults.STOPPING
    variants: tuple[int, ...] = defaults.VARIANTS
    # a reliability table (its JSON): weigh and route each sample by its source's calibrated
    # reliability on steps like this one (`voting.weighted`; None: every sample alike)
    reliability: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise UsageError(f"{{k}} must be at least 1, got {self.k}", params=("k",))
        check_at_most("k", self.k, MAX_K)
        _open_unit("target", self.target)
        if self.error_rate is not None:
            _open_unit("error_rate", self.error_rate)
        for name in ("max_tokens", "parallel", "max_samples_per_step"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{{{name}}} must be at least 1, got {value}", params=(name,))
        check_at_most("parallel", self.parallel, MAX_PARALLEL)
        check_at_most("max_samples_per_step", self.max_samples_per_step, MAX_SAMPLES_PER_STEP)
        _one_of("on_undecided", self.on_undecided, UNDECIDED_POLICIES)
        _one_of("record", self.record, RECORD_LEVELS)
        if self.stopping not in defaults.STOPPING_RULES:
            raise UsageError(
                f"unknown {{stopping}} rule {self.stopping!r} "
                f"(known: {', '.join(defaults.STOPPING_RULES)})",
                params=("stopping",),
            )
        v = self.variants
        if not v or len(set(v)) != len(v) or min(v) < 0:
            raise UsageError(
                f"{{variants}} {tuple(v)}: give distinct variant numbers from 0",
                params=("variants",),
            )


def _open_unit(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise UsageError(
            f"{{{name}}} must be strictly between 0 and 1, got {value}", params=(name,)
        )


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(
            f"{{{name}}} must be one of {', '.join(allowed)}, got {value!r}", params=(name,)
        )


def plan_k(voting: VotingOptions, model: ModelSpec, steps: int | None) -> int:
    """The k a run uses: as given, else the least that meets the target over `steps`."""
    if voting.k is not None:
        return voting.k
    if steps is None:
        raise UsageError("this task's length is not known in advance: give {k}", params=("k",))
    mixture = known_error_mixture(model)
    if voting.error_rate is not None:
        mixture = [(voting.error_rate, 1.0)]
    if mixture is None:
        raise UsageError(
            "the model's error rate is unknown: give {k}, or {error_rate} measured with "
            "`unerring plan --calibrate`",
            params=("k", "error_rate"),
        )
    try:
        # the planner looks no further than the largest k a run takes
        return reliability.k_min_mixture(mixture, steps, voting.target, MAX_K)
    except ValueError as e:
        raise UsageError(str(e)) from None


def adaptive_prior(voting: VotingOptions, model: ModelSpec) -> tuple[ErrorModel, float]:
    """The error model the adaptive rule starts from, and its weight in steps.

    A simulated model's own error model counts as a calibration of 100 steps; a measured
    error rate leaves room for hard steps (10% at error 0.45, worth 20 steps); nothing
    known starts from error 0.1 with 10% hard steps, worth 10 steps.
    """
    if voting.error_rate is not None:
        return ErrorModel(0.1, min(voting.error_rate, 0.45), 0.45), 20.0
    mixture = known_error_mixture(model)
    if mixture is not None:
        return ErrorModel.from_components(mixture), 100.0
    return ErrorModel(0.1, 0.1, 0.45), 10.0


def adaptive_cap(k: int) -> int:
    """The adaptive rule's default cap: 50 x k, and room for a hard step near error 0.45."""
    return max(defaults.SAMPLES_PER_K * k, 2000)


def _voting_k(voting: VotingOptions, model: ModelSpec, steps: int | None) -> int:
    """k for ahead-by-k; for the adaptive rule only the default cap (50 x k) uses it."""
    if voting.stopping == "ahead-by-k":
        return plan_k(voting, model, steps)
    if steps is None:
        raise UsageError(
            "{stopping} adaptive spreads the run's error budget over its steps: this "
            "task's length is not known in advance",
            params=("stopping",),
        )
    try:
        return plan_k(voting, model, steps)
    except UsageError:
        if voting.k is not None:
            raise
        return 20  # the model's error rate is unknown: the rule learns it


def check_variants(process: Process[Any, Any], variants: tuple[int, ...]) -> None:
    """Refuse prompt variants the process does not offer."""
    offered = process.prompt_variants()
    if max(variants) >= offered:
        raise UsageError(
            f"{{variants}}: process {process.name!r} offers "
            + (f"prompt variants 0-{offered - 1}" if offered > 1 else "one prompt only")
            + f", not variant {max(variants)}",
            params=("variants",),
        )


def plan_voting(
    voting: VotingOptions, model: ModelSpec, steps: int | None, task: str = ""
) -> VotingConfig:
    """The voting a scheduler runs, with k planned for `steps` steps when not given: the
    one place a run's k is decided (and a weighted vote's margin, for task `task`)."""
    if voting.reliability is not None:
        return _weighted(voting, model, steps, task)
    k = _voting_k(voting, model, steps)
    adaptive = None
    if voting.stopping == "adaptive":
        assert steps is not None
        prior, weight = adaptive_prior(voting, model)
        adaptive = AdaptiveConfig(
            steps,
            voting.target,
            prior,
            prior_steps=weight,
            cap=voting.max_samples_per_step or adaptive_cap(k),
        )
    try:
        return VotingConfig(
            k=k,
            first_temperature=voting.first_temperature,
            temperature=voting.temperature,
            max_tokens=voting.max_tokens,
            max_samples_per_step=adaptive.cap if adaptive else voting.max_samples_per_step,
            on_undecided=voting.on_undecided,
            parallel=voting.parallel,
            record=voting.record,
            adaptive=adaptive,
            variants=voting.variants,
        )
    except UsageError:
        raise
    except ValueError as e:
        raise UsageError(str(e)) from None


def _weighted(
    voting: VotingOptions, model: ModelSpec, steps: int | None, task: str
) -> VotingConfig:
    """The voting settings of a weighted vote: its margin comes from the target."""
    from unerring.planning.weighing import default_cap, weighing_for  # a weighted run's

    assert voting.reliability is not None
    if voting.k is not None:
        raise UsageError(
            "{k} does not apply to a weighted vote ({reliability}): its margin comes from "
            "{target}; leave out {k}",
            params=("k", "reliability", "target"),
        )
    if voting.stopping != "ahead-by-k":
        raise UsageError(
            "{stopping} adaptive and {reliability} are two stopping rules: pick one",
            params=("stopping", "reliability"),
        )
    weighing = weighing_for(voting.reliability, model, task, voting.variants, voting.target, steps)
    try:
        return VotingConfig(
            k=1,
            first_temperature=voting.first_temperature,
            temperature=voting.temperature,
            max_tokens=voting.max_tokens,
            max_samples_per_step=voting.max_samples_per_step
            or default_cap(len(weighing.sources())),
            on_undecided=voting.on_undecided,
            parallel=voting.parallel,
            record=voting.record,
            variants=voting.variants,
            weighing=weighing,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def run_prices(spec: ModelSpec, prices: Prices, transport: Transport, budget: Budget) -> Prices:
    """Dollars per token: those given, else the price table's; a cost cap needs one."""
    if prices != Prices():
        return prices
    try:
        price = price_table(transport).lookup(spec.name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if price is None:
        if budget.max_cost is not None:
            raise UsageError(
                f"{{max_cost}} needs the price of model {spec.name!r}: add it to a price file "
                '({prices_file} FILE, TOML: [prices."NAME"] input = $/M, output = $/M)',
                params=("max_cost", "prices_file"),
            )
        return Prices()
    return Prices(price.input_per_m / 1e6, price.output_per_m / 1e6)
