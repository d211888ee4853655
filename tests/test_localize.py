"""Localisation names the first wrong step, its tally, and the samples that out-voted it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.analysis_helpers import run, sim
from unerring.analysis.localize import localize
from unerring.journal.store import Store
from unerring.tasks.hanoi import Hanoi


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
    loc = localize(Store(str(db)), "r")
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
        loc = localize(Store(str(db)), f"r{seed}")
        if loc.journaled and len(loc.tally) > 1:  # contested, not a unanimous wrong step
            found = f"r{seed}"
            break
    assert found is not None, "no seed in 40 let the planted answer win a contested vote"
    loc = localize(Store(str(db)), found)
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
    loc = localize(Store(str(db)), "r")
    assert loc.checked and loc.first_wrong is None and loc.wrong_steps == 0
