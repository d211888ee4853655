"""Benchmark: a real long run of `addition` on a real local model (SmolLM2-135M, llama.cpp).

Starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1 (stopped by PID), then:
1. measures one request with `n` against one request per sample, and what a stable prompt
   prefix saves (the server reuses the KV cache of the previous prompt's common prefix);
2. calibrates with `unerring plan --calibrate addition` (p, collisions, planned k, warnings);
3. runs >= 200 steps with the planned k (`unerring run addition --record samples`);
4. scores, on the same steps, what the first sample alone (temperature 0) would have given.
Prints one JSON line.

    python bench/real_model.py                      # about 5-10 minutes on 2 cores
    python bench/real_model.py --min-steps 60 --calibrate-steps 40   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
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

from unerring.backends.openai import OpenAICompatible  # noqa: E402
from unerring.backends.openai_config import NMode, OpenAIConfig  # noqa: E402
from unerring.core.samples import SampleRequest  # noqa: E402
from unerring.journal.store import Store  # noqa: E402
from unerring.tasks.addition import Addition  # noqa: E402


def cli(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "unerring", *args], capture_output=True, text=True, env=env
    )
    return proc.returncode, proc.stdout, proc.stderr


async def _timed(url: str, mode: NMode, prompts: list[str], n: int) -> float:
    backend = OpenAICompatible(OpenAIConfig(ALIAS, url, api="completions", n_mode=mode,
                                            stop=("\n",)))  # fmt: skip
    started = time.perf_counter()
    for step, prompt in enumerate(prompts):
        await backend.sample(SampleRequest(prompt, step, 1, n, 8, temperature=0.7))
    elapsed = time.perf_counter() - started
    await backend.aclose()
    return elapsed / (len(prompts) * n)


def transport_measurements(url: str, process: Addition) -> dict[str, Any]:
    state = process.initial_state()
    prompts = []
    for step in range(12):
        prompts.append(process.prompt(state, step))
        state = process.advance(state, process.solve(state, step))
    # the same questions with the step-specific line first: no common prefix to reuse
    moved = [p.rsplit("\n", 1)[1] + "\n" + p.rsplit("\n", 1)[0] for p in prompts]
    asyncio.run(_timed(url, "separate", prompts[:2], 1))  # warm up
    return {
        "s_per_sample_n_request": asyncio.run(_timed(url, "n", prompts, 4)),
        "s_per_sample_separate_requests": asyncio.run(_timed(url, "separate", prompts, 4)),
        "s_per_sample_stable_prefix": asyncio.run(_timed(url, "separate", prompts, 1)),
        "s_per_sample_varying_prefix": asyncio.run(_timed(url, "separate", moved, 1)),
    }


def digits_for(min_steps: int, max_digit: int, seed: int) -> int:
    digits = max(1, min_steps // 2)
    while Addition(digits, max_digit, seed).total_steps() < min_steps:
        digits += 1
    return digits


def single_sample_score(db: Path, run_id: str, process: Addition) -> tuple[int, int, list[int]]:
    """Replay the run's decided path; count the steps whose first sample was right."""
    store = Store(str(db), read_only=True)
    run = store.get_run(run_id)
    assert run is not None
    winners = [d["winner"] for d in store.decisions(run)]
    first = {row["step"]: row["text"] for row in store.samples(run) if row["idx"] == 0}
    store.close()
    state = process.initial_state()
    right = total = 0
    wrong_steps = []
    for step, winner in enumerate(winners):
        truth = process.solve(state, step)
        text = first.get(step)
        if text is not None:
            total += 1
            right += process.parse(text) == truth
        answer = process.parse(winner) if winner is not None else None
        if not isinstance(answer, int):
            break
        if answer != truth:
            wrong_steps.append(step)
        state = process.advance(state, answer)
    return right, total, wrong_steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-steps", type=int, default=200)
    ap.add_argument("--max-digit", type=int, default=9)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--calibrate-steps", type=int, default=120)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--k", type=int, help="use this k instead of the planned one")
    ap.add_argument("--max-k", type=int, default=9, help="cap on the planned k (run time)")
    args = ap.parse_args()

    digits = digits_for(args.min_steps, args.max_digit, args.seed)
    process = Addition(digits, args.max_digit, args.seed)
    task = ["addition", "--digits", str(digits), "--max-digit", str(args.max_digit),
            "--seed", str(args.seed)]  # fmt: skip
    out: dict[str, Any] = {"bench": "real_model", "model": f"openai:{ALIAS}", "task": task,
                           "steps": process.total_steps()}  # fmt: skip
    with llama_server() as url, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "UNERRING_BASE_URL": url, "OPENAI_API_KEY": "sk-test-PLANTED-0000"}
        model = ["--model", f"openai:{ALIAS}", "--api", "completions"]
        out["transport"] = transport_measurements(url, process)

        t0 = time.perf_counter()
        code, so, se = cli(["plan", "--calibrate", *task, *model, "--samples",
                            str(args.calibrate_steps), "--json"], env)  # fmt: skip
        if code != 0:
            raise SystemExit(f"calibration failed: {se.strip()}")
        cal = json.loads(so)
        out["calibration"] = {
            "p": cal["p"], "p_ci95": cal["p_ci95"], "steps": cal["steps_sampled"],
            "collisions": cal["collisions"],
            "collision_rate": cal["collisions"] / max(1, cal["steps_sampled"]),
            "both_wrong": cal["both_wrong"],
            "both_wrong_if_independent": cal["expected_both_wrong"],
            "planned_k": (cal.get("plan") or {}).get("k_min"),
            "planned_samples_per_step": (cal.get("plan") or {}).get("samples_per_step"),
            "planned_p_full": (cal.get("plan") or {}).get("p_full"),
            "warnings": [ln for ln in se.splitlines() if "warning" in ln],
            "s": time.perf_counter() - t0,
        }  # fmt: skip
        planned = out["calibration"]["planned_k"]
        k = args.k or (min(planned, args.max_k) if planned else 1)
        out["k"] = k
        db = Path(tmp) / "runs.db"
        code, so, se = cli(["run", *task, *model, "--k", str(k), "--temperature",
                            str(args.temperature), "--record", "samples", "--on-undecided",
                            "plurality", "--max-samples-per-step", str(10 * k), "--store",
                            str(db), "--json"], env)  # fmt: skip
        if not so.strip():
            raise SystemExit(f"run failed: {se.strip()}")
        s = json.loads(so)
        right, total, wrong_steps = single_sample_score(db, s["run_id"], process)
        decided = max(1, s["steps_decided"])
        out["run"] = {
            "status": s["status"], "steps_decided": s["steps_decided"], "errors": s["errors"],
            "undecided": s["undecided"], "samples_per_step": s["samples_per_step"],
            "tokens_per_step": (s["prompt_tokens"] + s["completion_tokens"]) / decided,
            "red_flags": s["red_flags"], "transport_failures": s["transport_failures"],
            "wall_s": s["wall_s"], "wrong_steps": wrong_steps[:20],
            "result_correct": not wrong_steps and s["steps_decided"] == process.total_steps(),
        }  # fmt: skip
        out["single_sample"] = {"right": right, "steps": total,
                                "accuracy": right / total if total else None}  # fmt: skip
        out["voted_accuracy"] = 1 - len(wrong_steps) / decided
    print(json.dumps(out))


if __name__ == "__main__":
    main()
