"""Shared helpers: run the CLI in a subprocess, hash files, read a journal directly."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from unerring.app.options import BatchItem, Hooks, RunConfig, configure
from unerring.app.result import RunResult
from unerring.app.runner import execute
from unerring.graph import Graph
from unerring.process import Process
from unerring.process_factory import OwnProcesses, ProcessFactory
from unerring.tasks.registry import task_processes

SRC = str(Path(__file__).resolve().parent.parent / "src")


def config(**options: Any) -> RunConfig:
    """A run's configuration, each option by its one name (`unerring.app.options.PLACES`:
    the library's keywords); a model as its spec text."""
    return configure(RunConfig(), options)


def run_task(
    task: str | None = None,
    task_options: dict[str, Any] | None = None,
    run_id: str | None = None,
    *,
    process: Process[Any, Any] | Graph | None = None,
    resume: bool = False,
    batch: list[BatchItem] | None = None,
    **options: Any,
) -> RunResult:
    """A run through the application layer: a built-in task's (as the CLI makes it) or a
    process of one's own; the options by their names in PLACES, the hooks by theirs."""
    hooks = Hooks(**{n: options.pop(n) for n in HOOKS if n in options})
    if process is not None:
        factory: ProcessFactory = OwnProcesses(
            task or process.name, task_options or {}, {"1": process}
        )
    else:
        assert task is not None
        factory = task_processes(task, task_options)
    return execute(
        config(**options), factory, run_id=run_id, resume=resume, batch=batch, hooks=hooks
    )


HOOKS = tuple(f.name for f in fields(Hooks))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("UNERRING_DEBUG", None)
    return env


def cli(
    *args: str, timeout: float = 120.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m unerring ARGS` in a subprocess (reaped by subprocess.run on timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "unerring", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=cwd,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(stderr: str) -> str:
    """The single error line the CLI promises: no traceback, starts with `unerring: error:`."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("unerring: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def decisions(db: Path, run_id: str) -> list[dict[str, Any]]:
    """Every decision of a run in step order (elapsed left out: it is wall time)."""
    from unerring.journal.store import Store

    store = Store(str(db), read_only=True)
    try:
        run = store.get_run(run_id)
        assert run is not None, f"no run {run_id} in {db}"
        out = []
        for d in store.decisions(run):
            d.pop("elapsed")
            out.append(d)
        return out
    finally:
        store.close()


def kill_and_resume(
    first: list[str],
    resume: list[str],
    folder: Path,
    *,
    kills: int = 10,
    seed: int = 0,
    max_delay_s: float = 0.5,
    before: Callable[[], Any] | None = None,
    after: Callable[[Path, Any], None] | None = None,
) -> int:
    """Run `unerring FIRST` (under tests/logged_cli.py, which logs each draw), kill -9 it
    `kills` times at seeded random moments once it draws, resume it (`unerring RESUME`)
    until it completes; return the attempts made. `before()` runs ahead of each attempt
    and what it returns goes to `after(log, value)` once the attempt has ended."""
    rng = random.Random(seed)
    killed = attempt = 0
    here = Path(__file__).resolve().parent
    while True:
        seen = before() if before is not None else None
        log = folder / f"attempt-{attempt}.log"
        args = first if attempt == 0 else resume
        proc = subprocess.Popen(
            [sys.executable, str(here / "logged_cli.py"), str(log), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
        )  # fmt: skip
        attempt += 1
        try:
            deadline = time.monotonic() + 60
            while not (log.exists() and log.stat().st_size) and proc.poll() is None:
                assert time.monotonic() < deadline, "the attempt never drew a sample"
                time.sleep(0.005)
            if killed < kills and proc.poll() is None:
                time.sleep(rng.uniform(0.05, max_delay_s))
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                    killed += 1
            _out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        if after is not None:
            after(log, seen)
        if proc.returncode == 0 or "already completed" in err:
            break  # (a kill can land as the last attempt exits: the run is done)
        assert proc.returncode == -signal.SIGKILL, err
        assert attempt < 60
    assert killed >= kills, f"only {killed} kills: the run ended first"
    return attempt


def item_decisions(db: Path, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every item's (a graph's: every node's) decisions in step order, by id (elapsed
    left out: it is wall time)."""
    from unerring.journal.store import Store

    store = Store(str(db), read_only=True)
    try:
        run = store.get_run(run_id)
        assert run is not None, f"no run {run_id} in {db}"
        out = {}
        for it in store.items(run):
            rows = []
            for d in store.decisions(run, item=it.item):
                d.pop("elapsed")
                rows.append(d)
            out[it.item_id] = rows
        return out
    finally:
        store.close()


def run_row(db: Path, run_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        assert row is not None, f"no run {run_id} in {db}"
        return dict(row)
    finally:
        conn.close()
