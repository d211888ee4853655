"""Failure records built from real journals: categories, nature, incidents, migration,
and the items of a batch."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.analysis_helpers import BATCH_MODE, batch, run, sim
from tests.helpers import run_task
from unerring.analysis.failure import FailureRecord, RunFailures
from unerring.analysis.incidents import in_incident, mark_across_runs
from unerring.analysis.item_records import _times
from unerring.analysis.records import build
from unerring.analysis.taxonomy import Category
from unerring.journal.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from unerring.journal.store import RunRecord, Store
from unerring.tasks.registry import resolve
from unerring.voting.config import Budget


def test_sample_records_match_what_the_simulator_planted(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    run(db, "r", sim(2, "flag=0.05,modes=disk:2:0.3"), disks=7)
    rf = build(Store(str(db)), "r", resolve=resolve)
    by_label = Counter((r.label, r.category) for r in rf.records if r.index is not None)
    for (label, cat), _ in by_label.items():
        if label == "flag:overlong":
            assert cat is Category.OVERLENGTH
        elif label == "flag:malformed":
            assert cat is Category.FORMAT
        elif label is not None and label.startswith(("mode:", "wrong:")):
            assert cat in (Category.OUTVOTED, Category.REJECTED)
        else:  # a right answer is never a failure record of its own
            raise AssertionError((label, cat))
    assert any(c is Category.OVERLENGTH for _, c in by_label)
    assert any(label == "mode:disk=2" for label, _ in by_label)
    # mode failures carry the step's features, read back from the journal or the replay
    for r in rf.records:
        if r.label == "mode:disk=2":
            assert r.features["disk"] == 2


def test_a_repeated_wrong_answer_is_systematic_and_a_lone_one_intermittent(
    tmp_path: Path,
) -> None:
    db = tmp_path / "j.db"
    run(db, "r", sim(4, "modes=disk:2:0.45", error=0.02), disks=7)
    rf = build(Store(str(db)), "r", resolve=resolve)
    wrong = [r for r in rf.records if r.answer is not None]
    assert wrong
    per_step = Counter((r.step, r.answer) for r in wrong)
    for r in wrong:
        assert r.systematic == (per_step[(r.step, r.answer)] >= 2)
        # 0 on a unanimous wrong step (its samples are kept: the checker rejected it)
        assert r.flip_rate is not None and 0.0 <= r.flip_rate <= 1.0
    assert any(r.systematic for r in wrong) and any(not r.systematic for r in wrong)


def test_rejected_decisions_undecided_steps_and_budget_stops(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    # k=1 and a 30% error: the checker rejects some decisions outright
    run(db, "wrong", sim(1, "", error=0.3), disks=6, k=1)
    rf = build(Store(str(db)), "wrong", resolve=resolve)
    rejected = {r.step for r in rf.records if r.category is Category.REJECTED}
    con = sqlite3.connect(db)
    truth = {s for (s,) in con.execute("SELECT step FROM decisions WHERE correct = 0")}
    assert rejected == truth and truth
    # a cap of 2 samples a step with k=2: a split vote is undecided (taken by plurality)
    run(
        db,
        "undecided",
        sim(3, "", error=0.3),
        disks=6,
        k=2,
        max_samples_per_step=2,
        on_undecided="plurality",
    )
    rf = build(Store(str(db)), "undecided", resolve=resolve)
    undecided = {r.step for r in rf.records if r.category is Category.UNDECIDED}
    truth = {
        s
        for (s,) in con.execute(
            "SELECT step FROM decisions d JOIN runs r ON r.id = d.run"
            " WHERE r.run_id = 'undecided' AND undecided = 1"
        )
    }
    assert undecided == truth and truth
    # a sample budget stops the run: one budget record at the resume point
    opts = dict(task="hanoi", task_options={"disks": 6}, model=sim(1, ""), k=2)
    session = dict(store=str(db), handle_signals=False, budget=Budget(max_samples=20))
    res = run_task(**opts, **session, run_id="budget")
    res.store.close()
    assert res.outcome.status == "stopped"
    rf = build(Store(str(db)), "budget", resolve=resolve)
    budget = [r for r in rf.records if r.category is Category.BUDGET]
    assert len(budget) == 1 and budget[0].step == res.outcome.step


def test_transport_failures_and_incidents(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    run(db, "r", sim(1, ""), disks=6)
    store = Store(str(db))
    rid = store.get_run("r")
    assert rid is not None
    t0 = time.time()
    rows = [(rid.id, s, 1, "503", t0 + 0.1 * s, 1, "bad gateway") for s in range(10)]  # burst
    rows += [(rid.id, 40, 1, "timeout", t0 + 500, 0, "read timed out")]  # a lone failure
    store.conn.executemany(
        "INSERT INTO transport_failures (run, step, attempt, kind, time, retried, message)"
        " VALUES (?,?,?,?,?,?,?)",
        rows,
    )
    rf = build(store, "r", resolve=resolve)
    cats = Counter(r.category for r in rf.records)
    assert cats[Category.SERVER] == 10 and cats[Category.TIMEOUT] == 1
    assert len(rf.incidents) == 1
    inc = rf.incidents[0]
    assert inc.failures == 10 and inc.steps == 10
    lone = next(r for r in rf.records if r.category is Category.TIMEOUT)
    assert not in_incident(lone, rf.incidents)
    assert lone.systematic and not lone.retried  # not retried: nothing showed it passes


def test_the_same_wrong_answer_in_two_runs_is_systematic(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    # wrong answers differ in seed but planted modes give the same answer at the same step
    run(db, "a", sim(1, "modes=disk:2:0.3", error=0.0), disks=6)
    run(db, "b", sim(2, "modes=disk:2:0.3", error=0.0), disks=6)
    store = Store(str(db))
    runs = [build(store, "a", resolve=resolve), build(store, "b", resolve=resolve)]
    lone_before = [r for rf in runs for r in rf.records if not r.systematic]
    mark_across_runs(runs)
    shared = {(r.step, r.answer) for r in runs[0].records} & {
        (r.step, r.answer) for r in runs[1].records
    }
    for rf in runs:
        for r in rf.records:
            if (r.step, r.answer) in shared:
                assert r.systematic
    assert lone_before and shared


def test_a_store_at_the_previous_schema_version_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    con = sqlite3.connect(db, isolation_level=None)
    migrate(con, 0, SCHEMA_VERSION - 1)
    con.close()
    assert len(MIGRATIONS) == SCHEMA_VERSION
    store = Store(str(db))  # opening for writing moves it up
    version = store.conn.execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION
    names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
    assert {"notebooks", "failures", "transport_failures"} <= names


# -- batches ---------------------------------------------------------------------------------
def _journal_samples(db: Path, run_id: str) -> dict[tuple[str, int, int], tuple[str, str]]:
    """(item id, step, index) -> (text, label), read straight from the journal."""
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT i.item_id, s.step, s.idx, s.text, s.label FROM samples s"
        " JOIN runs r ON r.id = s.run JOIN items i ON i.run = s.run AND i.item = s.item"
        " WHERE r.run_id = ?",
        (run_id,),
    ).fetchall()
    return {(a, b, c): (t, lab) for a, b, c, t, lab in rows}


def test_batch_records_carry_their_item_and_read_each_item_s_own_samples(tmp_path: Path) -> None:
    # kills: reading every item's samples as item 0's, an item id off by one, records built
    # for the first item only, and features replayed with the first item's process
    db = tmp_path / "j.db"
    sizes = (4, 5, 6, 7, 5, 6)
    batch(db, "b", sim(3, BATCH_MODE), sizes)
    rf = build(Store(str(db)), "b", resolve=resolve)
    journal = _journal_samples(db, "b")
    sample_records = [r for r in rf.records if r.index is not None]
    assert {r.item_id for r in sample_records} == {str(i) for i in range(1, len(sizes) + 1)}
    for r in sample_records:
        assert r.item == int(r.item_id) - 1
        text, label = journal[(r.item_id, r.step, r.index)]
        assert r.excerpt == text[: len(r.excerpt)] and r.label == label
        if label == "mode:disk=2":
            assert r.features["disk"] == 2
    # the base rates come from every item's steps, replayed with the item's own process
    assert rf.baseline_steps == sum(2**d - 1 for d in sizes) == rf.steps
    assert rf.batch and rf.items == {i: str(i + 1) for i in range(len(sizes))}


def test_a_batch_s_replay_shares_one_budget_over_its_items(tmp_path: Path) -> None:
    # kills: a replay limit applied to each item alone (it would replay 8 x 40 steps)
    db = tmp_path / "j.db"
    batch(db, "b", sim(3, BATCH_MODE))
    rf = build(Store(str(db)), "b", resolve=resolve, replay_limit=100)
    assert rf.baseline_steps == 100
    # past the budget, contested steps keep the features journaled with them
    last = [r for r in rf.records if r.item_id == "8" and r.label == "mode:disk=2"]
    assert last and all(r.features.get("disk") == 2 for r in last)


def test_first_wrong_of_a_batch_is_by_item_then_step(tmp_path: Path) -> None:
    # kills: the first wrong step taken over all items by step alone, or from item 0 only
    db = tmp_path / "j.db"
    batch(db, "b", sim(3, BATCH_MODE))
    rf = build(Store(str(db)), "b", resolve=resolve)
    con = sqlite3.connect(db)
    wrong = con.execute(
        "SELECT i.item_id, d.step FROM decisions d JOIN items i ON i.run = d.run"
        " AND i.item = d.item WHERE d.correct = 0 ORDER BY d.item, d.step"
    ).fetchall()
    # wrong steps in several items, and a later item has the lowest step number
    assert min(wrong, key=lambda w: w[1]) != wrong[0]
    assert rf.first_wrong == wrong[0]


def test_a_budget_stop_is_recorded_for_each_item_it_stopped(tmp_path: Path) -> None:
    # kills: the budget record put at the run's resume point (0 for a batch) or only once
    db = tmp_path / "j.db"
    res = batch(db, "b", sim(1, ""), (5,) * 4, k=2, budget=Budget(max_samples=120))
    assert res.outcome.status == "stopped"
    store = Store(str(db))
    rf = build(store, "b", resolve=resolve)
    budget = {(r.item_id, r.step) for r in rf.records if r.category is Category.BUDGET}
    run_rec = store.get_run("b")
    assert run_rec is not None
    stopped = {(it.item_id, it.next_step) for it in store.items(run_rec) if it.status == "stopped"}
    assert budget == stopped and any(step > 0 for _, step in budget)


def test_across_runs_the_same_answer_counts_only_at_the_same_item() -> None:
    # kills: the across-runs key without the item (step and answer alone)
    def rec(run_id: str, item_id: str) -> FailureRecord:
        return FailureRecord(
            run_id=run_id,
            item_id=item_id,
            item=int(item_id) - 1,
            step=5,
            index=0,
            category=Category.OUTVOTED,
            excerpt="x",
            answer="A",
            features={},
            time=None,
            counted=True,
            systematic=False,
            flip_rate=0.5,
        )

    def failures(run_id: str, *items: str) -> RunFailures:
        run_rec = RunRecord(1, run_id, "hanoi", {}, "completed", "", 0, 0, None, {}, 0.0, 0.0)
        return RunFailures(run_rec, [rec(run_id, i) for i in items], 0, 0, Counter(), 0)

    runs = [failures("a", "1"), failures("b", "2", "3")]
    mark_across_runs(runs)
    assert not any(r.systematic for rf in runs for r in rf.records)
    runs = [failures("a", "1", "2"), failures("b", "2")]
    mark_across_runs(runs)
    assert [r.systematic for r in runs[0].records] == [False, True]
    assert runs[1].records[0].systematic


class _Decisions:
    """A store that only knows an item's decisions (each took `elapsed` seconds)."""

    def __init__(self, steps: int, elapsed: float) -> None:
        self.rows = [{"step": s, "elapsed": elapsed} for s in range(steps)]

    def decision_values(
        self, run: RunRecord, column: str, item: int = 0
    ) -> Iterator[tuple[int, Any]]:
        return iter([(r["step"], r[column]) for r in self.rows])


def test_times_of_a_batch_item_start_at_its_attempt_and_move_on_past_its_end() -> None:
    # kills: a batch item's clock moved on by attempts' first steps (a chain's rule: every
    # attempt of a batch starts at step 0, so all its steps would read as the last attempt's)
    attempts = [
        {"first_step": 0, "started": 100.0, "ended": 110.0},
        {"first_step": 0, "started": 200.0, "ended": None},
    ]
    batch_run = RunRecord(1, "b", "hanoi", {}, "completed", "", 5, 0, None, {}, 0.0, 0.0, "batch")
    fake: Any = _Decisions(5, 4.0)
    got = _times(fake, batch_run, 0, attempts, set(range(5)))
    assert got == {0: 104.0, 1: 108.0, 2: 112.0, 3: 204.0, 4: 208.0}
    # a chain knows where each attempt began
    chain = dataclasses.replace(batch_run, kind="chain")
    chained = [{**attempts[0], "first_step": 0}, {**attempts[1], "first_step": 2}]
    got = _times(fake, chain, 0, chained, set(range(5)))
    assert got == {0: 104.0, 1: 108.0, 2: 204.0, 3: 208.0, 4: 212.0}
