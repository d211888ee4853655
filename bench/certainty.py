"""Benchmark: the cost of certainty, ahead-by-k against the adaptive stopping rule.

Each row runs Towers of Hanoi on the simulated model with 20 seeds per rule (the same
seeds for both), counts the seeds that finished with zero errors and the samples per step,
and sets the planner's prediction (made before anything is spent) beside the measurement.
Prints one JSON line per row.

    python bench/certainty.py                  # every row, 20 seeds (~5 minutes on 2 cores)
    python bench/certainty.py --seeds 3 --rows hard   # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from unerring.app.options import RunConfig, configure
from unerring.app.runner import execute
from unerring.backends.spec import known_error_mixture, parse_model
from unerring.planning import reliability
from unerring.planning.plan import plan_voting
from unerring.planning.predict import predict
from unerring.tasks.registry import task_processes
from unerring.voting.posterior import ErrorModel

# name: (sim spec, disks, target, --error-rate given to both rules or None, goal)
ROWS: dict[str, tuple[str, int, float, float | None, str]] = {
    "iid": (
        "error=0.01",
        16,
        0.95,
        None,
        "adaptive: zero errors in >= 19 of 20 seeds, samples <= ahead-by-k's",
    ),
    "hard": (
        "error=0.1,hard=0.05,hard_error=0.45",
        10,
        0.99,
        None,
        "adaptive: zero-error share >= ahead-by-k's, with <= 55% of its samples",
    ),
    "worst": (
        "error=0.2,wrong_answers=1",
        10,
        0.99,
        None,
        "adaptive: no more errors than ahead-by-k at the same target",
    ),
    # both rules told only a single error rate (as a calibration would measure it): k is
    # planned for i.i.d. errors; the adaptive rule starts from a weak prior and learns
    "hard-undeclared": (
        "error=0.1,hard=0.05,hard_error=0.45",
        10,
        0.99,
        0.1175,
        "not a goal: what learning the hard steps online buys when the plan misses them",
    ),
}


def measure(row: str, rule: str, seeds: int) -> dict[str, Any]:
    sim, disks, target, error_rate, _ = ROWS[row]
    runs = []
    t0 = time.perf_counter()
    config = None
    for seed in range(seeds):
        config = configure(
            RunConfig(),
            {
                "model": f"sim:{sim},seed={seed}",
                "target": target,
                "error_rate": error_rate,
                "stopping": rule,
                "on_undecided": "plurality",
                "record": "decisions",
                "handle_signals": False,
            },
        )
        s = execute(config, task_processes("hanoi", {"disks": disks})).summary
        runs.append(s)
    assert config is not None
    steps = 2**disks - 1
    voting = plan_voting(config.voting, config.model, steps)
    truth = known_error_mixture(parse_model(f"sim:{sim}"))
    assert truth is not None
    if voting.adaptive is None:
        predicted = reliability.mixture_samples(truth, voting.k)
        p_full = reliability.p_full_mixture(truth, voting.k, steps)
    else:
        pred = predict(voting.adaptive, ErrorModel.from_components(truth))
        predicted, p_full = pred.samples_per_step, pred.p_full
    per_step = [s["samples_per_step"] for s in runs]
    measured = statistics.fmean(per_step)
    return {
        "bench": "certainty",
        "row": row,
        "rule": rule,
        "model": f"sim:{sim}",
        "disks": disks,
        "steps": steps,
        "target": target,
        "error_rate_given": error_rate,
        "k": voting.k if voting.adaptive is None else None,
        "seeds": seeds,
        "zero_error_seeds": sum(1 for s in runs if s["errors"] == 0),
        "errors_total": sum(int(s["errors"]) for s in runs),
        "undecided_total": sum(int(s["undecided"]) for s in runs),
        "samples_per_step": measured,
        "samples_per_step_min_max": [min(per_step), max(per_step)],
        "predicted_samples_per_step": predicted,
        "predicted_vs_measured": predicted / measured - 1.0,
        "predicted_p_full": p_full,
        "wall_s": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"some of {','.join(ROWS)}")
    args = ap.parse_args()
    for row in args.rows.split(","):
        fixed = measure(row, "ahead-by-k", args.seeds)
        adaptive = measure(row, "adaptive", args.seeds)
        adaptive["samples_vs_ahead_by_k"] = adaptive["samples_per_step"] / fixed["samples_per_step"]
        print(json.dumps(fixed), flush=True)
        print(json.dumps({**adaptive, "goal": ROWS[row][4]}), flush=True)


if __name__ == "__main__":
    main()
