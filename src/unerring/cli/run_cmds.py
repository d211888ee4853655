"""`unerring run` and `unerring resume`: a task's processes and the configuration parsed
once, handed to the application layer; the result printed."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import AbstractContextManager
from typing import Any

from unerring import defaults
from unerring.app.options import BatchItem, Hooks, RunConfig
from unerring.app.recorded import from_journal
from unerring.app.result import RunResult
from unerring.app.runner import execute
from unerring.cli import otel_opts
from unerring.cli.args import add_model, add_task_options, open_store
from unerring.cli.items import items_from_file, numbered_items
from unerring.cli.progress import Progress
from unerring.cli.run_options import (
    MODEL_HELP,
    add_session_options,
    add_voting_options,
    config_from_args,
    task_options,
)
from unerring.cli.user_args import (
    add_set,
    refuse_set,
    refuse_task_flags,
    set_arguments,
    user_items,
)
from unerring.errors import StoreRefused, UsageError
from unerring.executors import Execution
from unerring.journal.store import MEMORY, RunRecord
from unerring.process_factory import ProcessFactory
from unerring.tasks.registry import TASKS, TaskProcesses, get_task, resolve
from unerring.tasks.user import UserProcesses, is_reference, user_processes


def cmd_run(args: argparse.Namespace) -> int:
    factory = _factory(args)
    config = config_from_args(args, RunConfig())
    result = execute(
        config,
        factory,
        run_id=args.run_id,
        batch=_batch(args, factory),
        hooks=_hooks(args, config),
    )
    return _print_result(result, args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    run = store.get_run(args.run_id)
    store.close()
    if run is None:
        raise StoreRefused(f"no run {args.run_id!r} in {args.store} (see `unerring runs`)")
    factory: ProcessFactory = resolve(run.task, run.config)
    if isinstance(factory, TaskProcesses):
        typed = task_options(args, factory.spec, typed_only=True)
        if typed:
            factory = TaskProcesses(factory.spec, {**factory.options, **typed})
    else:
        refuse_task_flags(args, run.task)
    config = config_from_args(args, from_journal(run.config))
    result = execute(config, factory, run_id=run.run_id, resume=True, hooks=_hooks(args, config))
    return _print_result(result, args.json)


def _factory(args: argparse.Namespace) -> TaskProcesses | UserProcesses:
    """The processes TASK names: a built-in task with its flags, or a user's class by
    reference (`FILE.py:Class`, `module:Class`) with its `--set` arguments."""
    if is_reference(args.task_name):
        refuse_task_flags(args, args.task_name)
        return user_processes(args.task_name, set_arguments(args.set_args))
    refuse_set(args, args.task_name)
    spec = get_task(args.task_name)
    return TaskProcesses(spec, task_options(args, spec))


def _batch(
    args: argparse.Namespace, factory: TaskProcesses | UserProcesses
) -> list[BatchItem] | None:
    if args.items is not None and args.batch is not None:
        raise UsageError("give --items FILE or --batch N, not both")
    if isinstance(factory, UserProcesses):
        if args.batch is not None:
            raise UsageError(
                f"--batch N makes items of a built-in task; give {factory.name}'s items "
                "with --items FILE.jsonl"
            )
        return None if args.items is None else user_items(args.items, factory)
    if args.items is not None:
        return items_from_file(args.items, factory.spec, factory.options)
    if args.batch is not None:
        return numbered_items(args.batch, factory.spec, factory.options)
    return None


def _hooks(args: argparse.Namespace, config: RunConfig) -> Hooks:
    store = config.session.store
    shown = not args.json and not args.quiet
    return Hooks(
        on_start=None if args.json else _announce(store),
        progress=_progress if shown else None,
        watch=otel_opts.watch(args),
        notify=_notice,
    )


def _progress(
    execution: Execution, run: RunRecord, items: tuple[int, int] | None
) -> AbstractContextManager[Any]:
    if items is None:
        return Progress(execution, run.steps_total)
    return Progress(execution, run.steps_total, items[0], items[1])


def _notice(text: str) -> None:
    print(f"unerring: {text}", file=sys.stderr, flush=True)


def _rule(s: dict[str, Any]) -> str:
    if s.get("stopping") == "adaptive":
        return "adaptive stopping"
    return f"k={s['k']}"


def _announce(store: str) -> Any:
    def announce(run: RunRecord, k: int) -> None:
        where = "" if store == defaults.STORE else f" --store {store}"
        rule = _rule({"stopping": run.config.get("stopping"), "k": k})
        print(
            f"unerring: run {run.run_id}: {run.task} on {run.config['model']}, {rule}, "
            f"store {store}; if stopped, resume with: "
            f"unerring resume {run.run_id}{where}",
            file=sys.stderr,
        )

    return announce


def _print_result(result: RunResult, as_json: bool) -> int:
    s = result.summary
    if as_json:
        print(json.dumps(s))
    else:
        total = f"/{s['steps_total']:,}" if s["steps_total"] else ""
        errors = "no checker" if s["errors"] is None else f"{s['errors']} errors"
        if "items" in s:
            print(
                f"batch {s['run_id']}: {s['items_completed']:,} of {s['items']:,} items "
                f"completed, {s['items_stopped']:,} stopped, {s['items_failed']:,} failed"
            )
            for it in s["items_not_completed"][:10]:
                why = f": {it['reason']}" if it["reason"] else ""
                print(f"  item {it['id']} {it['status']}{why}")
        print(
            f"run {s['run_id']} {s['status']}: {s['steps_decided']:,}{total} steps, "
            f"{errors}, {s['samples']:,} samples ({s['samples_per_step']:.2f}/step, {_rule(s)}), "
            f"{s['red_flags']:,} red flags, {s['undecided']} undecided, "
            f"{s['wall_s']:.2f} s ({s['us_per_step']:.1f} us/step)"
        )
        if s["prompt_tokens"] or s["completion_tokens"]:
            cost = f", cost ${s['cost']:.4f}" if s["cost"] else ""
            print(f"tokens {s['prompt_tokens']:,} in / {s['completion_tokens']:,} out{cost}")
        if s["transport_failures"]:
            print(f"transport failures {s['transport_failures']:,} (each journaled)")
    if s.get("members_down"):
        print(
            f"unerring: warning: ensemble members that stopped answering: "
            f"{', '.join(s['members_down'])}; the run carried on with the others",
            file=sys.stderr,
        )
    if s["status"] != "completed":
        resume = f"unerring resume {s['run_id']}"
        if s["store"] != defaults.STORE:
            resume += f" --store {s['store']}"
        hint = "" if s["store"] == MEMORY else f"; resume with: {resume}"
        print(f"unerring: run {s['status']}: {s['reason']}{hint}", file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    """Add `run` and `resume` to the CLI's subparsers."""
    run = sub.add_parser(
        "run",
        help="run a process, voting on every step",
        description="Run a process, voting on every step.",
    )
    run.add_argument(
        "task_name",
        metavar="TASK",
        help=f"a built-in task, one of: {', '.join(TASKS)}; or your own Process or Graph "
        "subclass as FILE.py:Class or package.module:Class (arguments with --set, items "
        "with --items)",
    )
    add_set(run)
    add_task_options(run)
    add_model(run, MODEL_HELP)
    add_voting_options(run)
    add_session_options(run)
    run.set_defaults(func=cmd_run)

    resume = sub.add_parser(
        "resume",
        help="continue a stopped run from its last decision",
        description="Continue a stopped run from its last committed "
        "decision; no decided step is sampled again.",
    )
    resume.add_argument("run_id", metavar="RUN_ID")
    add_model(resume, "must equal the journal's (checked)")
    add_task_options(resume)
    add_session_options(resume)
    resume.set_defaults(func=cmd_resume)
