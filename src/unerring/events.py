"""What the scheduler tells the outside world, and the one type of a run's totals.

Consumers (journal, progress, failure recording, telemetry) subscribe; the scheduler knows
none of them by name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from unerring.backends.base import Sample, TransportFailure
from unerring.redflags import Flag

__all__ = [
    "Decision",
    "Discarded",
    "Events",
    "ItemEnd",
    "NodesAdded",
    "SampleOutcome",
    "Totals",
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


class Totals:
    """A run's (or an item's) running totals: the one shape the scheduler, the journal,
    the summary and the progress display share."""

    __slots__ = (
        "checked",
        "completion_tokens",
        "cost",
        "errors",
        "flags",
        "prompt_tokens",
        "red_flags",
        "samples",
        "speculative_samples",
        "steps_decided",
        "transport_failures",
        "undecided",
        "wall_s",
    )

    def __init__(self, d: dict[str, Any] | None = None) -> None:
        if not d:  # (the journal writer makes one for every new item or node)
            self.steps_decided = self.samples = self.red_flags = self.errors = 0
            self.checked = self.undecided = self.prompt_tokens = self.completion_tokens = 0
            self.transport_failures = self.speculative_samples = 0
            self.flags: dict[str, int] = {}
            self.cost = self.wall_s = 0.0
            return
        self.steps_decided = int(d.get("steps_decided", 0))
        self.samples = int(d.get("samples", 0))
        self.red_flags = int(d.get("red_flags", 0))
        self.flags = dict(d.get("flags", {}))
        self.errors = int(d.get("errors", 0))
        self.checked = int(d.get("checked", 0))
        self.undecided = int(d.get("undecided", 0))
        self.prompt_tokens = int(d.get("prompt_tokens", 0))
        self.completion_tokens = int(d.get("completion_tokens", 0))
        self.cost = float(d.get("cost", 0.0))
        self.transport_failures = int(d.get("transport_failures", 0))
        self.speculative_samples = int(d.get("speculative_samples", 0))
        self.wall_s = float(d.get("wall_s", 0.0))

    def add(self, d: Decision) -> None:
        """Count one decision (or one undecided step)."""
        self.samples += d.samples
        self.prompt_tokens += d.prompt_tokens
        self.completion_tokens += d.completion_tokens
        self.cost += d.cost
        if d.flags:
            for f, c in d.flags.items():
                self.red_flags += c
                self.flags[f.value] = self.flags.get(f.value, 0) + c
        if d.undecided:
            self.undecided += 1
        if d.state_after is not None:
            self.steps_decided += 1
            if d.correct is not None:
                self.checked += 1
                if not d.correct:
                    self.errors += 1

    def add_discarded(self, x: Discarded) -> None:
        """Speculative samples are paid for, never voted: tokens and cost, not samples."""
        self.speculative_samples += x.samples
        self.prompt_tokens += x.prompt_tokens
        self.completion_tokens += x.completion_tokens
        self.cost += x.cost

    def merge(self, other: Totals) -> None:
        """Add another set of totals (an item's into a run's; not the wall clock). Spelt
        out: the driver of a remote run merges a worker's noteworthy decisions one by one."""
        self.steps_decided += other.steps_decided
        self.samples += other.samples
        self.red_flags += other.red_flags
        if other.flags:
            flags = self.flags
            for f, c in other.flags.items():
                flags[f] = flags.get(f, 0) + c
        self.errors += other.errors
        self.checked += other.checked
        self.undecided += other.undecided
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.transport_failures += other.transport_failures
        self.speculative_samples += other.speculative_samples

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def to_json(self) -> str:
        """`as_dict` as the JSON text json.dumps makes of it, spelt out: the journal
        writes one for every item a commit touches (a graph: every node)."""
        cost, wall = self.cost, self.wall_s
        if not (math.isfinite(cost) and math.isfinite(wall)):
            return json.dumps(self.as_dict())  # (never, for a run's totals)
        flags = json.dumps(self.flags) if self.flags else "{}"
        return (
            f'{{"checked": {self.checked}, "completion_tokens": {self.completion_tokens}, '
            f'"cost": {cost!r}, "errors": {self.errors}, "flags": {flags}, '
            f'"prompt_tokens": {self.prompt_tokens}, "red_flags": {self.red_flags}, '
            f'"samples": {self.samples}, "speculative_samples": {self.speculative_samples}, '
            f'"steps_decided": {self.steps_decided}, '
            f'"transport_failures": {self.transport_failures}, '
            f'"undecided": {self.undecided}, "wall_s": {wall!r}}}'
        )

    def item_json(self) -> str:
        """The counts that are not zero, as JSON (what an item's row holds: a graph writes
        one for every node, and an items row a third the size is cheaper to write and to
        move; every reader takes a missing count as zero, as `Totals(d)` does)."""
        if not (math.isfinite(self.cost) and math.isfinite(self.wall_s)):
            return json.dumps({k: v for k, v in self.as_dict().items() if v})
        parts = []
        for name, value in (
            ("steps_decided", self.steps_decided),
            ("samples", self.samples),
            ("prompt_tokens", self.prompt_tokens),
            ("completion_tokens", self.completion_tokens),
            ("cost", self.cost),
            ("checked", self.checked),
            ("errors", self.errors),
            ("red_flags", self.red_flags),
            ("undecided", self.undecided),
            ("transport_failures", self.transport_failures),
            ("speculative_samples", self.speculative_samples),
            ("wall_s", self.wall_s),
        ):
            if value:
                parts.append(f'"{name}": {value!r}')
        if self.flags:
            parts.append(f'"flags": {json.dumps(self.flags)}')
        return "{" + ", ".join(parts) + "}"

    def copy(self) -> Totals:
        c = Totals.__new__(Totals)
        c.steps_decided = self.steps_decided
        c.samples = self.samples
        c.red_flags = self.red_flags
        c.flags = dict(self.flags)
        c.errors = self.errors
        c.checked = self.checked
        c.undecided = self.undecided
        c.prompt_tokens = self.prompt_tokens
        c.completion_tokens = self.completion_tokens
        c.cost = self.cost
        c.transport_failures = self.transport_failures
        c.speculative_samples = self.speculative_samples
        c.wall_s = self.wall_s
        return c


class Events:
    """Subscribers by event. Callables are kept in tuples: the hot path just iterates."""

    NAMES = ("decision", "transport_failure", "discarded", "item_end", "nodes_added", "group")

    def __init__(self) -> None:
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
