"""Inspecting runs: `runs`, `show` (also while a run goes on elsewhere) and `export`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import child_env, cli, decisions, one_line_error, run_row, run_task

MODEL = "sim:error=0.05,seed=5"


def journal(
    db: Path, disks: int, run_id: str, record: str = "contested", model: str = MODEL, k: int = 3
) -> None:
    opts = dict(task="hanoi", task_options={"disks": disks}, model=model, k=k, record=record)
    res = run_task(**opts, store=str(db), handle_signals=False, run_id=run_id)
    assert res.outcome.status == "completed"
    res.store.close()


def count(db: Path, table: str, run_id: str) -> int:
    if table == "decisions":  # noteworthy rows plus the packed blocks of plain steps
        from unerring.journal.store import Store

        s = Store(str(db), read_only=True)
        try:
            run = s.get_run(run_id)
            assert run is not None
            return s.count_decisions(run)
        finally:
            s.close()
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute(
                f"SELECT count(*) FROM {table} t JOIN runs r ON t.run = r.id WHERE r.run_id = ?",
                (run_id,),
            ).fetchone()[0]
        )
    finally:
        conn.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("inspect") / "runs.db"
    journal(db, 8, "eight")
    journal(db, 6, "six", record="samples")
    return db


# -- runs and show -------------------------------------------------------------------------
def test_runs_json_lists_every_run_with_progress_and_times(store: Path) -> None:
    res = cli("runs", "--store", str(store), "--json")
    assert res.returncode == 0, res.stderr
    runs = json.loads(res.stdout)
    assert [r["run_id"] for r in runs] == ["eight", "six"]
    eight = runs[0]
    assert eight["task"] == "hanoi" and eight["status"] == "completed"
    assert eight["steps_decided"] == eight["steps_total"] == 255
    assert eight["progress"] == 1.0
    for key in ("started", "last_activity"):
        time.strptime(eight[key], "%Y-%m-%d %H:%M:%S")


def test_runs_on_a_missing_store_says_so(tmp_path: Path) -> None:
    res = cli("runs", "--store", str(tmp_path / "none.db"))
    assert res.returncode == 2
    assert "no store" in one_line_error(res.stderr)
    assert not (tmp_path / "none.db").exists()


def test_runs_table_columns_fit_long_names_and_show_batch_items(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    long_id = "a-run-whose-name-is-much-longer-than-forty-characters-" + "x" * 20
    journal(db, 3, long_id)
    items = tmp_path / "items.jsonl"
    items.write_text('{"digits": 3}\n{"digits": 4}\n{"digits": 5}\n')
    res = cli("run", "addition", "--items", str(items), "--model", MODEL, "--store", str(db),
              "--run-id", "b", "--quiet", "--max-samples", "12")  # fmt: skip
    assert res.returncode == 1, res.stderr
    res = cli("runs", "--store", str(db))
    assert res.returncode == 0, res.stderr
    header, *lines = res.stdout.splitlines()
    columns = ["RUN", "TASK", "STATUS", "ITEMS", "STEPS", "STARTED", "LAST"]
    assert header.split() == columns
    starts = [header.index(c) for c in columns]
    rows = {}
    for line in lines:
        # each left-aligned cell starts under its header, whatever the names' lengths
        for c in ("RUN", "TASK", "STATUS", "STARTED", "LAST"):
            i = header.index(c)
            assert line[i] != " " and (i == 0 or line[i - 1] == " "), (c, line)
        # (the times hold a space: the first five cells are one word each)
        rows[line.split()[0]] = dict(zip(columns[:5], line.split()[:5], strict=True))
    assert list(rows) == [long_id, "b"]
    assert rows[long_id]["TASK"] == "hanoi" and rows[long_id]["STEPS"] == "7/7"
    assert rows[long_id]["ITEMS"] == "-"
    # the batch's items done of all, beside its steps
    assert rows["b"]["TASK"] == "addition" and rows["b"]["STATUS"] == "stopped"
    (b,) = [r for r in json.loads(cli("runs", "--store", str(db), "--json").stdout)
            if r["run_id"] == "b"]  # fmt: skip
    assert rows["b"]["ITEMS"] == f"{b['items_completed']}/3"
    assert rows["b"]["STEPS"] == f"{b['steps_decided']}/{b['steps_total']}"
    assert len(starts) == len(set(starts))


def test_show_text_is_for_people_and_leaves_out_empty_lines(tmp_path: Path) -> None:
    import unerring
    from unerring.tasks.hanoi import Hanoi

    db = tmp_path / "runs.db"
    # a library batch of the user's own processes: no task options to show
    res = unerring.run_batch([Hanoi(3), Hanoi(4)], model=MODEL, store=str(db), run_id="lib")
    res.store.close()
    conn = sqlite3.connect(db)
    with conn:  # a slow run: large numbers, as a long real run has them
        stats = json.loads(conn.execute("SELECT stats FROM runs").fetchone()[0])
        stats.update(wall_s=3725.5, prompt_tokens=12_345_678, cost=0.0)
        conn.execute("UPDATE runs SET stats = ?", (json.dumps(stats),))
    conn.close()
    res = cli("show", "lib", "--store", str(db))
    assert res.returncode == 0, res.stderr
    fields = dict(line.split(None, 1) for line in res.stdout.split("\n\n")[0].splitlines())
    assert "task_options" not in fields and "flags" not in fields and "reason" not in fields
    assert "cost" not in fields and "transport_failures" not in fields  # nothing to say
    assert fields["errors"] == "0" and fields["items"] == "2"
    assert fields["prompt_tokens"] == "12,345,678"
    assert fields["wall_s"] == "1 h 02 min"
    # 3,725.5 s over 22 steps: 169,340,909.1 us, not 1.693e+08
    assert fields["us_per_step"] == "169,340,909.1"
    assert fields["samples_per_step"] == f"{stats['samples'] / 22:.2f}"
    assert "e+" not in res.stdout and "{}" not in res.stdout
    js = json.loads(cli("show", "lib", "--store", str(db), "--json").stdout)
    assert js["us_per_step"] == pytest.approx(3725.5e6 / 22) and js["task_options"] == {}


def test_show_tree_draws_the_first_children_and_counts_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    # the sum of 300 numbers: 299 nodes, none with a parent (a flat tree)
    res = cli("run", "sum", "--numbers", "300", "--model", MODEL, "--store", str(db),
              "--run-id", "s", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    tree = cli("show", "s", "--store", str(db), "--tree").stdout.splitlines()
    assert tree[0] == "299 nodes, depth 0: 299 decided"
    assert len(tree) == 1 + 20 + 1
    assert tree[-1] == "... 279 more: 279 decided (--children all draws them)"
    tree = cli("show", "s", "--store", str(db), "--tree", "--children", "5").stdout.splitlines()
    assert len(tree) == 1 + 5 + 1 and tree[-1].startswith("... 294 more")
    every = cli("show", "s", "--store", str(db), "--tree", "--children", "all").stdout
    assert len(every.splitlines()) == 300 and "more" not in every
    res = cli("show", "s", "--store", str(db), "--tree", "--children", "0")
    assert res.returncode == 2 and "--children" in res.stderr


def test_show_json_agrees_with_the_journal(store: Path) -> None:
    res = cli("show", "six", "--store", str(store), "--json")
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    stats = json.loads(run_row(store, "six")["stats"])
    rows = decisions(store, "six")
    assert s["run_id"] == "six" and s["status"] == "completed" and s["attempts"] == 1
    assert s["steps_decided"] == len(rows) == 63
    assert s["samples"] == sum(d["samples"] for d in rows) == stats["samples"]
    assert s["prompt_tokens"] == sum(d["prompt_tokens"] for d in rows)
    assert s["completion_tokens"] == sum(d["completion_tokens"] for d in rows)
    assert s["config"]["task_options"] == {"disks": 6} and s["config"]["record"] == "samples"
    assert s["k"] == 3 and s["model"] == MODEL


def test_show_text_names_the_fields(store: Path) -> None:
    res = cli("show", "eight", "--store", str(store))
    assert res.returncode == 0, res.stderr
    fields = dict(
        line.split(None, 1) for line in res.stdout.splitlines() if len(line.split(None, 1)) == 2
    )
    assert fields["run_id"].strip() == "eight"
    assert fields["steps_decided"].strip() == "255"
    assert fields["status"].strip() == "completed"
    res = cli("show", "nine", "--store", str(store))
    assert res.returncode == 2
    assert "no run 'nine'" in one_line_error(res.stderr)


# -- export --------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["decisions", "samples"])
def test_export_jsonl_and_csv_hold_every_record(store: Path, what: str) -> None:
    for run_id in ("eight", "six"):
        expected = count(store, what, run_id)
        res = cli("export", run_id, "--store", str(store), "--format", "jsonl", "--what", what)
        assert res.returncode == 0, res.stderr
        lines = [json.loads(line) for line in res.stdout.splitlines()]
        assert len(lines) == expected
        res = cli("export", run_id, "--store", str(store), "--format", "csv", "--what", what)
        assert res.returncode == 0, res.stderr
        rows = list(csv.DictReader(io.StringIO(res.stdout)))
        assert len(rows) == expected
        if what == "decisions":
            assert [d["step"] for d in lines] == list(range(expected))
            assert [int(r["step"]) for r in rows] == list(range(expected))
            ref = decisions(store, run_id)
            assert [d["winner"] for d in lines] == [d["winner"] for d in ref]
            assert [r["winner"] for r in rows] == [d["winner"] for d in ref]
        elif expected:
            assert {"step", "idx", "text", "vote", "flag", "counted"} <= set(rows[0])
            assert [(d["step"], d["idx"]) for d in lines] == [
                (int(r["step"]), int(r["idx"])) for r in rows
            ]
    # the default record level keeps only contested steps' samples; "samples" keeps all
    assert count(store, "samples", "six") == sum(d["samples"] for d in decisions(store, "six"))
    contested = [d for d in decisions(store, "eight") if d["votes"] != "[3]"]
    assert count(store, "samples", "eight") == sum(d["samples"] for d in contested)


def test_export_jsonl_writes_nested_values_as_json_csv_as_json_text(tmp_path: Path) -> None:
    # flagged samples give `flags`, contested steps give `features`: every nested column
    db = tmp_path / "nested.db"
    journal(db, 6, "nested", model="sim:error=0.1,flag=0.2,seed=5")
    ref = decisions(db, "nested")
    res = cli("export", "nested", "--store", str(db), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    jsonl = res.stdout
    lines = [json.loads(line) for line in jsonl.splitlines()]
    assert len(lines) == len(ref) == 63
    for line, d in zip(lines, ref, strict=True):
        assert isinstance(line["votes"], list) and all(isinstance(v, int) for v in line["votes"])
        assert line["votes"] == json.loads(d["votes"])
        for key in ("flags", "features"):
            assert line[key] == (None if d[key] is None else json.loads(d[key])), key
    assert any(len(line["votes"]) > 1 for line in lines)  # a contested step
    flagged = [line["flags"] for line in lines if line["flags"]]
    assert flagged and all(isinstance(f, dict) for f in flagged)
    features = [line["features"] for line in lines if line["features"]]
    assert features and all(isinstance(f["disk"], int) for f in features)

    # CSV cells are text: each nested value is JSON text in its column (never a repr)
    res = cli("export", "nested", "--store", str(db), "--format", "csv")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [json.loads(r["votes"]) for r in rows] == [line["votes"] for line in lines]
    for key in ("flags", "features"):
        assert [json.loads(r[key]) if r[key] else None for r in rows] == [
            line[key] for line in lines
        ]

    # a data-frame user reads lists and objects straight away (pandas is in the dev extra)
    import pandas

    frame = pandas.read_json(io.StringIO(jsonl), lines=True)
    assert len(frame) == 63
    assert [list(v) for v in frame["votes"]] == [line["votes"] for line in lines]
    assert any(isinstance(v, dict) and "disk" in v for v in frame["features"])


# the CLI, then its own peak resident memory (VmHWM belongs to the process image after exec,
# unlike ru_maxrss, which keeps the forking parent's peak)
PEAK = (
    "import sys\n"
    "from unerring.cli.main import main\n"
    "rc = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
    "sys.stderr.write(f'peak_kb {hwm.split()[1]}\\n')\n"
    "raise SystemExit(rc)\n"
)


def peak_kb(args: list[str], out: Path) -> int:
    """Run the CLI with stdout to a file; return its peak resident memory in kB."""
    with out.open("w") as f:
        res = subprocess.run(
            [sys.executable, "-c", PEAK, *args],
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            timeout=120,
        )
    assert res.returncode == 0, res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("peak_kb ")]
    return int(line.split()[1])


@pytest.mark.slow
def test_export_streams_a_big_run_in_constant_memory(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    # a low error rate and k=4: 32,767 steps without a wrong decision
    journal(db, 15, "big", record="samples", model="sim:error=0.02,seed=5", k=4)
    journal(db, 5, "small", record="samples", model="sim:error=0.02,seed=5", k=4)
    big_samples = count(db, "samples", "big")
    assert big_samples > 90_000
    rss: dict[str, int] = {}
    for run_id in ("small", "big"):
        out = tmp_path / f"{run_id}.csv"
        rss[run_id] = peak_kb(
            ["export", run_id, "--store", str(db), "--format", "csv", "--what", "samples"], out
        )
        with out.open() as f:
            assert sum(1 for _ in csv.DictReader(f)) == count(db, "samples", run_id)
    out = tmp_path / "big.jsonl"
    rss["big-decisions"] = peak_kb(["export", "big", "--store", str(db), "--format", "jsonl"], out)
    with out.open() as f:
        assert sum(1 for _ in f) == 32767
    size_mb = (tmp_path / "big.csv").stat().st_size / 1e6
    assert size_mb > 15
    # loading ~100,000 rows would cost far more than 25 MB; streaming costs about nothing
    assert rss["big"] - rss["small"] < 25_000, (rss, size_mb)
    assert rss["big-decisions"] - rss["small"] < 25_000, rss


# -- while a run goes on in another process ------------------------------------------------
def test_show_sees_a_run_in_progress_in_another_process(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unerring",
            "run",
            "hanoi",
            "--disks",
            "12",
            "--k",
            "3",
            "--model",
            f"{MODEL},latency=2",
            "--run-id",
            "live",
            "--store",
            str(db),
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )
    try:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:
            res = cli("show", "live", "--store", str(db), "--json")
            if res.returncode == 0:
                s = json.loads(res.stdout)
                if s["steps_decided"] > (seen[-1]["steps_decided"] if seen else 0):
                    seen.append(s)
            time.sleep(0.3)
        assert len(seen) == 2, "show never saw the run progress"
        for s in seen:
            assert s["status"] == "running"
            assert 0 < s["steps_decided"] < 4095
            assert 0 < s["progress"] < 1
        res = cli("runs", "--store", str(db), "--json")
        assert res.returncode == 0, res.stderr
        (live,) = json.loads(res.stdout)
        assert live["status"] == "running" and live["steps_decided"] >= seen[-1]["steps_decided"]
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


# -- totals across attempts ----------------------------------------------------------------
def test_summary_adds_up_samples_tokens_and_wall_time_across_attempts(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    model = f"{MODEL},latency=1"
    base = ["--store", str(db), "--json"]
    hanoi = ["run", "hanoi", "--disks", "9", "--k", "3", "--model", model, "--run-id", "r"]
    first = cli(*hanoi, "--max-samples", "400", *base)
    assert first.returncode == 1, first.stderr
    second = cli("resume", "r", "--max-samples", "1000", *base)
    assert second.returncode == 1, second.stderr
    third = cli("resume", "r", *base)
    assert third.returncode == 0, third.stderr
    s1, s2, s3 = (json.loads(r.stdout) for r in (first, second, third))
    assert (s1["status"], s2["status"], s3["status"]) == ("stopped", "stopped", "completed")
    assert s1["steps_decided"] < s2["steps_decided"] < s3["steps_decided"] == 511
    # the budget is the run's, across attempts: each stop lands at its cap, never past it
    # and short of it by less than k (what a step needs at most), not at cap + earlier
    for s, cap in ((s1, 400), (s2, 1000)):
        assert cap - 3 < s["samples"] + s["speculative_samples"] <= cap, s
    assert s3["attempts"] == 3

    ref_db = tmp_path / "ref.db"
    ref = cli(*hanoi, "--store", str(ref_db), "--json")
    ref_s = json.loads(ref.stdout)
    for key in ("samples", "prompt_tokens", "completion_tokens", "steps_decided", "cost"):
        assert s3[key] == ref_s[key], key

    shown = json.loads(cli("show", "r", "--store", str(db), "--json").stdout)
    for key in ("samples", "prompt_tokens", "completion_tokens", "steps_decided", "attempts"):
        assert shown[key] == s3[key], key
    # wall time adds up over the three attempts: at least the time spent deciding steps,
    # at most the time the attempts were open
    conn = sqlite3.connect(db)
    try:
        spans = conn.execute("SELECT ended - started FROM attempts ORDER BY attempt").fetchall()
        deciding = conn.execute("SELECT sum(elapsed) FROM decisions").fetchone()[0]
    finally:
        conn.close()
    assert len(spans) == 3
    assert deciding <= shown["wall_s"] <= sum(s for (s,) in spans)
    assert shown["wall_s"] > s2["wall_s"] > s1["wall_s"] > 0


def test_recorded_samples_agree_with_their_decisions(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    journal(
        db,
        6,
        "noisy",
        record="samples",
        model="sim:error=0.15,wrong_answers=3,flag=0.1,seed=2",
        k=4,
    )
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM samples ORDER BY step, idx").fetchall()
    finally:
        conn.close()
    by_step: dict[int, list[sqlite3.Row]] = {}
    for r in rows:
        by_step.setdefault(r["step"], []).append(r)
    flagged = contested = 0
    for d in decisions(db, "noisy"):
        samples = by_step[d["step"]]
        assert [s["idx"] for s in samples] == list(range(d["samples"]))
        # a vote numbers the step's distinct answers in the order they were first drawn
        first_seen: dict[str, str] = {}
        for s in samples:
            if s["flag"] is not None:
                assert s["vote"] is None
                flagged += 1
                continue
            answer = s["text"]
            expected = first_seen.setdefault(answer, str(len(first_seen)))
            assert s["vote"] == expected, (d["step"], s["idx"])
        # the counted votes are the decision's tally, and the winner holds the lead
        counted: dict[str, int] = {}
        for s in samples:
            if s["vote"] is not None and s["counted"]:
                counted[s["vote"]] = counted.get(s["vote"], 0) + 1
        assert sorted(counted.values(), reverse=True) == json.loads(d["votes"])
        winner_vote = first_seen[d["winner"]]
        assert counted[winner_vote] == max(counted.values())
        contested += len(counted) > 1
    assert flagged > 0 and contested > 0


def test_max_cost_stops_the_run_at_its_cap_across_attempts(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    prices = tmp_path / "prices.json"
    prices.write_text('{"sim": {"input": 10, "output": 40}}')  # dollars per million tokens
    hanoi = ["run", "hanoi", "--disks", "7", "--k", "3", "--model", MODEL, "--run-id", "c"]
    base = ["--store", str(db), "--prices", str(prices), "--json"]
    first = cli(*hanoi, *base, "--max-cost", "0.1")
    second = cli("resume", "c", *base, "--max-cost", "0.25")
    third = cli("resume", "c", *base)
    s1, s2, s3 = (json.loads(r.stdout) for r in (first, second, third))
    assert (first.returncode, second.returncode, third.returncode) == (1, 1, 0)
    assert "cost budget reached" in s1["reason"] and "cost budget reached" in s2["reason"]
    # each attempt stops at the run's cost cap, over it by at most the last step's cost
    most = max(d["cost"] for d in decisions(db, "c"))
    assert 0.1 <= s1["cost"] < 0.1 + most
    assert 0.25 <= s2["cost"] < 0.25 + most
    assert s1["steps_decided"] < s2["steps_decided"] < s3["steps_decided"] == 127
    ref = json.loads(cli(*hanoi[:-2], "--run-id", "ref", *base).stdout)
    assert s3["cost"] == pytest.approx(ref["cost"]) and s3["samples"] == ref["samples"]
