"""Batches: many items in one run (one budget, one journal), from the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli, item_decisions, kill_and_resume, run_task
from unerring.app.options import BatchItem
from unerring.errors import UsageError
from unerring.journal.store import Store

HERE = Path(__file__).resolve().parent


def _json(res: subprocess.CompletedProcess[str]) -> Any:
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout)


def test_batch_of_n_runs_every_item_with_its_own_seed(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    res = cli(
        "run", "addition", "--digits", "8", "--batch", "6", "--k", "2",
        "--model", "sim:error=0.1,seed=3", "--store", str(db), "--run-id", "b", "--json",
    )  # fmt: skip
    s = _json(res)
    assert res.returncode == 0
    assert (s["items"], s["items_completed"], s["items_stopped"], s["items_failed"]) == (6, 6, 0, 0)
    assert s["steps_total"] == s["steps_decided"] > 6 * 8
    store = Store(str(db), read_only=True)
    run = store.get_run("b")
    assert run is not None
    items = list(store.items(run))
    # ids 1..N, seed = id - 1: the operands differ item by item
    assert [(it.item_id, it.options["seed"]) for it in items] == [
        (str(i), i - 1) for i in range(1, 7)
    ]
    totals = [it.stats for it in items]
    assert sum(t["samples"] for t in totals) == s["samples"]
    assert sum(t["steps_decided"] for t in totals) == s["steps_decided"]
    store.close()
    # one item alone, in the single-run forms
    one = _json(cli("show", "b", "--store", str(db), "--item", "4", "--json"))
    assert one["item"] == "4" and one["status"] == "completed"
    assert one["steps_decided"] == items[3].stats["steps_decided"]
    assert one["task_options"]["seed"] == 3
    exported = cli("export", "b", "--store", str(db), "--item", "4", "--format", "jsonl")
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["step"] for r in rows] == list(range(one["steps_decided"]))
    assert "item" not in rows[0]
    everything = cli("export", "b", "--store", str(db), "--format", "jsonl")
    all_rows = [json.loads(line) for line in everything.stdout.splitlines()]
    assert len(all_rows) == s["steps_decided"]
    assert {r["item"] for r in all_rows} == {str(i) for i in range(1, 7)}
    # `runs` shows the batch as one line with its items' progress
    listed = cli("runs", "--store", str(db))
    line = next(x for x in listed.stdout.splitlines() if x.startswith("b "))
    assert line.split()[1:4] == ["addition", "completed", "6/6"]
    shown = cli("show", "b", "--store", str(db))
    assert shown.returncode == 0
    table = shown.stdout.split("ITEM")[1].splitlines()[1:]
    assert [r.split()[0] for r in table] == [str(i) for i in range(1, 7)]


def test_items_file_ids_and_options(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "small", "disks": 3}\n\n{"disks": 5}\n{"id": "four", "disks": 4}\n')
    db = tmp_path / "i.db"
    s = _json(cli("run", "hanoi", "--items", str(items), "--store", str(db), "--json",
                  "--run-id", "i"))  # fmt: skip
    assert s["items"] == 3 and s["steps_decided"] == 7 + 31 + 15 and s["errors"] == 0
    store = Store(str(db), read_only=True)
    run = store.get_run("i")
    assert run is not None
    # an "id" names the item; else its line number from 1
    assert [(it.item_id, it.options["disks"], it.steps_total) for it in store.items(run)] == [
        ("small", 3, 7),
        ("3", 5, 31),
        ("four", 4, 15),
    ]
    store.close()


@pytest.mark.parametrize(
    ("lines", "args", "message"),
    [
        (None, ["--items", "missing.jsonl"], "no such file"),
        ('{"disks": 3}\n[1, 2]\n', [], "line 2 is not a JSON object"),
        ('{"disks": 3}\n{"disks": 3\n', [], "line 2 is not JSON"),
        ('{"disks": 3, "colour": "red"}\n', [], "'colour' is not an option of task 'hanoi'"),
        ('{"id": "a", "disks": 3}\n{"id": "a", "disks": 4}\n', [], "item id 'a' is also on line 1"),
        ("\n\n", [], "holds no items"),
        ('{"disks": "three"}\n', [], "disks must be a whole number"),
        ('{"disks": 0}\n', [], "disks"),
        # a value the task itself refuses names the file and the line
        ('{"disks": 3}\n\n{"disks": -1}\n', [], "items.jsonl line 3: --disks must be a positive"),
        ('{"id": "' + "x" * 201 + '"}\n', [], 'line 1: "id" is 201 characters long'),
        ('{"id": "' + "x" * 5_000_000 + '"}\n', [], 'line 1: "id" is 5,000,000 characters'),
        ('{"disks": 3}\n{"id": "a\\nb"}\n', [], 'line 2: "id" holds a control character'),
        (None, ["--batch", "0"], "--batch"),
        (None, ["--batch", "2", "--speculate", "-1"], "--speculate"),
        ('{"disks": 3}\n', ["--batch", "2"], "not both"),
    ],
)
def test_bad_batches_are_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, lines: str | None, args: list[str], message: str
) -> None:
    db = tmp_path / "never.db"
    extra = list(args)
    if lines is not None:
        f = tmp_path / "items.jsonl"
        f.write_text(lines)
        extra = ["--items", str(f), *extra]
    res = cli("run", "hanoi", *extra, "--store", str(db))
    assert res.returncode == 2, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert message in line, res.stderr[:1000]
    assert len(res.stderr) < 1000  # an id of megabytes is not echoed
    assert "Traceback" not in res.stderr
    assert not db.exists()


def test_one_undecided_item_stops_alone_and_resume_leaves_the_others(tmp_path: Path) -> None:
    # a planted mode splits the votes of step 5 (any item long enough to have one): with
    # a cap of 6 and no plurality asked for, such an item stops there; the others go on
    db = tmp_path / "u.db"
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps({"disks": d}) for d in (2, 4, 4, 4, 4)) + "\n")
    res = cli(
        "run", "hanoi", "--items", str(items), "--k", "3", "--max-samples-per-step", "6",
        "--model", "sim:error=0.0,modes=step:5:0.5", "--store", str(db), "--run-id", "u",
        "--json",
    )  # fmt: skip
    s = _json(res)
    assert res.returncode == 1
    assert s["status"] == "stopped"
    stopped = {i["id"]: i["reason"] for i in s["items_not_completed"]}
    assert stopped and all("step 5 undecided" in r for r in stopped.values())
    assert s["items_completed"] + s["items_stopped"] == 5 == s["items_completed"] + len(stopped)
    assert "1" not in stopped  # 3 steps: it has no step 5
    before = item_decisions(db, "u")
    assert [d["step"] for d in before["1"]] == [0, 1, 2]
    for item_id in stopped:
        assert [d["step"] for d in before[item_id]] == [0, 1, 2, 3, 4]
    # resumed as it was, the same steps are undecided again; nothing else changes
    res = cli("resume", "u", "--store", str(db), "--json")
    s = _json(res)
    assert s["items_stopped"] == len(stopped)  # the same step is undecided again
    after = item_decisions(db, "u")
    assert after == before  # no decision twice, the completed item untouched


@pytest.mark.parametrize(
    ("item_id", "message"),
    [
        ("y" * 201, "is 201 characters long"),
        ("tab\there", "holds a control character"),
        ("", "must be a non-empty string"),
    ],
)
def test_library_batch_ids_are_bounded(tmp_path: Path, item_id: str, message: str) -> None:
    db = tmp_path / "never.db"
    batch = [BatchItem("ok", {"disks": 3}), BatchItem(item_id, {"disks": 3})]
    with pytest.raises(UsageError, match=message) as e:
        run_task(task="hanoi", store=str(db), handle_signals=False, batch=batch)
    assert len(str(e.value)) < 200 and "a batch item: item id" in str(e.value)
    assert not db.exists()
    y = "y" * 200  # the longest id allowed runs
    done = run_task(
        task="hanoi", store=str(db), handle_signals=False, batch=[BatchItem(y, {"disks": 2})]
    )
    assert done.outcome.status == "completed"
    done.store.close()


def test_library_batch_resumes_and_keeps_completed_items(tmp_path: Path) -> None:
    import unerring
    from unerring.tasks.hanoi import Hanoi
    from unerring.voting.config import Budget

    store = str(tmp_path / "lib.db")
    procs = {name: Hanoi(d) for name, d in (("a", 3), ("b", 5), ("c", 4))}
    first = unerring.run_batch(
        procs, model="sim:error=0.05,seed=2", k=2, store=store, run_id="lib",
        budget=Budget(max_samples=60),
    )  # fmt: skip
    assert first.outcome.status == "stopped" and "sample budget" in first.outcome.reason
    done_first = {it.item_id for it in first.store.items(first.run) if it.status == "completed"}
    first.store.close()
    again = unerring.run_batch(procs, model="sim:error=0.05,seed=2", k=2, store=store, run_id="lib")
    assert again.outcome.status == "completed"
    assert again.summary["items_completed"] == 3
    ref = unerring.run_batch(
        {n: Hanoi(p.disks) for n, p in procs.items()}, model="sim:error=0.05,seed=2", k=2,
        store=str(tmp_path / "ref.db"), run_id="ref",
    )  # fmt: skip
    for name in procs:
        assert list(again.decisions(name)) != [] and [
            {k: v for k, v in d.items() if k != "elapsed"} for d in again.decisions(name)
        ] == [{k: v for k, v in d.items() if k != "elapsed"} for d in ref.decisions(name)]
    assert again.summary["samples"] == ref.summary["samples"]  # nothing drawn twice
    assert done_first  # some item had completed before the budget stopped the run


# -- kill -9 during a batch ----------------------------------------------------------------
ITEMS = 100
DISKS = 7
MODEL = "sim:error=0.05,flag=0.02,seed=9"


def _committed(db: Path) -> dict[int, int]:
    """Each item's committed resume point (index -> next step)."""
    if not db.exists():
        return {}
    store = Store(str(db), read_only=True)
    try:
        run = store.get_run("kb")
        return {} if run is None else {it.item: it.next_step for it in store.items(run)}
    finally:
        store.close()


