"""The keywords `unerring.run` and `unerring.run_batch` share (one TypedDict), and the
run configuration made of them: an unknown name is refused in one line naming the known
ones, a model is a spec text, a list of them (an ensemble) or a backend of one's own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from unerring import defaults
from unerring.app.options import RunConfig, configure
from unerring.backends.base import Backend
from unerring.backends.openai_config import Api
from unerring.backends.spec import ModelSpec, ensemble_text, own_model
from unerring.errors import UsageError
from unerring.executors import ExecutorSpec
from unerring.journal.writer import Durability
from unerring.voting.config import Budget, RecordLevel, UndecidedPolicy

# a model: "sim:error=0.01", "openai:NAME"; a list of those (an ensemble, samples spread
# over the members, votes pooled; "2*openai:NAME" weighs a member); or a Backend object
ModelArg = str | Sequence[str] | Backend


class RunOptions(TypedDict, total=False):
    """The keywords `run` and `run_batch` take (all optional; defaults in
    `unerring.defaults`).

    What decides answers (recorded with the run: a run id given again must match):
    `model` (default "sim:error=0.01": the simulated model, free), `k` (votes a winner
    must lead by; planned from `target` unless given), `target` (0.95: the chance every
    step is right that k is planned for), `error_rate` (a real model's measured per-sample
    error, for planning: see `unerring.calibrate`), `first_temperature`, `temperature`,
    `max_tokens`, `max_samples_per_step`, `on_undecided` ("stop" or "plurality"),
    `stopping` ("ahead-by-k" or "adaptive"), `variants` (a tuple of prompt variants),
    `api` ("chat" or "completions"), `notes` (a mistake notebook NAME[@VERSION], see
    `unerring.learn_notes`), `max_depth` (a graph's), `max_steps` (a cap on the steps of a
    process whose `total_steps()` is None: an item past it fails, naming `done()`).

    How this attempt runs (may change between attempts): `store` (the journal's SQLite
    file; default ".unerring/runs.db" in the current directory, its folder made;
    ":memory:" keeps nothing), `durability` ("group" or "sync"), `budget`
    (`Budget(max_samples=..., max_cost=..., max_tokens_total=...)`), `concurrency`
    (requests in flight), `executor` (`ExecutorSpec("ray", workers=N)`), `speculate`
    (chain steps opened ahead of their vote), `parallel`, `record`, `base_url`.
    """

    model: ModelArg
    k: int | None
    target: float
    error_rate: float | None
    first_temperature: float
    temperature: float
    max_tokens: int
    max_samples_per_step: int | None
    on_undecided: UndecidedPolicy
    parallel: int
    record: RecordLevel
    stopping: str
    variants: tuple[int, ...]
    api: Api
    base_url: str | None
    notes: str | None
    max_depth: int
    max_steps: int | None
    store: str
    durability: Durability
    budget: Budget | None
    concurrency: int
    executor: ExecutorSpec | None
    speculate: int


KNOWN = frozenset(RunOptions.__annotations__)

# the library's defaults where they differ from a bare RunConfig's: it journals to a file
LIBRARY_DEFAULTS: Mapping[str, Any] = {"store": defaults.STORE}


def model_spec(model: ModelArg) -> str | ModelSpec:
    """A `model` keyword as `configure` takes it: spec text, or a parsed spec."""
    if isinstance(model, str):
        return model
    if isinstance(model, Backend):
        return own_model(model)
    if isinstance(model, Sequence) and model and all(isinstance(m, str) for m in model):
        return ensemble_text(list(model))
    raise UsageError(
        f"{{model}} must be a spec text, a list of them or a Backend, got {type(model).__name__}",
        params=("model",),
    )


def library_config(caller: str, options: Mapping[str, Any]) -> RunConfig:
    """The configuration of a library call; a keyword it does not take is refused by name,
    in one line listing those it takes."""
    unknown = sorted(set(options) - KNOWN)
    if unknown:
        names = ", ".join(sorted(KNOWN | {"run_id"}))
        raise UsageError(f"{caller}() takes no keyword {unknown[0]!r} (known: {names})")
    given = {**LIBRARY_DEFAULTS, **options, "handle_signals": False}
    if given.get("model") is not None:
        given["model"] = model_spec(given["model"])
    config = configure(RunConfig(), {k: v for k, v in given.items() if v is not None})
    if config.model.backend is not None and config.session.executor.kind != "local":
        # the object lives in this process: Ray's workers would each need a copy
        raise UsageError(
            "a Backend object of your own runs on the local executor; leave out {executor} "
            "or give {model} as a spec text",
            params=("executor", "model"),
        )
    return config
