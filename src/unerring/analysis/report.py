"""The `unerring failures` report: records, patterns, incidents, localisation, correlation."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from unerring import defaults
from unerring.analysis.cluster import Pattern, cluster
from unerring.analysis.correlation import correlation
from unerring.analysis.failure import RunFailures
from unerring.analysis.incidents import in_incident, mark_across_runs
from unerring.analysis.localize import localize
from unerring.analysis.records import build
from unerring.analysis.taxonomy import BY_CATEGORY
from unerring.journal.store import Store
from unerring.process_factory import FactoryResolver

FIRST = 10  # steps and items a pattern lists by name


def pattern_dict(p: Pattern, runs: int) -> dict[str, Any]:
    return {
        "id": p.id,
        "category": p.category.value,
        "categories": dict(p.categories),
        "selector": list(p.selector),
        "size": p.size,
        "share_of_samples": p.share,
        "steps_affected": len(p.places),
        "first_steps": list(p.steps[:FIRST]),
        "items_affected": len(p.items),
        "first_items": list(p.items[:FIRST]),
        "first_places": [{"item": item, "step": step} for item, step in p.first_places],
        "over_represented": [x.as_dict() for x in p.over],
        "examples": list(p.examples),
        "top_answers": [{"answer": a, "count": c} for a, c in p.answers],
        "nature": p.nature,
        "systematic_share": p.systematic,
        "advice": p.advice,
        "taxonomy": {
            "AgentErrorTaxonomy": BY_CATEGORY[p.category].aet,
            "TRAIL": BY_CATEGORY[p.category].trail,
            "MAST": BY_CATEGORY[p.category].mast,
        },
        "runs": runs,
    }


def save_records(store: Store, runs: Sequence[RunFailures], pattern_of: dict[int, str]) -> int:
    """Replace the runs' rows in the `failures` table; returns the rows written."""
    rows = [
        {
            "run": rf.run.rowid,
            "item": r.item,  # the item's index: `Store.saved_failures` gives its id back
            "step": r.step,
            "idx": r.index,
            "category": r.category.value,
            "nature": r.nature,
            "flip_rate": r.flip_rate,
            "answer": r.answer,
            "excerpt": r.excerpt,
            "features": json.dumps(r.features, sort_keys=True),
            "time": r.time,
            "counted": int(r.counted),
            "pattern": "incident" if in_incident(r, rf.incidents) else pattern_of.get(id(r)),
        }
        for rf in runs
        for r in rf.records
    ]
    return store.replace_failures([rf.run for rf in runs], rows)


def failures_report(
    store: Store,
    run_ids: Sequence[str],
    examples: int = 3,
    *,
    save: bool = False,
    resolve: FactoryResolver | None,
) -> dict[str, Any]:
    """Patterns and incidents (see failure_patterns), the first wrong step, correlation;
    `resolve` makes each run's processes again (for step features and right answers)."""
    report = failure_patterns(store, run_ids, examples, save=save, resolve=resolve)
    report["localisation"] = [localize(store, r, resolve=resolve).as_dict() for r in run_ids]
    report["correlation"] = [{"run_id": r, **correlation(store, r).as_dict()} for r in run_ids]
    return report


def failure_patterns(
    store: Store,
    run_ids: Sequence[str],
    examples: int = 3,
    *,
    save: bool = False,
    resolve: FactoryResolver | None,
) -> dict[str, Any]:
    """Failure records of runs, clustered into patterns; incidents; counts by category.

    Without the localisation and the correlation check, which read every decision again.
    """
    runs: list[RunFailures] = [build(store, r, resolve=resolve) for r in run_ids]
    mark_across_runs(runs)
    records = []
    incident_records = 0
    for rf in runs:
        for r in rf.records:
            if in_incident(r, rf.incidents):
                incident_records += 1
            else:
                records.append(r)
    baseline: Counter[str] = Counter()
    for rf in runs:
        baseline.update(rf.baseline)
    steps = sum(rf.baseline_steps for rf in runs)
    samples = sum(rf.samples for rf in runs)
    clustering = cluster(records, baseline, steps, samples, examples=examples)
    by_cat = Counter(r.category.value for rf in runs for r in rf.records)
    nature = Counter(r.nature for r in records)
    saved = None
    if save:
        pattern_of = {
            id(records[i]): clustering.patterns[p].id
            for i, p in enumerate(clustering.assignment)
            if p >= 0
        }
        saved = save_records(store, runs, pattern_of)
    return {
        "saved": saved,
        # a batch among the runs: patterns and localisation name items
        "batch": any(rf.batch for rf in runs),
        "items": len({i for rf in runs for i in rf.items.values()}),
        "runs": [
            {
                "run_id": rf.run_id,
                "task": rf.run.task,
                "kind": rf.run.kind,
                "items": len(rf.items),
                "status": rf.run.status,
                "steps_decided": rf.steps,
                "samples": rf.samples,
                "failures": len(rf.records),
                "items_with_failures": len({r.item for r in rf.records}),
                "record_level": rf.run.config.get("record", defaults.RECORD),
            }
            for rf in runs
        ],
        "failures": sum(len(rf.records) for rf in runs),
        "by_category": dict(by_cat.most_common()),
        "by_nature": dict(nature),
        "incidents": [
            {
                "run_id": rf.run_id,
                "start": i.start,
                "end": i.end,
                "failures": i.failures,
                "steps": i.steps,
                "categories": i.categories,
            }
            for rf in runs
            for i in rf.incidents
        ],
        "failures_in_incidents": incident_records,
        "patterns": [pattern_dict(p, len(runs)) for p in clustering.patterns],
    }
