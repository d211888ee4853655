"""`unerring runs`, `show` and `export`: what a store holds, read back for people (a
table, a summary, a tree) or for programs (JSON, JSON lines, CSV)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from unerring.analysis.records import safe
from unerring.app.outputs import MakeProcess, output_json, output_rows
from unerring.cli import report_cmds
from unerring.cli.args import add_store, children_shown, non_negative_int, open_store
from unerring.cli.items import named_item
from unerring.cli.show_text import summary_lines
from unerring.cli.table import table
from unerring.cli.tree import CHILDREN, render_tree
from unerring.errors import StoreRefused, UnerringError, UsageError
from unerring.journal.store import RunRecord, Store
from unerring.reporting.rows import export_rows
from unerring.reporting.status import status_line
from unerring.reporting.streams import write_csv, write_jsonl
from unerring.reporting.summary import item_summary, summary
from unerring.tasks.registry import resolve


def cmd_runs(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    runs = []
    for record in store.list_runs():
        line = status_line(record, args.store)
        if record.kind == "batch":
            counts = store.item_counts(record)
            line["items"] = sum(counts.values())
            line["items_completed"] = counts.get("completed", 0)
        runs.append(line)
    if args.json:
        print(json.dumps(runs))
        return 0
    if not runs:
        print(f"no runs in {args.store}")
        return 0
    rows: list[tuple[str, ...]] = []
    for r in runs:
        # a graph's total is the planner's count for a run without errors (a wrong answer
        # can change what later nodes must do): an estimate
        about = "~" if r["kind"] == "graph" else ""
        total = f"/{about}{r['steps_total']:,}" if r["steps_total"] else ""
        items = f"{r['items_completed']:,}/{r['items']:,}" if "items" in r else "-"
        rows.append(
            (
                safe(r["run_id"], 200),
                r["task"],
                r["status"],
                items,
                f"{r['steps_decided']:,}{total}",
                r["started"],
                r["last_activity"],
            )
        )
    headers = ("RUN", "TASK", "STATUS", "ITEMS", "STEPS", "STARTED", "LAST")
    for text in table(headers, rows, right=frozenset({3, 4})):
        print(text)
    return 0


def _item_table(store: Store, run: RunRecord) -> None:
    """A batch's items, streamed (a batch may hold 100,000): the id column as wide as the
    longest id, the others as wide as their numbers can be."""
    width = max(4, store.longest_item_id(run))
    print(f"\n{'ITEM':<{width}}  {'STATUS':<9}  {'STEPS':>17}  {'ERRORS':>7}  "
          f"{'SAMPLES':>11}  {'COST':>10}")  # fmt: skip
    for it in store.items(run):
        st = it.stats
        total = f"/{it.steps_total:,}" if it.steps_total else ""
        steps = f"{int(st.get('steps_decided', 0)):,}{total}"
        errors = int(st.get("errors", 0))
        cost = float(st.get("cost", 0.0))
        line = (
            f"{safe(it.item_id, 200):<{width}}  {it.status:<9}  {steps:>17}  {errors:>7,}  "
            f"{int(st.get('samples', 0)):>11,}  {cost:>10.4g}"
        )
        print(line + (f"  {safe(it.reason, 200)}" if it.reason else ""))


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    run = store.get_run(args.run_id)
    if run is None:
        raise StoreRefused(f"no run {args.run_id!r} in {args.store} (see `unerring runs`)")
    if args.tree:
        if run.kind != "graph":
            raise UsageError(f"run {run.run_id!r} is a {run.kind}; --tree shows a graph's nodes")
        for text in render_tree(store, run, args.depth, args.children):
            print(text)
        return 0
    attempts = store.attempts(run)
    item = named_item(store, run, args.item)
    line = status_line(run, args.store)
    if item is not None:
        s = item_summary(run, item, store)
    else:
        s = summary(run, run.stats, None, store, len(attempts))
        s["status"] = line["status"]
    s["progress"] = (
        line["progress"]
        if item is None
        else (
            int(item.stats.get("steps_decided", 0)) / item.steps_total if item.steps_total else None
        )
    )
    s["last_activity"] = line["last_activity"]
    s["config"] = run.config
    if item is not None:  # its state where it ended (a node's output): a JSON value
        s["output"] = output_json(store, run, item, _maker(run))
    if args.json:
        print(json.dumps(s))
        return 0
    for text in summary_lines(s):
        print(text)
    if "items" in s:
        _item_table(store, run)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.what == "outputs" and args.format == "parquet":
        raise UsageError("--what outputs is for --format jsonl or csv")
    if args.format == "parquet":
        return report_cmds.cmd_export_parquet(args)
    if args.output:
        raise UsageError("-o is for --format parquet; jsonl and csv go to standard output")
    store = open_store(args.store)
    store.check()  # a damaged file is refused, not exported wrong (0.2 s a 50 MB store)
    run = store.get_run(args.run_id)
    if run is None:
        raise StoreRefused(f"no run {args.run_id!r} in {args.store} (see `unerring runs`)")
    if args.what == "outputs":
        if args.item is not None:
            raise UsageError("--what outputs writes every item; leave out --item")
        rows = output_rows(store, run, _maker(run))
    else:
        rows = export_rows(store, run, args.what, named_item(store, run, args.item))
    (write_jsonl if args.format == "jsonl" else write_csv)(rows, sys.stdout)
    sys.stdout.flush()
    return 0


def _maker(run: RunRecord) -> MakeProcess | None:
    """Makes a run's item's process again (a chain that journals no state is replayed to
    show its output); None where its task is not one this CLI knows."""
    try:
        factory = resolve(run.task, run.config)
    except UnerringError:
        return None
    return lambda it: factory.make(it.options, it.item_id)


def register(sub: Any) -> None:
    """Add `runs`, `show` and `export` to the CLI's subparsers."""
    runs = sub.add_parser("runs", help="list the runs in a store")
    add_store(runs)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    show = sub.add_parser("show", help="summary of one run (also while it runs)")
    show.add_argument("run_id", metavar="RUN_ID")
    add_store(show)
    show.add_argument("--json", action="store_true")
    show.add_argument("--item", metavar="ID", help="one item of a batch, in the single-run form")
    show.add_argument(
        "--tree", action="store_true", help="a graph run's nodes as a tree (the task memory)"
    )
    show.add_argument(
        "--depth",
        type=non_negative_int,
        metavar="D",
        help="with --tree: show D levels below the first nodes; deeper ones as counts",
    )
    show.add_argument(
        "--children",
        type=children_shown,
        default=CHILDREN,
        metavar="N|all",
        help=f"with --tree: draw the first N children of a node (default {CHILDREN}), "
        "then one line counting the rest; all: every one",
    )
    show.set_defaults(func=cmd_show)

    export = sub.add_parser(
        "export", help="stream a run's records as JSON lines or CSV, or write Parquet"
    )
    export.add_argument("run_id", metavar="RUN_ID")
    add_store(export)
    export.add_argument(
        "--format",
        choices=("jsonl", "csv", "parquet"),
        default="jsonl",
        help="jsonl or csv to standard output; parquet to -o FILE (pip install "
        "'unerring[parquet]')",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="the Parquet file to write")
    export.add_argument(
        "--what",
        choices=("decisions", "samples", "nodes", "outputs"),
        default="decisions",
        help="decisions, samples, a graph's nodes (id, parent, dependencies, status, "
        "input, output, steps, samples, tokens), or outputs: one row per item (id, status, "
        "output: its state where it ended, a node's output; correct: completed with no "
        "checked step wrong, where the task has a checker)",
    )
    export.add_argument("--item", metavar="ID", help="one item of a batch, in the single-run form")
    export.set_defaults(func=cmd_export)
