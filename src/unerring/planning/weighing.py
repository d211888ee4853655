"""A run's weighted vote from its options: the reliability table it was given (kept in the
journal with the run's options), its models and prompt variants, and the margin its
target sets. `Weighing` makes each cell's route (the order and weights of its sources)
from the table; `voting.weighted` counts a step's votes by it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unerring import defaults
from unerring.backends.spec import ModelSpec
from unerring.errors import UsageError
from unerring.planning.reliability_table import ReliabilityTable, Source, cell_of
from unerring.voting.weighted import StepRoute, margin_for, weight


@dataclass
class Weighing:
    """The run's weighted vote: the table, the run's models (their names in the table and
    the labels their samples carry, by member index; one for a single model), the prompt
    variants, the margin. A cell's route is made once and kept."""

    table: ReliabilityTable
    models: tuple[str, ...]
    labels: tuple[str | None, ...]
    variants: tuple[int, ...]
    margin: float
    _routes: dict[str, StepRoute] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.models) != len(self.labels) or not self.models:
            raise UsageError("a weighing needs one table name and one label per model")
        if not self.variants:
            raise UsageError("a weighing needs at least one prompt variant")
        missing = self.table.missing(self.sources())
        if missing:
            model, variant = missing[0]
            raise UsageError(
                f"the reliability table has no measurements of model {model!r} with prompt "
                f"variant {variant}: calibrate with the run's {{model}} and {{variants}} "
                f"({len(missing)} sources missing)",
                params=("model", "variants"),
            )

    def sources(self) -> list[Source]:
        return [(m, v) for m in self.models for v in self.variants]

    def route(self, features: Mapping[str, object]) -> StepRoute:
        cell = cell_of(features, self.table.by)
        r = self._routes.get(cell)
        if r is None:
            r = self._routes[cell] = self.route_cell(cell)
        return r

    def route_cell(self, cell: str) -> StepRoute:
        """The order and weights of a cell's sources: heaviest first; ties in the order of
        the models, then the variants."""
        ranked = []
        for mi, model in enumerate(self.models):
            for vi, v in enumerate(self.variants):
                w = weight(self.table.p((model, v), cell))
                ranked.append((-w, mi, vi, v))
        ranked.sort()
        by_label = {
            (self.labels[mi], v): -neg for neg, mi, _, v in ranked
        }  # (a label shared by two members would be one model: either weight stands)
        return StepRoute(
            tuple((mi, v) for _, mi, _, v in ranked),
            tuple(-neg for neg, _, _, _ in ranked),
            by_label,
        )

    def as_dict(self) -> dict[str, Any]:
        """What the journal keeps: enough to make every route again."""
        return {
            "table": self.table.as_dict(),
            "models": list(self.models),
            "variants": list(self.variants),
            "margin": self.margin,
        }


def table_name(spec: ModelSpec) -> str:
    """A model's name in a reliability table: `provider:name` without its endpoint (a
    server may move between calibration and run), a simulated model's text as given."""
    if spec.sim is not None:
        return spec.label
    return f"{spec.provider}:{spec.name}"


def spec_sources(spec: ModelSpec) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """The run's models as the table names them, and as their samples are labelled (an
    ensemble member's text as given; None: a run of one model)."""
    if spec.members:
        return (
            tuple(table_name(m) for _, m in spec.members),
            tuple(m.label for _, m in spec.members),
        )
    return (table_name(spec),), (None,)


def default_cap(sources: int) -> int:
    """Samples per step at most: each source twice, and at least 50 (a source sampled at
    a temperature above 0 is worth asking again; at 0 it repeats itself, so give
    --max-samples-per-step the number of sources there)."""
    return max(defaults.WEIGHTED_CAP_MIN, defaults.WEIGHTED_CAP_PER_SOURCE * sources)


def read_table(path: str) -> dict[str, Any]:
    """A reliability table file's JSON (checked); UsageError in one line."""
    named = ("reliability",)
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(
            f"{{reliability}} {path}: cannot read it ({e.strerror})", params=named
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{{reliability}} {path}: not JSON ({e})", params=named) from None
    try:
        ReliabilityTable.from_dict(d)
    except UsageError as e:
        raise UsageError(f"{{reliability}} {path}: {e.template}", params=named + e.params) from None
    return dict(d)


def weighing_for(
    table: dict[str, Any],
    spec: ModelSpec,
    task: str,
    variants: tuple[int, ...],
    target: float,
    steps: int | None,
) -> Weighing:
    """The weighted vote for a run; UsageError says what is wrong and what to do."""
    t = ReliabilityTable.from_dict(table)
    too_few = t.too_few()
    if too_few is not None:
        raise UsageError(too_few)
    if t.task != task:
        raise UsageError(
            f"the reliability table was measured on task {t.task!r}, not {task!r}: calibrate "
            f"{task} with --save-reliability"
        )
    if steps is None:
        raise UsageError(
            "a weighted vote sets its margin from {target} over the run's steps: this task's "
            "length is not known in advance",
            params=("target",),
        )
    models, labels = spec_sources(spec)
    if len(set(models)) != len(models):
        raise UsageError(
            "a weighted vote tells models apart by name: give each ensemble member once"
        )
    return Weighing(t, models, labels, variants, margin_for(target, steps))
