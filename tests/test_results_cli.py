"""A run's outputs on the CLI: `show --item --json`, `export --what outputs`, a graph's
nodes and verdict in `show`; a completed run named again by `run --run-id`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import one_line_error
from unerring.cli.main import main

MODEL = "sim:error=0.05,seed=1"


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_export_outputs_and_show_item_give_each_item_s_final_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "b.db")
    args = ["run", "hanoi", "--disks", "3", "--batch", "3", "--model", MODEL, "--k", "2"]
    assert main([*args, "--run-id", "b", "--store", db, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", "b", "--what", "outputs", "--store", db]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert all(r["status"] == "completed" and r["correct"] is True for r in rows)
    assert all(r["output"] is not None for r in rows)
    assert main(["show", "b", "--item", "2", "--json", "--store", db]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["output"] == rows[1]["output"]
    # a completed run named again with its options: its recorded result, nothing drawn
    assert main([*args, "--run-id", "b", "--store", db, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["status"] == "completed" and again["attempts"] == 1
    assert main(["export", "b", "--what", "outputs", "--store", db]) == 0
    assert _json_lines(capsys.readouterr().out) == rows


def test_export_outputs_refuses_parquet_and_an_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "c.db")
    assert main(["run", "hanoi", "--disks", "2", "--model", MODEL, "--run-id", "c",
                 "--store", db, "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    for extra in (["--format", "parquet", "-o", str(tmp_path / "x")], ["--item", "1"]):
        assert main(["export", "c", "--what", "outputs", "--store", db, *extra]) == 2
        err = one_line_error(capsys.readouterr().err)
        assert "--what outputs" in err, err


def test_show_gives_a_graph_s_nodes_and_result_correct(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "g.db")
    assert main(["run", "sort", "--numbers", "6", "--model", MODEL, "--run-id", "g",
                 "--store", db, "--json"]) == 0  # fmt: skip
    ran = json.loads(capsys.readouterr().out)
    assert main(["show", "g", "--json", "--store", db]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["nodes"] == ran["nodes"] > 1
    assert shown["result_correct"] is True is ran["result_correct"]
    assert shown["node_statuses"] == {"completed": ran["nodes"]}
    assert main(["show", "g", "--store", db]) == 0
    text = capsys.readouterr().out
    assert f"nodes              {ran['nodes']}" in text
    assert "result_correct     true" in text
    assert main(["export", "g", "--what", "outputs", "--store", db]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert len(rows) == ran["nodes"] and all(r["status"] == "completed" for r in rows)
