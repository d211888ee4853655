"""Measure a model's per-step success rate on a process before a run spends anything.

Every source (model, prompt variant) is asked on each sampled step at once; a progress
callback hears each step, and a stop event (Ctrl-C) ends the calibration with what was
measured so far. Given a reliability table, the steps are spread evenly over the cells of
the process's features and every sample is counted into the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from unerring import defaults
from unerring.backends.base import Backend
from unerring.backends.ensemble import Ensemble
from unerring.backends.sim import ProcessOracle
from unerring.core.flags import Flag, estimate_tokens
from unerring.core.hashing import mix64, unit
from unerring.core.samples import Sample, SampleRequest
from unerring.planning import reliability
from unerring.planning.independence import BothWrong, StepCounts, hard_steps, pairs_test
from unerring.planning.reliability_table import ReliabilityTable, cell_of
from unerring.process import Process
from unerring.voting.step import judge


@dataclass
class GroupStats:
    """One source of samples (a model, a prompt variant, or both) on the sampled steps.

    collisions: steps whose first two valid samples from this group were wrong and equal;
    hard: steps with both first samples wrong beyond what independent errors give (see
    `independence.both_wrong`; 0 unless beyond chance): the least number of hard steps the
    pairs show, the steps that voting over this group's samples cannot fix."""

    steps: int = 0
    samples: int = 0
    valid: int = 0
    correct: int = 0
    both_wrong: int = 0
    collisions: int = 0
    # each step's wrong samples among its first two valid ones (steps with two)
    pairs: Counter[int] = field(default_factory=Counter)

    def add(self, judged: list[bool | None], answers: list[object]) -> None:
        """One step: each sample's judgement (True right, False wrong, None flagged)."""
        self.steps += 1
        self.samples += len(judged)
        valid = [(ok, a) for ok, a in zip(judged, answers, strict=True) if ok is not None]
        self.valid += len(valid)
        self.correct += sum(1 for ok, _ in valid if ok)
        if len(valid) >= 2:
            self.pairs[(not valid[0][0]) + (not valid[1][0])] += 1
            if not valid[0][0] and not valid[1][0]:
                self.both_wrong += 1
                if valid[0][1] == valid[1][1]:
                    self.collisions += 1

    def test(self) -> BothWrong:
        return pairs_test(self.pairs)

    @property
    def hard(self) -> int:
        bw = self.test()
        return max(0, round(bw.both - bw.expected)) if bw.significant else 0

    def as_dict(self) -> dict[str, Any]:
        p = self.correct / self.valid if self.valid else 0.0
        bw = self.test()
        hard = self.hard
        return {
            "steps": self.steps,
            "samples": self.samples,
            "p": p,
            "error_rate": 1.0 - p if self.valid else None,
            "both_wrong": self.both_wrong,
            "expected_both_wrong": bw.expected,
            "both_wrong_p_value": bw.p_value,
            "collisions": self.collisions,
            "collision_rate": self.collisions / self.steps if self.steps else 0.0,
            "hard": hard,
            "hard_share": hard / self.steps if self.steps else 0.0,
        }


