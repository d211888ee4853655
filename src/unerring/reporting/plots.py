"""The report's plots, drawn by matplotlib into PNG images (no script in the page).

Each function takes aggregates (bounded by the number of bins, never one mark per step)
and returns a Plot of panels: a panel with nothing to show (no red flags, one step per
node, items all alike) is left out with a one-line reason instead of drawn empty. No model
text is drawn: only numbers and the taxonomy's names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from unerring.reporting.aggregate import Floats, Items, RunAggregate, Timeline
from unerring.reporting.canvas import STYLE, Drawn, Panel, Plot, compose
from unerring.reporting.over_steps import StepGroups, over_steps
from unerring.reporting.pace import STALL_FLOOR_S, STALL_RATIO, Spans, merged, stalls

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
FEW_POINTS = 40  # a line of at most this many points gets a marker on each
NOTHING_YET = "no decision committed yet"


def _label(text: str) -> str:
    """A name as a label: a `$` is a dollar sign, not the start of mathtext."""
    return text.replace("$", r"\$")


def _n(count: int, word: str) -> str:
    """'1 step', '2 steps', '1,024 items'."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _log_floor(smallest: float) -> float:
    """A log axis's floor below the smallest bar, so that it shows as a bar (a log axis
    left to itself may start at the smallest value and draw it as a sliver)."""
    return float(0.5 * 10.0 ** math.floor(math.log10(smallest)))


def _log_if_wide(ax: Axes, counts: npt.NDArray[Any], axis: str = "y") -> None:
    """A log scale, floored below the smallest, when the counts span more than two orders
    of magnitude; else a linear one from zero."""
    positive = counts[counts > 0]
    wide = len(positive) and positive.max() > 100 * positive.min()
    if axis == "y":
        if wide:
            ax.set_yscale("log")
            ax.set_ylim(bottom=_log_floor(float(positive.min())))
        else:
            ax.set_ylim(bottom=0)
    elif wide:
        ax.set_xscale("log")
        ax.set_xlim(left=_log_floor(float(positive.min())))
    else:
        ax.set_xlim(left=0)


def _marker(points: int) -> str:
    return "o" if points <= FEW_POINTS else ""


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


def _known_moments(agg: RunAggregate) -> Floats:
    """The moments the journal knows steps were decided (a chain's bins' ends, a batch's
    or a graph's commits), in seconds from the run's start."""
    if agg.bins.t_end is not None:
        return np.asarray(agg.bins.t_end[agg.bins.steps > 0], np.float64)
    if agg.timeline is not None:
        return np.asarray(agg.timeline.t, np.float64)
    return np.zeros(0, np.float64)


def attempt_ends(agg: RunAggregate) -> list[float]:
    """Each attempt's end; of one that died without a word (killed), the last moment the
    journal knows of it (its last decision), else its start."""
    moments = _known_moments(agg)
    out = []
    for i, a in enumerate(agg.attempts):
        if a.end_s is not None:
            out.append(a.end_s)
            continue
        later = agg.attempts[i + 1].start_s if i + 1 < len(agg.attempts) else math.inf
        mine = moments[(moments >= a.start_s) & (moments <= later)]
        out.append(float(mine.max()) if len(mine) else a.start_s)
    return out


def _idle(ax: Axes, agg: RunAggregate, scale: float) -> None:
    """Shade the time between attempts (the run was not running)."""
    ends = attempt_ends(agg)
    for i in range(1, len(agg.attempts)):
        start = agg.attempts[i].start_s
        if start > ends[i - 1]:
            ax.axvspan(ends[i - 1] / scale, start / scale, color="#bbb", alpha=0.4, lw=0)


def _flat(agg: RunAggregate) -> str:
    """Why there is nothing to draw over the steps."""
    if agg.decided == 0:
        return NOTHING_YET
    if agg.many and agg.bins.end <= 1:
        what = "node" if agg.run.kind == "graph" else "item"
        return f"every {what} is one step, so there is nothing to draw over the steps"
    at = int(agg.bins.edges[np.flatnonzero(agg.bins.steps)[0]])
    return (
        f"only step {at:,} has decisions ({_n(agg.decided, 'step')}), so there is nothing "
        "to draw over the steps"
    )


