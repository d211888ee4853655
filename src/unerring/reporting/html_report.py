"""`unerring report`: one self-contained HTML file about one or more runs.

Sections are functions from a run's view to a Section (or None when the run has nothing
for them), so that new kinds of runs add sections without touching the others: a per-item
table for batches and a tree summary for graphs come with the journal's item and node
records (the scheduler rebuild); until then their functions return None.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from unerring import __version__
from unerring.analysis.localize import localize
from unerring.analysis.report import failure_patterns
from unerring.journal.lock import live_status
from unerring.journal.store import MEMORY, RunRecord, Store
from unerring.reporting import plots
from unerring.reporting.aggregate import RunAggregate, aggregate
from unerring.reporting.page import esc, figure, frame, num, pairs, shown, table
from unerring.runner import summary


class UnknownRun(LookupError):
    """A run id that the store does not hold."""


@dataclass(frozen=True, slots=True)
class Section:
    anchor: str
    title: str
    html: str


@dataclass
class RunView:
    """What the sections of one run read: the journal's aggregates, never per-step data."""

    store: Store
    run: RunRecord
    index: int
    status: str
    agg: RunAggregate
    summary: dict[str, Any]
    incidents: list[tuple[float, float]]  # seconds from the run's start
    localisation: dict[str, Any]

    def anchor(self, name: str) -> str:
        return f"run{self.index}-{name}"


def _overview(v: RunView) -> Section:
    s = v.summary
    total = f" of {s['steps_total']:,}" if s["steps_total"] else ""
    errors = "no checker" if s["errors"] is None else f"{s['errors']:,}"
    rows = [
        ("task", esc(f"{s['task']} {s['task_options']}")),
        ("model", esc(s["model"])),
        ("k", esc(s["k"])),
        ("status", esc(v.status) + (f" — {shown(s['reason'], 300)}" if s["reason"] else "")),
        ("steps decided", f"{s['steps_decided']:,}{total}"),
        ("errors (checker)", errors),
        ("undecided", num(s["undecided"])),
        ("samples", f"{s['samples']:,} ({s['samples_per_step']:.3f} per step)"),
        ("red flags", esc(f"{s['red_flags']:,} {s['flags'] or ''}")),
        ("tokens", f"{s['prompt_tokens']:,} in, {s['completion_tokens']:,} out"),
        ("cost", f"${s['cost']:,.4f}"),
        ("transport failures", num(s["transport_failures"])),
        ("wall time", f"{s['wall_s']:,.1f} s ({s['us_per_step']:,.1f} us per step)"),
        ("attempts", num(s["attempts"])),
    ]
    loc = v.localisation
    if loc.get("first_wrong_step") is not None:
        rows.append(
            (
                "first wrong step",
                f"{loc['first_wrong_step']:,} (tally {esc(loc['tally'])}, "
                f"{loc['wrong_steps']:,} wrong in all); winner: "
                f'<pre class="sample">{shown(loc["winner"])}</pre>',
            )
        )
    note = ""
    if v.status == "running":
        note = (
            '<p class="note">This run is still going: the report shows what was committed '
            f"when it was made ({esc(time.strftime('%Y-%m-%d %H:%M:%S'))}).</p>"
        )
    elif v.status == "interrupted":
        note = '<p class="note">This run was interrupted: its writer is gone; resume it.</p>'
    return Section(v.anchor("summary"), "Summary", note + pairs(rows))


def _plots(v: RunView) -> Section:
    parts = [
        figure(p.key, v.anchor(p.key), p.title, p.caption, p.png)
        for p in plots.run_plots(v.agg, v.incidents)
    ]
    return Section(v.anchor("plots"), "Plots", "".join(parts))


