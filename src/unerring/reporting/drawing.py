"""What every plot of the report draws with: colours, counted words, log or linear axes,
time units and the resume marks (matplotlib; no model text is ever drawn)."""

from __future__ import annotations

import math
from typing import Any

import numpy.typing as npt
from matplotlib.axes import Axes

from unerring.reporting.aggregate import RunAggregate

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
FEW_POINTS = 40  # a line of at most this many points gets a marker on each
NOTHING_YET = "no decision committed yet"


def tex_safe(text: str) -> str:
    """A name as a label: a `$` is a dollar sign, not the start of mathtext."""
    return text.replace("$", r"\$")


def plural(count: int, word: str) -> str:
    """'1 step', '2 steps', '1,024 items'."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def log_floor(smallest: float) -> float:
    """A log axis's floor below the smallest bar, so that it shows as a bar (a log axis
    left to itself may start at the smallest value and draw it as a sliver)."""
    return float(0.5 * 10.0 ** math.floor(math.log10(smallest)))


def log_if_wide(ax: Axes, counts: npt.NDArray[Any], axis: str = "y") -> None:
    """A log scale, floored below the smallest, when the counts span more than two orders
    of magnitude; else a linear one from zero."""
    positive = counts[counts > 0]
    wide = len(positive) and positive.max() > 100 * positive.min()
    if axis == "y":
        if wide:
            ax.set_yscale("log")
            ax.set_ylim(bottom=log_floor(float(positive.min())))
        else:
            ax.set_ylim(bottom=0)
    elif wide:
        ax.set_xscale("log")
        ax.set_xlim(left=log_floor(float(positive.min())))
    else:
        ax.set_xlim(left=0)


def marker_for(points: int) -> str:
    return "o" if points <= FEW_POINTS else ""


def time_unit(seconds: float) -> tuple[float, str]:
    if seconds > 2 * 3600:
        return 3600.0, "hours"
    if seconds > 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def mark_resumes(ax: Axes, agg: RunAggregate, *, on_time: bool, scale: float = 1.0) -> None:
    if agg.many and not on_time:
        return  # a batch's attempt does not start at a step: its items resume where they were
    for a in agg.attempts[1:]:
        x = a.start_s / scale if on_time else a.first_step
        ax.axvline(x, color="#555", linestyle="--", linewidth=0.8)
        ax.annotate(
            f"resume {a.number}",
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color="#555",
            rotation=90,
            va="top",
            ha="right",
        )