# -- progress ----------------------------------------------------------------------------


def _chain_spans(agg: RunAggregate) -> Spans:
    """A chain's bins as spans of time: each bin ends at its clock and lasted its steps'
    elapsed time."""
    b = agg.bins
    assert b.t_end is not None
    firsts = np.array([a.first_step for a in agg.attempts] or [0], np.int64)
    owner = np.clip(np.searchsorted(firsts, b.edges, side="right") - 1, 0, None)
    return Spans(b.t_end - b.elapsed, b.t_end, b.steps, owner.astype(np.int64))


def _seconds_per_bin(agg: RunAggregate, t: Floats) -> Floats:
    """How long each commit bin ran: from the bin before it, or from its attempt's start
    if that is later (the time between attempts is no one's)."""
    starts = np.array([a.start_s for a in agg.attempts] or [0.0], np.float64)
    own_start = starts[np.clip(np.searchsorted(starts, t, side="right") - 1, 0, None)]
    before = np.maximum(np.concatenate([[starts[0]], t[:-1]]), own_start)
    return np.asarray(t - before, np.float64)


def _commit_spans(agg: RunAggregate, line: Timeline) -> Spans:
    """A batch's or a graph's commit bins as spans of time."""
    starts = np.array([a.start_s for a in agg.attempts] or [0.0], np.float64)
    owner = np.clip(np.searchsorted(starts, line.t, side="right") - 1, 0, None)
    return Spans(line.t - _seconds_per_bin(agg, line.t), line.t, line.steps, owner)


def _throughput(agg: RunAggregate, spans: Spans, scale: float, unit: str) -> Panel:
    """Steps per second over time, stalls marked (see pace.py)."""
    title = "Throughput"
    s = merged(spans)
    if len(s) < 2:
        seconds = float(s.seconds.sum())
        pace = f", {agg.decided / seconds:,.0f} steps per second" if seconds > 0 else ""
        return Panel.out(
            title,
            f"all {_n(agg.decided, 'step')} in one span of time ({seconds:.3g} s{pace}), "
            "so there is no pace over time to draw",
        )

    def draw(ax: Axes) -> Drawn:
        rate = s.rate
        # each span a flat segment; a gap (NaN) between attempts: no line over idle time
        x: list[float] = []
        y: list[float] = []
        for i in range(len(s)):
            if i and s.attempt[i] != s.attempt[i - 1]:
                x.append(math.nan)
                y.append(math.nan)
            x += [float(s.start[i]) / scale, float(s.end[i]) / scale]
            y += [float(rate[i]), float(rate[i])]
        (line,) = ax.plot(x, y, color=COLORS[0], linewidth=0.9)
        drawn: Drawn = [("steps per second", line)]
        slow = stalls(s)
        if slow.any():
            mid = (s.start[slow] + s.end[slow]) / 2.0 / scale
            dots = ax.scatter(mid, rate[slow], s=12, color=COLORS[1], zorder=3, label="stall")
            drawn.append(("stall", dots))
            ax.legend(loc="lower left", fontsize=7)
        positive = rate[rate > 0]
        spread = len(positive) and positive.max() > 20 * positive.min()
        ax.set_yscale("log" if spread else "linear")
        if not spread:
            ax.set_ylim(bottom=0)
        ax.set_xlabel(f"wall time ({unit} from the start)")
        ax.set_ylabel("steps per second")
        _resumes(ax, agg, on_time=True, scale=scale)
        return drawn

    return Panel(title, draw)


def _decided_line(agg: RunAggregate, x: Floats, y: Floats, scale: float, unit: str) -> Panel:
    def draw(ax: Axes) -> Drawn:
        (line,) = ax.plot(
            x / scale, y, color=COLORS[0], linewidth=1.2, marker=_marker(len(x)), markersize=3
        )
        ax.set_xlabel(f"wall time ({unit} from the start)")
        ax.set_ylabel("steps decided (all items)" if agg.many else "steps decided")
        _idle(ax, agg, scale)
        _resumes(ax, agg, on_time=True, scale=scale)
        return [("steps decided", line)]

    return Panel("Decided steps over time", draw)


