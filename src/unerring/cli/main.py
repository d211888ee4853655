"""`unerring`: run, resume, plan and inspect long voted LLM processes."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence

from unerring import defaults
from unerring._version import __version__
from unerring.cli import analysis_cmds, inspect_cmds, plan_cmds, report_cmds, run_cmds
from unerring.cli.args import Parser
from unerring.errors import StoreBusy, StoreError, StoreRefused, UsageError
from unerring.journal.codec import DamagedRecord
from unerring.journal.store import store_error

# README's rule: bad input (a store or run that is not there included) exits 2; a run that
# stops before its end exits 1; a store another process holds exits 75 (sysexits'
# EX_TEMPFAIL: try again)
EXIT_STOPPED = 1
EXIT_USAGE = 2
EXIT_BUSY = 75


def build_parser() -> Parser:
    parser = Parser(prog="unerring", description=__doc__)
    parser.add_argument("--version", action="version", version=f"unerring {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for commands in (run_cmds, plan_cmds, inspect_cmds, analysis_cmds, report_cmds):
        commands.register(sub)
    return parser


def flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's flag by its dest, over every command: the dests are the library's
    parameter names, so a message naming a parameter can name the flag instead."""
    out: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                out.update(flags(child))
        elif action.option_strings:
            out.setdefault(action.dest, action.option_strings[-1])
    return out


def _store_exit(e: StoreError) -> int:
    if isinstance(e, StoreRefused):
        return EXIT_USAGE
    return EXIT_BUSY if isinstance(e, StoreBusy) else EXIT_STOPPED


def _fail(message: object, code: int) -> int:
    print(f"unerring: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as e:
        flag_of = flags(parser)
        return _fail(e.spelt(lambda p: flag_of.get(p, p)), EXIT_USAGE)
    except StoreError as e:
        return _fail(e, _store_exit(e))
    except sqlite3.DatabaseError as e:
        # past opening: a lock held longer than the busy timeout, or damage found by a read
        named = store_error(getattr(args, "store", defaults.STORE), e, opening=False)
        return _fail(named, _store_exit(named))
    except DamagedRecord as e:  # packed records read outside Store.decisions (a report's)
        where = getattr(args, "store", defaults.STORE)
        return _fail(f"{where} is damaged ({e}); restore it from a copy", EXIT_USAGE)
    except BrokenPipeError:
        # `unerring export ... | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("unerring: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the last line of defence: one line, no traceback
        if os.environ.get("UNERRING_DEBUG"):
            raise
        print(
            f"unerring: internal error: {type(e).__name__}: {e} "
            "(set UNERRING_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
