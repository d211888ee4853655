"""How long `unerring report` takes on a long run, and how big the page is.

Prints ONE JSON line. Builds the 20-disk simulated Hanoi journal (1,048,575 steps,
`unerring run hanoi --disks 20 --json`; about 40 s) unless `--store` names one that holds
`--run-id`, then times `unerring report` in a fresh process `--reps` times (median, min,
max of the wall time from spawn to exit) and reports the file's size and how much of the
time the failure analysis (patterns over the run) takes, measured in this process.
`--disks 14` for a quick look. `--batch N` builds a batch of N items of `--disks` disks
instead (`--batch 1024 --disks 10`: 1,047,552 steps in 1,024 items).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from unerring.analysis.report import failure_patterns  # noqa: E402
from unerring.journal.store import Store  # noqa: E402
from unerring.reporting.aggregate import aggregate  # noqa: E402
from unerring.tasks.registry import resolve  # noqa: E402


def unerring(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unerring", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--disks", type=int, default=20)
    ap.add_argument("--store", help="an existing journal (default: build one)")
    ap.add_argument("--run-id", default="bench-report")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="a batch of N items (default: a chain)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or str(Path(tmp) / "runs.db")
        build_s = None
        if not args.store:
            t = time.perf_counter()
            batch = ["--batch", str(args.batch)] if args.batch else []
            unerring("run", "hanoi", "--disks", str(args.disks), "--store", store,
                     "--run-id", args.run_id, "--json", *batch)  # fmt: skip
            build_s = time.perf_counter() - t
        out = Path(tmp) / "report.html"
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            unerring("report", args.run_id, "--store", store, "-o", str(out))
            times.append(time.perf_counter() - t)
        s = Store(store, read_only=True)
        run = s.get_run(args.run_id)
        assert run is not None
        t = time.perf_counter()
        failure_patterns(s, [args.run_id], resolve=resolve)
        patterns_s = time.perf_counter() - t
        t = time.perf_counter()
        agg = aggregate(s, run)
        aggregate_s = time.perf_counter() - t
        print(
            json.dumps(
                {
                    "bench": "report",
                    "steps": agg.decided,
                    "items": None if agg.items is None else agg.items.count,
                    "journal_build_s": None if build_s is None else round(build_s, 1),
                    "report_s_median": round(statistics.median(times), 2),
                    "report_s_min": round(min(times), 2),
                    "report_s_max": round(max(times), 2),
                    "failure_patterns_s": round(patterns_s, 2),
                    "aggregate_s": round(aggregate_s, 2),
                    "bins": len(agg.bins.edges),
                    "html_bytes": out.stat().st_size,
                    "under_30_s": max(times) < 30.0,
                    "under_5_mb": out.stat().st_size < 5_000_000,
                }
            )
        )


if __name__ == "__main__":
    main()
