"""What a weighted vote will take before anything is spent (pure): samples per step,
P(every step right), cost, from the reliability table it votes with.

Each cell of the table is voted as the run votes it: its sources in the route's order,
each right with its calibrated rate in the cell (pulled toward its overall rate), wrong
otherwise, red-flagged at its measured rate. Every wrong vote is taken to go to one wrong
answer, the worst case for a vote (as the planner assumes for ahead-by-k). The lead is
followed exactly, step by step, as a distribution over its values; the cells are weighted
by how often they occur on the process's trajectory. The lead is kept on a grid of
GRID steps to the margin (weights rounded to it), so a cell costs cap x GRID work whatever
the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from unerring.planning.weighing import Weighing

_TINY = 1e-15  # lead values less likely than this are dropped (they cannot move a result)
GRID = 256  # lead values per margin


@dataclass(frozen=True, slots=True)
class CellForecast:
    samples: float  # expected samples drawn
    p_wrong: float  # P(the step is decided wrong, or its plurality is wrong at the cap)
    p_undecided: float  # P(no answer reaches the margin within the cap)


@dataclass(frozen=True, slots=True)
class WeightedForecast:
    margin: float
    cap: int
    samples_per_step: float
    p_full: float
    p_undecided_step: float
    cells: int
    worst: tuple[tuple[str, float], ...]  # the cells likeliest to be decided wrong
    cost_total: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "cap": self.cap,
            "samples_per_step": self.samples_per_step,
            "p_full": self.p_full,
            "p_undecided_step": self.p_undecided_step,
            "cells": self.cells,
            "worst_cells": [{"cell": c, "p_wrong": p} for c, p in self.worst],
            "cost_total": self.cost_total,
        }


def forecast_cell(weighing: Weighing, cell: str, cap: int) -> CellForecast:
    route = weighing.route_cell(cell)
    table = weighing.table
    n = len(route.order)
    rates = []
    for mi, v in route.order:
        source = (weighing.models[mi], v)
        rates.append((table.p(source, cell), table.valid_rate(source)))
    unit = weighing.margin / GRID
    steps = [max(1, round(w / unit)) for w in route.weights]
    lead: dict[int, float] = {0: 1.0}  # right's weight minus wrong's (in units), undecided
    right = wrong = samples = 0.0
    for i in range(cap):
        if not lead:
            break
        samples += sum(lead.values())
        w = steps[i % n]
        p, valid = rates[i % n]
        nxt: dict[int, float] = {}
        for d, q in lead.items():
            for delta, share in ((w, p * valid), (-w, (1.0 - p) * valid), (0, 1.0 - valid)):
                x = q * share
                if x < _TINY:
                    continue
                e = d + delta
                if e >= GRID:
                    right += x
                elif e <= -GRID:
                    wrong += x
                else:
                    nxt[e] = nxt.get(e, 0.0) + x
        lead = nxt
    undecided = sum(lead.values())
    # at the cap the plurality stands: the sign of the lead (a tie either way)
    plural_wrong = sum(q for d, q in lead.items() if d < 0) + 0.5 * lead.get(0, 0.0)
    return CellForecast(samples, wrong + plural_wrong, undecided)


def forecast(
    weighing: Weighing, steps: int, cap: int, cost_per_sample: float | None = None
) -> WeightedForecast:
    """The weighted vote over `steps` steps whose cells occur as the table's shares say
    (evenly over the table's cells where it has none)."""
    table = weighing.table
    shares = dict(table.shares)
    if not shares:
        cells = sorted({c for per in table.cells.values() for c in per})
        shares = {c: 1.0 / len(cells) for c in cells} if cells else {}
    total = sum(shares.values()) or 1.0
    per_step = log_right = undecided = 0.0
    worst: list[tuple[str, float]] = []
    for cell, share in shares.items():
        f = forecast_cell(weighing, cell, cap)
        s = share / total
        per_step += s * f.samples
        undecided += s * f.p_undecided
        log_right += steps * s * math.log1p(-min(f.p_wrong, 1.0 - 1e-300))
        worst.append((cell, f.p_wrong))
    worst.sort(key=lambda cp: -cp[1])
    cost = None if cost_per_sample is None else per_step * steps * cost_per_sample
    return WeightedForecast(
        weighing.margin,
        cap,
        per_step,
        math.exp(log_right),
        undecided,
        len(shares),
        tuple(worst[:5]),
        cost,
    )
