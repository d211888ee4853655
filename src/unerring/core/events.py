"""What the scheduler tells the outside world, and the one type of a run's totals.

Consumers (journal, progress, failure recording, telemetry) subscribe; the scheduler knows
none of them by name.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from unerring.core.flags import Flag
from unerring.core.samples import Sample, TransportFailure

__all__ = [
    "Decision",
    "Discarded",
    "Events",
    "ItemEnd",
    "ItemStart",
    "NodesAdded",
    "SampleOutcome",
    "TransportFailure",
]


class SampleOutcome:
    """A sample and what became of it: the key it voted for, or the flag that discarded it.

    `counted` is False for a valid sample drawn in the deciding round after the decision.
    `variant` is the prompt variant it was asked with (None: the run's one prompt).
    """

    __slots__ = ("counted", "flag", "index", "key", "sample", "variant")

    def __init__(
        self,
        index: int,
        sample: Sample,
        key: Hashable | None,
        flag: Flag | None,
        counted: bool,
        variant: int | None = None,
    ) -> None:
        self.index = index  # the sample's index within its step
        self.sample = sample
        self.key = key
        self.flag = flag
        self.counted = counted
        self.variant = variant


class Decision:
    """One decided (or undecided) step of one item. Never changes after it is emitted.

    `outcomes` holds every sample of the step only when the step is worth recording
    (not unanimous, flagged, rejected by the checker, or the record level asks for all);
    otherwise it is empty. `state_after` is None when the step moved no state (undecided
    and not taken by plurality).
    """

    __slots__ = (
        "answer",
        "completion_tokens",
        "correct",
        "cost",
        "elapsed_s",
        "flags",
        "item",
        "key",
        "outcomes",
        "parse_error",
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
        *,
        item: int,
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
        winner_text: str | None,
        parse_error: dict[str, Any] | None = None,
    ) -> None:
        self.item = item  # the item's index within its run (0 for a single chain)
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
        # the step's first exception out of `parse` (flags.parse_error_record), if any
        self.parse_error = parse_error

    @property
    def unanimous(self) -> bool:
        return len(self.votes) == 1 and not self.flags

    @property
    def plain(self) -> bool:
        """Unanimous, unflagged, decided and not rejected by the checker: the vast majority,
        which the journal packs into blocks and failure analysis passes over."""
        return (
            self.flags is None
            and len(self.votes) == 1
            and not self.undecided
            and self.correct is not False
            and self.winner_text is not None
        )


@dataclass(frozen=True, slots=True)
class Discarded:
    """Speculative work thrown away: a step opened on an answer that lost its vote.

    Its samples were paid for (tokens, cost) but never voted for anything.
    """

    item: int
    step: int
    samples: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


@dataclass(slots=True)
class ItemStart:
    """An item began deciding in this attempt (a new one, or one resumed where it stopped).

    `process` is the item's `unerring.process.Process` (typed loosely: core sits below the
    process layer): subscribers keep it while the item runs (the journal writer calls its
    `dump_state` and `features`). Not frozen, as ItemEnd: one is made for every item.
    """

    item: int
    item_id: str
    process: Any


@dataclass(slots=True)
class ItemEnd:
    """An item stopped deciding: completed, stopped (resumable) or failed. Never changed
    once emitted (not frozen, as Decision is not: a graph's source fills in a node's output
    before it is, and a frozen dataclass's fields cost four times as much to set)."""

    item: int
    status: str
    next_step: int
    state: Any
    reason: str = ""
    item_id: str = ""
    output: str | None = None  # a graph node's output (JSON text), once decided
    # the nodes a graph node's end expanded into: journaled in the commit of the end
    children: NodesAdded | None = None


@dataclass(frozen=True, slots=True)
class NodesAdded:
    """Nodes joined a graph run (its first nodes, or a decided node's children): each as
    (index, id, parent index or None, kind, input JSON, deps JSON, depth)."""

    rows: tuple[tuple[int, str, int | None, str, str, str, int], ...]


class Events:
    """Subscribers by event. Callables are kept in tuples: the hot path just iterates."""

    NAMES = (
        "item_start",
        "decision",
        "transport_failure",
        "discarded",
        "item_end",
        "nodes_added",
        "group",
    )

    def __init__(self) -> None:
        self.item_start: tuple[Any, ...] = ()
        self.decision: tuple[Any, ...] = ()
        self.transport_failure: tuple[Any, ...] = ()
        self.discarded: tuple[Any, ...] = ()
        self.item_end: tuple[Any, ...] = ()
        self.nodes_added: tuple[Any, ...] = ()
        # a remote worker's events, gathered into a commit group (journal/group.py) where
        # they were made: a remote executor emits these instead of the events one by one
        self.group: tuple[Any, ...] = ()

    def subscribe(self, observer: object) -> None:
        for name in self.NAMES:
            fn = getattr(observer, f"on_{name}", None)
            if fn is not None:
                setattr(self, name, (*getattr(self, name), fn))
