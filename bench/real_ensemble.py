"""Benchmark: two tiny model families, each alone and together, on the same addition steps.

Starts SmolLM2-135M and Gemma 3 270M, each on its own llama.cpp server on 127.0.0.1 (stopped
by PID), each behind a cache of temperature-0 answers (bench/greedy_cache.py: every vote is
an answer the model gave; a repeated prompt is asked once). Then, in one run:

1. calibrate: `unerring plan --calibrate addition` with both models and all 16 prompt
   variants, one sample each at temperature 0, on the steps of another seed, spread evenly
   over the digit pairs, writing the reliability table (`--save-reliability`);
2. the same steps of the run's seed, voted at temperature 0 over the 16 variants: each
   model alone (k planned from its own calibrated p), the plain two-model ensemble (k from
   the pooled p), and the weighted vote (`--reliability`: samples weighed and routed by
   model, variant and digit pair);
3. prints one JSON line on stdout:
   {"steps", "max_digit", "errors": {...}, "samples_per_step": {...}, "calibration_steps",
   "wall_s"}, and the details (k, undecided, wrong steps, the forecast, the cache and its
   recheck) as one JSON line on stderr.

    python bench/real_ensemble.py                       # --steps 1000 --max-digit 4
    python bench/real_ensemble.py --max-digit 9
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.greedy_cache import greedy_cache, recheck  # noqa: E402
from tests.llama_server import ALIAS, GEMMA, llama_server  # noqa: E402

from unerring.tasks.addition import Addition  # noqa: E402

NAMES = {ALIAS: "smollm2", GEMMA: "gemma"}
MAX_TOKENS = "8"  # an answer is a number of at most two digits


def cli(args: list[str], env: dict[str, str], show: bool = False) -> tuple[int, str, str]:
    """`unerring ARGS`; with `show` its stderr (a calibration's progress) goes to ours."""
    proc = subprocess.run(
        [sys.executable, "-m", "unerring", *args],
        stdout=subprocess.PIPE,
        stderr=None if show else subprocess.PIPE,
        text=True,
        env=env,
    )
    return proc.returncode, proc.stdout, proc.stderr or ""


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (and SIGINT, which a shell's background job ignores) unwind the servers'
    # contexts, which stop them by PID
    raise KeyboardInterrupt


def digits_for(min_steps: int, max_digit: int, seed: int) -> int:
    digits = max(1, min_steps // 2)
    while Addition(digits, max_digit, seed).total_steps() < min_steps:
        digits += 1
    return digits


def run(
    name: str, task: list[str], extra: list[str], db: Path, env: dict[str, str]
) -> dict[str, Any]:
    t0 = time.perf_counter()
    args = ["run", *task, *extra, "--api", "completions", "--max-tokens", MAX_TOKENS,
            "--first-temperature", "0", "--temperature", "0", "--on-undecided", "plurality",
            "--store", str(db), "--run-id", name, "--json"]  # fmt: skip
    code, so, se = cli(args, env)
    if not so.strip():
        raise SystemExit(f"{name} failed ({code}): {se.strip()[-800:]}")
    s = json.loads(so)
    wrong = []
    from unerring.journal.store import Store

    store = Store(str(db), read_only=True)
    record = store.get_run(name)
    assert record is not None
    for d in store.decisions(record):
        if d.get("correct") == 0:
            wrong.append(int(d["step"]))
    store.close()
    return {
        "status": s["status"],
        "steps": s["steps_decided"],
        "errors": s["errors"],
        "samples_per_step": s["samples_per_step"],
        "undecided": s["undecided"],
        "k": s["k"],
        "wrong_steps": wrong[:40],
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--max-digit", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1, help="the run's operands")
    ap.add_argument("--calibration-seed", type=int, default=2, help="the calibration's")
    ap.add_argument(
        "--calibrate-steps",
        type=int,
        help="labelled steps (default: 4 per cell of the digit pairs and carries)",
    )
    ap.add_argument("--variants", default="16")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--recheck", type=int, default=200, help="cached answers asked again")
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="also run the weighted vote straight against the servers, past the cache "
        "(every sample asked anew; its result goes to the details on stderr)",
    )
    ap.add_argument("--store", help="keep the journal here (default: a temporary file)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    t_all = time.perf_counter()
    d = args.max_digit
    cells = (d + 1) ** 2 + (2 * d + 1 if d >= 5 else 0)  # column pairs, and s + 1 questions
    cal_steps = args.calibrate_steps or 4 * cells
    digits = digits_for(args.steps, d, args.seed)
    task = ["addition", "--digits", str(digits), "--max-digit", str(d), "--seed", str(args.seed)]
    # the calibration's trajectory: long enough to hold every cell many times over
    cal_digits = digits_for(min(50 * cal_steps, 4000), d, args.calibration_seed)
    cal_task = ["addition", "--digits", str(cal_digits),
                "--max-digit", str(d), "--seed", str(args.calibration_seed)]  # fmt: skip
    details: dict[str, Any] = {"bench": "real_ensemble", "task": task}
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        caches = {}
        direct = {}
        for alias in (ALIAS, GEMMA):
            url = direct[alias] = stack.enter_context(llama_server(alias=alias))
            caches[alias] = stack.enter_context(greedy_cache(url.rsplit("/v1", 1)[0]))
        models = {a: f"openai:{a}@{c.url}" for a, c in caches.items()}
        env = {**os.environ, "OPENAI_API_KEY": "sk-test-PLANTED-0000"}
        db = Path(args.store) if args.store else Path(tmp) / "runs.db"
        table = Path(tmp) / "reliability.json"
        both = ["--model", models[ALIAS], "--model", models[GEMMA]]
        variants = ["--variants", args.variants]
        count = int(args.variants) if args.variants.isdigit() else len(args.variants.split(","))
        sources = 2 * count  # each model with each variant

        t0 = time.perf_counter()
        code, so, se = cli(["plan", "--calibrate", *cal_task, *both, *variants, "--api",
                            "completions", "--samples", str(cal_steps), "--per-step", "1",
                            "--max-tokens", MAX_TOKENS, "--first-temperature", "0",
                            "--temperature", "0",
                            "--save-reliability", str(table), "--steps", str(args.steps),
                            "--target", str(args.target), "--max-samples-per-step",
                            str(sources), "--json"], env, show=True)  # fmt: skip
        if code != 0:
            raise SystemExit(f"calibration failed ({code}): {se.strip()[-800:]}")
        cal = json.loads(so)
        groups = cal["groups"]
        details["calibration"] = {
            "steps": cal["steps_sampled"],
            "p": {NAMES[a]: groups[f"model {models[a]}"]["p"] for a in models},
            "p_pooled": cal["p"],
            "forecast": cal.get("weighted"),
            "wall_s": round(time.perf_counter() - t0, 1),
        }

        def k_of(group: str, cap: int) -> list[str]:
            """The group's planned k, and a cap on samples per step of at least k (a run
            with few variants may plan a k above the cap its sources suggest)."""
            plan = groups[group].get("plan")
            k = plan["k"] if plan else 4
            return ["--k", str(k), "--max-samples-per-step", str(max(k, cap))]

        single, pair = 3 * sources // 4, 3 * sources // 2  # caps on samples per step
        results = {
            "smollm2": run("smollm2", task, ["--model", models[ALIAS], *variants,
                                             *k_of(f"model {models[ALIAS]}", single)], db, env),
            "gemma": run("gemma", task, ["--model", models[GEMMA], *variants,
                                         *k_of(f"model {models[GEMMA]}", single)], db, env),
            "ensemble_plain": run("ensemble_plain", task,
                                  [*both, *variants, *k_of("pooled", pair)], db, env),
            "ensemble": run("ensemble", task, [*both, *variants, "--reliability", str(table),
                                               "--target", str(args.target),
                                               "--max-samples-per-step", str(sources)], db, env),
        }  # fmt: skip
        details["runs"] = results
        if args.fresh:  # the same table and steps, every answer asked of the model again
            fresh = ["--model", f"openai:{ALIAS}@{direct[ALIAS]}",
                     "--model", f"openai:{GEMMA}@{direct[GEMMA]}"]  # fmt: skip
            details["fresh"] = run("fresh", task, [*fresh, *variants, "--reliability",
                                                   str(table), "--target", str(args.target),
                                                   "--max-samples-per-step", str(sources)],
                                   db, env)  # fmt: skip
        details["cache"] = {NAMES[a]: c.stats() for a, c in caches.items()}
        details["recheck"] = {NAMES[a]: recheck(c, args.recheck // 2) for a, c in caches.items()}
    line = {
        "steps": results["ensemble"]["steps"],
        "max_digit": d,
        "errors": {name: r["errors"] for name, r in results.items()},
        "samples_per_step": {name: round(r["samples_per_step"], 3) for name, r in results.items()},
        "calibration_steps": cal["steps_sampled"],
        "wall_s": round(time.perf_counter() - t_all, 1),
    }
    print(json.dumps(details), file=sys.stderr, flush=True)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
