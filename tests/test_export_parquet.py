"""`unerring export --format parquet`: typed columns that data tools read directly, the
same records as the journal, and bad input in one line (exit 2), nothing half-written."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import child_env, cli, one_line_error, run_task
from unerring.app.options import BatchItem
from unerring.backends.factory import Transport
from unerring.backends.resilience import RetryPolicy
from unerring.cli.main import main
from unerring.journal.store import Store


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("parquet") / "runs.db"
    options = dict(
        task="hanoi", task_options={"disks": 6}, model="sim:error=0.15,flag=0.05,seed=2", k=3
    )
    transport = Transport(retry=RetryPolicy(base_s=0.001))
    assert run_task(**options, store=str(db), transport=transport, run_id="p").outcome.status == (
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
    options = dict(task="hanoi", task_options={"disks": 3}, model="sim:error=0.2", k=2)
    batch = [BatchItem("x", {"disks": 3}), BatchItem("y", {"disks": 4})]
    run_task(**options, store=str(db), run_id="b", batch=batch).store.close()
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
    # the nodes themselves: the columns of JSON lines, typed (they were sample columns, null)
    frames = _three_ways(db, "g", "nodes", tmp_path)
    jsonl, parquet = frames["jsonl"], frames["parquet"]
    assert list(parquet.columns) == list(jsonl.columns) and len(parquet) == len(nodes)
    assert list(parquet["id"]) == list(jsonl["id"])
    assert [list(d) for d in parquet["dependencies"]] == list(jsonl["dependencies"])
    assert [json.loads(o) for o in parquet["output"]] == list(jsonl["output"])
    assert list(parquet["steps"]) == list(jsonl["steps"]) == [nodes[i] for i in parquet["id"]]


NESTED = ("votes", "flags", "features")


def _three_ways(db: Path, run_id: str, what: str, folder: Path) -> dict[str, Any]:
    """The run's rows exported as JSON lines, CSV and Parquet, each read by pandas."""
    import pandas as pd

    base = ["export", run_id, "--store", str(db), "--what", what]
    jsonl = cli(*base, "--format", "jsonl")
    csv_ = cli(*base, "--format", "csv")
    pq_file = folder / f"{run_id}-{what}.parquet"
    parquet = cli(*base, "--format", "parquet", "-o", str(pq_file))
    for res in (jsonl, csv_, parquet):
        assert res.returncode == 0, res.stderr
    return {
        "jsonl": pd.read_json(io.StringIO(jsonl.stdout), lines=True, dtype=False),
        "csv": pd.read_csv(io.StringIO(csv_.stdout), keep_default_na=False, na_values=[""]),
        "parquet": pd.read_parquet(pq_file),
    }


@pytest.mark.parametrize("what", ["decisions", "samples"])
def test_jsonl_csv_and_parquet_agree_on_types_and_values(
    journal: Path, tmp_path: Path, what: str
) -> None:
    import pandas as pd

    frames = _three_ways(journal, "p", what, tmp_path)
    jsonl, csv_, parquet = frames["jsonl"], frames["csv"], frames["parquet"]
    assert list(jsonl.columns) == list(csv_.columns) == list(parquet.columns)
    assert len(jsonl) == len(csv_) == len(parquet) > 0
    scalar = [c for c in jsonl.columns if c not in NESTED]
    for c in scalar:
        if jsonl[c].isna().all():  # a column with no value has no type to agree on
            assert csv_[c].isna().all() and parquet[c].isna().all(), c
            continue
        assert jsonl[c].dtype == csv_[c].dtype == parquet[c].dtype, (
            c, jsonl[c].dtype, csv_[c].dtype, parquet[c].dtype,
        )  # fmt: skip
        pd.testing.assert_series_equal(jsonl[c], csv_[c], check_names=False)
        pd.testing.assert_series_equal(jsonl[c], parquet[c], check_names=False)
    if what == "decisions":
        assert jsonl["undecided"].dtype == bool
        assert set(jsonl["correct"]) <= {True, False}
        for j, c, p in zip(jsonl["votes"], csv_["votes"], parquet["votes"], strict=True):
            assert j == json.loads(c) == list(p)
        for j, c, p in zip(jsonl["flags"], csv_["flags"], parquet["flags"], strict=True):
            j = j if isinstance(j, dict) else None  # pandas reads a null as NaN
            assert j == (json.loads(c) if isinstance(c, str) else None)
            assert (j or {}) == dict(p if p is not None else [])
    else:
        # a sample's vote: its answer's number in the step (an integer), or none if flagged
        assert jsonl["counted"].dtype == bool
        votes = jsonl["vote"].dropna()
        assert len(votes) and (votes == votes.round()).all() and votes.min() == 0
        assert jsonl["vote"].isna().equals(jsonl["flag"].notna())


def test_csv_cells_a_spreadsheet_would_run_are_text(tmp_path: Path) -> None:
    import csv

    db = tmp_path / "runs.db"
    ids = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "plain"]
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": i, "disks": 2}) + "\n" for i in ids))
    res = cli("run", "hanoi", "--items", str(items), "--model", "sim:error=0.01", "--store",
              str(db), "--run-id", "f", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = cli("export", "f", "--store", str(db), "--format", "csv")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    seen = {r["item"] for r in rows}
    assert seen == {'\'=HYPERLINK("http://x")', "'+1+1", "'-2", "'@SUM(A1)", "plain"}
    assert all(not r["item"].startswith(("=", "+", "-", "@")) for r in rows)
    assert {r["step"] for r in rows} == {"0", "1", "2"}  # numbers are not text: left as they are
    # JSON lines and Parquet carry the ids as they are
    res = cli("export", "f", "--store", str(db), "--format", "jsonl")
    assert {json.loads(line)["item"] for line in res.stdout.splitlines()} == set(ids)