@dataclass(frozen=True, slots=True)
class Calibration:
    steps: int  # steps sampled
    samples: int
    valid: int
    correct: int
    p: float
    p_low: float
    p_high: float
    valid_rate: float
    both_wrong: int  # steps whose first two valid samples were both wrong
    collisions: int  # ... and equal
    expected_both_wrong: float  # what independent errors would give
    warnings: tuple[str, ...]
    # with several models or prompt variants: each one on its own, and "pooled" (the first
    # two samples a vote would draw: two different sources, rotating with the step)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the least share of hard steps the pairs show (0 unless beyond chance: see GroupStats)
    hard_share: float = 0.0
    both_wrong_p: float = 1.0  # P(as many both wrong | independent errors)
    hard_steps: dict[str, Any] = field(default_factory=dict)  # independence.HardSteps
    planned: int = 0  # steps it set out to sample
    interrupted: bool = False  # stopped (Ctrl-C) before the last planned step

    @property
    def collision_rate(self) -> float:
        return self.collisions / self.steps if self.steps else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps_sampled": self.steps,
            "samples": self.samples,
            "valid": self.valid,
            "correct": self.correct,
            "p": self.p,
            "p_ci95": [self.p_low, self.p_high],
            "error_rate": 1.0 - self.p,
            "valid_rate": self.valid_rate,
            "both_wrong": self.both_wrong,
            "expected_both_wrong": self.expected_both_wrong,
            "collisions": self.collisions,
            "collision_rate": self.collision_rate,
            "hard_share": self.hard_share,
            "both_wrong_p_value": self.both_wrong_p,
            "hard_steps": self.hard_steps,
            "groups": self.groups,
            "warnings": list(self.warnings),
            "steps_planned": self.planned,
            "interrupted": self.interrupted,
        }


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a calibration stands after a step."""

    steps_done: int
    steps_total: int
    samples: int
    elapsed_s: float

    @property
    def left_s(self) -> float | None:
        """Time still to go at the pace so far (None before the first step)."""
        if not self.steps_done:
            return None
        return self.elapsed_s / self.steps_done * (self.steps_total - self.steps_done)


def _steps_to_sample(process: Process[Any, Any], n: int, seed: int) -> list[int]:
    total = process.total_steps()
    horizon = min(total, max(50 * n, 1000)) if total else 50 * n
    if n >= horizon:
        return list(range(horizon))
    chosen: set[int] = set()
    i = 0
    while len(chosen) < n:
        chosen.add(int(unit(mix64(seed * 7919 + i)) * horizon))
        i += 1
    return sorted(chosen)


def _balanced_steps(
    process: Process[Any, Any], n: int, seed: int, by: tuple[str, ...] | None
) -> tuple[list[int], dict[str, float]]:
    """n steps spread evenly over the cells of the steps' features (each cell's steps in a
    seeded order, the cells taken in turn), and how often each cell occurs on the walked
    trajectory: a rare cell is measured as well as a common one."""
    total = process.total_steps()
    horizon = min(total, max(50 * n, 1000)) if total else 50 * n
    by_cell: dict[str, list[int]] = {}
    state = process.initial_state()
    step = 0
    while step < horizon and not process.done(state, step):
        by_cell.setdefault(cell_of(process.features(state, step), by), []).append(step)
        state = process.advance(state, process.solve(state, step))
        step += 1
    walked = max(1, step)
    shares = {c: len(v) / walked for c, v in by_cell.items()}

    def shuffled(cell: str, steps: list[int]) -> list[int]:
        salt = mix64(seed * 7919 + len(cell) + sum(map(ord, cell)))
        return sorted(steps, key=lambda s: mix64(salt ^ s))

    queues = [shuffled(c, v) for c, v in sorted(by_cell.items())]
    chosen: list[int] = []
    turn = 0
    while len(chosen) < n and any(queues):
        q = queues[turn % len(queues)]
        if q:
            chosen.append(q.pop(0))
        turn += 1
    return sorted(chosen), shares


Source = tuple[str, int, Backend]  # (model name, prompt variant, backend)


def _wanted_steps(
    processes: Sequence[Process[Any, Any]], chosen: Sequence[list[int]]
) -> Iterator[tuple[int, Process[Any, Any], Any, int, Any]]:
    """(item, process, state, step, right answer) of each chosen step, walking each
    process's correct trajectory as far as its last chosen step."""
    for item, (process, steps) in enumerate(zip(processes, chosen, strict=True)):
        wanted = set(steps)
        last = steps[-1] if steps else -1
        state = process.initial_state()
        step = 0
        while step <= last and not process.done(state, step):
            right = process.solve(state, step)
            if step in wanted:
                yield item, process, state, step, right
            state = process.advance(state, right)
            step += 1


