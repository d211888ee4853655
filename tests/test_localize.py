"""Localisation names the first wrong step, its tally, and the samples that out-voted it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.analysis_helpers import batch, run, sim
from unerring.analysis.localize import localize
from unerring.journal.store import Store
from unerring.tasks.hanoi import Hanoi
from unerring.tasks.registry import resolve


def _first_wrong_by_replay(db: Path, run_id: str, disks: int) -> int | None:
    """Independent of the journal's `correct` column: replay winners through the checker."""
    h = Hanoi(disks)
    state = h.initial_state()
    store = Store(str(db))
    run = store.get_run(run_id)
    assert run is not None
    for row in store.decisions(run):  # rows of their own and packed blocks
        step, winner = row["step"], row["winner"]
        answer = h.parse(winner)
        if not h.check(state, step, answer):
            return int(step)
        state = h.advance(state, answer)
    return None


def test_a_fault_planted_on_one_step_is_named_exactly(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    run(db, "r", sim(1, "modes=step:50:1.0", error=0.0), disks=7, k=3, record="samples")
    loc = localize(Store(str(db)), "r", resolve=resolve)
    assert loc.checked
    assert loc.first_wrong == 50 == _first_wrong_by_replay(db, "r", 7)
    assert loc.tally == (3,)
    assert [s["index"] for s in loc.outvoters] == [0, 1, 2]
    assert loc.right == ()


def test_contested_wrong_step_lists_outvoters_and_the_right_samples(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    found = None
    for seed in range(40):
        res = run(db, f"r{seed}", sim(seed, "modes=step:40:0.6", error=0.0), disks=7, k=2)
        if not res.summary["errors"]:
            continue
        loc = localize(Store(str(db)), f"r{seed}", resolve=resolve)
        if loc.journaled and len(loc.tally) > 1:  # contested, not a unanimous wrong step
            found = f"r{seed}"
            break
    assert found is not None, "no seed in 40 let the planted answer win a contested vote"
    loc = localize(Store(str(db)), found, resolve=resolve)
    assert loc.first_wrong == _first_wrong_by_replay(db, found, 7) == 40
    labels = dict(
        sqlite3.connect(db)
        .execute(
            "SELECT s.idx, s.label FROM samples s JOIN runs r ON r.id = s.run"
            " WHERE r.run_id = ? AND s.step = 40",
            (found,),
        )
        .fetchall()
    )
    assert loc.outvoters and all(labels[s["index"]] == "mode:step=40" for s in loc.outvoters)
    assert loc.right and all(labels[s["index"]] == "correct" for s in loc.right)
    counted = sum(1 for s in loc.outvoters if s["counted"])
    assert max(loc.tally) == counted


def test_a_clean_run_has_no_wrong_step(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    run(db, "r", sim(1, "", error=0.0), disks=5, k=1)
    loc = localize(Store(str(db)), "r", resolve=resolve)
    assert loc.checked and loc.first_wrong is None and loc.wrong_steps == 0


def test_a_batch_names_the_first_wrong_item_and_step_and_its_own_samples(tmp_path: Path) -> None:
    # kills: the first wrong step ordered by step over all items, samples looked up without
    # the item (another item's step), and right answers replayed on another item's states
    db = tmp_path / "j.db"
    sizes = (1, 5, 6, 7)  # item "1" (one disk, one step) gets nothing wrong: not item 0
    batch(db, "b", sim(2, "modes=disk:2:0.45:w1", error=0.02), sizes, k=2, record="samples")
    store = Store(str(db))
    run_rec = store.get_run("b")
    assert run_rec is not None
    wrong = {}  # item id -> its first wrong step, by replay through the checker
    for it in store.items(run_rec):
        h, state = Hanoi(sizes[it.item]), Hanoi(sizes[it.item]).initial_state()
        for row in store.decisions(run_rec, item=it.item):
            answer = h.parse(row["winner"])
            if not h.check(state, row["step"], answer):
                wrong.setdefault(it.item_id, int(row["step"]))
            state = h.advance(state, answer)
    loc = localize(store, "b", resolve=resolve)
    assert len(wrong) >= 2 and loc.batch and loc.wrong_items == len(wrong)
    first = min(wrong, key=int)
    assert first != "1"
    assert (loc.item, loc.first_wrong) == (first, wrong[first])
    assert min(wrong.values()) < wrong[first]  # by step alone another item comes first
    labels = dict(
        sqlite3.connect(db)
        .execute(
            "SELECT s.idx, s.label FROM samples s JOIN items i ON i.run = s.run"
            " AND i.item = s.item WHERE i.item_id = ? AND s.step = ?",
            (first, wrong[first]),
        )
        .fetchall()
    )
    assert loc.outvoters and all(labels[s["index"]] != "correct" for s in loc.outvoters)
    assert all(labels[s["index"]] == "correct" for s in loc.right)
    assert loc.as_dict()["first_wrong_item"] == first