def _attempts(v: RunView) -> Section:
    rows = [
        (
            num(a.number),
            num(a.first_step),
            num(a.start_s, 5),
            "running" if a.end_s is None else num(a.end_s, 5),
            esc(a.status),
            shown(a.reason, 300),
        )
        for a in v.agg.attempts
    ]
    headers = ("attempt", "first step", "start (s)", "end (s)", "status", "reason")
    return Section(v.anchor("attempts"), "Attempts", table(headers, rows, numeric=(0, 1, 2, 3)))


def _slowest(v: RunView) -> Section | None:
    if not v.agg.slowest:
        return None
    rows = [(num(step), f"{elapsed * 1e3:,.2f}") for elapsed, step in v.agg.slowest]
    return Section(
        v.anchor("slowest"),
        "Slowest steps",
        table(("step", "elapsed (ms)"), rows, numeric=(0, 1)),
    )


def _transport(v: RunView, limit: int = 20) -> Section | None:
    rows = []
    for row in v.store.transport_failures(v.run):
        rows.append(
            (
                num(round(float(row["time"]) - v.agg.start, 3), 6),
                num(int(row["step"])),
                num(int(row["attempt"])),
                esc(row["kind"]),
                "yes" if row["retried"] else "no",
                shown(row["message"], 200),
            )
        )
        if len(rows) == limit:
            break
    if not rows:
        return None
    total = sum(len(t) for t in v.agg.transport.values())
    more = f"<p class='muted'>The first {limit} of {total:,}.</p>" if total > limit else ""
    headers = ("time (s)", "step", "attempt", "kind", "retried", "message")
    return Section(
        v.anchor("transport"),
        "Transport failures",
        table(headers, rows, numeric=(0, 1, 2)) + more,
    )


def items_section(v: RunView) -> Section | None:
    """Batches: per item status, steps, errors, cost, and the distribution over items.

    The journal has no item records yet (they come with the scheduler); None until then.
    """
    return None


def tree_section(v: RunView) -> Section | None:
    """Graphs: the task tree's depth, width and node status.

    The journal has no node records yet (they come with graphs); None until then.
    """
    return None


RUN_SECTIONS: tuple[Callable[[RunView], Section | None], ...] = (
    _overview,
    _plots,
    items_section,
    tree_section,
    _attempts,
    _slowest,
    _transport,
)


def _failures(report: dict[str, Any]) -> Section:
    sizes = [(str(p["id"]), int(p["size"])) for p in report["patterns"]]
    plot = plots.failures_plot(report["by_category"], sizes)
    parts = [figure(plot.key, "failures-plot", plot.title, plot.caption, plot.png)]
    runs = ", ".join(
        f"{esc(r['run_id'])}: {r['failures']:,} records (samples kept: {esc(r['record_level'])})"
        for r in report["runs"]
    )
    parts.append(f"<p>{runs}.</p>")
    if report["incidents"]:
        rows = [
            (
                esc(i["run_id"]),
                esc(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(i["start"]))),
                f"{i['end'] - i['start']:,.1f}",
                num(i["failures"]),
                num(i["steps"]),
                esc(", ".join(f"{k} {c}" for k, c in i["categories"].items())),
            )
            for i in report["incidents"]
        ]
        parts.append("<h3>Incidents</h3>")
        headers = ("run", "start", "seconds", "failures", "steps", "kinds")
        parts.append(table(headers, rows, numeric=(2, 3, 4)))
    for p in report["patterns"]:
        tax = p["taxonomy"]
        over = ", ".join(f"{x['feature']} ×{x['lift']:.1f}" for x in p["over_represented"][:4])
        details = [
            ("category", esc(p["category"])),
            (
                "taxonomy",
                esc(
                    f"AgentErrorTaxonomy: {tax['AgentErrorTaxonomy']}; TRAIL: {tax['TRAIL']}; "
                    f"MAST: {tax['MAST']}"
                ),
            ),
            (
                "size",
                f"{p['size']:,} failures ({p['share_of_samples']:.3%} of samples), "
                f"{p['steps_affected']:,} steps, {esc(p['nature'])}",
            ),
            ("first steps", esc(", ".join(f"{s:,}" for s in p["first_steps"]))),
        ]
        if over:
            details.append(("over-represented", esc(over)))
        details.append(("advice", esc(p["advice"])))
        examples = "".join(f'<pre class="sample">{shown(e)}</pre>' for e in p["examples"])
        details.append(("examples", examples or "<span class='muted'>none kept</span>"))
        parts.append(
            f'<div class="pattern" data-pattern="{esc(p["id"])}">'
            f"<h3>Pattern {esc(p['id'])}</h3>{pairs(details)}</div>"
        )
    if not report["patterns"]:
        parts.append("<p>No failure pattern: nothing failed, or too little to group.</p>")
    return Section("failures", "Failure patterns", "".join(parts))


