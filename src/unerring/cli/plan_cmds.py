"""`unerring plan`: k, samples and cost before spending anything, or `--calibrate` to
measure a model's error rate on a task's steps first."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import Any

from unerring import defaults
from unerring.analysis.records import safe
from unerring.app.options import BatchItem, RunConfig
from unerring.app.tools import calibration_backend
from unerring.backends.factory import Transport
from unerring.backends.spec import ModelSpec
from unerring.cli import weighted_cmds
from unerring.cli.args import (
    add_model,
    add_task_options,
    add_transport_options,
    number,
    positive_int,
    probability,
    unit_interval,
    up_to,
    variant_list,
)
from unerring.cli.items import items_from_file
from unerring.cli.run_options import config_from_args, task_options
from unerring.cli.user_args import (
    add_set,
    refuse_set,
    refuse_task_flags,
    set_arguments,
    user_items,
)
from unerring.errors import UsageError
from unerring.limits import MAX_K
from unerring.planning import reliability
from unerring.planning.calibrate import run_calibration
from unerring.planning.predict import side_by_side
from unerring.planning.reliability_table import ReliabilityTable
from unerring.planning.weighing import spec_sources
from unerring.process import Process
from unerring.process_factory import ProcessFactory
from unerring.tasks.registry import TaskProcesses, get_task
from unerring.tasks.user import is_reference, user_processes

# what calibration takes of a run's options: the model and how it is asked
_CALIBRATION_OPTIONS = frozenset(
    {"model", "api", "max_outage_s"} | {f.name for f in fields(Transport)}
)


def cmd_plan(args: argparse.Namespace) -> int:
    if args.calibrate:
        return _calibrate(args)
    if args.items is not None:
        raise UsageError("--items is a dataset to calibrate on: give it with --calibrate TASK")
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
        rules = side_by_side(
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


def _calibrate(args: argparse.Namespace) -> int:
    items: list[BatchItem] | None = None
    factory: ProcessFactory
    if is_reference(args.calibrate):
        refuse_task_flags(args, args.calibrate)
        user = user_processes(args.calibrate, set_arguments(args.set_args))
        if args.items is not None:
            items = user_items(args.items, user)
        factory = user
    else:
        refuse_set(args, args.calibrate)
        spec = get_task(args.calibrate)
        factory = TaskProcesses(spec, task_options(args, spec))
        if args.items is not None:
            items = items_from_file(args.items, spec, factory.options)
    # a dataset's items share the sampled steps; else the one process the options make
    made = (
        [factory.make({})] if items is None else [factory.make(b.options, b.item_id) for b in items]
    )
    processes = [p for p in made if isinstance(p, Process)]
    if len(processes) < len(made):
        raise UsageError(f"task {factory.name!r} is a graph; --calibrate measures a chain's steps")
    process = processes[0]
    config = config_from_args(args, RunConfig(), _CALIBRATION_OPTIONS)
    model = config.model
    variants = tuple(args.variants)
    table = None
    if args.save_reliability is not None:
        weighted_cmds.check_table_steps(args.samples)
        table = ReliabilityTable(factory.name, 0)
    backend = calibration_backend(process, model, config.session.transport, variants)
    cal = run_calibration(
        processes,
        backend,
        args.samples,
        simulate=model.simulated,
        seed=_calibration_seed(args, model),
        variants=variants,
        per_step=args.per_step,
        max_tokens=args.max_tokens,
        first_temperature=args.first_temperature,
        temperature=args.temperature,
        table=table,
        names=spec_sources(model)[0],
        progress=weighted_cmds.progress_printer(),
    )
    totals = [p.total_steps() for p in processes]
    # a plan for the run of all of them: k is planned over every item's steps
    steps = args.steps or (sum(t for t in totals if t) if all(totals) else None)
    out = cal.as_dict()
    out["task"] = factory.name
    out["model"] = model.text
    if steps:
        weighted_cmds.group_plans(cal, steps, args.target, args.cost_per_sample)
    weighted = None
    if table is not None and table.too_few() is None and steps:
        weighted_cmds.save_table(table, args.save_reliability)
        out["reliability_file"] = args.save_reliability
        weighted = weighted_cmds.weighted_plans(
            table, model, variants, steps, args.target, args.cost_per_sample,
            args.max_samples_per_step,
        )  # fmt: skip
        out["weighted"] = weighted
    plan = None
    if steps and 0.5 < cal.p < 1.0:
        valid = max(cal.valid_rate, 1e-9)
        plan = reliability.plan(1.0 - cal.p, steps, args.target, valid, args.cost_per_sample)
        out["plan"] = plan.as_dict()
        out["rules"] = side_by_side(
            [(1.0 - cal.p, 1.0)], steps, args.target, valid, args.cost_per_sample, None
        )
    elif cal.p >= 1.0:
        out["plan"] = None
        out["note"] = "no error in the sample: take more samples for a usable estimate"
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"calibrated {factory.name} on {model.text}: {cal.steps} steps, {cal.samples} samples"
        )
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
        if weighted is not None:
            weighted_cmds.print_weighted(weighted)
            print(f"reliability table written to {args.save_reliability}")
    for w in cal.warnings:
        print(f"unerring: warning: {w}", file=sys.stderr)
    if table is not None and weighted is None:
        why = table.too_few() or "the task's length is not known: give --steps"
        print(f"unerring: warning: no reliability table written: {why}", file=sys.stderr)
    if cal.interrupted:
        print(f"unerring: {weighted_cmds.interrupted_note(cal)}", file=sys.stderr)
        return 130
    return 0


def _calibration_seed(args: argparse.Namespace, model: ModelSpec) -> int:
    if args.calibration_seed is not None:
        return int(args.calibration_seed)
    return model.sim.seed if model.sim else defaults.CALIBRATION_SEED


def _print_groups(groups: dict[str, dict[str, Any]]) -> None:
    """Per model and per prompt variant, and pooled: does decorrelation work? And each
    one's ahead-by-k plan from its own p."""
    width = max(len(safe(name, 80)) for name in groups) + 2
    print(
        f"{'':<{width}}{'p':>7}{'collisions':>16}{'hard steps':>16}{'k':>5}"
        f"{'samples/step':>14}{'p_full':>10}"
    )
    for name, g in groups.items():
        coll = f"{g['collisions']} ({g['collision_rate']:.1%})"
        hard = f"{g['hard']} ({g['hard_share']:.1%})"
        plan = g.get("plan")
        planned = (
            f"{plan['k']:>5}{plan['samples_per_step']:>14.2f}{plan['p_full']:>10.4f}"
            if plan
            else f"{'-':>5}{'-':>14}{'-':>10}"
        )
        print(f"{safe(name, 80):<{width}}{g['p']:>7.3f}{coll:>16}{hard:>16}{planned}")


