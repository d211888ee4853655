"""Per-step cost of durable sequential processes: LangGraph, DBOS Transact, unerring.

Prints ONE JSON line. LangGraph (langgraph-checkpoint-sqlite, its default durability and
durability="sync") and DBOS Transact (SQLite system database) run a few thousand trivial
steps; unerring runs simulated Hanoi with its journal on (group commit, the default, and
`--durability sync`), where each decided step also votes over several samples. Every
system runs in its own subprocess, each repetition in the same order, all in this one
benchmark run; times are medians over `--reps`, timed inside each process around the run
only (interpreter start and imports excluded), and each ratio is the median of the
per-repetition ratios. Like for like: DBOS commits every step durably (its only mode), as
do LangGraph's durability="sync" and unerring's `--durability sync` (all SQLite at its
default synchronous=FULL, or FULL set); unerring's default group commit is compared with
DBOS's and LangGraph's defaults separately. LangGraph and DBOS are installed in a
separate virtual environment under bench/out/ (they are not dependencies of unerring).
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

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
VENV = OUT / "competitors-venv"
COMPETITORS = ROOT / "bench" / "competitors"
PINS = ("langgraph==1.2.22", "langgraph-checkpoint-sqlite==3.1.2", "dbos==3.4.0")

UNERRING = """
import json, sys, time
from unerring.app.options import RunConfig, configure
from unerring.app.runner import execute
from unerring.tasks.registry import task_processes
disks, durability, store = int(sys.argv[1]), sys.argv[2], sys.argv[3]
config = configure(RunConfig(), {"model": "sim:error=0.01,wrong_answers=1", "k": 4,
                   "store": store, "durability": durability, "handle_signals": False})
t0 = time.perf_counter()
res = execute(config, task_processes("hanoi", {"disks": disks}), run_id="bench")
res.store.close()
seconds = time.perf_counter() - t0
s = res.summary
assert s["status"] == "completed", s
print(json.dumps({"system": "unerring", "durability": durability, "steps": s["steps_decided"],
                  "samples_per_step": s["samples_per_step"], "seconds": seconds,
                  "per_step_ms": seconds * 1e3 / s["steps_decided"]}))
"""


def venv_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    check = subprocess.run(
        [str(python), "-c", "import langgraph.checkpoint.sqlite, dbos"], capture_output=True
    )
    if check.returncode != 0:
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        if subprocess.run([*pip, *PINS]).returncode != 0:
            # the nearest available versions, recorded in the output
            subprocess.run([*pip, "langgraph", "langgraph-checkpoint-sqlite", "dbos"], check=True)
    return python


def run_json(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed: {res.stderr[-2000:]}")
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1]
    out: dict[str, Any] = json.loads(line)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--langgraph-steps", type=int, default=3000)
    p.add_argument("--dbos-steps", type=int, default=1000)
    p.add_argument("--disks", type=int, default=14, help="unerring, group commit")
    p.add_argument("--sync-disks", type=int, default=11, help="unerring, --durability sync")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    python = str(venv_python())
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        work = Path(tmp)
        for rep in range(args.reps):
            cases: dict[str, list[str]] = {
                "langgraph_default": [
                    python,
                    str(COMPETITORS / "langgraph_steps.py"),
                    "--steps",
                    str(args.langgraph_steps),
                ],
                "langgraph_sync": [
                    python,
                    str(COMPETITORS / "langgraph_steps.py"),
                    "--steps",
                    str(args.langgraph_steps),
                    "--durability",
                    "sync",
                ],
                "dbos": [
                    python,
                    str(COMPETITORS / "dbos_steps.py"),
                    "--steps",
                    str(args.dbos_steps),
                ],
            }
            for name, cmd in cases.items():
                db = work / f"{name}-{rep}.db"
                runs.setdefault(name, []).append(run_json([*cmd, "--db", str(db)]))
            for durability, disks in (("group", args.disks), ("sync", args.sync_disks)):
                db = work / f"unerring-{durability}-{rep}.db"
                runs.setdefault(f"unerring_{durability}", []).append(
                    run_json([sys.executable, "-c", UNERRING, str(disks), durability, str(db)], env)
                )
    ms = {name: statistics.median(r["per_step_ms"] for r in rs) for name, rs in runs.items()}

    def ratio(slow: str, fast: str) -> tuple[float, list[float]]:
        # each repetition's pair ran minutes apart at most, on the same machine's mood:
        # the median of the per-repetition ratios scatters less than a ratio of medians
        pairs = [
            a["per_step_ms"] / b["per_step_ms"] for a, b in zip(runs[slow], runs[fast], strict=True)
        ]
        return round(statistics.median(pairs), 2), [round(x, 2) for x in pairs]

    # like for like: both sides commit every step (fsync) before the next, or both do
    # not wait for the disk; and, for reference, unerring's default against theirs
    compared = {
        "langgraph_sync_over_unerring_sync": ("langgraph_sync", "unerring_sync"),
        "dbos_over_unerring_sync": ("dbos", "unerring_sync"),
        "langgraph_default_over_unerring_group": ("langgraph_default", "unerring_group"),
        "dbos_over_unerring_group": ("dbos", "unerring_group"),
    }
    ratios = {name: ratio(*pair) for name, pair in compared.items()}
    result: dict[str, Any] = {
        "per_step_ms": {name: round(v, 4) for name, v in ms.items()},
        "per_step_ms_all": {
            name: [round(r["per_step_ms"], 4) for r in rs] for name, rs in runs.items()
        },
        "steps": {name: rs[0]["steps"] for name, rs in runs.items()},
        "unerring_samples_per_step": round(runs["unerring_group"][0]["samples_per_step"], 3),
        "ratios": {name: r[0] for name, r in ratios.items()},
        "ratios_all": {name: r[1] for name, r in ratios.items()},
        "versions": {
            **runs["langgraph_default"][0]["versions"],
            **runs["dbos"][0]["versions"],
        },
        "reps": args.reps,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
