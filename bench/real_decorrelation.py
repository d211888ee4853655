"""Benchmark: decorrelating a real model's samples (SmolLM2-135M on llama.cpp, addition).

Starts llama-cpp-python's server on 127.0.0.1 (stopped by PID; `--cache true` keeps the KV
state of recent prompts, so each prompt variant reuses its own prefix), then, one JSON line
per stage as it finishes:

1. calibrate: `unerring plan --calibrate addition --variants LIST`: p, collision rate and
   hard-step share for each variant on its own and pooled;
2. plain: >= 200 steps on the one prompt (today's setting: k, temperatures 0 then 0.1);
3. variants: the same steps with the samples spread over the prompt variants, all at
   temperature 0 (a variant's greedy answer is its vote);
   for both: voted error rate, single-sample error rate (every valid sample, and each
   step's first), the collision rate (first two samples wrong and equal), per variant;
4. notes: `unerring notes learn` on the plain run: what the gate kept or rejected, and why;
5. long (with --long N): N steps with the variants (and the notes, if any were kept).

    python bench/real_decorrelation.py --max-digit 4                 # ~10 minutes
    python bench/real_decorrelation.py --max-digit 4 --long 1000     # + ~17 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.llama_server import ALIAS, llama_server  # noqa: E402

from unerring.journal.store import Store  # noqa: E402
from unerring.tasks.addition import Addition  # noqa: E402


def cli(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "unerring", *args], capture_output=True, text=True, env=env
    )
    return proc.returncode, proc.stdout, proc.stderr


def digits_for(min_steps: int, max_digit: int, seed: int) -> int:
    digits = max(1, min_steps // 2)
    while Addition(digits, max_digit, seed).total_steps() < min_steps:
        digits += 1
    return digits


def score(db: Path, run_id: str, process: Addition) -> dict[str, Any]:
    """Replay the decided path: voted errors, and every kept sample against the truth."""
    store = Store(str(db), read_only=True)
    run = store.get_run(run_id)
    assert run is not None
    winners = [d["winner"] for d in store.decisions(run)]
    by_step: dict[int, list[tuple[int, str]]] = {}
    for row in store.samples(run):
        by_step.setdefault(row["step"], []).append((row["idx"], row["text"]))
    store.close()
    state = process.initial_state()
    wrong_steps: list[int] = []
    valid = wrong = first_valid = first_wrong = 0
    for step, winner in enumerate(winners):
        truth = process.solve(state, step)
        for idx, text in sorted(by_step.get(step, [])):
            got = process.parse(text)
            if not isinstance(got, int):
                continue
            valid += 1
            wrong += got != truth
            if idx == 0:
                first_valid += 1
                first_wrong += got != truth
        answer = process.parse(winner) if winner is not None else None
        if not isinstance(answer, int):
            break
        if answer != truth:
            wrong_steps.append(step)
        state = process.advance(state, answer)
    decided = len(winners)
    return {
        "steps_decided": decided,
        "voted_errors": len(wrong_steps),
        "voted_error_rate": len(wrong_steps) / decided if decided else None,
        "single_sample_error_rate": wrong / valid if valid else None,
        "first_sample_error_rate": first_wrong / first_valid if first_valid else None,
        "samples_scored": valid,
        "wrong_steps": wrong_steps[:30],
    }


def run_stage(
    name: str, task: list[str], extra: list[str], db: Path, env: dict[str, str], process: Addition
) -> dict[str, Any]:
    t0 = time.perf_counter()
    args = ["run", *task, *extra, "--record", "samples", "--on-undecided", "plurality"]
    code, so, se = cli([*args, "--store", str(db), "--run-id", name, "--json"], env)
    if not so.strip():
        raise SystemExit(f"{name} failed ({code}): {se.strip()[-800:]}")
    s = json.loads(so)
    out: dict[str, Any] = {
        "stage": name,
        "options": extra,
        "status": s["status"],
        "samples_per_step": s["samples_per_step"],
        "undecided": s["undecided"],
        "red_flags": s["red_flags"],
        "wall_s": time.perf_counter() - t0,
    }
    out.update(score(db, name, process))
    code, so, se = cli(["failures", name, "--store", str(db), "--json"], env)
    if code == 0:
        c = json.loads(so)["correlation"][0]
        out["collision_rate"] = c["collision_rate"]
        out["collisions"] = c["collisions"]
        out["hard_share"] = c["hard_share"]
        out["groups"] = c["groups"]
        out["warnings"] = c["warnings"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-steps", type=int, default=200)
    ap.add_argument("--max-digit", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variants", default="16", help="N or a list (see unerring run --help)")
    ap.add_argument("--k", type=int, default=3, help="the plain run's k")
    ap.add_argument("--variants-k", type=int, default=4, help="the variants run's k")
    ap.add_argument(
        "--variants-cap",
        type=int,
        default=48,
        help="samples per step at most in the variants runs (at temperature 0 a variant "
        "repeats its answer: three rounds of 16 add nothing a fourth would not)",
    )
    ap.add_argument("--calibrate-steps", type=int, default=25)
    ap.add_argument("--long", type=int, default=0, help="steps of a long variants run (0: none)")
    ap.add_argument("--stages", default="calibrate,plain,variants,notes,long")
    ap.add_argument("--store", help="keep the journal here (default: a temporary file)")
    ap.add_argument("--notes", help="a notebook in the store for the long run (NAME@V)")
    args = ap.parse_args()
    stages = set(args.stages.split(","))

    digits = digits_for(args.min_steps, args.max_digit, args.seed)
    process = Addition(digits, args.max_digit, args.seed)
    task = ["addition", "--digits", str(digits), "--max-digit", str(args.max_digit),
            "--seed", str(args.seed)]  # fmt: skip
    model = ["--model", f"openai:{ALIAS}", "--api", "completions"]
    head = {"bench": "real_decorrelation", "model": f"openai:{ALIAS}", "task": task}
    with llama_server(extra=("--cache", "true")) as url, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "UNERRING_BASE_URL": url, "OPENAI_API_KEY": "sk-test-PLANTED-0000"}
        db = Path(args.store) if args.store else Path(tmp) / "runs.db"
        if "calibrate" in stages:
            t0 = time.perf_counter()
            code, so, se = cli(["plan", "--calibrate", *task, *model, "--variants",
                                args.variants, "--samples", str(args.calibrate_steps),
                                "--json"], env)  # fmt: skip
            if code != 0:
                raise SystemExit(f"calibration failed: {se.strip()}")
            cal = json.loads(so)
            print(json.dumps({**head, "stage": "calibrate", "p": cal["p"],
                              "collision_rate_pooled": cal["collision_rate"],
                              "hard_share_pooled": cal["hard_share"], "groups": cal["groups"],
                              "warnings": [ln for ln in se.splitlines() if "warning" in ln],
                              "wall_s": time.perf_counter() - t0}), flush=True)  # fmt: skip
        plain = ["--k", str(args.k)]
        varied = ["--k", str(args.variants_k), "--variants", args.variants,
                  "--first-temperature", "0", "--temperature", "0",
                  "--max-samples-per-step", str(args.variants_cap)]  # fmt: skip
        if "plain" in stages:
            print(json.dumps({**head, **run_stage("plain", task, [*model, *plain], db, env,
                                                   process)}), flush=True)  # fmt: skip
        if "variants" in stages:
            print(json.dumps({**head, **run_stage("variants", task, [*model, *varied], db,
                                                   env, process)}), flush=True)  # fmt: skip
        notebook = args.notes
        if "notes" in stages:
            t0 = time.perf_counter()
            code, so, se = cli(["notes", "learn", "plain", "--model", f"openai:{ALIAS}",
                                "--store", str(db), "--name", "smollm2-addition",
                                "--json"], env)  # fmt: skip
            learnt = json.loads(so) if code == 0 and so.strip() else {"error": se.strip()}
            nb = learnt.get("notebook") or {}
            if nb.get("accepted"):
                notebook = f"smollm2-addition@{nb['version']}"
            print(json.dumps({**head, "stage": "notes", "result": learnt,
                              "wall_s": time.perf_counter() - t0}), flush=True)  # fmt: skip
        if "long" in stages and args.long:
            digits = digits_for(args.long, args.max_digit, args.seed + 1)
            long_process = Addition(digits, args.max_digit, args.seed + 1)
            long_task = ["addition", "--digits", str(digits), "--max-digit",
                         str(args.max_digit), "--seed", str(args.seed + 1)]  # fmt: skip
            extra = [*model, *varied] + (["--notes", notebook] if notebook else [])
            out = run_stage("long", long_task, extra, db, env, long_process)
            print(json.dumps({**head, "task": long_task, **out}), flush=True)


if __name__ == "__main__":
    main()
