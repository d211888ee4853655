"""The report's plots over a run's steps: samples per step, vote margins, red flags, and
the tokens and cost spent against the plan."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from unerring.reporting.aggregate import RunAggregate
from unerring.reporting.canvas import Drawn, Panel, Plot, compose
from unerring.reporting.drawing import (
    COLORS,
    NOTHING_YET,
    log_if_wide,
    mark_resumes,
    marker_for,
    plural,
    tex_safe,
    time_unit,
)
from unerring.reporting.over_steps import StepGroups, over_steps


def _step_axis(agg: RunAggregate) -> str:
    return "step (within its item; all items summed)" if agg.many else "step"


def _flat(agg: RunAggregate) -> str:
    """Why there is nothing to draw over the steps."""
    if agg.decided == 0:
        return NOTHING_YET
    if agg.many and agg.bins.end <= 1:
        what = "node" if agg.run.kind == "graph" else "item"
        return f"every {what} is one step, so there is nothing to draw over the steps"
    at = int(agg.bins.edges[np.flatnonzero(agg.bins.steps)[0]])
    return (
        f"only step {at:,} has decisions ({plural(agg.decided, 'step')}), so there is nothing "
        "to draw over the steps"
    )


def _bars(ax: Axes, x: Sequence[int], counts: Sequence[int], colors: Sequence[str]) -> Drawn:
    bars = ax.bar(x, counts, width=0.8, color=list(colors))
    log_if_wide(ax, np.array(counts))
    return [("steps", bars)]


def samples(agg: RunAggregate) -> Plot:
    groups = over_steps(agg.bins)
    hist_title = "Samples per step"
    if not agg.samples_hist:
        hist = Panel.out(hist_title, NOTHING_YET)
    elif len(agg.samples_hist) == 1:
        ((v, c),) = agg.samples_hist.items()
        who = "the one step" if c == 1 else f"every one of the {c:,} steps"
        hist = Panel.out(hist_title, f"{who} drew {plural(v, 'sample')}")
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
    caption = f"{plural(agg.samples, 'sample')}, {mean_all:.3f} per step"
    if agg.plan is not None:
        caption += f" (planned {agg.plan.samples_per_step:.3f}: {agg.plan.basis})"
    if groups is not None:
        caption += f"; over the steps: {groups.words(agg.many)}"
    return compose("samples", "Samples per step", caption + ".", [hist, over])


def _samples_over(agg: RunAggregate, g: StepGroups) -> Panel:
    def draw(ax: Axes) -> Drawn:
        drawn: Drawn = []
        mark = marker_for(len(g))
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
        mark_resumes(ax, agg, on_time=False)
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
        rule + f"{plural(contested, 'contested step')} (some valid vote against the winner); "
        f"{int(b.undecided.sum()):,} undecided (taken by plurality)"
    )
    if groups is not None and contested:
        caption += f"; over the steps: {groups.words(agg.many)}"
    return compose("margins", "Vote margins", caption + ".", [hist, over])


def _contested_over(agg: RunAggregate, g: StepGroups) -> Panel:
    def draw(ax: Axes) -> Drawn:
        mark = marker_for(len(g))
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
        mark_resumes(ax, agg, on_time=False)
        return [(share, a), ("votes against", b)]

    return Panel("Contested steps over the steps", draw)


def red_flags(agg: RunAggregate) -> Plot:
    groups = over_steps(agg.bins)
    total = sum(agg.flags.values())
    kinds = ", ".join(f"{k} {v:,}" for k, v in agg.flags.items()) or "none"
    caption = f"{plural(total, 'red-flagged sample')} ({kinds})"
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
                    color=COLORS[i % len(COLORS)], label=tex_safe(kind),
                )  # fmt: skip
                drawn.append((kind, stairs))
                bottom = top
            ax.set_xlabel(_step_axis(agg))
            ax.set_ylabel(
                "red-flagged samples per step" if g.per_step else "red-flagged samples per bin"
            )
            ax.legend(loc="upper right", fontsize=7)
            mark_resumes(ax, agg, on_time=False)
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
        mark = marker_for(len(steps_done))
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
        scale, unit = time_unit(float(b.t_end[has].max()))
        x = b.t_end[has]
        spent = np.cumsum(b.cost if priced else b.prompt_tokens + b.completion_tokens)[has]
        planned_steps = np.cumsum(b.steps)[has]
    elif line is not None and line.steps.any():  # a batch or a graph: its commits' clock
        scale, unit = time_unit(float(line.t.max()))
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
        mark = marker_for(len(x))
        (line_,) = ax.plot(x, spent, color=COLORS[0], marker=mark, ms=3, label="spent")
        drawn: Drawn = [("spent", line_)]
        if agg.plan is not None:
            planned = planned_steps * agg.plan.samples_per_step * per_sample
            (plan,) = ax.plot(x, planned, ls=":", c=COLORS[2], label="plan")
            drawn.append(("plan", plan))
        if on_time:
            ax.set_xlabel(f"wall time ({unit} from the start)")
            mark_resumes(ax, agg, on_time=True, scale=scale)
        else:
            ax.set_xlabel("steps decided (all items, by step within the item)")
        ax.set_ylabel("cost ($, cumulative)" if priced else "tokens (cumulative)")
        ax.legend(loc="upper left", fontsize=7)
        return drawn

    if not on_time:
        title = ("Cost" if priced else "Tokens") + " over the steps against the plan"
    return Panel(title, draw)
