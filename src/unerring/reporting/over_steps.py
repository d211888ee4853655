"""The run's bins merged for drawing over the steps.

The aggregates keep up to MAX_BINS bins (a chain below that many steps has bins of one
step), which is too fine to draw: a bin of one step has its maximum equal to its mean,
and two thousand points are noise. Drawn, bins are merged into at most MAX_GROUPS groups
of consecutive steps with at least MIN_GROUP_STEPS steps each; a short chain (at most
PER_STEP_MAX steps, a bin a step) is drawn one point per step instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unerring.reporting.aggregate import Bins, Floats, Ints

MAX_GROUPS = 100
MIN_GROUP_STEPS = 5
PER_STEP_MAX = 100


@dataclass(frozen=True, slots=True)
class StepGroups:
    """Groups of consecutive step positions (a batch's: within the items, every item's
    steps at a position summed) and their sums; empty bins belong to no group."""

    first: Ints  # first step position of each group
    last: Ints  # last step position of each group
    steps: Ints  # decided steps in each group
    samples: Ints
    samples_max: Ints
    contested: Ints
    against: Ints
    flags: dict[str, Ints]

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def mid(self) -> Floats:
        return np.asarray((self.first + self.last) / 2.0, np.float64)

    @property
    def edges(self) -> Floats:
        """Where each group starts, then where the last ends (for steps drawn as stairs)."""
        return np.append(self.first, self.last[-1] + 1).astype(np.float64) - 0.5

    @property
    def per_step(self) -> bool:
        """Every group is one step: nothing to take a maximum over."""
        return bool(np.all(self.steps == 1))

    def per(self, values: Ints) -> Floats:
        """A sum per group as a mean per decided step."""
        return np.asarray(values / np.maximum(self.steps, 1), np.float64)

    def words(self, many: bool) -> str:
        """How wide the groups are, in words."""
        if self.per_step:
            return "one point per step"
        positions = self.last - self.first + 1
        if not many:
            return f"bins of {_about(self.steps)} steps"
        return (
            f"bins of {_about(positions, 'step position')} within the items "
            f"({_about(self.steps)} steps of all items each)"
        )


def _about(values: Ints, unit: str = "") -> str:
    """'5', 'about 41' (or '1 step position', 'about 3 step positions')."""
    lo, hi = int(values.min()), int(values.max())
    number = f"{lo:,}" if lo == hi else f"{float(values.mean()):,.0f}"
    text = number if lo == hi else f"about {number}"
    if not unit:
        return text
    return f"{text} {unit}" + ("" if number == "1" else "s")


def over_steps(b: Bins) -> StepGroups | None:
    """The bins merged for drawing, or None when fewer than two step positions hold a
    decision (nothing to draw over the steps: a graph of one-step nodes, a run just begun)."""
    full = np.flatnonzero(b.steps > 0)
    if len(full) < 2:
        return None
    steps = b.steps[full]
    right = np.append(b.edges[1:], b.end)[full] - 1
    if steps.max() == 1 and len(full) <= PER_STEP_MAX:
        firsts = np.arange(len(full))
    else:
        total = int(steps.sum())
        count = max(2, min(MAX_GROUPS, len(full), total // MIN_GROUP_STEPS))
        # cut where the running count of steps passes each equal share
        cum = np.cumsum(steps)
        cuts = np.searchsorted(cum, np.arange(1, count) * total / count, side="left") + 1
        firsts = np.unique(np.concatenate([[0], cuts[cuts < len(full)]]))
    lasts = np.append(firsts[1:], len(full)) - 1

    def summed(values: Ints) -> Ints:
        return np.asarray(np.add.reduceat(values[full], firsts), np.int64)

    return StepGroups(
        first=b.edges[full][firsts],
        last=right[lasts],
        steps=summed(b.steps),
        samples=summed(b.samples),
        samples_max=np.asarray(np.maximum.reduceat(b.samples_max[full], firsts), np.int64),
        contested=summed(b.contested),
        against=summed(b.against),
        flags={kind: summed(v) for kind, v in sorted(b.flags.items())},
    )
