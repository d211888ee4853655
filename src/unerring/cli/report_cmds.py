"""`unerring report` and `unerring export --format parquet`: thin shims over reporting/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from unerring.cli.args import add_store, open_store, positive_int
from unerring.cli.items import named_item
from unerring.core.extras import require
from unerring.errors import MissingExtra, OutputError, UsageError
from unerring.journal.store import RunRecord, Store
from unerring.reporting.files import atomic_path, write_bytes
from unerring.tasks.registry import resolve


def _open_checked(path: str) -> Store:
    """The store, read-only (a path that is not a journal is refused: exit 2), checked
    whole: a report or an export reads every record, and a damaged file is refused."""
    store = open_store(path)
    store.check()
    return store


def _run(store: Store, run_id: str) -> RunRecord:
    run = store.get_run(run_id)
    if run is None:
        raise UsageError(f"no run {run_id!r} in {store.path} (see `unerring runs`)")
    return run


def _extra(module: str, extra: str, what: str) -> None:
    try:
        require(module, extra, what)
    except MissingExtra as e:
        raise UsageError(str(e)) from None


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def cmd_report(args: argparse.Namespace) -> int:
    for module in ("numpy", "matplotlib"):
        _extra(module, "report", "unerring report")
    from unerring.reporting.html_report import build_report

    store = _open_checked(args.store)
    run_ids = list(dict.fromkeys(args.run_ids))
    for r in run_ids:
        _run(store, r)
    try:
        # the output is checked (a temporary file made beside it) before the work starts
        with atomic_path(args.output) as tmp:
            html = build_report(store, run_ids, examples=args.examples, resolve=resolve)
            data = html.encode("utf-8", "backslashreplace")
            write_bytes(tmp, data, args.output)
    except OutputError as e:
        raise UsageError(str(e)) from None
    print(f"unerring: wrote {args.output} ({_size(len(data))}, {len(run_ids)} run(s))")
    return 0


def cmd_export_parquet(args: argparse.Namespace) -> int:
    """The parquet branch of `unerring export` (JSONL and CSV stream to stdout)."""
    if not args.output:
        raise UsageError("--format parquet writes a file: give -o FILE")
    _extra("pyarrow", "parquet", "--format parquet")
    from unerring.reporting.export import write_parquet

    store = _open_checked(args.store)
    run = _run(store, args.run_id)
    item = named_item(store, run, args.item)
    try:
        with atomic_path(args.output) as tmp:
            rows = write_parquet(store, run, args.what, tmp, item)
    except OutputError as e:
        raise UsageError(str(e)) from None
    size = Path(args.output).stat().st_size
    print(f"unerring: wrote {args.output} ({rows:,} {args.what}, {_size(size)})", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """Add `report` to the CLI's subparsers."""
    p = sub.add_parser(
        "report",
        help="one self-contained HTML file with plots about one or more runs",
        description="Write one self-contained HTML report (no script, works offline) "
        "about runs: progress, samples, vote margins, red flags, cost against the plan, "
        "transport failures, failure patterns. Needs the report extra: "
        "pip install 'unerring[report]'. A run still going is reported as committed so far.",
    )
    p.add_argument("run_ids", metavar="RUN_ID", nargs="+")
    add_store(p)
    p.add_argument(
        "-o", "--output", default="report.html", help="the HTML file (default report.html)"
    )
    p.add_argument(
        "--examples",
        type=positive_int,
        default=4,
        help="example responses shown per failure pattern (default 4)",
    )
    p.set_defaults(func=cmd_report)
