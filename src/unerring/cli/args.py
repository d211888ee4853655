"""Argument parsing that fails in one line (exit 2), never with a traceback."""

from __future__ import annotations

import argparse
import sys
from argparse import SUPPRESS
from collections.abc import Callable
from typing import NoReturn

from unerring import defaults
from unerring.journal.store import MEMORY, Store
from unerring.limits import MAX_CONCURRENCY, MAX_VARIANTS, shown
from unerring.tasks.registry import TASKS


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def add_store(p: argparse.ArgumentParser, *, memory: bool = False) -> None:
    """`--store`; `memory`: the command can run on ':memory:' (nothing kept)."""
    extra = "; ':memory:' keeps nothing" if memory else ""
    p.add_argument(
        "--store", default=defaults.STORE, help=f"journal file (default {defaults.STORE}{extra})"
    )


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def up_to(bound: int) -> Callable[[str], int]:
    """A whole number from 1 to `bound` (unerring.limits: what a run may hold in memory)."""

    def parse(text: str) -> int:
        v = positive_int(text)
        if v > bound:
            raise argparse.ArgumentTypeError(f"{shown(v)} must be at most {bound:,}")
        return v

    return parse


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must not be negative")
    return v


def children_shown(text: str) -> int | None:
    """`show --tree --children`: N (at least 1), or `all` (None: no limit)."""
    if text == "all":
        return None
    return positive_int(text)


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


def variant_list(text: str) -> tuple[int, ...]:
    """`--variants`: N (the first N prompt variants) or a list of them, `0,3,7`."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not N or a list of variant numbers (0,3,7)"
        ) from None
    if not numbers:
        raise argparse.ArgumentTypeError("give N or a list of variant numbers")
    if "," not in text:
        if numbers[0] < 1:
            raise argparse.ArgumentTypeError(f"{numbers[0]} must be at least 1")
        return tuple(range(up_to(MAX_VARIANTS)(parts[0])))
    if min(numbers) < 0 or len(set(numbers)) != len(numbers):
        raise argparse.ArgumentTypeError(f"{text!r}: variant numbers are distinct, from 0")
    return tuple(numbers)


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


def add_transport_options(p: argparse.ArgumentParser) -> None:
    """How samples are fetched from a model server; none of these changes a decision.

    Each dest is the library's name of the option; not given, it is absent (a resume
    keeps the journal's endpoint and form)."""
    g = p.add_argument_group("model server (openai:MODEL)")
    g.add_argument(
        "--base-url",
        default=SUPPRESS,
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
        "(default $UNERRING_BASE_URL, $OPENAI_BASE_URL, or api.openai.com)",
    )
    g.add_argument(
        "--api",
        choices=("chat", "completions"),
        default=SUPPRESS,
        help="chat messages or a plain completion prompt (small models follow few-shot "
        f"completion prompts better; default {defaults.API}; a resume keeps the run's)",
    )
    g.add_argument(
        "--api-key-env",
        default=SUPPRESS,
        metavar="NAME",
        help=f"environment variable holding the API key (default {defaults.API_KEY_ENV})",
    )
    g.add_argument(
        "--timeout",
        dest="timeout_s",
        type=number,
        default=SUPPRESS,
        help=f"seconds for a whole request, sent to last byte (default {defaults.TIMEOUT_S:g})",
    )
    g.add_argument(
        "--concurrency",
        type=up_to(MAX_CONCURRENCY),
        default=SUPPRESS,
        help=f"requests in flight (default {defaults.CONCURRENCY}, at most {MAX_CONCURRENCY:,})",
    )
    g.add_argument(
        "--rpm",
        dest="requests_per_min",
        type=number,
        default=SUPPRESS,
        help="at most this many requests per minute",
    )
    g.add_argument(
        "--tpm",
        dest="tokens_per_min",
        type=number,
        default=SUPPRESS,
        help="at most this many tokens per minute",
    )
    g.add_argument(
        "--max-outage",
        dest="max_outage_s",
        type=number,
        default=SUPPRESS,
        help="seconds of failed requests before the run stops cleanly, and the longest "
        f"Retry-After honoured (default {defaults.MAX_OUTAGE_S:g})",
    )
    g.add_argument(
        "--max-response-bytes",
        type=positive_int,
        default=SUPPRESS,
        metavar="N",
        help="read no more of an answer than this; a longer one is a failed attempt "
        f"(default {defaults.MAX_RESPONSE_BYTES >> 20} MiB)",
    )
    g.add_argument(
        "--n-mode",
        choices=("auto", "n", "separate"),
        default=SUPPRESS,
        help="several samples per request with `n` (auto: where the server honours it)",
    )
    g.add_argument(
        "--estimate-usage",
        action="store_true",
        default=SUPPRESS,
        help="estimate tokens when the server reports no usage (default: stop)",
    )
    g.add_argument(
        "--prices",
        dest="prices_file",
        metavar="FILE",
        default=SUPPRESS,
        help="TOML or JSON price file extending the built-in prices ($UNERRING_PRICES)",
    )
    g.add_argument(
        "--inject-faults",
        dest="faults",
        metavar="SPEC",
        default=SUPPRESS,
        help="seeded transport faults, e.g. timeout=0.1,rate_limit=0.05,server_error=0.05,"
        "reset=0.02,truncated=0.02,slow=0.05",
    )
    g.add_argument(
        "--fault-seed",
        type=int,
        default=SUPPRESS,
        help=f"seed of --inject-faults (default {defaults.FAULT_SEED})",
    )


def add_model(p: argparse.ArgumentParser, help: str) -> None:
    """`--model`, repeatable (an ensemble); not given, it is absent."""
    p.add_argument("--model", action="append", default=SUPPRESS, help=help)


def open_store(path: str, *, write: bool = False) -> Store:
    """A store the command reads (or, with `write`, adds to): one that is not there is
    refused (exit 2), never made; ':memory:' is an empty store."""
    return Store(path, read_only=not write and path != MEMORY, create=False)
