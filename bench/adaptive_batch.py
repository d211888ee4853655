"""Benchmark: the adaptive stopping rule on a batch, where items learn from one another.

A batch of Towers of Hanoi items with 5% hard steps (`sim:error=0.1,hard=0.05,
hard_error=0.45`), target 0.99 over all the batch's steps; both rules planned from the
model's own error rates, then both told only one error rate (`--error-rate 0.1175`, what
a calibration measures), which plans ahead-by-k for i.i.d. errors and gives the adaptive
rule a weak prior to learn from. Prints one JSON line per run.

    python bench/adaptive_batch.py                  # 128 items of 8 disks (~2 minutes)
    python bench/adaptive_batch.py --items 32 --disks 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from unerring.app.options import BatchItem, RunConfig, configure
from unerring.app.runner import execute
from unerring.tasks.registry import task_processes

MODEL = "sim:error=0.1,hard=0.05,hard_error=0.45,seed=1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=128)
    ap.add_argument("--disks", type=int, default=8)
    args = ap.parse_args()
    batch = [BatchItem(str(i), {"disks": args.disks}) for i in range(1, args.items + 1)]
    for error_rate in (None, 0.1175):
        for rule in ("ahead-by-k", "adaptive"):
            t0 = time.perf_counter()
            config = configure(
                RunConfig(),
                {
                    "model": MODEL,
                    "target": 0.99,
                    "error_rate": error_rate,
                    "stopping": rule,
                    "on_undecided": "plurality",
                    "record": "decisions",
                    "handle_signals": False,
                },
            )
            s = execute(config, task_processes("hanoi"), batch=batch).summary
            learnt = s.get("stopping_state", {}).get("model")
            print(
                json.dumps(
                    {
                        "bench": "adaptive_batch",
                        "items": args.items,
                        "disks": args.disks,
                        "error_rate_given": error_rate,
                        "rule": rule,
                        "k": s["k"] if rule == "ahead-by-k" else None,
                        "steps": s["steps_decided"],
                        "errors": s["errors"],
                        "undecided": s["undecided"],
                        "samples_per_step": round(s["samples_per_step"], 3),
                        "learnt": learnt,
                        "wall_s": round(time.perf_counter() - t0, 1),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