STALLS = (
    f"stalls (red): under 1/{STALL_RATIO:g} of the run's median pace, with "
    f"{STALL_FLOOR_S:g} s or more lost"
)


def progress(agg: RunAggregate) -> Plot:
    if agg.many:
        return items_progress(agg)
    b = agg.bins
    assert b.t_end is not None  # a chain's clock
    has = b.steps > 0
    if not has.any():
        panels = [
            Panel.out("Decided steps over time", NOTHING_YET),
            Panel.out("Throughput", NOTHING_YET),
        ]
    else:
        scale, unit = _time_unit(float(b.t_end[has].max()))
        done = np.cumsum(b.steps)
        # each attempt's line starts where it started: at its start, with the steps before
        starts = [(a.start_s, int(done[b.edges < a.first_step][-1:].sum())) for a in agg.attempts]
        x = np.concatenate([[s for s, _ in starts], b.t_end[has]])
        y = np.concatenate([[n for _, n in starts], done[has]]).astype(np.float64)
        order = np.argsort(x, kind="stable")
        panels = [
            _decided_line(agg, x[order], y[order], scale, unit),
            _throughput(agg, _chain_spans(agg), scale, unit),
        ]
    caption = (
        f"{_n(agg.decided, 'step')} decided in {_n(len(agg.attempts), 'attempt')}; "
        f"{_n(len(agg.attempts) - 1, 'resume point')} marked; grey: the run was not "
        f"running; {STALLS}. Time is rebuilt from each attempt's start and the steps' own "
        "elapsed times."
    )
    return compose("progress", "Progress and throughput", caption, panels)


STATUS_COLORS = {
    "completed": COLORS[2],
    "stopped": COLORS[3],
    "failed": COLORS[1],
    "pending": COLORS[7],
    "running": COLORS[0],
    "interrupted": COLORS[7],
}


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
    scale, unit = _time_unit(max(float(line.t.max()), agg.end_s))
    x, y = commit_line(agg, line)
    panels = [
        _decided_line(agg, x, y, scale, unit),
        _throughput(agg, _commit_spans(agg, line), scale, unit),
    ]
    what = "nodes" if agg.run.kind == "graph" else "items"
    counts = ""
    if agg.items is not None:
        counts = " (" + ", ".join(f"{n:,} {s}" for s, n in agg.items.by_status.items() if n) + ")"
    caption = (
        f"{_n(agg.decided, 'step')} decided over its {what}{counts} in "
        f"{_n(len(agg.attempts), 'attempt')}; {_n(len(agg.attempts) - 1, 'resume point')} "
        f"marked; grey: the run was not running; {STALLS}. Time is the journal's: each "
        "commit (a few per second) records when it was made and what it added, so a step "
        "reads as decided when it was committed."
    )
    return compose("progress", "Progress and throughput", caption, panels)


