"""What the engine tells the outside world. Consumers (journal, progress, failure
recording) subscribe; the engine knows none of them by name."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unerring.backends.base import Sample, TransportFailure
from unerring.redflags import Flag

__all__ = ["Decision", "Events", "SampleOutcome", "Stats", "TransportFailure"]


class SampleOutcome:
    """A sample and what became of it: the key it voted for, or the flag that discarded it.

    `counted` is False for a valid sample drawn in the deciding round after the decision.
    """

    __slots__ = ("counted", "flag", "index", "key", "sample")

    def __init__(
        self, index: int, sample: Sample, key: Hashable | None, flag: Flag | None, counted: bool
    ) -> None:
        self.index = index  # the sample's index within its step
        self.sample = sample
        self.key = key
        self.flag = flag
        self.counted = counted


class Decision:
    """One decided (or undecided) step. Never changes after the engine emits it.

    `outcomes` holds every sample of the step only when the step is worth recording
    (not unanimous, flagged, or the record level asks for all); otherwise it is empty.
    """

    __slots__ = (
        "answer",
        "completion_tokens",
        "correct",
        "cost",
        "elapsed_s",
        "flags",
        "key",
        "outcomes",
        "prompt_tokens",
        "samples",
        "state_after",
        "state_before",
        "step",
        "surplus",
        "undecided",
        "votes",
        "winner_text",
    )

    def __init__(
        self,
        step: int,
        answer: Any,
        key: Hashable | None,
        votes: dict[Hashable, int],
        samples: int,
        surplus: int,
        flags: dict[Flag, int] | None,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
        elapsed_s: float,
        undecided: bool,
        correct: bool | None,
        state_before: Any,
        state_after: Any,
        outcomes: Sequence[SampleOutcome],
        winner_text: str | None = None,
    ) -> None:
        self.step = step
        self.answer = answer
        self.key = key
        self.votes = votes
        self.samples = samples
        self.surplus = surplus
        self.flags = flags
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.cost = cost
        self.elapsed_s = elapsed_s
        self.undecided = undecided
        self.correct = correct
        self.state_before = state_before
        self.state_after = state_after
        self.outcomes = outcomes
        self.winner_text = winner_text  # the raw response of one sample that voted for it

    @property
    def unanimous(self) -> bool:
        return len(self.votes) == 1 and not self.flags


@dataclass
class Stats:
    """Running totals of a run. Mutated only by the engine; read by any thread."""

    steps_decided: int = 0
    samples: int = 0
    red_flags: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    checked: int = 0
    undecided: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    transport_failures: int = 0
    wall_s: float = 0.0


@dataclass
class Events:
    """Subscribers by event. Callables are kept in tuples: the hot path just iterates."""

    decision: tuple[Any, ...] = ()
    transport_failure: tuple[Any, ...] = ()

    def subscribe(self, observer: object) -> None:
        for name in ("decision", "transport_failure"):
            fn = getattr(observer, f"on_{name}", None)
            if fn is not None:
                setattr(self, name, (*getattr(self, name), fn))
