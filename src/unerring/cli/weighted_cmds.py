"""The command-line side of the weighted vote and of calibration: calibration progress on
stderr, the reliability table written and read, and the plans shown per model, per
prompt variant and for the ensemble."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from unerring.backends.spec import ModelSpec
from unerring.errors import UsageError
from unerring.planning import reliability
from unerring.planning.calibrate import Calibration, Progress
from unerring.planning.reliability_table import MIN_STEPS, ReliabilityTable
from unerring.planning.weighing import Weighing, default_cap, spec_sources
from unerring.planning.weighted_plan import forecast
from unerring.voting.weighted import margin_for

EVERY_S = 2.0  # a progress line at most this often where stderr is not a terminal


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_printer(stream: IO[str] | None = None) -> Callable[[Progress], None]:
    """Shows a calibration's steps done, samples, elapsed time and the time still to go:
    one line rewritten in place on a terminal, else a line every EVERY_S seconds (and the
    first and last)."""
    out = stream or sys.stderr
    tty = out.isatty()
    last = [-EVERY_S]

    def show(p: Progress) -> None:
        left = p.left_s
        final = p.steps_done == p.steps_total
        line = (
            f"calibrating: {p.steps_done}/{p.steps_total} steps, {p.samples:,} samples, "
            f"{_duration(p.elapsed_s)}"
        )
        if left is not None and not final:
            line += f", about {_duration(left)} left"
        if tty:
            out.write("\r" + line + ("\n" if final else ""))
            out.flush()
        elif final or p.steps_done == 1 or p.elapsed_s - last[0] >= EVERY_S:
            last[0] = p.elapsed_s
            print(line, file=out, flush=True)

    return show


def check_table_steps(samples: int) -> None:
    """Refuse, before anything is spent, a table too small to weigh votes by."""
    if samples < MIN_STEPS:
        raise UsageError(
            f"--save-reliability needs at least {MIN_STEPS} labelled steps to say anything; "
            f"--samples {samples} gives {samples} ({MIN_STEPS - samples} more)"
        )


def save_table(table: ReliabilityTable, path: str) -> None:
    """Write the table (atomically: a reader never sees half of it)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        Path(tmp).write_text(json.dumps(table.as_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise UsageError(f"--save-reliability {path}: cannot write it ({e.strerror})") from None


def group_plans(cal: Calibration, steps: int, target: float, cost_per_sample: float | None) -> None:
    """Each group's ahead-by-k plan from its own p (a model, a prompt variant, pooled)."""
    for g in cal.groups.values():
        p = g["p"]
        if 0.5 < p < 1.0:
            plan = reliability.plan(1.0 - p, steps, target, 1.0, cost_per_sample)
            g["plan"] = {
                "k": plan.k,
                "samples_per_step": plan.samples_per_step,
                "p_full": plan.p_full,
                "cost_total": plan.cost_total,
            }
        else:
            g["plan"] = None


def weighted_plans(
    table: ReliabilityTable,
    spec: ModelSpec,
    variants: tuple[int, ...],
    steps: int,
    target: float,
    cost_per_sample: float | None,
    cap: int | None = None,
) -> dict[str, dict[str, Any]]:
    """The weighted vote's forecast with each model's sources alone and, for an
    ensemble, with all of them (`cap`: samples per step at most, else the run's default)."""
    models, labels = spec_sources(spec)
    margin = margin_for(target, steps)
    out: dict[str, dict[str, Any]] = {}
    for m, label in zip(models, labels, strict=True):
        w = Weighing(table, (m,), (label,), variants, margin)
        limit = cap or default_cap(len(variants))
        out[f"model {m}"] = forecast(w, steps, limit, cost_per_sample).as_dict()
    if len(models) > 1:
        w = Weighing(table, models, labels, variants, margin)
        limit = cap or default_cap(len(w.sources()))
        out["ensemble"] = forecast(w, steps, limit, cost_per_sample).as_dict()
    return out


def print_weighted(plans: dict[str, dict[str, Any]]) -> None:
    print(f"weighted vote (margin {next(iter(plans.values()))['margin']:.2f} log-odds):")
    width = max(len(n) for n in plans) + 2
    costs = any(f["cost_total"] is not None for f in plans.values())
    head = f"{'':<{width}}{'samples/step':>14}{'p_full':>12}{'undecided':>12}"
    print(head + (f"{'cost':>12}" if costs else ""))
    for name, f in plans.items():
        line = (
            f"{name:<{width}}{f['samples_per_step']:>14.2f}{f['p_full']:>12.4f}"
            f"{f['p_undecided_step']:>12.4f}"
        )
        if costs:
            line += f"{'$' + format(f['cost_total'], ',.2f'):>12}"
        print(line)


def interrupted_note(cal: Calibration) -> str:
    return (
        f"calibration interrupted after {cal.steps} of {cal.planned} steps: the figures are "
        "what was measured so far"
    )
