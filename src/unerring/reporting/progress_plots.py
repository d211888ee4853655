"""The report's progress plots: steps decided over time and the pace, from a chain's own
clock or a batch's and a graph's commits; a journal without commit times gets its
attempts and items by status instead."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes

from unerring.reporting.aggregate import Floats, RunAggregate, Timeline
from unerring.reporting.canvas import Drawn, Panel, Plot, compose
from unerring.reporting.drawing import (
    COLORS,
    NOTHING_YET,
    mark_resumes,
    marker_for,
    plural,
    time_unit,
)
from unerring.reporting.pace import STALL_FLOOR_S, STALL_RATIO, Spans, merged, stalls


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
            f"all {plural(agg.decided, 'step')} in one span of time ({seconds:.3g} s{pace}), "
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
        mark_resumes(ax, agg, on_time=True, scale=scale)
        return drawn

    return Panel(title, draw)


def _decided_line(agg: RunAggregate, x: Floats, y: Floats, scale: float, unit: str) -> Panel:
    def draw(ax: Axes) -> Drawn:
        (line,) = ax.plot(
            x / scale, y, color=COLORS[0], linewidth=1.2, marker=marker_for(len(x)), markersize=3
        )
        ax.set_xlabel(f"wall time ({unit} from the start)")
        ax.set_ylabel("steps decided (all items)" if agg.many else "steps decided")
        _idle(ax, agg, scale)
        mark_resumes(ax, agg, on_time=True, scale=scale)
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
        scale, unit = time_unit(float(b.t_end[has].max()))
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
        f"{plural(agg.decided, 'step')} decided in {plural(len(agg.attempts), 'attempt')}; "
        f"{plural(len(agg.attempts) - 1, 'resume point')} marked; grey: the run was not "
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
    scale, unit = time_unit(max(float(line.t.max()), agg.end_s))
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
        f"{plural(agg.decided, 'step')} decided over its {what}{counts} in "
        f"{plural(len(agg.attempts), 'attempt')}; {plural(len(agg.attempts) - 1, 'resume point')} "
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
        scale, unit = time_unit(agg.end_s)
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
        f"{plural(agg.decided, 'step')} decided in {plural(len(agg.attempts), 'attempt')}{rate}. "
        "This journal holds no commit times (it was written before they were kept, or "
        "nothing is committed yet), so its attempts are drawn instead of a progress line."
    )
    return compose("progress", "Progress: attempts and items", caption, [left, right])
