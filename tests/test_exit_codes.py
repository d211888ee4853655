"""README's exit-code rule for every command the parser knows: bad input (a store or run
that is not there, a file that is not a journal) is one line and exit code 2; a store that
another process holds is one line and exit code 75 (try again)."""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import child_env, cli, one_line_error
from unerring.cli.main import build_parser
from unerring.journal.lock import RunLock

MODEL = "sim:error=0.05,seed=1"

# what a positional of each name gets: a name that cannot be found
POSITIONAL = {
    "task_name": ["hanoi"],
    "run_id": ["nope"],
    "run_ids": ["nope"],
    "notebook": ["nope"],
    "a": ["nope@1"],
    "b": ["nope@2"],
}
# required options, given so that the command gets as far as its store
REQUIRED = {"--model": MODEL}
# commands that take no store: each with input it must refuse
NO_STORE = {
    ("plan",): ["--error-rate", "2", "--steps", "5"],
}


def _commands() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every leaf command (`notes learn`, not `notes`), from the parser itself."""
    out: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = []

    def walk(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.append((path, parser))
            return
        for name, child in subs[0].choices.items():
            walk((*path, name), child)

    walk((), build_parser())
    return out


COMMANDS = _commands()


def _argv(path: tuple[str, ...], parser: argparse.ArgumentParser) -> list[str]:
    argv = list(path)
    for action in parser._actions:
        if not action.option_strings and action.dest in POSITIONAL:
            argv += POSITIONAL[action.dest]
        elif not action.option_strings and action.dest != argparse.SUPPRESS:
            raise AssertionError(f"{path}: give positional {action.dest!r} a value in POSITIONAL")
        elif action.required:
            flag = action.option_strings[-1]
            assert flag in REQUIRED, f"{path}: give required {flag} a value in REQUIRED"
            argv += [flag, REQUIRED[flag]]
    return argv


def _takes(parser: argparse.ArgumentParser, flag: str) -> bool:
    return any(flag in a.option_strings for a in parser._actions)


def _names_a_run(parser: argparse.ArgumentParser) -> bool:
    names = ("run_id", "run_ids", "notebook", "a")
    return any(not a.option_strings and a.dest in names for a in parser._actions)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exit-codes")
    good = folder / "good.db"
    res = cli("run", "hanoi", "--disks", "3", "--model", MODEL, "--store", str(good),
              "--run-id", "there", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    text = folder / "text.db"
    text.write_text("not a journal\n" * 20)
    foreign = folder / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    return {
        "good": good,
        "text": text,
        "foreign": foreign,
        "absent": folder / "absent.db",
        "no-folder": folder / "no" / "such" / "folder" / "x.db",
    }


def test_every_command_is_covered() -> None:
    names = {path for path, _ in COMMANDS}
    assert {("run",), ("resume",), ("show",), ("export",), ("runs",), ("report",)} <= names
    for path, parser in COMMANDS:
        _argv(path, parser)  # every positional and required option has a value here
        assert _takes(parser, "--store") or path in NO_STORE, (
            f"`unerring {' '.join(path)}` takes no --store: add bad input for it to NO_STORE"
        )


def _refused(args: list[str], names: str | None = None) -> None:
    res = cli(*args)
    assert res.returncode == 2, (args, res.returncode, res.stderr)
    line = one_line_error(res.stderr)
    if names is not None:
        assert names in line, (args, line)


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_bad_stores_and_unknown_runs_exit_2_in_one_line(
    path: tuple[str, ...], parser: argparse.ArgumentParser, stores: dict[str, Path]
) -> None:
    argv = _argv(path, parser)
    if path in NO_STORE:
        _refused(argv + NO_STORE[path])
        return
    cases = ["no-folder", "text", "foreign"]
    if path != ("run",):  # a run makes a store where none is; nothing else does
        cases.append("absent")
    for case in cases:
        store = stores[case]
        _refused([*argv, "--store", str(store)], names=store.name)
        assert not stores["no-folder"].parent.parent.exists(), f"{path} made a folder"
    if _names_a_run(parser):
        _refused([*argv, "--store", str(stores["good"])], names="nope")


def test_a_run_that_another_process_writes_is_busy_exit_75(stores: dict[str, Path]) -> None:
    lock = RunLock(str(stores["good"]), "held")
    res = cli("run", "hanoi", "--disks", "3", "--model", MODEL, "--store", str(stores["good"]),
              "--run-id", "held", "--quiet", "--max-samples", "3")  # fmt: skip
    assert res.returncode == 1, res.stderr  # stopped by its budget: resumable
    lock.acquire()
    try:
        res = cli("resume", "held", "--store", str(stores["good"]), "--quiet")
    finally:
        lock.release()
    assert res.returncode == 75, res.stderr
    assert "being written by another process" in one_line_error(res.stderr)


def test_a_store_locked_past_the_busy_timeout_is_busy_exit_75(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    res = cli("run", "hanoi", "--disks", "4", "--model", MODEL, "--store", str(db),
              "--run-id", "r", "--quiet", "--max-samples", "6")  # fmt: skip
    assert res.returncode == 1, res.stderr
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    # the real CLI in a subprocess, its 30 s busy timeout shortened to keep the test short
    code = (
        "import sys, unerring.journal.store as s; s.BUSY_TIMEOUT_S = 0.5\n"
        "from unerring.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    try:
        res = subprocess.run(
            [sys.executable, "-c", code, "resume", "r", "--store", str(db), "--quiet"],
            capture_output=True, text=True, timeout=120, env=child_env(),
        )  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert res.returncode == 75, res.stderr
    line = one_line_error(res.stderr)
    assert "busy" in line and "try again" in line, line
    # once the other process lets go, the run resumes
    res = cli("resume", "r", "--store", str(db), "--quiet")
    assert res.returncode == 0, res.stderr


# commands that take a user's class by reference, and the argv that names one
REFERENCE = {("run",): [], ("plan",): ["--calibrate"]}


def test_every_command_with_set_refuses_bad_references_in_one_line(tmp_path: Path) -> None:
    """`--set` (a user's class's arguments): a bad reference, a bad --set and a name the
    constructor does not take each exit 2 in one line, writing nothing."""
    takes_set = {path for path, parser in COMMANDS if _takes(parser, "--set")}
    assert takes_set == set(REFERENCE), "add the new command that takes --set to REFERENCE"
    module = tmp_path / "mine.py"
    module.write_text(
        "from unerring.tasks.hanoi import Hanoi\n\n"
        "class Mine(Hanoi):\n"
        "    def __init__(self, disks: int = 3) -> None:\n"
        "        super().__init__(disks)\n"
    )
    db = tmp_path / "s.db"
    for path in sorted(takes_set):
        where = [*path, *REFERENCE[path]]
        for ref, more, names in (
            (f"{tmp_path}/absent.py:Mine", [], "no such file"),
            (f"{module}:Absent", [], "defines no 'Absent'"),
            (f"{module}:Mine", ["--set", "nope=1"], "takes no argument 'nope'"),
            (f"{module}:Mine", ["--set", "=1"], "NAME=VALUE"),
            (f"{module}:Mine", ["--set", "disks=0"], "Mine(disks=0) raised"),
        ):
            store = ["--store", str(db)] if path == ("run",) else []
            _refused([*where, ref, *more, "--model", MODEL, *store], names=names)
    assert not db.exists()


@pytest.mark.parametrize("bad", ["0", "-5", "x", "1.5"])
def test_a_bad_max_steps_is_exit_2_in_one_line_and_writes_nothing(bad: str, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    res = cli("run", "hanoi", "--disks", "3", "--model", MODEL, "--store", str(store),
              "--max-steps", bad, "--quiet")  # fmt: skip
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--max-steps" in lines[0], res.stderr
    assert not store.exists()
