"""What the CLI's `plan --calibrate` and `notes learn` do, for a process of one's own:
`calibrate` measures a model's per-sample error rate on a process's steps (what `k` is
planned from, as `error_rate=`), `learn_notes` distils a journaled run's failures into a
mistake notebook (what a later run reads with `notes=`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from unerring import defaults
from unerring.analysis.learn import LearnResult, learn
from unerring.app.keywords import ModelArg, model_spec
from unerring.app.options import RunConfig, configure
from unerring.backends.base import Backend
from unerring.backends.factory import Transport, api_key, check_reachable, make_backend
from unerring.backends.openai_config import Api
from unerring.backends.spec import ModelSpec
from unerring.errors import StoreRefused, UsageError
from unerring.graph import Graph
from unerring.journal.store import MEMORY, Store
from unerring.planning.calibrate import Calibration, run_calibration
from unerring.planning.plan import check_variants
from unerring.process import Process
from unerring.process_factory import OwnProcesses, ProcessFactory

__all__ = ["calibrate", "calibration_backend", "learn_notes"]


def calibration_backend(
    process: Process[Any, Any], spec: ModelSpec, transport: Transport, variants: tuple[int, ...]
) -> Backend:
    """The backend a calibration of `process` samples: its variants checked, every
    member's key and server checked before anything is spent (a bad one is a UsageError),
    and the process's stop sequences where the transport names none."""
    if not transport.stop:
        transport = replace(transport, stop=tuple(process.stop))
    check_variants(process, variants)
    try:
        api_key(spec, transport)
        if spec.members:
            check_reachable(spec, transport, os.environ)
        return make_backend(spec, transport)
    except UsageError:
        raise
    except ValueError as e:
        raise UsageError(str(e)) from None


def calibrate(
    process: Process[Any, Any] | Sequence[Process[Any, Any]] | Mapping[str, Process[Any, Any]],
    *,
    model: ModelArg = defaults.MODEL,
    samples: int = defaults.CALIBRATION_SAMPLES,
    variants: tuple[int, ...] = defaults.VARIANTS,
    api: Api = defaults.API,
    base_url: str | None = None,
) -> Calibration:
    """Measure `model` on `samples` steps of `process`'s correct trajectory (two samples a
    step, as `unerring plan --calibrate` does): `.p` is the chance a sample is right
    (`error_rate=1 - p` plans k), with its 95% interval, the valid rate, and whether
    errors collide beyond chance (hard steps). A dataset's processes (a list, or a batch's
    mapping) share the `samples` steps, each its turn. A process must define `solve` (its
    correct answers); a simulated model needs `render` and `wrong_answers` as well.
    Draws real samples from a real model: it costs what they cost."""
    many = list(process.values()) if isinstance(process, Mapping) else process
    processes = [many] if isinstance(many, Process) else list(many)
    if not processes or not all(isinstance(p, Process) for p in processes):
        raise UsageError(
            "{process} must be a Process (a chain) or a list of them: calibration samples "
            "their steps",
            params=("process",),
        )
    if samples < 1:
        raise UsageError(f"{{samples}} must be at least 1, got {samples}", params=("samples",))
    given: dict[str, Any] = {"model": model_spec(model), "api": api, "base_url": base_url}
    config = configure(RunConfig(), {k: v for k, v in given.items() if v is not None})
    spec = config.model
    backend = calibration_backend(processes[0], spec, config.session.transport, variants)
    return run_calibration(
        processes,
        backend,
        samples,
        simulate=spec.simulated,
        seed=spec.sim.seed if spec.sim else 0,
        variants=variants,
    )


def learn_notes(
    run_id: str | Sequence[str],
    *,
    process: Process[Any, Any] | Graph | Mapping[str, Process[Any, Any]],
    model: str = defaults.MODEL,
    store: str = defaults.STORE,
    writer: str = "template",
    name: str | None = None,
    validation: int = 20,
    samples: int = 5,
    seed: int = 0,
) -> LearnResult:
    """Learn notes from the failures of journaled runs (`unerring notes learn`): each
    failure pattern becomes a candidate note, validated on `validation` states with
    `model` (`samples` each) and kept only if it helps; the notebook is journaled in
    `store` as a new version (`name`, default: the task's). `process` makes the run's
    processes again: the process (or graph) it ran, or a batch's mapping of item id to
    process. `writer` is "template" or a model spec that writes the notes' prose.
    A later run reads the notebook with `notes="NAME"`."""
    ids = [run_id] if isinstance(run_id, str) else list(run_id)
    if not ids:
        raise UsageError("{run_id} names no run", params=("run_id",))
    factory = _factory(process)

    def resolve(task: str, config: Mapping[str, Any]) -> ProcessFactory:
        return factory

    if store != MEMORY and not Path(store).is_file():
        raise StoreRefused(f"store {store!r}: no such journal; run first, or pass store=")
    opened = Store(store)
    try:
        for r in ids:
            opened.run(r)  # an unknown run is refused by name
        return learn(
            opened,
            ids,
            model,
            resolve=resolve,
            writer=writer,
            name=name,
            validation=validation,
            samples=samples,
            seed=seed,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    finally:
        opened.close()


def _factory(made: Process[Any, Any] | Graph | Mapping[str, Process[Any, Any]]) -> OwnProcesses:
    if isinstance(made, Process | Graph):
        return OwnProcesses.of(made)
    named = dict(made)
    if not named:
        raise UsageError("{process} names no process", params=("process",))
    return OwnProcesses(next(iter(named.values())).name, {}, named)