def attempts_progress(agg: RunAggregate) -> Plot:
    """A batch's or a graph's progress when its journal has no commit times (written
    before schema 8, or nothing committed yet): its attempts on the wall clock, and its
    items by status."""
    items = agg.items
    title = "Attempts (colour: how each ended)"
    if not agg.attempts:
        left = Panel.out(title, "not started yet")
    else:
        scale, unit = _time_unit(agg.end_s)
        ends = attempt_ends(agg)

        def attempts(ax: Axes) -> Drawn:
            span = max(agg.end_s, 1e-9)
            bars = ax.barh(
                range(len(agg.attempts)),
                [
                    max(e - a.start_s, span / 400) / scale
                    for a, e in zip(agg.attempts, ends, strict=True)
                ],
                left=[a.start_s / scale for a in agg.attempts],
                color=[STATUS_COLORS.get(a.status, COLORS[0]) for a in agg.attempts],
                height=0.6,
            )
            ax.set_yticks(range(len(agg.attempts)), [f"attempt {a.number}" for a in agg.attempts])
            ax.invert_yaxis()
            ax.set_xlabel(f"wall time ({unit} from the start)")
            return [("attempts", bars)]

        left = Panel(title, attempts)
    if items is not None and items.count:
        names = [n for n, c in items.by_status.items() if c]

        def by_status(ax: Axes) -> Drawn:
            assert items is not None
            bars = ax.bar(
                names,
                [items.by_status[n] for n in names],
                color=[STATUS_COLORS.get(n, COLORS[0]) for n in names],
            )
            ax.set_ylabel("items")
            return [("items", bars)]

        right = Panel(f"Items by status ({items.count:,} in all)", by_status)
    elif agg.run.kind == "graph":
        right = Panel.out("Nodes by status", "see the task tree below")
    else:
        right = Panel.out("Items by status", "no items")
    wall = float(agg.run.stats.get("wall_s", 0.0))
    rate = f"; {agg.decided / wall:,.0f} steps per second of running" if wall > 0 else ""
    caption = (
        f"{_n(agg.decided, 'step')} decided in {_n(len(agg.attempts), 'attempt')}{rate}. "
        "This journal holds no commit times (it was written before they were kept, or "
        "nothing is committed yet), so its attempts are drawn instead of a progress line."
    )
    return compose("progress", "Progress: attempts and items", caption, [left, right])


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
            lambda who, v: f"{who} decided {_n(int(v), 'step')}",
        ),
        _histogram(
            "Samples per item",
            items.samples,
            "samples",
            lambda who, v: f"{who} drew {_n(int(v), 'sample')}",
        ),
    ]
    if items.cost.any():
        panels.append(
            _histogram(
                "Cost per item",
                items.cost,
                _label("cost ($)"),
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
                lambda who, v: f"{who} had {_n(int(v), 'decision')} the checker rejected",
            )
        )
        third = "errors (the model's price is unknown: no cost)"
    n = max(items.count, 1)
    caption = (
        f"{_n(items.count, 'item')}: on average {items.steps.sum() / n:,.1f} steps, "
        f"{items.samples.sum() / n:,.1f} samples"
        + (f", ${items.cost.sum() / n:,.4f}" if items.cost.any() else "")
        + f" each; {int((items.errors > 0).sum()):,} item(s) with a wrong decision. "
        f"Histograms of steps, samples and {third} per item, from the items' committed totals."
    )
    return compose("items", "Items: the distribution over a batch", caption, panels)


# -- over the steps -----------------------------------------------------------------------


def _bars(ax: Axes, x: Sequence[int], counts: Sequence[int], colors: Sequence[str]) -> Drawn:
    bars = ax.bar(x, counts, width=0.8, color=list(colors))
    _log_if_wide(ax, np.array(counts))
    return [("steps", bars)]


def samples(agg: RunAggregate) -> Plot:
    groups = over_steps(agg.bins)
    hist_title = "Samples per step"
    if not agg.samples_hist:
        hist = Panel.out(hist_title, NOTHING_YET)
    elif len(agg.samples_hist) == 1:
        ((v, c),) = agg.samples_hist.items()
        who = "the one step" if c == 1 else f"every one of the {c:,} steps"
        hist = Panel.out(hist_title, f"{who} drew {_n(v, 'sample')}")
    else:

        def histogram(ax: Axes) -> Drawn:
            values = list(agg.samples_hist)
            counts = list(agg.samples_hist.values())
            drawn = _bars(ax, values, counts, [COLORS[0]] * len(values))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("samples drawn for a step")
            ax.set_ylabel("steps")
            return drawn

        hist = Panel(hist_title, histogram)
    over_title = "Samples per step, over the steps"
    over = Panel.out(over_title, _flat(agg)) if groups is None else _samples_over(agg, groups)
    mean_all = agg.samples / agg.decided if agg.decided else 0.0
    caption = f"{_n(agg.samples, 'sample')}, {mean_all:.3f} per step"
    if agg.plan is not None:
        caption += f" (planned {agg.plan.samples_per_step:.3f}: {agg.plan.basis})"
    if groups is not None:
        caption += f"; over the steps: {groups.words(agg.many)}"
    return compose("samples", "Samples per step", caption + ".", [hist, over])


