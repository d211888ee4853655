"""What a step asks a model for and what comes back: requests, samples, the simulator's
oracle hook, and transport failure records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from unerring import defaults


class Oracle(Protocol):
    """What the simulated model may know about a step. Real backends never look at it."""

    def correct(self) -> str:
        """The correct response text for this step."""
        ...

    def wrong(self, variant: int) -> str:
        """Wrong response number `variant` (0-based; wraps around the process's supply)."""
        ...

    def features(self) -> Mapping[str, int | str | bool]:
        """The step's features (planted failure modes select steps by them)."""
        ...

    def notes(self) -> tuple[str, ...]:
        """The mistake notes put in this step's prompt (a planted mode may heed one)."""
        ...


@dataclass(slots=True)  # not frozen: one is made per voting round, and frozen init is slow
class SampleRequest:
    """Ask for `n` samples of one step; sample indices first_index .. first_index + n - 1.

    Sample index 0 of a step is drawn at `first_temperature`, every other at `temperature`
    (decorrelation: the paper's first vote at 0, later votes at 0.1). `variant`: which
    form of the step's prompt `prompt` is (0 unless the run uses prompt variants; the
    simulated model gives each variant hard steps of its own). `member`: which member of
    an ensemble answers (-1: the ensemble's own spreading by index; a weighted vote routes
    each sample to the source it trusts). Treat as immutable.
    """

    prompt: str
    step: int
    first_index: int
    n: int
    max_tokens: int
    first_temperature: float = defaults.FIRST_TEMPERATURE
    temperature: float = defaults.TEMPERATURE
    system: str | None = None
    oracle: Oracle | None = None
    item: int = 0  # the item of a batch the step belongs to (0 for a single chain)
    variant: int = 0
    member: int = -1


class Sample:
    """One model response. `label` is ground truth the simulator knows; None elsewhere.

    A sample's index within its step is its position in the list a backend returns (they
    come in index order), not a field: so a backend may hand back one object for several
    identical responses (the simulator does), and the engine counts such a run at once.
    Never changed after it is made.
    """

    __slots__ = ("completion_tokens", "label", "latency_s", "model", "prompt_tokens", "text")

    def __init__(
        self,
        text: str,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        latency_s: float = 0.0,
        label: str | None = None,
        model: str | None = None,
    ) -> None:
        self.text = text
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.latency_s = latency_s
        self.label = label
        self.model = model  # which model of an ensemble answered (None: the run's one model)

    def __repr__(self) -> str:
        return f"Sample(text={self.text[:40]!r}..., label={self.label!r})"


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """One failed attempt to fetch samples. `retried`: whether another attempt followed.

    (item, step, first_index) name the request it failed: with many requests in flight
    (one per sample, steps of many items at once) that is the only way to tell them apart.
    """

    kind: str
    step: int
    attempt: int
    time: float
    retried: bool
    message: str = ""
    item: int = 0
    first_index: int = 0  # the index of the request's first sample within its step