def _draws(log: Path) -> list[tuple[int, int, int]]:
    """(item, step, samples) of every request an attempt logged before drawing it."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        if line.startswith(("B ", "C ")):  # a commit's marks, not a draw
            continue
        step, _first, n, _t, item = line.split()
        out.append((int(item), int(step), int(n)))
    return out


@pytest.mark.slow
def test_sigkill_during_a_batch_loses_nothing_and_decides_nothing_twice(tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    spent = 0

    def after(log: Path, before: dict[int, int]) -> None:
        nonlocal spent
        draws = _draws(log)
        spent += sum(n for _, _, n in draws)
        # no sample was drawn for a step its item had committed before the attempt began
        assert all(step >= before.get(item, 0) for item, step, _ in draws)

    common = ["--store", str(db), "--quiet", "--concurrency", "8"]
    first = ["run", "hanoi", "--disks", str(DISKS), "--batch", str(ITEMS), "--k", "2"]
    first += ["--model", f"{MODEL},latency=2", "--run-id", "kb", *common]
    attempts = kill_and_resume(
        first, ["resume", "kb", *common], tmp_path, seed=20261129, max_delay_s=0.6,
        before=lambda: _committed(db), after=after,
    )  # fmt: skip
    got = item_decisions(db, "kb")
    for rows in got.values():
        assert [d["step"] for d in rows] == list(range(2**DISKS - 1))  # none missing, none twice
    # equal to an uninterrupted run's, item by item (latency changes no sample)
    ref = run_task(
        task="hanoi",
        task_options={"disks": DISKS},
        model=MODEL,
        k=2,
        store=str(tmp_path / "ref.db"),
        handle_signals=False,
        run_id="ref",
        batch=[BatchItem(str(i), {"disks": DISKS}) for i in range(1, ITEMS + 1)],
    )
    assert ref.outcome.status == "completed"
    ref.store.close()
    want = item_decisions(tmp_path / "ref.db", "ref")
    assert got == want
    # what the kills cost beyond an uninterrupted run: the samples of steps in flight
    assert spent >= int(ref.summary["samples"])
    print(f"10 kills in {attempts} attempts; {spent - ref.summary['samples']} extra samples")


def test_batch_summary_names_stopped_items_on_stderr(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "ok", "disks": 2}\n{"id": "stuck", "disks": 4}\n')
    res = cli(
        "run", "hanoi", "--items", str(items), "--k", "3", "--max-samples-per-step", "6",
        "--model", "sim:error=0.0,modes=step:4:0.5", "--store", str(tmp_path / "s.db"),
    )  # fmt: skip
    assert res.returncode == 1
    assert "item stuck stopped: step 4 undecided" in res.stdout
    assert "Traceback" not in res.stderr
    assert "resume with: unerring resume" in res.stderr
