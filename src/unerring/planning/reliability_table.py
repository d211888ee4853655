"""How reliable each source of samples is on steps like a given one (pure: no I/O).

A source is a (model, prompt variant) pair. A calibration on labelled steps counts, for
each source, its right and valid samples over all steps and per *cell*: the steps that
share their features (`Process.features`; for addition the kind of step and the digit
pair). A cell's success rate is estimated with the source's overall rate as a prior, so a
cell seen rarely says little and one never seen falls back to the source as a whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from unerring.errors import UsageError

Source = tuple[str, int]  # (model name, prompt variant)
FORMAT = "unerring-reliability/1"

# pseudo-observations that pull a cell's rate toward its source's overall rate: two keeps
# a single labelled step from reading as certainty, and lets five agreeing ones dominate
PRIOR_STEPS = 2.0
# labelled steps below which a table says too little to weigh votes by
MIN_STEPS = 20


def cell_of(features: Mapping[str, object], by: tuple[str, ...] | None = None) -> str:
    """The cell a step belongs to: its features (those named in `by`, else all), as
    `name=value` joined by commas, names sorted, values in lower case."""
    names = sorted(features) if by is None else by
    return ",".join(f"{n}={str(features.get(n)).lower()}" for n in names)


@dataclass(slots=True)
class Counts:
    """Samples of one source on a set of steps: right, valid (not red-flagged), all."""

    right: int = 0
    valid: int = 0
    total: int = 0

    def add(self, ok: bool | None) -> None:
        """One sample: True right, False wrong, None red-flagged."""
        self.total += 1
        if ok is not None:
            self.valid += 1
            self.right += ok

    def as_list(self) -> list[int]:
        return [self.right, self.valid, self.total]

    @classmethod
    def of(cls, value: object, where: str) -> Counts:
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise UsageError(f"{where}: counts must be [right, valid, total], got {value!r}")
        right, valid, total = value
        if not 0 <= right <= valid <= total:
            raise UsageError(f"{where}: counts [right, valid, total] out of order: {value!r}")
        return cls(right, valid, total)


@dataclass
class ReliabilityTable:
    """Per-source counts, overall and per cell, from `steps` labelled steps; `shares`:
    how often each cell occurs on the process's own trajectory (for planning)."""

    task: str
    steps: int
    by: tuple[str, ...] | None = None
    overall: dict[Source, Counts] = field(default_factory=dict)
    cells: dict[Source, dict[str, Counts]] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)

    # -- building ---------------------------------------------------------------------------
    def add(self, source: Source, cell: str, ok: bool | None) -> None:
        self.overall.setdefault(source, Counts()).add(ok)
        self.cells.setdefault(source, {}).setdefault(cell, Counts()).add(ok)

    # -- reading ----------------------------------------------------------------------------
    @property
    def sources(self) -> list[Source]:
        return list(self.overall)

    def p_source(self, source: Source) -> float:
        """The source's success rate over every labelled step (Laplace's rule)."""
        c = self.overall.get(source, Counts())
        return (c.right + 1.0) / (c.valid + 2.0)

    def p(self, source: Source, cell: str) -> float:
        """The source's success rate on the cell: its own samples there, pulled toward the
        source's overall rate by PRIOR_STEPS pseudo-observations."""
        prior = self.p_source(source)
        c = self.cells.get(source, {}).get(cell)
        if c is None:
            return prior
        return (c.right + PRIOR_STEPS * prior) / (c.valid + PRIOR_STEPS)

    def valid_rate(self, source: Source) -> float:
        c = self.overall.get(source, Counts())
        return (c.valid + 1.0) / (c.total + 2.0)

    def missing(self, sources: Iterable[Source]) -> list[Source]:
        return [s for s in sources if s not in self.overall]

    def too_few(self) -> str | None:
        """Why the table cannot weigh votes (one line, how many more steps it needs)."""
        if self.steps < MIN_STEPS:
            more = MIN_STEPS - self.steps
            return (
                f"the reliability table has {self.steps} labelled steps; weighing votes needs "
                f"at least {MIN_STEPS} ({more} more): calibrate again with --samples "
                f"{MIN_STEPS} or more"
            )
        return None

    # -- JSON -------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "task": self.task,
            "steps": self.steps,
            "by": None if self.by is None else list(self.by),
            "sources": [
                {
                    "model": model,
                    "variant": variant,
                    "counts": self.overall[(model, variant)].as_list(),
                    "cells": {
                        cell: c.as_list()
                        for cell, c in sorted(self.cells.get((model, variant), {}).items())
                    },
                }
                for model, variant in self.overall
            ],
            "shares": dict(sorted(self.shares.items())),
        }

    @classmethod
    def from_dict(cls, d: object) -> ReliabilityTable:
        """A table from its JSON form; UsageError names what is wrong (one line)."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise UsageError(
                f'not a reliability table (its "format" must be {FORMAT!r}): write one '
                "with `unerring plan --calibrate TASK ... --save-reliability FILE`"
            )
        task, steps, by = d.get("task"), d.get("steps"), d.get("by")
        if not isinstance(task, str) or not isinstance(steps, int) or steps < 0:
            raise UsageError('reliability table: "task" must be a name, "steps" a count')
        if by is not None and (not isinstance(by, list) or not all(isinstance(n, str) for n in by)):
            raise UsageError('reliability table: "by" must be a list of feature names')
        table = cls(task, steps, None if by is None else tuple(by))
        sources = d.get("sources")
        if not isinstance(sources, list):
            raise UsageError('reliability table: "sources" must be a list')
        for i, s in enumerate(sources):
            where = f"reliability table source {i}"
            if not isinstance(s, dict):
                raise UsageError(f"{where}: must be an object")
            model, variant, cells = s.get("model"), s.get("variant"), s.get("cells", {})
            if not isinstance(model, str) or not isinstance(variant, int) or variant < 0:
                raise UsageError(f'{where}: needs a "model" name and a "variant" number')
            if not isinstance(cells, dict):
                raise UsageError(f'{where}: "cells" must be an object')
            key = (model, variant)
            if key in table.overall:
                raise UsageError(f"{where}: model {model!r} variant {variant} appears twice")
            table.overall[key] = Counts.of(s.get("counts"), where)
            table.cells[key] = {
                str(c): Counts.of(v, f"{where} cell {c!r}") for c, v in cells.items()
            }
        shares = d.get("shares", {})
        if not isinstance(shares, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
            for v in shares.values()
        ):
            raise UsageError('reliability table: "shares" must map cells to shares in [0, 1]')
        table.shares = {str(c): float(v) for c, v in shares.items()}
        return table
