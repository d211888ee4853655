"""Failure records built from real journals: categories, nature, incidents, migration."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

from tests.analysis_helpers import run, sim
from unerring.analysis.records import build, in_incident, mark_across_runs
from unerring.analysis.taxonomy import Category
from unerring.settings import Budget
from unerring.journal.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from unerring.journal.store import Store
from unerring.runner import RunOptions, Session, execute


def test_sample_records_match_what_the_simulator_planted(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    run(db, "r", sim(2, "flag=0.05,modes=disk:2:0.3"), disks=7)
    rf = build(Store(str(db)), "r")
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
    rf = build(Store(str(db)), "r")
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
    rf = build(Store(str(db)), "wrong")
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
    rf = build(Store(str(db)), "undecided")
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
    opts = RunOptions(task="hanoi", task_options={"disks": 6}, model=sim(1, ""), k=2)
    session = Session(store=str(db), handle_signals=False, budget=Budget(max_samples=20))
    res = execute(opts, session, "budget")
    res.store.close()
    assert res.outcome.status == "stopped"
    rf = build(Store(str(db)), "budget")
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
    store.conn.executemany("INSERT INTO transport_failures VALUES (?,?,?,?,?,?,?)", rows)
    rf = build(store, "r")
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
    runs = [build(store, "a"), build(store, "b")]
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
