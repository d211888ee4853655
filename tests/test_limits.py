"""Option values that would size a run past any machine are refused in one line, fast,
before anything is written, by the CLI and the library alike; values at the bounds run."""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

import unerring
from tests.helpers import child_env
from unerring.cli.args import up_to, variant_list
from unerring.cli.items import numbered_items
from unerring.errors import UsageError
from unerring.limits import (
    MAX_CONCURRENCY,
    MAX_ITEMS,
    MAX_K,
    MAX_PARALLEL,
    MAX_SAMPLES_PER_STEP,
    MAX_VARIANTS,
)
from unerring.tasks.hanoi import Hanoi
from unerring.tasks.registry import get_task
from unerring.voting.config import Budget

HUGE = str(10**20)


def _limited() -> None:
    # a regression must fail the test, not take the machine: 2 GB of address space
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _run(store: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "unerring", "run", "hanoi", "--disks", "5", "--store", str(store),
         "--json", *args],
        capture_output=True, text=True, timeout=120, env=child_env(), preexec_fn=_limited,
    )  # fmt: skip
    return done, time.monotonic() - started


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--concurrency", HUGE], f"--concurrency: 1e+20 must be at most {MAX_CONCURRENCY:,}"),
        (["--concurrency", "1000000"], "--concurrency: 1,000,000 must be at most 4,096"),
        (["--batch", "10000000"], f"--batch: 10,000,000 must be at most {MAX_ITEMS:,}"),
        (["--parallel", "1000000000"], "--parallel: 1,000,000,000 must be at most 1,000"),
        (["--k", "100000000"], f"--k: 100,000,000 must be at most {MAX_K:,}"),
        (["--k", HUGE], f"--k: 1e+20 must be at most {MAX_K:,}"),
        (["--max-samples-per-step", HUGE], f"must be at most {MAX_SAMPLES_PER_STEP:,}"),
        (["--variants", "1000000000"], "--variants: 1,000,000,000 must be at most 1,000"),
        (["--max-cost", "-1"], "--max-cost must be a positive number, got -1.0"),
        (["--max-cost", "inf"], "--max-cost must be a positive number, got inf"),
        (["--max-cost", "0"], "--max-cost must be a positive number, got 0.0"),
        (["--max-cost", "nan"], "--max-cost: NaN is not a number"),
    ],
)  # fmt: skip
def test_a_huge_value_is_refused_in_one_line_fast_and_writes_nothing(
    args: list[str], words: str, tmp_path: Path
) -> None:
    store = tmp_path / "journal" / "runs.db"
    store.parent.mkdir()
    done, elapsed = _run(store, *args)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert words in lines[0]
    assert elapsed < 60  # a start-up, not an allocation (measured: under 1 s)
    assert not any(store.parent.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["--k", str(MAX_K)],
        ["--parallel", str(MAX_PARALLEL), "--k", "2", "--model", "sim:error=0.3,seed=3"],
        ["--concurrency", str(MAX_CONCURRENCY), "--model", "sim:error=0.01,latency=1"],
        ["--max-samples-per-step", str(MAX_SAMPLES_PER_STEP), "--k", "2"],
        ["--batch", "3", "--concurrency", str(MAX_CONCURRENCY), "--max-cost", "1e9"],
    ],
)
def test_values_at_the_bounds_run(args: list[str], tmp_path: Path) -> None:
    done, _ = _run(tmp_path / "runs.db", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["status"] == "completed"


def test_the_bounds_of_the_cheap_to_check_options_are_inclusive() -> None:
    assert up_to(MAX_ITEMS)(str(MAX_ITEMS)) == MAX_ITEMS
    with pytest.raises(argparse.ArgumentTypeError, match="1,000,001 must be at most 1,000,000"):
        up_to(MAX_ITEMS)(str(MAX_ITEMS + 1))
    assert len(variant_list(str(MAX_VARIANTS))) == MAX_VARIANTS
    with pytest.raises(argparse.ArgumentTypeError):
        variant_list(str(MAX_VARIANTS + 1))
    started = time.monotonic()
    with pytest.raises(UsageError, match="--batch must be at most 1,000,000, got 1e\\+20"):
        numbered_items(10**20, get_task("hanoi"), {})
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"k": 10**8}, "k must be at most 1,000, got 100,000,000"),
        ({"k": 10**20}, "k must be at most 1,000, got 1e+20"),
        ({"parallel": 10**9}, "parallel must be at most 1,000, got 1,000,000,000"),
        ({"max_samples_per_step": 10**20}, "max_samples_per_step must be at most 1,000,000"),
    ],
)
def test_the_library_refuses_the_same_values(
    given: dict[str, int], words: str, tmp_path: Path
) -> None:
    store = tmp_path / "runs.db"
    # the library names the parameter (`k`), not the CLI's flag (`--k`)
    with pytest.raises(UsageError, match="^" + re.escape(words)):
        unerring.run(Hanoi(3), store=str(store), run_id="r", **given)  # type: ignore[arg-type]
    assert not store.exists()


def test_run_batch_refuses_huge_concurrency_and_batches_before_making_items() -> None:
    with pytest.raises(ValueError, match=r"^concurrency must be at most 4,096, got 1e\+20"):
        unerring.run_batch([Hanoi(3)], concurrency=10**20)
    started = time.monotonic()
    with pytest.raises(UsageError, match="at most 1,000,000 processes, got 1,000,001"):
        unerring.run_batch([Hanoi(3)] * (MAX_ITEMS + 1))
    assert time.monotonic() - started < 5  # no item was made of each


@pytest.mark.parametrize("cap", [-1.0, 0.0, math.nan, math.inf])
def test_a_budget_cap_is_a_positive_finite_number(cap: float) -> None:
    with pytest.raises(ValueError, match=r"^max_cost must be a positive number"):
        Budget(max_cost=cap)
    with pytest.raises(ValueError, match=r"^max_samples must be a positive number"):
        Budget(max_samples=0)
    assert Budget(max_cost=0.5, max_samples=10**30).active  # a large cap is no allocation
