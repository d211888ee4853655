import json
import subprocess
import sys
from pathlib import Path

import pytest

from unerring.cli.main import main


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unerring", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


SUMMARY_FIELDS = {
    "run_id",
    "task",
    "status",
    "steps_total",
    "steps_decided",
    "errors",
    "undecided",
    "samples",
    "red_flags",
    "samples_per_step",
    "wall_s",
    "us_per_step",
}


def test_run_json_prints_one_summary_object(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "run",
            "hanoi",
            "--disks",
            "6",
            "--model",
            "sim:error=0.01,seed=7",
            "--target",
            "0.95",
            "--json",
            "--store",
            ":memory:",
        ]
    )
    out = capsys.readouterr()
    assert code == 0
    summary = json.loads(out.out)
    assert set(summary) >= SUMMARY_FIELDS
    assert summary["status"] == "completed"
    assert summary["steps_total"] == summary["steps_decided"] == 63
    assert summary["errors"] == 0
    assert summary["samples"] >= 63 * summary["k"]
    assert out.err == ""  # --json: no progress display


def test_run_with_explicit_k(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hanoi", "--disks", "4", "--k", "5", "--json", "--store", ":memory:"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["k"] == 5 and summary["samples"] >= 15 * 5


def test_human_run_shows_progress_and_summary(tmp_path: Path) -> None:
    r = cli(
        "run",
        "hanoi",
        "--disks",
        "7",
        "--model",
        "sim:error=0.02,seed=1",
        "--store",
        str(tmp_path / "runs.db"),
    )
    assert r.returncode == 0, r.stderr
    assert "completed: 127/127 steps, 0 errors" in r.stdout
    assert "decided 127/127" in r.stderr  # the final progress line
    assert "resume with: unerring resume hanoi-" in r.stderr


BAD = [
    (["run", "towers"], "unknown task 'towers'"),
    (["run", "hanoi", "--disks", "-3"], "--disks must be a positive number"),
    (["run", "hanoi", "--disks", "three"], "--disks 'three' is not a int"),
    (["run", "hanoi", "--model", "sim:error=abc"], "not a number"),
    (["run", "hanoi", "--model", "gpt4"], "is not PROVIDER:NAME"),
    (["run", "hanoi", "--model", "nope:x"], "unknown model provider 'nope'"),
    (["run", "hanoi", "--model", "sim:errror=0.1"], "unknown sim parameter 'errror'"),
    (["run", "hanoi", "--k", "0"], "must be at least 1"),
    (["run", "hanoi", "--target", "1.5"], "strictly between 0 and 1"),
    (["run", "hanoi", "--target", "0"], "strictly between 0 and 1"),
    (["run", "hanoi", "--model", "sim:error=0.6"], "cannot converge"),
    (["run", "hanoi", "--run-id", "bad id!"], "run id 'bad id!'"),
    (["plan", "--error-rate", "0.01"], "--steps"),
    (["plan", "--error-rate", "1.5", "--steps", "10"], "strictly between 0 and 1"),
    (["plan", "--error-rate", "0.6", "--steps", "10"], "not above 0.5"),
    (["plan", "--calibrate", "towers"], "unknown task 'towers'"),
    (["plan", "--calibrate", "hanoi", "--disks", "0"], "--disks must be a positive number"),
    (["plan", "--calibrate", "hanoi", "--model", "sim:x=1"], "unknown sim parameter"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_line_exit_2_no_traceback(args: list[str], message: str) -> None:
    r = cli(*args, "--store", ":memory:") if args[0] == "run" else cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("error", "k"),
    [
        (0.3571, 29),
        (0.0040, 4),
        (0.0022, 3),
        (0.0018, 3),
        (0.1839, 12),
        (0.0358, 6),
        (0.2342, 15),
        (0.0569, 6),
        (0.0393, 6),
    ],
)
def test_plan_gives_the_paper_k_min(
    error: float, k: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            ["plan", "--error-rate", str(error), "--steps", "1048575", "--target", "0.95", "--json"]
        )
        == 0
    )
    plan = json.loads(capsys.readouterr().out)
    assert plan["k_min"] == k
    assert plan["p_full"] >= 0.95
    assert plan["samples_total"] == pytest.approx(plan["samples_per_step"] * 1048575)


def test_plan_prices_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "plan",
            "--error-rate",
            "0.01",
            "--steps",
            "1000",
            "--valid-rate",
            "0.5",
            "--cost-per-sample",
            "0.002",
        ]
    )
    out = capsys.readouterr().out
    assert "k_min        3" in out
    # both stopping rules side by side; on i.i.d. errors they plan the same votes
    cost = next(line for line in out.splitlines() if line.startswith("cost"))
    assert cost.split()[1:] == ["$12.24", "$12.24"]


def test_calibrate_measures_p_on_a_well_behaved_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "plan",
                "--calibrate",
                "hanoi",
                "--disks",
                "10",
                "--model",
                "sim:error=0.05,wrong_answers=4,seed=3",
                "--samples",
                "400",
                "--json",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    cal = json.loads(out.out)
    assert cal["p_ci95"][0] <= 0.95 <= cal["p_ci95"][1]
    assert cal["steps_sampled"] == 400
    assert cal["plan"]["k_min"] >= 2
    assert "correlated" not in out.err


def test_calibrate_warns_when_errors_repeat_on_the_same_steps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 10% of steps are wrong 45% of the time, always the same way: the mean p looks fine
    assert (
        main(
            [
                "plan",
                "--calibrate",
                "hanoi",
                "--disks",
                "10",
                "--model",
                "sim:error=0.0,hard=0.1,hard_error=0.45,wrong_answers=1,seed=3",
                "--samples",
                "400",
                "--json",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    cal = json.loads(out.out)
    assert cal["p"] > 0.9
    assert cal["collisions"] > 3
    assert "errors look correlated" in out.err
    assert "planned k is not safe" in out.err


def test_calibrate_warns_before_spending_on_a_hopeless_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(
        [
            "plan",
            "--calibrate",
            "hanoi",
            "--disks",
            "6",
            "--model",
            "sim:error=0.6,seed=1",
            "--samples",
            "50",
        ]
    )
    err = capsys.readouterr().err
    assert "is not above 0.5" in err


def test_version_and_help() -> None:
    r = cli("--help")
    assert r.returncode == 0
    for command in ("run", "resume", "plan", "runs", "show", "export"):
        assert command in r.stdout
    assert cli("--version").stdout.startswith("unerring ")