def register(sub: Any) -> None:
    """Add `plan` to the CLI's subparsers."""
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
        default=defaults.TARGET,
        help=f"probability that every step is right (default {defaults.TARGET})",
    )
    plan.add_argument(
        "--valid-rate",
        type=unit_interval,
        default=defaults.VALID_RATE,
        help=f"share of samples that pass the red flags (default {defaults.VALID_RATE:g})",
    )
    plan.add_argument(
        "--hard-share",
        type=unit_interval,
        default=defaults.HARD_SHARE,
        help=f"share of steps that are hard (errors not i.i.d.; default {defaults.HARD_SHARE:g})",
    )
    plan.add_argument(
        "--hard-error",
        type=number,
        default=defaults.HARD_ERROR,
        help=f"per-sample error rate on hard steps (default {defaults.HARD_ERROR})",
    )
    plan.add_argument("--cost-per-sample", type=number, help="dollars per sample")
    plan.add_argument(
        "--k", type=up_to(MAX_K), help=f"evaluate this k instead of k_min (at most {MAX_K:,})"
    )
    plan.add_argument(
        "--calibrate",
        metavar="TASK",
        help="measure p on sampled steps of TASK with --model: a built-in task, or your "
        "own Process as FILE.py:Class or module:Class (arguments with --set)",
    )
    add_set(plan)
    add_model(
        plan,
        "model to calibrate (with --calibrate); several for an ensemble: each member "
        "is measured on its own and pooled",
    )
    plan.add_argument(
        "--items",
        metavar="FILE",
        help="with --calibrate: a dataset, one item per line as `unerring run --items` takes "
        "it; the sampled steps are shared among its items, and the plan is for all of them",
    )
    plan.add_argument(
        "--samples",
        type=positive_int,
        default=defaults.CALIBRATION_SAMPLES,
        help=f"steps to sample when calibrating (default {defaults.CALIBRATION_SAMPLES})",
    )
    plan.add_argument(
        "--variants",
        type=variant_list,
        default=defaults.VARIANTS,
        metavar="N|LIST",
        help="with --calibrate: measure each of these prompt variants on its own, and pooled",
    )
    plan.add_argument(
        "--per-step",
        type=positive_int,
        default=defaults.CALIBRATION_PER_STEP,
        metavar="N",
        help="with --calibrate: samples of each model and variant per step (default "
        f"{defaults.CALIBRATION_PER_STEP}: the first at --first-temperature, the others at "
        "--temperature; 1 where a run votes at temperature 0)",
    )
    plan.add_argument(
        "--first-temperature",
        type=number,
        default=defaults.FIRST_TEMPERATURE,
        help="with --calibrate: temperature of each model's and variant's first sample of a "
        f"step (default {defaults.FIRST_TEMPERATURE:g})",
    )
    plan.add_argument(
        "--temperature",
        type=number,
        default=defaults.TEMPERATURE,
        help=f"with --calibrate: temperature of its other samples (default "
        f"{defaults.TEMPERATURE:g})",
    )
    plan.add_argument(
        "--max-tokens",
        type=positive_int,
        default=defaults.MAX_TOKENS,
        help="with --calibrate: red-flag responses longer than this many tokens, and ask "
        f"for no more (default {defaults.MAX_TOKENS}; give the run's own --max-tokens)",
    )
    plan.add_argument(
        "--save-reliability",
        metavar="FILE",
        help="with --calibrate: spread the steps evenly over the task's step features and "
        "write each model's and variant's reliability on them to FILE, for "
        "`run --reliability FILE` (a vote that weighs and routes samples by it)",
    )
    plan.add_argument(
        "--max-samples-per-step",
        type=positive_int,
        metavar="N",
        help="with --save-reliability: the weighted vote's cap, for its plan (default: "
        f"each source {defaults.WEIGHTED_CAP_PER_SOURCE} times, at least "
        f"{defaults.WEIGHTED_CAP_MIN})",
    )
    plan.add_argument(
        "--calibration-seed",
        type=int,
        metavar="S",
        help="with --calibrate: which steps are sampled (default: the simulated model's seed, "
        f"else {defaults.CALIBRATION_SEED})",
    )
    add_task_options(plan)
    add_transport_options(plan)
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.set_defaults(func=cmd_plan)
