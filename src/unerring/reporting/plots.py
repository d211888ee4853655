"""The report's plots, drawn by matplotlib into PNG images (no script in the page).

Each function takes aggregates (bounded by the number of bins, never one mark per step)
and returns a Plot of panels: a panel with nothing to show (no red flags, one step per
node, items all alike) is left out with a one-line reason instead of drawn empty. No model
text is drawn: only numbers and the taxonomy's names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes

from unerring.reporting.aggregate import Items, RunAggregate
from unerring.reporting.canvas import STYLE, Drawn, Panel, Plot, compose
from unerring.reporting.drawing import COLORS, mark_resumes, plural, tex_safe, time_unit
from unerring.reporting.drawing import log_if_wide as _log_if_wide  # (tests call it here)
from unerring.reporting.progress_plots import commit_line, progress
from unerring.reporting.step_plots import red_flags, samples, tallies, usage

# what the page draws: run_plots, items_plot, failures_plot (commit_line: tests read it)
__all__ = ["commit_line", "failures_plot", "items_plot", "run_plots"]


# -- items --------------------------------------------------------------------------------


def _histogram(
    title: str, values: npt.NDArray[Any], what: str, alike: Callable[[str, Any], str]
) -> Panel:
    """A histogram of one number per item (integer bins when the values are few), or,
    when every item has the same value, a sentence instead: `alike(who, value)`."""
    if not len(values):
        return Panel.out(title, "no items")
    lo, hi = values.min(), values.max()
    if lo == hi:
        n = len(values)
        who = "the one item" if n == 1 else f"all {n:,} items"
        return Panel.out(title, alike(who, lo))

    def draw(ax: Axes, bins: int = 40) -> Drawn:
        whole = values.dtype.kind in "iu"
        if whole and hi - lo < bins:
            edges = np.arange(float(lo) - 0.5, float(hi) + 1.5)
        else:
            edges = np.linspace(float(lo), float(hi), bins + 1)
        counts, edges = np.histogram(values, bins=edges)
        stairs = ax.stairs(counts, edges, fill=True, color=COLORS[0])
        _log_if_wide(ax, counts)
        ax.set_xlabel(what)
        ax.set_ylabel("items")
        return [("items", stairs)]

    return Panel(title, draw)


def items_distribution(agg: RunAggregate, items: Items) -> Plot:
    """One number per item, three ways: steps decided, samples, and cost (or errors)."""
    panels = [
        _histogram(
            "Steps decided per item",
            items.steps,
            "steps decided",
            lambda who, v: f"{who} decided {plural(int(v), 'step')}",
        ),
        _histogram(
            "Samples per item",
            items.samples,
            "samples",
            lambda who, v: f"{who} drew {plural(int(v), 'sample')}",
        ),
    ]
    if items.cost.any():
        panels.append(
            _histogram(
                "Cost per item",
                items.cost,
                tex_safe("cost ($)"),
                lambda who, v: f"{who} cost ${v:,.4f}",
            )
        )
        third = "cost"
    else:
        panels.append(
            _histogram(
                "Errors per item",
                items.errors,
                "decisions the checker rejected",
                lambda who, v: f"{who} had {plural(int(v), 'decision')} the checker rejected",
            )
        )
        third = "errors (the model's price is unknown: no cost)"
    n = max(items.count, 1)
    caption = (
        f"{plural(items.count, 'item')}: on average {items.steps.sum() / n:,.1f} steps, "
        f"{items.samples.sum() / n:,.1f} samples"
        + (f", ${items.cost.sum() / n:,.4f}" if items.cost.any() else "")
        + f" each; {int((items.errors > 0).sum()):,} item(s) with a wrong decision. "
        f"Histograms of steps, samples and {third} per item, from the items' committed totals."
    )
    return compose("items", "Items: the distribution over a batch", caption, panels)


# -- transport and failures ---------------------------------------------------------------


def transport(agg: RunAggregate, incidents: Sequence[tuple[float, float]]) -> Plot:
    total = sum(len(v) for v in agg.transport.values())
    kinds = ", ".join(f"{k} {len(v):,}" for k, v in sorted(agg.transport.items())) or "none"
    caption = (
        f"{plural(total, 'failed attempt')} ({kinds}); "
        f"{plural(len(incidents), 'incident')} shaded: bursts of failures over many steps "
        "(infrastructure, not content). A failed attempt never becomes a sample."
    )
    title = "Transport failures and incidents over time"
    if not total:
        panel = Panel.out(title, "no transport failures in this run")
        return compose("transport", "Transport failures and incidents", caption, [panel])
    end = agg.end_s
    scale, unit = time_unit(end)

    def draw(ax: Axes) -> Drawn:
        drawn: Drawn = []
        edges = np.linspace(0.0, max(end, 1e-9) / scale, 201)
        bottom = np.zeros(200, np.float64)
        for i, (kind, times) in enumerate(sorted(agg.transport.items())):
            counts, _ = np.histogram(np.array(times) / scale, bins=edges)
            stairs = ax.stairs(
                bottom + counts, edges, baseline=bottom.copy(), fill=True,
                color=COLORS[i % len(COLORS)], label=tex_safe(kind),
            )  # fmt: skip
            drawn.append((kind, stairs))
            bottom = bottom + counts
        for i, (start, stop) in enumerate(incidents):
            ax.axvspan(
                start / scale,
                max(stop, start + end / 400) / scale,
                color=COLORS[1],
                alpha=0.15,
                lw=0,
                label="incident" if i == 0 else None,
            )
        ax.set_ylabel("failed attempts per bin")
        ax.set_xlabel(f"wall time ({unit} from the start)")
        ax.legend(loc="upper right", fontsize=7)
        mark_resumes(ax, agg, on_time=True, scale=scale)
        return drawn

    return compose("transport", "Transport failures and incidents", caption, [Panel(title, draw)])


def _hbars(counts: Sequence[tuple[str, int]], color: str) -> Any:
    def draw(ax: Axes) -> Drawn:
        names = [tex_safe(n) for n, _ in counts][::-1]
        values = [c for _, c in counts][::-1]
        bars = ax.barh(names, values, color=color)
        # linear from zero; log (floored below the smallest) only when they span >100x
        _log_if_wide(ax, np.array(values), axis="x")
        ax.set_xlabel("failure records")
        ax.tick_params(axis="y", labelsize=7)
        return [("failure records", bars)]

    return draw


def failure_categories(by_category: Mapping[str, int], patterns: Sequence[tuple[str, int]]) -> Plot:
    caption = (
        "Categories of the built-in taxonomy (see the table below for their names in "
        "AgentErrorTaxonomy, TRAIL and MAST)."
    )
    left_title, right_title = "Failures by category (taxonomy)", "Largest failure patterns"
    if not by_category:
        panels = [
            Panel.out(left_title, "no failure records"),
            Panel.out(right_title, "no patterns"),
        ]
    else:
        left = Panel(left_title, _hbars(list(by_category.items()), COLORS[1]))
        if patterns:
            right = Panel(right_title, _hbars(list(patterns)[:12], COLORS[3]))
        else:
            right = Panel.out(right_title, "no pattern: too few failures alike to group")
        panels = [left, right]
    return compose("failures", "Failure patterns", caption, panels)


def run_plots(agg: RunAggregate, incidents: Sequence[tuple[float, float]]) -> list[Plot]:
    """Every plot of one run, in the page's order."""
    with mpl.rc_context(STYLE):
        return [
            progress(agg),
            samples(agg),
            tallies(agg),
            red_flags(agg),
            usage(agg),
            transport(agg, incidents),
        ]


def items_plot(agg: RunAggregate, items: Items) -> Plot:
    with mpl.rc_context(STYLE):
        return items_distribution(agg, items)


def failures_plot(by_category: Mapping[str, int], patterns: Sequence[tuple[str, int]]) -> Plot:
    with mpl.rc_context(STYLE):
        return failure_categories(by_category, patterns)
