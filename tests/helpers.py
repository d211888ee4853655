"""Shared helpers: run the CLI in a subprocess, hash files, read a journal directly."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parent.parent / "src")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("UNERRING_DEBUG", None)
    return env


def cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`python -m unerring ARGS` in a subprocess (reaped by subprocess.run on timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "unerring", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
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
