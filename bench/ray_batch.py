"""Benchmark: the Ray executor against the local one, measured in the same run.

Prints one JSON line per measurement; each compares medians of alternated runs (local,
ray, local, ray, ...), every run a CLI process of its own, journaling to a file store:

- cpu: 256 items of 10-disk Hanoi on a model that answers at once (all CPU: parsing,
  voting, the journal), local against `--workers 2` (goal: at least 1.4x the local
  executor's decided steps per second on 2 cores);
- latency: items of Hanoi on `latency=lognormal:100:0.5`, local at 64 requests in flight
  against 4 workers x 16 (goal: within 20% of local, zero errors).

A rate is decided steps per second of the attempt (the summary's wall_s: from the start
of the attempt, actors' start included, to its last commit); `e2e` rates also count the
process's start and its connection to the cluster. One local Ray cluster (127.0.0.1) is
started for the whole benchmark, as a team running many batches keeps one.

    python bench/ray_batch.py                 # both rows, 3 runs each way
    python bench/ray_batch.py --what cpu --repeat 5
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

LATENCY = "lognormal:100:0.5"


def start_cluster(cpus: int) -> str:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # 127.0.0.1 only
    import ray

    ray.init(
        address="local",
        num_cpus=cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    return str(ray.get_runtime_context().gcs_address)


def one(args: list[str], tmp: str, n: int) -> tuple[dict[str, Any], float, float]:
    """A run's summary, its process's wall time and CPU seconds (the driver's, for Ray:
    the actors are the cluster's processes, and report their own)."""
    cmd = [sys.executable, "-m", "unerring", "run", "hanoi", "--json"]
    cmd += ["--store", f"{tmp}/run{n}.db", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall, cpu


def compare(local: list[str], far: list[str], repeat: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"local": [], "ray": []}
    e2e: dict[str, list[float]] = {"local": [], "ray": []}
    cpu: dict[str, list[float]] = {"local": [], "ray": [], "ray_workers": []}
    load0 = os.getloadavg()[0]
    last: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        for _ in range(repeat):
            for name, args in (("local", local), ("ray", far)):
                s, wall, used = one(args, tmp, n)
                n += 1
                assert s["status"] == "completed", s["reason"]
                steps = s["steps_decided"]
                rates[name].append(steps / s["wall_s"])
                e2e[name].append(steps / wall)
                cpu[name].append(1e6 * used / steps)
                if name == "ray":
                    cpu["ray_workers"].append(1e6 * s["worker_cpu_s"] / steps)
                last[name] = s
    lo, ra = statistics.median(rates["local"]), statistics.median(rates["ray"])
    return {
        "steps": last["ray"]["steps_decided"],
        "errors": last["ray"]["errors"] + last["local"]["errors"],
        "same_samples": last["ray"]["samples"] == last["local"]["samples"],
        "local_steps_per_s": round(lo, 1),
        "ray_steps_per_s": round(ra, 1),
        "ray_vs_local": round(ra / lo, 3),
        "e2e_local_steps_per_s": round(statistics.median(e2e["local"]), 1),
        "e2e_ray_steps_per_s": round(statistics.median(e2e["ray"]), 1),
        "e2e_ray_vs_local": round(
            statistics.median(e2e["ray"]) / statistics.median(e2e["local"]), 3
        ),
        # CPU microseconds per decided step: where the work went (on a shared machine the
        # ratio of rates also says how many cores the runs could get)
        "local_cpu_us_per_step": round(statistics.median(cpu["local"]), 1),
        "ray_driver_cpu_us_per_step": round(statistics.median(cpu["ray"]), 1),
        "ray_workers_cpu_us_per_step": round(statistics.median(cpu["ray_workers"]), 1),
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "cores": os.cpu_count(),
        "runs_each": repeat,
        "local_rates": [round(x, 1) for x in rates["local"]],
        "ray_rates": [round(x, 1) for x in rates["ray"]],
    }


def cpu(address: str, items: int, disks: int, workers: int, repeat: int) -> dict[str, Any]:
    common = ["--disks", str(disks), "--batch", str(items), "--k", "3"]
    common += ["--model", "sim:error=0.01", "--quiet"]
    far = [*common, "--executor", "ray", "--workers", str(workers), "--ray-address", address]
    row = {"bench": "ray-cpu", "items": items, "disks": disks, "workers": workers}
    return {**row, **compare(common, far, repeat)}


def latency(address: str, items: int, disks: int, repeat: int) -> dict[str, Any]:
    common = ["--disks", str(disks), "--batch", str(items), "--k", "3", "--quiet"]
    common += ["--model", f"sim:error=0.01,latency={LATENCY}", "--concurrency", "64"]
    far = [*common, "--executor", "ray", "--workers", "4", "--ray-address", address]
    row = {"bench": "ray-latency", "items": items, "disks": disks, "in_flight": "64 vs 4x16"}
    return {**row, **compare(common, far, repeat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--what", choices=("all", "cpu", "latency"), default="all")
    ap.add_argument("--repeat", type=int, default=3, help="runs each way (medians)")
    ap.add_argument("--items", type=int, default=256, help="items of the cpu row")
    ap.add_argument("--disks", type=int, default=10, help="disks of the cpu row's items")
    ap.add_argument("--workers", type=int, default=2, help="Ray workers of the cpu row")
    ap.add_argument("--lat-items", type=int, default=256, help="items of the latency row")
    ap.add_argument("--lat-disks", type=int, default=5, help="disks of the latency row")
    a = ap.parse_args()
    address = start_cluster(max(4, os.cpu_count() or 1))
    if a.what in ("all", "cpu"):
        print(json.dumps(cpu(address, a.items, a.disks, a.workers, a.repeat)), flush=True)
    if a.what in ("all", "latency"):
        print(json.dumps(latency(address, a.lat_items, a.lat_disks, a.repeat)), flush=True)


if __name__ == "__main__":
    main()
