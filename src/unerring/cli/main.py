"""`unerring`: run, resume, plan and inspect long voted LLM processes."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from unerring._version import __version__
from unerring.analysis.records import safe
from unerring.app.options import STOPPING_RULES, BatchItem, RunOptions, Session
from unerring.app.result import RunResult
from unerring.app.runner import execute
from unerring.backends.factory import Transport, make_backend
from unerring.backends.resilience import RetryPolicy
from unerring.backends.spec import ensemble_text, parse_model
from unerring.cli import analysis_cmds, otel_opts, report_cmds
from unerring.cli.args import (
    Parser,
    add_store,
    add_task_options,
    add_transport_options,
    children_shown,
    non_negative_int,
    number,
    positive_int,
    probability,
    unit_interval,
    up_to,
    variant_list,
)
from unerring.cli.items import items_from_file, named_item, numbered_items
from unerring.cli.progress import Progress
from unerring.cli.show_text import summary_lines
from unerring.cli.table import table
from unerring.cli.tree import CHILDREN, render_tree
from unerring.errors import UsageError
from unerring.executors import EXECUTORS, Execution, ExecutorSpec
from unerring.graph import MAX_DEPTH
from unerring.journal.codec import DamagedRecord
from unerring.journal.lock import live_status
from unerring.journal.store import (
    DEFAULT_STORE,
    MEMORY,
    RunRecord,
    Store,
    StoreBusy,
    StoreError,
    StoreRefused,
    store_error,
)
from unerring.limits import MAX_ITEMS, MAX_K, MAX_PARALLEL, MAX_SAMPLES_PER_STEP
from unerring.planning import reliability
from unerring.planning.calibrate import run_calibration
from unerring.planning.plan import adaptive_cap, check_variants
from unerring.planning.predict import predict
from unerring.reporting.rows import export_rows
from unerring.reporting.streams import write_csv, write_jsonl
from unerring.reporting.summary import item_summary, summary
from unerring.tasks.registry import TASKS, get_task
from unerring.voting.adaptive import AdaptiveConfig
from unerring.voting.config import Budget
from unerring.voting.posterior import ErrorModel


def _task_options(args: argparse.Namespace, task: str) -> dict[str, Any]:
    try:
        spec = get_task(task)
    except ValueError as e:
        raise UsageError(str(e)) from None
    own = {o.name for o in spec.options}
    out: dict[str, Any] = {}
    for name, value in vars(args).items():
        if not name.startswith("task_") or name == "task_name" or value is None:
            continue
        opt = name[5:]
        if opt not in own:
            raise UsageError(f"--{opt.replace('_', '-')} is not an option of task {task!r}")
        o = next(o for o in spec.options if o.name == opt)
        try:
            out[opt] = o.type(value)
        except ValueError:
            raise UsageError(f"{o.flag} {value!r} is not a {o.type.__name__}") from None
    for o in spec.options:
        out.setdefault(o.name, o.default)
    return out


def _budget(args: argparse.Namespace) -> Budget:
    try:
        return Budget(args.max_samples, args.max_cost, args.max_tokens_total)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None

    def make(
        execution: Execution, run: RunRecord, items: tuple[int, int] | None
    ) -> AbstractContextManager[Any]:
        if items is None:
            return Progress(execution, run.steps_total)
        return Progress(execution, run.steps_total, items[0], items[1])

    return make


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
    if s["status"] != "completed":
        resume = f"unerring resume {s['run_id']}"
        if s["store"] != DEFAULT_STORE:
            resume += f" --store {s['store']}"
        hint = "" if s["store"] == MEMORY else f"; resume with: {resume}"
        print(f"unerring: run {s['status']}: {s['reason']}{hint}", file=sys.stderr)
        return 1
    return 0


def _model(given: list[str] | None) -> str | None:
    """`--model A --model 2*B`: one model, or an ensemble of several (checked later)."""
    return ensemble_text(given) if given else None


def _rule(s: dict[str, Any]) -> str:
    if s.get("stopping") == "adaptive":
        return "adaptive stopping"
    return f"k={s['k']}"


def _transport(args: argparse.Namespace) -> Transport:
    try:
        return Transport(
            base_url=args.base_url,
            api=args.api or "chat",
            api_key_env=args.api_key_env,
            timeout_s=args.timeout,
            concurrency=args.concurrency,
            requests_per_min=args.rpm,
            tokens_per_min=args.tpm,
            faults=args.inject_faults,
            fault_seed=args.fault_seed,
            n_mode=args.n_mode,
            estimate_usage=args.estimate_usage,
            # the HTTP client enforces --timeout; the retry layer's own deadline (a task
            # timer per request) is only needed where injected stalls must hit it too
            retry=RetryPolicy(
                timeout_s=args.timeout if args.inject_faults else None,
                max_outage_s=args.max_outage,
            ),
            prices_file=args.prices,
            max_response_bytes=args.max_response_bytes,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _session(args: argparse.Namespace) -> Session:
    return Session(
        store=args.store,
        durability=args.durability,
        budget=_budget(args),
        progress=_progress(not args.json and not args.quiet),
        transport=_transport(args),
        speculate=args.speculate,
        watch=otel_opts.watch(args),
        executor=ExecutorSpec(args.executor, args.workers, args.ray_address),
        notify=_notice,
    )


def _notice(text: str) -> None:
    print(f"unerring: {text}", file=sys.stderr, flush=True)


def _batch(args: argparse.Namespace, base: dict[str, Any]) -> list[BatchItem] | None:
    if args.items is not None and args.batch is not None:
        raise UsageError("give --items FILE or --batch N, not both")
    spec = get_task(args.task_name)
    if args.items is not None:
        return items_from_file(args.items, spec, base)
    if args.batch is not None:
        return numbered_items(args.batch, spec, base)
    return None


def cmd_run(args: argparse.Namespace) -> int:
    options = RunOptions(
        task=args.task_name,
        task_options=_task_options(args, args.task_name),
        model=_model(args.model) or "sim:error=0.01",
        k=args.k,
        target=args.target,
        error_rate=args.error_rate,
        first_temperature=args.first_temperature,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        max_samples_per_step=args.max_samples_per_step,
        on_undecided=args.on_undecided,
        parallel=args.parallel,
        record=args.record,
        api=args.api or "chat",
        base_url=args.base_url,
        notes=args.notes,
        max_depth=args.max_depth,
        stopping=args.stopping,
        variants=args.variants,
    )
    batch = _batch(args, options.task_options)
    result = execute(
        options,
        _session(args),
        args.run_id,
        on_start=None if args.json else _announce(args.store),
        batch=batch,
    )
    return _print_result(result, args.json)


def _announce(store: str) -> Any:
    def announce(run: RunRecord, k: int) -> None:
        where = "" if store == DEFAULT_STORE else f" --store {store}"
        rule = _rule({"stopping": run.config.get("stopping"), "k": k})
        print(
            f"unerring: run {run.run_id}: {run.task} on {run.config['model']}, {rule}, "
            f"store {store}; if stopped, resume with: "
            f"unerring resume {run.run_id}{where}",
            file=sys.stderr,
        )

    return announce


def cmd_resume(args: argparse.Namespace) -> int:
    store = Store(args.store, read_only=True)
    run = store.get_run(args.run_id)
    store.close()
    if run is None:
        raise StoreRefused(f"no run {args.run_id!r} in {args.store} (see `unerring runs`)")
    options = RunOptions.from_config(run.config)
    given = _task_options(args, run.task)
    explicit = {k: v for k, v in given.items() if getattr(args, f"task_{k}", None) is not None}
    if explicit:
        merged = dict(options.task_options)
        merged.update(explicit)
        options = RunOptions(**{**options.__dict__, "task_options": merged})
    model = _model(args.model)
    if model is not None and model != options.model:
        options = RunOptions(**{**options.__dict__, "model": model})
    if args.api is not None and args.api != options.api:
        options = RunOptions(**{**options.__dict__, "api": args.api})
    if args.base_url is not None:
        # the endpoint may move between attempts (a new server, a new port)
        options = RunOptions(**{**options.__dict__, "base_url": args.base_url})
    if args.notes is not None:
        options = RunOptions(**{**options.__dict__, "notes": args.notes})
    result = execute(
        options,
        _session(args),
        run.run_id,
        resume=True,
        on_start=None if args.json else _announce(args.store),
    )
    return _print_result(result, args.json)


def _side_by_side(
    components: list[tuple[float, float]],
    steps: int,
    target: float,
    valid_rate: float,
    cost_per_sample: float | None,
    k: int | None,
) -> dict[str, Any]:
    """Both stopping rules on one error model: samples per step and P(every step right)."""
    if k is None:
        k = reliability.k_min_mixture(components, steps, target)
    fixed = reliability.mixture_samples(components, k) / valid_rate
    model = ErrorModel.from_components(components)
    pred = predict(AdaptiveConfig(steps, target, model, cap=adaptive_cap(k)))
    adaptive = pred.samples_per_step / valid_rate

    def cost(per_step: float) -> float | None:
        return None if cost_per_sample is None else per_step * steps * cost_per_sample

    return {
        "ahead-by-k": {
            "k": k,
            "samples_per_step": fixed,
            "samples_total": fixed * steps,
            "p_full": reliability.p_full_mixture(components, k, steps),
            "cost_total": cost(fixed),
        },
        "adaptive": {
            "first_round": pred.first_round,
            "samples_per_step": adaptive,
            "samples_total": adaptive * steps,
            "p_full": pred.p_full,
            "p_undecided_step": pred.p_undecided,
            "cap": adaptive_cap(k),
            "cost_total": cost(adaptive),
        },
    }


def _print_rules(rules: dict[str, Any]) -> None:
    f, a = rules["ahead-by-k"], rules["adaptive"]
    print(f"{'':<14}{'ahead-by-k':>16}{'adaptive':>16}")
    print(f"{'votes':<14}{'k=' + str(f['k']):>16}{'first ' + str(a['first_round']):>16}")
    print(f"{'samples/step':<14}{f['samples_per_step']:>16.3f}{a['samples_per_step']:>16.3f}")
    print(f"{'samples':<14}{f['samples_total']:>16,.0f}{a['samples_total']:>16,.0f}")
    print(f"{'p_full':<14}{f['p_full']:>16.6f}{a['p_full']:>16.6f}")
    if f["cost_total"] is not None:
        print(f"{'cost':<14}{'$' + format(f['cost_total'], ',.2f'):>16}"
              f"{'$' + format(a['cost_total'], ',.2f'):>16}")  # fmt: skip


def cmd_plan(args: argparse.Namespace) -> int:
    if args.calibrate:
        return _calibrate(args)
    if args.error_rate is None or args.steps is None:
        raise UsageError("plan needs --error-rate E and --steps S (or --calibrate TASK)")
    if not 0.0 < args.error_rate < 1.0:
        raise UsageError(f"--error-rate must be strictly between 0 and 1, got {args.error_rate}")
    components = [(args.error_rate, 1.0)]
    if args.hard_share:
        if not 0.0 < args.hard_error < 1.0:
            raise UsageError(
                f"--hard-error must be strictly between 0 and 1, got {args.hard_error}"
            )
        components = [(args.error_rate, 1.0 - args.hard_share), (args.hard_error, args.hard_share)]
    try:
        plan = reliability.plan(
            args.error_rate,
            args.steps,
            args.target,
            args.valid_rate,
            args.cost_per_sample,
            k=args.k,
        )
        rules = _side_by_side(
            components, args.steps, args.target, args.valid_rate, args.cost_per_sample, args.k
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    d: dict[str, Any] = plan.as_dict()
    d["hard_share"] = args.hard_share
    d["hard_error"] = args.hard_error if args.hard_share else None
    d["rules"] = rules
    if args.json:
        print(json.dumps(d))
        return 0
    hard = ""
    if args.hard_share:
        hard = f" ({args.hard_share:.3g} of steps hard, error {args.hard_error:.3g})"
    print(f"steps {plan.steps:,}, per-sample error {1 - plan.p:.4g}{hard}, target {plan.target}")
    if not args.hard_share:
        print(f"k_min        {plan.k}")
        print(f"p_sub        {plan.p_sub:.10f}  (one step decided right)")
        print(f"valid rate   {plan.valid_rate}")
    _print_rules(rules)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    task = args.calibrate
    options = _task_options(args, task)
    try:
        process = get_task(task).make(options)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        spec = parse_model(_model(args.model) or "sim:error=0.01")
    except ValueError as e:
        raise UsageError(str(e)) from None
    transport = _transport(args)
    if not transport.stop:
        transport = replace(transport, stop=tuple(getattr(process, "stop", ())))
    variants = tuple(args.variants)
    check_variants(process, variants)
    try:
        backend = make_backend(spec, transport)
    except ValueError as e:
        raise UsageError(str(e)) from None
    cal = run_calibration(
        process,
        backend,
        args.samples,
        simulate=spec.simulated,
        seed=spec.sim.seed if spec.sim else 0,
        variants=variants,
    )
    steps = args.steps or process.total_steps()
    out = cal.as_dict()
    out["task"] = task
    out["model"] = spec.text
    plan = None
    if steps and 0.5 < cal.p < 1.0:
        plan = reliability.plan(
            1.0 - cal.p, steps, args.target, max(cal.valid_rate, 1e-9), args.cost_per_sample
        )
        out["plan"] = plan.as_dict()
        out["rules"] = _side_by_side(
            [(1.0 - cal.p, 1.0)],
            steps,
            args.target,
            max(cal.valid_rate, 1e-9),
            args.cost_per_sample,
            None,
        )
    elif cal.p >= 1.0:
        out["plan"] = None
        out["note"] = "no error in the sample: take more samples for a usable estimate"
    if args.json:
        print(json.dumps(out))
    else:
        print(f"calibrated {task} on {spec.text}: {cal.steps} steps, {cal.samples} samples")
        print(f"p            {cal.p:.4f}  (95% CI {cal.p_low:.4f}-{cal.p_high:.4f})")
        print(f"valid rate   {cal.valid_rate:.4f}")
        print(
            f"collisions   {cal.collisions} of {cal.steps} steps "
            f"(first two samples wrong and equal)"
        )
        print(
            f"both wrong   {cal.both_wrong} of {cal.steps} steps (independent errors: "
            f"{cal.expected_both_wrong:.1f}, p = {cal.both_wrong_p:.2g})"
        )
        if cal.hard_share:
            print(f"hard steps   at least {cal.hard_share:.1%} (both wrong beyond chance)")
        else:
            print("hard steps   none beyond chance")
        if cal.groups:
            _print_groups(cal.groups)
        if plan is not None:
            print(
                f"plan         k={plan.k} for {steps:,} steps at target {args.target}: "
                f"{plan.samples_per_step:.2f} samples/step, p_full {plan.p_full:.4f}"
            )
    for w in cal.warnings:
        print(f"unerring: warning: {w}", file=sys.stderr)
    return 0


def _print_groups(groups: dict[str, dict[str, Any]]) -> None:
    """Per model and per prompt variant, and pooled: does decorrelation work?"""
    width = max(len(safe(name, 80)) for name in groups) + 2
    print(f"{'':<{width}}{'p':>7}{'collisions':>16}{'hard steps':>16}")
    for name, g in groups.items():
        coll = f"{g['collisions']} ({g['collision_rate']:.1%})"
        hard = f"{g['hard']} ({g['hard_share']:.1%})"
        print(f"{safe(name, 80):<{width}}{g['p']:>7.3f}{coll:>16}{hard:>16}")


def _open_read(path: str) -> Store:
    return Store(path, read_only=path != MEMORY)


def _status_line(run: RunRecord, store: str = MEMORY) -> dict[str, Any]:
    total = run.steps_total
    decided = int(run.stats.get("steps_decided", 0))
    return {
        "run_id": run.run_id,
        "task": run.task,
        "kind": run.kind,
        "status": run.status if store == MEMORY else live_status(store, run.status, run.run_id),
        "steps_decided": decided,
        "steps_total": total,
        "progress": decided / total if total else None,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created)),
        "last_activity": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.updated)),
    }


def cmd_runs(args: argparse.Namespace) -> int:
    store = _open_read(args.store)
    runs = []
    for record in store.list_runs():
        line = _status_line(record, args.store)
        if record.kind == "batch":
            counts = store.item_counts(record)
            line["items"] = sum(counts.values())
            line["items_completed"] = counts.get("completed", 0)
        runs.append(line)
    if args.json:
        print(json.dumps(runs))
        return 0
    if not runs:
        print(f"no runs in {args.store}")
        return 0
    rows: list[tuple[str, ...]] = []
    for r in runs:
        # a graph's total is the planner's count for a run without errors (a wrong answer
        # can change what later nodes must do): an estimate
        about = "~" if r["kind"] == "graph" else ""
        total = f"/{about}{r['steps_total']:,}" if r["steps_total"] else ""
        items = f"{r['items_completed']:,}/{r['items']:,}" if "items" in r else "-"
        rows.append(
            (
                safe(r["run_id"], 200),
                r["task"],
                r["status"],
                items,
                f"{r['steps_decided']:,}{total}",
                r["started"],
                r["last_activity"],
            )
        )
    headers = ("RUN", "TASK", "STATUS", "ITEMS", "STEPS", "STARTED", "LAST")
    for text in table(headers, rows, right=frozenset({3, 4})):
        print(text)
    return 0


def _item_table(store: Store, run: RunRecord) -> None:
    """A batch's items, streamed (a batch may hold 100,000): the id column as wide as the
    longest id, the others as wide as their numbers can be."""
    width = max(4, store.longest_item_id(run))
    print(f"\n{'ITEM':<{width}}  {'STATUS':<9}  {'STEPS':>17}  {'ERRORS':>7}  "
          f"{'SAMPLES':>11}  {'COST':>10}")  # fmt: skip
    for it in store.items(run):
        st = it.stats
        total = f"/{it.steps_total:,}" if it.steps_total else ""
        steps = f"{int(st.get('steps_decided', 0)):,}{total}"
        errors = int(st.get("errors", 0))
        cost = float(st.get("cost", 0.0))
        line = (
            f"{safe(it.item_id, 200):<{width}}  {it.status:<9}  {steps:>17}  {errors:>7,}  "
            f"{int(st.get('samples', 0)):>11,}  {cost:>10.4g}"
        )
        print(line + (f"  {safe(it.reason, 200)}" if it.reason else ""))


def cmd_show(args: argparse.Namespace) -> int:
    store = _open_read(args.store)
    run = store.get_run(args.run_id)
    if run is None:
        raise StoreRefused(f"no run {args.run_id!r} in {args.store} (see `unerring runs`)")
    if args.tree:
        if run.kind != "graph":
            raise UsageError(f"run {run.run_id!r} is a {run.kind}; --tree shows a graph's nodes")
        for text in render_tree(store, run, args.depth, args.children):
            print(text)
        return 0
    attempts = store.attempts(run)
    item = named_item(store, run, args.item)
    line = _status_line(run, args.store)
    if item is not None:
        s = item_summary(run, item, store)
    else:
        s = summary(run, run.stats, None, store, len(attempts))
        s["status"] = line["status"]
    s["progress"] = (
        line["progress"]
        if item is None
        else (
            int(item.stats.get("steps_decided", 0)) / item.steps_total if item.steps_total else None
        )
    )
    s["last_activity"] = line["last_activity"]
    s["config"] = run.config
    if args.json:
        print(json.dumps(s))
        return 0
    for text in summary_lines(s):
        print(text)
    if "items" in s:
        _item_table(store, run)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.format == "parquet":
        return report_cmds.cmd_export_parquet(args)
    if args.output:
        raise UsageError("-o is for --format parquet; jsonl and csv go to standard output")
    store = _open_read(args.store)
    store.check()  # a damaged file is refused, not exported wrong (0.2 s a 50 MB store)
    run = store.get_run(args.run_id)
    if run is None:
        raise StoreRefused(f"no run {args.run_id!r} in {args.store} (see `unerring runs`)")
    rows = export_rows(store, run, args.what, named_item(store, run, args.item))
    (write_jsonl if args.format == "jsonl" else write_csv)(rows, sys.stdout)
    sys.stdout.flush()
    return 0


def _add_run_session(p: argparse.ArgumentParser) -> None:
    add_store(p, memory=True)
    p.add_argument(
        "--notes",
        metavar="NOTEBOOK",
        help="put the matching notes of this mistake notebook (NAME or NAME@VERSION, "
        "in the store) in front of matching steps' prompts",
    )
    p.add_argument(
        "--durability",
        choices=("group", "sync"),
        default="group",
        help="group: commit in groups every 200 ms off the step loop (default); "
        "sync: commit and fsync each decision before the next step",
    )
    p.add_argument(
        "--speculate",
        type=non_negative_int,
        default=0,
        metavar="D",
        help="open up to D steps of a chain ahead, each on the first valid answer of the "
        "step before it; work on an answer that loses is discarded (default 0: off)",
    )
    g = p.add_argument_group("where items are decided (a session option: a resume may change it)")
    g.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: one scheduler in this process (default); ray: a batch's items (a "
        "graph's ready nodes) spread over Ray actors, journaled here (needs the extra: "
        "pip install 'unerring[ray]')",
    )
    g.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="Ray actors, each a scheduler with its share of --concurrency, --rpm and --tpm "
        "(default: the cluster's CPUs)",
    )
    g.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="a running Ray cluster (`ray start --head` prints it; default: start one on "
        "this machine, on 127.0.0.1)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON summary, no progress")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--max-samples", type=positive_int, help="stop cleanly at this many samples")
    p.add_argument("--max-cost", type=number, help="stop cleanly at this cost in dollars")
    p.add_argument(
        "--max-tokens-total",
        type=positive_int,
        help="stop cleanly at this many tokens (prompt + completion)",
    )
    add_transport_options(p)
    otel_opts.add_otel_options(p)


def build_parser() -> Parser:
    parser = Parser(prog="unerring", description=__doc__)
    parser.add_argument("--version", action="version", version=f"unerring {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    run = sub.add_parser(
        "run",
        help="run a process, voting on every step",
        description="Run a process, voting on every step.",
    )
    run.add_argument("task_name", metavar="TASK", help=f"one of: {', '.join(TASKS)}")
    add_task_options(run)
    run.add_argument(
        "--model",
        action="append",
        help="model spec: sim:error=0.01,seed=7 or openai:MODEL_NAME (default "
        "sim:error=0.01); give it again for an ensemble (--model A --model 2*B, or "
        "'A + 2*B'): samples spread over the members by weight, votes pooled",
    )
    run.add_argument(
        "--k",
        type=up_to(MAX_K),
        help=f"vote margin (default: planned from --target; at most {MAX_K:,})",
    )
    run.add_argument(
        "--target",
        type=probability,
        default=0.95,
        help="probability that every step is right, to plan k (default 0.95)",
    )
    run.add_argument(
        "--error-rate",
        type=probability,
        help="the model's per-sample error rate, to plan k for a real model",
    )
    run.add_argument(
        "--stopping",
        choices=STOPPING_RULES,
        default="ahead-by-k",
        help="when a step is decided: ahead-by-k (one answer leads every other by k; "
        "default) or adaptive (the leader is right with the run's allotted certainty, "
        "learning the error model from the run's votes; docs/stopping.md)",
    )
    run.add_argument(
        "--variants",
        type=variant_list,
        default=(0,),
        metavar="N|LIST",
        help="spread each step's samples over forms of its prompt that the process offers "
        "(other few-shot examples, orderings, phrasings): N for the first N, or a list "
        "such as 0,3,7; sample i of step s uses form number (s + i) mod N of them "
        "(default: the one prompt)",
    )
    run.add_argument("--run-id", help="name the run (default: generated and printed)")
    run.add_argument(
        "--items",
        metavar="FILE",
        help="run a batch: one item per line of FILE, a JSON object of task options "
        '(optionally with an "id"), e.g. {"digits": 30, "seed": 4}',
    )
    run.add_argument(
        "--max-depth",
        type=positive_int,
        default=MAX_DEPTH,
        metavar="D",
        help=f"a graph: refuse nodes deeper than D (default {MAX_DEPTH}); an expansion "
        "past it fails its node",
    )
    run.add_argument(
        "--batch",
        type=up_to(MAX_ITEMS),
        metavar="N",
        help="run a batch of N items with ids 1..N (a task with --seed gets seed = id - 1; "
        f"at most {MAX_ITEMS:,})",
    )
    run.add_argument(
        "--first-temperature",
        type=number,
        default=0.0,
        help="temperature of each step's first sample (default 0)",
    )
    run.add_argument(
        "--temperature",
        type=number,
        default=0.1,
        help="temperature of the other samples (default 0.1)",
    )
    run.add_argument(
        "--max-tokens",
        type=positive_int,
        default=750,
        help="red-flag responses longer than this many tokens (default 750)",
    )
    run.add_argument(
        "--max-samples-per-step",
        type=up_to(MAX_SAMPLES_PER_STEP),
        help=f"cap on samples per step (default 50 x k, at most {MAX_SAMPLES_PER_STEP:,})",
    )
    run.add_argument(
        "--on-undecided",
        choices=("stop", "plurality"),
        default="stop",
        help="when a step hits the cap: stop the run (default) or take the "
        "plurality and mark the step",
    )
    run.add_argument(
        "--parallel",
        type=up_to(MAX_PARALLEL),
        default=1,
        help="samples drawn per round after the first (at least the fewest "
        f"that could decide; default 1, at most {MAX_PARALLEL:,})",
    )
    run.add_argument(
        "--record",
        choices=("decisions", "contested", "samples"),
        default="contested",
        help="samples kept in the journal: none, those of contested, flagged or "
        "checker-rejected steps (default), or all",
    )
    _add_run_session(run)
    run.set_defaults(func=cmd_run)

    resume = sub.add_parser(
        "resume",
        help="continue a stopped run from its last decision",
        description="Continue a stopped run from its last committed "
        "decision; no decided step is sampled again.",
    )
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--model", action="append", help="must equal the journal's (checked)")
    add_task_options(resume)
    _add_run_session(resume)
    resume.set_defaults(func=cmd_resume)

    plan = sub.add_parser(
        "plan",
        help="plan k, samples and cost before spending anything",
        description="Plan k, samples and cost; or --calibrate to measure "
        "the model's success rate first.",
    )
    plan.add_argument("--error-rate", type=number, help="per-sample error rate 1 - p")
    plan.add_argument("--steps", type=positive_int, help="number of steps")
    plan.add_argument(
        "--target",
        type=probability,
        default=0.95,
        help="probability that every step is right (default 0.95)",
    )
    plan.add_argument(
        "--valid-rate",
        type=unit_interval,
        default=1.0,
        help="share of samples that pass the red flags (default 1)",
    )
    plan.add_argument(
        "--hard-share",
        type=unit_interval,
        default=0.0,
        help="share of steps that are hard (errors not i.i.d.; default 0)",
    )
    plan.add_argument(
        "--hard-error",
        type=number,
        default=0.45,
        help="per-sample error rate on hard steps (default 0.45)",
    )
    plan.add_argument("--cost-per-sample", type=number, help="dollars per sample")
    plan.add_argument(
        "--k", type=up_to(MAX_K), help=f"evaluate this k instead of k_min (at most {MAX_K:,})"
    )
    plan.add_argument(
        "--calibrate", metavar="TASK", help="measure p on sampled steps of TASK with --model"
    )
    plan.add_argument(
        "--model",
        action="append",
        help="model to calibrate (with --calibrate); several for an ensemble: each member "
        "is measured on its own and pooled",
    )
    plan.add_argument(
        "--samples",
        type=positive_int,
        default=200,
        help="steps to sample when calibrating (default 200)",
    )
    plan.add_argument(
        "--variants",
        type=variant_list,
        default=(0,),
        metavar="N|LIST",
        help="with --calibrate: measure each of these prompt variants on its own, and pooled",
    )
    add_task_options(plan)
    add_transport_options(plan)
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.set_defaults(func=cmd_plan)

    runs = sub.add_parser("runs", help="list the runs in a store")
    add_store(runs)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    show = sub.add_parser("show", help="summary of one run (also while it runs)")
    show.add_argument("run_id", metavar="RUN_ID")
    add_store(show)
    show.add_argument("--json", action="store_true")
    show.add_argument("--item", metavar="ID", help="one item of a batch, in the single-run form")
    show.add_argument(
        "--tree", action="store_true", help="a graph run's nodes as a tree (the task memory)"
    )
    show.add_argument(
        "--depth",
        type=non_negative_int,
        metavar="D",
        help="with --tree: show D levels below the first nodes; deeper ones as counts",
    )
    show.add_argument(
        "--children",
        type=children_shown,
        default=CHILDREN,
        metavar="N|all",
        help=f"with --tree: draw the first N children of a node (default {CHILDREN}), "
        "then one line counting the rest; all: every one",
    )
    show.set_defaults(func=cmd_show)

    export = sub.add_parser(
        "export", help="stream a run's records as JSON lines or CSV, or write Parquet"
    )
    export.add_argument("run_id", metavar="RUN_ID")
    add_store(export)
    export.add_argument(
        "--format",
        choices=("jsonl", "csv", "parquet"),
        default="jsonl",
        help="jsonl or csv to standard output; parquet to -o FILE (pip install "
        "'unerring[parquet]')",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="the Parquet file to write")
    export.add_argument(
        "--what",
        choices=("decisions", "samples", "nodes"),
        default="decisions",
        help="decisions, samples, or a graph's nodes (id, parent, dependencies, status, "
        "input, output, steps, samples, tokens)",
    )
    export.add_argument("--item", metavar="ID", help="one item of a batch, in the single-run form")
    export.set_defaults(func=cmd_export)
    analysis_cmds.register(sub)
    report_cmds.register(sub)
    return parser


# README's rule: bad input (a store or run that is not there included) exits 2; a run that
# stops before its end exits 1; a store another process holds exits 75 (sysexits'
# EX_TEMPFAIL: try again)
EXIT_STOPPED = 1
EXIT_USAGE = 2
EXIT_BUSY = 75


def _store_exit(e: StoreError) -> int:
    if isinstance(e, StoreRefused):
        return EXIT_USAGE
    return EXIT_BUSY if isinstance(e, StoreBusy) else EXIT_STOPPED


def _fail(e: Exception, code: int) -> int:
    print(f"unerring: error: {e}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as e:
        return _fail(e, EXIT_USAGE)
    except StoreError as e:
        return _fail(e, _store_exit(e))
    except sqlite3.DatabaseError as e:
        # past opening: a lock held longer than the busy timeout, or damage found by a read
        named = store_error(getattr(args, "store", DEFAULT_STORE), e, opening=False)
        return _fail(named, _store_exit(named))
    except DamagedRecord as e:  # packed records read outside Store.decisions (a report's)
        where = getattr(args, "store", DEFAULT_STORE)
        return _fail(StoreRefused(f"{where} is damaged ({e}); restore it from a copy"), 2)
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
