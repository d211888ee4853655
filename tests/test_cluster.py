"""Clustering failures into patterns, scored against the simulator's planted labels."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.analysis_helpers import BATCH_MODE, batch, run, sim
from unerring.analysis.cluster import adjusted_rand_index, cluster, text_clusters
from unerring.analysis.failure import FailureRecord, RunFailures
from unerring.analysis.records import build
from unerring.analysis.taxonomy import CONTENT
from unerring.journal.store import Store
from unerring.tasks.registry import resolve


def test_ari_of_known_partitions() -> None:
    assert adjusted_rand_index([0, 0, 1, 1], ["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert adjusted_rand_index([0, 0, 1, 1, 2, 2], [5, 5, 9, 9, 7, 7]) == pytest.approx(1.0)
    # all in one cluster against a real split: no agreement beyond chance
    assert adjusted_rand_index([0, 0, 0, 0], [0, 0, 1, 1]) == pytest.approx(0.0)
    # a worked example: {0,1,2},{3,4,5} vs {0,1},{2,3},{4,5}
    assert adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(
        (2 - 6 * 3 / 15) / ((6 + 3) / 2 - 6 * 3 / 15)
    )
    with pytest.raises(ValueError):
        adjusted_rand_index([0], [0, 1])


def test_text_clusters_separate_different_kinds_of_response() -> None:
    texts = [f"move = [1, {i % 3}, 2]" for i in range(6)] + [
        "I cannot help with that request, sorry." for _ in range(4)
    ]
    labels = text_clusters(texts)
    assert len(set(labels[:6])) == 1 and len(set(labels[6:])) == 1
    assert labels[0] != labels[6]


def _planted(rf: RunFailures) -> tuple[list[FailureRecord], list[str]]:
    recs = [r for r in rf.records if r.category in CONTENT and r.index is not None]
    truth = [r.label if r.label and r.label.startswith("mode:") else "background" for r in recs]
    return recs, truth


@pytest.mark.parametrize("seed", [1, 2])
def test_clustering_recovers_planted_modes(tmp_path: Path, seed: int) -> None:
    db = tmp_path / "j.db"
    run(db, "r", sim(seed), disks=10)
    rf = build(Store(str(db)), "r", resolve=resolve)
    recs, truth = _planted(rf)
    assert {"mode:disk=2", "mode:disk=4"} <= set(truth)
    c = cluster(recs, rf.baseline, rf.baseline_steps, rf.samples)
    ari = adjusted_rand_index(truth, list(c.assignment))
    assert ari >= 0.8, ari
    selectors = {p.selector for p in c.patterns}
    assert ("disk=2",) in selectors and ("disk=4",) in selectors
    for p in c.patterns:
        if p.selector in (("disk=2",), ("disk=4",)):
            assert p.nature == "systematic"
            assert p.over[0].token == p.selector[0] and p.over[0].lift > 2
            assert 1 <= len(p.examples) <= 3
            assert "note" in p.advice


def test_the_clusterer_never_reads_labels(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    run(db, "r", sim(1), disks=8)
    rf = build(Store(str(db)), "r", resolve=resolve)
    recs, _ = _planted(rf)
    blind = [dataclasses.replace(r, label=None) for r in recs]
    a = cluster(recs, rf.baseline, rf.baseline_steps, rf.samples)
    b = cluster(blind, rf.baseline, rf.baseline_steps, rf.samples)
    assert a.assignment == b.assignment


def test_random_errors_alone_form_no_feature_pattern(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    run(db, "r", sim(5, "", error=0.1), disks=9, k=3)
    rf = build(Store(str(db)), "r", resolve=resolve)
    recs = [r for r in rf.records if r.category in CONTENT]
    c = cluster(recs, rf.baseline, rf.baseline_steps, rf.samples)
    assert recs and all(not p.selector for p in c.patterns)


def test_a_mode_that_recurs_across_items_is_one_pattern_naming_the_items(tmp_path: Path) -> None:
    # kills: a pattern per item (records clustered item by item), a pattern's items or
    # places counted from one item, and steps of different items merged into one place
    db = tmp_path / "j.db"
    batch(db, "b", sim(3, BATCH_MODE))
    rf = build(Store(str(db)), "b", resolve=resolve)
    recs, truth = _planted(rf)
    c = cluster(recs, rf.baseline, rf.baseline_steps, rf.samples)
    moded = {c.assignment[i] for i, t in enumerate(truth) if t == "mode:disk=2"}
    assert len(moded) == 1  # every item's planted failures: one pattern
    p = c.patterns[moded.pop()]
    assert p.selector == ("disk=2",) and p.nature == "systematic"
    planted_items = {r.item_id for r, t in zip(recs, truth, strict=True) if t == "mode:disk=2"}
    assert len(planted_items) == 8 and set(p.items) == planted_items
    assert list(p.items) == sorted(p.items, key=int)  # in item order
    places = {r.place for i, r in enumerate(recs) if c.assignment[i] == c.patterns.index(p)}
    assert set(p.places) == places and len(p.places) > len(p.steps)
    # random errors on disk=2 steps look the same to the clusterer; the planted ones dominate
    members = [truth[i] for i in p.members]
    assert members.count("mode:disk=2") >= 0.8 * len(members)
