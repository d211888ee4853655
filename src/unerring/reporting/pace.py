"""A run's pace over time: spans of wall time with the steps decided in each, merged to a
few hundred for drawing (never across the gap between two attempts), and its stalls.

A stall is judged against the run's own pace, with an absolute floor: a span that went
under a tenth of the median steps per second and lost at least a second to it. A simulated
run deciding a step every few microseconds has hiccups of a few milliseconds (a commit, a
collection) that are a tenth of its pace but cost nobody anything; a model that stops
answering for a minute is a stall at any pace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from unerring.reporting.aggregate import Floats, Ints

MAX_SPANS = 200  # spans drawn over time
STALL_RATIO = 10.0  # under a tenth of the median pace
STALL_FLOOR_S = 1.0  # and at least this much time lost to it


@dataclass(frozen=True, slots=True)
class Spans:
    """Consecutive spans of wall time (seconds from the run's start), each within one
    attempt, and the steps decided in each."""

    start: Floats
    end: Floats
    steps: Ints
    attempt: Ints  # index of the attempt each span belongs to

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def seconds(self) -> Floats:
        return np.asarray(self.end - self.start, np.float64)

    @property
    def rate(self) -> Floats:
        """Steps per second in each span (0 for a span of no time)."""
        out = np.zeros(len(self), np.float64)
        np.divide(self.steps, self.seconds, out=out, where=self.seconds > 0)
        return out


def merged(spans: Spans, max_spans: int = MAX_SPANS) -> Spans:
    """Spans with steps, merged by runs of consecutive ones of the same attempt into at
    most about `max_spans` (one more per attempt at most)."""
    keep = spans.steps > 0
    start, end = spans.start[keep], spans.end[keep]
    steps, attempt = spans.steps[keep], spans.attempt[keep]
    if len(steps) == 0:
        return Spans(start, end, steps, attempt)
    width = max(1, -(-len(steps) // max_spans))
    # a new group where the attempt changes, and every `width` spans within an attempt
    cuts = np.flatnonzero(np.diff(attempt)) + 1
    firsts = np.concatenate(
        [np.arange(lo, hi, width) for lo, hi in zip([0, *cuts], [*cuts, len(steps)], strict=True)]
    )
    lasts = np.append(firsts[1:], len(steps)) - 1
    return Spans(
        start=start[firsts],
        end=end[lasts],
        steps=np.add.reduceat(steps, firsts),
        attempt=attempt[firsts],
    )


def stalls(spans: Spans) -> npt.NDArray[np.bool_]:
    """Which spans are stalls: under 1/STALL_RATIO of the median pace, and STALL_FLOOR_S
    or more lost to it (against the time the median pace would have taken)."""
    rate = spans.rate
    paced = (spans.steps > 0) & (spans.seconds > 0)
    if not paced.any():
        return np.zeros(len(spans), np.bool_)
    median = float(np.median(rate[paced]))
    lost = spans.seconds - spans.steps / median
    return np.asarray(paced & (rate < median / STALL_RATIO) & (lost >= STALL_FLOOR_S), np.bool_)
