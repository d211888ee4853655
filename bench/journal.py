"""What durability costs: the journal against `--store :memory:`, its size, and resume latency.

Prints ONE JSON line. Defaults are the issue's: the 20-disk simulated Hanoi run (1,048,575
steps), k=4, `sim:error=0.01,wrong_answers=1`, default record level; `--disks 14` for a
quick look.

- overhead: the same run journaled to a file and to `:memory:`, in this process, in
  alternating order, `--reps` times each; the ratio of medians of end-to-end wall time
  (execute() from call to return, journal flushed and closed).
- size: the journaled run's file once closed (the WAL is checkpointed into it on close).
- resume: a journal holding `--resume-decisions` decisions (the same run stopped there by a
  sample budget), then `unerring resume` in a fresh process. Measured from just before the
  process is spawned to the first sample request of the first new step (logged by a tiny
  wrapper around the simulated model), and to the process's exit after that one step was
  decided and committed (`--durability sync`, stopped by `--max-samples`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from unerring.app.options import RunConfig, configure  # noqa: E402
from unerring.app.runner import execute  # noqa: E402
from unerring.journal.store import Store  # noqa: E402
from unerring.tasks.registry import task_processes  # noqa: E402
from unerring.voting.config import Budget  # noqa: E402

MODEL = "sim:error=0.01,wrong_answers=1"

# `unerring ARGS`, printing to stderr the time of the first sample request
FIRST_DRAW = """
import sys, time
from unerring.backends import sim
from unerring.cli.main import main
draw = sim.SimBackend.sample
seen = []
async def first(self, request):
    if not seen:
        seen.append(1)
        sys.stderr.write(f"first_draw {time.time():.6f} step {request.step}\\n")
    return await draw(self, request)
sim.SimBackend.sample = first
raise SystemExit(main(sys.argv[1:]))
"""


def one_run(
    store: str, disks: int, budget: Budget | None = None
) -> tuple[float, dict[str, object]]:
    given = {"model": MODEL, "k": 4, "store": store, "budget": budget or Budget()}
    config = configure(RunConfig(), {**given, "handle_signals": False})
    t0 = time.perf_counter()
    res = execute(config, task_processes("hanoi", {"disks": disks}), run_id="bench")
    res.store.close()
    return time.perf_counter() - t0, res.summary


def overhead(disks: int, reps: int, work: Path) -> dict[str, object]:
    journaled: list[float] = []
    memory: list[float] = []
    size_mb: list[float] = []
    steps = 0
    samples = 0
    for rep in range(reps):
        order = ("file", "memory") if rep % 2 == 0 else ("memory", "file")
        for kind in order:
            if kind == "memory":
                t, s = one_run(":memory:", disks)
                memory.append(t)
            else:
                db = work / f"overhead-{rep}.db"
                t, s = one_run(str(db), disks)
                journaled.append(t)
                size_mb.append(db.stat().st_size / 1e6)
                if rep < reps - 1:
                    db.unlink()
                else:
                    (work / "complete.db").unlink(missing_ok=True)
                    db.rename(work / "complete.db")
            steps = int(s["steps_decided"])  # type: ignore[call-overload]
            samples = int(s["samples"])  # type: ignore[call-overload]
    mj, mm = statistics.median(journaled), statistics.median(memory)
    return {
        "disks": disks,
        "steps": steps,
        "samples_per_step": round(samples / steps, 4),
        "journaled_s": [round(t, 3) for t in journaled],
        "memory_s": [round(t, 3) for t in memory],
        "journaled_us_per_step": round(mj * 1e6 / steps, 2),
        "memory_us_per_step": round(mm * 1e6 / steps, 2),
        "overhead_ratio": round(mj / mm, 4),
        "journal_mb": round(statistics.median(size_mb), 2),
    }


def resume(decisions: int, disks: int, reps: int, work: Path) -> dict[str, object]:
    complete = Store(str(work / "complete.db"), read_only=True)
    run = complete.get_run("bench")
    assert run is not None
    budget = sum(d["samples"] for d in itertools.islice(complete.decisions(run), decisions))
    complete.close()
    db = work / "resume.db"
    db.unlink(missing_ok=True)
    # the same run, stopped by a sample budget right after its `decisions`-th decision
    _, s = one_run(str(db), disks, Budget(max_samples=int(budget)))
    assert s["steps_decided"] == decisions, s
    first_step: list[float] = []
    whole: list[float] = []
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for _ in range(reps):
        conn = sqlite3.connect(db)
        (stats,) = conn.execute("SELECT stats FROM runs WHERE run_id = 'bench'").fetchone()
        conn.close()
        cap = int(json.loads(stats)["samples"]) + 1  # room for exactly one more step
        args = [
            "resume",
            "bench",
            "--store",
            str(db),
            "--quiet",
            "--durability",
            "sync",
            "--max-samples",
            str(cap),
        ]
        t0 = time.time()
        res = subprocess.run(
            [sys.executable, "-c", FIRST_DRAW, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        t_end = time.time()
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("first_draw ")]
        assert len(lines) == 1, res.stderr
        line = lines[0]
        first_step.append(float(line.split()[1]) - t0)
        whole.append(t_end - t0)
    after = Store(str(db), read_only=True)
    held_run = after.get_run("bench")
    assert held_run is not None
    held = after.count_decisions(held_run)
    after.close()
    return {
        "resume_decisions": decisions,
        "resume_decisions_after": held,
        "resume_first_step_s": round(statistics.median(first_step), 3),
        "resume_first_step_s_all": [round(t, 3) for t in first_step],
        "resume_one_step_and_exit_s": round(statistics.median(whole), 3),
        "resume_measure": "spawn of `unerring resume` to the first sample request of the "
        "first new step; and to exit after that step was committed (sync)",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--disks", type=int, default=20)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--resume-decisions", type=int, default=1_000_000)
    p.add_argument("--resume-reps", type=int, default=3)
    args = p.parse_args()
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        work = Path(tmp)
        result = overhead(args.disks, args.reps, work)
        decisions = min(args.resume_decisions, 2**args.disks - 2 - args.resume_reps)
        result.update(resume(decisions, args.disks, args.resume_reps, work))
    result["model"] = MODEL
    result["k"] = 4
    result["record"] = "contested"
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
