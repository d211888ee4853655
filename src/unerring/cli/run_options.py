"""The options of `run` and `resume`, parsed once into a RunConfig.

Each option's dest is the library's name for it (`--timeout` is `timeout_s`), so that one
table (`unerring.app.options.PLACES`) places it, and an error naming a parameter can be
shown with its flag. An option that decides answers is absent unless typed: a resume is
the journal's configuration with only what was typed replaced.
"""

from __future__ import annotations

import argparse
from argparse import SUPPRESS
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from unerring import defaults
from unerring.app.options import PLACES, RunConfig, configure
from unerring.backends.spec import ensemble_text
from unerring.cli import otel_opts
from unerring.cli.args import (
    add_model,
    add_store,
    add_transport_options,
    non_negative_int,
    number,
    positive_int,
    probability,
    up_to,
    variant_list,
)
from unerring.errors import UsageError
from unerring.executors import EXECUTORS, ExecutorSpec
from unerring.limits import MAX_ITEMS, MAX_K, MAX_PARALLEL, MAX_SAMPLES_PER_STEP
from unerring.planning.weighing import read_table
from unerring.tasks.registry import TaskSpec

MODEL_HELP = (
    f"model spec: sim:error=0.01,seed=7 or openai:MODEL_NAME (default {defaults.MODEL}); "
    "give it again for an ensemble (--model A --model 2*B, or 'A + 2*B'): samples spread "
    "over the members by weight, votes pooled"
)


def config_from_args(
    args: argparse.Namespace, base: RunConfig, names: Collection[str] = PLACES.keys()
) -> RunConfig:
    """`base` (the defaults, or a journal's configuration) with what the command line gave
    of the options `names`."""
    given = {k: v for k, v in vars(args).items() if k in PLACES and k in names}
    if "model" in given:
        given["model"] = ensemble_text(given["model"])
    if isinstance(given.get("reliability"), str):  # the file's table, checked
        given["reliability"] = read_table(given["reliability"])
    if "executor" in given:
        given["executor"] = ExecutorSpec(
            given["executor"], getattr(args, "workers", None), getattr(args, "ray_address", None)
        )
    config = configure(base, given)
    t = config.session.transport
    if t.faults and t.retry.timeout_s is None:
        # the HTTP client enforces --timeout; the retry layer's own deadline (a task
        # timer per request) is only needed where injected stalls must hit it too
        retry = replace(t.retry, timeout_s=t.timeout_s)
        config = configure(config, {"transport": replace(t, retry=retry)})
    return config


def task_options(
    args: argparse.Namespace, spec: TaskSpec, *, typed_only: bool = False
) -> dict[str, Any]:
    """The task options given as flags (`--disks 5`), typed; the others at their defaults
    unless `typed_only`."""
    own = {o.name: o for o in spec.options}
    out: dict[str, Any] = {}
    for name, value in vars(args).items():
        if not name.startswith("task_") or name == "task_name" or value is None:
            continue
        o = own.get(name[5:])
        if o is None:
            raise UsageError(
                f"--{name[5:].replace('_', '-')} is not an option of task {spec.name!r}"
            )
        try:
            out[o.name] = o.type(value)
        except ValueError:
            raise UsageError(f"{o.flag} {value!r} is not a {o.type.__name__}") from None
    if not typed_only:
        for o in spec.options:
            out.setdefault(o.name, o.default)
    return out