def _samples_over(agg: RunAggregate, g: StepGroups) -> Panel:
    def draw(ax: Axes) -> Drawn:
        drawn: Drawn = []
        mark = _marker(len(g))
        if not g.per_step:
            # the maximum under the mean, thinner: where they are equal the mean shows
            (top,) = ax.plot(
                g.mid,
                g.samples_max,
                color=COLORS[3],
                lw=0.8,
                marker=mark,
                ms=2,
                label="max per bin",
            )
            drawn.append(("max per bin", top))
        label = "drawn" if g.per_step else "mean per bin"
        (mean,) = ax.plot(
            g.mid,
            g.per(g.samples),
            color=COLORS[0],
            lw=1.3,
            marker=mark,
            ms=3,
            zorder=3,
            label=label,
        )
        drawn.append((label, mean))
        if agg.plan is not None:
            ax.axhline(agg.plan.samples_per_step, color=COLORS[2], ls=":", label="planned")
        ax.set_xlabel(_step_axis(agg))
        ax.set_ylabel("samples per step")
        ax.legend(loc="upper right", fontsize=7)
        _resumes(ax, agg, on_time=False)
        return drawn

    return Panel("Samples per step, over the steps", draw)


def tallies(agg: RunAggregate, top: int = 12) -> Plot:
    b = agg.bins
    groups = over_steps(b)
    hist_title = "Vote margins: the shape of each tally"
    if not agg.tallies:
        hist = Panel.out(hist_title, NOTHING_YET)
    elif len(agg.tallies) == 1:
        (((w, a), c),) = agg.tallies.items()
        who = "the one step" if c == 1 else f"every one of the {c:,} steps"
        hist = Panel.out(hist_title, f"{who} was {w}–{a}" + (" (unanimous)" if a == 0 else ""))
    else:

        def histogram(ax: Axes) -> Drawn:
            shown = list(agg.tallies.items())[:top]
            rest = sum(c for _, c in list(agg.tallies.items())[top:])
            labels = [f"{w}–{a}" for (w, a), _ in shown] + (["other"] if rest else [])
            counts = [c for _, c in shown] + ([rest] if rest else [])
            colors = [COLORS[0] if a == 0 else COLORS[3] for (_, a), _ in shown] + [COLORS[7]]
            drawn = _bars(ax, list(range(len(labels))), counts, colors[: len(labels)])
            ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
            ax.set_xlabel("votes for the winner – valid votes against it")
            ax.set_ylabel("steps")
            return drawn

        hist = Panel(hist_title, histogram)
    contested = int(b.contested.sum())
    over_title = "Contested steps over the steps"
    if groups is None:
        over = Panel.out(over_title, _flat(agg))
    elif contested == 0:
        over = Panel.out(over_title, "no contested step: every tally was unanimous")
    else:
        over = _contested_over(agg, groups)
    if agg.k is None and agg.run.config.get("stopping") == "adaptive":
        rule = "Adaptive stopping: a step is decided when its leading answer is certain enough. "
    else:
        k = "?" if agg.k is None else str(agg.k)
        rule = f"k = {k}: a step is decided when one answer leads every other by k. "
    caption = (
        rule + f"{_n(contested, 'contested step')} (some valid vote against the winner); "
        f"{int(b.undecided.sum()):,} undecided (taken by plurality)"
    )
    if groups is not None and contested:
        caption += f"; over the steps: {groups.words(agg.many)}"
    return compose("margins", "Vote margins", caption + ".", [hist, over])


