"""A user's process on the command line: `--set NAME=VALUE` arguments and the items of
`--items FILE.jsonl`, each line a JSON object of the constructor's keyword arguments."""

from __future__ import annotations

import argparse
import json
from typing import Any

from unerring.app.options import BatchItem
from unerring.cli.items import item_lines
from unerring.errors import UsageError
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
    items: list[BatchItem] = []
    of_what = f"{factory.ref.attr}'s keyword arguments"
    for item_id, where, obj in item_lines(path, of_what):
        check_arguments(factory.cls, {**factory.options, **obj}, factory.ref.text, where)
        items.append(BatchItem(item_id, obj, origin=where))
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
