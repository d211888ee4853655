"""Calibration shows where it stands on stderr, and Ctrl-C ends it with what was measured."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import child_env
from unerring.cli.weighted_cmds import progress_printer
from unerring.planning.calibrate import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_names_steps_samples_elapsed_time_and_what_is_left() -> None:
    out = io.StringIO()
    show = progress_printer(out)
    show(Progress(1, 60, 32, 1.4))
    show(Progress(2, 60, 64, 1.9))  # within EVERY_S of the last line: not shown
    show(Progress(30, 60, 960, 95.0))
    show(Progress(60, 60, 1920, 190.0))
    lines = out.getvalue().splitlines()
    assert lines == [
        "calibrating: 1/60 steps, 32 samples, 1 s, about 1 min 23 s left",
        "calibrating: 30/60 steps, 960 samples, 1 min 35 s, about 1 min 35 s left",
        "calibrating: 60/60 steps, 1,920 samples, 3 min 10 s",
    ]
    tty = _Tty()
    show = progress_printer(tty)
    show(Progress(1, 2, 4, 0.1))
    show(Progress(2, 2, 8, 0.2))
    # on a terminal: one line, rewritten in place, ended once done
    assert tty.getvalue() == (
        "\rcalibrating: 1/2 steps, 4 samples, 0 s, about 0 s left"
        "\rcalibrating: 2/2 steps, 8 samples, 0 s\n"
    )


def test_ctrl_c_ends_a_calibration_with_what_was_measured_so_far(tmp_path: Path) -> None:
    table = tmp_path / "t.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "unerring", "plan", "--calibrate", "addition", "--digits", "200",
         "--model", "sim:error=0.1,latency=fixed:60", "--variants", "2", "--samples", "120",
         "--save-reliability", str(table), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # printed after the first step
        assert first.startswith("calibrating: 1/120 steps, 4 samples"), first
        time.sleep(3.0)  # a few dozen steps
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    got = json.loads(out)
    assert got["interrupted"] is True
    assert 20 <= got["steps_sampled"] < got["steps_planned"] == 120
    assert got["samples"] == 4 * got["steps_sampled"]  # whole steps only
    assert f"interrupted after {got['steps_sampled']} of 120 steps" in err
    # enough labelled steps for a table: what was measured is written
    written = json.loads(table.read_text())
    assert written["steps"] == got["steps_sampled"]
