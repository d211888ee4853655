"""A user's process on the command line: `--set NAME=VALUE` arguments and the items of
`--items FILE.jsonl`, each line a JSON object of the constructor's keyword arguments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from unerring.app.checks import item_id_problem
from unerring.app.options import BatchItem
from unerring.errors import UsageError
from unerring.limits import MAX_ITEMS
from unerring.tasks.user import UserProcesses, check_arguments

SET_HELP = (
    "with TASK given as FILE.py:Class or module:Class: a keyword argument of its "
    "constructor, VALUE read as JSON, else as a plain string (--set n=3 --set name=x); "
    "repeatable"
)


def add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="set_args",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help=SET_HELP,
    )


def set_arguments(given: list[str] | None) -> dict[str, Any]:
    """`--set NAME=VALUE` as keyword arguments: VALUE as JSON, else as the string."""
    out: dict[str, Any] = {}
    for text in given or ():
        name, eq, value = text.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise UsageError(f"--set {text!r}: give NAME=VALUE, NAME a Python identifier")
        if name in out:
            raise UsageError(f"--set {name} is given twice")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def user_items(path: str, factory: UserProcesses) -> list[BatchItem]:
    """One item per line: a JSON object of the constructor's keyword arguments (on top of
    `--set`'s), with an optional "id" (a string; else the line number from 1) that is not
    passed to it. Blank lines are skipped. Each item is made (and checked) before the run
    starts, so that a line the constructor refuses is named before anything is written."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--items {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--items {path} is a directory; give a JSON-lines file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--items {path} cannot be read ({e})") from None
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"--items {path} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{where} is not JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise UsageError(
                f"{where} is not a JSON object of {factory.ref.attr}'s keyword arguments"
            )
        item_id = obj.pop("id", str(number))
        problem = item_id_problem(item_id)
        if problem is not None:
            raise UsageError(f'{where}: "id" {problem}')
        if item_id in seen:
            raise UsageError(f"{where}: item id {item_id!r} is also on line {seen[item_id]}")
        seen[item_id] = number
        check_arguments(factory.cls, {**factory.options, **obj}, factory.ref.text, where)
        items.append(BatchItem(item_id, obj, origin=where))
        if len(items) > MAX_ITEMS:
            raise UsageError(
                f"--items {path} holds more than {MAX_ITEMS:,} items; split it into several runs"
            )
    if not items:
        raise UsageError(f"--items {path} holds no items")
    return items


def refuse_task_flags(args: argparse.Namespace, task: str) -> None:
    """A built-in task's flags (`--disks`) mean nothing to a user's class."""
    for name, value in vars(args).items():
        if name.startswith("task_") and name != "task_name" and value is not None:
            raise UsageError(
                f"--{name[5:].replace('_', '-')} is an option of the built-in tasks; "
                f"give {task}'s arguments with --set NAME=VALUE"
            )


def refuse_set(args: argparse.Namespace, task: str) -> None:
    if getattr(args, "set_args", None):
        raise UsageError(
            f"--set is for a process given as FILE.py:Class or module:Class; task {task!r} "
            "takes its own flags (see `unerring run --help`)"
        )
