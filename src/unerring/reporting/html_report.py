"""`unerring report`: one self-contained HTML file about one or more runs.

Sections are functions from a run's view to a Section (or None when the run has nothing
for them), so that new kinds of runs add sections without touching the others: a batch
has its items section (a bounded table and the distribution over items), a graph its
task tree (depth, width, node status and kinds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from unerring._version import __version__
from unerring.analysis.localize import localize
from unerring.analysis.report import failure_patterns
from unerring.journal.lock import live_status
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.process_factory import FactoryResolver
from unerring.reporting import plots
from unerring.reporting.aggregate import Items, RunAggregate, aggregate
from unerring.reporting.canvas import Plot
from unerring.reporting.page import esc, figure, frame, num, pairs, shown, table
from unerring.reporting.rows import node_status
from unerring.reporting.summary import summary


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

    @property
    def batch(self) -> bool:
        return self.run.kind == "batch"

    @property
    def many(self) -> bool:
        """A batch or a graph: rows name their item (a graph's: its node)."""
        return self.run.many_items


def _overview(v: RunView) -> Section:
    s = v.summary
    total = f" of {s['steps_total']:,}" if s["steps_total"] else ""
    errors = "no checker" if s["errors"] is None else f"{s['errors']:,}"
    rows = [
        ("task", esc(f"{s['task']} {s['task_options']}")),
        ("model", esc(s["model"])),
        ("k", esc("adaptive stopping" if s.get("stopping") == "adaptive" else s["k"])),
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
    if v.batch:
        counts = ", ".join(
            f"{s[f'items_{status}']:,} {status}"
            for status in ("completed", "stopped", "failed", "pending")
        )
        rows.insert(4, ("items", f"{s['items']:,} ({counts})"))
    loc = v.localisation
    if loc.get("first_wrong_step") is not None:
        where = f"{loc['first_wrong_step']:,}"
        if v.batch:
            where = (
                f"item {shown(loc['first_wrong_item'], 200)}, step {where} (by item, then step; "
                f"{loc['wrong_items']:,} item(s) with a wrong step)"
            )
        rows.append(
            (
                "first wrong step",
                f"{where} (tally {esc(loc['tally'])}, "
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


def _figure(plot: Plot, anchor: str) -> str:
    shown = [(s.title, s.series) for s in plot.shown]
    return figure(plot.key, anchor, plot.title, plot.caption, plot.png, shown, plot.left_out)


def _plots(v: RunView) -> Section:
    parts = [_figure(p, v.anchor(f"plot-{p.key}")) for p in plots.run_plots(v.agg, v.incidents)]
    return Section(v.anchor("plots"), "Plots", "".join(parts))


def _attempts(v: RunView) -> Section:
    # a batch's attempt starts no step of its own: its items resume where each stopped
    rows = [
        (
            num(a.number),
            *(() if v.many else (num(a.first_step),)),
            num(a.start_s, 5),
            ("running" if a.status == "running" else "–") if a.end_s is None else num(a.end_s, 5),
            esc(a.status),
            shown(a.reason, 300)
            or ("its process ended without a word (killed)" if a.status == "interrupted" else ""),
        )
        for a in v.agg.attempts
    ]
    first = () if v.many else ("first step",)
    headers = ("attempt", *first, "start (s)", "end (s)", "status", "reason")
    numeric = (0, 1, 2) if v.many else (0, 1, 2, 3)
    return Section(v.anchor("attempts"), "Attempts", table(headers, rows, numeric=numeric))


def _item_column(v: RunView, indices: Sequence[int]) -> Callable[[int], tuple[str, ...]]:
    """A batch's (a graph's) tables name each row's item (node) by its id first; a chain's
    have no such column."""
    if not v.many:
        return lambda _: ()
    ids = v.store.item_ids(v.run, indices)
    return lambda i: (shown(ids.get(i, str(i + 1)), 200),)


def _slowest(v: RunView) -> Section | None:
    if not v.agg.slowest:
        return None
    item = _item_column(v, [i for _, i, _ in v.agg.slowest])
    rows = [(*item(i), num(step), f"{elapsed * 1e3:,.2f}") for elapsed, i, step in v.agg.slowest]
    first = ("item",) if v.many else ()
    n = len(first)
    return Section(
        v.anchor("slowest"),
        "Slowest steps",
        table((*first, "step", "elapsed (ms)"), rows, numeric=(n, n + 1)),
    )


def _transport(v: RunView, limit: int = 20) -> Section | None:
    found = list(islice(v.store.transport_failures(v.run), limit))
    if not found:
        return None
    item = _item_column(v, [int(row["item"]) for row in found])
    rows = [
        (
            num(round(float(row["time"]) - v.agg.start, 3), 6),
            *item(int(row["item"])),
            num(int(row["step"])),
            num(int(row["attempt"])),
            esc(row["kind"]),
            "yes" if row["retried"] else "no",
            shown(row["message"], 200),
        )
        for row in found
    ]
    total = sum(len(t) for t in v.agg.transport.values())
    more = f"<p class='muted'>The first {limit} of {total:,}.</p>" if total > limit else ""
    first = ("item",) if v.many else ()
    n = len(first)
    headers = ("time (s)", *first, "step", "attempt", "kind", "retried", "message")
    return Section(
        v.anchor("transport"),
        "Transport failures",
        table(headers, rows, numeric=(0, n + 1, n + 2)) + more,
    )


FIRST_ITEMS = 50  # items listed from the start of a batch
NOT_COMPLETED = 200  # and at most this many of those not completed after them


def _item_row(it: ItemRecord) -> tuple[str, ...]:
    st = it.stats
    decided = int(st.get("steps_decided", 0))
    total = f" / {it.steps_total:,}" if it.steps_total is not None else ""
    checked = int(st.get("checked", 0)) > 0 or decided == 0
    return (
        shown(it.item_id, 200),
        esc(it.status),
        f"{decided:,}{total}",
        num(int(st.get("errors", 0))) if checked else "–",
        num(int(st.get("samples", 0))),
        f"${float(st.get('cost', 0.0)):,.4f}",
        shown(it.reason, 300),
    )


def item_rows(
    store: Store, run: RunRecord, first: int = FIRST_ITEMS, unfinished: int = NOT_COMPLETED
) -> tuple[list[ItemRecord], list[ItemRecord]]:
    """The items a batch's table lists: the first `first`, then up to `unfinished` of those
    not completed after them (bounded, however large the batch)."""
    head = list(islice(store.items(run), first))
    last = head[-1].item if len(head) == first else None
    later = (
        []
        if last is None
        else list(
            islice((it for it in store.items(run, unfinished=True) if it.item > last), unfinished)
        )
    )
    return head, later


def items_section(v: RunView) -> Section | None:
    """Batches: each item's status, steps, errors, samples and cost (the first items and
    then those not completed, bounded), and the distribution over all the items."""
    items: Items | None = v.agg.items
    if items is None:
        return None
    head, later = item_rows(v.store, v.run, FIRST_ITEMS, NOT_COMPLETED)
    plot = plots.items_plot(v.agg, items)
    parts = [_figure(plot, v.anchor(f"plot-{plot.key}"))]
    headers = ("item", "status", "steps decided", "errors", "samples", "cost", "reason")
    rows = [_item_row(it) for it in head]
    if later:
        rows.append(("…", "", "", "", "", "", ""))
        rows += [_item_row(it) for it in later]
    parts.append(table(headers, rows, numeric=(2, 3, 4, 5)))
    not_completed = items.count - items.by_status.get("completed", 0)
    listed = len(head) + len(later)
    if listed < items.count:
        shown_nc = sum(1 for it in head if it.status != "completed") + len(later)
        parts.append(
            f"<p class='muted'>{listed:,} of {items.count:,} items listed: the first "
            f"{len(head):,}, then {len(later):,} not completed; {shown_nc:,} of the "
            f"{not_completed:,} not completed are listed. "
            f"<code>unerring show {esc(v.run.run_id)}</code> lists them all.</p>"
        )
    return Section(v.anchor("items"), "Items", "".join(parts))


def _verdict(correct: Any) -> str:
    """A graph's checker's verdict on its result, as kept at its end."""
    if correct is None:
        return "unknown (no checker, or not completed)"
    return "yes" if correct else "no"


def tree_section(v: RunView) -> Section | None:
    """Graphs: the task tree's depth, width (nodes at each depth), node status and kinds,
    and the nodes not decided (bounded), aggregated from the journal's node records."""
    if v.run.kind != "graph":
        return None
    levels: dict[int, dict[str, int]] = {}
    kinds: dict[str, int] = {}
    open_nodes: list[ItemRecord] = []
    total = 0
    for it in v.store.items(v.run):
        total += 1
        status = node_status(it)
        level = levels.setdefault(it.depth, {})
        level[status] = level.get(status, 0) + 1
        kinds[it.kind or "step"] = kinds.get(it.kind or "step", 0) + 1
        if status != "decided" and len(open_nodes) < NOT_COMPLETED:
            open_nodes.append(it)
    statuses = sorted({s for level in levels.values() for s in level})
    rows = [
        (str(depth), num(sum(c.values())), *(num(c.get(s, 0)) for s in statuses))
        for depth, c in sorted(levels.items())
    ]
    width = max((sum(c.values()) for c in levels.values()), default=0)
    parts = [
        pairs(
            [
                ("nodes", num(total)),
                ("result correct", _verdict(v.run.stats.get("result_correct"))),
                ("depth", num(max(levels, default=0))),
                ("width (most nodes at one depth)", num(width)),
                ("kinds", esc(", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())))),
            ]
        ),
        table(("depth", "nodes", *statuses), rows, numeric=tuple(range(1, 2 + len(statuses)))),
    ]
    if open_nodes:
        parts.append(
            table(
                ("node", "kind", "status", "depth", "reason"),
                [
                    (
                        shown(it.item_id, 200),
                        esc(it.kind or ""),
                        esc(node_status(it)),
                        str(it.depth),
                        shown(it.reason, 300),
                    )
                    for it in open_nodes
                ],
            )
        )
    return Section(v.anchor("tree"), "Task tree", "".join(parts))


RUN_SECTIONS: tuple[Callable[[RunView], Section | None], ...] = (
    _overview,
    _plots,
    items_section,
    tree_section,
    _attempts,
    _slowest,
    _transport,
)


def _first_steps(pattern: dict[str, Any], many: bool) -> tuple[str, str]:
    """Where a pattern first struck: a chain's steps; with a batch or a graph among the
    runs, each step with its item (a step number alone names no place in a batch)."""
    if not many:
        return ("first steps", esc(", ".join(f"{s:,}" for s in pattern["first_steps"])))
    places = "; ".join(
        f"item {shown(str(p['item']), 200)} step {p['step']:,}" for p in pattern["first_places"]
    )
    more = pattern["steps_affected"] - len(pattern["first_places"])
    tail = f" (and {more:,} more)" if more > 0 else ""
    return ("first places (item, step)", places + tail)


def _failures(report: dict[str, Any]) -> Section:
    sizes = [(str(p["id"]), int(p["size"])) for p in report["patterns"]]
    plot = plots.failures_plot(report["by_category"], sizes)
    parts = [_figure(plot, "failures-plot")]
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
            _first_steps(p, report["batch"]),
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


def _view(
    store: Store,
    run_id: str,
    index: int,
    report: dict[str, Any],
    resolve: FactoryResolver | None,
) -> RunView:
    with store.snapshot():
        run = store.run(run_id)
        agg = aggregate(store, run)
        attempts = len(agg.attempts)
    status = live_status(store.path, run.status, run_id)
    # an attempt marked running whose writer is gone was interrupted, as `runs` says of its
    # run (the same rule): every attempt but the last, and the last unless a writer holds it
    last = len(agg.attempts) - 1
    agg.attempts = [
        replace(a, status=live_status(store.path, a.status, run_id, superseded=i < last))
        for i, a in enumerate(agg.attempts)
    ]
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
        localisation=localize(store, run_id, resolve=resolve).as_dict(),
    )


def build_report(
    store: Store,
    run_ids: Sequence[str],
    *,
    examples: int = 4,
    resolve: FactoryResolver | None,
) -> str:
    """The report's HTML (`resolve` makes the runs' processes again, for step features).
    Raises StoreRefused for a run id the store does not hold.

    Everything is read in one snapshot of the journal: a run still going is shown as one
    committed state, its items' table and its aggregates alike.
    """
    with store.snapshot():
        return _build(store, run_ids, examples, resolve)


def _build(
    store: Store, run_ids: Sequence[str], examples: int, resolve: FactoryResolver | None
) -> str:
    for r in run_ids:
        store.run(r)  # a run the store does not hold is refused before any work
    report = failure_patterns(store, run_ids, examples, resolve=resolve)
    toc: list[tuple[str, str]] = []
    body: list[str] = []
    views = [_view(store, r, i, report, resolve) for i, r in enumerate(run_ids, 1)]
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