def _view(store: Store, run_id: str, index: int, report: dict[str, Any]) -> RunView:
    with store.snapshot():
        run = store.get_run(run_id)
        if run is None:
            raise UnknownRun(run_id)
        agg = aggregate(store, run)
        attempts = len(agg.attempts)
    status = run.status if store.path == MEMORY else live_status(store.path, run.status, run_id)
    incidents = [
        (float(i["start"]) - agg.start, float(i["end"]) - agg.start)
        for i in report["incidents"]
        if i["run_id"] == run_id
    ]
    return RunView(
        store=store,
        run=run,
        index=index,
        status=status,
        agg=agg,
        summary=summary(run, run.stats, None, store, attempts),
        incidents=incidents,
        localisation=localize(store, run_id).as_dict(),
    )


def build_report(store: Store, run_ids: Sequence[str], *, examples: int = 4) -> str:
    """The report's HTML. Raises UnknownRun for a run id the store does not hold."""
    for r in run_ids:
        if store.get_run(r) is None:
            raise UnknownRun(r)
    report = failure_patterns(store, run_ids, examples)
    toc: list[tuple[str, str]] = []
    body: list[str] = []
    views = [_view(store, r, i, report) for i, r in enumerate(run_ids, 1)]
    if len(views) > 1:
        rows = [
            (
                f'<a href="#run{v.index}">{esc(v.run.run_id)}</a>',
                esc(v.run.task),
                esc(v.status),
                num(v.summary["steps_decided"]),
                "–" if v.summary["errors"] is None else num(v.summary["errors"]),
                f"{v.summary['samples_per_step']:.3f}",
                num(v.summary["red_flags"]),
                f"${v.summary['cost']:,.4f}",
                f"{v.summary['wall_s']:,.1f}",
            )
            for v in views
        ]
        headers = ("run", "task", "status", "steps", "errors", "samples/step", "red flags")
        body.append(
            '<section id="overview"><h2>Runs</h2>'
            + table((*headers, "cost", "wall s"), rows, numeric=(3, 4, 5, 6, 7, 8))
            + "</section>"
        )
        toc.append(("overview", "Runs"))
    for v in views:
        parts = []
        for make in RUN_SECTIONS:
            section = make(v)
            if section is not None:
                parts.append(f'<section id="{esc(section.anchor)}"><h3>{esc(section.title)}</h3>')
                parts.append(section.html + "</section>")
        body.append(
            f'<section class="run" id="run{v.index}" data-run="{esc(v.run.run_id)}">'
            f"<h2>Run {esc(v.run.run_id)}</h2>{''.join(parts)}</section>"
        )
        toc.append((f"run{v.index}", f"Run {v.run.run_id}"))
    failures = _failures(report)
    body.append(f'<section id="{failures.anchor}"><h2>{esc(failures.title)}</h2>{failures.html}')
    body.append("</section>")
    toc.append((failures.anchor, failures.title))
    title = "unerring report: " + ", ".join(run_ids)
    subtitle = (
        f"made {time.strftime('%Y-%m-%d %H:%M:%S')} by unerring {__version__} from the "
        f"journal {store.path}; self-contained, no script"
    )
    return frame(title, subtitle, toc, "".join(body))
