"""How steps are voted on (`VotingConfig`, `variant_of`) and what a run may spend (`Budget`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from unerring import defaults
from unerring.core.totals import Totals
from unerring.limits import (
    MAX_K,
    MAX_PARALLEL,
    MAX_SAMPLES_PER_STEP,
    check_at_most,
    check_cap,
)
from unerring.voting.adaptive import AdaptiveConfig
from unerring.voting.weighted import Router

RecordLevel = Literal["decisions", "contested", "samples"]
UndecidedPolicy = Literal["stop", "plurality"]


@dataclass(frozen=True, slots=True)
class VotingConfig:
    """How each step is voted on."""

    k: int
    first_temperature: float = defaults.FIRST_TEMPERATURE
    temperature: float = defaults.TEMPERATURE
    max_tokens: int = defaults.MAX_TOKENS  # a longer response is red-flagged
    max_samples_per_step: int | None = None  # default SAMPLES_PER_K x k
    on_undecided: UndecidedPolicy = defaults.ON_UNDECIDED
    parallel: int = (
        defaults.PARALLEL
    )  # samples per round after the first (at least the fewest needed)
    record: RecordLevel = defaults.RECORD
    # None: first-to-ahead-by-k; else the adaptive rule (k then only sets the default cap)
    adaptive: AdaptiveConfig | None = None
    # the prompt variants spread over each step's samples (see variant_of); (0,): one prompt
    variants: tuple[int, ...] = defaults.VARIANTS
    # a vote that knows its voters (`voting.weighted`): samples weighed and routed by source
    weighing: Router | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        check_at_most("k", self.k, MAX_K)
        check_at_most("parallel", self.parallel, MAX_PARALLEL)
        check_at_most("max_samples_per_step", self.max_samples_per_step, MAX_SAMPLES_PER_STEP)
        if self.max_tokens < 1:
            raise ValueError(f"the token limit must be at least 1, got {self.max_tokens}")
        if self.parallel < 1:
            raise ValueError(f"parallel must be at least 1, got {self.parallel}")
        if not self.variants or min(self.variants) < 0:
            raise ValueError(f"prompt variants must be numbers from 0, got {self.variants}")
        if self.max_samples_per_step is not None and self.max_samples_per_step < self.k:
            raise ValueError(
                f"max samples per step ({self.max_samples_per_step}) must be at least k"
            )

    @property
    def cap(self) -> int:
        return self.max_samples_per_step or defaults.SAMPLES_PER_K * self.k

    @property
    def varied(self) -> bool:
        """Are a step's samples asked with several forms of its prompt?"""
        return self.variants != (0,)


def variant_of(step: int, index: int, variants: tuple[int, ...]) -> int:
    """The prompt variant of a step's sample: round robin, starting one further each step."""
    return variants[(step + index) % len(variants)]


@dataclass(frozen=True, slots=True)
class Budget:
    """Caps for the whole run (across resumes and over all its items). None: no cap."""

    max_samples: int | None = None
    max_cost: float | None = None
    max_tokens_total: int | None = None

    def __post_init__(self) -> None:
        # a cap at or below nothing stops a run before its first step; NaN and inf are
        # no caps at all: each is a mistake, not a wish
        check_cap("max_samples", self.max_samples)
        check_cap("max_cost", self.max_cost)
        check_cap("max_tokens_total", self.max_tokens_total)

    def reached(self, totals: Totals) -> str | None:
        """Which cap has been reached, or None."""
        if self.max_samples is not None and totals.samples >= self.max_samples:
            return f"sample budget reached ({totals.samples} of {self.max_samples})"
        if self.max_cost is not None and totals.cost >= self.max_cost:
            return f"cost budget reached (${totals.cost:.4f} of ${self.max_cost:.4f})"
        tokens = totals.prompt_tokens + totals.completion_tokens
        if self.max_tokens_total is not None and tokens >= self.max_tokens_total:
            return f"token budget reached ({tokens} of {self.max_tokens_total})"
        return None

    @property
    def active(self) -> bool:
        return not (
            self.max_samples is None and self.max_cost is None and self.max_tokens_total is None
        )
