"""`unerring failures`, `unerring notes ...` and `run --notes`, through the CLI's main()."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.analysis_helpers import BATCH_MODE, batch, run, sim
from unerring.analysis.notebook import load_notebook, save_notebook
from unerring.analysis.records import build
from unerring.cli.main import main
from unerring.journal.store import Store
from unerring.tasks.registry import get_task, resolve

MODEL = sim(3)


def _run(db: Path, run_id: str, *extra: str) -> int:
    return main(
        [
            "run",
            "hanoi",
            "--disks",
            "8",
            "--k",
            "4",
            "--model",
            MODEL,
            "--store",
            str(db),
            "--run-id",
            run_id,
            "--json",
            *extra,
        ]
    )


def test_failures_json_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "j.db"
    assert _run(db, "a") == 0
    capsys.readouterr()
    assert main(["failures", "a", "--store", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["run_id"] == "a"
    assert report["failures"] == sum(report["by_category"].values()) > 0
    sel = {tuple(p["selector"]) for p in report["patterns"]}
    assert ("disk=2",) in sel and ("disk=4",) in sel
    p = next(p for p in report["patterns"] if p["selector"] == ["disk=2"])
    assert p["nature"] == "systematic" and p["over_represented"][0]["feature"] == "disk=2"
    assert 0 < p["share_of_samples"] < 1 and p["steps_affected"] > 0 and p["examples"]
    assert report["localisation"][0]["checked"]
    assert report["correlation"][0]["k"] == 4
    assert main(["failures", "a", "--store", str(db)]) == 0
    out = capsys.readouterr()
    assert "pattern outvoted_wrong/disk=2" in out.out and "do: " in out.out


def test_top_answers_are_the_wrong_answers_not_vote_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # planted modes: disk=2 steps give wrong answer 0, disk=4 steps wrong answer 1
    db = tmp_path / "j.db"
    assert _run(db, "a") == 0
    capsys.readouterr()
    assert main(["failures", "a", "--store", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the journal's ground truth: each kept valid sample's answer and simulator label
    process = get_task("hanoi").make({"disks": 8})
    labels: dict[str, Counter[str]] = {}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT text, label FROM samples WHERE vote IS NOT NULL")
        for text, label in rows:
            answer = process.dump_answer(process.parse(text))
            labels.setdefault(answer, Counter())[label] += 1
    for selector, planted in ((["disk=2"], "mode:disk=2"), (["disk=4"], "mode:disk=4")):
        p = next(p for p in report["patterns"] if p["selector"] == selector)
        top = p["top_answers"]
        assert top and all(t["count"] >= 1 for t in top)
        for t in top:
            answer = t["answer"]
            assert not answer.isdigit()  # a vote's number within its step is no answer
            process.load_answer(answer)  # the task's own spelling of an answer
            # the samples that gave it were wrong ones (the planted mode's, or the base
            # error's, which gives the same wrong answer), and as many as counted
            assert "correct" not in labels[answer], (answer, labels[answer])
            assert labels[answer][planted] > 0
            assert sum(labels[answer].values()) >= t["count"]
        # most common first, and the examples show the top answer
        assert [t["count"] for t in top] == sorted((t["count"] for t in top), reverse=True)
        first = process.dump_answer(process.parse(p["examples"][0]))
        assert first == top[0]["answer"]
    assert main(["failures", "a", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert "  top answers: [[" in out


def test_failures_over_several_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "j.db"
    assert _run(db, "a") == 0 and _run(db, "b") == 0
    capsys.readouterr()
    assert main(["failures", "a", "b", "--store", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in report["runs"]] == ["a", "b"]
    one = [r["failures"] for r in report["runs"]]
    assert report["failures"] == sum(one)


def test_notes_learn_list_show_diff_and_run_with_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "j.db"
    assert _run(db, "a") == 0
    capsys.readouterr()
    args = ["notes", "learn", "a", "--model", MODEL, "--store", str(db), "--name", "nb"]
    assert main([*args, "--json"]) == 0
    learned = json.loads(capsys.readouterr().out)
    assert learned["notebook"]["version"] == 1 and learned["notebook"]["accepted"]
    assert main(["notes", "list", "--store", str(db)]) == 0
    assert "nb@1  accepted" in capsys.readouterr().out
    assert main(["notes", "show", "nb", "--store", str(db), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["notes"] == learned["notebook"]["notes"]
    assert _run(db, "b", "--notes", "nb") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed"
    # learning again from the run with notes: nothing new helps; the version is rolled back
    assert main(["notes", "learn", "b", "--model", MODEL, "--store", str(db), "--name", "nb"]) == 0
    out = capsys.readouterr().out
    assert "nb@2: rejected (rolled back)" in out
    assert main(["notes", "diff", "nb@1", "nb@2", "--store", str(db), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert not d["removed"] and d["kept"]


def test_errors_are_one_line_with_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "j.db"
    assert _run(db, "a") == 0
    capsys.readouterr()
    assert main(["failures", "nope", "--store", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run 'nope'" in err
    assert main(["notes", "show", "nb@x", "--store", str(db)]) == 2
    assert main(["notes", "show", "missing", "--store", str(db)]) == 2
    assert _run(db, "c", "--notes", "missing") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no notebook" in err
    with pytest.raises(SystemExit) as e:
        main(["notes"])
    assert e.value.code == 2


def test_notes_list_on_a_read_only_store_writes_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "j.db"
    assert _run(db, "a") == 0
    db.chmod(0o444)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "unerring", "notes", "list", "--store", str(db)],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        db.chmod(0o644)
    assert r.returncode == 0 and "no notebooks" in r.stdout


def test_resume_keeps_the_pinned_notebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "j.db"
    assert _run(db, "a") == 0
    assert main(["notes", "learn", "a", "--model", MODEL, "--store", str(db), "--name", "nb"]) == 0
    assert _run(db, "b", "--notes", "nb", "--max-samples", "50") == 1  # stopped by budget
    capsys.readouterr()
    assert main(["resume", "b", "--store", str(db), "--json", "--notes", "nb@1"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    # another version than the one the run started with is refused
    store = Store(str(db))
    save_notebook(store, "nb", load_notebook(store, "nb").notes, True, "copy", "test")
    store.close()
    assert _run(db, "c", "--notes", "nb", "--max-samples", "50") == 1
    capsys.readouterr()
    assert main(["resume", "c", "--store", str(db), "--notes", "nb@1"]) == 2
    assert "notes: journal has 'nb@2', given 'nb@1'" in capsys.readouterr().err


def test_failures_save_materialises_records_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "j.db"
    assert _run(db, "a") == 0
    for _ in range(2):  # saving again replaces the run's rows
        assert main(["failures", "a", "--store", str(db), "--json", "--save"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    con = sqlite3.connect(db)
    rows = con.execute("SELECT category, pattern, nature FROM failures").fetchall()
    assert len(rows) == report["saved"] == report["failures"]
    by_pattern = {p for _, p, _ in rows}
    assert {p["id"] for p in report["patterns"]} == by_pattern
    assert {n for _, _, n in rows} <= {"systematic", "intermittent"}


def test_failures_of_a_batch_name_the_items_a_pattern_spans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # kills: patterns counted or localised over one item, text that does not name items,
    # correlation over the first item only, and a chain's text changed by batch wording
    db = tmp_path / "j.db"
    res = batch(db, "b", sim(3, BATCH_MODE))
    assert main(["failures", "b", "--store", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["batch"] and report["items"] == 8
    assert report["runs"][0]["kind"] == "batch" and report["runs"][0]["items"] == 8
    [p] = [p for p in report["patterns"] if p["selector"] == ["disk=2"]]
    assert p["items_affected"] == 8 and p["first_items"] == [str(i) for i in range(1, 9)]
    # (item, step) places: more than the 16 disk=2 steps one 6-disk item has
    assert p["steps_affected"] > 16 and len(p["first_steps"]) <= 10
    loc = report["localisation"][0]
    assert loc["first_wrong_item"] is not None and loc["wrong_items"] >= 2
    assert report["correlation"][0]["steps"] == res.summary["steps_decided"] == 8 * 63
    assert main(["failures", "b", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert "(hanoi, a batch of 8 items, completed)" in out
    assert "pattern outvoted_wrong/disk=2: " in out and " in 8 of 8 items, systematic" in out
    assert f"of item {loc['first_wrong_item']} (tally" in out
    # a single chain reads as it always did
    run(db, "c", sim(3, BATCH_MODE), disks=6, k=3)
    assert main(["failures", "c", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert "items" not in out and "(hanoi, completed)" in out


def test_failures_save_of_a_batch_keeps_each_record_s_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # kills: saved rows without their item (every row in item 0, the table's default)
    db = tmp_path / "j.db"
    batch(db, "b", sim(3, BATCH_MODE))
    assert main(["failures", "b", "--store", str(db), "--json", "--save"]) == 0
    report = json.loads(capsys.readouterr().out)
    store = Store(str(db))
    run_rec = store.get_run("b")
    assert run_rec is not None
    saved = store.saved_failures(run_rec)
    records = build(store, "b", resolve=resolve).records
    assert len(saved) == report["saved"] == len(records)
    assert Counter((r["item_id"], r["step"], r["idx"]) for r in saved) == Counter(
        (r.item_id, r.step, r.index) for r in records
    )
    assert len({r["item_id"] for r in saved}) == 8


def test_notes_learn_on_a_batch_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # kills: `notes learn` refusing or crashing on a batch run
    db = tmp_path / "j.db"
    model = sim(3, "modes=disk:2:0.3:cure")
    batch(db, "b", model, (5, 6, 7))
    args = ["notes", "learn", "b", "--model", model, "--store", str(db), "--name", "nb"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "- outvoted_wrong/disk=2 (template): kept" in out
    assert "notebook nb@1: accepted, 1 notes, from b" in out