def _contested_over(agg: RunAggregate, g: StepGroups) -> Panel:
    def draw(ax: Axes) -> Drawn:
        mark = _marker(len(g))
        share = "contested" if g.per_step else "contested share"
        (a,) = ax.plot(
            g.mid, g.per(g.contested), color=COLORS[3], lw=0.9, marker=mark, ms=3, label=share
        )
        (b,) = ax.plot(
            g.mid,
            g.per(g.against),
            color=COLORS[4],
            lw=0.7,
            marker=mark,
            ms=2,
            label="votes against" if g.per_step else "votes against per step",
        )
        ax.set_xlabel(_step_axis(agg))
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper right", fontsize=7)
        _resumes(ax, agg, on_time=False)
        return [(share, a), ("votes against", b)]

    return Panel("Contested steps over the steps", draw)


def red_flags(agg: RunAggregate) -> Plot:
    groups = over_steps(agg.bins)
    total = sum(agg.flags.values())
    kinds = ", ".join(f"{k} {v:,}" for k, v in agg.flags.items()) or "none"
    caption = f"{_n(total, 'red-flagged sample')} ({kinds})"
    title = "Red flags by kind over the steps"
    if not agg.flags:
        panel = Panel.out(title, "no red flags in this run")
    elif groups is None:
        panel = Panel.out(title, _flat(agg))
    else:
        g = groups
        caption += f"; {g.words(agg.many)}"

        def draw(ax: Axes) -> Drawn:
            drawn: Drawn = []
            bottom = np.zeros(len(g), np.float64)
            for i, (kind, values) in enumerate(g.flags.items()):
                top = bottom + values
                stairs = ax.stairs(
                    top, g.edges, baseline=bottom.copy(), fill=True,
                    color=COLORS[i % len(COLORS)], label=_label(kind),
                )  # fmt: skip
                drawn.append((kind, stairs))
                bottom = top
            ax.set_xlabel(_step_axis(agg))
            ax.set_ylabel(
                "red-flagged samples per step" if g.per_step else "red-flagged samples per bin"
            )
            ax.legend(loc="upper right", fontsize=7)
            _resumes(ax, agg, on_time=False)
            return drawn

        panel = Panel(title, draw)
    return compose("red_flags", "Red flags by kind", caption + ".", [panel])


# -- against the plan ---------------------------------------------------------------------


def usage(agg: RunAggregate) -> Plot:
    b = agg.bins
    has = b.steps > 0
    priced = agg.cost > 0
    spend_title = ("Cost" if priced else "Tokens") + " over time against the plan"
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
    if not has.any():
        panels = [
            Panel.out("Samples against the plan", NOTHING_YET),
            Panel.out(spend_title, NOTHING_YET),
        ]
        return compose("usage", "Tokens and cost against the plan", caption, panels)
    # every line starts from nothing spent at nothing decided (or at the run's start)
    steps_done = np.concatenate([[0], np.cumsum(b.steps)[has]]).astype(np.float64)
    actual = np.concatenate([[0], np.cumsum(b.samples)[has]]).astype(np.float64)

    def drawn_against_plan(ax: Axes) -> Drawn:
        mark = _marker(len(steps_done))
        (line,) = ax.plot(steps_done, actual, color=COLORS[0], marker=mark, ms=3, label="drawn")
        drawn: Drawn = [("drawn", line)]
        if agg.plan is not None:
            (plan,) = ax.plot(
                steps_done,
                steps_done * agg.plan.samples_per_step,
                ls=":",
                c=COLORS[2],
                label="plan",
            )
            drawn.append(("plan", plan))
        ax.set_xlabel("steps decided")
        ax.set_ylabel("samples (cumulative)")
        ax.legend(loc="upper left", fontsize=7)
        return drawn

    return compose(
        "usage",
        "Tokens and cost against the plan",
        caption,
        [Panel("Samples against the plan", drawn_against_plan), _spend(agg, spend_title, priced)],
    )


