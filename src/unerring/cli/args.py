"""Argument parsing that fails in one line (exit 2), never with a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from unerring.tasks.registry import TASKS


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v != v:
        raise argparse.ArgumentTypeError("NaN is not a number")
    return v


def probability(text: str) -> float:
    v = number(text)
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{v} must be strictly between 0 and 1")
    return v


def unit_interval(text: str) -> float:
    v = number(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{v} must be between 0 and 1")
    return v


def add_task_options(p: argparse.ArgumentParser) -> None:
    """Every built-in task's options; the command checks they fit the chosen task."""
    seen: set[str] = set()
    g = p.add_argument_group("task options")
    for spec in TASKS.values():
        for o in spec.options:
            if o.name in seen:
                continue
            seen.add(o.name)
            # type is checked later, per task, so that the message can name the task
            g.add_argument(
                o.flag,
                dest=f"task_{o.name}",
                default=None,
                metavar="N",
                help=f"{spec.name}: {o.help} (default {o.default})",
            )
