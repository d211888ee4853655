"""The correlation check of `unerring failures` on journaled simulated runs: no warning on
independent errors, hard steps found where planted, and a k the planner confirms."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.analysis_helpers import batch, run
from unerring.analysis.correlation import Correlation, correlation
from unerring.cli.main import main
from unerring.journal.store import Store

HARD = "hard=0.05,hard_error=0.45"


def _check(db: Path, run_id: str) -> Correlation:
    store = Store(str(db), read_only=True)
    try:
        return correlation(store, run_id)
    finally:
        store.close()


def _planner_k(command: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, float]:
    """Run the planner call a warning names; its k and P(all right)."""
    args = shlex.split(command)
    assert args[:2] == ["unerring", "plan"]
    capsys.readouterr()
    assert main([*args[1:], "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)["rules"]["ahead-by-k"]
    return int(rules["k"]), float(rules["p_full"])


def _confirmed(c: Correlation, capsys: pytest.CaptureFixture[str]) -> None:
    """The warning names k_needed and a planner call that gives that k, which reaches the
    target where the planned k does not."""
    assert c.k_needed is not None and c.plan_command is not None and c.k is not None
    unsafe = [w for w in c.warnings if w.startswith(f"planned k={c.k} is not safe")]
    assert len(unsafe) == 1, c.warnings
    assert f"k={c.k_needed} would be (`{c.plan_command}`)" in unsafe[0]
    k, p_full = _planner_k(c.plan_command, capsys)
    assert k == c.k_needed > c.k
    assert p_full >= c.target


@pytest.mark.slow
def test_independent_errors_never_warn(tmp_path: Path) -> None:
    # 20 seeds, each a chain and a batch, error 0.01 to 0.1; k as planned for the error
    db = tmp_path / "runs.db"
    errors = (0.01, 0.02, 0.05, 0.1)
    for seed in range(20):
        error = errors[seed % len(errors)]
        model = f"sim:error={error},seed={seed}"
        run(db, f"c{seed}", model, disks=9, k=None)
        batch(db, f"b{seed}", model, sizes=(6,) * 10, k=None)
        for rid in (f"c{seed}", f"b{seed}"):
            c = _check(db, rid)
            assert c.warnings == (), (rid, error, c.warnings)
            assert c.hard_share == 0.0 and c.hard_steps["found"] is False
            assert c.both_wrong is not None and not c.both_wrong["significant"]
            assert c.p_full_mixture is not None and c.p_full_mixture >= c.target
    # k given too low for the error: the error rate itself says so (see below), so the
    # cases above are the plan's own k


def test_a_batch_with_a_safe_k_gets_no_warning(tmp_path: Path) -> None:
    # the run of the issue: 50 items of 8 disks at error 0.02, k=4, no error; the old
    # mixture read two wrong votes on a step as a hard step and asked for k=7
    db = tmp_path / "runs.db"
    res = batch(db, "b", "sim:error=0.02,seed=0", sizes=(8,) * 50, k=4)
    assert res.summary["errors"] == 0
    c = _check(db, "b")
    assert c.warnings == ()
    assert c.k == 4 and c.k_needed == 4
    assert c.p_full_mixture is not None and c.p_full_mixture > 0.99
    assert c.collision_ratio is not None and c.collision_ratio < 2


@pytest.mark.slow
def test_planted_hard_steps_always_warn_with_a_k_the_planner_confirms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # planned for independent errors at 0.01 (what a calibration that missed the hard
    # steps would say), 5% of steps err at 0.45: k is far too small
    db = tmp_path / "runs.db"
    for seed in range(10):
        model = f"sim:error=0.01,seed={seed},{HARD}"
        run(db, f"c{seed}", model, disks=12, k=None, error_rate=0.01)
        batch(db, f"b{seed}", model, sizes=(8,) * 16, k=None, error_rate=0.01)
        for rid in (f"c{seed}", f"b{seed}"):
            c = _check(db, rid)
            assert any(w.startswith("errors cluster on hard steps") for w in c.warnings), rid
            assert 0.03 < c.hard_share < 0.07 and 0.4 < c.hard_error < 0.5, (rid, c)
            _confirmed(c, capsys)


def test_hard_steps_planned_for_are_reported_but_k_is_safe(tmp_path: Path) -> None:
    # the simulator's own mixture plans k for the hard steps: they are found, k is kept
    db = tmp_path / "runs.db"
    run(db, "c", f"sim:error=0.01,seed=1,{HARD}", disks=10, k=None)
    c = _check(db, "c")
    assert c.hard_steps["found"]
    assert [w for w in c.warnings if "not safe" in w] == []
    assert c.k is not None and c.k_needed is not None and c.k_needed <= c.k


def test_a_k_too_small_for_the_measured_error_is_named_and_confirmed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    run(db, "c", "sim:error=0.1,seed=2", disks=10, k=3)
    c = _check(db, "c")
    assert not c.hard_steps["found"]
    assert "the votes err at" in " ".join(c.warnings)
    _confirmed(c, capsys)


def test_failures_on_the_demo_run_prints_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `make demo`: unerring run hanoi --disks 10 --model sim:error=0.01
    db = str(tmp_path / "demo.db")
    args = ["hanoi", "--disks", "10", "--model", "sim:error=0.01", "--store", db]
    assert main(["run", *args, "--run-id", "demo", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["failures", "demo", "--store", db]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err, out.err
    assert "no hard steps beyond chance" in out.out


def test_failures_text_names_the_hard_steps_it_finds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "runs.db")
    model = f"sim:error=0.01,seed=3,{HARD}"
    args = ["hanoi", "--disks", "10", "--model", model, "--k", "3", "--store", db]
    assert main(["run", *args, "--run-id", "h", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["failures", "h", "--store", db]) == 0
    out = capsys.readouterr()
    assert re.search(r"hard steps \d\.\d% at error 0\.\d+ \(the rest 0\.0\d+\)", out.out), out.out
    assert "errors cluster on hard steps" in out.err
    assert "planned k=3 is not safe" in out.err and "unerring plan --steps 1023" in out.err


def test_without_kept_samples_the_pairs_are_unknown_not_zero(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run(db, "d", f"sim:error=0.01,seed=4,{HARD}", disks=10, k=3, record="decisions")
    c = _check(db, "d")
    assert c.collisions is None and c.both_wrong is None
    # the tallies alone still show the hard steps
    assert c.hard_steps["found"] and c.hard_share > 0.02