def _spend(agg: RunAggregate, title: str, priced: bool) -> Panel:
    """Cost (or tokens) over time, from nothing at the run's start, against the plan."""
    b = agg.bins
    has = b.steps > 0
    per_sample = (agg.cost if priced else agg.prompt_tokens + agg.completion_tokens) / max(
        agg.samples, 1
    )
    if per_sample <= 0:
        return Panel.out(title, "no tokens or cost recorded")
    line = agg.timeline
    on_time = True
    if b.t_end is not None:
        scale, unit = _time_unit(float(b.t_end[has].max()))
        x = b.t_end[has]
        spent = np.cumsum(b.cost if priced else b.prompt_tokens + b.completion_tokens)[has]
        planned_steps = np.cumsum(b.steps)[has]
    elif line is not None and line.steps.any():  # a batch or a graph: its commits' clock
        scale, unit = _time_unit(float(line.t.max()))
        x = line.t
        spent = np.cumsum(line.cost if priced else line.tokens)
        planned_steps = np.cumsum(line.steps)
    else:  # no clock at all (a journal older than commit times): against the steps decided
        on_time, scale, unit = False, 1.0, ""
        x = np.cumsum(b.steps)[has].astype(np.float64)
        spent = np.cumsum(b.cost if priced else b.prompt_tokens + b.completion_tokens)[has]
        planned_steps = np.cumsum(b.steps)[has]
    start = min((a.start_s for a in agg.attempts), default=0.0) if on_time else 0.0
    x = np.concatenate([[start], x]) / scale
    spent = np.concatenate([[0.0], spent]).astype(np.float64)
    planned_steps = np.concatenate([[0], planned_steps]).astype(np.float64)

    def draw(ax: Axes) -> Drawn:
        mark = _marker(len(x))
        (line_,) = ax.plot(x, spent, color=COLORS[0], marker=mark, ms=3, label="spent")
        drawn: Drawn = [("spent", line_)]
        if agg.plan is not None:
            planned = planned_steps * agg.plan.samples_per_step * per_sample
            (plan,) = ax.plot(x, planned, ls=":", c=COLORS[2], label="plan")
            drawn.append(("plan", plan))
        if on_time:
            ax.set_xlabel(f"wall time ({unit} from the start)")
            _resumes(ax, agg, on_time=True, scale=scale)
        else:
            ax.set_xlabel("steps decided (all items, by step within the item)")
        ax.set_ylabel("cost ($, cumulative)" if priced else "tokens (cumulative)")
        ax.legend(loc="upper left", fontsize=7)
        return drawn

    if not on_time:
        title = ("Cost" if priced else "Tokens") + " over the steps against the plan"
    return Panel(title, draw)


# -- transport and failures ---------------------------------------------------------------


def transport(agg: RunAggregate, incidents: Sequence[tuple[float, float]]) -> Plot:
    total = sum(len(v) for v in agg.transport.values())
    kinds = ", ".join(f"{k} {len(v):,}" for k, v in sorted(agg.transport.items())) or "none"
    caption = (
        f"{_n(total, 'failed attempt')} ({kinds}); {_n(len(incidents), 'incident')} shaded: "
        "bursts of failures over many steps (infrastructure, not content). A failed attempt "
        "never becomes a sample."
    )
    title = "Transport failures and incidents over time"
    if not total:
        panel = Panel.out(title, "no transport failures in this run")
        return compose("transport", "Transport failures and incidents", caption, [panel])
    end = agg.end_s
    scale, unit = _time_unit(end)

    def draw(ax: Axes) -> Drawn:
        drawn: Drawn = []
        edges = np.linspace(0.0, max(end, 1e-9) / scale, 201)
        bottom = np.zeros(200, np.float64)
        for i, (kind, times) in enumerate(sorted(agg.transport.items())):
            counts, _ = np.histogram(np.array(times) / scale, bins=edges)
            stairs = ax.stairs(
                bottom + counts, edges, baseline=bottom.copy(), fill=True,
                color=COLORS[i % len(COLORS)], label=_label(kind),
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
        _resumes(ax, agg, on_time=True, scale=scale)
        return drawn

    return compose("transport", "Transport failures and incidents", caption, [Panel(title, draw)])


def _hbars(counts: Sequence[tuple[str, int]], color: str) -> Any:
    def draw(ax: Axes) -> Drawn:
        names = [_label(n) for n, _ in counts][::-1]
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
