"""`unerring export --format parquet`: typed columns that data tools read directly, the
same records as the journal, and bad input in one line (exit 2), nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import child_env, cli, one_line_error
from unerring.backends.resilience import RetryPolicy
from unerring.cli.main import main
from unerring.journal.store import Store
from unerring.models import Transport
from unerring.runner import BatchItem, RunOptions, Session, execute


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("parquet") / "runs.db"
    options = RunOptions(
        task="hanoi", task_options={"disks": 6}, model="sim:error=0.15,flag=0.05,seed=2", k=3
    )
    transport = Transport(retry=RetryPolicy(base_s=0.001))
    assert execute(options, Session(store=str(db), transport=transport), "p").outcome.status == (
        "completed"
    )
    return db


def test_decisions_as_typed_columns_equal_the_journal(journal: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.parquet"
    assert (
        main(["export", "p", "--store", str(journal), "--format", "parquet", "-o", str(out)]) == 0
    )
    table = pq.read_table(out)
    assert table.schema.field("votes").type == pa.list_(pa.int64())
    assert table.schema.field("flags").type == pa.map_(pa.string(), pa.int64())
    assert table.schema.field("features").type == pa.map_(pa.string(), pa.string())
    rows = table.to_pylist()
    store = Store(str(journal), read_only=True)
    run = store.get_run("p")
    assert run is not None
    journal_rows = list(store.decisions(run))
    assert len(rows) == len(journal_rows) == 63
    for got, want in zip(rows, journal_rows, strict=True):
        assert got["step"] == want["step"] and got["winner"] == want["winner"]
        assert got["votes"] == json.loads(want["votes"])
        assert dict(got["flags"] or []) == json.loads(want["flags"] or "{}")
        features = json.loads(want["features"] or "null")
        if features is None:
            assert got["features"] is None
        else:
            assert dict(got["features"]) == {
                k: json.dumps(v) if isinstance(v, bool) else str(v) for k, v in features.items()
            }
        assert got["correct"] == (None if want["correct"] is None else bool(want["correct"]))
        assert got["samples"] == want["samples"] and got["cost"] == want["cost"]
    assert any(r["flags"] for r in rows) and any(len(r["votes"]) > 1 for r in rows)


def test_samples_export_and_pandas_reads_it(journal: Path, tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "s.parquet"
    done = cli("export", "p", "--store", str(journal), "--format", "parquet", "--what",
               "samples", "-o", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    df = pd.read_parquet(out)
    store = Store(str(journal), read_only=True)
    run = store.get_run("p")
    assert run is not None
    assert len(df) == sum(1 for _ in store.samples(run)) > 0
    assert df["counted"].dtype == bool
    assert set(df["flag"].dropna()) <= {"parse", "overlong", "empty", "invalid"}


def test_an_empty_run_exports_an_empty_table(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    store = Store(str(db))
    store.create_run("empty", "hanoi", {"model": "sim"}, 7)
    store.close()
    out = tmp_path / "e.parquet"
    assert main(["export", "empty", "--store", str(db), "--format", "parquet", "-o", str(out)]) == 0
    assert pq.read_table(out).num_rows == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--format", "parquet"], "give -o FILE"),
        (["--format", "jsonl", "-o", "x.jsonl"], "-o is for --format parquet"),
        (["--format", "parquet", "-o", "missing/x.parquet"], "cannot write"),
    ],
)
def test_usage_errors_are_one_line(
    journal: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "unerring", "export", "p", "--store", str(journal), *args],
        capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and words in one_line_error(done.stderr)
    assert not list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob("*.tmp"))


def test_an_unknown_run_and_a_missing_extra(journal: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    done = cli("export", "nope", "--store", str(journal), "--format", "parquet", "-o", str(out))
    assert done.returncode == 2 and "no run 'nope'" in one_line_error(done.stderr)
    blocker = tmp_path / "block" / "pyarrow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('absent')\n")
    env = child_env()
    env["PYTHONPATH"] = f"{blocker.parent}:{env['PYTHONPATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "unerring", "export", "p", "--store", str(journal),
         "--format", "parquet", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "pip install 'unerring[parquet]'" in one_line_error(done.stderr)
    assert not out.exists()


def test_a_batch_exports_its_items_or_one_item(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    options = RunOptions(task="hanoi", task_options={"disks": 3}, model="sim:error=0.2", k=2)
    batch = [BatchItem("x", {"disks": 3}), BatchItem("y", {"disks": 4})]
    execute(options, Session(store=str(db)), "b", batch=batch).store.close()
    every = tmp_path / "all.parquet"
    assert main(["export", "b", "--store", str(db), "--format", "parquet", "-o", str(every)]) == 0
    table = pq.read_table(every)
    assert table.schema.names[0] == "item" and table.schema.field("item").type == pa.string()
    rows = table.to_pylist()
    assert [(r["item"], r["step"]) for r in rows] == [("x", s) for s in range(7)] + [
        ("y", s) for s in range(15)
    ]
    one = tmp_path / "y.parquet"
    args = ["--store", str(db), "--format", "parquet", "--what", "samples", "-o", str(one)]
    assert main(["export", "b", *args, "--item", "y"]) == 0
    samples = pq.read_table(one)
    assert "item" not in samples.schema.names  # one item: the single-run form
    store = Store(str(db), read_only=True)
    run = store.get_run("b")
    assert run is not None
    assert samples.num_rows == sum(1 for _ in store.samples(run, 1)) > 0
    done = cli("export", "b", *args, "--item", "nope")
    assert done.returncode == 2 and "no item 'nope'" in one_line_error(done.stderr)


def test_a_graph_exports_each_row_with_its_node(tmp_path: Path) -> None:
    # a graph's nodes each count steps from 0: without the node, rows could not be told apart
    db = tmp_path / "g.db"
    args = ("--store", str(db), "--run-id", "g", "--quiet")
    done = cli("run", "multiply", "--digits", "3", "--model", "sim:error=0.2", *args)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "g.parquet"
    assert main(["export", "g", "--store", str(db), "--format", "parquet", "-o", str(out)]) == 0
    rows = pq.read_table(out).to_pylist()
    store = Store(str(db), read_only=True)
    run = store.get_run("g")
    assert run is not None
    nodes = {it.item_id: it.stats.get("steps_decided", 0) for it in store.items(run)}
    assert len(nodes) > 1 and len(rows) == sum(nodes.values()) == run.stats["steps_decided"]
    assert Counter(r["item"] for r in rows) == {k: v for k, v in nodes.items() if v}
    assert len({(r["item"], r["step"]) for r in rows}) == len(rows)
