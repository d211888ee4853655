"""The Makefile's install stamps (`make -n`: what make would run, nothing run) and the
progress a long build prints (bench/build_progress.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _dry(target: str, venv: Path) -> str:
    res = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_the_demo_installs_the_package_alone_and_the_suite_adds_the_dev_extra(
    tmp_path: Path,
) -> None:
    venv = tmp_path / ".venv"
    # a fresh clone: the demo makes the venv and installs the package, not the dev extra
    demo = _dry("demo", venv)
    assert "-m venv" in demo and "pip install --quiet -e .\n" in demo
    assert "[dev]" not in demo
    # after `make demo`: the suite's targets install the dev extra, stamping both
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".installed-package").touch()
    lint = _dry("lint", venv)
    assert "pip install --quiet -e '.[dev]'" in lint and "-m venv" not in lint
    assert f"touch {venv}/.installed-dev {venv}/.installed-package" in lint
    assert "pip install" not in _dry("demo", venv)
    # after `make test` (the dev extra, both stamps): the demo installs nothing
    (venv / ".installed-package").unlink()
    (venv / ".installed-dev").touch()
    (venv / ".installed-package").touch()
    assert "pip install" not in _dry("demo", venv)
    assert "pip install" not in _dry("lint", venv)


def test_a_long_build_says_how_long_and_how_far(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    # a build's output: ninja's steps, a quarter of a second apart
    lines = "; ".join(f"echo '  [{i}/40] g++ -c part{i}.cpp'; sleep 0.25" for i in range(1, 9))
    res = subprocess.run(
        f"{{ {lines}; }} | {sys.executable} {ROOT / 'bench' / 'build_progress.py'} {log} 0.5",
        shell=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    said = res.stdout.splitlines()
    # about every half second a line with the time so far and the step reached
    assert 2 <= len(said) - 1 <= 5, said
    assert all(line.startswith("  ... 0 min 0") for line in said[:-1])
    steps = [int(line.split("step ")[1].split("/")[0]) for line in said[:-1]]
    assert steps == sorted(set(steps)) and steps[0] >= 2 and steps[-1] <= 8, said
    assert said[-1].startswith("  ... ended after 0 min 0") and str(log) in said[-1]
    # the whole output is kept
    assert log.read_text().count("g++ -c part") == 8
