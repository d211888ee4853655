"""The weighted vote end to end on the simulated model: calibrate a reliability table on
one seed, run on another, and check that it decides by what the table says, stays
reproducible and resumable, and refuses what it cannot use in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli, decisions, kill_and_resume, one_line_error
from unerring.backends.spec import parse_model
from unerring.journal.store import Store
from unerring.planning.reliability_table import MIN_STEPS, ReliabilityTable
from unerring.planning.weighing import Weighing, spec_sources
from unerring.tasks.addition import Addition

# a model wrong on every step whose first digit is 0, one wrong whenever it is 4: each
# alone errs on a fifth of the steps, and a plain vote of the two cannot tell who is right
A = "sim:error=0.05,seed=1,modes=x:0:0.97"
B = "sim:error=0.05,seed=2,modes=x:4:0.97"
TASK = ["addition", "--digits", "300", "--max-digit", "4"]
BOTH = ["--model", A, "--model", B, "--variants", "2"]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("table") / "reliability.json"
    res = cli("plan", "--calibrate", *TASK, "--seed", "9", *BOTH, "--samples", "100",
              "--per-step", "1", "--save-reliability", str(path), "--steps", "300",
              "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["reliability_file"] == str(path)
    # the plans: per model, per variant and pooled by ahead-by-k; weighted per model and both
    assert {"model " + A, "model " + B, "variant 0", "variant 1", "pooled"} <= set(out["groups"])
    assert set(out["weighted"]) == {f"model {A}", f"model {B}", "ensemble"}
    assert out["weighted"]["ensemble"]["p_full"] > 0.9 > out["weighted"][f"model {A}"]["p_full"]
    return path


def _run(db: Path, run_id: str, *extra: str) -> dict[str, Any]:
    res = cli("run", *TASK, "--seed", "1", *BOTH, "--store", str(db), "--run-id", run_id,
              "--on-undecided", "plurality", "--record", "samples", "--json", *extra)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout))


def test_the_weighted_vote_trusts_each_model_where_the_calibration_says(
    table: Path, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    plain = _run(db, "plain", "--k", "3")
    weighted = _run(db, "weighted", "--reliability", str(table))
    assert plain["errors"] >= 10  # the plain vote splits on the fifth of steps each model fails
    assert weighted["errors"] == 0
    assert weighted["samples_per_step"] < plain["samples_per_step"]
    # the journal keeps the table the run voted with, and the margin
    run = Store(str(db), read_only=True).get_run("weighted")
    assert run is not None
    assert run.config["reliability"] == json.loads(table.read_text())
    assert run.config["margin_resolved"] > 0
    # every step decided otherwise than by the plain vote was decided wrong there and right
    # here, and asked first the model the table trusts on that step's digits
    t = ReliabilityTable.from_dict(json.loads(table.read_text()))
    models, labels = spec_sources(parse_model(f"{A} + {B}"))
    w = Weighing(t, models, labels, (0, 1), run.config["margin_resolved"])
    store = Store(str(db), read_only=True)
    first_model = {int(r["step"]): r["model"] for r in store.samples(run) if int(r["idx"]) == 0}
    store.close()
    plain_rows = {d["step"]: d for d in decisions(db, "plain")}
    process = Addition(300, 4, 1)
    state = process.initial_state()
    changed = 0
    for d in decisions(db, "weighted"):
        step = d["step"]
        features = process.features(state, step)
        state = process.advance(state, process.solve(state, step))
        if plain_rows[step]["winner"] == d["winner"]:
            continue
        changed += 1
        assert plain_rows[step]["correct"] == 0 and d["correct"] == 1
        assert features["x"] in (0, 4)  # where one of the two fails
        trusted = w.route(features).order[0][0]
        assert labels[trusted] == (B if features["x"] == 0 else A)
        assert first_model[step] == labels[trusted]
    assert changed >= 10


def _with_latency(table: Path, ms: int) -> Path:
    """The table with its models named as the same models with latency (the simulated
    model's name is its text as given; latency changes no answer)."""
    d = json.loads(table.read_text())
    for s in d["sources"]:
        s["model"] += f",latency={ms}"
    out = table.with_name(f"latency-{ms}.json")
    out.write_text(json.dumps(d))
    return out


def test_a_weighted_run_is_reproducible_and_does_not_depend_on_latency(
    table: Path, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    _run(db, "one", "--reliability", str(table))
    _run(db, "two", "--reliability", str(table))
    slow = ["--model", f"{A},latency=1", "--model", f"{B},latency=1", "--variants", "2"]
    res = cli("run", *TASK, "--seed", "1", *slow, "--store", str(db), "--run-id", "slow",
              "--on-undecided", "plurality", "--reliability", str(_with_latency(table, 1)),
              "--json", "--concurrency", "16")  # fmt: skip
    assert res.returncode == 0, res.stderr

    def winners(run_id: str) -> list[tuple[int, str, int]]:
        return [(d["step"], d["winner"], d["samples"]) for d in decisions(db, run_id)]

    assert winners("one") == winners("two")
    # a member's samples with latency carry the member's own label: the same choices
    assert winners("slow") == winners("one")
    # steps opened ahead on their predecessor's first answer decide alike
    res = cli("run", *TASK, "--seed", "1", *slow, "--store", str(db), "--run-id", "ahead",
              "--on-undecided", "plurality", "--reliability", str(_with_latency(table, 1)),
              "--json", "--speculate", "3")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert winners("ahead") == winners("one")


def test_kill_and_resume_redraws_no_decided_step_and_decides_as_one_run(
    table: Path, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    slow = ["--model", f"{A},latency=5", "--model", f"{B},latency=5", "--variants", "2"]
    common = ["--store", str(db), "--quiet"]
    first = ["run", *TASK, "--seed", "1", *slow, "--reliability", str(_with_latency(table, 5)),
             "--on-undecided", "plurality", "--run-id", "kr", *common]  # fmt: skip

    def committed() -> int:
        if not db.exists():
            return 0
        store = Store(str(db), read_only=True)
        try:
            run = store.get_run("kr")
            return 0 if run is None else run.next_step
        finally:
            store.close()

    def after(log: Path, before: int) -> None:
        steps = [
            int(line.split()[0])
            for line in (log.read_text().splitlines() if log.exists() else [])
            if not line.startswith(("B ", "C "))
        ]
        assert all(s >= before for s in steps)  # nothing drawn for a committed step

    kill_and_resume(
        first, ["resume", "kr", *common], tmp_path, kills=3, seed=3, max_delay_s=0.8,
        before=committed, after=after,
    )  # fmt: skip
    _run(tmp_path / "ref.db", "ref", "--reliability", str(table))
    got = [(d["step"], d["winner"]) for d in decisions(db, "kr")]
    want = [(d["step"], d["winner"]) for d in decisions(tmp_path / "ref.db", "ref")]
    assert got == want


def test_a_model_that_answers_nothing_parsable_gets_no_say(tmp_path: Path) -> None:
    table = tmp_path / "t.json"
    mute = "sim:error=0.0,seed=3,flag=1.0"
    args = ["--model", A, "--model", mute, "--variants", "2"]
    res = cli("plan", "--calibrate", *TASK, "--seed", "9", *args, "--samples", "40",
              "--per-step", "1", "--save-reliability", str(table), "--steps", "300",
              "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"model {mute}: no sample passed the red flags" in res.stderr
    res = cli("run", *TASK, "--seed", "1", *args, "--reliability", str(table),
              "--store", ":memory:", "--on-undecided", "plurality", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "completed" and out["red_flags"] > 0
    # the other model alone: right but where its planted mode fires (x = 0)
    assert out["errors"] <= 0.3 * out["steps_decided"]


def _table_file(path: Path, steps: int, task: str = "addition", variants: int = 2) -> Path:
    t = ReliabilityTable(task, steps)
    for model in (A, B):
        for v in range(variants):
            t.add((model, v), "kind=column,x=0,y=0", True)
    path.write_text(json.dumps(t.as_dict()))
    return path


@pytest.mark.parametrize(
    ("make", "extra", "words"),
    [
        (lambda p: _table_file(p, MIN_STEPS - 5), [], "(5 more)"),
        (lambda p: _table_file(p, 40, task="hanoi"), [], "measured on task 'hanoi'"),
        (lambda p: _table_file(p, 40, variants=1), [], "prompt variant 1"),
        (lambda p: _table_file(p, 40), ["--k", "3"], "--k does not apply"),
        (lambda p: _table_file(p, 40), ["--stopping", "adaptive"], "pick one"),
        (lambda p: p.with_name("missing.json"), [], "cannot read it"),
        (lambda p: (p.write_text("{"), p)[1], [], "not JSON"),
        (lambda p: (p.write_text("[]"), p)[1], [], "not a reliability table"),
    ],
)
def test_a_table_the_run_cannot_use_is_refused_in_one_line(
    tmp_path: Path, make: Any, extra: list[str], words: str
) -> None:
    path = make(tmp_path / "t.json")
    db = tmp_path / "runs.db"
    res = cli("run", *TASK, *BOTH, "--reliability", str(path), "--store", str(db), *extra)
    assert res.returncode == 2
    assert words in one_line_error(res.stderr)
    assert not db.exists()


def test_the_plan_shows_samples_p_full_and_cost_per_model_and_for_the_ensemble(
    tmp_path: Path,
) -> None:
    res = cli("plan", "--calibrate", *TASK, "--seed", "9", *BOTH, "--samples", "30",
              "--per-step", "1", "--save-reliability", str(tmp_path / "t.json"),
              "--steps", "300", "--cost-per-sample", "0.001")  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("weighted vote (margin"))
    head, rows = lines[at + 1], lines[at + 2 : at + 5]
    assert head.split() == ["samples/step", "p_full", "undecided", "cost"]
    assert [r.split()[0] for r in rows] == ["model", "model", "ensemble"]
    for r in rows:
        samples, cost = float(r.split()[-4]), float(r.split()[-1].lstrip("$"))
        assert cost == pytest.approx(samples * 300 * 0.001, abs=0.006)
    # ahead-by-k per model, per variant and pooled, in the groups table
    variant = next(ln for ln in lines if ln.startswith("variant 1 "))
    k, per_step, p_full = variant.split()[-3:]
    assert int(k) >= 1 and float(per_step) >= int(k) and 0 < float(p_full) <= 1


def test_a_calibration_too_small_for_a_table_says_how_many_more_steps(tmp_path: Path) -> None:
    res = cli("plan", "--calibrate", *TASK, *BOTH, "--samples", str(MIN_STEPS - 8),
              "--save-reliability", str(tmp_path / "t.json"))  # fmt: skip
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    assert f"--samples {MIN_STEPS - 8}" in line and "(8 more)" in line
    assert not (tmp_path / "t.json").exists()
