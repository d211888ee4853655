"""Benchmark: the paper's 20-disk Towers of Hanoi on the simulated model.

Prints one JSON line: unerring's cost per decided step (journal on, default settings), the
straightforward voting loop's cost measured in the same run (bench/naive.py), their ratio,
peak memory at two sizes (flat in the number of steps?), and samples per step against the
formula. Each measured program runs in its own process, so memory and warm-up don't mix.

    python bench/hanoi.py                 # the full 1,048,575-step run (a few minutes)
    python bench/hanoi.py --disks 16      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
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
    args = ap.parse_args()
    from unerring.reliability import expected_samples

    with tempfile.TemporaryDirectory() as tmp:
        _, rss_small = unerring_run(args.small, os.path.join(tmp, "small.db"))
        big, rss_big = unerring_run(args.disks, os.path.join(tmp, "big.db"))
        journal_mb = sum(p.stat().st_size for p in Path(tmp).glob("big.db*")) / 2**20
    k = big["k"]
    naive, _ = naive_run(args.disks, k)
    p = 0.99
    result = {
        "bench": "hanoi",
        "disks": args.disks,
        "steps": big["steps_decided"],
        "k": k,
        "errors": big["errors"],
        "status": big["status"],
        "us_per_step": round(big["us_per_step"], 2),
        "us_per_sample": round(big["wall_s"] * 1e6 / big["samples"], 2),
        "naive_us_per_step": round(naive["us_per_step"], 2),
        "naive_errors": naive["errors"],
        "ratio_vs_naive": round(big["us_per_step"] / naive["us_per_step"], 3),
        "samples_per_step": round(big["samples_per_step"], 4),
        "formula_samples_per_step": round(expected_samples(p, k), 4),
        "peak_rss_mb": round(rss_big, 1),
        f"peak_rss_mb_{args.small}_disks": round(rss_small, 1),
        "rss_growth": round(rss_big / rss_small, 3),
        "journal_mb": round(journal_mb, 1),
        "targets": {"us_per_step": 40, "ratio_vs_naive": 0.6, "peak_rss_mb": 300},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
