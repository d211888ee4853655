"""A failure record and one run's failures: the types failure analysis passes around, and
how a record spells a response (a bounded excerpt) and a step's features (tokens)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from unerring.analysis.taxonomy import Category
from unerring.journal.store import RunRecord
from unerring.process import Feature

EXCERPT = 400  # characters of a response a failure record keeps


def excerpt(text: str | None, limit: int = EXCERPT) -> str:
    """A bounded excerpt; the stored text stays raw, display escapes it (see `safe`)."""
    if text is None:
        return ""
    if len(text) <= limit:
        return text
    return text[:limit] + f"...[{len(text) - limit} more characters]"


def safe(text: str, limit: int = 200) -> str:
    """Text fit for a terminal: control characters and escapes shown as escapes, bounded."""
    out = []
    for ch in excerpt(text, limit):
        if ch == "\n":
            out.append("\\n")
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def tokens_of(features: Mapping[str, Feature]) -> tuple[str, ...]:
    """Feature values as `name=value` tokens (the spelling notes and sim modes use)."""
    return tuple(f"{k}={str(v).lower()}" for k, v in sorted(features.items()))


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureRecord:
    run_id: str
    item_id: str  # the item's name ("1" for a single chain)
    item: int  # the item's index in its run (0 for a single chain)
    step: int
    index: int | None  # sample index; None for a step-level record
    category: Category
    excerpt: str
    answer: str | None  # the answer the sample gave, as `answer_text` spells it
    features: dict[str, Feature]
    time: float | None  # seconds since the epoch (estimated for samples, see `_times`)
    counted: bool
    systematic: bool
    flip_rate: float | None  # share of the step's valid samples that disagreed with its winner
    label: str | None = None  # simulator ground truth: evaluation only, never for clustering
    retried: bool | None = None

    @property
    def nature(self) -> str:
        return "systematic" if self.systematic else "intermittent"

    @property
    def place(self) -> tuple[int, int]:
        """(item index, step): where in its run the failure happened."""
        return self.item, self.step

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "item": self.item_id,
            "step": self.step,
            "index": self.index,
            "category": self.category.value,
            "excerpt": self.excerpt,
            "answer": self.answer,
            "features": self.features,
            "time": self.time,
            "counted": self.counted,
            "nature": self.nature,
            "flip_rate": self.flip_rate,
            "retried": self.retried,
        }


@dataclass(frozen=True, slots=True)
class Incident:
    """Failures close together in time across many steps: infrastructure, not content."""

    start: float
    end: float
    failures: int
    steps: int  # distinct (item, step) places
    categories: dict[str, int]


@dataclass
class RunFailures:
    """Everything failure analysis needs from one run."""

    run: RunRecord
    records: list[FailureRecord]
    steps: int  # decided steps, over all items
    samples: int
    baseline: Counter[str]  # feature token -> number of steps that have it
    baseline_steps: int
    incidents: list[Incident] = field(default_factory=list)
    first_wrong: tuple[str, int] | None = None  # (item id, step), by item then step
    items: dict[int, str] = field(default_factory=dict)  # item index -> item id

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def batch(self) -> bool:
        """Many items: a batch, or a graph (whose items are its nodes)."""
        return self.run.many_items