def add_voting_options(run: argparse.ArgumentParser) -> None:
    """How each step is voted on (recorded with the run)."""
    run.add_argument(
        "--k",
        type=up_to(MAX_K),
        default=SUPPRESS,
        help=f"vote margin (default: planned from --target; at most {MAX_K:,})",
    )
    run.add_argument(
        "--target",
        type=probability,
        default=SUPPRESS,
        help=f"probability that every step is right, to plan k (default {defaults.TARGET})",
    )
    run.add_argument(
        "--error-rate",
        type=probability,
        default=SUPPRESS,
        help="the model's per-sample error rate, to plan k for a real model",
    )
    run.add_argument(
        "--stopping",
        choices=defaults.STOPPING_RULES,
        default=SUPPRESS,
        help="when a step is decided: ahead-by-k (one answer leads every other by k; "
        "default) or adaptive (the leader is right with the run's allotted certainty, "
        "learning the error model from the run's votes; docs/stopping.md)",
    )
    run.add_argument(
        "--variants",
        type=variant_list,
        default=SUPPRESS,
        metavar="N|LIST",
        help="spread each step's samples over forms of its prompt that the process offers "
        "(other few-shot examples, orderings, phrasings): N for the first N, or a list "
        "such as 0,3,7; sample i of step s uses form number (s + i) mod N of them "
        "(default: the one prompt)",
    )
    run.add_argument(
        "--reliability",
        metavar="FILE",
        default=SUPPRESS,
        help="a vote that knows its voters: weigh each sample by its model's and prompt "
        "variant's reliability on steps like this one, as measured by `plan --calibrate "
        "... --save-reliability FILE` (on other labelled steps), and ask the trusted ones "
        "first; the margin comes from --target (the table is kept in the journal)",
    )
    run.add_argument("--run-id", help="name the run (default: generated and printed)")
    run.add_argument(
        "--items",
        metavar="FILE",
        help="run a batch: one item per line of FILE, a JSON object of task options "
        '(optionally with an "id"), e.g. {"digits": 30, "seed": 4}; for FILE.py:Class, '
        'of its constructor\'s keyword arguments, e.g. {"id": "q1", "question": "..."}',
    )
    run.add_argument(
        "--max-depth",
        type=positive_int,
        default=SUPPRESS,
        metavar="D",
        help=f"a graph: refuse nodes deeper than D (default {defaults.MAX_DEPTH}); an "
        "expansion past it fails its node",
    )
    run.add_argument(
        "--max-steps",
        type=positive_int,
        default=SUPPRESS,
        metavar="N",
        help="fail an item whose done() is still false after N steps, for a process whose "
        "total_steps() is None (one that gives a total fails after it regardless); a "
        "resume keeps it (default: no cap)",
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
        default=SUPPRESS,
        help=f"temperature of each step's first sample (default {defaults.FIRST_TEMPERATURE:g})",
    )
    run.add_argument(
        "--temperature",
        type=number,
        default=SUPPRESS,
        help=f"temperature of the other samples (default {defaults.TEMPERATURE:g})",
    )
    run.add_argument(
        "--max-tokens",
        type=positive_int,
        default=SUPPRESS,
        help=f"red-flag responses longer than this many tokens (default {defaults.MAX_TOKENS})",
    )
    run.add_argument(
        "--max-samples-per-step",
        type=up_to(MAX_SAMPLES_PER_STEP),
        default=SUPPRESS,
        help=f"cap on samples per step (default {defaults.SAMPLES_PER_K} x k, at most "
        f"{MAX_SAMPLES_PER_STEP:,})",
    )
    run.add_argument(
        "--on-undecided",
        choices=("stop", "plurality"),
        default=SUPPRESS,
        help="when a step hits the cap: stop the run (default) or take the "
        "plurality and mark the step",
    )
    run.add_argument(
        "--parallel",
        type=up_to(MAX_PARALLEL),
        default=SUPPRESS,
        help="samples drawn per round after the first (at least the fewest "
        f"that could decide; default {defaults.PARALLEL}, at most {MAX_PARALLEL:,})",
    )
    run.add_argument(
        "--record",
        choices=("decisions", "contested", "samples"),
        default=SUPPRESS,
        help="samples kept in the journal: none, those of contested, flagged or "
        "checker-rejected steps (default), or all",
    )


def add_session_options(p: argparse.ArgumentParser) -> None:
    """Where the run is kept and how this attempt runs (a resume may change these)."""
    add_store(p, memory=True)
    p.add_argument(
        "--notes",
        metavar="NOTEBOOK",
        default=SUPPRESS,
        help="put the matching notes of this mistake notebook (NAME or NAME@VERSION, "
        "in the store) in front of matching steps' prompts",
    )
    p.add_argument(
        "--durability",
        choices=("group", "sync"),
        default=SUPPRESS,
        help="group: commit in groups every 200 ms off the step loop (default); "
        "sync: commit and fsync each decision before the next step",
    )
    p.add_argument(
        "--speculate",
        type=non_negative_int,
        default=SUPPRESS,
        metavar="D",
        help="open up to D steps of a chain ahead, each on the first valid answer of the "
        f"step before it; work on an answer that loses is discarded (default "
        f"{defaults.SPECULATE}: off)",
    )
    g = p.add_argument_group("where items are decided (a session option: a resume may change it)")
    g.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=defaults.EXECUTOR,
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
    p.add_argument(
        "--max-samples",
        type=positive_int,
        default=SUPPRESS,
        help="stop cleanly at this many samples",
    )
    p.add_argument(
        "--max-cost", type=number, default=SUPPRESS, help="stop cleanly at this cost in dollars"
    )
    p.add_argument(
        "--max-tokens-total",
        type=positive_int,
        default=SUPPRESS,
        help="stop cleanly at this many tokens (prompt + completion)",
    )
    add_transport_options(p)
    otel_opts.add_otel_options(p)


def add_run_model(p: argparse.ArgumentParser) -> None:
    add_model(p, MODEL_HELP)
