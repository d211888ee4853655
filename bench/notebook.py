"""The failure-analysis loop on a simulated run with planted modes; prints one JSON line.

Run A (no notes) -> failure records -> clusters (ARI against the planted labels, which the
clusterer never sees) -> `notes learn` (template writer, paired gate) -> run B with the
accepted notes, same seed -> each planted mode's per-sample error rate before and after.
`--items N` runs both as a batch of N items (the patterns then span items).
Mode disk=2 is curable by a note that names it; mode disk=4 is not (its note must be rejected).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from unerring.analysis.cluster import adjusted_rand_index, cluster
from unerring.analysis.learn import learn
from unerring.analysis.records import build, step_features
from unerring.analysis.taxonomy import CONTENT
from unerring.app.options import BatchItem, RunConfig, configure
from unerring.app.runner import execute
from unerring.journal.store import Store
from unerring.tasks.registry import resolve, task_processes


def mode_rates(db: Path, run_id: str) -> dict[str, float]:
    """Per planted mode: mode-labelled samples / samples on the steps the mode targets
    (over every item of a batch)."""
    store = Store(str(db))
    run = store.get_run(run_id)
    assert run is not None
    on: dict[int, list[str]] = {2: [], 4: []}
    for it in list(store.items(run)):
        features = step_features(store, run_id, it.item_id, resolve=resolve)
        for s in store.samples(run, it.item):
            disk = features[s["step"]].get("disk")
            if disk in on:
                on[int(disk)].append(s["label"])
    store.close()
    return {
        f"mode:disk={d}": sum(1 for x in labels if x == f"mode:disk={d}") / max(1, len(labels))
        for d, labels in on.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--disks", type=int, default=10)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--items", type=int, default=1, help="a batch of this many items (1: a chain)")
    args = ap.parse_args()
    model = f"sim:error=0.01,seed={args.seed},modes=disk:2:0.3:cure+disk:4:0.3:w1"
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"

        def run(run_id: str, notes: str | None) -> dict[str, object]:
            given = {"model": model, "k": args.k, "record": "samples", "notes": notes}
            config = configure(RunConfig(), {**given, "store": str(db), "handle_signals": False})
            items = None
            if args.items > 1:
                items = [BatchItem(str(i), {}) for i in range(1, args.items + 1)]
            factory = task_processes("hanoi", {"disks": args.disks})
            res = execute(config, factory, run_id=run_id, batch=items)
            res.store.close()
            return res.summary

        before = run("before", None)
        store = Store(str(db))
        t0 = time.perf_counter()
        rf = build(store, "before", resolve=resolve)
        recs = [r for r in rf.records if r.category in CONTENT and r.index is not None]
        c = cluster(recs, rf.baseline, rf.baseline_steps, rf.samples)
        cluster_s = time.perf_counter() - t0
        truth = [r.label if r.label and r.label.startswith("mode:") else "background" for r in recs]
        ari = adjusted_rand_index(truth, list(c.assignment))
        t0 = time.perf_counter()
        learned = learn(store, ["before"], model, resolve=resolve, name="bench")
        learn_s = time.perf_counter() - t0
        store.close()
        after = run("after", "bench")
        rb = mode_rates(db, "before")
        ra = mode_rates(db, "after")
    print(
        json.dumps(
            {
                "bench": "notebook",
                "disks": args.disks,
                "items": args.items,
                "k": args.k,
                "model": model,
                "failure_records": len(recs),
                "labels": dict(Counter(truth)),
                "patterns": [p.id for p in c.patterns],
                "pattern_items": {p.id: len(p.items) for p in c.patterns},
                "ari": round(ari, 4),
                "cluster_s": round(cluster_s, 3),
                "gate": {x.pattern: x.outcome for x in learned.candidates},
                "gate_detail": {
                    x.pattern: x.gate.reason for x in learned.candidates if x.gate is not None
                },
                "learn_s": round(learn_s, 3),
                "mode_error_before": {k: round(v, 4) for k, v in rb.items()},
                "mode_error_after": {k: round(v, 4) for k, v in ra.items()},
                "curable_ratio": round(ra["mode:disk=2"] / rb["mode:disk=2"], 4)
                if rb["mode:disk=2"]
                else None,
                "errors_before": before["errors"],
                "errors_after": after["errors"],
                "samples_before": before["samples"],
                "samples_after": after["samples"],
            }
        )
    )


if __name__ == "__main__":
    main()
