"""Benchmark: the paper's 20-disk Towers of Hanoi on the simulated model.

Prints one JSON line: unerring's cost per decided step (journal on, default settings), the
straightforward voting loop's cost measured in the same run (bench/naive.py), their ratio,
peak memory at two sizes (flat in the number of steps?), and samples per step against the
formula. Each measured program runs in its own process, so memory and warm-up don't mix.

    python bench/hanoi.py                 # 3 x the full 1,048,575-step run (~5 minutes)
    python bench/hanoi.py --disks 16 --reps 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIM = "sim:error=0.01,wrong_answers=1"


def run_child(args: list[str]) -> tuple[dict[str, Any], float]:
    """Run a Python child; return its JSON output and its own peak RSS in MB."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed ({proc.returncode}): {err.strip()[-500:]}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024.0


def unerring_run(disks: int, store: str) -> tuple[dict[str, Any], float]:
    return run_child(
        [
            "-m",
            "unerring",
            "run",
            "hanoi",
            "--disks",
            str(disks),
            "--model",
            SIM,
            "--target",
            "0.95",
            "--json",
            "--store",
            store,
        ]
    )


def naive_run(disks: int, k: int) -> tuple[dict[str, Any], float]:
    code = (
        f"import json,sys; sys.path.insert(0, {str(HERE)!r}); import naive; "
        f"print(json.dumps(naive.run({disks}, {k}, 0.01)))"
    )
    return run_child(["-c", code])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--disks", type=int, default=20)
    ap.add_argument("--small", type=int, default=16, help="size of the memory comparison run")
    ap.add_argument(
        "--reps",
        type=int,
        default=3,
        help="unerring and naive runs, alternated; medians are reported (the machine is noisy)",
    )
    args = ap.parse_args()
    from unerring.planning.reliability import expected_samples

    runs: list[dict[str, Any]] = []
    naives: list[dict[str, Any]] = []
    rss: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        _, rss_small = unerring_run(args.small, os.path.join(tmp, "small.db"))
        for rep in range(args.reps):
            db = os.path.join(tmp, f"big{rep}.db")
            big, rss_big = unerring_run(args.disks, db)
            journal_mb = sum(p.stat().st_size for p in Path(tmp).glob(f"big{rep}.db*")) / 2**20
            for p in Path(tmp).glob(f"big{rep}.db*"):
                p.unlink()
            runs.append(big)
            rss.append(rss_big)
            naives.append(naive_run(args.disks, big["k"])[0])
    big = runs[0]
    k = big["k"]
    p = 0.99
    us = [r["us_per_step"] for r in runs]
    naive_us = [n["us_per_step"] for n in naives]
    # each unerring run against the naive run right after it: the pairs share the
    # machine's mood, so their ratios scatter less than the times themselves
    ratios = [u / n for u, n in zip(us, naive_us, strict=True)]
    result = {
        "bench": "hanoi",
        "disks": args.disks,
        "reps": args.reps,
        "steps": big["steps_decided"],
        "k": k,
        "errors": max(r["errors"] for r in runs),
        "status": big["status"],
        "us_per_step": round(statistics.median(us), 2),
        "us_per_step_runs": [round(u, 2) for u in us],
        "us_per_sample": round(statistics.median(us) * big["steps_decided"] / big["samples"], 2),
        "naive_us_per_step": round(statistics.median(naive_us), 2),
        "naive_us_per_step_runs": [round(u, 2) for u in naive_us],
        "naive_errors": max(n["errors"] for n in naives),
        "ratio_vs_naive": round(statistics.median(ratios), 3),
        "ratio_vs_naive_runs": [round(r, 3) for r in ratios],
        "samples_per_step": round(big["samples_per_step"], 4),
        "formula_samples_per_step": round(expected_samples(p, k), 4),
        "peak_rss_mb": round(max(rss), 1),
        f"peak_rss_mb_{args.small}_disks": round(rss_small, 1),
        "rss_growth": round(max(rss) / rss_small, 3),
        "journal_mb": round(journal_mb, 1),
        "targets": {"us_per_step": 40, "ratio_vs_naive": 0.6, "peak_rss_mb": 300},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
