"""A run's running totals (samples, tokens, cost, steps, failures): one type shared by the
scheduler, the executors and the journal."""

from __future__ import annotations

import json
import math
from typing import Any

from unerring.core.events import Decision, Discarded


class Totals:
    """A run's (or an item's) running totals: the one shape the scheduler, the journal,
    the summary and the progress display share."""

    __slots__ = (
        "checked",
        "completion_tokens",
        "cost",
        "errors",
        "flags",
        "parse_error",
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
            # the first exception out of `parse` (flags.parse_error_record), if any
            self.parse_error: dict[str, Any] | None = None
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
        pe = d.get("parse_error")
        self.parse_error = dict(pe) if isinstance(pe, dict) else None

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
            if d.parse_error is not None and self.parse_error is None:
                self.parse_error = d.parse_error
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
            if self.parse_error is None:
                self.parse_error = other.parse_error
        self.errors += other.errors
        self.checked += other.checked
        self.undecided += other.undecided
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.transport_failures += other.transport_failures
        self.speculative_samples += other.speculative_samples

    def minus(self, earlier: Totals) -> Totals:
        """What these totals hold beyond an earlier copy of them, not the wall clock (what a
        remote worker hands over at each exchange, what a commit adds to a run)."""
        out = Totals()
        for name in _COUNTS:
            setattr(out, name, getattr(self, name) - getattr(earlier, name))
        before = earlier.flags
        out.flags = {f: n for f, c in self.flags.items() if (n := c - before.get(f, 0))}
        if earlier.parse_error is None:
            out.parse_error = self.parse_error
        return out

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def to_json(self) -> str:
        """`as_dict` as the JSON text json.dumps makes of it, spelt out: the journal
        writes one for every item a commit touches (a graph: every node)."""
        cost, wall = self.cost, self.wall_s
        if not (math.isfinite(cost) and math.isfinite(wall)):
            return json.dumps(self.as_dict())  # (never, for a run's totals)
        flags = json.dumps(self.flags) if self.flags else "{}"
        pe = "null" if self.parse_error is None else json.dumps(self.parse_error)
        return (
            f'{{"checked": {self.checked}, "completion_tokens": {self.completion_tokens}, '
            f'"cost": {cost!r}, "errors": {self.errors}, "flags": {flags}, "parse_error": {pe}, '
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
        if self.parse_error is not None:
            parts.append(f'"parse_error": {json.dumps(self.parse_error)}')
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
        c.parse_error = self.parse_error  # (never changed once set: shared)
        return c


# the counts `minus` subtracts one by one (flags are a dict; the wall clock is not a count)
_COUNTS = tuple(name for name in Totals.__slots__ if name not in ("flags", "parse_error", "wall_s"))
