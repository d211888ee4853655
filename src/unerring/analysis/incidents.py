"""Failures across time and runs: bursts of transport failures (incidents), and the
failures another run repeats (systematic)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace

from unerring.analysis.failure import FailureRecord, Incident, RunFailures
from unerring.analysis.taxonomy import is_transport


def incidents(
    records: Sequence[FailureRecord], gap_s: float = 5.0, min_steps: int = 5
) -> list[Incident]:
    """Bursts of transport failures (gaps under gap_s) over at least min_steps steps (of
    any items)."""
    timed = sorted(
        (r for r in records if is_transport(r.category) and r.time is not None),
        key=lambda r: r.time or 0.0,
    )
    out: list[Incident] = []
    burst: list[FailureRecord] = []

    def close() -> None:
        places = len({r.place for r in burst})
        if places >= min_steps:
            cats = Counter(r.category.value for r in burst)
            out.append(
                Incident(
                    start=burst[0].time or 0.0,
                    end=burst[-1].time or 0.0,
                    failures=len(burst),
                    steps=places,
                    categories=dict(cats),
                )
            )

    for r in timed:
        if burst and (r.time or 0.0) - (burst[-1].time or 0.0) > gap_s:
            close()
            burst = []
        burst.append(r)
    if burst:
        close()
    return out


def in_incident(record: FailureRecord, found: Sequence[Incident]) -> bool:
    if not is_transport(record.category) or record.time is None:
        return False
    return any(i.start <= record.time <= i.end for i in found)


def mark_across_runs(runs: Sequence[RunFailures]) -> None:
    """A failure seen at the same step of the same item with the same answer in another
    run is systematic."""
    if len(runs) < 2:
        return
    where: dict[tuple[str, int, str], set[str]] = defaultdict(set)
    for rf in runs:
        for r in rf.records:
            if r.answer is not None:
                where[(r.item_id, r.step, r.answer)].add(rf.run_id)
    for rf in runs:
        rf.records = [
            r
            if r.systematic or r.answer is None or len(where[(r.item_id, r.step, r.answer)]) < 2
            else _with_systematic(r)
            for r in rf.records
        ]


def _with_systematic(r: FailureRecord) -> FailureRecord:
    return replace(r, systematic=True)
