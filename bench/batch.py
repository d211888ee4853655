"""Benchmark: many steps in flight (the scheduler): batches, faults, speculation.

Prints one JSON line per measurement, each against its baseline measured in the same run:

- throughput: 200 items of 8-disk Hanoi on a model with lognormal latency (median 100 ms,
  sigma 0.5), k = 3, 64 requests in flight, against the ideal 64 / (mean sample latency x
  samples per step) steps/s, and against one item run alone;
- scale: 1,024 items of 10-disk Hanoi on a model without latency (1,047,552 steps) against
  the single 20-disk chain (1,048,575 steps), cost per decided step and peak memory (also at
  256 items: flat in the number of items?);
- faults: the throughput batch with transport faults injected, against the fault-free one;
- speculation: one 10-disk chain on the latency model, with and without `--speculate`.

Every measured program runs in its own process (so memory and warm-up don't mix).

    python bench/batch.py                       # everything, full size (~20 minutes)
    python bench/batch.py --what speculation    # one measurement
    python bench/batch.py --items 40 --disks 6  # a quick look at the latency rows
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hanoi import run_child

LATENCY = "lognormal:100:0.5"
FAULTS = "timeout=0.1,rate_limit=0.05,server_error=0.05,reset=0.02,truncated=0.02"
MEAN_S = 0.1 * math.exp(0.5**2 / 2)  # a lognormal's mean: median x exp(sigma^2 / 2)


def unerring(*args: str) -> tuple[dict[str, Any], float]:
    return run_child(["-m", "unerring", "run", "hanoi", "--json", *args])


def rate(s: dict[str, Any]) -> float:
    return float(s["steps_decided"]) / float(s["wall_s"])


def latency_batch(items: int, disks: int, faults: str | None) -> dict[str, Any]:
    args = [
        "--disks", str(disks), "--batch", str(items), "--k", "3", "--concurrency", "64",
        "--model", f"sim:error=0.01,latency={LATENCY}", "--store", ":memory:",
    ]  # fmt: skip
    if faults:
        args += ["--inject-faults", faults]
    s, _ = unerring(*args)
    return s


def throughput(items: int, disks: int) -> dict[str, Any]:
    batch = latency_batch(items, disks, None)
    alone, _ = unerring(
        "--disks", str(disks), "--k", "3", "--model", f"sim:error=0.01,latency={LATENCY}",
        "--store", ":memory:",
    )  # fmt: skip
    ideal = 64 / (MEAN_S * batch["samples_per_step"])
    return {
        "bench": "batch-throughput",
        "items": items,
        "disks": disks,
        "steps": batch["steps_decided"],
        "errors": batch["errors"],
        "steps_per_s": round(rate(batch), 1),
        "ideal_steps_per_s": round(ideal, 1),
        "of_ideal": round(rate(batch) / ideal, 3),
        "one_item_steps_per_s": round(rate(alone), 2),
        "vs_one_item": round(rate(batch) / rate(alone), 1),
        "samples_per_step": round(batch["samples_per_step"], 3),
    }


def faults(items: int, disks: int) -> dict[str, Any]:
    clean = latency_batch(items, disks, None)
    faulty = latency_batch(items, disks, FAULTS)
    return {
        "bench": "batch-faults",
        "items": items,
        "disks": disks,
        "faults": FAULTS,
        "errors": faulty["errors"],
        "status": faulty["status"],
        "transport_failures": faulty["transport_failures"],
        "steps_per_s": round(rate(faulty), 1),
        "fault_free_steps_per_s": round(rate(clean), 1),
        "of_fault_free": round(rate(faulty) / rate(clean), 3),
    }


def scale(items: int, small_items: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--k", "4", "--model", "sim:error=0.01", "--quiet"]
        batch, batch_rss = unerring(
            "--disks", "10", "--batch", str(items), *common, "--store", f"{tmp}/batch.db"
        )
        _, small_rss = unerring(
            "--disks", "10", "--batch", str(small_items), *common, "--store", f"{tmp}/small.db"
        )
        chain, chain_rss = unerring("--disks", "20", *common, "--store", f"{tmp}/chain.db")
    return {
        "bench": "batch-scale",
        "items": items,
        "steps": batch["steps_decided"],
        "errors": batch["errors"] + chain["errors"],
        "us_per_step": round(batch["us_per_step"], 1),
        "chain_us_per_step": round(chain["us_per_step"], 1),
        "vs_chain": round(batch["us_per_step"] / chain["us_per_step"], 3),
        "peak_rss_mb": round(batch_rss, 1),
        f"peak_rss_mb_{small_items}_items": round(small_rss, 1),
        "chain_peak_rss_mb": round(chain_rss, 1),
    }


def speculation(disks: int, depth: int) -> dict[str, Any]:
    common = [
        "--disks", str(disks), "--k", "3", "--model", f"sim:error=0.01,latency={LATENCY}",
        "--store", ":memory:",
    ]  # fmt: skip
    off, _ = unerring(*common)
    on, _ = unerring(*common, "--speculate", str(depth))
    ms = 1000 * on["wall_s"] / on["steps_decided"]
    return {
        "bench": "speculation",
        "disks": disks,
        "depth": depth,
        "errors": on["errors"],
        "same_decisions_count": on["samples"] == off["samples"],
        "ms_per_step": round(ms, 1),
        "ms_per_step_without": round(1000 * off["wall_s"] / off["steps_decided"], 1),
        "of_median_latency": round(ms / 100.0, 3),
        "extra_samples": round(on["speculative_samples"] / on["samples"], 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--what",
        choices=("all", "throughput", "scale", "faults", "speculation"),
        default="all",
    )
    ap.add_argument("--items", type=int, default=200, help="items of the latency batches")
    ap.add_argument("--disks", type=int, default=8, help="disks of each latency batch item")
    ap.add_argument("--scale-items", type=int, default=1024)
    ap.add_argument("--spec-disks", type=int, default=10)
    ap.add_argument("--depth", type=int, default=4, help="--speculate of the speculation row")
    a = ap.parse_args()
    rows = {
        "throughput": lambda: throughput(a.items, a.disks),
        "scale": lambda: scale(a.scale_items, max(1, a.scale_items // 4)),
        "faults": lambda: faults(a.items, a.disks),
        "speculation": lambda: speculation(a.spec_disks, a.depth),
    }
    for name, measure in rows.items():
        if a.what in ("all", name):
            print(json.dumps(measure()), flush=True)


if __name__ == "__main__":
    main()
