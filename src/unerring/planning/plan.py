"""Planning a run's voting before it spends anything: k from the target, the adaptive
rule's prior and cap, prompt variants checked, prices per token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unerring.app.options import STOPPING_RULES, RunOptions, Session
from unerring.backends.spec import ModelSpec, known_error_mixture, known_valid_rate, parse_model
from unerring.errors import UsageError
from unerring.limits import MAX_K, check_at_most
from unerring.planning import reliability
from unerring.planning.pricing import Prices, price_table
from unerring.process import Process
from unerring.voting.adaptive import AdaptiveConfig
from unerring.voting.config import VotingConfig
from unerring.voting.posterior import ErrorModel

if TYPE_CHECKING:
    pass


def plan_k(options: RunOptions, steps: int | None) -> tuple[int, float | None]:
    """The k a run uses, and the valid-sample rate assumed (None when unknown)."""
    spec = parse_model(options.model)
    valid = known_valid_rate(spec)
    if options.k is not None:
        if options.k < 1:
            raise UsageError(f"--k must be at least 1, got {options.k}")
        try:
            check_at_most("--k", options.k, MAX_K)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return options.k, valid
    if not 0.0 < options.target < 1.0:
        raise UsageError(f"--target must be strictly between 0 and 1, got {options.target}")
    if steps is None:
        raise UsageError("this task's length is not known in advance: give --k")
    mixture = known_error_mixture(spec)
    if options.error_rate is not None:
        mixture = [(options.error_rate, 1.0)]
    if mixture is None:
        raise UsageError(
            "the model's error rate is unknown: give --k, or --error-rate E measured with "
            "`unerring plan --calibrate`"
        )
    try:
        # the planner looks no further than the largest k a run takes
        return reliability.k_min_mixture(mixture, steps, options.target, MAX_K), valid
    except ValueError as e:
        raise UsageError(str(e)) from None


def adaptive_prior(options: RunOptions) -> tuple[ErrorModel, float]:
    """The error model the adaptive rule starts from, and its weight in steps.

    A simulated model's own error model counts as a calibration of 100 steps; a measured
    --error-rate leaves room for hard steps (10% at error 0.45, worth 20 steps); nothing
    known starts from error 0.1 with 10% hard steps, worth 10 steps.
    """
    if options.error_rate is not None:
        return ErrorModel(0.1, min(options.error_rate, 0.45), 0.45), 20.0
    mixture = known_error_mixture(parse_model(options.model))
    if mixture is not None:
        return ErrorModel.from_components(mixture), 100.0
    return ErrorModel(0.1, 0.1, 0.45), 10.0


def adaptive_cap(k: int) -> int:
    """The adaptive rule's default cap: 50 x k, and room for a hard step near error 0.45."""
    return max(50 * k, 2000)


def _voting_k(options: RunOptions, steps: int | None) -> int:
    """k for ahead-by-k; for the adaptive rule only the default cap (50 x k) uses it."""
    if options.stopping not in STOPPING_RULES:
        raise UsageError(
            f"unknown stopping rule {options.stopping!r} (known: {', '.join(STOPPING_RULES)})"
        )
    if options.stopping == "ahead-by-k":
        return plan_k(options, steps)[0]
    if steps is None:
        raise UsageError(
            "--stopping adaptive spreads the run's error budget over its steps: this "
            "task's length is not known in advance"
        )
    try:
        return plan_k(options, steps)[0]
    except UsageError:
        if options.k is not None:
            raise
        return 20  # the model's error rate is unknown: the rule learns it


def check_variants(process: Process[Any, Any], variants: tuple[int, ...]) -> None:
    """Refuse prompt variants the process does not offer."""
    offered = process.prompt_variants()
    if max(variants) >= offered:
        raise UsageError(
            f"--variants: process {process.name!r} offers "
            + (f"prompt variants 0-{offered - 1}" if offered > 1 else "one prompt only")
            + f", not variant {max(variants)}"
        )


def voting_config(options: RunOptions, steps: int | None) -> VotingConfig:
    """The voting settings, with k planned for `steps` steps when not given."""
    try:
        parse_model(options.model)
        if options.api not in ("chat", "completions"):
            raise UsageError(f"--api must be chat or completions, got {options.api!r}")
        variants = tuple(options.variants)
        if not variants or len(set(variants)) != len(variants) or min(variants) < 0:
            raise UsageError(f"--variants {variants}: give distinct variant numbers from 0")
        k = _voting_k(options, steps)
        adaptive = None
        if options.stopping == "adaptive":
            assert steps is not None
            prior, weight = adaptive_prior(options)
            adaptive = AdaptiveConfig(
                steps,
                options.target,
                prior,
                prior_steps=weight,
                cap=options.max_samples_per_step or adaptive_cap(k),
            )
        return VotingConfig(
            k=k,
            first_temperature=options.first_temperature,
            temperature=options.temperature,
            max_tokens=options.max_tokens,
            max_samples_per_step=adaptive.cap if adaptive else options.max_samples_per_step,
            on_undecided=options.on_undecided,  # type: ignore[arg-type]
            parallel=options.parallel,
            record=options.record,  # type: ignore[arg-type]
            adaptive=adaptive,
            variants=variants,
        )
    except UsageError:
        raise
    except ValueError as e:
        raise UsageError(str(e)) from None


def run_prices(spec: ModelSpec, session: Session) -> Prices:
    """Dollars per token: the session's, else the price table's; a cost cap needs one."""
    if session.prices != Prices():
        return session.prices
    try:
        price = price_table(session.transport).lookup(spec.name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if price is None:
        if session.budget.max_cost is not None:
            raise UsageError(
                f"--max-cost needs the price of model {spec.name!r}: add it to a price file "
                '(--prices FILE, TOML: [prices."NAME"] input = $/M, output = $/M)'
            )
        return Prices()
    return Prices(price.input_per_m / 1e6, price.output_per_m / 1e6)
