"""Store queries for reports and replays: columns per block, noteworthy rows, one column
in step order, and a snapshot; each agrees with `Store.decisions`, step for step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.helpers import run_task
from unerring.app.options import BatchItem
from unerring.journal.schema import migrate
from unerring.journal.store import Store


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("queries") / "runs.db"
    # a high error rate: many contested steps, so blocks have holes
    options = dict(task="hanoi", task_options={"disks": 8}, model="sim:error=0.2", k=2)
    run_task(**options, store=str(db), run_id="q")
    return db


def test_columns_and_noteworthy_rows_cover_every_decision_once(journal: Path) -> None:
    store = Store(str(journal), read_only=True)
    run = store.get_run("q")
    assert run is not None
    by_step = {d["step"]: d for d in store.decisions(run)}
    seen: dict[int, tuple[int, int, int, float]] = {}
    holes = 0
    for c in store.block_columns(run):
        holes += len(c.holes)
        skip = set(c.holes)
        steps = [c.first_step + o for o in range(c.last_step - c.first_step + 1) if o not in skip]
        assert len(steps) == len(c.samples) == len(c.elapsed_us) == len(c.correct)
        for i, s in enumerate(steps):
            assert s not in seen
            seen[s] = (c.samples[i], c.surplus[i], c.prompt_tokens[i], c.elapsed_us[i] / 1e6)
    assert holes > 0  # contested steps sit inside blocks
    for d in store.decision_rows(run):
        assert d["step"] not in seen and "winner" not in d and "features" not in d
        seen[d["step"]] = (d["samples"], d["surplus"], d["prompt_tokens"], d["elapsed"])
    assert sorted(seen) == sorted(by_step) == list(range(255))
    for s, (samples, surplus, prompt, elapsed) in seen.items():
        d = by_step[s]
        assert (samples, surplus, prompt) == (d["samples"], d["surplus"], d["prompt_tokens"])
        assert elapsed == pytest.approx(d["elapsed"], abs=1e-6)


def test_one_column_in_step_order(journal: Path) -> None:
    store = Store(str(journal), read_only=True)
    run = store.get_run("q")
    assert run is not None
    decisions = list(store.decisions(run))
    assert list(store.decision_values(run, "winner")) == [
        (d["step"], d["winner"]) for d in decisions
    ]
    elapsed = list(store.decision_values(run, "elapsed"))
    assert [s for s, _ in elapsed] == [d["step"] for d in decisions]
    assert [e for _, e in elapsed] == pytest.approx([d["elapsed"] for d in decisions], abs=1e-6)
    with pytest.raises(ValueError, match="winner or elapsed"):
        list(store.decision_values(run, "votes; DROP TABLE runs"))


def test_a_snapshot_sees_one_committed_state(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    writer = Store(db)
    writer.create_run("a", "hanoi", {}, 1)
    reader = Store(db, read_only=True)
    with reader.snapshot():
        assert [r.run_id for r in reader.list_runs()] == ["a"]
        writer.create_run("b", "hanoi", {}, 1)  # committed by another connection meanwhile
        assert [r.run_id for r in reader.list_runs()] == ["a"]
        with reader.snapshot():  # nested: the same view
            assert len(reader.list_runs()) == 1
    assert [r.run_id for r in reader.list_runs()] == ["a", "b"]


def test_a_store_before_holes_is_read_through_todays_schema(tmp_path: Path) -> None:
    """A v3 store opened read-only (its blocks have no holes column) is read from a migrated
    copy in memory: the report's queries see it as today's, the file is not touched."""
    db = tmp_path / "s.db"
    options = dict(task="hanoi", task_options={"disks": 4}, model="sim:error=0.0", k=2)
    # durability sync: one decision per commit, so no block has a hole
    run_task(**options, store=str(db), durability="sync", run_id="old").store.close()
    v3 = tmp_path / "v3.db"
    conn = sqlite3.connect(v3, isolation_level=None)
    migrate(conn, 0, target=3)
    conn.execute("ATTACH ? AS src", (str(db),))
    conn.execute(
        "INSERT INTO main.runs SELECT id, run_id, task, config, status, reason, steps_total,"
        " next_step, state, stats, created, updated FROM src.runs"
    )
    conn.execute("INSERT INTO main.attempts SELECT * FROM src.attempts")
    conn.execute(
        "INSERT INTO main.decision_blocks"
        " SELECT run, first_step, last_step, winners, data FROM src.decision_blocks"
    )
    # (decisions committed one by one have rows of their own: the columns v3 had)
    columns = ", ".join(r[1] for r in conn.execute("PRAGMA main.table_info(decisions)"))
    conn.execute(f"INSERT INTO main.decisions SELECT {columns} FROM src.decisions")
    conn.execute("DETACH src")
    conn.close()
    v3.chmod(0o444)
    before = v3.read_bytes()
    store = Store(str(v3), read_only=True)
    run = store.get_run("old")
    assert run is not None
    winners = list(store.decision_values(run, "winner"))
    assert [s for s, _ in winners] == list(range(15))
    assert (
        sum(len(c.samples) for c in store.block_columns(run))
        + sum(1 for _ in store.decision_rows(run))
        == 15
    )
    assert v3.read_bytes() == before


def test_a_batch_is_read_item_by_item_or_all_at_once(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    options = dict(task="hanoi", task_options={"disks": 4}, model="sim:error=0.2", k=2)
    batch = [BatchItem("a", {"disks": 3}), BatchItem("b", {"disks": 5})]
    run_task(**options, store=str(db), run_id="b", batch=batch).store.close()
    store = Store(str(db), read_only=True)
    run = store.get_run("b")
    assert run is not None
    for item, steps in ((0, 7), (1, 31)):
        decisions = list(store.decisions(run, item=item))
        assert len(decisions) == steps
        assert list(store.decision_values(run, "winner", item)) == [
            (d["step"], d["winner"]) for d in decisions
        ]
        columns = sum(len(c.samples) for c in store.block_columns(run, item))
        assert all(c.item == item for c in store.block_columns(run, item))
        assert columns + sum(1 for _ in store.decision_rows(run, item)) == steps
    every = sum(len(c.samples) for c in store.block_columns(run))
    assert every + sum(1 for _ in store.decision_rows(run)) == 38
    numbers = list(store.item_numbers(run))
    assert [(n[0], n[1], n[2]) for n in numbers] == [(0, "completed", 7), (1, "completed", 31)]
    assert sum(n[3] for n in numbers) == run.stats["samples"]
    assert store.item_extent(run) == 31
    assert store.item_ids(run, [1, 0, 1, 9]) == {0: "a", 1: "b"}
