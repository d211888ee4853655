"""The report's plots, drawn by matplotlib into PNG images (no script in the page).

Each function takes aggregates (bounded by the number of bins, never one mark per step)
and returns a Plot. No model text is drawn: only numbers and the taxonomy's names.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from unerring.reporting.aggregate import Floats, Items, RunAggregate, Timeline

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 3.4, 90
STYLE: dict[Any, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@dataclass(frozen=True, slots=True)
class Plot:
    key: str  # stable name (the page marks each figure with it)
    title: str
    caption: str
    png: bytes


def _figure(cols: int = 2, height: float = HEIGHT_IN) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, cols, squeeze=False)[0]
    return fig, list(axes)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _none(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _label(text: str) -> str:
    """A name as a label: a `$` is a dollar sign, not the start of mathtext."""
    return text.replace("$", r"\$")


def _log_if_wide(ax: Axes, counts: npt.NDArray[np.int64]) -> None:
    """A log scale when the counts span more than two orders of magnitude."""
    positive = counts[counts > 0]
    if len(positive) and positive.max() > 100 * positive.min():
        ax.set_yscale("log")


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds > 2 * 3600:
        return 3600.0, "hours"
    if seconds > 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _resumes(ax: Axes, agg: RunAggregate, *, on_time: bool, scale: float = 1.0) -> None:
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


def _step_axis(agg: RunAggregate) -> str:
    return "step (within its item; all items summed)" if agg.many else "step"


def _per_step(values: Floats, steps: Floats) -> Floats:
    out = np.zeros(len(values), np.float64)
    np.divide(values, steps, out=out, where=steps > 0)
    return out


def _idle(ax: Axes, agg: RunAggregate, scale: float) -> None:
    """Shade the time between attempts (the run was not running)."""
    prev_end = None
    for a in agg.attempts:
        if prev_end is not None and a.start_s > prev_end:
            ax.axvspan(prev_end / scale, a.start_s / scale, color="#bbb", alpha=0.4, lw=0)
        prev_end = a.end_s


def _throughput(ax: Axes, t: Floats, rate: Floats, unit: str) -> None:
    """Steps per second over time, stalls (under a tenth of the median) marked."""
    ax.plot(t, rate, color=COLORS[0], linewidth=0.8, drawstyle="steps-post")
    median = float(np.median(rate)) if len(rate) else 0.0
    slow = rate < median / 10.0
    if slow.any():
        ax.scatter(t[slow], rate[slow], s=10, color=COLORS[1], zorder=3, label="stall")
        ax.legend(loc="lower left", fontsize=7)
    spread = len(rate) and rate.max() > 20 * max(rate.min(), 1e-9)
    ax.set_yscale("log" if spread else "linear")
    ax.set_xlabel(f"wall time ({unit} from the start)")
    ax.set_ylabel("steps per second")
    ax.set_title("Throughput (stalls: under a tenth of the median)")


def progress(agg: RunAggregate) -> Plot:
    if agg.many:
        return items_progress(agg)
    b = agg.bins
    assert b.t_end is not None  # a chain's clock
    fig, (left, right) = _figure()
    has = b.steps > 0
    if not has.any():
        _none(left, "no decision committed yet")
        _none(right, "no decision committed yet")
    else:
        scale, unit = _time_unit(float(b.t_end[has].max()))
        t = b.t_end[has] / scale
        done = np.cumsum(b.steps)
        # each attempt's line starts where it started: at its start, with the steps before
        starts = [(a.start_s, int(done[b.edges < a.first_step][-1:].sum())) for a in agg.attempts]
        x = np.concatenate([[s for s, _ in starts], b.t_end[has]]) / scale
        y = np.concatenate([[n for _, n in starts], done[has]])
        order = np.argsort(x, kind="stable")
        left.plot(x[order], y[order], color=COLORS[0], linewidth=1.2)
        left.set_xlabel(f"wall time ({unit} from the start)")
        left.set_ylabel("steps decided")
        left.set_title("Decided steps over time")
        _idle(left, agg, scale)
        _resumes(left, agg, on_time=True, scale=scale)
        rate = _per_step(b.steps.astype(np.float64), b.elapsed)[has]
        _throughput(right, t, rate, unit)
        _resumes(right, agg, on_time=True, scale=scale)
    stopped = sum(1 for a in agg.attempts[1:])
    caption = (
        f"{agg.decided:,} steps decided in {len(agg.attempts)} attempt(s); "
        f"{stopped} resume point(s) marked; grey: the run was not running. Time is "
        "rebuilt from each attempt's start and the steps' own elapsed times."
    )
    return Plot("progress", "Progress and throughput", caption, _png(fig))


STATUS_COLORS = {
    "completed": COLORS[2],
    "stopped": COLORS[3],
    "failed": COLORS[1],
    "pending": COLORS[7],
    "running": COLORS[0],
    "interrupted": COLORS[7],
}


def _seconds_per_bin(agg: RunAggregate, t: Floats) -> Floats:
    """How long each commit bin ran: from the bin before it, or from its attempt's start
    if that is later (the time between attempts is no one's)."""
    starts = np.array([a.start_s for a in agg.attempts] or [0.0], np.float64)
    own_start = starts[np.clip(np.searchsorted(starts, t, side="right") - 1, 0, None)]
    before = np.maximum(np.concatenate([[starts[0]], t[:-1]]), own_start)
    return np.asarray(t - before, np.float64)


def commit_line(agg: RunAggregate, line: Timeline) -> tuple[Floats, Floats]:
    """Steps decided (all items) against seconds from the run's start, from the commits:
    each attempt's line starts at its start, with the steps committed before it."""
    has = line.steps > 0
    # steps committed before the journal kept commit times (a store migrated mid-run) count
    # from the start
    done = np.cumsum(line.steps) + max(agg.decided - int(line.steps.sum()), 0)
    base = int(done[0] - line.steps[0]) if len(done) else 0
    starts = [(a.start_s, int(done[line.t < a.start_s][-1:].sum() or base)) for a in agg.attempts]
    x = np.concatenate([[s for s, _ in starts], line.t[has]])
    y = np.concatenate([[n for _, n in starts], done[has]]).astype(np.float64)
    order = np.argsort(x, kind="stable")
    return np.asarray(x[order], np.float64), np.asarray(y[order], np.float64)


def items_progress(agg: RunAggregate) -> Plot:
    """A batch's or a graph's progress over time, from the journal's commits (its items
    decide side by side, so a step's own elapsed time is no clock for the run)."""
    line = agg.timeline
    if line is None or not line.steps.any():
        return attempts_progress(agg)
    fig, (left, right) = _figure()
    scale, unit = _time_unit(max(float(line.t.max()), agg.end_s))
    x, y = commit_line(agg, line)
    left.plot(x / scale, y, color=COLORS[0], linewidth=1.2)
    left.set_xlabel(f"wall time ({unit} from the start)")
    left.set_ylabel("steps decided (all items)")
    left.set_title("Decided steps over time")
    _idle(left, agg, scale)
    _resumes(left, agg, on_time=True, scale=scale)
    has = line.steps > 0
    rate = _per_step(line.steps.astype(np.float64), _seconds_per_bin(agg, line.t))[has]
    _throughput(right, line.t[has] / scale, rate, unit)
    _resumes(right, agg, on_time=True, scale=scale)
    what = "nodes" if agg.run.kind == "graph" else "items"
    counts = ""
    if agg.items is not None:
        counts = " (" + ", ".join(f"{n:,} {s}" for s, n in agg.items.by_status.items() if n) + ")"
    caption = (
        f"{agg.decided:,} steps decided over its {what}{counts} in {len(agg.attempts)} "
        f"attempt(s); {len(agg.attempts) - 1} resume point(s) marked; grey: the run was not "
        "running. Time is the journal's: each commit (a few per second) records when it "
        "was made and what it added, so a step reads as decided when it was committed."
    )
    return Plot("progress", "Progress and throughput", caption, _png(fig))


def attempts_progress(agg: RunAggregate) -> Plot:
    """A batch's or a graph's progress when its journal has no commit times (written
    before schema 8, or nothing committed yet): its attempts on the wall clock, and its
    items by status."""
    items = agg.items
    fig, (left, right) = _figure()
    if not agg.attempts:
        _none(left, "not started yet")
    else:
        scale, unit = _time_unit(agg.end_s)
        for i, a in enumerate(agg.attempts):
            end = a.end_s if a.end_s is not None else agg.end_s
            left.barh(
                i,
                max(end - a.start_s, agg.end_s / 400) / scale,
                left=a.start_s / scale,
                color=STATUS_COLORS.get(a.status, COLORS[0]),
                height=0.6,
            )
        left.set_yticks(range(len(agg.attempts)), [f"attempt {a.number}" for a in agg.attempts])
        left.invert_yaxis()
        left.set_xlabel(f"wall time ({unit} from the start)")
        left.set_title("Attempts (colour: how each ended)")
    if items is not None:
        names = list(items.by_status)
        counts = [items.by_status[n] for n in names]
        right.bar(names, counts, color=[STATUS_COLORS.get(n, COLORS[0]) for n in names])
        right.set_ylabel("items")
        right.set_title(f"Items by status ({items.count:,} in all)")
    else:
        _none(right, "no commit times in this journal")
    wall = float(agg.run.stats.get("wall_s", 0.0))
    rate = f"; {agg.decided / wall:,.0f} steps per second of running" if wall > 0 else ""
    caption = (
        f"{agg.decided:,} steps decided in {len(agg.attempts)} attempt(s){rate}. This "
        "journal holds no commit times (it was written before they were kept, or nothing "
        "is committed yet), so its attempts are drawn instead of a progress line."
    )
    return Plot("progress", "Progress: attempts and items", caption, _png(fig))


def _histogram(ax: Axes, values: npt.NDArray[Any], what: str, bins: int = 40) -> None:
    """A histogram of one number per item (integer bins when the values are few)."""
    if not len(values):
        _none(ax, "no items")
        return
    lo, hi = float(values.min()), float(values.max())
    whole = values.dtype.kind in "iu"
    if whole and hi - lo < bins:
        edges = np.arange(lo - 0.5, hi + 1.5)
    else:
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    counts, edges = np.histogram(values, bins=edges)
    ax.stairs(counts, edges, fill=True, color=COLORS[0])
    _log_if_wide(ax, counts)
    ax.set_xlabel(what)
    ax.set_ylabel("items")


def items_distribution(agg: RunAggregate, items: Items) -> Plot:
    """One number per item, three ways: steps decided, samples, and cost (or errors)."""
    fig, axes = _figure(3)
    _histogram(axes[0], items.steps, "steps decided")
    axes[0].set_title("Steps decided per item")
    _histogram(axes[1], items.samples, "samples")
    axes[1].set_title("Samples per item")
    if items.cost.any():
        _histogram(axes[2], items.cost, _label("cost ($)"))
        axes[2].set_title("Cost per item")
        third = "cost"
    else:
        _histogram(axes[2], items.errors, "decisions the checker rejected")
        axes[2].set_title("Errors per item")
        third = "errors (the model's price is unknown: no cost)"
    n = max(items.count, 1)
    caption = (
        f"{items.count:,} items: on average {items.steps.sum() / n:,.1f} steps, "
        f"{items.samples.sum() / n:,.1f} samples"
        + (f", ${items.cost.sum() / n:,.4f}" if items.cost.any() else "")
        + f" each; {int((items.errors > 0).sum()):,} item(s) with a wrong decision. "
        f"Histograms of steps, samples and {third} per item, from the items' committed totals."
    )
    return Plot("items", "Items: the distribution over a batch", caption, _png(fig))


def samples(agg: RunAggregate) -> Plot:
    b = agg.bins
    fig, (left, right) = _figure()
    if not agg.samples_hist:
        _none(left, "no decision committed yet")
        _none(right, "no decision committed yet")
    else:
        values = np.array(list(agg.samples_hist), np.int64)
        counts = np.array(list(agg.samples_hist.values()), np.int64)
        left.bar(values, counts, width=0.8, color=COLORS[0])
        _log_if_wide(left, counts)
        left.set_xlabel("samples drawn for a step")
        left.set_ylabel("steps")
        left.set_title("Samples per step")
        has = b.steps > 0
        mid = b.mid[has]
        mean = _per_step(b.samples.astype(np.float64), b.steps.astype(np.float64))[has]
        right.plot(mid, mean, color=COLORS[0], linewidth=0.9, label="mean per bin")
        right.plot(mid, b.samples_max[has], color=COLORS[3], linewidth=0.6, label="max per bin")
        if agg.plan is not None:
            right.axhline(agg.plan.samples_per_step, color=COLORS[2], ls=":", label="planned")
        right.set_xlabel(_step_axis(agg))
        right.set_ylabel("samples per step")
        right.set_title("Samples per step, over the steps")
        right.legend(loc="upper right", fontsize=7)
        _resumes(right, agg, on_time=False)
    mean_all = agg.samples / agg.decided if agg.decided else 0.0
    caption = f"{agg.samples:,} samples, {mean_all:.3f} per step"
    if agg.plan is not None:
        caption += f" (planned {agg.plan.samples_per_step:.3f}: {agg.plan.basis})"
    return Plot("samples", "Samples per step", caption + ".", _png(fig))


def tallies(agg: RunAggregate, top: int = 12) -> Plot:
    b = agg.bins
    fig, (left, right) = _figure()
    if not agg.tallies:
        _none(left, "no decision committed yet")
        _none(right, "no decision committed yet")
    else:
        shown = list(agg.tallies.items())[:top]
        rest = sum(c for _, c in list(agg.tallies.items())[top:])
        labels = [f"{w}–{a}" for (w, a), _ in shown] + (["other"] if rest else [])
        counts = [c for _, c in shown] + ([rest] if rest else [])
        colors = [COLORS[0] if a == 0 else COLORS[3] for (_, a), _ in shown]
        left.bar(range(len(labels)), counts, color=[*colors, COLORS[7]][: len(labels)])
        left.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
        _log_if_wide(left, np.array(counts))
        left.set_xlabel("votes for the winner – valid votes against it")
        left.set_ylabel("steps")
        left.set_title("Vote margins: the shape of each tally")
        has = b.steps > 0
        steps = b.steps.astype(np.float64)
        right.plot(
            b.mid[has],
            _per_step(b.contested.astype(np.float64), steps)[has],
            color=COLORS[3],
            linewidth=0.9,
            label="contested share",
        )
        right.plot(
            b.mid[has],
            _per_step(b.against.astype(np.float64), steps)[has],
            color=COLORS[4],
            linewidth=0.6,
            label="votes against per step",
        )
        right.set_xlabel(_step_axis(agg))
        right.set_title("Contested steps over the steps")
        right.legend(loc="upper right", fontsize=7)
        _resumes(right, agg, on_time=False)
    contested = int(b.contested.sum())
    if agg.k is None and agg.run.config.get("stopping") == "adaptive":
        rule = "Adaptive stopping: a step is decided when its leading answer is certain enough. "
    else:
        k = "?" if agg.k is None else str(agg.k)
        rule = f"k = {k}: a step is decided when one answer leads every other by k. "
    caption = (
        rule + f"{contested:,} contested steps (some valid vote against the winner); "
        f"{int(b.undecided.sum()):,} undecided (taken by plurality)."
    )
    return Plot("margins", "Vote margins", caption, _png(fig))


def red_flags(agg: RunAggregate) -> Plot:
    b = agg.bins
    fig, (ax,) = _figure(1, HEIGHT_IN if agg.flags else 1.2)
    if not agg.flags:
        _none(ax, "no red flags in this run")
    else:
        mid = b.mid
        bottom = np.zeros(len(mid), np.float64)
        for i, (kind, values) in enumerate(sorted(b.flags.items())):
            v = values.astype(np.float64)
            ax.fill_between(
                mid,
                bottom,
                bottom + v,
                step="mid",
                color=COLORS[i % len(COLORS)],
                label=_label(kind),
            )
            bottom += v
        ax.set_xlabel(_step_axis(agg))
        ax.set_ylabel("red-flagged samples per bin")
        ax.set_title("Red flags by kind over the steps")
        ax.legend(loc="upper right", fontsize=7)
        _resumes(ax, agg, on_time=False)
    total = sum(agg.flags.values())
    kinds = ", ".join(f"{k} {v:,}" for k, v in agg.flags.items()) or "none"
    width = int(b.edges[1] - b.edges[0]) if len(b.edges) > 1 else 1
    caption = f"{total:,} red-flagged samples ({kinds}); bins of about {width:,} steps."
    return Plot("red_flags", "Red flags by kind", caption, _png(fig))


def usage(agg: RunAggregate) -> Plot:
    b = agg.bins
    fig, (left, right) = _figure()
    has = b.steps > 0
    if not has.any():
        _none(left, "no decision committed yet")
        _none(right, "no decision committed yet")
        caption = "Nothing spent yet."
        return Plot("usage", "Tokens and cost against the plan", caption, _png(fig))
    steps_done = np.cumsum(b.steps)[has]
    actual = np.cumsum(b.samples)[has]
    left.plot(steps_done, actual, color=COLORS[0], label="drawn")
    per_sample_tokens = (agg.prompt_tokens + agg.completion_tokens) / max(agg.samples, 1)
    per_sample_cost = agg.cost / max(agg.samples, 1)
    if agg.plan is not None:
        left.plot(
            steps_done, steps_done * agg.plan.samples_per_step, ls=":", c=COLORS[2], label="plan"
        )
    left.set_xlabel("steps decided")
    left.set_ylabel("samples (cumulative)")
    left.set_title("Samples against the plan")
    left.legend(loc="upper left", fontsize=7)
    priced = agg.cost > 0
    spent = np.cumsum(b.cost if priced else b.prompt_tokens + b.completion_tokens)[has]
    line = agg.timeline
    on_time = True
    planned_steps = steps_done
    if b.t_end is not None:
        scale, unit = _time_unit(float(b.t_end[has].max()))
        x = b.t_end[has] / scale
    elif line is not None and line.steps.any():  # a batch or a graph: its commits' clock
        scale, unit = _time_unit(float(line.t.max()))
        x = line.t / scale
        spent = np.cumsum(line.cost if priced else line.tokens)
        planned_steps = np.cumsum(line.steps)
    else:  # no clock at all (a journal older than commit times): against the steps decided
        on_time, scale, unit = False, 1.0, ""
        x = steps_done.astype(np.float64)
    if on_time:
        right.set_xlabel(f"wall time ({unit} from the start)")
    else:
        right.set_xlabel("steps decided (all items, by step within the item)")
    right.plot(x, spent, color=COLORS[0], label="spent")
    if agg.plan is not None:
        rate = per_sample_cost if priced else per_sample_tokens
        planned = planned_steps * agg.plan.samples_per_step * rate
        right.plot(x, planned, ls=":", c=COLORS[2], label="plan")
    right.set_ylabel("cost ($, cumulative)" if priced else "tokens (cumulative)")
    over = "over time" if on_time else "over the steps"
    right.set_title(("Cost" if priced else "Tokens") + f" {over} against the plan")
    right.legend(loc="upper left", fontsize=7)
    if on_time:
        _resumes(right, agg, on_time=True, scale=scale)
    caption = (
        f"{agg.prompt_tokens:,} prompt and {agg.completion_tokens:,} completion tokens"
        + (f", ${agg.cost:,.4f}" if priced else " (no price known: no cost)")
        + ". "
    )
    if agg.plan is None:
        caption += "No plan line: the model's error rate is unknown (plan k with --error-rate)."
    else:
        caption += (
            f"Plan: {agg.plan.samples_per_step:.3f} samples per step ({agg.plan.basis}), "
            "priced at this run's own tokens (and cost) per sample."
        )
    return Plot("usage", "Tokens and cost against the plan", caption, _png(fig))


def transport(agg: RunAggregate, incidents: Sequence[tuple[float, float]]) -> Plot:
    total = sum(len(v) for v in agg.transport.values())
    fig, (ax,) = _figure(1, HEIGHT_IN if total or incidents else 1.6)
    end = agg.end_s
    scale, unit = _time_unit(end)
    if not total:
        _none(ax, "no transport failures in this run")
    else:
        edges = np.linspace(0.0, max(end, 1e-9) / scale, 201)
        bottom = np.zeros(200, np.float64)
        for i, (kind, times) in enumerate(sorted(agg.transport.items())):
            counts, _ = np.histogram(np.array(times) / scale, bins=edges)
            ax.stairs(
                bottom + counts,
                edges,
                baseline=bottom,
                fill=True,
                color=COLORS[i % len(COLORS)],
                label=_label(kind),
            )
            bottom += counts
        ax.set_ylabel("failed attempts per bin")
        ax.legend(loc="upper right", fontsize=7)
    for i, (start, stop) in enumerate(incidents):
        ax.axvspan(
            start / scale,
            max(stop, start + end / 400) / scale,
            color=COLORS[1],
            alpha=0.15,
            lw=0,
            label="incident" if i == 0 else None,
        )
    if not total:
        ax.set_xlim(0.0, max(end, 1e-9) / scale)
    ax.set_xlabel(f"wall time ({unit} from the start)")
    ax.set_title("Transport failures and incidents over time")
    _resumes(ax, agg, on_time=True, scale=scale)
    kinds = ", ".join(f"{k} {len(v):,}" for k, v in sorted(agg.transport.items())) or "none"
    caption = (
        f"{total:,} failed attempts ({kinds}); {len(incidents)} incident(s) shaded: bursts "
        "of failures over many steps (infrastructure, not content). A failed attempt never "
        "becomes a sample."
    )
    return Plot("transport", "Transport failures and incidents", caption, _png(fig))


def failure_categories(by_category: Mapping[str, int], patterns: Sequence[tuple[str, int]]) -> Plot:
    fig, (left, right) = _figure()
    if not by_category:
        _none(left, "no failure records")
        _none(right, "no patterns")
    else:
        names = list(by_category)[::-1]
        left.barh([_label(n) for n in names], [by_category[n] for n in names], color=COLORS[1])
        left.set_xscale("log")
        left.set_xlabel("failure records")
        left.set_title("Failures by category (taxonomy)")
        left.tick_params(axis="y", labelsize=7)
        if patterns:
            shown = list(patterns)[:12][::-1]
            right.barh([_label(p) for p, _ in shown], [c for _, c in shown], color=COLORS[3])
            right.set_xscale("log")
            right.set_xlabel("failure records")
            right.set_title("Largest failure patterns")
            right.tick_params(axis="y", labelsize=7)
        else:
            _none(right, "no patterns")
    caption = (
        "Categories of the built-in taxonomy (see the table below for their names in "
        "AgentErrorTaxonomy, TRAIL and MAST)."
    )
    return Plot("failures", "Failure patterns", caption, _png(fig))


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