async def calibrate(
    process: Process[Any, Any] | Sequence[Process[Any, Any]],
    backend: Backend,
    samples: int,
    *,
    simulate: bool,
    seed: int = 0,
    per_step: int = defaults.CALIBRATION_PER_STEP,
    first_temperature: float = defaults.FIRST_TEMPERATURE,
    temperature: float = defaults.TEMPERATURE,
    max_tokens: int = defaults.MAX_TOKENS,
    variants: tuple[int, ...] = (0,),
    table: ReliabilityTable | None = None,
    names: Sequence[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
    stop: asyncio.Event | None = None,
) -> Calibration:
    """Sample `per_step` answers on `samples` steps of the correct trajectory, from every
    model of an ensemble and every prompt variant on its own. With `table`, count each
    sample into it under `names` (the models' names in the table, by member). Several
    processes (a dataset's items) share the `samples` steps, each its turn."""
    members = backend.members if isinstance(backend, Ensemble) else None
    models = [(name, b) for _, name, b in members] if members else [(backend.model, backend)]
    sources: list[Source] = [(name, v, b) for name, b in models for v in variants]
    table_names = list(names) if names is not None else [name for name, _ in models]
    source_names = [(table_names[j // len(variants)], v) for j, (_, v, _) in enumerate(sources)]
    processes = [process] if isinstance(process, Process) else list(process)
    chosen: list[list[int]] = []  # by process
    shares: dict[str, float] = {}
    for i, one in enumerate(processes):
        n = samples // len(processes) + (1 if i < samples % len(processes) else 0)
        if table is not None:
            picked, its = _balanced_steps(one, n, seed + i, table.by)
            for c, share in its.items():  # each process's trajectory weighs alike
                shares[c] = shares.get(c, 0.0) + share / len(processes)
        else:
            picked = _steps_to_sample(one, n, seed + i) if n else []
        chosen.append(picked)
    if table is not None:
        table.shares = shares
    planned = sum(len(c) for c in chosen)
    started = time.monotonic()
    done = 0
    interrupted = False
    stats: dict[tuple[str, int], GroupStats] = {(n, v): GroupStats() for n, v, _ in sources}
    pooled = GroupStats()
    n_samples = valid = correct = 0
    counts = StepCounts()  # every valid sample of a step, for the hard-step test
    for item, process, state, step, right in _wanted_steps(processes, chosen):
        right_key = process.key(right)
        oracle = ProcessOracle(process, state, step) if simulate else None
        firsts: list[tuple[bool | None, object]] = []
        every: list[bool | None] = []
        # every source at once: members on servers of their own answer side by side;
        # each source its own sample indices, as in a run (a model's draws are per
        # index: the same index under two prompts would be one draw)
        asked = asyncio.gather(
            *(
                _ask_source(
                    b,
                    SampleRequest(
                        process.variant_prompt(state, step, v),
                        step,
                        j * per_step,
                        per_step,
                        max_tokens,
                        first_temperature,
                        temperature,
                        process.system(),
                        oracle,
                        item=item,  # a dataset's items draw apart, as a run's do
                        variant=v,
                    ),
                )
                for j, (_, v, b) in enumerate(sources)
            )
        )
        answered = await _unless_stopped(asked, stop)
        if answered is None:
            interrupted = True
            break
        cell = cell_of(process.features(state, step), table.by) if table else ""
        for j, ((name, v, _), got) in enumerate(zip(sources, answered, strict=True)):
            judged: list[bool | None] = []
            answers: list[object] = []
            for smp in got:
                ct = smp.completion_tokens or estimate_tokens(smp.text)
                r = Flag.OVERLONG if ct > max_tokens else judge(process, state, smp.text)
                if isinstance(r, Flag):
                    judged.append(None)
                    answers.append(None)
                else:
                    judged.append(r[0] == right_key)
                    answers.append(r[0])
            stats[(name, v)].add(judged, answers)
            if table is not None:
                for ok in judged:
                    table.add(source_names[j], cell, ok)
            every += judged
            first = next(
                ((ok, a) for ok, a in zip(judged, answers, strict=True) if ok is not None),
                (None, None),
            )
            firsts.append(first)
        # the first two samples a vote draws come from two sources, rotating per step
        if len(sources) > 1:
            n = len(sources)
            order = [firsts[(step + i) % n] for i in range(n)]
            pooled.add([ok for ok, _ in order], [a for _, a in order])
        n_samples += len(every)
        ok_all = [ok for ok in every if ok is not None]
        valid += len(ok_all)
        correct += sum(ok_all)
        counts.add(len(ok_all), len(ok_all) - sum(ok_all))
        done += 1
        if progress is not None:
            progress(Progress(done, planned, n_samples, time.monotonic() - started))
    n_steps = done
    if table is not None:
        table.steps = done
    # the first two samples a vote would draw: one source's, or two sources' (pooled)
    first_two = next(iter(stats.values())) if len(sources) == 1 else pooled
    bw = first_two.test()
    hs = hard_steps(counts.halves)
    p = correct / valid if valid else 0.0
    lo, hi = reliability.wilson_interval(correct, valid)
    groups: dict[str, dict[str, Any]] = {}
    if len(sources) > 1:
        groups = _groups(stats, pooled, len(models) > 1, len(variants) > 1)
    warnings = []
    if valid == 0:
        warnings.append(
            "no sample passed the red flags: the model does not follow the "
            "output format; no k can help"
        )
    elif p <= 0.5:
        warnings.append(
            f"per-sample success rate {p:.2f} is not above 0.5: voting will "
            "converge on wrong answers; do not run this process on this model"
        )
    if len(models) > 1 and valid:
        for name, _ in models:
            mine = [g for (n, _), g in stats.items() if n == name]
            if not sum(g.valid for g in mine):
                warnings.append(
                    f"model {name}: no sample passed the red flags "
                    f"({sum(g.samples for g in mine)} samples): it answers nothing this "
                    "process can read, and gets no say in a weighted vote; check its prompt "
                    "form (--api) and its server"
                )
    # errors that repeat on the same steps, beyond what independent errors give (each test
    # false-alarms on independent errors with chance 1/1000 at most)
    why = []
    if bw.significant:
        why.append(
            f"{bw.both} of {bw.steps} steps had both samples wrong where independent errors "
            f"would give about {bw.expected:.1f} (p = {bw.p_value:.1g}); "
            f"{first_two.collisions} of them agreed on the same wrong answer"
        )
    if hs.found and hs.fitted is not None:
        f = hs.fitted
        why.append(
            f"the samples of about {f.hard_share:.1%} of steps err at {f.hard_error:.2f}, "
            f"the rest at {f.easy_error:.3f}"
        )
    if why:
        warnings.append(
            f"errors look correlated: {'; '.join(why)}. Voting does not fix errors that "
            "repeat on the same step, so the planned k is not safe: change the prompt, "
            "decorrelate (another model, temperature, prompt diversity), or add a red flag"
        )
    return Calibration(
        n_steps,
        n_samples,
        valid,
        correct,
        p,
        lo,
        hi,
        valid / n_samples if n_samples else 0.0,
        first_two.both_wrong,
        first_two.collisions,
        bw.expected,
        tuple(warnings),
        groups,
        first_two.hard / n_steps if n_steps else 0.0,
        bw.p_value,
        hs.as_dict(),
        planned,
        interrupted,
    )


async def _ask_source(backend: Backend, request: SampleRequest) -> list[Sample]:
    """A source's samples of a step: its first at the first temperature, as a run's first
    sample is, the others at the temperature. (A backend sets the first temperature on
    sample index 0 only, and each source has indices of its own.)"""
    first = replace(request, n=1, temperature=request.first_temperature)
    got = await backend.sample(first)
    if request.n > 1:
        rest = replace(
            request,
            first_index=request.first_index + 1,
            n=request.n - 1,
            first_temperature=request.temperature,
        )
        got = got + await backend.sample(rest)
    return got


async def _unless_stopped(
    asked: asyncio.Future[list[list[Sample]]], stop: asyncio.Event | None
) -> list[list[Sample]] | None:
    """The step's answers, or None (the requests cancelled) once `stop` is set first."""
    if stop is None:
        return await asked
    if stop.is_set():
        asked.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asked
        return None
    stopper: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
    try:
        racing: list[asyncio.Future[Any]] = [asked, stopper]
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if asked.done():
        return asked.result()
    asked.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asked
    return None


def _groups(
    stats: dict[tuple[str, int], GroupStats],
    pooled: GroupStats,
    by_model: bool,
    by_variant: bool,
) -> dict[str, dict[str, Any]]:
    """Per model, per variant (each summed over the other) and pooled."""
    out: dict[str, dict[str, Any]] = {}
    keys: list[tuple[str, object, list[GroupStats]]] = []
    if by_model:
        for name in dict.fromkeys(n for n, _ in stats):
            keys.append((f"model {name}", name, [g for (n, _), g in stats.items() if n == name]))
    if by_variant:
        for v in dict.fromkeys(v for _, v in stats):
            keys.append((f"variant {v}", v, [g for (_, w), g in stats.items() if w == v]))
    for label, _, parts in keys:
        total = GroupStats()
        for g in parts:
            for f in ("steps", "samples", "valid", "correct", "both_wrong", "collisions"):
                setattr(total, f, getattr(total, f) + getattr(g, f))
            total.pairs.update(g.pairs)
        # a group summed over several sources counts each step once per source
        d = total.as_dict()
        d["sources"] = len(parts)
        out[label] = d
    out["pooled"] = pooled.as_dict()
    return out


def run_calibration(
    process: Process[Any, Any] | Sequence[Process[Any, Any]],
    backend: Backend,
    samples: int,
    **kwargs: Any,
) -> Calibration:
    """`calibrate` to its end, or until Ctrl-C (SIGINT) or SIGTERM: then what was measured
    so far, marked interrupted."""

    async def go() -> Calibration:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        handled = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
        try:
            return await calibrate(process, backend, samples, stop=stop, **kwargs)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await backend.aclose()

    return asyncio.run(go())
