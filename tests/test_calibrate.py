"""`plan --calibrate`: its hard-step share and its warning read chance as chance."""

from __future__ import annotations

import json
from typing import Any

import pytest

from unerring.cli.main import main


def _calibrate(
    capsys: pytest.CaptureFixture[str], model: str, *extra: str
) -> tuple[dict[str, Any], str]:
    args = ["plan", "--calibrate", "hanoi", "--disks", "10", "--model", model, "--json"]
    assert main([*args, "--samples", "300", *extra]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_independent_errors_show_no_hard_steps_and_no_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # two wrong samples on one step happen by chance (about e^2 of steps): not hard steps
    errors = (0.01, 0.03, 0.1, 0.2)
    for seed in range(20):
        error = errors[seed % len(errors)]
        cal, err = _calibrate(capsys, f"sim:error={error},seed={seed}")
        assert "correlated" not in err, (seed, error, err)
        assert cal["hard_share"] == 0.0, (seed, error, cal)
        assert cal["both_wrong_p_value"] > 1e-3
        assert not cal["hard_steps"]["found"]


def test_repeated_errors_warn_and_show_at_least_that_many_hard_steps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for seed in range(5):
        cal, err = _calibrate(capsys, f"sim:error=0.01,hard=0.1,hard_error=0.6,seed={seed}")
        assert "errors look correlated" in err and "planned k is not safe" in err
        assert cal["both_wrong_p_value"] < 1e-3
        # a lower bound: beyond-chance pairs are at most the hard share (10% here)
        assert 0.01 < cal["hard_share"] <= 0.1
